// Reads back a QR code printed as text with half blocks (qrcode's `small` utf8 output: each character
// is two modules stacked, ▀ top, ▄ bottom, █ both), by drawing it as an image for jsQR, a decoder
// written apart from the encoder.
import jsQRModule from 'jsqr';

// A CommonJS module: imported from ESM its default is module.exports, which carries the function as `default`.
const jsQR = jsQRModule.default;

const TOP = new Set(['▀', '█']);
const BOTTOM = new Set(['▄', '█']);
/** Pixels per module, and the light margin drawn around the code. */
const SCALE = 4;
const MARGIN = 4;

/** The text of the QR code drawn in `output` (the lines made only of half blocks and spaces), or null. */
export function decodeTextQr(output: string): string | null {
  const rows = output.split('\n').filter((line) => /^[ ▀▄█]+$/.test(line) && /[▀▄█]/.test(line));
  if (rows.length === 0) return null;
  const modules = rows.flatMap((line) => [
    [...line].map((c) => TOP.has(c)),
    [...line].map((c) => BOTTOM.has(c)),
  ]);
  const columns = Math.max(...modules.map((row) => row.length));
  const width = (columns + 2 * MARGIN) * SCALE;
  const height = (modules.length + 2 * MARGIN) * SCALE;
  const rgba = new Uint8ClampedArray(width * height * 4).fill(255);
  modules.forEach((row, y) =>
    row.forEach((filled, x) => {
      if (!filled) return;
      for (let dy = 0; dy < SCALE; dy++) {
        for (let dx = 0; dx < SCALE; dx++) {
          const at = (((y + MARGIN) * SCALE + dy) * width + (x + MARGIN) * SCALE + dx) * 4;
          rgba.fill(0, at, at + 3);
        }
      }
    }),
  );
  // A block may stand for a light module (light-on-dark terminals): try the image both ways.
  return jsQR(rgba, width, height, { inversionAttempts: 'attemptBoth' })?.data ?? null;
}
