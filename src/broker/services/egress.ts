// IP attribution (GET /v1/ip/{addr}): which exit node held an egress IP, and when. Abuse desks ask
// about an address at a moment; users are never part of the answer. Each IP keeps a short list of
// holding periods; the node service calls recordEgressIps on register and on heartbeats.
import type { BrokerContext } from '../context.js';
import { canonicalIp } from '../ip.js';
import { keys, TTL } from '../store/keys.js';
import { LuaScript } from '../store/redis.js';

/** Holding periods kept per IP. */
const MAX_PERIODS = 100;
/** The latest holder still counts this long after its last report (heartbeats are periodic). */
export const LAST_SEEN_GRACE_MS = 5 * 60_000;

export interface HoldingPeriod {
  node: string;
  region: string;
  first_seen: number;
  last_seen: number;
}

// Extends the latest period when the same node still holds the IP, else opens a new one.
// One key per call, so it is Redis-Cluster safe.
const RECORD = new LuaScript(
  'record-egress-ip',
  `local last = redis.call('LINDEX', KEYS[1], -1)
local now = tonumber(ARGV[3])
if last then
  local entry = cjson.decode(last)
  if entry.node == ARGV[1] and entry.region == ARGV[2] then
    if now > entry.last_seen then entry.last_seen = now end
    redis.call('LSET', KEYS[1], -1, cjson.encode(entry))
    redis.call('EXPIRE', KEYS[1], ARGV[4])
    return 0
  end
end
redis.call('RPUSH', KEYS[1], cjson.encode({node = ARGV[1], region = ARGV[2], first_seen = now, last_seen = now}))
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[5]), -1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1`,
);

/** Records that `nodeId` in `region` egresses from `ips` at `nowMs`; malformed entries are skipped. */
export async function recordEgressIps(
  ctx: BrokerContext,
  nodeId: string,
  region: string,
  ips: readonly string[],
  nowMs: number,
): Promise<string[]> {
  const canonical = [...new Set(ips.map(canonicalIp).filter((ip): ip is string => ip !== null))];
  await Promise.all(
    canonical.map((ip) =>
      RECORD.run(ctx.redis, [keys.ipHistory(ip)], [nodeId, region, nowMs, TTL.ipHistorySeconds, MAX_PERIODS]),
    ),
  );
  return canonical;
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
