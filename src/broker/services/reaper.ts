// The reaper: sessions past their expiry leave their node's feed and give their address back, and the
// sessions of lost or removed nodes move to other nodes (services/failover.ts). Every broker runs it;
// no lock is needed because closing is one idempotent script that re-checks the session is still open
// and due, so two brokers reaping the same session close it once, and the failover script likewise
// moves only what is still on a node that is still lost.
import type { BrokerContext } from '../context.js';
import { isStoreUnavailable } from '../errors.js';
import { keys } from '../store/keys.js';
import { failoverCounter, failoverRound } from './failover.js';
import { migrateLeases } from './lease-migration.js';
import { closeSession } from './sessions.js';
/** Sessions closed per region per round trip. */
const BATCH = 100;

/** Reaps every due session of every region; returns how many this call closed. */
export async function reapExpired(ctx: BrokerContext): Promise<number> {
  const regions = await ctx.redis.smembers(keys.regions());
  let reaped = 0;
  for (const region of regions) {
    for (;;) {
      const now = ctx.clock();
      const due = await ctx.redis.zrangebyscore(keys.regionExpiry(region), '-inf', now, 'LIMIT', 0, BATCH);
      let closed = 0;
      for (const sessionId of due) {
        const outcome = await closeSession(ctx, region, sessionId, { state: 'expired', onlyIfDue: true });
        if (outcome === 'closed') closed++;
        // An entry whose record vanished or was closed elsewhere is dropped, never retried forever.
        else if (outcome !== 'not_due') await ctx.redis.zrem(keys.regionExpiry(region), sessionId);
      }
      reaped += closed;
      if (due.length < BATCH || closed === 0) break;
    }
  }
  return reaped;
}

/**
 * Moves leases from before regional leases at once (services/lease-migration.ts), then runs
 * reapExpired and failoverRound every TB_REAP_INTERVAL_MS until the broker shuts down. A migration
 * that met a Redis outage is tried again before each round until it has run.
 */
export function startReaper(ctx: BrokerContext): void {
  if (ctx.shutdown.aborted) return;
  failoverCounter(ctx); // its series read 0 from the start
  let running = false;
  // One migration at a time: a round waits for the one under way, and one that failed is tried again.
  let migration: Promise<void> | undefined;
  const migrate = () =>
    (migration ??= migrateLeases(ctx).then(
      ({ moved, waiting, freed }) => {
        if (moved + waiting > 0)
          ctx.logger.info({ moved, waiting, freed }, 'address leases from before regional leases moved');
      },
      (err: unknown) => {
        migration = undefined;
        throw err;
      },
    ));
  void migrate().catch(() => undefined); // said by the first round if Redis stays away
  const round = async () => {
    await migrate();
    await reapExpired(ctx);
    const { moved, lost } = await failoverRound(ctx);
    if (moved + lost > 0) ctx.logger.info({ moved, lost }, 'sessions of lost nodes failed over');
  };
  // Redis being away is said once per outage, as one line without a stack, not every round.
  let paused = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    round()
      .then(() => {
        if (paused) ctx.logger.info('reaper resumed: Redis answers again');
        paused = false;
      })
      .catch((err: unknown) => {
        if (!isStoreUnavailable(err)) ctx.logger.warn({ err }, 'reaper round failed');
        else if (!paused) {
          paused = true;
          ctx.logger.warn({ cause: (err as Error).message }, 'reaper paused: Redis unavailable');
        }
      })
      .finally(() => {
        running = false;
      });
  }, ctx.config.reapIntervalMs);
  timer.unref();
  ctx.shutdown.addEventListener('abort', () => clearInterval(timer), { once: true });
}
