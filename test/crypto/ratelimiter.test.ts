import { RATELIMIT_BURST } from '../../crypto/constants.js';
import { endpointAddress } from '../../crypto/peer.js';
import { RateLimiter, sourceKey } from '../../crypto/ratelimiter.js';

const v4 = (...bytes: number[]) => Uint8Array.from(bytes);
const v6 = (...head: number[]) => {
  const address = new Uint8Array(16);
  address.set(head);
  return address;
};
const A = v4(192, 0, 2, 1);
const B = v4(192, 0, 2, 2);
const C6 = v6(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0xaa);
const C6_SAME_64 = v6(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0xbb, 0xcc);
const C6_OTHER_64 = v6(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 2);
const A_MAPPED = v6(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1);

describe('token bucket: 20 packets/s, burst 5 (kernel ratelimiter.c)', () => {
  // #, source, time (ms), expected. Run in order on one limiter.
  const table: [number, Uint8Array, number, boolean][] = [
    [1, A, 0, true],
    [2, A, 0, true],
    [3, A, 0, true],
    [4, A, 0, true],
    [5, A, 0, true], // burst of 5 spent
    [6, A, 0, false],
    [7, B, 0, true], // other sources have their own bucket
    [8, A, 49, false], // one packet costs 50 ms of credit
    [9, A, 50, true],
    [10, A, 50, false],
    [11, A, 150, true], // 100 ms refill = 2 tokens
    [12, A, 150, true],
    [13, A, 150, false],
    [14, A_MAPPED, 150, false], // an IPv4-mapped IPv6 address is that IPv4 source
    [15, C6, 150, true],
    [16, C6_SAME_64, 150, true], // IPv6 sources share a bucket per /64
    [17, C6_SAME_64, 150, true],
    [18, C6, 150, true],
    [19, C6, 150, true],
    [20, C6_SAME_64, 150, false],
    [21, C6_OTHER_64, 150, true],
    [22, A, 10_000, true], // long idle: refilled to the burst, not beyond
    [23, A, 10_000, true],
    [24, A, 10_000, true],
    [25, A, 10_000, true],
    [26, A, 10_000, true],
    [27, A, 10_000, false],
    [28, v4(1, 2, 3), 10_000, false], // not an address
  ];
  const limiter = new RateLimiter();
  test.each(table)('#%i', (_n, source, now, expected) => {
    expect(limiter.allow(source, now)).toBe(expected);
  });
});

describe('bounded memory', () => {
  test('idle sources are collected after 1 s', () => {
    const limiter = new RateLimiter();
    for (let i = 0; i < 100; i++) limiter.allow(v4(10, 0, 0, i), 0);
    expect(limiter.size).toBe(100);
    limiter.allow(A, 999);
    expect(limiter.size).toBe(101);
    limiter.allow(B, 1_000); // triggers collection: the 100 idle sources go, A stays
    expect(limiter.size).toBe(2);
  });

  test('a full table of active sources refuses new ones until they go idle', () => {
    const limiter = new RateLimiter({ maxEntries: 3 });
    expect([0, 1, 2].map((i) => limiter.allow(v4(10, 0, 0, i), 0))).toEqual([true, true, true]);
    expect(limiter.allow(A, 500)).toBe(false);
    expect(limiter.allow(v4(10, 0, 0, 0), 500)).toBe(true); // known sources still work
    expect(limiter.allow(A, 1_400)).toBe(true); // sources 1 and 2 idle ≥ 1 s were collected
    expect(limiter.size).toBeLessThanOrEqual(3);
  });

  test('many sources: the table never exceeds its bound', () => {
    const limiter = new RateLimiter({ maxEntries: 64 });
    for (let i = 0; i < 10_000; i++) {
      limiter.allow(v4(10, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff), i / 10);
      expect(limiter.size).toBeLessThanOrEqual(64);
    }
  });

  test('burst is configurable and defaults to the kernel value', () => {
    const limiter = new RateLimiter({ burst: 2 });
    expect([0, 0, 0].map((t) => limiter.allow(A, t))).toEqual([true, true, false]);
    expect(RATELIMIT_BURST).toBe(5);
  });
});

describe('sourceKey of an endpoint: the device’s per-turn initiation count', () => {
  const keyOf = (address: string) => sourceKey(endpointAddress({ address, port: 51820 }));

  test.each([
    [1, 'two IPv4 addresses', '192.0.2.1', '192.0.2.2', false],
    [2, 'one IPv6 /64', '2001:db8::1', '2001:db8::ffff:1:2:3', true],
    [3, 'two IPv6 /64s', '2001:db8::1', '2001:db8:0:1::1', false],
    [4, 'an IPv4 address and its mapped IPv6 form', '192.0.2.1', '::ffff:192.0.2.1', true],
  ])('%i. %s: same key %s', (_n, _what, first, second, same) => {
    expect(keyOf(first)).toBeDefined();
    expect(keyOf(first) === keyOf(second)).toBe(same);
  });

  test('5. not an address: no key', () => {
    expect(keyOf('not-an-address')).toBeUndefined();
  });

  test('6. an endpoint that carries its bytes is keyed by them, its text unread', () => {
    const bytes = Uint8Array.of(198, 51, 100, 7);
    const endpoint = { address: 'never read', port: 1, addressBytes: bytes };
    expect(endpointAddress(endpoint)).toBe(bytes);
    expect(sourceKey(endpointAddress(endpoint))).toBe(keyOf('198.51.100.7'));
  });
});
