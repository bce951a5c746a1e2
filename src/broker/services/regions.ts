// Regions: what an operator declares (id, name, country, which tiers may use it) and how healthy
// they are, from the node health the node service writes (store/keys.ts regionNodes and node).
import { TIERS, type Tier } from '../config.js';
import type { RegionStatus } from '../../lib/api.js';
import type { BrokerContext } from '../context.js';
import { notFound } from '../errors.js';
import { keys } from '../store/keys.js';
import { POOL_PREFIXES, type Pool } from '../../lib/addresses.js';

export interface Region {
  id: string;
  name: string;
  country: string;
  tiers: Tier[];
  /** Where the region's nodes number their peers from (new nodes, and nodes without sessions, on registering). */
  pool: Pool;
  createdAt: number;
}

export interface RegionHealth {
  status: RegionStatus;
  /** Healthy nodes. */
  nodes: number;
  /** Mean load (0..1) of the healthy nodes, two decimals. */
  load: number;
}

/** A node counts as healthy with a heartbeat within this many intervals (docs/API.md "Exit nodes"). */
export const HEALTHY_INTERVALS = 3;
/** Mean load at or above which a region reads degraded. */
export const DEGRADED_LOAD = 0.9;
/** An unhealthy node seen within this window makes its region degraded; older ones are just gone. */
export const RECENTLY_SEEN_MS = 10 * 60_000;

export const REGION_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;

function regionFrom(h: Record<string, string>): Region | null {
  if (!h.id) return null;
  const tiers = (h.tiers ?? '').split(',').filter((t): t is Tier => (TIERS as readonly string[]).includes(t));
  const pool = h.pool_v4 && h.pool_v6 ? { v4: h.pool_v4, v6: h.pool_v6 } : POOL_PREFIXES;
  return {
    id: h.id,
    name: h.name ?? h.id,
    country: h.country ?? '',
    tiers,
    pool,
    createdAt: Number(h.created_at),
  };
}

export async function getRegion(ctx: BrokerContext, regionId: string): Promise<Region | null> {
  if (!REGION_ID.test(regionId)) return null;
  return regionFrom(await ctx.redis.hgetall(keys.region(regionId)));
}

/** Creates or replaces a region (keeping its pool unless one is given); `created` tells which. */
export async function upsertRegion(
  ctx: BrokerContext,
  fields: { id: string; name: string; country: string; tiers: Tier[]; pool?: Partial<Pool> },
): Promise<{ region: Region; created: boolean }> {
  const existing = await getRegion(ctx, fields.id);
  const pool = { ...(existing?.pool ?? POOL_PREFIXES), ...fields.pool };
  const region: Region = { ...fields, pool, createdAt: existing?.createdAt ?? ctx.clock() };
  await ctx.redis.hset(keys.region(region.id), {
    id: region.id,
    name: region.name,
    country: region.country,
    tiers: region.tiers.join(','),
    pool_v4: pool.v4,
    pool_v6: pool.v6,
    created_at: region.createdAt,
  });
  await ctx.redis.sadd(keys.regions(), region.id);
  return { region, created: existing === null };
}

export type RegionChanges = Partial<Pick<Region, 'name' | 'country' | 'tiers'>> & { pool?: Partial<Pool> };

/** Changes some fields of an existing region (404 when there is none); sessions already made keep theirs. */
export async function updateRegion(
  ctx: BrokerContext,
  regionId: string,
  changes: RegionChanges,
): Promise<Region> {
  const existing = await getRegion(ctx, regionId);
  if (!existing) throw notFound(`No region '${regionId}'.`);
  const { region } = await upsertRegion(ctx, {
    id: regionId,
    name: changes.name ?? existing.name,
    country: changes.country ?? existing.country,
    tiers: changes.tiers ?? existing.tiers,
    ...(changes.pool ? { pool: changes.pool } : {}),
  });
  return region;
}

interface NodeHealthFields {
  load: number;
  draining: boolean;
  heartbeatMs: number;
  lastHeartbeat: number;
}

const NODE_HEALTH_FIELDS = ['load', 'draining', 'heartbeat_ms', 'last_heartbeat'] as const;

/** The health part of a node record (store/keys.ts node); null when it never reported. */
function nodeHealthFrom([load, draining, heartbeatMs, lastHeartbeat]: (
  string | null | undefined
)[]): NodeHealthFields | null {
  if (!lastHeartbeat || !heartbeatMs) return null;
  return {
    load: Math.min(1, Math.max(0, Number(load ?? 0) || 0)),
    draining: draining === '1' || draining === 'true',
    heartbeatMs: Number(heartbeatMs),
    lastHeartbeat: Number(lastHeartbeat),
  };
}

/**
 * healthy: heartbeats in time; draining: heartbeats in time, moving its sessions away; lost: heartbeats
 * stopped without a drain (crashed, cut off); stopped: drained, then stopped heartbeating (left on purpose).
 */
export const NODE_STATES = ['healthy', 'draining', 'lost', 'stopped'] as const;
export type NodeState = (typeof NODE_STATES)[number];

/** Whether a node whose last heartbeat was at `lastHeartbeat` with interval `heartbeatMs` is still in time. */
export const heartbeatInTime = (lastHeartbeat: number, heartbeatMs: number, nowMs: number) =>
  nowMs - lastHeartbeat <= HEALTHY_INTERVALS * heartbeatMs;

function nodeState(node: NodeHealthFields, nowMs: number): NodeState {
  const fresh = heartbeatInTime(node.lastHeartbeat, node.heartbeatMs, nowMs);
  if (node.draining) return fresh ? 'draining' : 'stopped';
  return fresh ? 'healthy' : 'lost';
}

/** The state of every node that ever reported in a region. */
export async function nodeStates(ctx: BrokerContext, regionId: string): Promise<NodeState[]> {
  const ids = await ctx.redis.zrange(keys.regionNodes(regionId), 0, -1);
  const fields = await Promise.all(ids.map((id) => ctx.redis.hmget(keys.node(id), ...NODE_HEALTH_FIELDS)));
  const now = ctx.clock();
  return fields.flatMap((f) => {
    const health = nodeHealthFrom(f);
    return health ? [nodeState(health, now)] : [];
  });
}

function summarize(nodes: NodeHealthFields[], nowMs: number): RegionHealth {
  const states = nodes.map((n) => nodeState(n, nowMs));
  const healthy = nodes.filter((_, i) => states[i] === 'healthy');
  // Lost, not any unhealthy node: one that drained and stopped left on purpose (docs/API.md).
  const recentlyLost = nodes.some(
    (n, i) => states[i] === 'lost' && nowMs - n.lastHeartbeat <= RECENTLY_SEEN_MS,
  );
  if (healthy.length === 0) return { status: 'down', nodes: 0, load: 0 };
  const load = Math.round((healthy.reduce((sum, n) => sum + n.load, 0) / healthy.length) * 100) / 100;
  const status = recentlyLost || load >= DEGRADED_LOAD ? 'degraded' : 'active';
  return { status, nodes: healthy.length, load };
}

// Reads below touch keys of many slots, so they are issued together as single commands: the client's
// auto-pipelining sends each batch in one round trip (per node, on a Cluster) instead of a pipeline
// that a Cluster would refuse across slots.

/** Every region with its health, in three round trips whatever the number of regions and nodes. */
export async function regionsWithHealth(
  ctx: BrokerContext,
): Promise<{ region: Region; health: RegionHealth }[]> {
  const ids = (await ctx.redis.smembers(keys.regions())).sort();
  const [regions, members] = await Promise.all([
    Promise.all(ids.map((id) => ctx.redis.hgetall(keys.region(id)))),
    Promise.all(ids.map((id) => ctx.redis.zrange(keys.regionNodes(id), 0, -1))),
  ]);
  const nodeIds = [...new Set(members.flat())];
  const fields = await Promise.all(
    nodeIds.map((id) => ctx.redis.hmget(keys.node(id), ...NODE_HEALTH_FIELDS)),
  );
  const byNode = new Map(nodeIds.map((id, i) => [id, nodeHealthFrom(fields[i] ?? [])]));
  const now = ctx.clock();
  return ids.flatMap((_, i) => {
    const region = regionFrom(regions[i] ?? {});
    if (!region) return [];
    const nodes = (members[i] ?? []).flatMap((n) => byNode.get(n) ?? []);
    return [{ region, health: summarize(nodes, now) }];
  });
}

export interface NodeSummary {
  id: string;
  region: string;
  endpoint: string | null;
  public_key: string | null;
  version: string | null;
  capacity: number | null;
  load: number;
  draining: boolean;
  healthy: boolean;
  /** null for a node that never reported. */
  state: NodeState | null;
  last_heartbeat: string | null;
  egress_ips: string[];
}

function stringList(json: string | undefined): string[] {
  try {
    const value: unknown = JSON.parse(json ?? '[]');
    return Array.isArray(value) ? value.filter((e): e is string => typeof e === 'string') : [];
  } catch {
    return [];
  }
}

/** Every registered node as the node service recorded it (GET /v1/admin/nodes). */
export async function listNodeSummaries(ctx: BrokerContext): Promise<NodeSummary[]> {
  const ids = (await ctx.redis.smembers(keys.nodes())).sort();
  const hashes = await Promise.all(ids.map((id) => ctx.redis.hgetall(keys.node(id))));
  const now = ctx.clock();
  return ids.map((id, i) => {
    const h = hashes[i] ?? {};
    const health = nodeHealthFrom(NODE_HEALTH_FIELDS.map((f) => h[f]));
    const state = health ? nodeState(health, now) : null;
    return {
      id,
      region: h.region ?? '',
      endpoint: h.endpoint ?? null,
      public_key: h.public_key ?? null,
      version: h.version ?? null,
      capacity: h.capacity ? Number(h.capacity) : null,
      load: health?.load ?? 0,
      draining: health?.draining ?? h.draining === '1',
      healthy: state === 'healthy',
      state,
      last_heartbeat: health ? new Date(health.lastHeartbeat).toISOString() : null,
      egress_ips: stringList(h.egress_ips),
    };
  });
}
