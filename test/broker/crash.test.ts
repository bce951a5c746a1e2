// Crashes in the middle of session creation leave no partial state and leak no address:
// - a refused creation (no capacity) changes nothing in the region's keys;
// - a broker that dies between the account step and the region step, or between the region step and
//   the confirmation, leaves a consistent plane and a slot that frees itself (the real createSession,
//   on a real Redis, with the broker "dying" at the chosen call);
// - redis-server SIGKILLed at random moments during bursts of creates and deletes, then restarted:
//   the plane invariants hold every time, and no request ever got a 500.
import { setTimeout as sleep } from 'node:timers/promises';
import type { BrokerContext } from '../../src/broker/context.js';
import { CREATE_SESSION } from '../../src/broker/services/lua.js';
import { reapExpired } from '../../src/broker/services/reaper.js';
import { createSession, RESERVATION_MS } from '../../src/broker/services/sessions.js';
import { keys } from '../../src/broker/store/keys.js';
import { waitForReady, type Redis } from '../../src/broker/store/redis.js';
import { checkPlane, keyPair, startPlane, type Plane } from './sessions-fixture.js';

let plane: Plane;
beforeEach(async () => {
  plane = await startPlane();
});
afterEach(async () => plane.close());

/**
 * A context whose broker "dies" (throws, runs nothing further) at the chosen Redis call; with
 * `survives`, only that call fails (its Redis failing over) and the broker carries on.
 */
function dyingAt(ctx: BrokerContext, where: 'create-script' | 'confirm', survives = false): BrokerContext {
  let dead = false;
  const die = () => {
    dead = !survives;
    return new Error('broker died');
  };
  const redis = new Proxy(ctx.redis, {
    get(target, prop, receiver) {
      if (dead) return () => Promise.reject(new Error('broker is dead'));
      if (where === 'create-script' && (prop === 'evalsha' || prop === 'eval')) {
        return (sha: string, ...rest: unknown[]) => {
          if (sha === CREATE_SESSION.sha || sha === CREATE_SESSION.source) return Promise.reject(die());
          return (target[prop] as (...a: unknown[]) => unknown).call(target, sha, ...rest);
        };
      }
      if (where === 'confirm' && prop === 'multi') {
        return () => {
          throw die();
        };
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { ...ctx, redis: redis as Redis };
}

async function regionSnapshot(redis: Redis, region: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const key of (await redis.keys(`${keys.regionPrefix(region)}*`)).sort()) {
    out[key] = (await redis.dumpBuffer(key))?.toString('hex') ?? '';
  }
  return out;
}

test('1. a refused creation (full node) writes nothing in the region', async () => {
  const p = await plane.principal('business');
  await plane.node('eu-west', { capacity: 1 });
  expect((await plane.create(p, { region: 'eu-west' })).status).toBe(201);
  const before = await regionSnapshot(plane.broker.redis, 'eu-west');
  const res = await plane.create(p, { region: 'eu-west' });
  expect(res.body.error).toBe('no_capacity');
  expect(await regionSnapshot(plane.broker.redis, 'eu-west')).toEqual(before);
  expect((await plane.as(p, 'get', '/v1/usage')).body.sessions.active).toBe(1);
});

test('2. broker dies after reserving, before the region script: nothing made, the slot lapses', async () => {
  const free = await plane.principal('free');
  await plane.node('eu-west');
  const dying = dyingAt(plane.broker.ctx, 'create-script');
  await expect(createSession(dying, free.account, { region: 'eu-west' })).rejects.toThrow('broker died');
  const perNode = await checkPlane(plane.broker.redis, 'eu-west');
  expect([...perNode.values()]).toEqual([0]);
  // The reservation still holds the free tier's only slot …
  expect((await plane.create(free, { region: 'eu-west' })).body.error).toBe('quota_exhausted');
  expect((await plane.as(free, 'get', '/v1/sessions')).body.sessions).toEqual([]);
  // … for RESERVATION_MS at most.
  plane.advance(RESERVATION_MS);
  expect((await plane.create(free, { region: 'eu-west' })).status).toBe(201);
  await checkPlane(plane.broker.redis, 'eu-west');
});

test('2b. the region script fails but the broker lives (its Redis failing over): the slot is back at once', async () => {
  const free = await plane.principal('free');
  await plane.node('eu-west');
  const failing = dyingAt(plane.broker.ctx, 'create-script', true);
  await expect(createSession(failing, free.account, { region: 'eu-west' })).rejects.toThrow('broker died');
  expect((await plane.create(free, { region: 'eu-west' })).status).toBe(201);
  await checkPlane(plane.broker.redis, 'eu-west');
});

test('3. broker dies after the region script, before confirming: a whole session, reaped at expiry', async () => {
  const free = await plane.principal('free');
  const node = await plane.node('eu-west');
  const client = keyPair();
  const dying = dyingAt(plane.broker.ctx, 'confirm');
  await expect(
    createSession(dying, free.account, { region: 'eu-west', publicKey: client.publicKey, ttlSeconds: 120 }),
  ).rejects.toThrow('broker died');
  // All of the region step happened: lease, peer, record, expiry, feed event.
  const perNode = await checkPlane(plane.broker.redis, 'eu-west');
  expect(perNode.get(node.id)).toBe(1);
  const listed = (await plane.as(free, 'get', '/v1/sessions')).body.sessions;
  expect(listed).toHaveLength(1);

  plane.advance(120_000);
  await plane.heartbeat(node);
  expect(await reapExpired(plane.broker.ctx)).toBe(1);
  expect([...(await checkPlane(plane.broker.redis, 'eu-west')).values()]).toEqual([0]);
  expect((await plane.create(free, { region: 'eu-west' })).status).toBe(201);
});

test('4. redis-server killed at random moments during bursts: invariants hold, never a 500', async () => {
  const server = plane.broker.server;
  const redis = plane.broker.redis;
  const users = await Promise.all(Array.from({ length: 6 }, () => plane.principal('business')));
  const node = await plane.node('eu-west', { capacity: 10_000 });
  const statuses = new Set<number>();
  const live: { user: (typeof users)[number]; id: string }[] = [];
  for (let round = 0; round < 8; round++) {
    const burst = [
      ...users.flatMap((user) =>
        [1, 2, 3].map(async () => {
          const res = await plane.create(user, { region: 'eu-west' });
          statuses.add(res.status);
          if (res.status === 201) live.push({ user, id: res.body.id as string });
        }),
      ),
      ...live.splice(0, 6).map(async ({ user, id }) => {
        const res = await plane.as(user, 'delete', `/v1/sessions/${id}`);
        statuses.add(res.status);
      }),
    ];
    await sleep(Math.floor(Math.random() * 25));
    await server.kill();
    await Promise.all(burst);
    await server.restart();
    await waitForReady(redis);
    await plane.heartbeat(node);
    await checkPlane(redis, 'eu-west');
  }
  expect([...statuses].every((s) => [201, 204, 503].includes(s))).toBe(true);
  expect(statuses.has(503)).toBe(true);
});
