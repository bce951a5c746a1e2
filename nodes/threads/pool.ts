// The crypto threads (`--threads N`, N > 1): the main thread keeps the I/O, the engine (routing, handshakes,
// timers, counters) and hands each transport message to seal or open to the thread its peer is pinned to,
// through that thread's ring (nodes/threads/ring.ts): a batch per event-loop turn, one notify, no message
// per packet. Counters (nonces) are reserved by the engine on the main thread, so each is used once; the
// replay window of a keypair stays on the main thread (its Keypair), checked as results come back, in ring
// order, after the thread authenticated the message.
//
// A message whose thread has nothing in its ring, while this turn has handed few such messages over, is
// sealed or opened right here instead (inline): a lone ping or a handshake's first messages do not pay for
// the hop and for waking a sleeping thread. It cannot overtake its peer's earlier messages, since none are
// left in the ring, and it uses the same reserved counter and the same replay window as the thread path.
import { inspect } from 'node:util';
import { Worker } from 'node:worker_threads';

import { TRANSPORT_CONTENT_OFFSET } from '../../crypto/constants.js';
import type { Keypair } from '../../crypto/keypair.js';
import { transportCounterHigh, transportCounterLow, transportLength } from '../../crypto/messages.js';
import { wipe } from '../../crypto/primitives.js';
import type { DropReason, Endpoint, OpenAction, SealAction, TransportCrypto } from '../../crypto/tunnel.js';
import {
  createRing,
  DONE,
  H_COUNTER_HIGH,
  H_COUNTER_LOW,
  H_INDEX,
  H_KIND,
  H_LENGTH,
  H_REMOTE_INDEX,
  H_RESULT,
  H_SIZE,
  HEADER_BYTES,
  KEYS_BYTES,
  KIND_INSTALL,
  KIND_OPEN,
  KIND_RETIRE,
  KIND_SEAL,
  KIND_WRAP,
  nextRecord,
  recordAt,
  recordEnd,
  recordSize,
  RESULT_DECRYPT_FAILED,
  ringViews,
  type RingViews,
  WRITTEN,
} from './ring.js';
import type { CryptoThreadData } from './worker.js';
import { builtWorker } from '../worker-file.js';

/** Where the crypto threads' results go (the device). Views are valid until `flushed` returns. */
export interface CryptoResults {
  sealed(datagram: Uint8Array, to: Endpoint): void;
  /** `message` was opened in place: its padded plaintext is message[16 .. 16 + plainLength). */
  opened(keypair: Keypair, message: Uint8Array, plainLength: number, from: Endpoint): void;
  rejected(reason: DropReason): void;
  /** The end of a batch of results: write out what they queued, before their ring space is reused. */
  flushed(): void;
}

// What a thread may have queued: about 2,800 full-size packets, a TUN read batch of TCP super-segments
// split. Packets wait in the ring, so a larger one only adds latency; with a smaller one the main thread
// waits for the thread more often (makeRoom). bench-tunnel measured 1 MiB and 4 MiB within its noise.
const RING_BYTES = 4 * 1024 * 1024;
// A thread that has not moved for this long while the ring is full is taken for dead.
const STALLED_MS = 5000;
const WAIT_SLICE_MS = 100;
const COMPANIONS_COMPACT_AT = 4096;
// Messages per event-loop turn that may be handled inline while their thread is idle: enough for a ping
// or a handshake's first exchange, few enough that bulk traffic goes to the threads.
const INLINE_PER_TURN = 4;

const WORKER_FILES = ['./worker.js', '../../dist/nodes/threads/worker.js'];

// Node 20 has Atomics.waitAsync; TypeScript's ES2022 library does not declare it yet.
const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      array: Int32Array,
      index: number,
      value: number,
    ): { async: false; value: string } | { async: true; value: Promise<string> };
  }
).waitAsync;

/** One thread and the main thread's side of its ring. */
class CryptoThread {
  readonly ring: RingViews;
  /** Peers pinned to this thread. */
  peers = 0;
  /** Next record's offset (main thread only). */
  private written = 0;
  /** Oldest record not yet read back (main thread only). */
  private freed = 0;
  private published = 0;
  private armed = false;
  /** Per record in ring order: the keypair (open) and the endpoint (seal: to, open: from). */
  private readonly companions: Array<Keypair | Endpoint | undefined> = [];
  private companionHead = 0;
  /** Retirements that found the ring full: written before any other record. */
  private readonly pendingRetires: number[] = [];

  constructor(
    readonly worker: Worker,
    buffer: SharedArrayBuffer,
    private readonly results: () => CryptoResults | undefined,
  ) {
    this.ring = ringViews(buffer);
  }

  /** Nothing in the ring: every record written was read back. */
  idle(): boolean {
    return this.written === this.freed && this.pendingRetires.length === 0;
  }

  /** Whether `bytes` more of records fit (with the pending retirements). */
  hasRoom(bytes: number): boolean {
    return this.place(bytes + this.pendingRetires.length * recordSize(0)) !== -1;
  }

  /**
   * The offset a record of `size` bytes would start at (after a wrap, 0), or -1 without room. `written`
   * never catches up with `freed` from behind: equal means empty.
   */
  private place(size: number): number {
    const { capacity } = this.ring;
    const { written, freed } = this;
    if (written >= freed) {
      if (written + size <= capacity && recordEnd(capacity, written, size) !== freed) return written;
      return size < freed ? 0 : -1;
    }
    return written + size < freed ? written : -1;
  }

  /** Starts a record; the caller checked hasRoom. Returns its int32 offset. */
  private begin(kind: number, index: number, payload: number): number {
    while (this.pendingRetires.length > 0) {
      const retired = this.pendingRetires.shift()!;
      this.begin(KIND_RETIRE, retired, 0);
      this.companions.push(undefined);
    }
    const size = recordSize(payload);
    const start = this.place(size);
    const { ints, capacity } = this.ring;
    if (start === 0 && this.written !== 0 && capacity - this.written >= HEADER_BYTES) {
      ints[this.written / 4 + H_KIND] = KIND_WRAP;
    }
    const record = start / 4;
    ints[record + H_KIND] = kind;
    ints[record + H_SIZE] = size;
    ints[record + H_INDEX] = index;
    ints[record + H_LENGTH] = payload;
    this.written = recordEnd(capacity, start, size);
    if (this.published === 0) queueMicrotask(this.publish);
    this.published++;
    return record;
  }

  /** Keys of a keypair this thread has not seen yet, then wiped from the engine's copy. */
  installIfNew(keypair: Keypair): void {
    const keys = keypair.takeKeys();
    if (keys === undefined) return;
    const record = this.begin(KIND_INSTALL, keypair.localIndex, KEYS_BYTES);
    const { bytes } = this.ring;
    bytes.set(keys.sendKey, record * 4 + HEADER_BYTES);
    bytes.set(keys.receiveKey, record * 4 + HEADER_BYTES + 32);
    wipe(keys.sendKey, keys.receiveKey);
    this.companions.push(undefined);
  }

  seal(action: SealAction, mtu: number): void {
    const length = action.packet.length;
    const record = this.begin(KIND_SEAL, action.keypair.localIndex, transportLength(length, mtu));
    const { ints, bytes } = this.ring;
    ints[record + H_LENGTH] = length;
    ints[record + H_COUNTER_HIGH] = Math.floor(action.counter / 0x1_0000_0000);
    ints[record + H_COUNTER_LOW] = action.counter | 0;
    ints[record + H_REMOTE_INDEX] = action.keypair.remoteIndex | 0;
    bytes.set(action.packet, record * 4 + HEADER_BYTES + TRANSPORT_CONTENT_OFFSET);
    this.companions.push(action.to);
  }

  open(action: OpenAction): void {
    const record = this.begin(KIND_OPEN, action.keypair.localIndex, action.datagram.length);
    this.ring.bytes.set(action.datagram, record * 4 + HEADER_BYTES);
    this.companions.push(action.keypair, action.from);
  }

  retire(index: number): void {
    if (this.place(recordSize(0)) === -1) {
      this.pendingRetires.push(index);
      return;
    }
    this.begin(KIND_RETIRE, index, 0);
    this.companions.push(undefined);
  }

  /** Makes the records written so far visible to the thread and wakes it; arms the wait for its results. */
  readonly publish = (): void => {
    if (this.published === 0) return;
    this.published = 0;
    Atomics.store(this.ring.control, WRITTEN, this.written);
    Atomics.notify(this.ring.control, WRITTEN);
    this.arm();
  };

  private arm(): void {
    if (this.armed || this.freed === this.written) return;
    this.armed = true;
    const waited = waitAsync(this.ring.control, DONE, this.freed);
    const wake = () => {
      this.armed = false;
      this.reap();
      this.arm();
    };
    if (waited.async) void waited.value.then(wake);
    else queueMicrotask(wake);
  }

  /** Reads back every record the thread is done with, in order, and frees their space. */
  reap(): void {
    const results = this.results();
    const { ints, bytes } = this.ring;
    const done = Atomics.load(this.ring.control, DONE);
    if (done === this.freed || results === undefined) return;
    let offset = this.freed;
    while (offset !== done) {
      offset = recordAt(this.ring, offset);
      const record = offset / 4;
      const payload = offset + HEADER_BYTES;
      const result = ints[record + H_RESULT]!;
      const first = this.companions[this.companionHead++];
      switch (ints[record + H_KIND]) {
        case KIND_SEAL:
          if (result >= 0) results.sealed(bytes.subarray(payload, payload + result), first as Endpoint);
          else results.rejected('keypair_expired');
          break;
        case KIND_OPEN: {
          const from = this.companions[this.companionHead++] as Endpoint;
          if (result < 0) {
            results.rejected(result === RESULT_DECRYPT_FAILED ? 'decrypt_failed' : 'keypair_expired');
            break;
          }
          const message = bytes.subarray(payload, payload + ints[record + H_LENGTH]!);
          // Authentic: now the replay window, in arrival order.
          const keypair = first as Keypair;
          if (keypair.acceptCounter(transportCounterHigh(message), transportCounterLow(message))) {
            results.opened(keypair, message, result, from);
          } else {
            results.rejected('replay');
          }
          break;
        }
      }
      offset = nextRecord(this.ring, offset);
    }
    results.flushed();
    this.freed = done;
    // The companions array is a queue: its read part is dropped now and then, not per record.
    if (this.companionHead >= COMPANIONS_COMPACT_AT) {
      this.companions.splice(0, this.companionHead);
      this.companionHead = 0;
    }
  }

  /** Reads back results until `bytes` fit; false if the thread stopped moving (it is then taken for dead). */
  makeRoom(bytes: number): boolean {
    let waited = 0;
    while (!this.hasRoom(bytes)) {
      this.publish();
      const done = Atomics.load(this.ring.control, DONE);
      if (done === this.freed) {
        if (Atomics.wait(this.ring.control, DONE, done, WAIT_SLICE_MS) === 'timed-out')
          waited += WAIT_SLICE_MS;
        if (waited >= STALLED_MS) return false;
      }
      this.reap();
    }
    return true;
  }
}

/**
 * N crypto threads with a ring each; the engine's TransportCrypto (it reports retired keypairs here) and
 * the device's way to seal and open.
 */
export class CryptoThreads implements TransportCrypto {
  private results: CryptoResults | undefined;
  private readonly byKeypair = new WeakMap<Keypair, CryptoThread>();
  private readonly peerThreads = new Map<string, CryptoThread>();
  private closing = false;
  private inlineThisTurn = 0;
  /** Where inline seals go: the results are told at once and copy it (UdpTransport.send). */
  private sealScratch = new Uint8Array(0);
  /**
   * Messages opened inline this turn, told to the results at its end: `opened` runs the engine, which must
   * not be re-entered while its caller still walks the actions that asked for the open.
   */
  private readonly inlineOpened: Array<{ action: OpenAction; plainLength: number } | undefined> = [];
  private inlineOpenedCount = 0;

  private constructor(
    private readonly threads: CryptoThread[],
    private readonly mtu: number,
  ) {}

  /**
   * Starts `count` threads. `onExit` is told, once, if any thread ends while the node runs (a crash): the
   * node cannot carry on without the peers pinned to it.
   */
  static async start(count: number, mtu: number, onExit: (line: string) => void): Promise<CryptoThreads> {
    const file = builtWorker(import.meta.url, WORKER_FILES, 'crypto thread');
    const pool = new CryptoThreads([], mtu);
    for (let i = 0; i < count; i++) {
      const buffer = createRing(RING_BYTES);
      const name = `crypto-${i}`;
      const workerData: CryptoThreadData = { ring: buffer, mtu, name };
      const worker = new Worker(file, { workerData, name });
      let said = false;
      const died = (why: string) => {
        if (pool.closing || said) return;
        said = true;
        onExit(`crypto thread ${i} ${why}`);
      };
      worker.on('error', (error) => died(`failed: ${error.message.split('\n')[0]}`));
      worker.on('exit', (code) => died(`exited with code ${code}`));
      pool.threads.push(new CryptoThread(worker, buffer, () => pool.results));
    }
    const ready = (worker: Worker) =>
      new Promise<void>((resolve, reject) => {
        worker.once('message', () => resolve());
        worker.once('error', reject);
      });
    try {
      await Promise.all(pool.threads.map((thread) => ready(thread.worker)));
    } catch (error) {
      await pool.close();
      throw error;
    }
    return pool;
  }

  attach(results: CryptoResults): void {
    this.results = results;
  }

  /**
   * Every peer's messages go through one thread, so none of them reorder: a new peer goes to the thread
   * with the fewest peers.
   */
  private threadOf(peer: string): CryptoThread {
    let thread = this.peerThreads.get(peer);
    if (thread === undefined) {
      thread = this.threads.reduce((fewest, candidate) =>
        candidate.peers < fewest.peers ? candidate : fewest,
      );
      thread.peers++;
      this.peerThreads.set(peer, thread);
    }
    return thread;
  }

  private threadFor(keypair: Keypair, peer: string): CryptoThread {
    let thread = this.byKeypair.get(keypair);
    if (thread === undefined) {
      thread = this.threadOf(peer);
      this.byKeypair.set(keypair, thread);
    }
    return thread;
  }

  /** The peer is gone (its keypairs were retired): its place on its thread is free. */
  peerRemoved(peer: string): void {
    const thread = this.peerThreads.get(peer);
    if (thread === undefined) return;
    thread.peers--;
    this.peerThreads.delete(peer);
  }

  /** How many peers each thread serves. */
  peersPerThread(): number[] {
    return this.threads.map((thread) => thread.peers);
  }

  /** Rings hold packets and, for a moment, keys: never printed. */
  [inspect.custom](): string {
    return `CryptoThreads { threads: ${this.threads.length} }`;
  }

  /** Whether a message for `thread` is handled here and now (see the top of this file). */
  private inline(thread: CryptoThread): boolean {
    if (!thread.idle() || this.inlineThisTurn >= INLINE_PER_TURN) return false;
    if (this.inlineThisTurn++ === 0) queueMicrotask(this.nextTurn);
    return true;
  }

  private readonly nextTurn = (): void => {
    this.inlineThisTurn = 0;
    const results = this.results;
    if (this.inlineOpenedCount === 0 || results === undefined) return;
    for (let i = 0; i < this.inlineOpenedCount; i++) {
      const { action, plainLength } = this.inlineOpened[i]!;
      results.opened(action.keypair, action.datagram, plainLength, action.from);
      this.inlineOpened[i] = undefined;
    }
    this.inlineOpenedCount = 0;
    results.flushed();
  };

  /** False when the thread's ring is full (the caller drops the message: queue_full). */
  seal(action: SealAction): boolean {
    const thread = this.threadFor(action.keypair, action.peer);
    const results = this.results;
    if (results !== undefined && this.inline(thread)) {
      const length = transportLength(action.packet.length, this.mtu);
      if (this.sealScratch.length < length) this.sealScratch = new Uint8Array(length);
      const sealed = action.keypair.sealReserved(action.counter, action.packet, this.mtu, this.sealScratch);
      results.sealed(this.sealScratch.subarray(0, sealed), action.to);
      return true;
    }
    if (!thread.hasRoom(recordSize(KEYS_BYTES) + recordSize(transportLength(action.packet.length, this.mtu))))
      return false;
    thread.installIfNew(action.keypair);
    thread.seal(action, this.mtu);
    return true;
  }

  open(action: OpenAction): boolean {
    const thread = this.threadFor(action.keypair, action.peer);
    const results = this.results;
    if (results !== undefined && this.inline(thread)) {
      const opened = action.keypair.open(action.datagram);
      if (typeof opened !== 'number') results.rejected(opened);
      // The engine reuses its action objects: this one is copied (rare: a few per turn at most).
      else this.inlineOpened[this.inlineOpenedCount++] = { action: { ...action }, plainLength: opened };
      return true;
    }
    if (!thread.hasRoom(recordSize(KEYS_BYTES) + recordSize(action.datagram.length))) return false;
    thread.installIfNew(action.keypair);
    thread.open(action);
    return true;
  }

  /** TransportCrypto: the keys the keypair's thread holds are wiped (in ring order, after its last use). */
  retired(keypair: Keypair): void {
    // Keys never handed to a thread (its messages were all handled inline) are not handed over later.
    const keys = keypair.takeKeys();
    if (keys !== undefined) wipe(keys.sendKey, keys.receiveKey);
    this.byKeypair.get(keypair)?.retire(keypair.localIndex);
    this.byKeypair.delete(keypair);
  }

  /**
   * Before handing the engine a packet or datagram: every ring has room for it (results are read back,
   * waiting for the threads if need be), so what the engine returns is not dropped for want of room.
   */
  makeRoom(bytes: number): void {
    const size = recordSize(KEYS_BYTES) + recordSize(bytes + TRANSPORT_CONTENT_OFFSET + 32);
    for (const thread of this.threads) thread.makeRoom(size);
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.threads.map((thread) => thread.worker.terminate()));
  }
}
