// The reaper: expired sessions leave their node's feed, give their address and the account's slot
// back, read `expired`; several brokers reaping at once close each session exactly once; with Redis away
// the reaper says so once, not every round.
import { pino } from 'pino';
import { loadConfig } from '../../src/broker/config.js';
import { createContext } from '../../src/broker/context.js';
import { reapExpired, startReaper } from '../../src/broker/services/reaper.js';
import { createRedis } from '../../src/broker/store/redis.js';
import { keys } from '../../src/broker/store/keys.js';
import { eventually } from '../helpers/eventually.js';
import { startRedis } from '../helpers/redis.js';
import { POOL_PREFIXES } from '../../src/lib/addresses.js';
import { checkPlane, keyPair, startPlane, type Plane } from './sessions-fixture.js';

let plane: Plane;
beforeEach(async () => {
  plane = await startPlane();
});
afterEach(async () => plane.close());

test('1. due sessions are reaped: feed removal, address freed, slot freed, status expired; others stay', async () => {
  const node = await plane.node('eu-west');
  const free = await plane.principal('free');
  const pro = await plane.principal('pro');
  const client = keyPair();
  const short = await plane.create(free, {
    region: 'eu-west',
    public_key: client.publicKey,
    ttl_seconds: 60,
  });
  const long = await plane.create(pro, { region: 'eu-west', ttl_seconds: 3600 });
  expect([short.status, long.status]).toEqual([201, 201]);

  expect(await reapExpired(plane.broker.ctx)).toBe(0);
  plane.advance(60_000);
  await plane.heartbeat(node);
  expect(await reapExpired(plane.broker.ctx)).toBe(1);
  expect(await reapExpired(plane.broker.ctx)).toBe(0);

  const redis = plane.broker.redis;
  expect(await redis.hexists(keys.nodePeers('eu-west', node.id), client.publicKey)).toBe(0);
  const last = (await redis.xrange(keys.nodeFeed('eu-west', node.id), '-', '+')).at(-1)!;
  expect(last[1].slice(0, 4)).toEqual(['op', 'del', 'public_key', client.publicKey]);
  expect(await redis.zrange(keys.freeAddresses('eu-west', POOL_PREFIXES), 0, -1)).toEqual(['2']);
  expect(await redis.zscore(keys.accountLiveSessions(free.account.id), short.body.id)).toBeNull();
  expect((await plane.as(free, 'get', `/v1/sessions/${short.body.id}`)).body.status).toBe('expired');
  expect((await plane.as(pro, 'get', `/v1/sessions/${long.body.id}`)).body.status).toBe('pending');

  // The free account may connect again, and gets the freed address.
  const again = await plane.create(free, { region: 'eu-west' });
  expect(again.body.interface.addresses[0]).toBe('10.64.0.2/32');
  await checkPlane(redis, 'eu-west');
});

test('2. three brokers reaping the same 40 sessions at once close each exactly once', async () => {
  await plane.node('eu-west');
  const biz = await plane.principal('business');
  const made = await Promise.all(
    Array.from({ length: 40 }, () => plane.create(biz, { region: 'eu-west', ttl_seconds: 60 })),
  );
  expect(made.filter((r) => r.status === 201)).toHaveLength(40);
  plane.advance(61_000);
  const others = await Promise.all([plane.broker.another(), plane.broker.another()]);
  const counts = await Promise.all(
    [plane.broker.app, ...others].map((app) => reapExpired(app.locals.broker)),
  );
  expect(counts.reduce((a, b) => a + b, 0)).toBe(40);
  const feed = await plane.broker.redis.xrange(keys.nodeFeed('eu-west', made[0]!.body.node.id), '-', '+');
  expect(feed.filter(([, f]) => f[1] === 'del')).toHaveLength(40);
  const perNode = await checkPlane(plane.broker.redis, 'eu-west');
  expect([...perNode.values()]).toEqual([0]);
  const usage = await plane.as(biz, 'get', '/v1/usage');
  expect(usage.body.sessions.active).toBe(0);
});

test('3. the background reaper runs on its interval in every broker', async () => {
  await plane.close();
  plane = await startPlane({ env: { TB_REAP_INTERVAL_MS: '200' } });
  const node = await plane.node('eu-west');
  const p = await plane.principal('pro');
  const redis = plane.broker.redis;
  /** Polls the store (no timing assertion) until the session is gone. */
  const reaped = async (id: string) => {
    for (let i = 0; i < 100 && (await redis.zscore(keys.regionExpiry('eu-west'), id)) !== null; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    return redis.hget(keys.session('eu-west', id), 'state');
  };

  // The first broker alone reaps.
  const first = await plane.create(p, { region: 'eu-west', ttl_seconds: 60 });
  plane.advance(61_000);
  expect(await reaped(first.body.id)).toBe('expired');

  // A second broker reaps too: with the first one's loop stopped, it alone closes the next session.
  await plane.heartbeat(node); // the clock moved past its health window
  const second = await plane.create(p, { region: 'eu-west', ttl_seconds: 60 });
  expect(second.status).toBe(201);
  await plane.broker.another();
  plane.broker.app.locals.close();
  plane.advance(61_000);
  expect(await reaped(second.body.id)).toBe('expired');
});

test('4. Redis away: the reaper says so once, in one line without a stack, and again when it resumes', async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const server = await startRedis();
  const redis = createRedis(server.url);
  const stop = new AbortController();
  const config = loadConfig({ REDIS_URL: server.url, TB_REAP_INTERVAL_MS: '10' });
  const ctx = createContext({ config, redis, logger }, stop.signal);
  const said = (msg: string) => lines.filter((l) => l.msg === msg);
  try {
    startReaper(ctx);
    await server.kill();
    await eventually('the pause said', () => said('reaper paused: Redis unavailable').length > 0);
    // Dozens more rounds (every 10 ms) fail while it is away; none of them logs again.
    const linesWhilePaused = lines.length;
    await new Promise((r) => setTimeout(r, 300));
    expect(lines.length).toBe(linesWhilePaused);
    await server.restart();
    await eventually('the resumption said', () => said('reaper resumed: Redis answers again').length > 0);
    expect(said('reaper paused: Redis unavailable')).toHaveLength(1);
    expect(said('reaper round failed')).toEqual([]);
    expect(JSON.stringify(lines)).not.toMatch(/stack|\\n\s+at /);
  } finally {
    stop.abort();
    redis.disconnect();
    await server.stop();
  }
});
