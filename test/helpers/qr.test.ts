// The QR reader the CLI tests use: it reads back what qrcode printed, and nothing from a damaged code.
import QRCode from 'qrcode';
import { decodeTextQr } from './qr.js';

// What `tunnelbyte connect --qr` asks of qrcode off a terminal (`small` is missing from its types).
const printed = (text: string): Promise<string> =>
  QRCode.toString(text, { type: 'utf8', small: true } as object);
const text = '[Interface]\nPrivateKey = <your private key>\nAddress = 10.64.0.2/32, fd64::2/128\n';

test('1. a code printed in half blocks reads back as its text', async () => {
  expect(decodeTextQr(await printed(text))).toBe(text);
});

test('2. a code with its middle rows wiped reads as nothing', async () => {
  const rows = (await printed(text)).split('\n');
  const middle = Math.floor(rows.length / 2);
  for (let i = middle - 3; i <= middle + 3; i++) rows[i] = rows[i]!.replace(/[▀▄]/g, '█');
  expect(decodeTextQr(rows.join('\n'))).toBeNull();
});

test('3. output without a code reads as nothing', () => {
  expect(decodeTextQr('Config written to /tmp/tb0.conf\n')).toBeNull();
});
