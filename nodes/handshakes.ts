// Responder handshakes on worker threads, so initiations use the cores the data path leaves free and a
// burst of them never stalls it. The device's thread admits an initiation (Tunnel.admitInitiation: mac1,
// and under load mac2 or a cookie reply), a worker answers it (noise.ts answerInitiation: the four X25519
// operations, the expensive part), and the device's thread applies the answer (Tunnel.acceptInitiation:
// the peer still there, the replay and flood rules, the keypair, the response).
//
// Each worker holds our private key and a snapshot of the peers (public key, pre-shared key; the
// static-static DH computed on its first handshake, as the engine does), kept in step with the device's
// configuration through the same ordered channel as the work. Initiations and answers cross in batches:
// one message per worker and event-loop turn. No thread transfers a buffer, which would cost it V8's fast
// typed-array code (docs/ARCHITECTURE.md, the warm-up): initiations go as copies, secrets and answers in
// shared memory, wiped by the thread that reads them (no copy stays behind, none is left in a freed
// message buffer). A worker that dies is reported once (onFailure); its unanswered initiations are dropped
// (the initiator retries).
import { Worker } from 'node:worker_threads';

import { INITIATION_SIZE, KEY_LENGTH, MESSAGE_INITIATION, TIMESTAMP_LENGTH } from '../crypto/constants.js';
import { parseMessage, writeInitiation } from '../crypto/messages.js';
import {
  WIREGUARD,
  answerInitiation,
  createInitiation,
  initiationFields,
  localStatic,
  peerKeys,
  type InitiationAnswer,
  type LocalStatic,
  type PeerKeys,
} from '../crypto/noise.js';
import type { Endpoint } from '../crypto/peer.js';
import { generatePrivateKey, wipe } from '../crypto/primitives.js';
import { secret } from '../crypto/secret.js';
import { builtWorker } from './worker-file.js';

// ---- the answers' wire format: one fixed-size record per initiation, in the order they were sent ----

const EMPTY_ENCRYPTED_LENGTH = 16; // message 2's encrypted empty payload: the AEAD tag alone
const ANSWERED = 1;
const FIELDS = [
  ['initiator', KEY_LENGTH],
  ['payload', TIMESTAMP_LENGTH],
  ['ephemeral', KEY_LENGTH],
  ['encryptedPayload', EMPTY_ENCRYPTED_LENGTH],
  ['sendKey', KEY_LENGTH],
  ['receiveKey', KEY_LENGTH],
] as const;
type Field = (typeof FIELDS)[number][0];
const OFFSET = {} as Record<Field, number>;
let recordSize = 1; // byte 0: ANSWERED, or 0 when the initiation did not authenticate
for (const [name, length] of FIELDS) {
  OFFSET[name] = recordSize;
  recordSize += length;
}
const RECORD_SIZE = recordSize;
const LENGTH = Object.fromEntries(FIELDS) as Record<Field, number>;
const field = (records: Uint8Array, at: number, name: Field): Uint8Array =>
  records.subarray(at + OFFSET[name], at + OFFSET[name] + LENGTH[name]);

/**
 * The worker's part: answers the initiations laid end to end in `initiations` (admitted by the device),
 * each with a fresh ephemeral from `randomBytes`, into one record per initiation.
 */
export function answerBatch(
  local: LocalStatic,
  peers: ReadonlyMap<string, PeerKeys>,
  initiations: Uint8Array,
  randomBytes: (length: number) => Uint8Array,
): Uint8Array {
  const count = initiations.length / INITIATION_SIZE;
  // Shared memory: posted to the device's thread without a copy or a transfer (no detach), wiped there once read.
  const records = new Uint8Array(new SharedArrayBuffer(count * RECORD_SIZE));
  const lookup = (remoteStatic: Uint8Array) => peers.get(Buffer.from(remoteStatic).toString('base64'));
  for (let i = 0; i < count; i++) {
    const message = parseMessage(initiations.subarray(i * INITIATION_SIZE, (i + 1) * INITIATION_SIZE));
    if (message?.type !== MESSAGE_INITIATION) continue;
    const answered = answerInitiation(
      WIREGUARD,
      local,
      initiationFields(message),
      lookup,
      generatePrivateKey(randomBytes),
      new Uint8Array(0),
    );
    if (!answered.ok) continue;
    const at = i * RECORD_SIZE;
    const { peer, payload, fields, keys } = answered.answer;
    records[at] = ANSWERED;
    records.set(peer.remoteStatic, at + OFFSET.initiator);
    records.set(payload, at + OFFSET.payload);
    records.set(fields.ephemeral, at + OFFSET.ephemeral);
    records.set(fields.encryptedPayload, at + OFFSET.encryptedPayload);
    records.set(keys.sendKey, at + OFFSET.sendKey);
    records.set(keys.receiveKey, at + OFFSET.receiveKey);
    wipe(keys.sendKey, keys.receiveKey);
  }
  return records;
}

/**
 * Initiations a worker answers between throwaway keys as it starts, before any real one. V8 compiles and
 * optimizes X25519 and BLAKE2s as they run: a cold worker's first answer took 6 to 13 ms, the next ten 2 to
 * 3 ms, where a warm one takes 1.4 (measured on 2 cores). After 16 the first real one takes 1.3 to 3.7 ms;
 * after 8, some workers still took 2.2 ms up to the 16th.
 */
export const WARM_HANDSHAKES = 16;

/**
 * The worker's start: answers WARM_HANDSHAKES initiations through answerBatch, as a real one is answered,
 * so the node's first client does not wait for the JIT. Its keys are made for it and used for nothing else;
 * it touches no state of the worker's. Returns the answers made.
 */
export function warmAnswers(randomBytes: (length: number) => Uint8Array): number {
  // No key outlives the call: the randomness every key was made from, the keys, the DH results and the
  // answers' session keys are zeroed at its end.
  const drawn: Uint8Array[] = [];
  const draw = (length: number) => {
    const bytes = randomBytes(length);
    drawn.push(bytes);
    return bytes;
  };
  const responder = localStatic(draw(KEY_LENGTH));
  const initiator = localStatic(draw(KEY_LENGTH));
  const name = Buffer.from(initiator.publicKey).toString('base64');
  const initiatorPeer = peerKeys(initiator, responder.publicKey);
  const responderPeer = peerKeys(responder, name);
  try {
    const created = createInitiation(
      WIREGUARD,
      initiator,
      initiatorPeer,
      generatePrivateKey(draw),
      new Uint8Array(TIMESTAMP_LENGTH),
      0,
    );
    if (!created.ok) return 0;
    const { state } = created;
    wipe(state.chainKey, state.hash, state.ephemeralPrivate);
    const { ephemeral, encryptedStatic, encryptedPayload } = created.fields;
    const initiation = writeInitiation({
      senderIndex: 0,
      ephemeral,
      encryptedStatic,
      encryptedTimestamp: encryptedPayload,
    });
    const peers = new Map([[name, responderPeer]]);
    let answered = 0;
    for (let i = 0; i < WARM_HANDSHAKES; i++) {
      const records = answerBatch(responder, peers, initiation, draw);
      if (records[0] === ANSWERED) answered++;
      wipe(records);
    }
    return answered;
  } finally {
    for (const peer of [initiatorPeer, responderPeer]) {
      if (peer.staticStatic !== undefined) wipe(peer.staticStatic);
    }
    wipe(responder.privateKey, initiator.privateKey, ...drawn);
  }
}

/** Record i of a batch's answers as the engine takes it, or undefined when the initiation failed. */
function readAnswer(records: Uint8Array, i: number): InitiationAnswer<string> | undefined {
  const at = i * RECORD_SIZE;
  if (records[at] !== ANSWERED) return undefined;
  return {
    peer: Buffer.from(field(records, at, 'initiator')).toString('base64'),
    payload: field(records, at, 'payload').slice(),
    fields: {
      ephemeral: field(records, at, 'ephemeral'),
      encryptedPayload: field(records, at, 'encryptedPayload'),
    },
    // The keypair owns its keys (it may hand them on): copies, as the records are wiped after the answer.
    keys: {
      sendKey: field(records, at, 'sendKey').slice(),
      receiveKey: field(records, at, 'receiveKey').slice(),
    },
  };
}

// ---- messages between the device and a worker ----

/** A change to the workers' snapshot, applied in order with the work. */
export type SnapshotChange =
  | { readonly kind: 'key'; readonly privateKey: Uint8Array }
  | { readonly kind: 'peer'; readonly name: string; readonly presharedKey?: Uint8Array | null }
  | { readonly kind: 'remove'; readonly name: string }
  | { readonly kind: 'clear' };

export type ToWorker =
  | { readonly kind: 'changes'; readonly changes: SnapshotChange[] }
  | { readonly kind: 'answer'; readonly initiations: Uint8Array }
  | { readonly kind: 'close' };

export interface FromWorker {
  readonly records: Uint8Array;
}

// ---- the device's side ----

/** What the device keeps of an initiation while a worker answers it. */
interface Job {
  readonly senderIndex: number;
  readonly from: Endpoint;
  /** The snapshot's key generation when it was sent: a key changed since makes its answer void. */
  readonly generation: number;
}

interface Thread {
  readonly worker: Worker;
  /** Jobs sent, in order, not yet answered. */
  readonly sent: Job[][];
  /** Initiations queued for it or sent to it and not answered yet. */
  pending: number;
  /** This turn's initiations for it, laid end to end. */
  readonly initiations: Uint8Array[];
  readonly jobs: Job[];
}

export interface HandshakeWorkersOptions {
  threads: number;
  privateKey: Uint8Array;
  /** The compiled worker (default: handshake-worker.js, built). */
  workerUrl?: URL;
  /**
   * An initiation a worker answered (undefined: it did not authenticate), on the device's thread, with
   * its initiation's sender index and source. The answer's keys are the callee's to keep or wipe.
   */
  onAnswer(answer: InitiationAnswer<string> | undefined, senderIndex: number, from: Endpoint): void;
  /** A worker failed or exited: called once; the workers are then closed. */
  onFailure(error: Error): void;
}

const WORKER_FILES = ['./handshake-worker.js', '../dist/nodes/handshake-worker.js'];
const SENDER_INDEX_OFFSET = 4;

export class HandshakeWorkers {
  private readonly threads: Thread[];
  private readonly onAnswer: HandshakeWorkersOptions['onAnswer'];
  private readonly onFailure: HandshakeWorkersOptions['onFailure'];
  private changes: SnapshotChange[] = [];
  private generation = 0;
  /** Every thread's pending, kept as a sum: the device reads it for every datagram. */
  private pending = 0;
  private flushScheduled = false;
  private closing = false;

  constructor(options: HandshakeWorkersOptions) {
    this.onAnswer = options.onAnswer;
    this.onFailure = options.onFailure;
    const url = options.workerUrl ?? builtWorker(import.meta.url, WORKER_FILES, 'handshake worker');
    this.threads = Array.from({ length: options.threads }, () => {
      const thread: Thread = {
        worker: new Worker(url),
        sent: [],
        pending: 0,
        initiations: [],
        jobs: [],
      };
      thread.worker.unref(); // the device's socket keeps the process alive, not its helpers
      thread.worker.on('message', (message: FromWorker) => this.answered(thread, message.records));
      thread.worker.on('error', (error) => this.fail(error));
      thread.worker.on('exit', (code) => this.fail(new Error(`a handshake worker exited (code ${code})`)));
      return thread;
    });
    this.setPrivateKey(options.privateKey);
  }

  /** Initiations sent to workers and not answered yet: the device's handshake backlog. */
  get backlog(): number {
    return this.pending;
  }

  /** Queues an admitted initiation (copied) for the least busy worker; sent at the end of this turn. */
  submit(initiation: Uint8Array, from: Endpoint): void {
    if (this.closing) return;
    let thread = this.threads[0]!;
    for (const other of this.threads) if (other.pending < thread.pending) thread = other;
    thread.pending++;
    this.pending++;
    const senderIndex = new DataView(initiation.buffer, initiation.byteOffset).getUint32(
      SENDER_INDEX_OFFSET,
      true,
    );
    thread.initiations.push(initiation.slice());
    thread.jobs.push({ senderIndex, from, generation: this.generation });
    this.scheduleFlush();
  }

  // Snapshot changes follow the engine's configuration. Only a change of keys voids answers in flight (a
  // removed peer is refused by the engine itself, in acceptInitiation): our key, or the pre-shared key of
  // a peer already known. Adding peers, which an exit node does all the time, voids nothing.

  setPrivateKey(privateKey: Uint8Array): void {
    this.generation++;
    this.change(copySecrets({ kind: 'key', privateKey }, secretCopy));
  }

  upsertPeer(publicKey: Uint8Array, presharedKey: Uint8Array | null | undefined, known: boolean): void {
    const name = Buffer.from(publicKey).toString('base64');
    if (known && presharedKey !== undefined) this.generation++;
    this.change(
      copySecrets({ kind: 'peer', name, ...(presharedKey !== undefined && { presharedKey }) }, secretCopy),
    );
  }

  removePeer(publicKey: Uint8Array): void {
    this.change({ kind: 'remove', name: Buffer.from(publicKey).toString('base64') });
  }

  removeAllPeers(): void {
    this.change({ kind: 'clear' });
  }

  /** Tells each worker to wipe its secrets and stop, then waits for it (terminating one that hangs). */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const change of this.changes.splice(0)) wipeSecrets(change);
    await Promise.all(
      this.threads.map(async ({ worker }) => {
        const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
        worker.postMessage({ kind: 'close' } satisfies ToWorker);
        const timer = setTimeout(() => void worker.terminate(), 1_000);
        await exited;
        clearTimeout(timer);
      }),
    );
  }

  private change(change: SnapshotChange): void {
    if (this.closing) return;
    this.changes.push(change);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** Sends the turn's snapshot changes to every worker, then each worker's initiations. */
  private flush(): void {
    this.flushScheduled = false;
    if (this.closing) return;
    const changes = this.changes;
    this.changes = [];
    if (changes.length > 0) {
      for (const { worker } of this.threads) {
        const own = changes.map((change) => copySecrets(change, sharedCopy));
        worker.postMessage({ kind: 'changes', changes: own } satisfies ToWorker);
      }
      for (const change of changes) wipeSecrets(change);
    }
    for (const thread of this.threads) {
      if (thread.jobs.length === 0) continue;
      const initiations = new Uint8Array(thread.jobs.length * INITIATION_SIZE);
      thread.initiations.forEach((initiation, i) => initiations.set(initiation, i * INITIATION_SIZE));
      thread.worker.postMessage({ kind: 'answer', initiations } satisfies ToWorker);
      thread.sent.push(thread.jobs.splice(0));
      thread.initiations.length = 0;
    }
  }

  private answered(thread: Thread, records: Uint8Array): void {
    const jobs = thread.sent.shift();
    if (jobs === undefined || this.closing) {
      wipe(records); // the device is closing: nothing more is sent
      return;
    }
    thread.pending -= jobs.length;
    this.pending -= jobs.length;
    try {
      jobs.forEach((job, i) => {
        const answer = readAnswer(records, i);
        // Answered with keys that have changed since: as if it had not authenticated (the initiator retries).
        this.onAnswer(job.generation === this.generation ? answer : undefined, job.senderIndex, job.from);
      });
    } finally {
      wipe(records);
    }
  }

  private fail(error: Error): void {
    if (this.closing) return;
    void this.close();
    this.onFailure(error);
  }
}

/** The change with a copy of any secret in it, made by `copy`: queued ones print redacted, sent ones are shared. */
function copySecrets(change: SnapshotChange, copy: (bytes: Uint8Array) => Uint8Array): SnapshotChange {
  if (change.kind === 'key') return { kind: 'key', privateKey: copy(change.privateKey) };
  if (change.kind === 'peer' && change.presharedKey) {
    return { ...change, presharedKey: copy(change.presharedKey) };
  }
  return change;
}

const secretCopy = (bytes: Uint8Array): Uint8Array => secret(Uint8Array.from(bytes));

/** A copy in shared memory: posted to a worker, it is the worker's to wipe, and this thread keeps no reference. */
function sharedCopy(bytes: Uint8Array): Uint8Array {
  const shared = new Uint8Array(new SharedArrayBuffer(bytes.length));
  shared.set(bytes);
  return shared;
}

function wipeSecrets(change: SnapshotChange): void {
  if (change.kind === 'key') wipe(change.privateKey);
  if (change.kind === 'peer' && change.presharedKey) wipe(change.presharedKey);
}
