// crypto/poly1305.ts against a BigInt Poly1305 written straight from RFC 8439 §2.5.1: the inputs that push
// 22-bit limbs to their edges (all-ones blocks, r and s at their largest, accumulators at p), random keys
// and messages, and the same message absorbed in pieces or by a reused object.
import fc from 'fast-check';

import { Poly1305 } from '../../crypto/poly1305.js';
import { hex, toHex } from '../helpers/vectors.js';

const P = (1n << 130n) - 5n;
const CLAMP = 0x0ffffffc0ffffffc0ffffffc0fffffffn;
const TWO_POW_128 = 1n << 128n;

const littleEndian = (bytes: Uint8Array): bigint =>
  bytes.reduceRight((value, byte) => (value << 8n) | BigInt(byte), 0n);

/** RFC 8439 §2.5.1 over whole 16-byte blocks, in arbitrary-precision arithmetic. */
function reference(key: Uint8Array, message: Uint8Array): string {
  const r = littleEndian(key.subarray(0, 16)) & CLAMP;
  const s = littleEndian(key.subarray(16, 32));
  let accumulator = 0n;
  for (let offset = 0; offset < message.length; offset += 16) {
    const block = littleEndian(message.subarray(offset, offset + 16)) + TWO_POW_128;
    accumulator = ((accumulator + block) * r) % P;
  }
  let tag = (accumulator + s) % TWO_POW_128;
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++, tag >>= 8n) out[i] = Number(tag & 0xffn);
  return toHex(out);
}

function mac(poly: Poly1305, key: Uint8Array, message: Uint8Array): string {
  const tag = new Uint8Array(16);
  poly.init(key);
  poly.blocks(message, 0, message.length);
  poly.finish(tag, 0);
  return toHex(tag);
}

const ones = (length: number): Uint8Array => new Uint8Array(length).fill(0xff);
const key = (r: string, s: string): Uint8Array => hex(r.padEnd(32, '0') + s.padEnd(32, '0'));

// #, what it pushes to the edge, key (r ‖ s), message
const table: [number, string, Uint8Array, Uint8Array][] = [
  [1, 'all zero: the tag is zero', new Uint8Array(32), new Uint8Array(64)],
  [2, 'a result just above p: only a full final reduction is right', key('02', ''), ones(16)],
  [3, 'h + s wraps past 2^128', key('02', 'ff'.repeat(16)), hex('02'.padEnd(32, '0'))],
  [4, 'the accumulator at p - 1 and above between blocks', key('01', ''), ones(48)],
  [5, 'r and s at their largest, every limb full', ones(32), ones(256)],
  [6, 'the 2^128 bit alone, times the largest r', key('ff'.repeat(16), ''), new Uint8Array(160)],
  [7, 'r = 0: the tag is s', key('', 'ff'.repeat(16)), ones(32)],
  [
    8,
    'a long message: carries build up block after block',
    key('fb'.repeat(16), 'fe'.repeat(16)),
    ones(1024),
  ],
];

describe('Poly1305 against RFC 8439 §2.5.1 in BigInt', () => {
  test.each(table)('%i. %s', (_n, _what, k, message) => {
    expect(mac(new Poly1305(), k, message)).toBe(reference(k, message));
  });

  test('9. random keys and messages of up to 20 blocks', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc
          .integer({ min: 0, max: 20 })
          .chain((blocks) => fc.uint8Array({ minLength: 16 * blocks, maxLength: 16 * blocks })),
        (k, message) => mac(new Poly1305(), k, message) === reference(k, message),
      ),
      { numRuns: 300 },
    );
  });

  test('10. absorbing in pieces at any block boundary, from an offset, gives the same tag', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 16 * 6, maxLength: 16 * 6 }),
        fc.integer({ min: 0, max: 6 }),
        (k, message, split) => {
          const poly = new Poly1305();
          const buffer = new Uint8Array(3 + message.length);
          buffer.set(message, 3);
          const tag = new Uint8Array(20);
          poly.init(k);
          poly.blocks(buffer, 3, 16 * split);
          poly.blocks(buffer, 3 + 16 * split, message.length - 16 * split);
          poly.finish(tag, 4);
          return toHex(tag.subarray(4)) === reference(k, message);
        },
      ),
      { numRuns: 100 },
    );
  });

  test('11. one object reused for many keys (as each AEAD call does) keeps nothing from the last', () => {
    const poly = new Poly1305();
    for (const [, , k, message] of table) expect(mac(poly, k, message)).toBe(reference(k, message));
  });
});
