// The SharedArrayBuffer ring between the main thread and one crypto thread (`--threads`, docs/ARCHITECTURE.md).
// The main thread writes records (a batch at a time) and publishes WRITTEN; the crypto thread works through
// them in order, in place, and publishes DONE; the main thread then reads the results from its last freed
// position up to DONE and frees the space. One writer per position, so Atomics.store/load suffice, and
// order in the ring is order on the wire: every peer is pinned to one ring, so no peer's packets reorder.
//
// A record: a header of HEADER_INTS int32s, then its payload, the whole rounded up to RECORD_ALIGN bytes. A
// record never wraps: when the tail is too short, a WRAP record (or nothing, when not even a header fits)
// sends the reader back to offset 0.

/** Control words at the start of the buffer: byte offsets into the data area. */
export const WRITTEN = 0;
export const DONE = 1;
const CONTROL_BYTES = 64;

export const HEADER_INTS = 8;
export const HEADER_BYTES = HEADER_INTS * 4;
const RECORD_ALIGN = 16;

/** Header fields (int32 offsets within a record). */
export const H_KIND = 0;
export const H_SIZE = 1; // whole record in bytes, header included
export const H_INDEX = 2; // the keypair's local index: which keys the record is for
export const H_LENGTH = 3; // payload bytes: plaintext (seal) or transport message (open)
export const H_COUNTER_HIGH = 4; // seal: the counter the main thread reserved
export const H_COUNTER_LOW = 5;
export const H_REMOTE_INDEX = 6; // seal and install: the receiver index the message carries
export const H_RESULT = 7; // written by the crypto thread: sealed length, plaintext length or a rejection

export const KIND_SEAL = 1; // payload: room for the whole transport message, the plaintext at its content
export const KIND_OPEN = 2; // payload: the transport message, opened in place
export const KIND_INSTALL = 3; // payload: send key then receive key, wiped by the crypto thread on reading
export const KIND_RETIRE = 4; // the keypair left service: wipe its keys
export const KIND_WRAP = 5; // the rest of the data area is unused; the next record is at offset 0

export const RESULT_DECRYPT_FAILED = -1;
export const RESULT_UNKNOWN_KEYPAIR = -2;

export const KEYS_BYTES = 64;

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

export function createRing(capacity: number): SharedArrayBuffer {
  return new SharedArrayBuffer(CONTROL_BYTES + Math.ceil(capacity / RECORD_ALIGN) * RECORD_ALIGN);
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
