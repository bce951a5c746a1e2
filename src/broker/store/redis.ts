// The broker's Redis client: one Redis, a Sentinel-managed master, or a Cluster, from REDIS_URL
// (store/redis-url.ts). Requests must fail fast while Redis is away or failing over (503 unavailable with
// Retry-After) instead of queueing behind a reconnect, and the client must come back on its own.
import { createHash } from 'node:crypto';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { type RedisTarget, parseRedisUrl } from './redis-url.js';

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

/**
 * A client for REDIS_URL (any of its forms; a bad one throws RedisUrlError). A Cluster client is typed as
 * Redis: the services use only commands both have, and every script and MULTI stays in one hash slot.
 */
export function createRedis(url: string, overrides: RedisOptions = {}): Redis {
  const redis = connect(parseRedisUrl(url), { ...REDIS_OPTIONS, ...overrides });
  // ioredis emits 'error' for every failed reconnect; without a listener Node would crash.
  redis.on('error', () => {});
  return redis;
}

function connect(target: RedisTarget, options: RedisOptions): Redis {
  switch (target.mode) {
    case 'single':
      return new Redis(target.url, options);
    case 'sentinel':
      return new Redis({
        ...options,
        sentinels: target.sentinels.map(({ host, port }) => ({ host, port })),
        name: target.masterName,
        password: target.password,
        sentinelPassword: target.sentinelPassword,
        db: target.db,
        ...(target.tls ? { tls: {}, sentinelTLS: {}, enableTLSForSentinelMode: true } : {}),
        // Follow +switch-master at once instead of waiting for the old master's connection to fail.
        failoverDetector: true,
      });
    case 'cluster': {
      const { enableOfflineQueue, enableAutoPipelining, retryStrategy, ...perNode } = options;
      return new Cluster(
        target.nodes.map(({ host, port }) => ({ host, port })),
        {
          enableOfflineQueue,
          enableAutoPipelining,
          ...(retryStrategy ? { clusterRetryStrategy: retryStrategy } : {}),
          redisOptions: { ...perNode, password: target.password, ...(target.tls ? { tls: {} } : {}) },
        },
      ) as unknown as Redis;
    }
  }
}

/** Whether a client from createRedis talks to a Cluster (its commands go to the master of each key's slot). */
export function isCluster(redis: Redis): boolean {
  return (redis as unknown as { isCluster?: boolean }).isCluster === true;
}

/**
 * Durability before an acknowledgement: waits until `replicas` replicas hold every write this client made
 * to the masters of `keysWritten` (Redis WAIT on each of those masters). False when they did not within
 * `timeoutMs`; a connection failure rejects as any command does.
 */
export async function waitForReplicas(
  redis: Redis,
  keysWritten: string[],
  replicas: number,
  timeoutMs: number,
): Promise<boolean> {
  if (replicas <= 0) return true;
  const masters = isCluster(redis) ? mastersOf(redis as unknown as Cluster, keysWritten) : [redis];
  const acknowledged = await Promise.all(masters.map((master) => master.wait(replicas, timeoutMs)));
  return acknowledged.every((count) => count >= replicas);
}

// WAIT has no key, so a Cluster client would send it to any node: it must go to the very connections the
// writes went through, the masters serving the keys' slots.
function mastersOf(cluster: Cluster, keysWritten: string[]): Redis[] {
  const masters = new Set<Redis>();
  for (const key of keysWritten) {
    const nodeKey = cluster.slots[keySlot(key)]?.[0];
    const master = cluster
      .nodes('master')
      .find((node) => `${node.options.host}:${node.options.port}` === nodeKey);
    // No master for the slot (mid-failover): Redis is not available for this write.
    if (master === undefined) throw new Error('CLUSTERDOWN no master serves the slot of a key just written');
    masters.add(master);
  }
  return [...masters];
}

/** The Cluster hash slot of a key: CRC16-XMODEM of its {hash tag} (or of the whole key) mod 16384. */
export function keySlot(key: string): number {
  let bytes = Buffer.from(key);
  const open = bytes.indexOf(0x7b); // {
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1); // }
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
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
