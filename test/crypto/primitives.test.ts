// Known-answer tests for every primitive (docs/WIREGUARD.md §7.1, §7.4, §2.2). Sources are named per block.
import fc from 'fast-check';
import nacl from 'tweetnacl';
import { BLAKE2s } from '@stablelib/blake2s';
import { ChaCha20Poly1305 } from '@stablelib/chacha20poly1305';
import { hchacha } from '@stablelib/xchacha20';
import { XChaCha20Poly1305 } from '@stablelib/xchacha20poly1305';
import { CONSTRUCTION, IDENTIFIER } from '../../crypto/constants.js';
import {
  AEAD,
  DH,
  HASH,
  HMAC,
  KDF1,
  KDF2,
  KDF3,
  KeyedMac,
  MAC,
  StablelibTransportCipher,
  TAI64N,
  XAEAD,
  clamp,
  constantTimeEqual,
  generatePrivateKey,
  publicKey,
  timestampAfter,
} from '../../crypto/primitives.js';
import { x25519, x25519Base } from '../../crypto/x25519.js';
import { VECTORS, hex, loadJson, toHex, type WycheproofAead } from '../helpers/vectors.js';

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

interface WycheproofX25519 {
  testGroups: {
    tests: { tcId: number; public: string; private: string; shared: string; flags: string[] }[];
  }[];
}

describe('HASH / MAC / HMAC: BLAKE2s', () => {
  const kat = loadJson<{ unkeyed: string[]; keyed: string[] }>(`${VECTORS}blake2s_kat.json`);
  const message = (length: number) => Uint8Array.from({ length }, (_, i) => i);
  const key = message(32);

  test('reference KAT, unkeyed, all 256 lengths (HASH)', () => {
    kat.unkeyed.forEach((out, length) =>
      expect([length, toHex(HASH(message(length)))]).toEqual([length, out]),
    );
  });

  test('reference KAT, keyed with 00..1f, all 256 lengths', () => {
    kat.keyed.forEach((out, length) =>
      expect([length, toHex(new BLAKE2s(32, { key }).update(message(length)).digest())]).toEqual([
        length,
        out,
      ]),
    );
  });

  test('HASH of several parts equals HASH of their concatenation', () => {
    expect(HASH(message(10), message(200), message(0))).toEqual(
      HASH(Uint8Array.from([...message(10), ...message(200)])),
    );
  });

  test('MAC is keyed BLAKE2s-128 (docs/WIREGUARD.md §7.4 quick check)', () => {
    expect(toHex(MAC(key, new Uint8Array(0)))).toBe('9536f9b267655743dee97b8a670f9f53');
    expect(MAC(key, message(3), message(5))).toHaveLength(16);
  });

  test('KeyedMac: one hasher, reset per message, gives MAC over all 256 lengths in turn (and the empty message again)', () => {
    const keyed = new KeyedMac(key);
    const lengths = [...Array.from({ length: 256 }, (_, length) => length), 0];
    for (const length of lengths) {
      expect([length, toHex(keyed.mac(message(length)))]).toEqual([length, toHex(MAC(key, message(length)))]);
    }
    expect(toHex(keyed.mac(new Uint8Array(0)))).toBe('9536f9b267655743dee97b8a670f9f53');
  });

  test('HMAC is RFC 2104 over BLAKE2s (not keyed mode) and can be called repeatedly with one key', () => {
    const a = HMAC(ascii('test-key'), ascii('test-input'));
    expect(HMAC(ascii('test-key'), ascii('test-'), ascii('input'))).toEqual(a);
    expect(a).not.toEqual(new BLAKE2s(32, { key: ascii('test-key') }).update(ascii('test-input')).digest());
  });
});

describe('KDF1/KDF2/KDF3: wireguard-go device/kdf_test.go', () => {
  // #, key, input, T1, T2, T3
  const table: [number, string, string, string, string, string][] = [
    [
      1,
      '746573742d6b6579',
      '746573742d696e707574',
      '6f0e5ad38daba1bea8a0d213688736f19763239305e0f58aba697f9ffc41c633',
      'df1194df20802a4fe594cde27e92991c8cae66c366e8106aaa937a55fa371e8a',
      'fac6e2745a325f5dc5d11a5b165aad08b0ada28e7b4e666b7c077934a4d76c24',
    ],
    [
      2,
      '776972656775617264',
      '776972656775617264',
      '491d43bbfdaa8750aaf535e334ecbfe5129967cd64635101c566d4caefda96e8',
      '1e71a379baefd8a79aa4662212fcafe19a23e2b609a3db7d6bcba8f560e3d25f',
      '31e1ae48bddfbe5de38f295e5452b1909a1b4e38e183926af3780b0c1e1f0160',
    ],
    [
      3,
      '',
      '',
      '8387b46bf43eccfcf349552a095d8315c4055beb90208fb1be23b894bc2ed5d0',
      '58a0e5f6faefccf4807bff1f05fa8a9217945762040bcec2f4b4a62bdfe0e86e',
      '0ce6ea98ec548f8e281e93e32db65621c45eb18dc6f0a7ad94178610a2f7338e',
    ],
  ];
  test.each(table)('#%i', (_n, key, input, t1, t2, t3) => {
    expect(KDF3(hex(key), hex(input)).map(toHex)).toEqual([t1, t2, t3]);
    expect(KDF2(hex(key), hex(input)).map(toHex)).toEqual([t1, t2]);
    expect(toHex(KDF1(hex(key), hex(input)))).toEqual(t1);
  });
});

describe('protocol constants (docs/WIREGUARD.md §2.2)', () => {
  test('Ci = HASH(CONSTRUCTION), Hi = HASH(Ci ‖ IDENTIFIER)', () => {
    const ci = HASH(CONSTRUCTION);
    expect(toHex(ci)).toBe('60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36');
    expect(toHex(HASH(ci, IDENTIFIER))).toBe(
      '2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3',
    );
  });
});

describe('DH: X25519', () => {
  test('RFC 7748 §6.1 Diffie-Hellman', () => {
    const alice = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const bob = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
    expect(toHex(publicKey(alice))).toBe('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    expect(toHex(publicKey(bob))).toBe('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
    const sharedSecret = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
    expect(toHex(DH(alice, publicKey(bob))!)).toBe(sharedSecret);
    expect(toHex(DH(bob, publicKey(alice))!)).toBe(sharedSecret);
  });

  test.each([
    // RFC 7748 §5.2: scalar, u-coordinate, output
    [
      'a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4',
      'e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c',
      'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552',
    ],
    [
      '4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d',
      'e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493',
      '95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957',
    ],
  ])('RFC 7748 §5.2 single scalar %#', (scalar, u, out) => {
    expect(toHex(DH(hex(scalar), hex(u))!)).toBe(out);
  });

  test('RFC 7748 §5.2 iterated: 1 and 1,000 iterations', () => {
    let k = hex('0900000000000000000000000000000000000000000000000000000000000000');
    let u = k;
    for (let i = 1; i <= 1000; i++) {
      [k, u] = [x25519(k, u), k];
      if (i === 1) expect(toHex(k)).toBe('422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079');
    }
    expect(toHex(k)).toBe('684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51');
  });

  test('x25519.ts equals tweetnacl on random scalars and points, and on u at and above p', () => {
    const edges = [
      hex('ec' + 'ff'.repeat(30) + '7f'),
      hex('ff'.repeat(32)),
      hex('ed' + 'ff'.repeat(30) + '7f'),
    ];
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.nat(3),
        (scalar, point, edge) => {
          const u = edge < 3 ? edges[edge]! : point;
          expect(toHex(x25519(scalar, u))).toBe(toHex(nacl.scalarMult(scalar, u)));
          expect(toHex(x25519Base(scalar))).toBe(toHex(nacl.scalarMult.base(scalar)));
        },
      ),
      { numRuns: 40 },
    );
  });

  test('Wycheproof x25519: every shared secret matches, and an all-zero result is refused', () => {
    const suite = loadJson<WycheproofX25519>(`${VECTORS}wycheproof/x25519_test.json`);
    let refused = 0;
    let total = 0;
    for (const t of suite.testGroups.flatMap((g) => g.tests)) {
      total++;
      const result = DH(hex(t.private), hex(t.public));
      if (/^(00)+$/.test(t.shared)) {
        refused++;
        expect([t.tcId, result]).toEqual([t.tcId, undefined]);
      } else {
        expect([t.tcId, result && toHex(result)]).toEqual([t.tcId, t.shared]);
      }
    }
    expect(total).toBe(518);
    expect(refused).toBeGreaterThan(0);
  });

  test('low-order points (LowOrderPublic flag) are all refused', () => {
    const suite = loadJson<WycheproofX25519>(`${VECTORS}wycheproof/x25519_test.json`);
    const lowOrder = suite.testGroups
      .flatMap((g) => g.tests)
      .filter((t) => t.flags.includes('ZeroSharedSecret'));
    expect(lowOrder.length).toBeGreaterThan(0);
    for (const t of lowOrder) expect(DH(hex(t.private), hex(t.public))).toBeUndefined();
  });

  test('clamp and generatePrivateKey', () => {
    const clamped = clamp(new Uint8Array(32).fill(0xff));
    expect([clamped[0], clamped[31]]).toEqual([0xf8, 0x7f]);
    const key = generatePrivateKey((n) => new Uint8Array(n).fill(0x01));
    expect([key[0], key[31], key.length]).toEqual([0x00, 0x41, 32]);
    expect(() => clamp(new Uint8Array(31))).toThrow(RangeError);
  });
});

describe('AEAD: ChaCha20-Poly1305', () => {
  test('RFC 8439 §2.8.2 (its nonce is not of WireGuard form, so at the library level)', () => {
    const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
    const sealed = new ChaCha20Poly1305(key).seal(
      hex('070000004041424344454647'),
      ascii(
        "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
      ),
      hex('50515253c0c1c2c3c4c5c6c7'),
    );
    expect(toHex(sealed.subarray(0, 16))).toBe('d31a8d34648e60db7b86afbc53ef7ec2');
    expect(toHex(sealed.subarray(sealed.length - 16))).toBe('1ae10b594f09e26a7e902ecbd0600691');
  });

  test('AEAD.seal puts the counter little-endian after 4 zero bytes', () => {
    const key = HASH(ascii('k'));
    const counter = 0x0102030405;
    const viaNonce = new ChaCha20Poly1305(key).seal(
      hex('000000000504030201000000'),
      ascii('hello'),
      ascii('ad'),
    );
    expect(AEAD.seal(key, counter, ascii('hello'), ascii('ad'))).toEqual(viaNonce);
    expect(AEAD.open(key, counter, viaNonce, ascii('ad'))).toEqual(ascii('hello'));
    expect(AEAD.open(key, counter + 1, viaNonce, ascii('ad'))).toBeUndefined();
    expect(AEAD.open(key, counter, viaNonce, ascii('AD'))).toBeUndefined();
    expect(AEAD.open(key, 0, new Uint8Array(15), ascii(''))).toBeUndefined();
    expect(() => AEAD.seal(key, -1, ascii(''), ascii(''))).toThrow(RangeError);
    expect(() => AEAD.seal(key, 1n << 64n, ascii(''), ascii(''))).toThrow(RangeError);
    expect(AEAD.seal(key, BigInt(counter), ascii('hello'), ascii('ad'))).toEqual(viaNonce);
  });

  test('Wycheproof chacha20_poly1305: valid accepted, invalid rejected (library at nonce level)', () => {
    const suite = loadJson<WycheproofAead>(`${VECTORS}wycheproof/chacha20_poly1305_test.json`);
    let checked = 0;
    for (const group of suite.testGroups) {
      for (const t of group.tests) {
        checked++;
        const aead = new ChaCha20Poly1305(hex(t.key));
        const sealed = hex(t.ct + t.tag);
        if (group.ivSize !== 96) {
          // Our nonce is always 96 bits; other sizes are invalid by construction.
          expect([t.tcId, t.result]).toEqual([t.tcId, 'invalid']);
          continue;
        }
        const opened = aead.open(hex(t.iv), sealed, hex(t.aad));
        if (t.result === 'valid') {
          expect([t.tcId, opened && toHex(opened)]).toEqual([t.tcId, t.msg]);
          expect([t.tcId, toHex(aead.seal(hex(t.iv), hex(t.msg), hex(t.aad)))]).toEqual([
            t.tcId,
            t.ct + t.tag,
          ]);
        } else {
          expect([t.tcId, opened]).toEqual([t.tcId, null]);
        }
      }
    }
    expect(checked).toBe(325);
  });

  test('Wycheproof chacha20_poly1305 through AEAD where the nonce has WireGuard form (0000 ‖ counter)', () => {
    const suite = loadJson<WycheproofAead>(`${VECTORS}wycheproof/chacha20_poly1305_test.json`);
    const cases = suite.testGroups
      .filter((g) => g.ivSize === 96)
      .flatMap((g) => g.tests)
      .filter((t) => t.iv.startsWith('00000000'))
      .map((t) => ({ t, counter: new DataView(hex(t.iv).buffer).getBigUint64(4, true) }));
    expect(cases.length).toBeGreaterThan(0);
    for (const { t, counter } of cases) {
      const opened = AEAD.open(hex(t.key), counter, hex(t.ct + t.tag), hex(t.aad));
      expect([t.tcId, opened && toHex(opened)]).toEqual([t.tcId, t.result === 'valid' ? t.msg : undefined]);
    }
  });

  test('TransportAEAD seals in place and rejects short input', () => {
    const cipher = new StablelibTransportCipher(HASH(ascii('k')));
    const buffer = new Uint8Array(64 + 16);
    buffer.set(HASH(ascii('a')));
    const expected = AEAD.seal(HASH(ascii('k')), 7, buffer.subarray(0, 64), new Uint8Array(0));
    cipher.seal(0, 7, buffer.subarray(0, 64), buffer);
    expect(buffer).toEqual(expected);
    expect(cipher.open(0, 7, buffer.subarray(0, 15), new Uint8Array(0))).toBe(false);
  });
});

describe('XAEAD: XChaCha20-Poly1305', () => {
  test('HChaCha20, draft-irtf-cfrg-xchacha §2.2.1', () => {
    const out = hchacha(
      Uint8Array.from({ length: 32 }, (_, i) => i),
      hex('000000090000004a0000000031415927'),
      new Uint8Array(32),
    );
    expect(toHex(out)).toBe('82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc');
  });

  test('Wycheproof xchacha20_poly1305: valid accepted, invalid rejected', () => {
    const suite = loadJson<WycheproofAead>(`${VECTORS}wycheproof/xchacha20_poly1305_test.json`);
    let checked = 0;
    for (const group of suite.testGroups) {
      for (const t of group.tests) {
        checked++;
        const [key, iv, aad, sealed] = [hex(t.key), hex(t.iv), hex(t.aad), hex(t.ct + t.tag)];
        if (group.ivSize !== 192) {
          expect([t.tcId, t.result]).toEqual([t.tcId, 'invalid']);
          expect(() => XAEAD.open(key, iv, sealed, aad)).toThrow(RangeError);
          continue;
        }
        const opened = XAEAD.open(key, iv, sealed, aad);
        if (t.result === 'valid') {
          expect([t.tcId, opened && toHex(opened)]).toEqual([t.tcId, t.msg]);
          expect([t.tcId, toHex(XAEAD.seal(key, iv, hex(t.msg), aad))]).toEqual([t.tcId, t.ct + t.tag]);
        } else {
          expect([t.tcId, opened]).toEqual([t.tcId, undefined]);
        }
      }
    }
    expect(checked).toBe(315);
  });

  test('the same bytes as @stablelib/xchacha20poly1305 for any key, nonce, message and AD (300 runs)', () => {
    const bytes = (length: number) => fc.uint8Array({ minLength: length, maxLength: length });
    fc.assert(
      fc.property(
        bytes(32),
        bytes(24),
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ maxLength: 40 }),
        (key, nonce, message, ad) => {
          const sealed = XAEAD.seal(key, nonce, message, ad);
          expect(sealed).toEqual(new XChaCha20Poly1305(key).seal(nonce, message, ad));
          expect(XAEAD.open(key, nonce, sealed, ad)).toEqual(message);
          sealed[sealed.length - 1]! ^= 1;
          expect(XAEAD.open(key, nonce, sealed, ad)).toBeUndefined();
        },
      ),
      { numRuns: 300 },
    );
  });

  test('a key other than 32 bytes, or a sealed message shorter than its tag: an error, and nothing opened', () => {
    expect(() =>
      XAEAD.seal(new Uint8Array(31), new Uint8Array(24), new Uint8Array(1), new Uint8Array(0)),
    ).toThrow(/key must be 32 bytes/);
    expect(
      XAEAD.open(new Uint8Array(32), new Uint8Array(24), new Uint8Array(15), new Uint8Array(0)),
    ).toBeUndefined();
  });
});

describe('TAI64N', () => {
  test('WireGuard KAT timestamp: 1700000000 s + 123 ms, nanoseconds whitened to a multiple of 2^24', () => {
    expect(toHex(TAI64N(1_700_000_000_123))).toBe('400000006553f10a07000000');
    expect(toHex(TAI64N(0))).toBe('400000000000000a00000000');
    expect(toHex(TAI64N(999))).toBe('400000000000000a3b000000'); // 999e6 ns = 0x3b8b87c0 → 0x3b000000
  });

  test('timestampAfter is strict and big-endian', () => {
    const t = TAI64N(1_700_000_000_000);
    expect(timestampAfter(TAI64N(1_700_000_000_017), t)).toBe(true); // 17 ms > 2^24 ns
    expect(timestampAfter(TAI64N(1_700_000_000_010), t)).toBe(false); // whitened to the same value
    expect(timestampAfter(t, TAI64N(1_700_000_001_000))).toBe(false);
    expect(timestampAfter(TAI64N(1_700_000_001_000), t)).toBe(true);
  });
});

test('constantTimeEqual', () => {
  expect(constantTimeEqual(hex('0102'), hex('0102'))).toBe(true);
  expect(constantTimeEqual(hex('0102'), hex('0103'))).toBe(false);
  expect(constantTimeEqual(hex('0102'), hex('01'))).toBe(false);
});
