// Human output: aligned tables, byte sizes, masked tokens.

/**
 * `text` safe to print on a terminal: control characters (C0, DEL, C1) shown as `\xNN`. Names come from the
 * broker, and an app with keys:manage chooses a key's name: written raw, an escape sequence in it would
 * drive the user's terminal (rewrite what was printed, set the title, ...).
 */
export const printable = (text: string): string =>
  text.replace(/\p{Cc}/gu, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);

/** Left-aligned columns separated by two spaces; the header row in capitals; cells printable. */
export function table(headers: string[], cells: string[][]): string {
  const rows = cells.map((row) => row.map(printable));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers.map((h) => h.toUpperCase())), ...rows.map(line)].join('\n') + '\n';
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return 'unlimited';
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${UNITS[unit]}`;
}

/** `tb_***…wxyz`: enough to tell keys apart, never enough to use one. */
export function maskToken(token: string): string {
  const prefix = token.startsWith('tb_') ? 'tb_' : '';
  return `${prefix}***…${token.slice(-4)}`;
}

export const orDash = (value: string | number | null | undefined) =>
  value === null || value === undefined || value === '' ? '-' : String(value);

/** `key: value` lines with the keys aligned; values printable. */
export function fields(pairs: [string, string][]): string {
  const width = Math.max(...pairs.map(([k]) => k.length)) + 1;
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width)} ${printable(v)}`).join('\n') + '\n';
}
