// The node's CSPRNG source (nodes/random.ts): small requests come from a pooled block, large ones straight
// from the OS; every request gets its own bytes.
import { secureRandomBytes } from '../../nodes/random.js';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

describe('secureRandomBytes', () => {
  test('1. every length from 0 to 200 gets exactly that many bytes, in an array of its own', () => {
    for (let length = 0; length <= 200; length++) {
      const bytes = secureRandomBytes(length);
      expect([length, bytes.length, bytes.byteOffset, bytes.buffer.byteLength]).toEqual([
        length,
        length,
        0,
        length,
      ]);
    }
  });

  test('2. 2,000 nonces (24 bytes, past several refills of the pool) are all different and not zero', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) seen.add(hex(secureRandomBytes(24)));
    expect(seen.size).toBe(2000);
    expect(seen.has('00'.repeat(24))).toBe(false);
  });

  test('3. bytes handed out stay as they were while later requests are served', () => {
    const first = secureRandomBytes(32);
    const copy = first.slice();
    for (let i = 0; i < 500; i++) secureRandomBytes(17);
    expect(first).toEqual(copy);
  });

  test.each([[-1], [Number.NaN], [1.5], [2 ** 40]])('4. a length of %p throws', (length) => {
    expect(() => secureRandomBytes(length)).toThrow(/random bytes: no length|Invalid typed array length/);
  });
});
