// The SharedArrayBuffer ring between the main thread and one crypto thread (`--threads`, docs/ARCHITECTURE.md).
// The main thread writes records (a turn's batch at a time) and publishes WRITTEN. Records are then claimed
// one at a time, in ring order, by whichever of the two threads gets there first (CLAIMED moves by
// compare-and-exchange): the crypto thread when it is awake, and the main thread itself as soon as it has
// published, so a thread that is asleep or has no core to run on costs a turn nothing. Each claimant seals
// or opens its record in place and stores its result (H_RESULT stops being RESULT_PENDING); the main thread
// reads results back in ring order from its last freed position, stopping at the first still pending, and
// frees the space. Order in the ring is order on the wire: every peer is pinned to one ring, so no peer's
// packets reorder. Key records (INSTALL, RETIRE) are claimed by the crypto thread only: they change its
// own key table, which must follow ring order.
//
// WRITTEN and CLAIMED are positions: a byte offset in the data area, with the number of times the ring
// wrapped (mod 2^LAP_BITS) above it. With bare offsets a claimant that read CLAIMED and the header there,
// then stalled while the other side went once round the ring and back to the same offset, would win its
// compare-and-exchange with a header a lap old (a record of another size, or one still being written).
//
// A record: a header of HEADER_INTS int32s, then its payload, the whole rounded up to RECORD_ALIGN bytes. A
// record never wraps: when the tail is too short, a WRAP record (or nothing, when not even a header fits)
// sends the reader back to offset 0.

import type { TransportAEAD } from '../../crypto/aead.js';
import {
  openTransport,
  sealTransportInPlace,
  transportCounterHigh,
  transportCounterLow,
} from '../../crypto/messages.js';

/** Control words at the start of the buffer (int32 indices). */
export const WRITTEN = 0; // position after the last published record
export const CLAIMED = 1; // position of the next record nobody has claimed
export const PROGRESS = 2; // passes the crypto thread finished: what the main thread waits on
const CONTROL_BYTES = 64;

export const HEADER_INTS = 8;
export const HEADER_BYTES = HEADER_INTS * 4;
export const RECORD_ALIGN = 16;

/** Header fields (int32 offsets within a record). */
export const H_KIND = 0;
export const H_SIZE = 1; // whole record in bytes, header included
export const H_INDEX = 2; // the keypair's local index: which keys the record is for
export const H_LENGTH = 3; // payload bytes: plaintext (seal) or transport message (open)
export const H_COUNTER_HIGH = 4; // seal: the counter the main thread reserved
export const H_COUNTER_LOW = 5;
export const H_REMOTE_INDEX = 6; // seal and install: the receiver index the message carries
export const H_RESULT = 7; // written by the claimant: sealed length, plaintext length or a rejection

export const KIND_SEAL = 1; // payload: room for the whole transport message, the plaintext at its content
export const KIND_OPEN = 2; // payload: the transport message, opened in place
export const KIND_INSTALL = 3; // payload: send key then receive key, wiped by the crypto thread on reading
export const KIND_RETIRE = 4; // the keypair left service: wipe its keys
export const KIND_WRAP = 5; // the rest of the data area is unused; the next record is at offset 0

export const RESULT_DECRYPT_FAILED = -1;
export const RESULT_UNKNOWN_KEYPAIR = -2;
export const RESULT_PENDING = -3; // written with the record: nobody has finished it yet

export const KEYS_BYTES = 64;

const OFFSET_BITS = 22; // data areas up to 4 MiB
const OFFSET_MASK = (1 << OFFSET_BITS) - 1;
const LAP_BITS = 32 - OFFSET_BITS; // a stale claim needs 1,024 laps to pass for a fresh one
const LAP_MASK = (1 << LAP_BITS) - 1;

/** A ring position as WRITTEN and CLAIMED hold it (an int32, negative from lap 512 on). */
export const position = (lap: number, offset: number): number => ((lap & LAP_MASK) << OFFSET_BITS) | offset;

const lapOf = (position: number): number => (position >>> OFFSET_BITS) & LAP_MASK;

export interface RingViews {
  readonly control: Int32Array;
  readonly ints: Int32Array;
  readonly bytes: Uint8Array;
  /** Bytes in the data area. */
  readonly capacity: number;
}

export function ringViews(buffer: SharedArrayBuffer): RingViews {
  const capacity = buffer.byteLength - CONTROL_BYTES;
  return {
    control: new Int32Array(buffer, 0, CONTROL_BYTES / 4),
    ints: new Int32Array(buffer, CONTROL_BYTES, capacity / 4),
    bytes: new Uint8Array(buffer, CONTROL_BYTES, capacity),
    capacity,
  };
}

// Plain memory a misaligned source passes through on its way into a ring (copyIn): the main thread's. The
// view of its first `length` bytes is kept by length (a bulk flow's messages are of a few lengths), so no
// view is made per message.
const STAGED_LENGTHS = 2048; // kept under length % STAGED_LENGTHS: every message length up to the MTU's
let bounce = new Uint8Array(STAGED_LENGTHS);
let staged = new Array<Uint8Array>(STAGED_LENGTHS).fill(bounce.subarray(0, 0));

/**
 * Copies `source` into the ring's data at byte `at`, which is 8-byte aligned (every payload is, and so is
 * what the payloads carry at 16). V8 copies into shared memory word by word only when both sides have the
 * same alignment, and byte by byte otherwise, about 4× slower for a full-sized packet: a misaligned source
 * (the datagrams of a GRO batch lie 1,452 bytes apart) is copied into plain memory first, where alignment
 * costs nothing, and from there word by word.
 */
export function copyIn(ring: RingViews, at: number, source: Uint8Array): void {
  if ((source.byteOffset & 7) === 0) {
    ring.bytes.set(source, at);
    return;
  }
  const length = source.length;
  if (bounce.length < length) {
    bounce = new Uint8Array(Math.max(length, 2 * bounce.length)); // doubling: lengths that keep rising
    staged = new Array<Uint8Array>(STAGED_LENGTHS).fill(bounce.subarray(0, 0));
  }
  const key = length % STAGED_LENGTHS;
  let view = staged[key]!;
  if (view.length !== length) view = staged[key] = bounce.subarray(0, length);
  view.set(source);
  ring.bytes.set(view, at);
}

export function createRing(capacity: number): SharedArrayBuffer {
  const data = Math.ceil(capacity / RECORD_ALIGN) * RECORD_ALIGN;
  if (data > OFFSET_MASK + 1) throw new RangeError(`a ring holds at most ${OFFSET_MASK + 1} bytes`);
  return new SharedArrayBuffer(CONTROL_BYTES + data);
}

export const recordSize = (payload: number): number =>
  Math.ceil((HEADER_BYTES + payload) / RECORD_ALIGN) * RECORD_ALIGN;

/**
 * Where the next record starts after one of `size` bytes at `start`: the reader's and the writer's one rule
 * for "a header no longer fits here" (then the ring wraps to 0).
 */
export const recordEnd = (capacity: number, start: number, size: number): number =>
  capacity - (start + size) < HEADER_BYTES ? 0 : start + size;

/** Where the record after the one at `offset` starts, following a wrap. */
export function nextRecord(ring: RingViews, offset: number): number {
  return recordEnd(ring.capacity, offset, ring.ints[offset / 4 + H_SIZE]!);
}

/** The reader's view of a record's start: a WRAP record, or a tail too short for a header, means offset 0. */
export function recordAt(ring: RingViews, offset: number): number {
  if (ring.capacity - offset < HEADER_BYTES) return 0;
  return ring.ints[offset / 4 + H_KIND] === KIND_WRAP ? 0 : offset;
}

/**
 * Claims the next published record: its byte offset, or -1 when every published record is claimed (or,
 * unless `keyRecords`, when the next one is an INSTALL or RETIRE, which only the crypto thread may take).
 * The bound is WRITTEN as it is now: the other claimant may have claimed up to it already.
 */
export function claim(ring: RingViews, keyRecords: boolean): number {
  const { control, ints } = ring;
  for (;;) {
    const claimed = Atomics.load(control, CLAIMED);
    if (claimed === Atomics.load(control, WRITTEN)) return -1;
    const at = claimed & OFFSET_MASK;
    const start = recordAt(ring, at);
    const lap = start < at ? lapOf(claimed) + 1 : lapOf(claimed);
    const kind = ints[start / 4 + H_KIND];
    if (!keyRecords && (kind === KIND_INSTALL || kind === KIND_RETIRE)) return -1;
    const next = nextRecord(ring, start);
    const after = position(next <= start ? lap + 1 : lap, next);
    if (Atomics.compareExchange(control, CLAIMED, claimed, after) === claimed) return start;
  }
}

/** A claimant's last word on a record: its payload writes happen before the reader sees the result. */
export function finish(ring: RingViews, record: number, result: number): void {
  Atomics.store(ring.ints, record + H_RESULT, result);
}

/** Seals a SEAL record in place (the plaintext already lies where the message's content goes): its length. */
export function sealRecord(ring: RingViews, offset: number, cipher: TransportAEAD, mtu: number): number {
  const { ints, bytes } = ring;
  const record = offset / 4;
  return sealTransportInPlace(
    cipher,
    // Its int32 bit pattern: a small integer for V8 where the uint32 would be a new heap number per call.
    ints[record + H_REMOTE_INDEX]!,
    ints[record + H_COUNTER_HIGH]! >>> 0,
    ints[record + H_COUNTER_LOW]! >>> 0,
    ints[record + H_LENGTH]!,
    mtu,
    bytes,
    offset + HEADER_BYTES,
  );
}

/** Opens an OPEN record's message in place: its plaintext length, or RESULT_DECRYPT_FAILED. */
export function openRecord(ring: RingViews, offset: number, cipher: TransportAEAD): number {
  const { ints, bytes } = ring;
  const payload = offset + HEADER_BYTES;
  const high = transportCounterHigh(bytes, payload);
  const low = transportCounterLow(bytes, payload);
  const opened = openTransport(cipher, bytes, high, low, payload, ints[offset / 4 + H_LENGTH]!);
  return opened < 0 ? RESULT_DECRYPT_FAILED : opened;
}
