// What every route module and service receives: the parsed config, the Redis client, the logger,
// the clock and the per-app registries. One value, built once by createContext: createApp builds
// one per app, the admin commands one of their own (without Express or any route).
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { createMetrics, type Metrics } from './metrics.js';
import { createOpenApiRegistry } from './openapi.js';
import { createRateLimits, type RateLimits } from './ratelimit.js';
import { logSafeError, type Redis } from './store/redis.js';

/** Milliseconds since the epoch; injectable so expiry and history tests are exact. */
export type Clock = () => number;

export interface BrokerContext {
  config: Config;
  redis: Redis;
  logger: Logger;
  clock: Clock;
  openapi: OpenAPIRegistry;
  metrics: Metrics;
  limits: RateLimits;
  /** Aborted when the broker shuts down: long polls and background loops stop on it. */
  shutdown: AbortSignal;
}

export interface ContextDeps {
  config: Config;
  redis: Redis;
  logger: Logger;
  clock?: Clock;
}

export function createContext(
  deps: ContextDeps,
  shutdown: AbortSignal = new AbortController().signal,
): BrokerContext {
  return {
    config: deps.config,
    redis: deps.redis,
    // Every module logs errors through the Redis-safe serializer (no command arguments).
    logger: deps.logger.child({}, { serializers: { err: logSafeError } }),
    clock: deps.clock ?? Date.now,
    openapi: createOpenApiRegistry(),
    metrics: createMetrics(),
    limits: createRateLimits(deps.config, deps.redis),
    shutdown,
  };
}

export const isoTime = (ms: number) => new Date(ms).toISOString();
export const isoOrNull = (ms: number | null) => (ms === null ? null : isoTime(ms));
