// docs/API.md "Rate limits". Public endpoints: a token bucket per source (IPv6: per /64) in this broker's
// memory (burst 10, refill 1/s). Bearer endpoints: per-token and per-account fixed windows of one
// minute in Redis (rate-limiter-flexible's atomic Lua INCR), so every broker shares the same count;
// the same kind of window bounds anonymous signups and each node token. Failed authentications are
// counted per source in memory and refused before any lookup.
import type { Response } from 'express';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { Config, Tier } from './config.js';
import { rateLimited } from './errors.js';
import { keys } from './store/keys.js';
import type { Redis } from './store/redis.js';

export interface LimitResult {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Seconds until the allowance is whole again. */
  resetSeconds: number;
  /** Seconds until the next request would be allowed (when refused). */
  retryAfterSeconds: number;
}

/** Sources a broker keeps per table in memory before the least recently seen are forgotten. */
const MAX_TRACKED_SOURCES = 50_000;

/**
 * Per-source state, at most `capacity` entries. Every write makes its entry the most recently seen (a
 * Map keeps insertion order); a write into a full table first drops the least recently seen tenth, so
 * memory stays bounded however many sources there are (IPv6 gives an attacker many), at a cost spread
 * over the writes. A forgotten source starts afresh: a full bucket, no failures.
 */
class RecentSources<V> {
  private readonly entries = new Map<string, V>();

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.entries.size;
  }

  get(source: string): V | undefined {
    return this.entries.get(source);
  }

  set(source: string, value: V): void {
    this.entries.delete(source);
    if (this.entries.size >= this.capacity) {
      let drop = Math.ceil(this.capacity / 10);
      for (const oldest of this.entries.keys()) {
        if (drop-- === 0) break;
        this.entries.delete(oldest);
      }
    }
    this.entries.set(source, value);
  }
}

export class TokenBucketLimiter {
  private readonly buckets: RecentSources<{ tokens: number; updatedMs: number }>;

  constructor(
    readonly burst: number,
    readonly refillPerSecond: number,
    capacity = MAX_TRACKED_SOURCES,
  ) {
    this.buckets = new RecentSources(capacity);
  }

  /** Sources with a bucket in memory. */
  get tracked(): number {
    return this.buckets.size;
  }

  take(key: string, nowMs: number): LimitResult {
    const bucket = this.buckets.get(key) ?? { tokens: this.burst, updatedMs: nowMs };
    const elapsed = Math.max(0, nowMs - bucket.updatedMs) / 1000;
    bucket.tokens = Math.min(this.burst, bucket.tokens + elapsed * this.refillPerSecond);
    bucket.updatedMs = nowMs;
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    this.buckets.set(key, bucket);
    return {
      allowed,
      limit: this.burst,
      remaining: Math.floor(bucket.tokens),
      resetSeconds: Math.ceil((this.burst - bucket.tokens) / this.refillPerSecond),
      retryAfterSeconds: allowed ? 0 : Math.ceil((1 - bucket.tokens) / this.refillPerSecond),
    };
  }
}

/** A fixed one-minute window in Redis (rate-limiter-flexible's atomic INCR), shared by every broker. */
export class RedisWindow {
  private readonly limiter: RateLimiterRedis;

  constructor(
    redis: Redis,
    keyPrefix: string,
    readonly points: number,
  ) {
    this.limiter = new RateLimiterRedis({
      storeClient: redis,
      keyPrefix,
      points,
      duration: 60,
      rejectIfRedisNotReady: true,
    });
  }

  /** Counts one request for `key`; throws the store's error when Redis is unreachable. */
  async take(key: string): Promise<LimitResult> {
    const toResult = (res: RateLimiterRes, allowed: boolean): LimitResult => {
      const seconds = Math.max(1, Math.ceil(res.msBeforeNext / 1000));
      return {
        allowed,
        limit: this.points,
        remaining: res.remainingPoints,
        resetSeconds: seconds,
        retryAfterSeconds: seconds,
      };
    };
    try {
      return toResult(await this.limiter.consume(key), true);
    } catch (rejection) {
      if (rejection instanceof RateLimiterRes) return toResult(rejection, false);
      throw rejection;
    }
  }
}

/**
 * Bearer requests: each token has its tier's per-minute cap, and all tokens of one account together
 * stay within `accountRateFactor` times that cap, so minting keys does not multiply the allowance.
 * Windows are kept per tier, so a plan change applies on the next request.
 */
export class BearerLimiter {
  private readonly windows = new Map<string, RedisWindow>();

  constructor(
    private readonly redis: Redis,
    private readonly config: Config,
  ) {}

  private window(kind: 'token' | 'account', tier: Tier): RedisWindow {
    const name = `${kind}:${tier}`;
    let window = this.windows.get(name);
    if (!window) {
      const perToken = this.config.tiers[tier].requestsPerMinute;
      window =
        kind === 'token'
          ? new RedisWindow(this.redis, keys.bearerLimitPrefix(tier), perToken)
          : new RedisWindow(
              this.redis,
              keys.accountLimitPrefix(tier),
              Math.max(perToken, Math.floor(perToken * this.config.limits.accountRateFactor)),
            );
      this.windows.set(name, window);
    }
    return window;
  }

  /** The token's limit, and the smaller remaining of the token's and the account's windows. */
  async take(tokenId: string, accountId: string, tier: Tier): Promise<LimitResult> {
    const [token, account] = await Promise.all([
      this.window('token', tier).take(tokenId),
      this.window('account', tier).take(accountId),
    ]);
    const refused = [token, account].filter((r) => !r.allowed);
    return {
      allowed: refused.length === 0,
      limit: token.limit,
      remaining: Math.min(token.remaining, account.remaining),
      resetSeconds: Math.max(token.resetSeconds, account.resetSeconds),
      retryAfterSeconds: Math.max(0, ...refused.map((r) => r.retryAfterSeconds)),
    };
  }
}

/**
 * Failed authentications per source, in this broker's memory: past the limit a source is refused
 * before its token is looked up, so guessing costs no Redis round trips. Fixed one-minute windows.
 */
export class FailureLimiter {
  private readonly windows: RecentSources<{ count: number; startMs: number }>;

  constructor(
    readonly perMinute: number,
    capacity = MAX_TRACKED_SOURCES,
  ) {
    this.windows = new RecentSources(capacity);
  }

  /** Sources with failures in memory. */
  get tracked(): number {
    return this.windows.size;
  }

  /** rate_limited while `source` is over the limit in the current window. */
  check(source: string, nowMs: number): void {
    const w = this.windows.get(source);
    if (w && nowMs - w.startMs < 60_000 && w.count >= this.perMinute) {
      throw rateLimited(Math.ceil((w.startMs + 60_000 - nowMs) / 1000));
    }
  }

  record(source: string, nowMs: number): void {
    const w = this.windows.get(source);
    const current = w && nowMs - w.startMs < 60_000;
    this.windows.set(
      source,
      current ? { count: w.count + 1, startMs: w.startMs } : { count: 1, startMs: nowMs },
    );
  }
}

export interface RateLimits {
  /** Per source (IPv6: per /64), public endpoints. */
  public: TokenBucketLimiter;
  bearer: BearerLimiter;
  /** Anonymous signups, all sources together. */
  signup: RedisWindow;
  /**
   * Anonymous signups per source (IPv6: per /64), checked before `signup` so that one source cannot
   * spend everyone's budget. Each source's count expires with its minute, so Redis holds at most the
   * sources of the last minute.
   */
  signupBySource: RedisWindow;
  /** Per node token: register, feed polls. */
  node: RedisWindow;
  /**
   * Per node token, heartbeats only: feed polls come as fast as sessions change, and a node whose polls
   * spent its heartbeats' budget would be judged lost while serving.
   */
  nodeHeartbeat: RedisWindow;
  authFailures: FailureLimiter;
}

export function createRateLimits(config: Config, redis: Redis): RateLimits {
  return {
    public: new TokenBucketLimiter(config.publicBurst, config.publicRefillPerSecond),
    bearer: new BearerLimiter(redis, config),
    signup: new RedisWindow(redis, keys.signupLimitPrefix(), config.limits.signupsPerMinute),
    signupBySource: new RedisWindow(
      redis,
      keys.signupSourceLimitPrefix(),
      config.limits.signupsPerSourcePerMinute,
    ),
    node: new RedisWindow(redis, keys.nodeLimitPrefix(), config.limits.nodeRequestsPerMinute),
    nodeHeartbeat: new RedisWindow(
      redis,
      keys.nodeHeartbeatLimitPrefix(),
      config.limits.nodeRequestsPerMinute,
    ),
    authFailures: new FailureLimiter(config.limits.authFailuresPerMinute),
  };
}

/** Sets the RateLimit-* headers and throws rate_limited (429, Retry-After) when refused. */
export function enforce(res: Response, result: LimitResult): void {
  res.setHeader('RateLimit-Limit', String(result.limit));
  res.setHeader('RateLimit-Remaining', String(result.remaining));
  res.setHeader('RateLimit-Reset', String(result.resetSeconds));
  if (!result.allowed) throw rateLimited(result.retryAfterSeconds);
}
