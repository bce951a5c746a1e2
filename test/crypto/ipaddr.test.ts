import fc from 'fast-check';
import { isIP } from 'node:net';
import {
  formatIpAddress,
  formatPrefix,
  maskPrefix,
  parseIpAddress,
  parsePrefix,
} from '../../crypto/ipaddr.js';

const bytesOf = (text: string) => {
  const parsed = parseIpAddress(text);
  return parsed.ok ? [...parsed.value] : parsed.error;
};

describe('parseIpAddress: numbered cases', () => {
  const valid: Array<[number, string, number[]]> = [
    [1, '0.0.0.0', [0, 0, 0, 0]],
    [2, '255.255.255.255', [255, 255, 255, 255]],
    [3, '10.0.0.1', [10, 0, 0, 1]],
    [4, '::', new Array(16).fill(0)],
    [5, '::1', [...new Array(15).fill(0), 1]],
    [6, '1::', [0, 1, ...new Array(14).fill(0)]],
    [7, 'FE80::aB:1', [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0, 1]],
    [8, '1:2:3:4:5:6:7:8', [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]],
    [9, '1:2:3:4:5:6:7::', [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 0]],
    [10, '::ffff:1.2.3.4', [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4]],
    [11, '1:2:3:4:5:6:1.2.3.4', [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 1, 2, 3, 4]],
  ];
  test.each(valid)('#%i %s is valid', (_n, text, bytes) => expect(bytesOf(text)).toEqual(bytes));

  const invalid: Array<[number, string]> = [
    [1, ''],
    [2, '1.2.3'],
    [3, '1.2.3.4.5'],
    [4, '1.2.3.256'],
    [5, '01.2.3.4'],
    [6, '1.2.3.-4'],
    [7, ' 1.2.3.4'],
    [8, '1.2.3.4 '],
    [9, ':::'],
    [10, '1::2::3'],
    [11, '1:2:3:4:5:6:7:8:9'],
    [12, '1:2:3:4:5:6:7'],
    [13, '1:2:3:4:5:6:7:8::'],
    [14, '12345::'],
    [15, 'g::'],
    [16, ':1::'],
    [17, '1.2.3.4::'],
    [18, '::1.2.3.4:1'],
    [19, 'fe80::1%eth0'],
    [20, '[::1]'],
    [21, '1:2:3:4:5:6:7:1.2.3.4'],
    [22, '::1.2.3'],
    [23, '0x1.2.3.4'],
  ];
  test.each(invalid)('#%i %j is rejected', (_n, text) => {
    const parsed = parseIpAddress(text);
    expect(parsed.ok).toBe(false);
  });
});

describe('parsePrefix and maskPrefix', () => {
  const cases: Array<[number, string, string | false]> = [
    [1, '10.1.2.3/8', '10.0.0.0/8'],
    [2, '10.1.2.3/32', '10.1.2.3/32'],
    [3, '10.1.2.3/0', '0.0.0.0/0'],
    [4, '10.1.2.3', '10.1.2.3/32'],
    [5, '192.168.255.255/23', '192.168.254.0/23'],
    [6, 'fd00::1/64', 'fd00::/64'],
    [7, 'fd00:1234:5678::ffff/33', 'fd00:1234::/33'],
    [8, '::/0', '::/0'],
    [9, '::1', '::1/128'],
    [10, '10.0.0.0/33', false],
    [11, '::/129', false],
    [12, '10.0.0.0/', false],
    [13, '10.0.0.0/-1', false],
    [14, '10.0.0.0/1/2', false],
    [15, '10.0.0.0/ 8', false],
    [16, '10.0.0.0/0x8', false],
    [17, '/8', false],
  ];
  test.each(cases)('#%i %s → %s', (_n, text, expected) => {
    const parsed = parsePrefix(text);
    expect(parsed.ok ? formatPrefix(maskPrefix(parsed.value)) : false).toEqual(expected);
  });

  test('maskPrefix leaves its input alone', () => {
    const parsed = parsePrefix('10.1.2.3/8');
    if (!parsed.ok) throw new Error(parsed.error);
    maskPrefix(parsed.value);
    expect(formatPrefix(parsed.value)).toBe('10.1.2.3/8');
  });
});

describe('formatIpAddress', () => {
  const cases: Array<[number, string, string]> = [
    [1, '2001:DB8:0:0:0:0:2:1', '2001:db8::2:1'],
    [2, '2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // one zero group is not compressed
    [3, '2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run wins
    [4, '2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // the first of equal runs wins
    [5, '0:0:0:0:0:0:0:0', '::'],
    [6, '::ffff:10.0.0.1', '::ffff:10.0.0.1'],
    [7, '0001:0002::', '1:2::'],
  ];
  test.each(cases)('#%i %s → %s', (_n, text, expected) => {
    const parsed = parseIpAddress(text);
    expect(parsed.ok && formatIpAddress(parsed.value)).toBe(expected);
  });

  test('IPv6 text matches the WHATWG URL serializer (RFC 5952 rules) and parses back', () => {
    const groupValue = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
    fc.assert(
      fc.property(fc.array(groupValue, { minLength: 8, maxLength: 8 }), (groups) => {
        const bytes = new Uint8Array(groups.flatMap((g) => [g >> 8, g & 0xff]));
        const text = formatIpAddress(bytes);
        const reparsed = parseIpAddress(text);
        if (!reparsed.ok || !reparsed.value.every((b, i) => b === bytes[i])) return false;
        const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
        return mapped || new URL(`http://[${text}]/`).hostname === `[${text}]`;
      }),
      { seed: 5952, numRuns: 2000 },
    );
  });
});

describe('parseIpAddress: never throws, and agrees with node:net on what is an address', () => {
  const alphabet = fc.constantFrom(...'0123456789abcdefABCDEF:.'.split(''), '::', '1.2.3.4', 'ffff', '255');
  test('random strings over the address alphabet', () => {
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 20 }), (chunks) => {
        const text = chunks.join('');
        return parseIpAddress(text).ok === (isIP(text) !== 0);
      }),
      { seed: 4291, numRuns: 20000 },
    );
  });

  test('arbitrary unicode strings never throw', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 60 }), (text) => {
        const a = parseIpAddress(text);
        const p = parsePrefix(text);
        return typeof a.ok === 'boolean' && typeof p.ok === 'boolean';
      }),
      { seed: 1, numRuns: 5000 },
    );
  });
});
