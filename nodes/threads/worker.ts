// A crypto thread (nodes/threads/pool.ts starts it): seals and opens the transport messages of the peers
// pinned to it, in place in its ring, claiming records in ring order alongside the main thread
// (nodes/threads/ring.ts). It holds the keys of those peers' keypairs (handed over in INSTALL records,
// whose bytes it wipes at once). The replay windows stay with the engine's keypairs on the main thread,
// which checks each authenticated message's counter as it reads the results back, in arrival order. It does
// no I/O and decides nothing else.
import { writeFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';

import type { TransportAEAD } from '../../crypto/aead.js';
import { openTransport, sealTransportInPlace } from '../../crypto/messages.js';
import { createTransportCipher } from '../../crypto/primitives.js';
import {
  claim,
  finish,
  H_INDEX,
  H_KIND,
  HEADER_BYTES,
  KEYS_BYTES,
  KIND_INSTALL,
  KIND_OPEN,
  KIND_RETIRE,
  KIND_SEAL,
  openRecord,
  PROGRESS,
  RESULT_UNKNOWN_KEYPAIR,
  ringViews,
  sealRecord,
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

/** Does the record at `offset` and says so (finish). */
function work(offset: number): void {
  const record = offset / 4;
  const kind = ints[record + H_KIND];
  if (kind === KIND_INSTALL || kind === KIND_RETIRE) {
    if (kind === KIND_INSTALL) install(record, offset + HEADER_BYTES);
    else retire(record);
    finish(ring, record, 0);
    return;
  }
  const keypair = keypairs.get(ints[record + H_INDEX]!);
  if (keypair === undefined) finish(ring, record, RESULT_UNKNOWN_KEYPAIR);
  else if (kind === KIND_SEAL) finish(ring, record, sealRecord(ring, offset, keypair.send, mtu));
  else if (kind === KIND_OPEN) finish(ring, record, openRecord(ring, offset, keypair.receive));
}

// The thread's whole life: wait for records, work through them, say how far it got.
// V8 runs new code in its interpreter until it is hot, and each thread compiles its own copy: the thread
// seals and opens a few thousand throwaway messages (small and full size, a key of its own that is then
// wiped) before it says it is ready, so a node's first packets do not wait on it (nodes/warmup.ts does the
// same for the main thread).
function warmUp(): void {
  const key = new Uint8Array(32).fill(0x5a);
  const cipher = createTransportCipher(key);
  // Sealed and opened in place in shared memory, behind a record header, as sealRecord and openRecord do: code
  // compiled for another kind of buffer would be thrown away at the first real record.
  const scratch = new Uint8Array(new SharedArrayBuffer(HEADER_BYTES + mtu + 64));
  for (let i = 0; i < WARM_MESSAGES; i++) {
    const length = sealTransportInPlace(cipher, 1, 0, i, i % 2 === 0 ? 84 : mtu, mtu, scratch, HEADER_BYTES);
    openTransport(cipher, scratch, 0, i, HEADER_BYTES, length);
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
parentPort!.postMessage('ready');
// Claims records while any are published and unclaimed (the main thread claims from the same queue), says
// when it finished a pass, and sleeps only when nothing is left up to what it last saw published: records
// published before the thread first looked are found, not waited for.
for (;;) {
  const written = Atomics.load(control, WRITTEN);
  let worked = false;
  for (let offset = claim(ring, true); offset !== -1; offset = claim(ring, true)) {
    work(offset);
    worked = true;
  }
  if (worked) {
    Atomics.add(control, PROGRESS, 1);
    Atomics.notify(control, PROGRESS);
  } else {
    Atomics.wait(control, WRITTEN, written);
  }
}
