// The crypto threads' ring (nodes/threads/ring.ts): claims move in ring order, and a position carries the
// lap, so a claimant that read CLAIMED a lap ago cannot take what lies at the same offset now.
import {
  CLAIMED,
  claim,
  copyIn,
  createRing,
  H_KIND,
  H_SIZE,
  KIND_SEAL,
  position,
  ringViews,
  WRITTEN,
} from '../../nodes/threads/ring.js';

const RECORD = 64;

/** A ring of four 64-byte records, all written and published: WRITTEN is back at offset 0, one lap on. */
function fullLap() {
  const ring = ringViews(createRing(4 * RECORD));
  for (let offset = 0; offset < ring.capacity; offset += RECORD) {
    ring.ints[offset / 4 + H_KIND] = KIND_SEAL;
    ring.ints[offset / 4 + H_SIZE] = RECORD;
  }
  Atomics.store(ring.control, WRITTEN, position(1, 0));
  return ring;
}

test('1. records are claimed once each, in ring order, then none until more are published', () => {
  const ring = fullLap();
  expect([0, 1, 2, 3, 4].map(() => claim(ring, false))).toEqual([0, 64, 128, 192, -1]);
  expect(Atomics.load(ring.control, CLAIMED)).toBe(position(1, 0));
});

test('2. a compare-and-exchange with CLAIMED as read a lap ago fails, though the offset is the same', () => {
  const ring = fullLap();
  const stale = Atomics.load(ring.control, CLAIMED); // offset 0, lap 0
  for (let i = 0; i < 4; i++) claim(ring, false);
  expect(Atomics.load(ring.control, CLAIMED) & 0xffff).toBe(stale & 0xffff);
  expect(Atomics.compareExchange(ring.control, CLAIMED, stale, position(0, RECORD))).not.toBe(stale);
  expect(claim(ring, false)).toBe(-1);
});

test('3. positions keep offset and lap apart, the lap counted modulo 1,024; a ring holds at most 4 MiB', () => {
  expect(position(1, 0)).not.toBe(position(0, 0));
  expect(position(1023, 4096)).not.toBe(position(0, 4096));
  expect(position(1024, 4096)).toBe(position(0, 4096));
  expect(() => createRing(4 * 1024 * 1024)).not.toThrow();
  expect(() => createRing(4 * 1024 * 1024 + 16)).toThrow(/at most 4194304 bytes/);
});

test('4. copyIn: sources at every alignment land whole, lengths changing from one to the next', () => {
  // A GRO batch's datagrams lie 1,452 bytes apart in the receive slab: every other one is 4 bytes off.
  const ring = ringViews(createRing(64 * 1024));
  const slab = new Uint8Array(16 * 1024).map((_, i) => (i * 7 + 3) & 0xff);
  const cases = [
    [0, 1452],
    [1452, 1452],
    [2904, 1452],
    [1, 33],
    [4, 1500],
    [6, 1452],
    [7, 0],
    [12, 4000], // the plain memory grows
    [20, 100],
    [28, 2148], // 2,048 more than the one before: the same place among the kept views
    [36, 100],
    [44, 1452], // shorter again, after the growth
  ] as const;
  for (const [start, length] of cases) {
    const at = 64 + ((start * 16) % 8192); // payloads are 16-byte aligned
    ring.bytes.fill(0xee, at - 8, at + length + 8);
    copyIn(ring, at, slab.subarray(start, start + length));
    expect(ring.bytes.subarray(at, at + length)).toEqual(slab.subarray(start, start + length));
    expect([
      ...ring.bytes.subarray(at - 8, at),
      ...ring.bytes.subarray(at + length, at + length + 8),
    ]).toEqual(new Array<number>(16).fill(0xee));
  }
});
