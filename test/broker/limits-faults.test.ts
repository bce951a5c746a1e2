// Bearer tier caps kept in Redis and shared by brokers; Redis killed mid-run → 503 unavailable,
// then recovery without restarting the broker and without losing acknowledged writes.
import request from 'supertest';
import { startBroker, type TestBroker } from './helpers.js';

const FP = 'feedfacecafebeef';
const as = (token: string) => ({ Authorization: `Bearer ${token}`, 'X-Machine-Fingerprint': FP });

let broker: TestBroker;
beforeAll(async () => {
  broker = await startBroker({
    env: { PUBLIC_BURST: '100000', TB_TIERS: JSON.stringify({ free: { requestsPerMinute: 3 } }) },
  });
});
afterAll(async () => broker.close());

async function signup(app = broker.app): Promise<string> {
  const res = await request(app).post('/v1/auth/signup').send({ fingerprint: FP });
  expect(res.status).toBe(201);
  return res.body.api_key;
}

describe('bearer per-token tier cap', () => {
  test('the cap+1-th request in the window → 429 with Retry-After; other tokens unaffected', async () => {
    const token = await signup();
    for (let i = 0; i < 3; i++) {
      const res = await request(broker.app).get('/v1/auth/key').set(as(token));
      expect(res.status).toBe(200);
      expect(res.headers['ratelimit-limit']).toBe('3');
      expect(res.headers['ratelimit-remaining']).toBe(String(2 - i));
      expect(Number(res.headers['ratelimit-reset'])).toBeGreaterThan(0);
    }
    const refused = await request(broker.app).get('/v1/auth/key').set(as(token));
    expect(refused.status).toBe(429);
    const retryAfter = Number(refused.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(refused.body).toEqual({
      error: 'rate_limited',
      message: expect.any(String),
      code: 4029,
      retry_after: retryAfter,
    });
    expect(
      (
        await request(broker.app)
          .get('/v1/auth/key')
          .set(as(await signup()))
      ).status,
    ).toBe(200);
  });

  test('two brokers on one Redis share the count', async () => {
    const second = await broker.another();
    const token = await signup();
    const statuses = [];
    for (const app of [broker.app, second, broker.app, second]) {
      statuses.push((await request(app).get('/v1/auth/key').set(as(token))).status);
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
  });

  test('the tier decides the cap: a paid token gets the pro cap', async () => {
    const token = await signup();
    const id = (await request(broker.app).get('/v1/auth/user').set(as(token))).body.id as string;
    await broker.redis.hset(`{acct:${id}}:account`, 'plan', 'pro');
    const res = await request(broker.app)
      .get('/v1/auth/key')
      .set({ Authorization: `Bearer ${token}` });
    expect(res.headers['ratelimit-limit']).toBe('600');
  });
});

describe('Redis killed mid-run', () => {
  test('503 unavailable with Retry-After while down; recovers by itself; nothing acknowledged is lost', async () => {
    const fresh = await startBroker({ env: { PUBLIC_BURST: '100000' } });
    try {
      const token = await signup(fresh.app);
      const created = await request(fresh.app)
        .post('/v1/auth/keys')
        .set(as(token))
        .send({ name: 'before the kill', permissions: ['tunnels:read'] });
      expect(created.status).toBe(201);

      await fresh.server.kill();
      for (const call of [
        () => request(fresh.app).get('/v1/auth/key').set(as(token)),
        () => request(fresh.app).post('/v1/auth/signup').send({ fingerprint: FP }),
        () => request(fresh.app).get('/v1/regions'),
        () => request(fresh.app).get('/v1/ready'),
      ]) {
        const res = await call();
        expect(res.status).toBe(503);
        expect(res.body).toEqual({ error: 'unavailable', message: expect.any(String), code: 5030 });
        expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
        expect(res.headers['x-request-id']).toBeDefined();
      }
      expect((await request(fresh.app).get('/v1/health')).status).toBe(200);

      await fresh.server.restart();
      // The same app and client reconnect on their own; poll readiness (bounded), never restart.
      let ready = 503;
      for (let i = 0; i < 100 && ready !== 200; i++) {
        ready = (await request(fresh.app).get('/v1/ready')).status;
        if (ready !== 200) await new Promise((r) => setTimeout(r, 100));
      }
      expect(ready).toBe(200);
      expect((await request(fresh.app).get('/v1/auth/key').set(as(token))).status).toBe(200);
      expect((await request(fresh.app).get('/v1/auth/key').set(as(created.body.key))).status).toBe(200);
      const list = await request(fresh.app).get('/v1/auth/keys').set(as(token));
      expect(list.body.keys.map((k: { name: string }) => k.name)).toEqual(['signup', 'before the kill']);
    } finally {
      await fresh.close();
    }
  });
});
