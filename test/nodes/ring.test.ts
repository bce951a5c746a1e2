// The crypto threads' ring (nodes/threads/ring.ts): claims move in ring order, and a position carries the
// lap, so a claimant that read CLAIMED a lap ago cannot take what lies at the same offset now.
import {
  CLAIMED,
  claim,
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
