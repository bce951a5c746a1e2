// The peer feed of an exit node (GET /v1/nodes/{id}/peers): a Redis Stream per node that session
// creation and closing append to in the same script as the change itself. A node long-polls it with
// a cursor (a stream id). No cursor, or one that trimming made too old (or one from a stream that was
// lost), answers the full peer set and the current cursor: a restarted node rebuilds from this alone.
//
// Waiting uses XREAD BLOCK, which occupies its connection, so waits run on a small pool of dedicated
// connections (never the shared client), at most MAX_WAITERS_PER_NODE of them per node; when the
// pool is exhausted, or the node holds its share, a poll answers "no changes" after a short pause
// instead of queueing.
import { peerAllowedIps, type Pool } from '../../lib/addresses.js';
import type { FeedPage, FeedPeer } from '../../lib/api.js';
import type { BrokerContext } from '../context.js';
import { unavailable } from '../errors.js';
import { keys } from '../store/keys.js';
import { waitForReady, type Redis } from '../store/redis.js';
import { runFeedRead, type StreamEntry } from './lua.js';
import { nodePool } from './nodes.js';

/** Per-node feed length; a node further behind than this gets the full peer set. */
export const FEED_MAX_LENGTH = 10_000;
/** Longest wait of one long poll (under common 30 s proxy timeouts). */
export const MAX_WAIT_MS = 25_000;
/** Entries returned by one poll at most; the rest come with the next one. */
export const MAX_CHANGES = 1000;
/** Blocking connections per broker. */
export const MAX_WAITERS = 64;
/** Blocking connections one node may hold at once, so no node can take the pool from the others. */
export const MAX_WAITERS_PER_NODE = 2;
/** How long a new blocking connection may take to connect. */
const CONNECT_TIMEOUT_MS = 5000;
/** Pause before answering "no changes" when every blocking connection is busy. */
const BUSY_PAUSE_MS = 1000;

const peerOf = (pool: Pool, publicKey: string, index: number, psk: string | undefined): FeedPeer => ({
  public_key: publicKey,
  ...(psk ? { preshared_key: psk } : {}),
  allowed_ips: peerAllowedIps(index, pool),
});

/** Folds stream entries into the last word per public key. */
function changes(pool: Pool, cursor: string, entries: StreamEntry[]): FeedPage {
  const last = new Map<string, FeedPeer | null>();
  let next = cursor;
  for (const [id, flat] of entries) {
    const f: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) f[flat[i]!] = flat[i + 1]!;
    if (!f.public_key) continue;
    last.delete(f.public_key); // keep the map in the order of each key's last event
    last.set(f.public_key, f.op === 'add' ? peerOf(pool, f.public_key, Number(f.idx), f.psk) : null);
    next = id;
  }
  const peers: FeedPeer[] = [];
  const removed: string[] = [];
  for (const [publicKey, peer] of last) {
    if (peer) peers.push(peer);
    else removed.push(publicKey);
  }
  return { cursor: next, full: false, peers, removed };
}

function fullSet(pool: Pool, cursor: string, flat: string[]): FeedPage {
  const peers: FeedPeer[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const { idx, psk } = JSON.parse(flat[i + 1]!) as { idx: number; psk?: string };
    peers.push(peerOf(pool, flat[i]!, idx, psk));
  }
  peers.sort((a, b) => (a.public_key < b.public_key ? -1 : 1));
  return { cursor, full: true, peers, removed: [] };
}

class Waiters {
  private idle: Redis[] = [];
  private open = 0;
  private closed = false;
  private readonly perNode = new Map<string, number>();

  constructor(private readonly base: Redis) {}

  async acquire(): Promise<Redis | null> {
    if (this.closed) return null;
    const reused = this.idle.pop();
    if (reused) return reused;
    if (this.open >= MAX_WAITERS) return null;
    this.open++;
    const conn = this.base.duplicate();
    conn.on('error', () => {});
    // waitForReady alone would wait as long as Redis stays away; a poll must not hang on it.
    let timer: NodeJS.Timeout | undefined;
    const ready = await Promise.race([
      waitForReady(conn).then(() => true),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), CONNECT_TIMEOUT_MS))),
    ]);
    clearTimeout(timer);
    if (!ready) {
      this.discard(conn);
      throw unavailable();
    }
    return conn;
  }

  /** Claims one of the node's waiting places; false when it holds all of them already. */
  enter(nodeId: string): boolean {
    const held = this.perNode.get(nodeId) ?? 0;
    if (held >= MAX_WAITERS_PER_NODE) return false;
    this.perNode.set(nodeId, held + 1);
    return true;
  }

  leave(nodeId: string): void {
    const held = (this.perNode.get(nodeId) ?? 1) - 1;
    if (held > 0) this.perNode.set(nodeId, held);
    else this.perNode.delete(nodeId);
  }

  release(conn: Redis): void {
    if (this.closed || conn.status !== 'ready') this.discard(conn);
    else this.idle.push(conn);
  }

  /** A connection whose blocked command was abandoned cannot be reused: drop it. */
  discard(conn: Redis): void {
    this.open--;
    conn.disconnect();
  }

  close(): void {
    this.closed = true;
    for (const conn of this.idle.splice(0)) this.discard(conn);
  }
}

const pools = new WeakMap<BrokerContext, Waiters>();

function waitersOf(ctx: BrokerContext): Waiters {
  let pool = pools.get(ctx);
  if (!pool) {
    const created = new Waiters(ctx.redis);
    pools.set(ctx, created);
    ctx.shutdown.addEventListener('abort', () => created.close(), { once: true });
    pool = created;
  }
  return pool;
}

const pause = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });

/**
 * One poll of a node's feed. `waitMs` bounds the wait for changes when there are none yet; `signal`
 * ends it early (client gone, broker shutting down).
 */
export async function pollPeers(
  ctx: BrokerContext,
  node: { id: string; region: string },
  cursor: string,
  waitMs: number,
  signal: AbortSignal,
): Promise<FeedPage> {
  const [first, poolFields] = await Promise.all([
    runFeedRead(ctx.redis, { region: node.region, nodeId: node.id, cursor, maxEntries: MAX_CHANGES }),
    ctx.redis.hmget(keys.regionNode(node.region, node.id), 'pool_v4', 'pool_v6'),
  ]);
  const addressPool = nodePool(poolFields);
  if (first.kind === 'full') return fullSet(addressPool, first.cursor, first.peers);
  if (first.entries.length > 0 || waitMs <= 0) return changes(addressPool, cursor, first.entries);

  const quiet: FeedPage = { cursor, full: false, peers: [], removed: [] };
  const both = AbortSignal.any([signal, ctx.shutdown]);
  if (both.aborted) return quiet;
  const pool = waitersOf(ctx);
  // A node past its share, or a full pool: "no changes" after a short pause, never a queue.
  if (!pool.enter(node.id)) {
    await pause(Math.min(waitMs, BUSY_PAUSE_MS), both);
    return quiet;
  }
  try {
    return await waitForChanges(pool, node, addressPool, cursor, waitMs, both, quiet);
  } finally {
    pool.leave(node.id);
  }
}

async function waitForChanges(
  pool: Waiters,
  node: { id: string; region: string },
  addressPool: Pool,
  cursor: string,
  waitMs: number,
  both: AbortSignal,
  quiet: FeedPage,
): Promise<FeedPage> {
  const conn = await pool.acquire();
  if (!conn) {
    await pause(Math.min(waitMs, BUSY_PAUSE_MS), both);
    return quiet;
  }
  // The caller may have gone while we waited for a connection: an abort listener added now would never fire.
  if (both.aborted) {
    pool.release(conn);
    return quiet;
  }
  // Abandoning a blocked XREAD means dropping its connection.
  const abandon = () => pool.discard(conn);
  both.addEventListener('abort', abandon, { once: true });
  try {
    const reply = (await conn.xread(
      'COUNT',
      MAX_CHANGES,
      'BLOCK',
      Math.min(waitMs, MAX_WAIT_MS),
      'STREAMS',
      keys.nodeFeed(node.region, node.id),
      cursor,
    )) as [string, StreamEntry[]][] | null;
    both.removeEventListener('abort', abandon);
    pool.release(conn);
    return reply?.[0] ? changes(addressPool, cursor, reply[0][1]) : quiet;
  } catch (err) {
    both.removeEventListener('abort', abandon);
    if (both.aborted) return quiet;
    pool.discard(conn);
    throw err;
  }
}
