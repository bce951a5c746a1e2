// IP attribution (GET /v1/ip/{addr}): which exit node held an egress IP, and when. Abuse desks ask
// about an address at a moment; users are never part of the answer. Each IP keeps a short list of
// holding periods; the node service calls recordEgressIps on register and on heartbeats.
import type { BrokerContext } from '../context.js';
import { canonicalIp } from '../ip.js';
import { keys, TTL } from '../store/keys.js';
import { runRecordEgressIp, runReleaseEgressIp } from './lua.js';

/** Holding periods kept per IP. */
const MAX_PERIODS = 100;
/** The latest holder still counts this long after its last report (heartbeats are periodic). */
export const LAST_SEEN_GRACE_MS = 5 * 60_000;

export interface HoldingPeriod {
  node: string;
  region: string;
  first_seen: number;
  last_seen: number;
  /** Its node was taken out by an operator: the IP is free for another node from then on. */
  released?: boolean;
}

const canonicalSet = (ips: readonly string[]) => [
  ...new Set(ips.map(canonicalIp).filter((ip): ip is string => ip !== null)),
];

/** Of `ips`, those another node reported at or after `liveSince` (ms): they are its, not `nodeId`'s. */
export async function heldByOthers(
  ctx: BrokerContext,
  nodeId: string,
  ips: readonly string[],
  liveSince: number,
): Promise<string[]> {
  const canonical = canonicalSet(ips);
  const latest = await Promise.all(canonical.map((ip) => lookupHolder(ctx, ip, undefined)));
  return canonical.filter((_, i) => {
    const holder = latest[i];
    return (
      holder !== null &&
      holder !== undefined &&
      holder.node !== nodeId &&
      holder.last_seen >= liveSince &&
      !holder.released
    );
  });
}

/**
 * Records that `nodeId` in `region` egresses from `ips` at `nowMs`; malformed entries are skipped, and
 * so are IPs another node reported at or after `liveSince` (a node cannot take over a live node's IP).
 */
export async function recordEgressIps(
  ctx: BrokerContext,
  nodeId: string,
  region: string,
  ips: readonly string[],
  nowMs: number,
  liveSince: number,
): Promise<string[]> {
  const canonical = canonicalSet(ips);
  await Promise.all(
    canonical.map((ip) =>
      runRecordEgressIp(ctx.redis, {
        ip,
        nodeId,
        region,
        now: nowMs,
        ttlSeconds: TTL.ipHistorySeconds,
        maxPeriods: MAX_PERIODS,
        liveSince,
      }),
    ),
  );
  return canonical;
}

/** What `nodeId` held of `ips` is free for other nodes at once (it was taken out). */
export async function releaseEgressIps(
  ctx: BrokerContext,
  nodeId: string,
  ips: readonly string[],
): Promise<void> {
  await Promise.all(canonicalSet(ips).map((ip) => runReleaseEgressIp(ctx.redis, ip, nodeId)));
}

async function history(ctx: BrokerContext, ip: string): Promise<HoldingPeriod[]> {
  const raw = await ctx.redis.lrange(keys.ipHistory(ip), 0, -1);
  return raw.map((entry) => JSON.parse(entry) as HoldingPeriod);
}

/** The holder of canonical `ip` at `atMs`, or the latest holder when `atMs` is undefined. */
export async function lookupHolder(
  ctx: BrokerContext,
  ip: string,
  atMs: number | undefined,
): Promise<HoldingPeriod | null> {
  const periods = await history(ctx, ip);
  if (atMs === undefined) return periods.at(-1) ?? null;
  for (let i = periods.length - 1; i >= 0; i--) {
    const p = periods[i]!;
    const end = i === periods.length - 1 ? p.last_seen + LAST_SEEN_GRACE_MS : p.last_seen;
    if (p.first_seen <= atMs && atMs <= end) return p;
  }
  return null;
}
