// Exit failover (docs/API.md "Exit nodes"): when a node is lost (3 missed heartbeats) or removed, each
// of its sessions moves to another healthy node of the region with room and the same pool, keeping its
// client public key, addresses (leased per region) and preshared key; the feeds tell both nodes. A
// session with nowhere to go leaves its node, reads `node_lost` and gives its account's concurrency
// slot back, so its user can connect again at once.
//
// Every broker's reaper runs failoverRound. The per-node script (services/lua.ts FAILOVER_NODE) checks
// the node is still lost and moves only peers still on it, so two brokers' rounds never move a peer
// twice, and a round cut short is finished by the next one.
import type { Counter } from 'prom-client';
import type { BrokerContext } from '../context.js';
import { keys } from '../store/keys.js';
import { FEED_MAX_LENGTH } from './feed.js';
import { runFailoverNode } from './lua.js';
import { isLost, lastHeartbeats } from './nodes.js';

/** Peers handled per script call: bounds how long one call holds Redis. */
const BATCH = 256;

export interface FailoverCount {
  moved: number;
  /** Sessions that found no room: they read node_lost and hold no slot. */
  lost: number;
}

const counters = new WeakMap<BrokerContext, Counter<'outcome'>>();

/** tunnelbyte_broker_sessions_failed_over_total{outcome="moved|lost"}: this broker's failover work. */
export function failoverCounter(ctx: BrokerContext): Counter<'outcome'> {
  let counter = counters.get(ctx);
  if (!counter) {
    counter = ctx.metrics.counter(
      'tunnelbyte_broker_sessions_failed_over_total',
      'Sessions of lost or removed nodes this broker moved to another node (moved) or found no room for (lost).',
      ['outcome'],
    );
    for (const outcome of ['moved', 'lost']) counter.inc({ outcome }, 0);
    counters.set(ctx, counter);
  }
  return counter;
}

/** A session the failover could not place holds no concurrency slot. */
async function releaseSlots(ctx: BrokerContext, lost: { sessionId: string; accountId: string }[]) {
  await Promise.all(
    lost.map(({ sessionId, accountId }) =>
      accountId ? ctx.redis.zrem(keys.accountLiveSessions(accountId), sessionId) : undefined,
    ),
  );
}

/** Fails over the peers of one node (or only `sessionId`'s); nothing when the node is alive after all. */
export async function failoverNode(
  ctx: BrokerContext,
  region: string,
  nodeId: string,
  sessionId?: string,
): Promise<FailoverCount> {
  const count: FailoverCount = { moved: 0, lost: 0 };
  let cursor = '0';
  do {
    const done = await runFailoverNode(ctx.redis, {
      region,
      nodeId,
      now: ctx.clock(),
      heartbeatMs: ctx.config.heartbeatMs,
      cursor,
      batch: BATCH,
      feedMaxLength: FEED_MAX_LENGTH,
      sessionId,
    });
    if (done.outcome === 'alive') break;
    await releaseSlots(ctx, done.lost);
    count.moved += done.moved.length;
    count.lost += done.lost.length;
    failoverCounter(ctx).inc({ outcome: 'moved' }, done.moved.length);
    failoverCounter(ctx).inc({ outcome: 'lost' }, done.lost.length);
    cursor = done.cursor;
  } while (cursor !== '0');
  return count;
}

/** The nodes of a region whose sessions must move: lost ones that still carry peers, and removed ones. */
async function nodesToFailOver(ctx: BrokerContext, region: string): Promise<string[]> {
  const [members, removed] = await Promise.all([
    ctx.redis.zrange(keys.regionNodes(region), 0, -1),
    ctx.redis.smembers(keys.regionRemovedNodes(region)),
  ]);
  const beats = await lastHeartbeats(ctx, region, members);
  const now = ctx.clock();
  const lost = members.filter((id) => isLost(beats.get(id), now));
  const carrying = await Promise.all(lost.map((id) => ctx.redis.exists(keys.nodePeers(region, id))));
  return [...lost.filter((_, i) => carrying[i] === 1), ...removed];
}

/** One round over every region (the reaper's); returns what it moved and lost. */
export async function failoverRound(ctx: BrokerContext): Promise<FailoverCount> {
  const total: FailoverCount = { moved: 0, lost: 0 };
  for (const region of await ctx.redis.smembers(keys.regions())) {
    for (const nodeId of await nodesToFailOver(ctx, region)) {
      const { moved, lost } = await failoverNode(ctx, region, nodeId);
      total.moved += moved;
      total.lost += lost;
    }
  }
  return total;
}

/**
 * Before an account is refused at its concurrency limit: each of its live sessions whose node is lost is
 * failed over now instead of at the reaper's next round, and one already lost, closed or expired gives
 * its slot back (a broker may have died between the region step and the account step). Returns the
 * number of slots freed.
 */
export async function settleLostSessions(ctx: BrokerContext, accountId: string): Promise<number> {
  const live = await ctx.redis.zrange(keys.accountLiveSessions(accountId), 0, -1);
  if (live.length === 0) return 0;
  const regions = await ctx.redis.hmget(keys.accountSessions(accountId), ...live);
  const freed = await Promise.all(
    live.map(async (sessionId, i) => {
      const region = regions[i];
      if (!region) return 0; // a reservation whose session is still being made
      const [node, state] = await ctx.redis.hmget(keys.session(region, sessionId), 'node', 'state');
      if (state === 'lost' || state === 'closed' || state === 'expired') {
        return ctx.redis.zrem(keys.accountLiveSessions(accountId), sessionId);
      }
      if (state !== 'open' || !node) return 0;
      const beat = (await lastHeartbeats(ctx, region, [node])).get(node);
      if (!isLost(beat, ctx.clock())) return 0;
      return (await failoverNode(ctx, region, node, sessionId)).lost;
    }),
  );
  return freed.reduce((a, b) => a + b, 0);
}
