// The crypto threads (`--threads N`, N > 1): the main thread keeps the I/O, the engine (routing, handshakes,
// timers, counters) and hands each transport message to seal or open to the ring of the thread its peer is
// pinned to (nodes/threads/ring.ts): a batch per event-loop turn, no message per packet. Not when that
// would only add latency or CPU (takes): a turn's few messages, of peers with nothing in a ring, while no
// bulk traffic passes, are sealed and opened by the engine itself, as without threads, so an idle ping never
// touches a ring; and with `--hand-over auto`, bulk traffic too while the main thread has time to spare
// (nodes/threads/load.ts). At the end of the turn the main thread publishes the batch, wakes the thread only when
// the batch is worth it (or holds keys for it), and then claims records from the same queue itself until
// none are left: a few messages behind their peer's never wait for a thread to wake, and a thread that has
// no core to run on (the host is busy) costs the batch a copy, not a stall. The results are read back in
// ring order.
//
// Counters (nonces) are reserved by the engine on the main thread, so each is used once whoever seals; the
// replay window of a keypair stays with its Keypair on the main thread, checked as results are read back,
// in ring order, after the message authenticated. The main thread seals and opens with the engine's own
// ciphers of the very keypair that asked (never one found by index, which a new keypair may reuse). A
// keypair retired meanwhile (the engine zeroes it: it stopped sending with it) seals and opens nothing after
// its retirement's record; a record of it written before is done by the thread, whose keys go with that
// record, or dropped (unsealed, rejected) by the main thread, whose copy is zeroed: whichever claims it.
import { inspect } from 'node:util';
import { Worker } from 'node:worker_threads';

import { TRANSPORT_CONTENT_OFFSET } from '../../crypto/constants.js';
import type { Keypair } from '../../crypto/keypair.js';
import { transportCounterHigh, transportCounterLow, transportLength } from '../../crypto/messages.js';
import { wipe } from '../../crypto/primitives.js';
import type {
  DropReason,
  Endpoint,
  OpenAction,
  PeerRef,
  SealAction,
  TransportCrypto,
} from '../../crypto/tunnel.js';
import {
  claim,
  copyIn,
  createRing,
  finish,
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
  openRecord,
  position,
  PROGRESS,
  recordAt,
  recordEnd,
  recordSize,
  RESULT_DECRYPT_FAILED,
  RESULT_PENDING,
  RESULT_UNKNOWN_KEYPAIR,
  ringViews,
  type RingViews,
  sealRecord,
  WRITTEN,
} from './ring.js';
import { MainThreadLoad, type HandOver, type ThreadLoad } from './load.js';
import type { CryptoThreadData } from './worker.js';
import { builtWorker } from '../worker-file.js';
import { ReusedViews } from '../views.js';

/** Where the crypto threads' results go (the device). Views are valid until `flushed` returns. */
export interface CryptoResults {
  sealed(datagram: Uint8Array, to: Endpoint, peer: PeerRef): void;
  /** A seal of `plainLength` bytes for `peer` not done: its keypair was retired before it was sealed. */
  unsealed(peer: PeerRef, plainLength: number): void;
  /** `message` was opened in place: its padded plaintext is message[16 .. 16 + plainLength). */
  opened(keypair: Keypair, message: Uint8Array, plainLength: number, from: Endpoint): void;
  rejected(reason: DropReason): void;
  /** The end of a batch of results: write out what they queued, before their ring space is reused. */
  flushed(): void;
}

// What a thread may have queued: about 2,800 records (packets of any size: each takes a slot, below), a TUN
// read batch of TCP super-segments split. Packets wait in the ring, so a larger one only adds latency; with
// a smaller one the main thread waits for the thread more often (makeRoom). bench-tunnel measured 1 MiB and
// 4 MiB within its noise.
const RING_BYTES = 4 * 1024 * 1024;
// A thread that has not finished the oldest of its pending records for this long is taken for dead. It is
// counted in slices, the main thread's own waits: a process stopped for a while (a paused VM, a host with
// no core to spare) counts one slice for the whole pause, not a dead thread.
const STALLED_MS = 5000;
// The longest the main thread waits for a thread that holds its full ring up, once: a thread that does not
// move within it is waited for asynchronously only (arm) until it moves again or is taken for dead.
const WAIT_SLICE_MS = 100;
const STALLED_SLICES = STALLED_MS / WAIT_SLICE_MS;
// A turn of at most this many messages is not worth a thread: the engine seals or opens them itself
// (CryptoThreads.takes), and a batch of at most this many records in a ring is not worth waking its thread
// for: the main thread seals or opens them itself as soon as it publishes (a ping, a handshake's first
// exchange, an idle peer's trickle).
export const ALONE_RECORDS = 4;
// After a turn of more messages than that, the next this many turns hand theirs over too, however few: a
// bulk flow's turns alternate (a read of data, then one of its ACKs; several peers' datagrams in one read)
// and none of them is worth a copy's saving against the threads' share of the next.
export const BUSY_TURNS = 8;

const WORKER_FILES = ['./worker.js', '../../dist/nodes/threads/worker.js'];

// Node 20 has Atomics.waitAsync; TypeScript's ES2022 library does not declare it yet.
const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      array: Int32Array,
      index: number,
      value: number,
      timeout: number,
    ): { async: false; value: string } | { async: true; value: Promise<string> };
  }
).waitAsync;

/** A ring slot: the record of a full-size transport message (CryptoThread.slot). */
const ringSlot = (mtu: number): number => recordSize(transportLength(mtu, mtu));

/** A peer's place in the pool: its thread, and what of it is in the thread's ring. */
class PooledPeer {
  /** Its seal and open records written and not yet read back. */
  inRing = 0;

  constructor(readonly thread: CryptoThread) {}
}

/** One thread and the main thread's side of its ring. */
class CryptoThread {
  readonly ring: RingViews;
  /** Peers pinned to this thread. */
  peers = 0;
  /** Next record's offset (main thread only). */
  private written = 0;
  /** Times `written` wrapped to 0: with it, what WRITTEN publishes (ring.ts position). */
  private lap = 0;
  /** Oldest record not yet read back (main thread only). */
  private freed = 0;
  /** Records written this turn, not yet published. */
  private unpublished = 0;
  /** This turn's records hold keys for the thread, or are more than the main thread takes alone. */
  private wakeThread = false;
  private armed = false;
  private reaping = false;
  /** Records read back so far: whether the oldest pending one moved while the thread was watched. */
  private readBack = 0;
  /** `readBack` when the running wait (arm) started. */
  private armedReadBack = 0;
  /** A wait in makeRoom timed out, and the thread has not moved since: makeRoom does not wait for it. */
  private suspect = false;
  /** Watchdog slices in a row (arm) in which the oldest pending record stayed pending. */
  private stalledSlices = 0;
  /**
   * The oldest pending record stayed pending for STALLED_MS (the thread is taken for dead), or the pool closed:
   * the thread is not watched again.
   */
  private stalled = false;
  /**
   * Every record takes whole slots (a full-size transport message's record each): records start at the same
   * few offsets lap after lap, whatever mix of sizes came before, so the views of their results are made
   * once (views). Key records and small packets take a slot too.
   */
  private readonly slot: number;
  /**
   * Per record, by its offset in slots: the keypair it is for and the endpoint (seal: to, open: from).
   * Records live at distinct offsets until freed, so these need no queue.
   */
  private readonly keypairAt: Array<Keypair | undefined>;
  private readonly endpointAt: Array<Endpoint | undefined>;
  /** Seal records: the peer whose message it is (its txBytes already count it). */
  private readonly peerAt: Array<PeerRef | undefined>;
  /** Seal and open records: the peer's place in the pool, whose `inRing` counts the record. */
  private readonly ownerAt: Array<PooledPeer | undefined>;
  /**
   * Per record offset and kind (seal, open): the view of its result last handed to the device, handed out
   * again while a record there has a result of the same length (a bulk flow's messages each way are mostly
   * of one length), so reading back makes no view per packet.
   */
  private readonly views: ReusedViews;
  /** Retirements that found the ring full: written before any other record. */
  private readonly pendingRetires: number[] = [];

  constructor(
    readonly worker: Worker,
    buffer: SharedArrayBuffer,
    private readonly mtu: number,
    private readonly results: () => CryptoResults | undefined,
    /** The pool's one-line report of this thread's death (said once, whatever the cause). */
    private readonly died: (why: string) => void,
    /** Asks for the end of the pool's turn, which publishes this turn's records (CryptoThreads.endTurn). */
    private readonly turnEnds: () => void,
  ) {
    this.ring = ringViews(buffer);
    this.slot = ringSlot(mtu);
    const slots = this.ring.capacity / this.slot;
    this.keypairAt = new Array<Keypair | undefined>(slots).fill(undefined);
    this.endpointAt = new Array<Endpoint | undefined>(slots).fill(undefined);
    this.peerAt = new Array<PeerRef | undefined>(slots).fill(undefined);
    this.views = new ReusedViews(slots * 2);
    this.ownerAt = new Array<PooledPeer | undefined>(slots).fill(undefined);
  }

  /** A record's size with `payload` bytes: whole slots. */
  private size(payload: number): number {
    return Math.ceil(recordSize(payload) / this.slot) * this.slot;
  }

  /** No record in the ring, none waiting to be written: a record of any message's size fits. */
  empty(): boolean {
    return this.written === this.freed && this.pendingRetires.length === 0;
  }

  /** Whether a record of `payload` bytes fits, after its keypair's keys and the pending retirements. */
  hasRoom(payload: number): boolean {
    const retires = this.pendingRetires.length * this.slot;
    return this.place(this.slot + retires + this.size(payload)) !== -1;
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
    const size = this.size(payload);
    while (this.pendingRetires.length > 0) {
      const retired = this.pendingRetires.shift()!;
      this.begin(KIND_RETIRE, retired, 0);
    }
    const start = this.place(size);
    const { ints, capacity } = this.ring;
    if (start < this.written) {
      if (capacity - this.written >= HEADER_BYTES) ints[this.written / 4 + H_KIND] = KIND_WRAP;
      this.lap++;
    }
    const record = start / 4;
    ints[record + H_KIND] = kind;
    ints[record + H_SIZE] = size;
    ints[record + H_INDEX] = index;
    ints[record + H_LENGTH] = payload;
    ints[record + H_RESULT] = RESULT_PENDING;
    this.written = recordEnd(capacity, start, size);
    if (this.written === 0) this.lap++;
    if (this.unpublished === 0) this.turnEnds();
    if (++this.unpublished > ALONE_RECORDS || kind === KIND_INSTALL || kind === KIND_RETIRE)
      this.wakeThread = true;
    return record;
  }

  /** Keys of a keypair this thread has not seen yet, then wiped from the engine's copy: whether it had them. */
  installIfNew(keypair: Keypair): boolean {
    const keys = keypair.takeKeys();
    if (keys === undefined) return false;
    const record = this.begin(KIND_INSTALL, keypair.localIndex, KEYS_BYTES);
    const { bytes } = this.ring;
    bytes.set(keys.sendKey, record * 4 + HEADER_BYTES);
    bytes.set(keys.receiveKey, record * 4 + HEADER_BYTES + 32);
    wipe(keys.sendKey, keys.receiveKey);
    return true;
  }

  seal(action: SealAction, owner: PooledPeer): void {
    const length = action.packet.length;
    const payload = transportLength(length, this.mtu);
    const record = this.begin(KIND_SEAL, action.keypair.localIndex, payload);
    const { ints } = this.ring;
    ints[record + H_LENGTH] = length;
    ints[record + H_COUNTER_HIGH] = Math.floor(action.counter / 0x1_0000_0000);
    ints[record + H_COUNTER_LOW] = action.counter | 0;
    ints[record + H_REMOTE_INDEX] = action.keypair.remoteIndex | 0;
    copyIn(this.ring, record * 4 + HEADER_BYTES + TRANSPORT_CONTENT_OFFSET, action.packet);
    const slot = (record * 4) / this.slot;
    this.keypairAt[slot] = action.keypair;
    this.endpointAt[slot] = action.to;
    this.peerAt[slot] = action.peer;
    this.ownerAt[slot] = owner;
    owner.inRing++;
  }

  open(action: OpenAction, owner: PooledPeer): void {
    const length = action.datagram.length;
    const record = this.begin(KIND_OPEN, action.keypair.localIndex, length);
    copyIn(this.ring, record * 4 + HEADER_BYTES, action.datagram);
    const slot = (record * 4) / this.slot;
    this.keypairAt[slot] = action.keypair;
    this.endpointAt[slot] = action.from;
    this.ownerAt[slot] = owner;
    owner.inRing++;
  }

  retire(index: number): void {
    // Pending retirements are written first (begin): room for them and this one, or it waits with them.
    if (this.place((this.pendingRetires.length + 1) * this.slot) === -1) {
      this.pendingRetires.push(index);
      return;
    }
    this.begin(KIND_RETIRE, index, 0);
  }

  /**
   * The end of a turn's writing: makes the records visible, wakes the thread if the batch is worth it,
   * claims what is left of it here, reads back what is done and waits (asynchronously) for the rest.
   */
  publish(): void {
    if (this.unpublished === 0) return;
    this.unpublished = 0;
    Atomics.store(this.ring.control, WRITTEN, position(this.lap, this.written));
    if (this.wakeThread) Atomics.notify(this.ring.control, WRITTEN);
    this.wakeThread = false;
    this.help();
    this.arm();
  }

  /** Seals and opens published records here, in ring order with the thread, until none are left. */
  private help(): void {
    const ring = this.ring;
    for (let offset = claim(ring, false); offset !== -1; offset = claim(ring, false)) {
      const record = offset / 4;
      const ciphers = this.keypairAt[offset / this.slot]!.ciphers();
      if (ciphers === undefined) finish(ring, record, RESULT_UNKNOWN_KEYPAIR);
      else if (ring.ints[record + H_KIND] === KIND_SEAL)
        finish(ring, record, sealRecord(ring, offset, ciphers.send, this.mtu));
      else finish(ring, record, openRecord(ring, offset, ciphers.receive));
    }
  }

  /**
   * Reads back now what is done, and again whenever the thread finishes a pass, until nothing is left. This
   * wait is the thread's watchdog too, in slices: a thread whose oldest pending record stayed pending for
   * STALLED_MS is taken for dead, while the main thread goes on serving the other threads' peers.
   */
  private arm(): void {
    const progress = Atomics.load(this.ring.control, PROGRESS);
    this.reap();
    if (this.armed || this.stalled || this.freed === this.written) return;
    this.armed = true;
    this.armedReadBack = this.readBack;
    const waited = waitAsync(this.ring.control, PROGRESS, progress, WAIT_SLICE_MS);
    if (waited.async) void waited.value.then(this.wake);
    else queueMicrotask(this.moved); // 'not-equal': the thread finished a pass since `progress` was read
  }

  /** The wait that arm started ended: the thread finished a pass, or a slice passed. */
  private readonly wake = (outcome: string): void => {
    this.armed = false;
    if (this.stalled) return;
    this.reap();
    if (outcome === 'timed-out' && this.readBack === this.armedReadBack && this.oldestPending()) {
      if (++this.stalledSlices === STALLED_SLICES) {
        this.stalled = true;
        this.died(`stopped making progress for ${STALLED_MS / 1000} s`);
        return;
      }
    } else {
      this.stalledSlices = 0;
      this.suspect = false;
    }
    this.arm();
  };

  private readonly moved = (): void => this.wake('not-equal');

  /** Whether the oldest record not read back is still pending (not just unread). */
  private oldestPending(): boolean {
    if (this.freed === this.written) return false;
    const record = recordAt(this.ring, this.freed) / 4;
    return Atomics.load(this.ring.ints, record + H_RESULT) === RESULT_PENDING;
  }

  /** Reads back, in order, every record that is done up to the first still pending, and frees their space. */
  reap(): void {
    const results = this.results();
    // Results run the device, which may hand over more packets (a TUN read after a write) and so come
    // back here: the outer reap reads those records back later, with their turn.
    if (results === undefined || this.reaping) return;
    this.reaping = true;
    try {
      this.reapInto(results);
    } catch (error) {
      // A result's callback threw (its own record is done with): the rest are read back at the next microtask.
      queueMicrotask(this.reapRest);
      throw error;
    } finally {
      this.reaping = false;
    }
  }

  private readonly reapRest = (): void => this.arm();

  private reapInto(results: CryptoResults): void {
    const { ints } = this.ring;
    const written = this.written;
    let offset = this.freed;
    let reaped = false;
    // A result's callback may throw (a socket's send): the batch still ends, and `freed` stays, so what was
    // handed over stays valid until flushed; the next reap skips those records (their bookkeeping is cleared
    // before each is handed over) and goes on with the rest.
    try {
      while (offset !== written) {
        offset = recordAt(this.ring, offset);
        const record = offset / 4;
        const result = Atomics.load(ints, record + H_RESULT);
        if (result === RESULT_PENDING) break;
        reaped = true;
        const payload = offset + HEADER_BYTES;
        const slot = offset / this.slot;
        // A seal or open record not handed over yet.
        const owner = this.ownerAt[slot];
        if (owner !== undefined) {
          owner.inRing--;
          const keypair = this.keypairAt[slot]!;
          const endpoint = this.endpointAt[slot]!;
          const peer = this.peerAt[slot];
          this.ownerAt[slot] = this.keypairAt[slot] = this.endpointAt[slot] = this.peerAt[slot] = undefined;
          if (ints[record + H_KIND] === KIND_SEAL) {
            if (result >= 0) results.sealed(this.view(slot * 2, payload, result), endpoint, peer!);
            else results.unsealed(peer!, ints[record + H_LENGTH]!);
          } else {
            const message = this.view(slot * 2 + 1, payload, ints[record + H_LENGTH]!);
            if (result < 0)
              results.rejected(result === RESULT_DECRYPT_FAILED ? 'decrypt_failed' : 'keypair_expired');
            // Authentic: now the replay window, in arrival order.
            else if (keypair.acceptCounter(transportCounterHigh(message), transportCounterLow(message)))
              results.opened(keypair, message, result, endpoint);
            else results.rejected('replay');
          }
        }
        offset = nextRecord(this.ring, offset);
      }
    } finally {
      if (reaped) results.flushed();
    }
    if (!reaped) return;
    this.freed = offset;
    this.readBack++;
  }

  /** bytes[start, start + length) of a record, as `views` keeps it under `key`. */
  private view(key: number, start: number, length: number): Uint8Array {
    return this.views.view(key, this.ring.bytes, start, length);
  }

  /**
   * Reads back results until `bytes` fit, waiting for the thread while it moves. A thread that does not move
   * for a whole slice is suspect: neither this call nor any later one waits for it (what finds no room is
   * dropped as queue_full) until it moves again or its watchdog (arm) takes it for dead.
   */
  makeRoom(payload: number): void {
    // Reaping: space is freed when the outer reap returns.
    if (this.reaping) return;
    while (!this.hasRoom(payload)) {
      this.publish();
      const progress = Atomics.load(this.ring.control, PROGRESS);
      const freed = this.freed;
      this.reap();
      if (this.freed !== freed) continue;
      if (this.suspect || this.stalled) return;
      if (Atomics.wait(this.ring.control, PROGRESS, progress, WAIT_SLICE_MS) === 'timed-out') {
        this.suspect = true;
        return;
      }
    }
  }

  /** The pool closed: its thread is not watched any more. */
  close(): void {
    this.stalled = true;
  }
}

/**
 * N crypto threads with a ring each; the engine's TransportCrypto (it reports retired keypairs here) and
 * the device's way to seal and open.
 */
export class CryptoThreads implements TransportCrypto {
  private results: CryptoResults | undefined;
  /** The thread each keypair's keys were installed in (for its retirement). */
  private readonly byKeypair = new WeakMap<Keypair, CryptoThread>();
  private readonly peers = new Map<string, PooledPeer>();
  /** The peer last looked up, and its place: a bulk flow asks for the same peer message after message. */
  private lastPeer: PeerRef | undefined;
  private lastPooled: PooledPeer | undefined;
  /** Turns (takes, endTurn) in which messages were asked about, this one's so far, and the last busy one. */
  private turn = 0;
  private turnOpen = false;
  private turnMessages = 0;
  private busyTurn = -BUSY_TURNS - 1;
  /** The turn's end is due: a thread has records to publish, or messages were asked about. */
  private turnEndDue = false;
  /** Inside the device's read batch, whose end ends the turn (readBatchBegan): no end is scheduled. */
  private inReadBatch = false;
  /**
   * Whether this turn's bulk traffic goes to the threads: the main thread is CPU-bound (or 'bulk'). Asked
   * at the turn's first message that it decides (handsOver): a turn of a few messages, an idle ping's,
   * reads no clock (a new heap number per reading).
   */
  private turnHandsOver: boolean | undefined = undefined;
  private closing = false;
  /** Every message stays with the engine (keepInline). */
  private inlineOnly = false;
  /** The messages asked about (takes) so far: left to the engine, and handed to the threads (a node metric). */
  readonly messages = { inline: 0, handedOver: 0 };

  private constructor(
    private readonly threads: CryptoThread[],
    private readonly mtu: number,
    /** Turns end with the event loop's I/O phase, not with the device's read batch (start). */
    private readonly datagramEach: boolean,
    /** The main thread's load, with 'auto'; none with 'bulk'. */
    private readonly load: ThreadLoad | undefined,
  ) {
    this.later = datagramEach ? setImmediate : queueMicrotask;
  }

  /** Schedules the end of a turn outside a read batch (endTurn). */
  private readonly later: (callback: () => void) => void;

  /**
   * Starts `count` threads. `onExit` is told, once per thread, if any thread ends while the node runs (a
   * crash) or stops making progress (a hang): the node cannot carry on without the peers pinned to it.
   * `datagramEach`: the node's socket hands over each datagram in a callback of its own (dgram), with
   * microtasks run between them, so a turn lasts to the end of the event loop's I/O (setImmediate) and a
   * burst of datagrams is one turn; with a batched socket a turn is the device's read batch (readBatchBegan),
   * or outside one a callback and its microtasks. `handOver`: when bulk traffic goes to the threads
   * (load.ts); the node asks for the operator's choice (`--hand-over`, 'auto' unless told), everything else
   * gets the threads at every bulk turn.
   */
  static async start(
    count: number,
    mtu: number,
    onExit: (line: string) => void,
    datagramEach = false,
    handOver: HandOver = 'bulk',
    load: ThreadLoad = new MainThreadLoad(),
  ): Promise<CryptoThreads> {
    const file = builtWorker(import.meta.url, WORKER_FILES, 'crypto thread');
    const pool = new CryptoThreads([], mtu, datagramEach, handOver === 'auto' ? load : undefined);
    for (let i = 0; i < count; i++) {
      const buffer = createRing(RING_BYTES - (RING_BYTES % ringSlot(mtu)));
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
      pool.threads.push(new CryptoThread(worker, buffer, mtu, () => pool.results, died, pool.turnEnds));
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
  private pooled(peer: PeerRef): PooledPeer {
    if (peer === this.lastPeer) return this.lastPooled!;
    let pooled = this.peers.get(peer.name);
    if (pooled === undefined) {
      const thread = this.threads.reduce((fewest, candidate) =>
        candidate.peers < fewest.peers ? candidate : fewest,
      );
      thread.peers++;
      pooled = new PooledPeer(thread);
      this.peers.set(peer.name, pooled);
    }
    this.lastPeer = peer;
    this.lastPooled = pooled;
    return pooled;
  }

  /** The peer is gone (its keypairs were retired): its place on its thread is free. */
  peerRemoved(peer: string): void {
    const pooled = this.peers.get(peer);
    if (pooled === undefined) return;
    pooled.thread.peers--;
    this.peers.delete(peer);
    if (pooled === this.lastPooled) this.lastPeer = this.lastPooled = undefined;
  }

  /** How many peers each thread serves. */
  peersPerThread(): number[] {
    return this.threads.map((thread) => thread.peers);
  }

  /**
   * TransportCrypto: whether the peer's next message goes to its thread. Not when handing it over would only
   * add latency: the engine then seals or opens it at once, as a node without threads does. That is a turn's
   * first few messages (ALONE_RECORDS), of a peer with none in its ring (they would be overtaken), while no
   * turn of the last BUSY_TURNS had more (the node is not carrying bulk traffic, whose turns stay with the
   * threads, whatever their size); and with 'auto', any turn of a main thread that is not CPU-bound.
   */
  takes(peer: PeerRef): boolean {
    const pooled = this.pooled(peer);
    if (!this.turnOpen) {
      this.turnOpen = true;
      this.turnEnds();
      this.turnHandsOver = undefined;
    }
    if (++this.turnMessages > ALONE_RECORDS) this.busyTurn = this.turn;
    if (pooled.inRing !== 0 || (this.busyTurn >= this.turn - BUSY_TURNS && this.handsOver())) {
      this.messages.handedOver++;
      return true;
    }
    this.messages.inline++;
    return false;
  }

  private handsOver(): boolean {
    // The load read even when kept inline: the warm-up then runs it too.
    return (this.turnHandsOver ??= (this.load?.cpuBound(performance.now()) ?? true) && !this.inlineOnly);
  }

  /**
   * While kept, every message stays with the engine, however many a turn holds: the node's warm-up
   * (warmup.ts) runs two devices on this pool, and a ring's results reach only one of them.
   */
  keepInline(keep: boolean): void {
    this.inlineOnly = keep;
  }

  /**
   * The device's read batch (a UDP or TUN read) begins: its end (readBatchEnded) ends the turn, for every
   * thread at once, where a scheduled end would cost a microtask per turn. A dgram socket's batch is one
   * `datagram`: its turn lasts to the end of the I/O phase (setImmediate) instead, so a burst is one turn; a
   * TUN read is a turn of its own either way (a burst's still open ends first), whose records go out as it
   * ends.
   */
  readBatchBegan(datagram: boolean): void {
    if (datagram && this.datagramEach) return;
    if (!this.inReadBatch && this.turnEndDue) this.endTurn();
    this.inReadBatch = true;
  }

  readBatchEnded(): void {
    if (!this.inReadBatch) return;
    this.inReadBatch = false;
    if (this.turnEndDue) this.endTurn();
  }

  /** The turn's end is due: at the read batch's end, or scheduled once for all threads outside one. */
  private readonly turnEnds = (): void => {
    if (this.turnEndDue) return;
    this.turnEndDue = true;
    if (!this.inReadBatch) this.later(this.endTurn);
  };

  /**
   * Ends the turn and publishes every thread's records. Their results run the device, which may start the
   * next turn (a read-back seals); a scheduled end that finds its turn ended already does nothing.
   */
  private readonly endTurn = (): void => {
    if (!this.turnEndDue) return;
    this.turnEndDue = false;
    if (this.turnOpen) {
      this.turnOpen = false;
      this.turn++;
      this.turnMessages = 0;
    }
    let published = 0;
    try {
      for (; published < this.threads.length; published++) this.threads[published]!.publish();
    } finally {
      // A result's callback threw: the other threads' records are published at the next turn's end.
      if (published < this.threads.length) this.turnEnds();
    }
  };

  /** Rings hold packets and, for a moment, keys: never printed. */
  [inspect.custom](): string {
    return `CryptoThreads { threads: ${this.threads.length} }`;
  }

  /** False when the thread's ring is full (the caller drops the message: queue_full). */
  seal(action: SealAction): boolean {
    const pooled = this.withRoom(action, transportLength(action.packet.length, this.mtu));
    pooled?.thread.seal(action, pooled);
    return pooled !== undefined;
  }

  open(action: OpenAction): boolean {
    const pooled = this.withRoom(action, action.datagram.length);
    pooled?.thread.open(action, pooled);
    return pooled !== undefined;
  }

  /** The action's peer, when its thread's ring has room for a record of `bytes`; that thread holds its keys. */
  private withRoom(action: SealAction | OpenAction, bytes: number): PooledPeer | undefined {
    const pooled = this.pooled(action.peer);
    const thread = pooled.thread;
    if (!thread.hasRoom(bytes)) return undefined;
    if (thread.installIfNew(action.keypair)) this.byKeypair.set(action.keypair, thread);
    return pooled;
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
   * Before handing the engine a packet to seal (`sealing`) or a datagram to open: every ring has room for it (results are read back,
   * waiting for the threads if need be), so what the engine returns is not dropped for want of room.
   */
  makeRoom(bytes: number, sealing: boolean): void {
    // Asked for every packet: rings left empty (no bulk traffic handed over) are passed by at once.
    for (const thread of this.threads) {
      if (!thread.empty()) thread.makeRoom(sealing ? transportLength(bytes, this.mtu) : bytes);
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const thread of this.threads) thread.close();
    await Promise.all(this.threads.map((thread) => thread.worker.terminate()));
  }
}
