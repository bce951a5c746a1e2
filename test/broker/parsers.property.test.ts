// Property tests for the broker's parsers of untrusted text: IP addresses and tokens.
import fc from 'fast-check';
import { canonicalIp, parseIp, sourceOf } from '../../src/broker/ip.js';
import { API_TOKEN_PREFIX, checksum, isWellFormedToken, mintToken } from '../../src/broker/tokens.js';

/** WHATWG URL's host serializer is an independent RFC 5952-style reference for IPv6. */
const urlCanonical = (v6: string) => new URL(`http://[${v6}]/`).hostname.slice(1, -1);

describe('parseIp', () => {
  test('never throws; answers null or a canonical form that is a fixed point', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.ipV4Extended(), fc.ipV6(), fc.ipV4()), (text) => {
        const parsed = parseIp(text);
        if (parsed) expect(canonicalIp(parsed.text)).toBe(parsed.text);
      }),
      { numRuns: 2000 },
    );
  });

  test('IPv4 dotted quads are their own canonical form', () => {
    fc.assert(fc.property(fc.ipV4(), (ip) => expect(parseIp(ip)).toEqual({ version: 4, text: ip })));
  });

  test('IPv6 canonical form agrees with the WHATWG URL serializer (v4-mapped excepted)', () => {
    fc.assert(
      fc.property(fc.ipV6(), (ip) => {
        const parsed = parseIp(ip);
        expect(parsed).not.toBeNull();
        const reference = urlCanonical(ip);
        if (reference.startsWith('::ffff:') && parsed!.version === 4) return;
        expect(parsed).toEqual({ version: 6, text: reference });
      }),
      { numRuns: 2000 },
    );
  });

  test.each([
    // 1-5: IPv4 edge cases
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['1.02.3.4', null],
    ['1.2.3.4 ', null],
    ['1.2.3.256', null],
    // 6-12: IPv6 edge cases
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:db8::1:2:3:4:5:6', null],
    ['::ffff:0:0', '0.0.0.0'],
    // 13-16: garbage
    [':::', null],
    ['1:2:3:4:5:6:7:8:9', null],
    ['12345::', null],
    ['::1.2.3', null],
  ])('%#: %s → %s', (input, expected) => {
    expect(canonicalIp(input)).toBe(expected);
  });
});

describe('sourceOf', () => {
  test.each([
    // 1-2: IPv4 (also when IPv4-mapped) is its own source
    ['203.0.113.7', '203.0.113.7'],
    ['::ffff:203.0.113.7', '203.0.113.7'],
    // 3-5: IPv6 is its /64, whatever the zone id and spelling
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:DB8:0001:0002::9%eth0', '2001:db8:1:2::/64'],
    ['::1', '::/64'],
    // 6: anything else is its own identity
    ['unknown', 'unknown'],
  ])('%#: %s → %s', (address, source) => {
    expect(sourceOf(address)).toBe(source);
  });
});

describe('tokens', () => {
  test('minted tokens are well-formed; any one-character change is caught by shape or checksum', () => {
    const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
    fc.assert(
      fc.property(fc.nat(), fc.nat({ max: 61 }), (position, replacement) => {
        const token = mintToken(API_TOKEN_PREFIX);
        expect(isWellFormedToken(API_TOKEN_PREFIX, token)).toBe(true);
        const i = API_TOKEN_PREFIX.length + (position % 38);
        const c = alphabet[replacement]!;
        if (token[i] === c) return;
        expect(isWellFormedToken(API_TOKEN_PREFIX, token.slice(0, i) + c + token.slice(i + 1))).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  test('arbitrary strings are never well-formed by accident, and never throw', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), (s) => {
        expect(isWellFormedToken(API_TOKEN_PREFIX, `tb_${s}`)).toBe(
          s.length === 38 && checksum(s.slice(0, 32)) === s.slice(32) && /^[0-9A-Za-z]+$/.test(s),
        );
      }),
    );
  });
});
