// The broker's Redis client. Requests must fail fast while Redis is away (503 unavailable with
// Retry-After) instead of queueing behind a reconnect, and the client must come back on its own.
import { createHash } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';

export type { Redis } from 'ioredis';

export const REDIS_OPTIONS: RedisOptions = {
  // Without an offline queue a command issued while disconnected rejects at once.
  enableOfflineQueue: false,
  // A command in flight when the connection drops is retried once, then rejected.
  maxRetriesPerRequest: 1,
  // Commands issued in the same tick travel as one pipeline: one round trip for a batch of reads
  // across many keys (and slots), without building pipelines by hand.
  enableAutoPipelining: true,
  // Reconnect forever, backing off to at most 2 s between attempts.
  retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 6), 2000),
  connectTimeout: 5000,
  lazyConnect: false,
};

export function createRedis(url: string, overrides: RedisOptions = {}): Redis {
  const redis = new Redis(url, { ...REDIS_OPTIONS, ...overrides });
  // ioredis emits 'error' for every failed reconnect; without a listener Node would crash.
  redis.on('error', () => {});
  return redis;
}

/** Resolves once the client is connected (used at startup and by tests). */
export async function waitForReady(redis: Redis): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve) => redis.once('ready', () => resolve()));
}

/**
 * A Lua script run by SHA (EVALSHA), loaded on demand: after a Redis restart the script cache is
 * empty and the first call falls back to EVAL, which caches it again.
 */
export class LuaScript {
  readonly sha: string;

  constructor(
    readonly name: string,
    readonly source: string,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: Redis, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('NOSCRIPT')) {
        return redis.eval(this.source, keys.length, ...keys, ...args);
      }
      throw err;
    }
  }
}

/**
 * How an error reaches the log: type, message, code and stack, and for a Redis reply error only the
 * command's name. ioredis attaches the command with its arguments (token hashes, account ids, password
 * hashes, preshared keys), and pino's default serializer would print every property.
 */
export function logSafeError(err: unknown): Record<string, unknown> | unknown {
  if (!(err instanceof Error)) return err;
  const { command, code } = err as { command?: { name?: unknown }; code?: unknown };
  return {
    type: err.name,
    message: err.message,
    ...(typeof code === 'string' || typeof code === 'number' ? { code } : {}),
    ...(typeof command?.name === 'string' ? { command: command.name } : {}),
    stack: err.stack,
  };
}

type Pipelined = { exec(): Promise<[Error | null, unknown][] | null> };

/** Runs a pipeline or MULTI and returns the replies, throwing the first per-command error. */
export async function execAll(pipeline: Pipelined): Promise<unknown[]> {
  const results = await pipeline.exec();
  if (results === null) throw new Error('Redis transaction aborted');
  return results.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}
