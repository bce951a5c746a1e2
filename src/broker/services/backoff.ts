// Login back-off against password guessing (docs/API.md "Rate limits"). An attempt takes its slot in one
// Lua script BEFORE any password is checked, and counts as a failure until it succeeds, so concurrent
// guesses cannot all pass the check before the first failure is written.
//
// Failures are counted per email, per (email, source) and per source (IPv6 sources are /64s):
//  - per email: 5 free, then 1 s, 2 s, 4 s … (at most 15 min) between attempts from sources that have
//    failed for this email;
//  - a source with no failures for the email is let through even then, one such attempt per second
//    per email, so an attacker cannot lock the owner out, and spreading guesses over many addresses
//    buys one guess a second;
//  - per source, across emails: 20 free, then the same doubling.
// A success clears the email's counters. Counters are forgotten after an hour without failures.
import type { BrokerContext } from '../context.js';
import { rateLimited } from '../errors.js';
import { keys, TTL } from '../store/keys.js';
import { execAll } from '../store/redis.js';
import { runTakeEmailSlot, runTakeSourceSlot } from './lua.js';

export const BACKOFF = {
  freeFailuresPerEmail: 5,
  freeFailuresPerIp: 20,
  maxDelaySeconds: 15 * 60,
  /** Between two attempts on one locked email from sources without failures. */
  cleanSourceIntervalMs: 1000,
} as const;

/** Seconds to wait after the `failures`-th failure, given `free` failures without a wait. */
export function backoffSeconds(failures: number, free: number): number {
  if (failures < free) return 0;
  return Math.min(2 ** (failures - free), BACKOFF.maxDelaySeconds);
}

export interface LoginAttempt {
  /** The password was right: the attempt is no failure, and the email's counters are cleared. */
  succeeded(): Promise<void>;
}

/**
 * Takes the attempt's slot, or throws rate_limited (with retry_after) while the source or the email
 * is in its back-off. Call before any password work; call succeeded() when the password was right.
 */
export async function takeLoginAttempt(
  ctx: BrokerContext,
  source: string,
  email: string,
): Promise<LoginAttempt> {
  const now = ctx.clock();
  const cap = BACKOFF.maxDelaySeconds * 1000;
  const refuse = (waitMs: number) => rateLimited(Math.max(1, Math.ceil(waitMs / 1000)));
  const sourceKey = keys.loginFailuresBySource(source);
  const sourceWait = await runTakeSourceSlot(ctx.redis, {
    sourceKey,
    now,
    freeFailures: BACKOFF.freeFailuresPerIp,
    maxDelayMs: cap,
    ttlSeconds: TTL.loginFailuresSeconds,
  });
  if (sourceWait > 0) throw refuse(sourceWait);
  const emailKey = keys.loginFailuresByEmail(email);
  const pairKey = keys.loginFailuresByEmailSource(email, source);
  const emailWait = await runTakeEmailSlot(ctx.redis, {
    emailKey,
    pairKey,
    now,
    freeFailures: BACKOFF.freeFailuresPerEmail,
    maxDelayMs: cap,
    ttlSeconds: TTL.loginFailuresSeconds,
    cleanSourceIntervalMs: BACKOFF.cleanSourceIntervalMs,
  });
  if (emailWait > 0) {
    // This attempt never happened: give the source its slot back.
    await ctx.redis.hincrby(sourceKey, 'count', -1);
    throw refuse(emailWait);
  }
  return {
    succeeded: async () => {
      await Promise.all([
        execAll(ctx.redis.multi().del(emailKey).del(pairKey)),
        ctx.redis.hincrby(sourceKey, 'count', -1),
      ]);
    },
  };
}
