// GET /v1/regions and GET /v1/ip/{addr}, and the public per-IP token bucket.
import request from 'supertest';
import { keys } from '../../src/broker/store/keys.js';
import { upsertRegion } from '../../src/broker/services/regions.js';
import { LAST_SEEN_GRACE_MS, recordEgressIps } from '../../src/broker/services/egress.js';
import { startBroker, type TestBroker } from './helpers.js';

let now = Date.parse('2026-01-01T00:00:00Z');
const clock = () => now;
let broker: TestBroker;
beforeAll(async () => {
  broker = await startBroker({ clock, env: { PUBLIC_BURST: '100000' } });
});
afterAll(async () => broker.close());

/** Writes node health the way the node service does (store/keys.ts). */
async function writeNode(
  id: string,
  region: string,
  fields: { load: number; draining?: boolean; lastHeartbeat: number },
) {
  await broker.redis.hset(keys.node(id), {
    id,
    region,
    load: fields.load,
    draining: fields.draining ? '1' : '0',
    heartbeat_ms: 10_000,
    last_heartbeat: fields.lastHeartbeat,
  });
  await broker.redis.zadd(keys.regionNodes(region), fields.lastHeartbeat, id);
}

describe('GET /v1/regions', () => {
  test('no regions → empty list with RateLimit headers', async () => {
    const res = await request(broker.app).get('/v1/regions');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ regions: [] });
    expect(res.headers['ratelimit-limit']).toBe('100000');
    expect(res.headers['ratelimit-remaining']).toBeDefined();
    expect(res.headers['ratelimit-reset']).toBeDefined();
  });

  test('a region without nodes is down; healthy nodes make it active; a lost one degrades it', async () => {
    await upsertRegion(broker.ctx, {
      id: 'eu-west',
      name: 'Frankfurt',
      country: 'DE',
      tiers: ['free', 'pro', 'business'],
    });
    await upsertRegion(broker.ctx, {
      id: 'us-east',
      name: 'Virginia',
      country: 'US',
      tiers: ['pro', 'business'],
    });
    let res = await request(broker.app).get('/v1/regions');
    expect(res.body.regions).toEqual([
      {
        id: 'eu-west',
        name: 'Frankfurt',
        country: 'DE',
        status: 'down',
        nodes: 0,
        load: 0,
        tiers: ['free', 'pro', 'business'],
      },
      {
        id: 'us-east',
        name: 'Virginia',
        country: 'US',
        status: 'down',
        nodes: 0,
        load: 0,
        tiers: ['pro', 'business'],
      },
    ]);

    await writeNode('node_a', 'eu-west', { load: 0.4, lastHeartbeat: now - 1000 });
    await writeNode('node_b', 'eu-west', { load: 0.5, lastHeartbeat: now - 2000 });
    res = await request(broker.app).get('/v1/regions');
    expect(res.body.regions[0]).toMatchObject({ id: 'eu-west', status: 'active', nodes: 2, load: 0.45 });

    // 3 missed intervals (30 s) + 1 ms: node_b is lost, recently, so the region is degraded.
    await writeNode('node_b', 'eu-west', { load: 0.5, lastHeartbeat: now - 30_001 });
    res = await request(broker.app).get('/v1/regions');
    expect(res.body.regions[0]).toMatchObject({ status: 'degraded', nodes: 1, load: 0.4 });

    await writeNode('node_a', 'eu-west', { load: 0.4, draining: true, lastHeartbeat: now });
    res = await request(broker.app).get('/v1/regions');
    expect(res.body.regions[0]).toMatchObject({ status: 'down', nodes: 0, load: 0 });
  });

  test('a heavily loaded region is degraded', async () => {
    await writeNode('node_c', 'us-east', { load: 0.95, lastHeartbeat: now });
    const res = await request(broker.app).get('/v1/regions');
    expect(res.body.regions[1]).toMatchObject({ id: 'us-east', status: 'degraded', nodes: 1, load: 0.95 });
  });
});

describe('GET /v1/ip/{addr}', () => {
  test.each([
    ['203.0.113.7', '203.0.113.7'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['::ffff:203.0.113.9', '203.0.113.9'],
  ])('unknown %s → exit false, canonical %s', async (addr, canonical) => {
    const res = await request(broker.app).get(`/v1/ip/${encodeURIComponent(addr)}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ip: canonical, exit: false });
  });

  test.each(['1.2.3', '01.2.3.4', '256.1.1.1', 'example.com', '::1::', 'fe80::1%25eth0', '1.2.3.4.5'])(
    'malformed %s → 400 field addr',
    async (addr) => {
      const res = await request(broker.app).get(`/v1/ip/${addr}`);
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ error: 'invalid_request', code: 4000, field: 'addr' });
    },
  );

  test('egress records answer now and at past moments, both families', async () => {
    const t0 = now;
    await recordEgressIps(
      broker.ctx,
      'node_a',
      'eu-west',
      ['198.51.100.1', '2001:0db8::0001', 'junk'],
      t0,
      t0 - 30_000,
    );
    await recordEgressIps(broker.ctx, 'node_a', 'eu-west', ['198.51.100.1'], t0 + 60_000, t0 + 30_000);
    // The IP moves to another node an hour later.
    await recordEgressIps(broker.ctx, 'node_b', 'eu-west', ['198.51.100.1'], t0 + 3_600_000, t0 + 3_570_000);

    const current = await request(broker.app).get('/v1/ip/198.51.100.1');
    expect(current.body).toEqual({
      ip: '198.51.100.1',
      exit: true,
      region: 'eu-west',
      node: 'node_b',
      first_seen: new Date(t0 + 3_600_000).toISOString(),
      last_seen: new Date(t0 + 3_600_000).toISOString(),
    });
    const at = (ms: number) => encodeURIComponent(new Date(ms).toISOString());
    const past = await request(broker.app).get(`/v1/ip/198.51.100.1?at=${at(t0 + 30_000)}`);
    expect(past.body).toMatchObject({
      exit: true,
      node: 'node_a',
      last_seen: new Date(t0 + 60_000).toISOString(),
    });
    const gap = await request(broker.app).get(`/v1/ip/198.51.100.1?at=${at(t0 + 120_000)}`);
    expect(gap.body).toEqual({ ip: '198.51.100.1', exit: false });
    const before = await request(broker.app).get(`/v1/ip/198.51.100.1?at=${at(t0 - 1)}`);
    expect(before.body.exit).toBe(false);
    const grace = await request(broker.app).get(
      `/v1/ip/198.51.100.1?at=${at(t0 + 3_600_000 + LAST_SEEN_GRACE_MS)}`,
    );
    expect(grace.body).toMatchObject({ exit: true, node: 'node_b' });

    const v6 = await request(broker.app).get('/v1/ip/2001:db8:0::1');
    expect(v6.body).toMatchObject({ ip: '2001:db8::1', exit: true, node: 'node_a' });
    const offset = await request(broker.app).get(
      `/v1/ip/2001:db8::1?at=${encodeURIComponent('2026-01-01T01:00:30+01:00')}`,
    );
    expect(offset.body).toMatchObject({ exit: true, node: 'node_a' });
  });

  test('?at must be RFC 3339', async () => {
    const res = await request(broker.app).get('/v1/ip/198.51.100.1?at=yesterday');
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_request', field: 'at' });
  });
});

describe('public rate limit (10 burst, 1/s refill, per source IP)', () => {
  let limited: TestBroker['app'];
  beforeAll(async () => {
    limited = await broker.another({ env: { PUBLIC_BURST: '10' } });
  });

  test('the 11th request in a burst → 429 with Retry-After; one second refills one', async () => {
    for (let i = 0; i < 10; i++) {
      const ok = await request(limited).get('/v1/regions');
      expect(ok.status).toBe(200);
      expect(ok.headers['ratelimit-remaining']).toBe(String(9 - i));
    }
    const refused = await request(limited).get('/v1/regions');
    expect(refused.status).toBe(429);
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.body).toEqual({
      error: 'rate_limited',
      message: expect.any(String),
      code: 4029,
      retry_after: 1,
    });
    now += 1000;
    expect((await request(limited).get('/v1/regions')).status).toBe(200);
    expect((await request(limited).get('/v1/regions')).status).toBe(429);
  });

  test('signup and login share the per-IP bucket', async () => {
    now += 60_000;
    const app = await broker.another({ env: { PUBLIC_BURST: '2' } });
    expect(
      (await request(app).post('/v1/auth/signup').send({ fingerprint: 'abcdef0123456789' })).status,
    ).toBe(201);
    expect((await request(app).get('/v1/ip/192.0.2.1')).status).toBe(200);
    const refused = await request(app).post('/v1/auth/login').send({ email: 'a@example.com', password: 'x' });
    expect(refused.status).toBe(429);
    expect(refused.body).toMatchObject({ error: 'rate_limited', retry_after: 1 });
  });

  test('X-Forwarded-For is ignored unless the hop is a trusted proxy', async () => {
    now += 60_000;
    const untrusted = await broker.another({ env: { PUBLIC_BURST: '1' } });
    expect((await request(untrusted).get('/v1/health')).status).toBe(200);
    expect((await request(untrusted).get('/v1/regions').set('X-Forwarded-For', '192.0.2.1')).status).toBe(
      200,
    );
    expect((await request(untrusted).get('/v1/regions').set('X-Forwarded-For', '192.0.2.2')).status).toBe(
      429,
    );

    const trusted = await broker.another({ env: { PUBLIC_BURST: '1', TRUSTED_PROXIES: 'loopback' } });
    expect((await request(trusted).get('/v1/regions').set('X-Forwarded-For', '192.0.2.1')).status).toBe(200);
    expect((await request(trusted).get('/v1/regions').set('X-Forwarded-For', '192.0.2.2')).status).toBe(200);
    expect((await request(trusted).get('/v1/regions').set('X-Forwarded-For', '192.0.2.1')).status).toBe(429);
  });
});
