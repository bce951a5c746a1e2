// What every route module and service receives: the parsed config, the Redis client, the logger,
// the clock and the per-app registries. One value, built once in createApp.
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { Metrics } from './metrics.js';
import type { RateLimits } from './ratelimit.js';
import type { Redis } from './store/redis.js';

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

export const isoTime = (ms: number) => new Date(ms).toISOString();
export const isoOrNull = (ms: number | null) => (ms === null ? null : isoTime(ms));
