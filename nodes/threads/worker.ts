// A crypto thread (nodes/threads/pool.ts starts it): seals and opens the transport messages of the peers
// pinned to it, in place in its ring, in the order the main thread wrote them. It holds the keys of those
// peers' keypairs (handed over in INSTALL records, whose bytes it wipes at once). The replay windows stay
// with the engine's keypairs on the main thread, which checks each authenticated message's counter as it
// reads the results back, in arrival order (and opens the messages it handles itself with the same window:
// nodes/threads/pool.ts). It does no I/O and decides nothing else.
import { writeFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';

import { TRANSPORT_CONTENT_OFFSET } from '../../crypto/constants.js';
import type { TransportAEAD } from '../../crypto/aead.js';
import {
  openTransport,
  sealTransport,
  transportCounterHigh,
  transportCounterLow,
} from '../../crypto/messages.js';
import { createTransportCipher } from '../../crypto/primitives.js';
import {
  DONE,
  H_COUNTER_HIGH,
  H_COUNTER_LOW,
  H_INDEX,
  H_KIND,
  H_LENGTH,
  H_REMOTE_INDEX,
  H_RESULT,
  HEADER_BYTES,
  KEYS_BYTES,
  KIND_INSTALL,
  KIND_OPEN,
  KIND_RETIRE,
  KIND_SEAL,
  nextRecord,
  recordAt,
  RESULT_DECRYPT_FAILED,
  RESULT_UNKNOWN_KEYPAIR,
  ringViews,
  WRITTEN,
} from './ring.js';

export interface CryptoThreadData {
  ring: SharedArrayBuffer;
  mtu: number;
  /** The thread's name for ps, top -H and the benchmark's per-thread CPU (at most 15 bytes). */
  name: string;
}

interface ThreadKeypair {
  readonly send: TransportAEAD;
  readonly receive: TransportAEAD;
}

const { ring: buffer, mtu, name } = workerData as CryptoThreadData;
const ring = ringViews(buffer);
const { control, ints, bytes } = ring;
const keypairs = new Map<number, ThreadKeypair>();

function install(record: number, payload: number): void {
  const keys = bytes.subarray(payload, payload + KEYS_BYTES);
  retire(record); // the main thread retires an index before reusing it; this only makes it certain
  keypairs.set(ints[record + H_INDEX]!, {
    send: createTransportCipher(keys.subarray(0, 32)),
    receive: createTransportCipher(keys.subarray(32, 64)),
  });
  keys.fill(0);
}

function retire(record: number): void {
  const index = ints[record + H_INDEX]!;
  const keypair = keypairs.get(index);
  if (keypair === undefined) return;
  keypair.send.wipe();
  keypair.receive.wipe();
  keypairs.delete(index);
}

function seal(record: number, payload: number): void {
  const keypair = keypairs.get(ints[record + H_INDEX]!);
  if (keypair === undefined) {
    ints[record + H_RESULT] = RESULT_UNKNOWN_KEYPAIR;
    return;
  }
  const length = ints[record + H_LENGTH]!;
  const content = payload + TRANSPORT_CONTENT_OFFSET;
  // The plaintext already sits where the message's content goes: sealTransport seals it where it lies.
  ints[record + H_RESULT] = sealTransport(
    keypair.send,
    ints[record + H_REMOTE_INDEX]! >>> 0,
    ints[record + H_COUNTER_HIGH]! >>> 0,
    ints[record + H_COUNTER_LOW]! >>> 0,
    bytes.subarray(content, content + length),
    mtu,
    bytes,
    payload,
  );
}

function open(record: number, payload: number): void {
  const keypair = keypairs.get(ints[record + H_INDEX]!);
  if (keypair === undefined) {
    ints[record + H_RESULT] = RESULT_UNKNOWN_KEYPAIR;
    return;
  }
  const message = bytes.subarray(payload, payload + ints[record + H_LENGTH]!);
  const opened = openTransport(
    keypair.receive,
    message,
    transportCounterHigh(message),
    transportCounterLow(message),
  );
  ints[record + H_RESULT] = opened < 0 ? RESULT_DECRYPT_FAILED : opened;
}

function work(from: number, to: number): void {
  let offset = from;
  while (offset !== to) {
    offset = recordAt(ring, offset);
    const record = offset / 4;
    const payload = offset + HEADER_BYTES;
    switch (ints[record + H_KIND]) {
      case KIND_SEAL:
        seal(record, payload);
        break;
      case KIND_OPEN:
        open(record, payload);
        break;
      case KIND_INSTALL:
        install(record, payload);
        break;
      case KIND_RETIRE:
        retire(record);
        break;
    }
    offset = nextRecord(ring, offset);
  }
}

// The thread's whole life: wait for records, work through them, say how far it got.
// V8 runs new code in its interpreter until it is hot, and each thread compiles its own copy: the thread
// seals and opens a few thousand throwaway messages (small and full size, a key of its own that is then
// wiped) before it says it is ready, so a node's first packets do not wait on it (nodes/warmup.ts does the
// same for the main thread).
function warmUp(): void {
  const key = new Uint8Array(32).fill(0x5a);
  const cipher = createTransportCipher(key);
  const scratch = new Uint8Array(mtu + 64);
  for (let i = 0; i < WARM_MESSAGES; i++) {
    const packet = scratch.subarray(0, i % 2 === 0 ? 84 : mtu);
    const length = sealTransport(cipher, 1, 0, i, packet.slice(), mtu, scratch, 0);
    openTransport(cipher, scratch.subarray(0, length), 0, i);
  }
  cipher.wipe();
}

const WARM_MESSAGES = 4000;
try {
  writeFileSync('/proc/thread-self/comm', name); // Node's worker threads are all called "node"
} catch {
  // No /proc: the thread keeps its inherited name.
}
warmUp();
let done = Atomics.load(control, DONE);
parentPort!.postMessage('ready');
for (;;) {
  Atomics.wait(control, WRITTEN, done);
  const written = Atomics.load(control, WRITTEN);
  work(done, written);
  done = written;
  Atomics.store(control, DONE, done);
  Atomics.notify(control, DONE);
}
