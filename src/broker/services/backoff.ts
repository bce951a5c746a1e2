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
import { execAll, LuaScript } from '../store/redis.js';

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

const DELAY = `local function delay(count, free, capMs)
  if count < free then return 0 end
  return math.min(2 ^ (count - free) * 1000, capMs)
end`;

// KEYS: the email's counter, the (email, source) counter (one slot: the email's hash tag).
// ARGV: now, free failures, max delay ms, ttl s, clean-source interval ms.
// → 0 (slot taken: both counters count this attempt) or the ms to wait.
const TAKE_EMAIL_SLOT = new LuaScript(
  'login-email-slot',
  `${DELAY}
local now, free, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local e = redis.call('HMGET', KEYS[1], 'count', 'last_ms', 'clean_ms')
local p = redis.call('HMGET', KEYS[2], 'count', 'last_ms')
local ec, el, clean = tonumber(e[1]) or 0, tonumber(e[2]) or 0, tonumber(e[3]) or 0
local pc, pl = tonumber(p[1]) or 0, tonumber(p[2]) or 0
local ready, viaClean = 0, false
if ec >= free then
  if pc == 0 then
    ready, viaClean = clean + tonumber(ARGV[5]), true
  else
    ready = math.max(el + delay(ec, free, cap), pl + delay(pc, free, cap))
  end
end
if now < ready then return ready - now end
redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('HSET', KEYS[1], 'last_ms', ARGV[1])
if viaClean then redis.call('HSET', KEYS[1], 'clean_ms', ARGV[1]) end
redis.call('HINCRBY', KEYS[2], 'count', 1)
redis.call('HSET', KEYS[2], 'last_ms', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 0`,
);

// KEYS: the source's counter. ARGV: now, free failures, max delay ms, ttl s. → 0 or the ms to wait.
const TAKE_SOURCE_SLOT = new LuaScript(
  'login-source-slot',
  `${DELAY}
local now = tonumber(ARGV[1])
local s = redis.call('HMGET', KEYS[1], 'count', 'last_ms')
local ready = (tonumber(s[2]) or 0) + delay(tonumber(s[1]) or 0, tonumber(ARGV[2]), tonumber(ARGV[3]))
if now < ready then return ready - now end
redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('HSET', KEYS[1], 'last_ms', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 0`,
);

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
  const sourceWait = Number(
    await TAKE_SOURCE_SLOT.run(
      ctx.redis,
      [sourceKey],
      [now, BACKOFF.freeFailuresPerIp, cap, TTL.loginFailuresSeconds],
    ),
  );
  if (sourceWait > 0) throw refuse(sourceWait);
  const emailKey = keys.loginFailuresByEmail(email);
  const pairKey = keys.loginFailuresByEmailSource(email, source);
  const emailWait = Number(
    await TAKE_EMAIL_SLOT.run(
      ctx.redis,
      [emailKey, pairKey],
      [now, BACKOFF.freeFailuresPerEmail, cap, TTL.loginFailuresSeconds, BACKOFF.cleanSourceIntervalMs],
    ),
  );
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
