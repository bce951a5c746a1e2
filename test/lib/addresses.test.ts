// src/lib/addresses.ts: the address plan the broker hands out and the node holds, in numbered tables.
import {
  nodeInterfaceAddresses,
  peerAllowedIps,
  POOL_PREFIXES as DEFAULT_POOL,
  poolMaxIndex,
  poolPrefixError,
  prefixesOverlap,
  tunnelAddresses,
} from '../../src/lib/addresses.js';

const poolAddress = (prefix: string, index: number) =>
  tunnelAddresses(index, {
    v4: prefix.includes(':') ? DEFAULT_POOL.v4 : prefix,
    v6: prefix.includes(':') ? prefix : DEFAULT_POOL.v6,
  })[prefix.includes(':') ? 'v6' : 'v4'];

describe('pool addresses', () => {
  const addresses: Array<[number, string, number, string]> = [
    [1, '10.64.0.0/10', 1, '10.64.0.1'],
    [2, '10.64.0.0/10', 256, '10.64.1.0'],
    [3, '10.64.0.0/10', 2 ** 22 - 2, '10.127.255.254'],
    [4, '172.16.8.0/22', 1023 - 1, '172.16.11.254'],
    [5, 'fd64::/64', 65536 + 5, 'fd64::1:5'],
    [6, 'fd00:ab::/96', 2, 'fd00:ab::2'],
  ];
  test.each(addresses)('#%i %s index %i → %s', (_n, pool, index, address) => {
    expect(poolAddress(pool, index)).toBe(address);
  });

  test('the node holds index 1 with the pool prefixes; peers get host prefixes', () => {
    expect(nodeInterfaceAddresses(DEFAULT_POOL)).toEqual(['10.64.0.1/10', 'fd64::1/64']);
    expect(nodeInterfaceAddresses({ v4: '172.16.8.0/22', v6: 'fd00:ab::/96' })).toEqual([
      '172.16.8.1/22',
      'fd00:ab::1/96',
    ]);
    expect(peerAllowedIps(2, DEFAULT_POOL)).toEqual(['10.64.0.2/32', 'fd64::2/128']);
  });

  test('the highest index fits both prefixes, IPv4 broadcast kept free', () => {
    expect(poolMaxIndex(DEFAULT_POOL)).toBe(2 ** 22 - 2);
    expect(poolMaxIndex({ v4: '172.16.8.0/22', v6: 'fd64::/64' })).toBe(1022);
    expect(poolMaxIndex({ v4: '10.64.0.0/10', v6: 'fd00::/120' })).toBe(255);
  });
});

describe('pool prefixes', () => {
  const checks: Array<[number, 'v4' | 'v6', string, string | null]> = [
    [1, 'v4', '10.64.0.0/10', null],
    [2, 'v6', 'fd64::/64', null],
    [3, 'v4', '10.64.0.1/10', '10.64.0.1/10 is not a network address (did you mean 10.64.0.0/10?)'],
    [4, 'v4', 'fd64::/64', 'fd64::/64 is not an IPv4 CIDR'],
    [5, 'v6', '10.0.0.0/8', '10.0.0.0/8 is not an IPv6 CIDR'],
    [6, 'v4', '10.0.0.0', '10.0.0.0 is not an IPv4 CIDR'],
    [7, 'v4', '10.0.0.0/30', '10.0.0.0/30 is too small: at most /29'],
    [8, 'v6', 'fd00::/126', 'fd00::/126 is too small: at most /125'],
    [9, 'v4', 'nope', 'nope is not an IPv4 CIDR'],
  ];
  test.each(checks)('#%i %s %s', (_n, family, text, error) => {
    expect(poolPrefixError(family, text)).toBe(error);
  });

  const overlaps: Array<[number, string, string, boolean]> = [
    [1, '10.64.0.0/10', '10.97.0.0/24', true],
    [2, '10.64.0.0/10', '10.0.0.0/8', true],
    [3, '10.64.0.0/10', '10.128.0.0/24', false],
    [4, '10.64.0.0/10', '10.63.255.255/32', false],
    [5, 'fd64::/64', 'fd64::5/128', true],
    [6, 'fd64::/64', 'fe80::/64', false],
    [7, '10.64.0.0/10', 'fd64::/64', false],
  ];
  test.each(overlaps)('overlap #%i %s ~ %s: %s', (_n, a, b, overlap) => {
    expect(prefixesOverlap(a, b)).toBe(overlap);
    expect(prefixesOverlap(b, a)).toBe(overlap);
  });
});
