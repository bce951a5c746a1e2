// crypto/aead.ts against RFC 8439, every Wycheproof ChaCha20-Poly1305 vector, and @stablelib on random input.
import { ChaCha20Poly1305 } from '@stablelib/chacha20poly1305';
import fc from 'fast-check';
import { ChaChaPoly, ChaChaPolyTransportCipher } from '../../crypto/aead.js';
import { HOST_IS_LITTLE_ENDIAN } from '../../crypto/words.js';
import { AEAD, StablelibTransportCipher, createTransportCipher } from '../../crypto/primitives.js';
import { VECTORS, hex, loadJson, toHex, type WycheproofAead } from '../helpers/vectors.js';

function seal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  const out = new Uint8Array(plaintext.length + 16);
  new ChaChaPoly(key).seal(nonce, plaintext, ad, out);
  return out;
}

test('RFC 8439 §2.8.2', () => {
  const plaintext = new TextEncoder().encode(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  );
  const sealed = seal(
    hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f'),
    hex('070000004041424344454647'),
    plaintext,
    hex('50515253c0c1c2c3c4c5c6c7'),
  );
  expect(toHex(sealed)).toBe(
    'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b' +
      '1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc' +
      '3ff4def08e4b7a9de576d26586cec64b6116' +
      '1ae10b594f09e26a7e902ecbd0600691',
  );
});

test('Wycheproof chacha20_poly1305: every 96-bit-nonce vector, valid sealed/opened, invalid rejected', () => {
  const suite = loadJson<WycheproofAead>(`${VECTORS}wycheproof/chacha20_poly1305_test.json`);
  let valid = 0;
  let invalid = 0;
  for (const group of suite.testGroups) {
    for (const t of group.tests) {
      const aead = new ChaChaPoly(hex(t.key));
      const sealed = hex(t.ct + t.tag);
      if (group.ivSize !== 96) {
        expect(() =>
          aead.open(hex(t.iv), sealed, hex(t.aad), new Uint8Array(Math.max(0, sealed.length - 16))),
        ).toThrow('nonce must be 12 bytes');
        invalid++;
        continue;
      }
      const out = new Uint8Array(sealed.length - 16);
      const ok = aead.open(hex(t.iv), sealed, hex(t.aad), out);
      expect([t.tcId, ok]).toEqual([t.tcId, t.result === 'valid']);
      if (t.result === 'valid') {
        valid++;
        expect([t.tcId, toHex(out)]).toEqual([t.tcId, t.msg]);
        expect([t.tcId, toHex(seal(hex(t.key), hex(t.iv), hex(t.msg), hex(t.aad)))]).toEqual([
          t.tcId,
          t.ct + t.tag,
        ]);
      } else {
        invalid++;
        expect(out).toEqual(new Uint8Array(out.length)); // untouched when forged
      }
    }
  }
  expect([valid, invalid]).toEqual([256, 69]);
});

describe('differential against @stablelib/chacha20poly1305', () => {
  test('random keys, nonces, AD and plaintexts of every length class agree', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.uint8Array({ maxLength: 40 }),
        fc.uint8Array({ maxLength: 300 }),
        (key, nonce, ad, plaintext) => {
          const expected = new ChaCha20Poly1305(key).seal(nonce, plaintext, ad);
          const sealed = seal(key, nonce, plaintext, ad);
          const opened = new Uint8Array(plaintext.length);
          return (
            toHex(sealed) === toHex(expected) &&
            new ChaChaPoly(key).open(nonce, sealed, ad, opened) &&
            toHex(opened) === toHex(plaintext)
          );
        },
      ),
      { numRuns: 400 },
    );
  });

  test('one instance rekeyed (after wipe too) for each of many keys agrees with a new one per key', () => {
    const reused = new ChaChaPoly(new Uint8Array(32));
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.uint8Array({ maxLength: 100 }),
        fc.boolean(),
        (key, nonce, plaintext, wiped) => {
          if (wiped) reused.wipe();
          reused.rekey(key);
          const sealed = new Uint8Array(plaintext.length + 16);
          reused.seal(nonce, plaintext, undefined, sealed);
          return toHex(sealed) === toHex(new ChaCha20Poly1305(key).seal(nonce, plaintext));
        },
      ),
      { numRuns: 200 },
    );
    expect(() => reused.rekey(new Uint8Array(16))).toThrow(/key must be 32 bytes/);
  });

  test('all-0xff inputs (maximal Poly1305 limbs) and a 1420-byte packet at unaligned offsets', () => {
    const key = new Uint8Array(32).fill(0xff);
    for (const length of [0, 15, 16, 17, 63, 64, 65, 1420, 4096]) {
      const plaintext = new Uint8Array(length).fill(0xff);
      const ad = new Uint8Array(length % 33).fill(0xff);
      const nonce = new Uint8Array(12).fill(0xff);
      expect([length, toHex(seal(key, nonce, plaintext, ad))]).toEqual([
        length,
        toHex(new ChaCha20Poly1305(key).seal(nonce, plaintext, ad)),
      ]);
      // Same bytes at an odd offset exercise the byte-wise path.
      const buffer = new Uint8Array(length + 16 + 1);
      buffer.set(plaintext, 1);
      new ChaChaPoly(key).seal(nonce, buffer.subarray(1, 1 + length), ad, buffer.subarray(1));
      expect([length, toHex(buffer.subarray(1))]).toEqual([length, toHex(seal(key, nonce, plaintext, ad))]);
    }
  });
});

describe('ChaChaPolyTransportCipher', () => {
  test('agrees with the stablelib transport cipher, in place and across counters', () => {
    const key = hex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
    const own = new ChaChaPolyTransportCipher(key);
    const reference = new StablelibTransportCipher(key);
    for (const [high, low, length] of [
      [0, 0, 0],
      [0, 1, 1420],
      [1, 0xffffffff, 77],
      [0xffffffff, 0xffffdffe, 16],
    ] as const) {
      const packet = Uint8Array.from({ length }, (_, i) => i * 7);
      const buffer = new Uint8Array(length + 16);
      buffer.set(packet);
      own.seal(high, low, buffer.subarray(0, length), buffer); // in place
      const expected = new Uint8Array(length + 16);
      reference.seal(high, low, packet, expected);
      expect(buffer).toEqual(expected);
      expect(toHex(expected)).toBe(
        toHex(AEAD.seal(key, (BigInt(high) << 32n) | BigInt(low), packet, new Uint8Array(0))),
      );
      const opened = new Uint8Array(length);
      expect(own.open(high, low, buffer, opened)).toBe(true);
      expect(opened).toEqual(packet);
      expect(own.open(high, low + 1, buffer, opened)).toBe(false);
    }
    expect(own.open(0, 0, new Uint8Array(15), new Uint8Array(0))).toBe(false);
  });

  test('sealInPlace / openInPlace at any offset of any buffer (SharedArrayBuffer too) agree with seal / open, both ciphers', () => {
    const key = hex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
    for (const cipher of [new ChaChaPolyTransportCipher(key), new StablelibTransportCipher(key)]) {
      for (const shared of [false, true]) {
        // Offsets 0, 16 (word-aligned, the transport content) and 3 (byte by byte); lengths across block edges.
        for (const [offset, length] of [
          [0, 0],
          [16, 1420],
          [3, 1420],
          [16, 63],
          [3, 129],
        ] as const) {
          const packet = Uint8Array.from({ length }, (_, i) => (i * 13 + offset) & 0xff);
          const size = offset + length + 16 + 5;
          const bytes = new Uint8Array(shared ? new SharedArrayBuffer(size) : new ArrayBuffer(size));
          bytes.fill(0xee);
          bytes.set(packet, offset);
          cipher.sealInPlace(7, 9, bytes, offset, length);
          const expected = new Uint8Array(length + 16);
          cipher.seal(7, 9, packet, expected);
          expect(bytes.slice(offset, offset + length + 16)).toEqual(expected);
          expect(bytes.slice(0, offset).every((b) => b === 0xee)).toBe(true); // nothing outside written
          expect(bytes.slice(offset + length + 16).every((b) => b === 0xee)).toBe(true);
          const forged = bytes.slice();
          forged[offset + length]! ^= 1;
          expect(cipher.openInPlace(7, 9, forged, offset, length)).toBe(false);
          expect(forged.slice(offset, offset + length)).toEqual(bytes.slice(offset, offset + length)); // untouched
          expect(cipher.openInPlace(7, 9, bytes, offset, length)).toBe(true);
          expect(bytes.slice(offset, offset + length)).toEqual(packet);
        }
      }
    }
    const own = new ChaChaPolyTransportCipher(key);
    expect(() => own.sealInPlace(0, 0, new Uint8Array(32), 17, 0)).toThrow(RangeError); // tag past the end
    expect(() => own.openInPlace(0, 0, new Uint8Array(32), -1, 0)).toThrow(RangeError);
  });

  test('sealPadded equals copying the packet, zero padding it and sealInPlace, both ciphers, any offsets', () => {
    const key = hex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
    for (const cipher of [new ChaChaPolyTransportCipher(key), new StablelibTransportCipher(key)]) {
      // [source offset, destination offset, length, padded length]: word-aligned or not, whole blocks or not.
      for (const [si, di, length, padded] of [
        [0, 16, 1420, 1424],
        [4, 16, 1408, 1408],
        [8, 32, 64, 64],
        [3, 16, 1420, 1424],
        [0, 17, 100, 112],
        [0, 16, 0, 0],
        [12, 16, 63, 64],
        [0, 16, 129, 144],
      ] as const) {
        const src = new Uint8Array(si + length + 7).fill(0xab);
        for (let i = 0; i < length; i++) src[si + i] = (i * 29 + si) & 0xff;
        const size = di + padded + 16 + 5;
        const dst = new Uint8Array(new SharedArrayBuffer(size)).fill(0xee);
        cipher.sealPadded(3, 4, src, si, length, dst, di, padded);
        const expected = new Uint8Array(size).fill(0xee);
        expected.fill(0, di, di + padded);
        expected.set(src.subarray(si, si + length), di);
        cipher.sealInPlace(3, 4, expected, di, padded);
        expect(toHex(dst)).toBe(toHex(expected)); // nothing outside the region and its tag written
        expect(cipher.openInPlace(3, 4, dst, di, padded)).toBe(true);
        expect(dst.slice(di, di + length)).toEqual(src.slice(si, si + length));
      }
      const dst = new Uint8Array(64);
      expect(() => cipher.sealPadded(0, 0, new Uint8Array(8), 4, 8, dst, 0, 16)).toThrow(RangeError); // src too short
      expect(() => cipher.sealPadded(0, 0, new Uint8Array(8), 0, 8, dst, 0, 4)).toThrow(RangeError); // padded < length
      expect(() => cipher.sealPadded(0, 0, new Uint8Array(8), 0, 8, dst, 40, 16)).toThrow(RangeError); // tag past the end
    }
  });

  test('one cipher going back and forth between views of several buffers (its word view cache) agrees with stablelib', () => {
    const key = hex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
    const own = new ChaChaPolyTransportCipher(key);
    const reference = new StablelibTransportCipher(key);
    const slabs = [new Uint8Array(4096), new Uint8Array(4096), new Uint8Array(new SharedArrayBuffer(4096))];
    // Views at aligned and unaligned offsets, the same view object again, and a fresh view of the same place.
    const places: Array<[slab: number, offset: number, length: number]> = [
      [0, 16, 1420],
      [1, 0, 200],
      [0, 16, 1420],
      [0, 1520, 96],
      [2, 3, 500],
      [1, 0, 200],
      [0, 1520, 96],
      [2, 64, 1024],
    ];
    const views = places.map(([slab, offset, length]) => slabs[slab]!.subarray(offset, offset + length + 16));
    for (let round = 0; round < 3; round++) {
      places.forEach(([slab, offset, length], i) => {
        const view = round === 2 ? slabs[slab]!.subarray(offset, offset + length + 16) : views[i]!;
        const packet = Uint8Array.from({ length }, (_, k) => (k * 31 + i + round) & 0xff);
        view.set(packet);
        own.sealInPlace(round, i, view, 0, length);
        const expected = new Uint8Array(length + 16);
        reference.seal(round, i, packet, expected);
        expect(view).toEqual(expected);
        const out = new Uint8Array(length + 16); // sealing across buffers: plaintext in one, ciphertext in another
        own.seal(round, i, view.subarray(0, length), out);
        expect(own.openInPlace(round, i, view, 0, length)).toBe(true);
        expect(view.subarray(0, length)).toEqual(packet);
        const opened = new Uint8Array(length);
        expect(own.open(round, i, out, opened)).toBe(true);
        expect(opened).toEqual(Uint8Array.from({ length }, (_, k) => expected[k]!));
      });
    }
  });

  test('is the engine cipher on little-endian hosts (the benchmark measured it faster)', () => {
    const expected = HOST_IS_LITTLE_ENDIAN ? ChaChaPolyTransportCipher : StablelibTransportCipher;
    expect(createTransportCipher(new Uint8Array(32))).toBeInstanceOf(expected);
  });

  test('wrong key length is a programmer error', () => {
    expect(() => new ChaChaPoly(new Uint8Array(16))).toThrow(RangeError);
  });
});
