// The broker agent (`tunnelbyte-node run`): registers the node, heartbeats its health and the byte
// counters of the peers that moved, and follows its peer feed, applying every change to the engine. Three small loops share one
// registration; the broker is the only source of truth for the peer set, so a restart rebuilds it from
// the feed alone (the first poll has no cursor and answers the full set).
//
// Failure policy: broker unreachable, 5xx or a malformed answer → retry with capped exponential backoff
// and full jitter, serving the existing peers meanwhile; 404 (the broker forgot us: Redis lost, node
// reaped) → register again and re-read the full set; 401 or any other 4xx on register, or a broker URL
// fetch refuses outright (a blocked port) → fatal, the operator must fix the token or the arguments.
import { parsePrefix } from '../crypto/ipaddr.js';
import { POOL_PREFIXES, type Pool } from '../src/lib/addresses.js';
import type { PeerCounters, PeerSettings } from '../crypto/tunnel.js';
import { keyFromBase64, keyToBase64 } from '../src/lib/wgkey.js';
import {
  FEED_WAIT_SECONDS,
  type BrokerClient,
  type BrokerFailure,
  type BrokerResult,
  type FeedPage,
  type HeartbeatAnswer,
  type FeedPeer,
  type PeerReport,
  type Registration,
} from './broker-client.js';

/** What the agent drives: the Device in the daemon, a bare Tunnel in tests. Reads cost no copies. */
export interface PeerTable {
  readonly peerCount: number;
  hasPeer(publicKey: Uint8Array): boolean;
  forEachPeer(visit: (peer: PeerCounters) => void): void;
  upsertPeer(publicKey: Uint8Array, settings: PeerSettings): void;
  removePeer(publicKey: Uint8Array): void;
}

export interface Backoff {
  readonly baseMs: number;
  readonly capMs: number;
}
export const DEFAULT_BACKOFF: Backoff = { baseMs: 250, capMs: 5_000 };
// Peers per heartbeat body (~270 KB of JSON): a beat in which 10,000 peers moved is 5 requests, far
// inside the node token's request budget; one body's work on the broker stays short.
export const PEERS_PER_HEARTBEAT = 2_000;
// A Retry-After longer than this is not worth obeying: the node would look dead to the broker.
const MAX_RETRY_AFTER_MS = 30_000;

/** Exponential backoff with "full jitter" (half fixed, half random) so restarted brokers are not stampeded. */
export function backoffDelay(
  attempt: number,
  random: () => number,
  backoff: Backoff = DEFAULT_BACKOFF,
): number {
  const ceiling = Math.min(backoff.capMs, backoff.baseMs * 2 ** Math.min(attempt, 30));
  return ceiling / 2 + random() * (ceiling / 2);
}

// ── the feed, applied ───────────────────────────────────────────────────────────────────────────

interface DesiredPeer {
  publicKey: Uint8Array;
  presharedKey: Uint8Array | null;
  allowedIps: string[];
  /** What was applied, to skip upserts that would change nothing. */
  fingerprint: string;
}

/** A feed entry checked like any network input: a bad one is skipped with a reason, never thrown. */
export function checkFeedPeer(peer: FeedPeer): DesiredPeer | string {
  const publicKey = keyFromBase64(peer.public_key);
  if (!publicKey) return 'public key is not 32 bytes of base64';
  let presharedKey: Uint8Array | null = null;
  if (peer.preshared_key !== undefined) {
    const psk = keyFromBase64(peer.preshared_key);
    if (!psk) return 'pre-shared key is not 32 bytes of base64';
    presharedKey = psk;
  }
  if (peer.allowed_ips.length > 64) return 'too many allowed IPs';
  for (const ip of peer.allowed_ips) if (!parsePrefix(ip).ok) return `bad allowed IP '${ip.slice(0, 48)}'`;
  const allowedIps = [...peer.allowed_ips];
  return {
    publicKey,
    presharedKey,
    allowedIps,
    fingerprint: `${peer.preshared_key ?? ''}|${[...allowedIps].sort().join(',')}`,
  };
}

export interface AppliedChanges {
  upserted: number;
  removed: number;
  skipped: number;
}

/**
 * Applies one feed page to `table`. `applied` remembers what each peer was given, so a full page (sent
 * after every reconnect) re-applies nothing that is already in place and live sessions keep their keys.
 */
export function applyFeedPage(
  table: PeerTable,
  applied: Map<string, string>,
  page: FeedPage,
  warn: (line: string) => void,
): AppliedChanges {
  const changes: AppliedChanges = { upserted: 0, removed: 0, skipped: 0 };
  const desired: DesiredPeer[] = [];
  for (const entry of page.peers) {
    const checked = checkFeedPeer(entry);
    if (typeof checked === 'string') {
      changes.skipped++;
      warn(`peer feed: skipped an entry: ${checked}`);
    } else desired.push(checked);
  }
  const remove = (key: Uint8Array) => {
    table.removePeer(key);
    applied.delete(keyToBase64(key));
    changes.removed++;
  };
  if (page.full) {
    const keep = new Set(desired.map((peer) => keyToBase64(peer.publicKey)));
    const gone: string[] = [];
    table.forEachPeer((peer) => keep.has(peer.name) || gone.push(peer.name));
    for (const name of gone) remove(keyFromBase64(name)!);
  } else {
    for (const name of page.removed) {
      const key = keyFromBase64(name);
      if (key && table.hasPeer(key)) remove(key);
    }
  }
  for (const peer of desired) {
    const name = keyToBase64(peer.publicKey);
    if (applied.get(name) === peer.fingerprint) continue;
    table.upsertPeer(peer.publicKey, { presharedKey: peer.presharedKey, allowedIps: peer.allowedIps });
    applied.set(name, peer.fingerprint);
    changes.upserted++;
  }
  return changes;
}

// ── the agent ───────────────────────────────────────────────────────────────────────────────────

/** A sleep that ends early on wake() (also one that came while awake) or when the agent stops. */
class Waker {
  private wakeUp: (() => void) | undefined;
  private woken = false;
  constructor(private readonly stopped: AbortSignal) {}

  sleep(ms: number): Promise<void> {
    if (this.stopped.aborted || this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.stopped.removeEventListener('abort', done);
        this.wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.stopped.addEventListener('abort', done);
      this.wakeUp = done;
    });
  }

  wake(): void {
    if (this.wakeUp) this.wakeUp();
    else this.woken = true;
  }
}

export interface AgentOptions {
  client: BrokerClient;
  registration: Registration;
  peers: PeerTable;
  log: (line: string) => void;
  wallClockMs?: () => number;
  random?: () => number;
  backoff?: Backoff;
  feedWaitSeconds?: number;
  /** Peers per heartbeat body (PEERS_PER_HEARTBEAT). */
  peersPerHeartbeat?: number;
}

export type AgentFatal = Extract<BrokerFailure, { kind: 'unauthorized' | 'rejected' | 'refused_url' }>;

export class Agent {
  private readonly options: AgentOptions;
  private readonly random: () => number;
  private readonly stopping = new AbortController();
  private readonly heartbeatWaker = new Waker(this.stopping.signal);
  private readonly applied = new Map<string, string>();
  /** What the broker acknowledged last, by peer name; `pass` marks peers still configured. */
  private readonly reported = new Map<string, PeerReport & { pass: number }>();
  private passes = 0;
  private reportEveryPeer = true;
  private readonly peerListeners = new Set<(count: number) => void>();
  private drainingBeats: Array<() => void> = [];
  private registration: Promise<boolean> | undefined;
  private loops: Promise<unknown> | undefined;
  private draining = false;
  private resolveFatal: (failure: AgentFatal) => void = () => undefined;
  private fatalFailure: AgentFatal | undefined;
  /** Resolves if the broker refuses us for good (bad token, bad arguments); the agent has stopped. */
  readonly fatal: Promise<AgentFatal> = new Promise((resolve) => (this.resolveFatal = resolve));
  nodeId: string | undefined;
  /** The address pool the broker gave at registration. */
  pool: Pool = POOL_PREFIXES;
  heartbeatMs = 10_000;

  constructor(options: AgentOptions) {
    this.options = options;
    this.random = options.random ?? Math.random;
  }

  /** Registers (retrying while the broker is unavailable), then starts the heartbeat and feed loops. */
  async start(): Promise<{ ok: true; nodeId: string; pool: Pool } | { ok: false; failure?: AgentFatal }> {
    if (!(await this.register()))
      return { ok: false, ...(this.fatalFailure && { failure: this.fatalFailure }) };
    this.loops = Promise.all([this.heartbeatLoop(), this.feedLoop()]);
    return { ok: true, nodeId: this.nodeId!, pool: this.pool };
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Called with the peer count after every applied feed page. */
  onPeersChanged(listener: (count: number) => void): void {
    this.peerListeners.add(listener);
  }

  /** Heartbeats `draining: true` at once (the broker places no new sessions here); resolves after that beat. */
  drain(): Promise<void> {
    this.draining = true;
    const sent = new Promise<void>((resolve) => this.drainingBeats.push(resolve));
    this.heartbeatWaker.wake();
    return Promise.race([
      sent,
      new Promise<void>((r) => this.stopping.signal.addEventListener('abort', () => r())),
    ]);
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loops;
  }

  private get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  private fail(failure: AgentFatal): void {
    if (this.fatalFailure) return;
    this.fatalFailure = failure;
    this.options.log(failure.message);
    this.resolveFatal(failure);
    this.stopping.abort();
  }

  // Both loops may find the node forgotten at once; they share one registration attempt.
  private register(): Promise<boolean> {
    this.registration ??= this.registerWithRetry().finally(() => (this.registration = undefined));
    return this.registration;
  }

  private async registerWithRetry(): Promise<boolean> {
    const outage = this.outage('register');
    while (!this.stopped) {
      const result = await this.options.client.register(this.options.registration, this.stopping.signal);
      if (result.ok) {
        outage.over();
        this.nodeId = result.value.node_id;
        this.pool = result.value.pool ?? POOL_PREFIXES;
        this.heartbeatMs = result.value.heartbeat_ms;
        this.reportEveryPeer = true;
        return true;
      }
      if (result.kind === 'unauthorized' || result.kind === 'rejected' || result.kind === 'refused_url') {
        this.fail(result);
        return false;
      }
      await outage.wait(result);
    }
    return false;
  }

  /**
   * The peers whose counters moved since the broker last acknowledged them (every peer after a
   * registration, so a restarted node's lower counters reach the broker once). Forgets peers that left.
   */
  private movedPeers(): PeerReport[] {
    const pass = ++this.passes;
    const moved: PeerReport[] = [];
    this.options.peers.forEachPeer((peer) => {
      const last = this.reported.get(peer.name);
      if (last) last.pass = pass;
      const unchanged = last
        ? last.rxBytes === peer.rxBytes &&
          last.txBytes === peer.txBytes &&
          last.lastHandshakeUnixMs === peer.lastHandshakeUnixMs
        : peer.rxBytes === 0 && peer.txBytes === 0 && peer.lastHandshakeUnixMs === 0;
      if (unchanged && !this.reportEveryPeer) return;
      moved.push({
        publicKey: peer.name,
        rxBytes: peer.rxBytes,
        txBytes: peer.txBytes,
        lastHandshakeUnixMs: peer.lastHandshakeUnixMs,
      });
    });
    if (this.reported.size > this.options.peers.peerCount) {
      for (const [name, last] of this.reported) if (last.pass !== pass) this.reported.delete(name);
    }
    return moved;
  }

  /**
   * One heartbeat: health, then the moved peers, a body per `peersPerHeartbeat`. A batch counts as
   * reported once the broker answered it; a failed one is sent again with the next beat.
   */
  private async beat(draining: boolean): Promise<BrokerResult<HeartbeatAnswer>> {
    const moved = this.movedPeers();
    const load = Math.min(1, this.options.peers.peerCount / this.options.registration.capacity);
    const perBody = this.options.peersPerHeartbeat ?? PEERS_PER_HEARTBEAT;
    let from = 0;
    for (;;) {
      const peers = moved.slice(from, from + perBody);
      const result = await this.options.client.heartbeat(
        this.nodeId!,
        { load, draining, peers },
        this.stopping.signal,
      );
      if (!result.ok) return result;
      for (const peer of peers) this.reported.set(peer.publicKey, { ...peer, pass: this.passes });
      from += perBody;
      if (from >= moved.length) {
        this.reportEveryPeer = false;
        return result;
      }
    }
  }

  private async heartbeatLoop(): Promise<void> {
    const outage = this.outage('heartbeat');
    while (!this.stopped) {
      const draining = this.draining;
      const waiting = draining ? this.drainingBeats.splice(0) : [];
      const result = await this.beat(draining);
      for (const resolve of waiting) resolve();
      if (result.ok) {
        outage.over();
        this.heartbeatMs = result.value.heartbeat_ms;
        await this.heartbeatWaker.sleep(this.heartbeatMs);
      } else if (result.kind === 'unknown_node') {
        this.options.log(`${result.message}; registering again`);
        await this.register();
      } else if (result.kind === 'unauthorized' || result.kind === 'refused_url') {
        this.fail(result);
      } else {
        // A failed beat is retried sooner than the interval, but never faster than the backoff allows.
        await outage.wait(result, this.heartbeatWaker);
      }
    }
  }

  private async feedLoop(): Promise<void> {
    const outage = this.outage('peer feed');
    const wait = this.options.feedWaitSeconds ?? FEED_WAIT_SECONDS;
    let cursor = '';
    while (!this.stopped) {
      const result = await this.options.client.peers(this.nodeId!, cursor, this.stopping.signal, wait);
      if (this.stopped) break;
      if (result.ok) {
        outage.over();
        const page = result.value;
        const changes = applyFeedPage(this.options.peers, this.applied, page, this.options.log);
        cursor = page.cursor;
        if (changes.upserted + changes.removed > 0 || page.full) {
          const count = this.options.peers.peerCount;
          for (const listener of this.peerListeners) listener(count);
        }
      } else if (result.kind === 'unknown_node') {
        this.options.log(`${result.message}; registering again`);
        cursor = '';
        await this.register();
      } else if (result.kind === 'unauthorized' || result.kind === 'refused_url') {
        this.fail(result);
      } else {
        // 'rejected' can only be our cursor (a broker that lost its stream format): start over.
        if (result.kind === 'rejected') cursor = '';
        await outage.wait(result);
      }
    }
  }

  /** Backoff bookkeeping of one loop, logging an outage once when it starts and once when it ends. */
  private outage(what: string) {
    let attempt = 0;
    return {
      over: () => {
        if (attempt > 0) this.options.log(`${what}: broker reachable again`);
        attempt = 0;
      },
      wait: (failure: BrokerFailure, waker?: Waker) => {
        const backoff = this.options.backoff ?? DEFAULT_BACKOFF;
        let delay = backoffDelay(attempt, this.random, backoff);
        if (failure.kind === 'unavailable' && failure.retryAfterMs !== undefined)
          delay = Math.max(delay, Math.min(failure.retryAfterMs, MAX_RETRY_AFTER_MS));
        if (attempt === 0) this.options.log(`${what}: ${failure.message}; retrying with backoff`);
        attempt++;
        return (waker ?? new Waker(this.stopping.signal)).sleep(delay);
      },
    };
  }
}
