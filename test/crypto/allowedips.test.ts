import fc from 'fast-check';
import { AllowedIps } from '../../crypto/allowedips.js';
import { type IpPrefix, parseIpAddress, parsePrefix } from '../../crypto/ipaddr.js';

function prefix(text: string): IpPrefix {
  const parsed = parsePrefix(text);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

function address(text: string): Uint8Array {
  const parsed = parseIpAddress(text);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

// The deliberately naive reference (wireguard-go's SlowRouter): a list scanned in full for the longest
// matching prefix; insertion of an existing prefix re-points it.
class SlowRouter<T> {
  private readonly entries: Array<{ bits: Uint8Array; cidr: number; peer: T }> = [];
  insert(p: IpPrefix, peer: T): void {
    const existing = this.entries.find((e) => e.cidr === p.cidr && naiveContains(e.bits, e.cidr, p.address));
    if (existing && existing.bits.length === p.address.length) existing.peer = peer;
    else this.entries.push({ bits: p.address, cidr: p.cidr, peer });
  }
  removeByPeer(peer: T): void {
    for (let i = this.entries.length - 1; i >= 0; i--)
      if (this.entries[i]!.peer === peer) this.entries.splice(i, 1);
  }
  lookup(ip: Uint8Array): T | undefined {
    let best: { cidr: number; peer: T } | undefined;
    for (const e of this.entries) {
      if (e.bits.length === ip.length && naiveContains(e.bits, e.cidr, ip) && (!best || e.cidr > best.cidr))
        best = e;
    }
    return best?.peer;
  }
}

// Bit by bit, on purpose nothing like the trie's byte arithmetic.
function naiveContains(bits: Uint8Array, cidr: number, ip: Uint8Array): boolean {
  for (let i = 0; i < cidr; i++) {
    const bit = (b: Uint8Array) => (b[i >> 3]! >> (7 - (i % 8))) & 1;
    if (bit(bits) !== bit(ip)) return false;
  }
  return true;
}

// mulberry32: a small seeded PRNG so the differential test is reproducible.
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('allowed IPs: differential against a naive linear scan (wireguard-go allowedips_rand_test)', () => {
  const NUMBER_OF_PEERS = 100;
  const NUMBER_OF_PREFIXES = 250;
  const NUMBER_OF_TESTS = 10000;

  test.each([
    [4, 0xa11],
    [16, 0xb22],
  ])('%i-byte addresses, seed %i', (size, seed) => {
    const random = prng(seed);
    const randomBytes = () => Uint8Array.from({ length: size }, () => Math.floor(random() * 256));
    const peers = Array.from({ length: NUMBER_OF_PEERS }, (_, i) => ({ id: i }));
    const trie = new AllowedIps<{ id: number }>();
    const slow = new SlowRouter<{ id: number }>();
    for (let i = 0; i < NUMBER_OF_PREFIXES; i++) {
      const p = { address: randomBytes(), cidr: Math.floor(random() * (size * 8 + 1)) };
      const peer = peers[Math.floor(random() * NUMBER_OF_PEERS)]!;
      trie.insert(p, peer);
      slow.insert({ address: maskBits(p.address, p.cidr), cidr: p.cidr }, peer);
    }
    const mismatches: string[] = [];
    const check = () => {
      for (let i = 0; i < NUMBER_OF_TESTS; i++) {
        const ip = randomBytes();
        if (trie.lookup(ip) !== slow.lookup(ip)) mismatches.push(ip.join('.'));
      }
    };
    check();
    // Then remove half the peers and compare again, so removal's restructuring is covered too.
    for (const peer of peers.filter((p) => p.id % 2 === 0)) {
      trie.removeByPeer(peer);
      slow.removeByPeer(peer);
    }
    check();
    expect(mismatches).toEqual([]);
  });

  test('random short prefixes (dense overlaps) with random removals agree (fast-check)', () => {
    const op = fc.record({
      remove: fc.boolean(),
      peer: fc.integer({ min: 0, max: 5 }),
      bytes: fc.uint8Array({ minLength: 4, maxLength: 4 }),
      cidr: fc.integer({ min: 0, max: 12 }),
    });
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 60 }),
        fc.array(fc.uint8Array({ minLength: 4, maxLength: 4 })),
        (ops, ips) => {
          const peers = Array.from({ length: 6 }, (_, id) => ({ id }));
          const trie = new AllowedIps<{ id: number }>();
          const slow = new SlowRouter<{ id: number }>();
          for (const o of ops) {
            const peer = peers[o.peer]!;
            if (o.remove) {
              trie.removeByPeer(peer);
              slow.removeByPeer(peer);
            } else {
              trie.insert({ address: o.bytes, cidr: o.cidr }, peer);
              slow.insert({ address: maskBits(o.bytes, o.cidr), cidr: o.cidr }, peer);
            }
          }
          return ips.every((ip) => trie.lookup(ip) === slow.lookup(ip));
        },
      ),
      { seed: 42, numRuns: 500 },
    );
  });
});

function maskBits(bytes: Uint8Array, cidr: number): Uint8Array {
  return bytes.map((b, i) => {
    const keep = Math.max(0, Math.min(8, cidr - i * 8));
    return b & (0xff << (8 - keep));
  });
}

describe('allowed IPs: numbered edge cases', () => {
  type Step =
    | ['insert', string, string]
    | ['remove', string, string | undefined, boolean]
    | ['removeByPeer', string]
    | ['lookup', string, string | undefined]
    | ['prefixes', string, string[]];

  const cases: Array<[number, string, Step[]]> = [
    [
      1,
      'empty table',
      [
        ['lookup', '1.2.3.4', undefined],
        ['lookup', '::1', undefined],
      ],
    ],
    [
      2,
      '/0 catches everything of its family only',
      [
        ['insert', '0.0.0.0/0', 'a'],
        ['lookup', '255.255.255.255', 'a'],
        ['lookup', '0.0.0.0', 'a'],
        ['lookup', '::', undefined],
        ['insert', '::/0', 'b'],
        ['lookup', 'ffff::ffff', 'b'],
        ['lookup', '::ffff:1.2.3.4', 'b'],
      ],
    ],
    [
      3,
      '/32 and /128 host routes beat shorter prefixes, neighbours do not match',
      [
        ['insert', '10.0.0.0/8', 'a'],
        ['insert', '10.0.0.1/32', 'b'],
        ['lookup', '10.0.0.1', 'b'],
        ['lookup', '10.0.0.2', 'a'],
        ['insert', 'fd00::1/128', 'c'],
        ['lookup', 'fd00::1', 'c'],
        ['lookup', 'fd00::2', undefined],
      ],
    ],
    [
      4,
      'overlapping prefixes: longest wins, whichever order they came in',
      [
        ['insert', '192.168.4.0/24', 'c'],
        ['insert', '192.168.0.0/16', 'b'],
        ['insert', '192.0.0.0/8', 'a'],
        ['insert', '192.168.4.128/25', 'd'],
        ['lookup', '192.168.4.200', 'd'],
        ['lookup', '192.168.4.20', 'c'],
        ['lookup', '192.168.5.1', 'b'],
        ['lookup', '192.1.1.1', 'a'],
        ['lookup', '193.0.0.1', undefined],
      ],
    ],
    [
      5,
      'host bits are masked on insert and in the listing',
      [
        ['insert', '10.9.8.7/16', 'a'],
        ['lookup', '10.9.0.1', 'a'],
        ['prefixes', 'a', ['10.9.0.0/16']],
      ],
    ],
    [
      6,
      'reinserting a prefix moves it to the new peer',
      [
        ['insert', '10.0.0.0/24', 'a'],
        ['insert', '10.0.1.0/24', 'a'],
        ['insert', '10.0.0.0/24', 'b'],
        ['lookup', '10.0.0.5', 'b'],
        ['prefixes', 'a', ['10.0.1.0/24']],
        ['prefixes', 'b', ['10.0.0.0/24']],
        ['removeByPeer', 'a'],
        ['lookup', '10.0.0.5', 'b'],
        ['lookup', '10.0.1.5', undefined],
      ],
    ],
    [
      7,
      'removing a prefix uncovers the shorter one; removing by the wrong peer does nothing',
      [
        ['insert', '10.0.0.0/8', 'a'],
        ['insert', '10.1.0.0/16', 'b'],
        ['remove', '10.1.0.0/16', 'a', false],
        ['lookup', '10.1.2.3', 'b'],
        ['remove', '10.1.0.0/16', 'b', true],
        ['lookup', '10.1.2.3', 'a'],
        ['remove', '10.1.0.0/16', undefined, false],
        ['remove', '10.0.0.0/8', undefined, true],
        ['lookup', '10.1.2.3', undefined],
        ['prefixes', 'a', []],
      ],
    ],
    [
      8,
      'removing a join point keeps both sides reachable',
      [
        ['insert', '10.0.0.0/24', 'a'],
        ['insert', '10.0.1.0/24', 'b'],
        ['insert', '10.0.0.0/23', 'c'],
        ['insert', '10.0.2.0/24', 'd'],
        ['remove', '10.0.0.0/23', undefined, true],
        ['lookup', '10.0.0.1', 'a'],
        ['lookup', '10.0.1.1', 'b'],
        ['lookup', '10.0.2.1', 'd'],
        ['removeByPeer', 'a'],
        ['lookup', '10.0.0.1', undefined],
        ['lookup', '10.0.1.1', 'b'],
        ['lookup', '10.0.2.1', 'd'],
      ],
    ],
    [
      9,
      'removeByPeer removes all of a peer in both families and nothing else',
      [
        ['insert', '10.0.0.0/8', 'a'],
        ['insert', 'fd00::/8', 'a'],
        ['insert', '10.1.0.0/16', 'b'],
        ['insert', '::/0', 'b'],
        ['prefixes', 'a', ['10.0.0.0/8', 'fd00::/8']],
        ['removeByPeer', 'a'],
        ['prefixes', 'a', []],
        ['lookup', '10.2.0.1', undefined],
        ['lookup', '10.1.0.1', 'b'],
        ['lookup', 'fd00::1', 'b'],
      ],
    ],
    [
      10,
      'the same bits in both families are different prefixes',
      [
        ['insert', '1.2.3.4/32', 'a'],
        ['insert', '102:304::/32', 'b'],
        ['lookup', '1.2.3.4', 'a'],
        ['lookup', '102:304::1', 'b'],
        ['prefixes', 'b', ['102:304::/32']],
      ],
    ],
  ];

  test.each(cases)('#%i %s', (_n, _title, steps) => {
    const trie = new AllowedIps<string>();
    for (const step of steps) {
      switch (step[0]) {
        case 'insert':
          trie.insert(prefix(step[1]), step[2]);
          break;
        case 'remove':
          expect([step, trie.remove(prefix(step[1]), step[2])]).toEqual([step, step[3]]);
          break;
        case 'removeByPeer':
          trie.removeByPeer(step[1]);
          break;
        case 'lookup':
          expect([step, trie.lookup(address(step[1]))]).toEqual([step, step[2]]);
          break;
        case 'prefixes':
          expect([step, trie.prefixesOf(step[1])]).toEqual([step, step[2]]);
          break;
      }
    }
  });
});

describe('allowed IPs: lookups straight from packet headers', () => {
  test('lookupV4/lookupV6 read the address at an offset; out-of-range offsets find nothing', () => {
    const trie = new AllowedIps<string>();
    trie.insert(prefix('10.0.0.0/8'), 'v4');
    trie.insert(prefix('fd00::/16'), 'v6');
    const ipv4Header = new Uint8Array(20);
    ipv4Header.set([10, 1, 2, 3], 16);
    const ipv6Header = new Uint8Array(40);
    ipv6Header.set(address('fd00::9'), 24);
    expect(trie.lookupV4(ipv4Header, 16)).toBe('v4');
    expect(trie.lookupV4(ipv4Header, 12)).toBeUndefined();
    expect(trie.lookupV6(ipv6Header, 24)).toBe('v6');
    expect(trie.lookupV4(ipv4Header, 17)).toBeUndefined();
    expect(trie.lookupV6(ipv6Header, 25)).toBeUndefined();
    expect(trie.lookup(new Uint8Array(5))).toBeUndefined();
  });

  test('the same address looked up again follows every change to the table (insert, remove, removeByPeer)', () => {
    const trie = new AllowedIps<string>();
    const header = new Uint8Array(20);
    header.set([10, 1, 2, 3], 16);
    const again = () => trie.lookupV4(header, 16);
    expect(again()).toBeUndefined();
    trie.insert(prefix('10.0.0.0/8'), 'wide');
    expect([again(), again()]).toEqual(['wide', 'wide']);
    trie.insert(prefix('10.1.2.3/32'), 'host');
    expect(again()).toBe('host');
    expect(trie.lookupV4(Uint8Array.of(10, 9, 9, 9), 0)).toBe('wide'); // another address in between
    expect(again()).toBe('host');
    trie.remove(prefix('10.1.2.3/32'));
    expect(again()).toBe('wide');
    trie.removeByPeer('wide');
    expect(again()).toBeUndefined();
    trie.insert(prefix('10.1.0.0/16'), 'net');
    header[19] = 4; // the same buffer, another address
    expect(again()).toBe('net');
  });

  test('a malformed prefix object is a programmer error', () => {
    const trie = new AllowedIps<string>();
    expect(() => trie.insert({ address: new Uint8Array(5), cidr: 8 }, 'a')).toThrow(RangeError);
    expect(() => trie.insert({ address: new Uint8Array(4), cidr: 33 }, 'a')).toThrow(RangeError);
  });
});
