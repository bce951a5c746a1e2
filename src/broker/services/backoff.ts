// Login back-off against password guessing (docs/API.md "Rate limits"): failures are counted per source
// IP and per email; past a free allowance each further failure doubles the wait before the next
// attempt, up to a cap. A success clears the email's count. While locked, attempts are refused
// before any password is checked.
import type { BrokerContext } from '../context.js';
import { rateLimited } from '../errors.js';
import { keys, TTL } from '../store/keys.js';
import { execAll } from '../store/redis.js';

export const BACKOFF = {
  freeFailuresPerEmail: 5,
  freeFailuresPerIp: 20,
  maxDelaySeconds: 15 * 60,
} as const;

/** Seconds to wait after the `failures`-th failure, given `free` failures without a wait. */
export function backoffSeconds(failures: number, free: number): number {
  if (failures < free) return 0;
  return Math.min(2 ** (failures - free), BACKOFF.maxDelaySeconds);
}

interface Counter {
  key: string;
  free: number;
}

const countersFor = (ip: string, email: string): Counter[] => [
  { key: keys.loginFailuresByIp(ip), free: BACKOFF.freeFailuresPerIp },
  { key: keys.loginFailuresByEmail(email), free: BACKOFF.freeFailuresPerEmail },
];

/** Throws rate_limited (with retry_after) while either counter is in its back-off. */
export async function checkLoginAllowed(ctx: BrokerContext, ip: string, email: string): Promise<void> {
  const counters = countersFor(ip, email);
  // Two slots: issued together, auto-pipelined into one round trip.
  const states = await Promise.all(counters.map((c) => ctx.redis.hmget(c.key, 'count', 'last_ms')));
  const now = ctx.clock();
  let wait = 0;
  states.forEach(([count, last], i) => {
    const delayMs = backoffSeconds(Number(count ?? 0), counters[i]!.free) * 1000;
    wait = Math.max(wait, Number(last ?? 0) + delayMs - now);
  });
  if (wait > 0) throw rateLimited(Math.ceil(wait / 1000));
}

export async function recordLoginFailure(ctx: BrokerContext, ip: string, email: string): Promise<void> {
  const now = ctx.clock();
  // Each counter is its own key (own slot), updated with its own MULTI.
  await Promise.all(
    countersFor(ip, email).map((c) =>
      execAll(
        ctx.redis
          .multi()
          .hincrby(c.key, 'count', 1)
          .hset(c.key, 'last_ms', now)
          .expire(c.key, TTL.loginFailuresSeconds),
      ),
    ),
  );
}

export async function clearEmailFailures(ctx: BrokerContext, email: string): Promise<void> {
  await ctx.redis.del(keys.loginFailuresByEmail(email));
}
