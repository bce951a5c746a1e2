// Exit nodes: registration (bound to the region of their tbn_ enrollment token), heartbeats that
// record health by region and turn per-peer byte counters into usage, and the tunnel address plan.
//
// Two records per node: `node:<id>` (store/keys.ts node) is the descriptive record that GET
// /v1/regions and GET /v1/admin/nodes read; `{region:<id>}:node:<id>` plus the region's `nodes`
// ZSET (scored by last heartbeat) are what the session-creation script reads, in the region's slot.
import { createHash } from 'node:crypto';
import { POOL_PREFIXES, poolMaxIndex, type Pool } from '../../lib/addresses.js';
import type { BrokerContext } from '../context.js';
import { conflict, invalidRequest, notFound, unauthorized } from '../errors.js';
import { keys } from '../store/keys.js';
import { execAll } from '../store/redis.js';
import { heldByOthers, recordEgressIps, releaseEgressIps } from './egress.js';
import { revokeNodeToken, type NodeToken } from './enrollment.js';
import { runHeartbeat, type UsageReport } from './lua.js';
import { getRegion, HEALTHY_INTERVALS, heartbeatInTime } from './regions.js';
import { addUsage, type PeriodTotal, type UsageDelta } from './usage.js';

// Peer reports applied per heartbeat script: Redis serves nothing else while a script runs, so a
// report of thousands of peers is applied in batches of this many (~1 ms each).
const PEERS_PER_SCRIPT = 500;

/**
 * Oldest report (ms) at `nowMs` of a node that still counts as live for egress attribution: 3 of this
 * broker's heartbeat intervals (TB_HEARTBEAT_MS).
 */
const liveSince = (ctx: BrokerContext, nowMs: number) => nowMs - HEALTHY_INTERVALS * ctx.config.heartbeatMs;

/** The pool a node registered with (the default for records written before pools were settings). */
export function nodePool(fields: (string | null | undefined)[]): Pool {
  const [v4, v6] = fields;
  return v4 && v6 ? { v4, v6 } : POOL_PREFIXES;
}

// ── registration and heartbeats ─────────────────────────────────────────────────────────────────

export interface NodeRegistration {
  region: string;
  endpoint: string;
  publicKey: string;
  egressIps: string[];
  capacity: number;
  version: string;
}

export interface NodeRecord {
  id: string;
  region: string;
  tokenId: string;
  endpoint: string;
  publicKey: string;
  egressIps: string[];
}

/**
 * A node keeps its id across restarts and re-registrations: it is derived from the enrollment and the
 * node's WireGuard public key, so a restarted node finds its sessions (and feed) where it left them.
 */
export function nodeIdFor(tokenId: string, publicKey: string): string {
  const digest = createHash('sha256').update(`${tokenId}\0${publicKey}`).digest();
  const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  return `node_${[...digest.subarray(0, 20)].map((b) => alphabet[b % 62]).join('')}`;
}

/** Registers (or re-registers) a node in its token's region, which must have been declared. */
export async function registerNode(
  ctx: BrokerContext,
  token: NodeToken,
  input: NodeRegistration,
): Promise<{ nodeId: string; heartbeatMs: number; pool: Pool }> {
  if (input.region !== token.region) {
    throw invalidRequest('region', `This node token enrolls nodes in region ${token.region}.`);
  }
  const region = await getRegion(ctx, input.region);
  if (!region) throw invalidRequest('region', 'Unknown region.');
  const maxCapacity = ctx.config.limits.nodeMaxCapacity;
  if (input.capacity > maxCapacity) {
    throw invalidRequest('capacity', `capacity is at most ${maxCapacity} on this broker.`);
  }
  const nodeId = nodeIdFor(token.tokenId, input.publicKey);
  const now = ctx.clock();
  if (await ctx.redis.sismember(keys.removedNodes(), nodeId)) {
    throw unauthorized('This node was removed by an operator.');
  }
  const taken = await heldByOthers(ctx, nodeId, input.egressIps, liveSince(ctx, now));
  if (taken.length > 0) {
    throw invalidRequest('egress_ips', `${taken.join(', ')}: held by another live node.`);
  }
  // The token's node cap: a new node joins its set only while there is room.
  const enrolled = keys.nodeTokenNodes(token.tokenId);
  if ((await ctx.redis.sadd(enrolled, nodeId)) === 1 && (await ctx.redis.scard(enrolled)) > token.maxNodes) {
    await ctx.redis.srem(enrolled, nodeId);
    throw conflict(`This node token enrolls at most ${token.maxNodes} nodes.`);
  }
  const regionKey = keys.regionNode(input.region, nodeId);
  const [peers, held] = await Promise.all([
    ctx.redis.hlen(keys.nodePeers(input.region, nodeId)),
    ctx.redis.hmget(regionKey, 'pool_v4', 'pool_v6'),
  ]);
  const pool = peers > 0 ? nodePool(held) : region.pool;
  const { heartbeatMs } = ctx.config;
  // The region-slot half first: once the ZSET lists the node, sessions may be placed on it.
  await execAll(
    ctx.redis
      .multi()
      .hset(regionKey, {
        endpoint: input.endpoint,
        public_key: input.publicKey,
        capacity: input.capacity,
        token_id: token.tokenId,
        draining: '0',
        pool_v4: pool.v4,
        pool_v6: pool.v6,
        max_index: poolMaxIndex(pool),
        heartbeat_ms: heartbeatMs,
      })
      .hsetnx(regionKey, 'load', '0')
      .srem(keys.regionRemovedNodes(input.region), nodeId)
      .zadd(keys.regionNodes(input.region), now, nodeId),
  );
  await ctx.redis.hset(keys.node(nodeId), {
    id: nodeId,
    region: input.region,
    token_id: token.tokenId,
    endpoint: input.endpoint,
    public_key: input.publicKey,
    capacity: input.capacity,
    version: input.version,
    draining: '0',
    heartbeat_ms: heartbeatMs,
    last_heartbeat: now,
    egress_ips: JSON.stringify(input.egressIps),
  });
  await ctx.redis.hsetnx(keys.node(nodeId), 'registered_at', now);
  await ctx.redis.hsetnx(keys.node(nodeId), 'load', '0');
  await ctx.redis.sadd(keys.nodes(), nodeId);
  await recordEgressIps(ctx, nodeId, input.region, input.egressIps, now, liveSince(ctx, now));
  return { nodeId, heartbeatMs, pool };
}

/**
 * Takes a node out: no new sessions go to it, its sessions move to other nodes of the region (the
 * reaper's next failover round, services/failover.ts), its calls get 404, its egress IPs are free for
 * another node at once, and (with `ban`) it may not register again. False for an unknown node.
 */
export async function removeNode(ctx: BrokerContext, nodeId: string, ban: boolean): Promise<boolean> {
  const node = await getNode(ctx, nodeId);
  if (!node) return false;
  if (ban) await ctx.redis.sadd(keys.removedNodes(), nodeId);
  await execAll(
    ctx.redis
      .multi()
      .zrem(keys.regionNodes(node.region), nodeId)
      .sadd(keys.regionRemovedNodes(node.region), nodeId),
  );
  await ctx.redis.del(keys.node(nodeId));
  await ctx.redis.srem(keys.nodes(), nodeId);
  await releaseEgressIps(ctx, nodeId, node.egressIps);
  return true;
}

/** Revokes a node token and takes out every node it enrolled (404 for an unknown token). */
export async function revokeEnrollment(ctx: BrokerContext, tokenId: string): Promise<void> {
  const nodeIds = await revokeNodeToken(ctx, tokenId);
  await Promise.all(nodeIds.map((id) => removeNode(ctx, id, false)));
}

/** The registered node, or null. */
export async function getNode(ctx: BrokerContext, nodeId: string): Promise<NodeRecord | null> {
  const h = await ctx.redis.hgetall(keys.node(nodeId));
  if (!h.id || !h.region || !h.token_id) return null;
  let egress: unknown;
  try {
    egress = JSON.parse(h.egress_ips ?? '[]');
  } catch {
    egress = [];
  }
  return {
    id: h.id,
    region: h.region,
    tokenId: h.token_id,
    endpoint: h.endpoint ?? '',
    publicKey: h.public_key ?? '',
    egressIps: Array.isArray(egress) ? egress.filter((e): e is string => typeof e === 'string') : [],
  };
}

/** The node `nodeId`, if `token` enrolled it; else 404 (never reveal which). */
export async function ownNode(ctx: BrokerContext, token: NodeToken, nodeId: string): Promise<NodeRecord> {
  const node = await getNode(ctx, nodeId);
  if (!node || node.tokenId !== token.tokenId) throw notFound('No such node.');
  return node;
}

export interface PeerReport {
  publicKey: string;
  rxBytes: number;
  txBytes: number;
  /** ms since the epoch; 0 = never. */
  lastHandshakeAt: number;
}

export interface Heartbeat {
  load: number;
  draining: boolean;
  peers: PeerReport[];
}

/**
 * Records a heartbeat. Health and the sessions' counters change in region-slot scripts, a batch of
 * peers each; the byte deltas they return are then added to the accounts' periods (a second step: a
 * broker that dies in between loses that one report's usage, which errs in the user's favour and
 * never double-counts).
 * Answers the new period totals of the accounts it counted bytes for, or null for a node the store
 * does not know (it must register again).
 */
export async function recordHeartbeat(
  ctx: BrokerContext,
  node: NodeRecord,
  beat: Heartbeat,
): Promise<PeriodTotal[] | null> {
  const now = ctx.clock();
  // Health goes with the first batch, so a long report never delays it; no one script runs long.
  const usage: UsageReport[] = [];
  for (let from = 0; from === 0 || from < beat.peers.length; from += PEERS_PER_SCRIPT) {
    const batch = await runHeartbeat(ctx.redis, {
      region: node.region,
      nodeId: node.id,
      now,
      load: beat.load,
      draining: beat.draining,
      reports: beat.peers
        .slice(from, from + PEERS_PER_SCRIPT)
        .map((p) => [p.publicKey, p.rxBytes, p.txBytes, p.lastHandshakeAt]),
    });
    if (!batch) return null;
    usage.push(...batch);
  }
  // The interval this answer hands the node is the one its health is judged by from now on.
  const { heartbeatMs } = ctx.config;
  await Promise.all([
    ctx.redis.hset(keys.node(node.id), {
      load: beat.load,
      draining: beat.draining ? '1' : '0',
      last_heartbeat: now,
      heartbeat_ms: heartbeatMs,
    }),
    ctx.redis.hset(keys.regionNode(node.region, node.id), 'heartbeat_ms', heartbeatMs),
  ]);
  await recordEgressIps(ctx, node.id, node.region, node.egressIps, now, liveSince(ctx, now));
  const deltas = usage.map(([accountId, anchorMs, bytes]): UsageDelta => ({ accountId, anchorMs, bytes }));
  return addUsage(ctx, deltas, now);
}

/** A node's last heartbeat (ms) and the interval it was told to keep. */
export interface NodeBeat {
  at: number;
  intervalMs: number;
}

/** Whether the node missed 3 of its own heartbeat intervals (or never reported): docs/API.md "Exit nodes". */
export const isLost = (beat: NodeBeat | undefined, nowMs: number) =>
  !beat || !heartbeatInTime(beat.at, beat.intervalMs, nowMs);

/** Last heartbeat of each node of a region, by id; nodes never seen (or removed) are absent. */
export async function lastHeartbeats(
  ctx: BrokerContext,
  region: string,
  nodeIds: string[],
): Promise<Map<string, NodeBeat>> {
  const unique = [...new Set(nodeIds)];
  const [scores, intervals] = await Promise.all([
    unique.length ? ctx.redis.zmscore(keys.regionNodes(region), ...unique) : [],
    Promise.all(unique.map((id) => ctx.redis.hget(keys.regionNode(region, id), 'heartbeat_ms'))),
  ]);
  const out = new Map<string, NodeBeat>();
  unique.forEach((id, i) => {
    const score = scores[i];
    if (score != null) {
      out.set(id, { at: Number(score), intervalMs: Number(intervals[i]) || ctx.config.heartbeatMs });
    }
  });
  return out;
}
