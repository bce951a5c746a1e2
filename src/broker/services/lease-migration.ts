// Address leases from before they were regional (services/lua.ts LEASES): each broker moves the leases of
// the open sessions of every region to their pool's regional lease when it starts, in batches, then puts
// the indices nobody holds below each pool's counter back on its free list. Sessions whose index another
// session already holds wait for it and keep their address on their own node. Idempotent, so every
// broker of a fleet may run it at once. A broker of the version before regional leases, still running
// during a rolling upgrade, keeps writing the old layout: the next broker start moves those too.
import type { BrokerContext } from '../context.js';
import { keys } from '../store/keys.js';
import { runFreeLeaseGaps, runMigrateLeases } from './lua.js';

/** Sessions per script call: bounds how long one call holds Redis. */
const BATCH = 500;

export interface LeaseMigration {
  /** Sessions whose lease became regional. */
  moved: number;
  /** Sessions whose index another session holds: they wait for it. */
  waiting: number;
  /** Unheld indices put back on free lists. */
  freed: number;
}

export async function migrateLeases(ctx: BrokerContext): Promise<LeaseMigration> {
  const total: LeaseMigration = { moved: 0, waiting: 0, freed: 0 };
  for (const region of await ctx.redis.smembers(keys.regions())) {
    const pools = new Set<string>();
    let cursor = '0';
    do {
      const [next, flat] = await ctx.redis.zscan(keys.regionExpiry(region), cursor, 'COUNT', BATCH);
      const sessionIds = flat.filter((_, i) => i % 2 === 0);
      if (sessionIds.length > 0) {
        const batch = await runMigrateLeases(ctx.redis, region, sessionIds);
        total.moved += batch.moved;
        total.waiting += batch.waiting;
        for (const pool of batch.pools) pools.add(pool);
      }
      cursor = next;
    } while (cursor !== '0');
    for (const pool of pools) total.freed += await runFreeLeaseGaps(ctx.redis, region, pool);
  }
  return total;
}
