// Regions: what an operator declares (id, name, country, which tiers may use it) and how healthy
// they are, from the node health the node service writes (store/keys.ts regionNodes and node).
import { TIERS, type Tier } from '../config.js';
import type { BrokerContext } from '../context.js';
import { keys } from '../store/keys.js';
import { execAll, type Redis } from '../store/redis.js';

export interface Region {
  id: string;
  name: string;
  country: string;
  tiers: Tier[];
  createdAt: number;
}

export type RegionStatus = 'active' | 'degraded' | 'down';

export interface RegionHealth {
  status: RegionStatus;
  /** Healthy nodes. */
  nodes: number;
  /** Mean load (0..1) of the healthy nodes, two decimals. */
  load: number;
}

/** A node counts as healthy with a heartbeat within this many intervals (API.md "Exit nodes"). */
export const HEALTHY_INTERVALS = 3;
/** Mean load at or above which a region reads degraded. */
export const DEGRADED_LOAD = 0.9;
/** An unhealthy node seen within this window makes its region degraded; older ones are just gone. */
export const RECENTLY_SEEN_MS = 10 * 60_000;

export const REGION_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;

function regionFrom(h: Record<string, string>): Region | null {
  if (!h.id) return null;
  const tiers = (h.tiers ?? '').split(',').filter((t): t is Tier => (TIERS as readonly string[]).includes(t));
  return { id: h.id, name: h.name ?? h.id, country: h.country ?? '', tiers, createdAt: Number(h.created_at) };
}

export async function getRegion(redis: Redis, regionId: string): Promise<Region | null> {
  if (!REGION_ID.test(regionId)) return null;
  return regionFrom(await redis.hgetall(keys.region(regionId)));
}

/** Creates or replaces a region; `created` tells which. */
export async function upsertRegion(
  ctx: BrokerContext,
  fields: { id: string; name: string; country: string; tiers: Tier[] },
): Promise<{ region: Region; created: boolean }> {
  const existing = await getRegion(ctx.redis, fields.id);
  const region: Region = { ...fields, createdAt: existing?.createdAt ?? ctx.clock() };
  await ctx.redis.hset(keys.region(region.id), {
    id: region.id,
    name: region.name,
    country: region.country,
    tiers: region.tiers.join(','),
    created_at: region.createdAt,
  });
  await ctx.redis.sadd(keys.regions(), region.id);
  return { region, created: existing === null };
}

interface NodeHealthFields {
  load: number;
  draining: boolean;
  heartbeatMs: number;
  lastHeartbeat: number;
}

export function isNodeHealthy(node: NodeHealthFields, nowMs: number): boolean {
  return !node.draining && nowMs - node.lastHeartbeat <= HEALTHY_INTERVALS * node.heartbeatMs;
}

function summarize(nodes: NodeHealthFields[], nowMs: number): RegionHealth {
  const healthy = nodes.filter((n) => isNodeHealthy(n, nowMs));
  const recentlyLost = nodes.some(
    (n) => !isNodeHealthy(n, nowMs) && nowMs - n.lastHeartbeat <= RECENTLY_SEEN_MS,
  );
  if (healthy.length === 0) return { status: 'down', nodes: 0, load: 0 };
  const load = Math.round((healthy.reduce((sum, n) => sum + n.load, 0) / healthy.length) * 100) / 100;
  const status = recentlyLost || load >= DEGRADED_LOAD ? 'degraded' : 'active';
  return { status, nodes: healthy.length, load };
}

/** Every region with its health, in three round trips whatever the number of regions and nodes. */
export async function regionsWithHealth(
  ctx: BrokerContext,
): Promise<{ region: Region; health: RegionHealth }[]> {
  const ids = (await ctx.redis.smembers(keys.regions())).sort();
  if (ids.length === 0) return [];
  const first = ctx.redis.pipeline();
  for (const id of ids) first.hgetall(keys.region(id));
  for (const id of ids) first.zrange(keys.regionNodes(id), 0, -1);
  const replies = await execAll(first);
  const members = replies.slice(ids.length) as string[][];
  const nodeIds = members.flat();
  const fields = nodeIds.length
    ? ((await execAll(
        nodeIds.reduce(
          (p, id) => p.hmget(keys.node(id), 'load', 'draining', 'heartbeat_ms', 'last_heartbeat'),
          ctx.redis.pipeline(),
        ),
      )) as (string | null)[][])
    : [];
  const byNode = new Map<string, NodeHealthFields>();
  nodeIds.forEach((id, i) => {
    const [load, draining, heartbeatMs, lastHeartbeat] = fields[i] ?? [];
    if (lastHeartbeat == null || heartbeatMs == null) return;
    byNode.set(id, {
      load: Math.min(1, Math.max(0, Number(load ?? 0) || 0)),
      draining: draining === '1' || draining === 'true',
      heartbeatMs: Number(heartbeatMs),
      lastHeartbeat: Number(lastHeartbeat),
    });
  });
  const now = ctx.clock();
  return ids.flatMap((_, i) => {
    const region = regionFrom(replies[i] as Record<string, string>);
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
  last_heartbeat: string | null;
  egress_ips: string[];
}

/** Every registered node as the node service recorded it (GET /v1/admin/nodes). */
export async function listNodeSummaries(ctx: BrokerContext): Promise<NodeSummary[]> {
  const ids = (await ctx.redis.smembers(keys.nodes())).sort();
  if (ids.length === 0) return [];
  const hashes = (await execAll(
    ids.reduce((p, id) => p.hgetall(keys.node(id)), ctx.redis.pipeline()),
  )) as Record<string, string>[];
  const now = ctx.clock();
  return ids.map((id, i) => {
    const h = hashes[i] ?? {};
    const lastHeartbeat = h.last_heartbeat ? Number(h.last_heartbeat) : null;
    const draining = h.draining === '1' || h.draining === 'true';
    const health = {
      load: Number(h.load ?? 0) || 0,
      draining,
      heartbeatMs: Number(h.heartbeat_ms ?? 0),
      lastHeartbeat: lastHeartbeat ?? 0,
    };
    let egress: unknown = [];
    try {
      egress = JSON.parse(h.egress_ips ?? '[]');
    } catch {
      egress = [];
    }
    return {
      id,
      region: h.region ?? '',
      endpoint: h.endpoint ?? null,
      public_key: h.public_key ?? null,
      version: h.version ?? null,
      capacity: h.capacity ? Number(h.capacity) : null,
      load: health.load,
      draining,
      healthy: lastHeartbeat !== null && isNodeHealthy(health, now),
      last_heartbeat: lastHeartbeat === null ? null : new Date(lastHeartbeat).toISOString(),
      egress_ips: Array.isArray(egress) ? egress.filter((e): e is string => typeof e === 'string') : [],
    };
  });
}
