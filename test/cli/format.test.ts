// src/cli/format.ts: what the CLI's human output does with text it did not write.
import { fields, printable, table } from '../../src/cli/format.js';

describe('printable: control characters from the broker never reach the terminal raw', () => {
  test.each([
    [1, 'plain text, unicode included', 'laptop key ✓ ü', 'laptop key ✓ ü'],
    [
      2,
      'an ANSI escape sequence (clear screen, set title)',
      '\u001b[2J\u001b]0;pwned\u0007',
      '\\x1b[2J\\x1b]0;pwned\\x07',
    ],
    [3, 'a line break and a carriage return', 'a\nb\rc', 'a\\x0ab\\x0dc'],
    [4, 'DEL and a C1 control (CSI)', 'x\u007fy\u009bz', 'x\\x7fy\\x9bz'],
  ])('%i. %s', (_n, _what, text, shown) => {
    expect(printable(text)).toBe(shown);
  });

  test('5. table cells and field values are printed printable, and aligned as printed', () => {
    expect(
      table(
        ['id', 'name'],
        [
          ['key_1', 'evil\u001b[2J'],
          ['key_2', 'ok'],
        ],
      ),
    ).toBe('ID     NAME\nkey_1  evil\\x1b[2J\nkey_2  ok\n');
    expect(fields([['name', 'evil\u001b]0;t\u0007']])).toBe('name: evil\\x1b]0;t\\x07\n');
  });
});
