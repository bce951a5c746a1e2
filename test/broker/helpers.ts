// Shared by every broker test file: a real redis-server (startRedis) and an in-process app on it.
import { pino, type Logger } from 'pino';
import { createApp, type BrokerApp } from '../../src/broker/app.js';
import { loadConfig, type Config } from '../../src/broker/config.js';
import type { BrokerContext } from '../../src/broker/context.js';
import { USER_SCOPES } from '../../src/broker/scopes.js';
import { createAccount, issueKey } from '../../src/broker/services/accounts.js';
import { createRedis, waitForReady, type Redis } from '../../src/broker/store/redis.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

export const silentLogger = pino({ level: 'silent' });

/** Every route of the HTTP contract (docs/API.md), with path parameters as OpenAPI writes them. */
export const ROUTES = [
  '/v1/health',
  '/v1/ready',
  '/v1/openapi.json',
  '/v1/regions',
  '/v1/ip/{addr}',
  '/v1/auth/signup',
  '/v1/auth/login',
  '/v1/auth/logout',
  '/v1/auth/user',
  '/v1/auth/key',
  '/v1/auth/test',
  '/v1/auth/keys',
  '/v1/auth/keys/{id}',
  '/v1/billing/checkout',
  '/v1/webhooks/stripe',
  '/v1/admin/regions',
  '/v1/admin/regions/{id}',
  '/v1/admin/node-tokens',
  '/v1/admin/node-tokens/{id}',
  '/v1/admin/nodes',
  '/v1/admin/nodes/{id}',
  '/.well-known/oauth-authorization-server',
  '/v1/oauth/clients',
  '/v1/oauth/clients/{client_id}',
  '/v1/oauth/authorize',
  '/v1/oauth/token',
  '/v1/oauth/revoke',
  '/v1/oauth/authorizations',
  '/v1/oauth/authorizations/{client_id}',
  '/login',
  '/logout',
  '/account',
] as const;

/** Every key of a (single-node) Redis with everything stored under it: values, fields, members, entries. */
export async function redisContents(redis: Redis): Promise<string[]> {
  const out: string[] = [];
  for (const key of await redis.keys('*')) {
    out.push(key);
    const type = await redis.type(key);
    if (type === 'string') out.push((await redis.get(key)) ?? '');
    else if (type === 'hash') out.push(...Object.entries(await redis.hgetall(key)).flat());
    else if (type === 'set') out.push(...(await redis.smembers(key)));
    else if (type === 'zset') out.push(...(await redis.zrange(key, 0, -1, 'WITHSCORES')));
    else if (type === 'list') out.push(...(await redis.lrange(key, 0, -1)));
    else if (type === 'stream')
      out.push(...(await redis.xrange(key, '-', '+')).flatMap(([id, f]) => [id, ...f]));
    else throw new Error(`redisContents: ${key} has type ${type}`);
  }
  return out;
}

/** A new business account's API key with every user scope: its token. */
export async function businessToken(ctx: BrokerContext, name: string): Promise<string> {
  const account = await createAccount(ctx, { plan: 'business' });
  const { token } = await issueKey(ctx, account.id, {
    name,
    permissions: [...USER_SCOPES],
    fingerprint: null,
    expiresAt: null,
  });
  return token;
}

export interface TestBroker {
  server: RedisServer;
  redis: Redis;
  app: BrokerApp;
  ctx: BrokerContext;
  config: Config;
  /** Builds one more app (another "broker") on the same Redis, with its own client and memory. */
  another(options?: { env?: Record<string, string>; clock?: () => number }): Promise<TestBroker['app']>;
  close(): Promise<void>;
}

export async function startBroker(
  options: { env?: Record<string, string>; clock?: () => number; server?: RedisServer; logger?: Logger } = {},
): Promise<TestBroker> {
  const server = options.server ?? (await startRedis());
  const clients: Redis[] = [];
  const apps: BrokerApp[] = [];
  const build = async (env: Record<string, string> = {}, clock = options.clock) => {
    // Suites make many signups and failed calls from one address within a minute; the security
    // suite sets these limits itself where it tests them.
    const config = loadConfig({
      REDIS_URL: server.url,
      TB_SIGNUP_PER_MINUTE: '1000000',
      TB_SIGNUP_PER_SOURCE_PER_MINUTE: '1000000',
      TB_AUTH_FAILURES_PER_MINUTE: '1000000',
      ...options.env,
      ...env,
    });
    const redis = createRedis(config.redisUrl);
    clients.push(redis);
    await waitForReady(redis);
    const app = createApp({ config, redis, logger: options.logger ?? silentLogger, clock });
    apps.push(app);
    return { app, config, redis };
  };
  const first = await build();
  return {
    server,
    redis: first.redis,
    app: first.app,
    ctx: first.app.locals.broker,
    config: first.config,
    another: async (more = {}) => (await build(more.env, more.clock ?? options.clock)).app,
    close: async () => {
      apps.forEach((a) => a.locals.close());
      clients.forEach((c) => c.disconnect());
      if (!options.server) await server.stop();
    },
  };
}
