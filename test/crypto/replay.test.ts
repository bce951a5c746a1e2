import fc from 'fast-check';
import { REPLAY_WINDOW_SIZE, ReplayFilter } from '../../crypto/replay.js';

const W = BigInt(REPLAY_WINDOW_SIZE);
const T_LIM = W + 1n;
const R = (1n << 64n) - (1n << 13n) - 1n; // wireguard-go's REJECT_AFTER_MESSAGES

// docs/WIREGUARD.md §5: the list shared by the kernel's selftest/counter.c and wireguard-go's replay_test.go,
// run in order on one fresh filter.
const table: Array<[number, bigint, boolean]> = [
  [1, 0n, true],
  [2, 1n, true],
  [3, 1n, false],
  [4, 9n, true],
  [5, 8n, true],
  [6, 7n, true],
  [7, 7n, false],
  [8, T_LIM, true],
  [9, T_LIM - 1n, true],
  [10, T_LIM - 1n, false],
  [11, T_LIM - 2n, true],
  [12, 2n, true],
  [13, 2n, false],
  [14, T_LIM + 16n, true],
  [15, 3n, false],
  [16, T_LIM + 16n, false],
  [17, 4n * T_LIM, true],
  [18, 4n * T_LIM - (T_LIM - 1n), true],
  [19, 10n, false],
  [20, 4n * T_LIM - T_LIM, false],
  [21, 4n * T_LIM - (T_LIM + 1n), false],
  [22, 4n * T_LIM - (T_LIM - 2n), true],
  [23, 4n * T_LIM + 1n - T_LIM, false],
  [24, 0n, false],
  [25, R, false],
  [26, R - 1n, true],
  [27, R, false],
  [28, R - 1n, false],
  [29, R - 2n, true],
  [30, R + 1n, false],
  [31, R + 2n, false],
  [32, R - 2n, false],
  [33, R - 3n, true],
  [34, 0n, false],
];

describe('replay window: numbered table of §5 (one filter, in order)', () => {
  const filter = new ReplayFilter();
  test.each(table)('#%i counter %s → %s', (_n, counter, expected) => {
    expect(filter.validateCounter(counter)).toBe(expected);
  });
});

function range(from: bigint, to: bigint): bigint[] {
  const step = from <= to ? 1n : -1n;
  const out: bigint[] = [];
  for (let c = from; c !== to + step; c += step) out.push(c);
  return out;
}

// Each sequence: [counters expected accepted in order, then [counter, expected] follow-ups].
const sequences: Array<[string, bigint[], Array<[bigint, boolean]>]> = [
  [
    '(a) 1..W, then 0 ✔, 0 ✘',
    range(1n, W),
    [
      [0n, true],
      [0n, false],
    ],
  ],
  [
    '(b) 2..W+1, then 1 ✔, 0 ✘',
    range(2n, W + 1n),
    [
      [1n, true],
      [0n, false],
    ],
  ],
  ['(c) W down to 0', range(W, 0n), []],
  ['(d) W+1 down to 1, then 0 ✘', range(W + 1n, 1n), [[0n, false]]],
  [
    '(e) W down to 1, then W+1 ✔, 0 ✘',
    range(W, 1n),
    [
      [W + 1n, true],
      [0n, false],
    ],
  ],
  [
    '(f) W down to 1, then 0 ✔, W+1 ✔',
    range(W, 1n),
    [
      [0n, true],
      [W + 1n, true],
    ],
  ],
];

describe('replay window: sequences (a)–(f) of §5, each on a fresh filter', () => {
  test.each(sequences)('%s', (_name, accepted, followUps) => {
    const filter = new ReplayFilter();
    const rejected = accepted.filter((c) => !filter.validateCounter(c));
    expect(rejected).toEqual([]);
    expect(followUps.map(([c]) => filter.validateCounter(c))).toEqual(followUps.map(([, ok]) => ok));
  });
});

describe('replay window: halves and 32-bit boundaries', () => {
  test('validate(high, low) agrees with validateCounter across the 2^32 boundary', () => {
    const a = new ReplayFilter();
    const b = new ReplayFilter();
    const counters = [0xfffffff0n, 0xffffffffn, 0x1_0000_0000n, 0xfffffffen, 0x1_0000_0000n, 0x1_0000_2000n];
    const viaBigint = counters.map((c) => a.validateCounter(c));
    const viaHalves = counters.map((c) => b.validate(Number(c >> 32n), Number(c & 0xffffffffn)));
    expect(viaHalves).toEqual(viaBigint);
    expect(viaBigint).toEqual([true, true, true, true, false, true]);
  });

  test('a jump of more than the window across the boundary forgets old counters', () => {
    const filter = new ReplayFilter();
    expect(filter.validateCounter(0xffffff00n)).toBe(true);
    expect(filter.validateCounter(0x1_0000_0000n + W)).toBe(true);
    expect(filter.validateCounter(0xffffff00n)).toBe(false); // too old now
    expect(filter.validateCounter(0x1_0000_0000n + 1n)).toBe(true); // inside the window, bit was cleared
  });

  test('reset makes a used filter fresh', () => {
    const filter = new ReplayFilter();
    expect(filter.validateCounter(5n)).toBe(true);
    expect(filter.validateCounter(100000n)).toBe(true);
    filter.reset();
    expect(filter.validateCounter(5n)).toBe(true);
    expect(filter.validateCounter(5n)).toBe(false);
  });

  test('out-of-range bigints are rejected', () => {
    const filter = new ReplayFilter();
    expect(filter.validateCounter(-1n)).toBe(false);
    expect(filter.validateCounter(1n << 64n)).toBe(false);
  });
});

// wireguard-go's ValidateCounter transcribed with bigint arithmetic: the halves-based filter must agree.
class BigintReference {
  private readonly ring = new Array<bigint>(128).fill(0n);
  private last = 0n;
  validate(counter: bigint): boolean {
    if (counter >= R) return false;
    let indexBlock = counter >> 6n;
    if (counter > this.last) {
      const current = this.last >> 6n;
      let diff = indexBlock - current;
      if (diff > 128n) diff = 128n;
      for (let i = current + 1n; i <= current + diff; i++) this.ring[Number(i & 127n)] = 0n;
      this.last = counter;
    } else if (this.last - counter > W) {
      return false;
    }
    indexBlock &= 127n;
    const old = this.ring[Number(indexBlock)]!;
    const updated = old | (1n << (counter & 63n));
    this.ring[Number(indexBlock)] = updated;
    return old !== updated;
  }
}

describe('replay window: differential against a bigint transcription of wireguard-go', () => {
  test('random walks near 0, near 2^32 and near R agree', () => {
    const bases = [0n, 0xffff_0000n, R - 20000n];
    fc.assert(
      fc.property(
        fc.constantFrom(...bases),
        fc.array(fc.integer({ min: 0, max: 30000 }), { maxLength: 300 }),
        (base, offsets) => {
          const filter = new ReplayFilter();
          const reference = new BigintReference();
          for (const offset of offsets) {
            const counter = base + BigInt(offset);
            if (filter.validateCounter(counter) !== reference.validate(counter)) return false;
          }
          return true;
        },
      ),
      { seed: 6479, numRuns: 300 },
    );
  });
});
