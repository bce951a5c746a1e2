// docs/API.md "Rate limits". Public endpoints: a token bucket per source IP in this broker's memory
// (burst 10, refill 1/s). Bearer endpoints: a per-token fixed window of one minute in Redis
// (rate-limiter-flexible's atomic Lua INCR), so every broker shares the same count.
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

/** Above this many tracked IPs, buckets that have refilled completely are forgotten. */
const MAX_TRACKED_IPS = 50_000;

export class TokenBucketLimiter {
  private readonly buckets = new Map<string, { tokens: number; updatedMs: number }>();

  constructor(
    readonly burst: number,
    readonly refillPerSecond: number,
  ) {}

  take(key: string, nowMs: number): LimitResult {
    const bucket = this.buckets.get(key) ?? { tokens: this.burst, updatedMs: nowMs };
    const elapsed = Math.max(0, nowMs - bucket.updatedMs) / 1000;
    bucket.tokens = Math.min(this.burst, bucket.tokens + elapsed * this.refillPerSecond);
    bucket.updatedMs = nowMs;
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    if (!this.buckets.has(key)) {
      if (this.buckets.size >= MAX_TRACKED_IPS) this.sweep(nowMs);
      this.buckets.set(key, bucket);
    }
    return {
      allowed,
      limit: this.burst,
      remaining: Math.floor(bucket.tokens),
      resetSeconds: Math.ceil((this.burst - bucket.tokens) / this.refillPerSecond),
      retryAfterSeconds: allowed ? 0 : Math.ceil((1 - bucket.tokens) / this.refillPerSecond),
    };
  }

  private sweep(nowMs: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((nowMs - b.updatedMs) / 1000) * this.refillPerSecond >= this.burst)
        this.buckets.delete(key);
    }
  }
}

export class BearerLimiter {
  private readonly byTier = new Map<Tier, RateLimiterRedis>();

  constructor(
    private readonly redis: Redis,
    private readonly config: Config,
  ) {}

  private limiter(tier: Tier): RateLimiterRedis {
    let limiter = this.byTier.get(tier);
    if (!limiter) {
      limiter = new RateLimiterRedis({
        storeClient: this.redis,
        keyPrefix: keys.bearerLimitPrefix(tier),
        points: this.config.tiers[tier].requestsPerMinute,
        duration: 60,
        rejectIfRedisNotReady: true,
      });
      this.byTier.set(tier, limiter);
    }
    return limiter;
  }

  /** Counts one request for the token; throws the store's error when Redis is unreachable. */
  async take(tokenId: string, tier: Tier): Promise<LimitResult> {
    const limit = this.config.tiers[tier].requestsPerMinute;
    const toResult = (res: RateLimiterRes, allowed: boolean): LimitResult => {
      const seconds = Math.max(1, Math.ceil(res.msBeforeNext / 1000));
      return {
        allowed,
        limit,
        remaining: res.remainingPoints,
        resetSeconds: seconds,
        retryAfterSeconds: seconds,
      };
    };
    try {
      return toResult(await this.limiter(tier).consume(tokenId), true);
    } catch (rejection) {
      if (rejection instanceof RateLimiterRes) return toResult(rejection, false);
      throw rejection;
    }
  }
}

export interface RateLimits {
  public: TokenBucketLimiter;
  bearer: BearerLimiter;
}

export function createRateLimits(config: Config, redis: Redis): RateLimits {
  return {
    public: new TokenBucketLimiter(config.publicBurst, config.publicRefillPerSecond),
    bearer: new BearerLimiter(redis, config),
  };
}

/** Sets the RateLimit-* headers and throws rate_limited (429, Retry-After) when refused. */
export function enforce(res: Response, result: LimitResult): void {
  res.setHeader('RateLimit-Limit', String(result.limit));
  res.setHeader('RateLimit-Remaining', String(result.remaining));
  res.setHeader('RateLimit-Reset', String(result.resetSeconds));
  if (!result.allowed) throw rateLimited(result.retryAfterSeconds);
}
