// POST /v1/nodes/register and /v1/nodes/{id}/heartbeat: node-token auth, region binding, stable ids,
// egress attribution, health by region with an injected clock, byte counters into usage.
import request from 'supertest';
import { createNodeToken } from '../../src/broker/services/enrollment.js';
import { nodeIdFor } from '../../src/broker/services/nodes.js';
import { tunnelAddresses } from '../../src/lib/addresses.js';
import { keys } from '../../src/broker/store/keys.js';
import { checkPlane, GiB, keyPair, startPlane, type Plane } from './sessions-fixture.js';

let plane: Plane;
beforeEach(async () => {
  plane = await startPlane();
});
afterEach(async () => plane.close());

const register = (token: string | undefined, body: Record<string, unknown>) => {
  const req = request(plane.broker.app).post('/v1/nodes/register');
  return (token ? req.set('Authorization', `Bearer ${token}`) : req).send(body);
};
const nodeBody = (overrides: Record<string, unknown> = {}) => ({
  region: 'eu-west',
  endpoint: '198.51.100.7:51820',
  public_key: keyPair().publicKey,
  egress_ips: ['203.0.113.7', '2001:db8::7'],
  capacity: 100,
  version: '0.1.0',
  ...overrides,
});
const interval = () => plane.broker.config.heartbeatMs;
const regionStatus = async (id: string) =>
  (await request(plane.broker.app).get('/v1/regions')).body.regions.find((r: { id: string }) => r.id === id);

describe('register', () => {
  test('1. node token → node_id and heartbeat_ms; the node is attributed its egress IPs', async () => {
    const { token, tokenId } = await createNodeToken(plane.broker.ctx, 'eu-west');
    const body = nodeBody();
    const res = await register(token, body);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      node_id: nodeIdFor(tokenId, body.public_key),
      heartbeat_ms: interval(),
      pool: { v4: '10.64.0.0/10', v6: 'fd64::/64' },
    });
    const ip = await request(plane.broker.app).get('/v1/ip/203.0.113.7');
    expect(ip.body).toMatchObject({
      ip: '203.0.113.7',
      exit: true,
      region: 'eu-west',
      node: res.body.node_id,
    });
    expect((await request(plane.broker.app).get('/v1/ip/2001:db8::7')).body.exit).toBe(true);
    expect(await regionStatus('eu-west')).toMatchObject({ status: 'active', nodes: 1 });
  });

  test('2. re-registering (a restart) keeps the id; a new key is a new node', async () => {
    const { token } = await createNodeToken(plane.broker.ctx, 'eu-west');
    const body = nodeBody();
    const first = await register(token, body);
    const again = await register(token, { ...body, endpoint: '198.51.100.8:51820' });
    expect(again.body.node_id).toBe(first.body.node_id);
    expect(await plane.broker.redis.hget(keys.regionNode('eu-west', first.body.node_id), 'endpoint')).toBe(
      '198.51.100.8:51820',
    );
    const other = await register(token, nodeBody());
    expect(other.body.node_id).not.toBe(first.body.node_id);
  });

  test.each([
    [1, 'no token', undefined, 401, 'unauthorized'],
    [2, 'an API token instead of a node token', 'api', 401, 'unauthorized'],
    [3, 'a malformed node token', 'tbn_nope', 401, 'unauthorized'],
  ])('3.%i %s → 401', async (_n, _case, which, status, error) => {
    const token = which === 'api' ? plane.fx.operator.token : which;
    const res = await register(token, nodeBody());
    expect([res.status, res.body.error]).toEqual([status, error]);
  });

  test.each([
    [1, 'another region than the token’s', { region: 'us-east' }, 'region'],
    [2, 'a bad endpoint', { endpoint: 'no port here' }, 'endpoint'],
    [3, 'an endpoint with a bad port', { endpoint: '198.51.100.7:99999' }, 'endpoint'],
    [4, 'a bad public key', { public_key: 'AAAA' }, 'public_key'],
    [5, 'zero capacity', { capacity: 0 }, 'capacity'],
  ])('4.%i %s → 400 with field', async (_n, _case, overrides, field) => {
    const { token } = await createNodeToken(plane.broker.ctx, 'eu-west');
    const res = await register(token, nodeBody(overrides));
    expect([res.status, res.body]).toEqual([
      400,
      expect.objectContaining({ error: 'invalid_request', field }),
    ]);
  });

  test('5. a token for a region that was never declared → 400 region', async () => {
    const { token } = await createNodeToken(plane.broker.ctx, 'atlantis');
    expect((await register(token, nodeBody({ region: 'atlantis' }))).body).toMatchObject({ field: 'region' });
  });
});

describe('heartbeat', () => {
  test('1. someone else’s node, or an unknown one → 404; no token → 401; bad load → 400', async () => {
    const node = await plane.node('eu-west');
    const stranger = await plane.node('eu-west');
    const res = await request(plane.broker.app)
      .post(`/v1/nodes/${node.id}/heartbeat`)
      .set('Authorization', `Bearer ${stranger.token}`)
      .send({ load: 0.1, draining: false, peers: [] });
    expect([res.status, res.body.error]).toEqual([404, 'not_found']);
    expect((await plane.heartbeat({ ...node, id: 'node_unknown' })).status).toBe(404);
    expect(
      (await request(plane.broker.app).post(`/v1/nodes/${node.id}/heartbeat`).send({ load: 0 })).status,
    ).toBe(401);
    expect((await plane.heartbeat(node, { load: 7 })).body).toMatchObject({
      error: 'invalid_request',
      field: 'load',
    });
    const ok = await plane.heartbeat(node, { load: 0.5 });
    expect([ok.status, ok.body]).toEqual([200, { heartbeat_ms: interval() }]);
  });

  test('2. health by region with the clock: active → degraded (one node silent) → down; a draining node takes no sessions', async () => {
    const a = await plane.node('eu-west');
    const b = await plane.node('eu-west');
    expect(await regionStatus('eu-west')).toMatchObject({ status: 'active', nodes: 2 });

    // Two intervals and a bit: still healthy (unhealthy after 3 missed intervals).
    plane.advance(2 * interval() + 500);
    expect(await regionStatus('eu-west')).toMatchObject({ status: 'active', nodes: 2 });
    plane.advance(interval());
    await plane.heartbeat(a, { load: 0.3 });
    expect(await regionStatus('eu-west')).toMatchObject({ status: 'degraded', nodes: 1, load: 0.3 });

    await plane.heartbeat(b, { load: 0.5 });
    expect(await regionStatus('eu-west')).toMatchObject({ status: 'active', nodes: 2, load: 0.4 });

    await plane.heartbeat(b, { load: 0.5, draining: true });
    expect(await regionStatus('eu-west')).toMatchObject({ nodes: 1 });

    plane.advance(3 * interval() + 1);
    expect(await regionStatus('eu-west')).toMatchObject({ status: 'down', nodes: 0 });
    // A node that comes back is healthy at once.
    await plane.heartbeat(a, { load: 0.2 });
    expect(await regionStatus('eu-west')).toMatchObject({ nodes: 1 });
  });

  test('2c. a node that drains and stops on purpose is stopped, not lost: the region stays active; one gone silent is lost, the region degraded', async () => {
    const staying = await plane.node('eu-west');
    const leaving = await plane.node('eu-west');
    const silent = await plane.node('eu-west');
    const states = async () => {
      const res = await request(plane.broker.app)
        .get('/v1/admin/nodes')
        .set('Authorization', `Bearer ${plane.fx.operator.token}`);
      expect(res.status).toBe(200);
      const byId = new Map((res.body.nodes as { id: string; state: string }[]).map((n) => [n.id, n.state]));
      return [byId.get(staying.id), byId.get(leaving.id), byId.get(silent.id)];
    };
    expect(await states()).toEqual(['healthy', 'healthy', 'healthy']);
    await plane.heartbeat(leaving, { draining: true });
    expect(await states()).toEqual(['healthy', 'draining', 'healthy']);
    expect(await regionStatus('eu-west')).toMatchObject({ status: 'active', nodes: 2 });

    // 1. The draining node stops heartbeating, the others go on: it is stopped, the region active.
    plane.advance(3 * interval() + 1);
    await plane.heartbeat(staying);
    await plane.heartbeat(silent);
    expect(await states()).toEqual(['healthy', 'stopped', 'healthy']);
    expect(await regionStatus('eu-west')).toMatchObject({ status: 'active', nodes: 2 });

    // 2. One stops without a drain: it is lost, the region degraded.
    plane.advance(3 * interval() + 1);
    await plane.heartbeat(staying);
    expect(await states()).toEqual(['healthy', 'stopped', 'lost']);
    expect(await regionStatus('eu-west')).toMatchObject({ status: 'degraded', nodes: 1 });
  });

  test('2b. TB_HEARTBEAT_MS: handed out at registration and in every answer; each node judged by the interval it was told', async () => {
    const short = await plane.broker.another({ env: { TB_HEARTBEAT_MS: '2000' } });
    // Registered through the default broker: told 10 s.
    const slow = await plane.node('eu-west');
    const { token } = await createNodeToken(plane.broker.ctx, 'eu-west');
    const registered = await request(short)
      .post('/v1/nodes/register')
      .set('Authorization', `Bearer ${token}`)
      .send(nodeBody({ egress_ips: ['203.0.113.99'] }));
    expect([registered.status, registered.body.heartbeat_ms]).toEqual([200, 2000]);
    const fast = { id: registered.body.node_id as string, token, region: 'eu-west', publicKey: '' };
    expect(await regionStatus('eu-west')).toMatchObject({ status: 'active', nodes: 2 });

    // 3 × 2 s and a bit: the node told 2 s is lost, the one told 10 s is not, whichever broker reads.
    plane.advance(3 * 2000 + 1);
    expect(await regionStatus('eu-west')).toMatchObject({ status: 'degraded', nodes: 1 });
    const fromShort = (await request(short).get('/v1/regions')).body.regions.find(
      (r: { id: string }) => r.id === 'eu-west',
    );
    expect(fromShort).toMatchObject({ status: 'degraded', nodes: 1 });

    // A heartbeat answered by the short broker tells the slow node 2 s: from then on that is its measure;
    // one answered by the default broker tells the fast node 10 s.
    const beat = await request(short)
      .post(`/v1/nodes/${slow.id}/heartbeat`)
      .set('Authorization', `Bearer ${slow.token}`)
      .send({ load: 0, draining: false, peers: [] });
    expect([beat.status, beat.body]).toEqual([200, { heartbeat_ms: 2000 }]);
    expect((await plane.heartbeat(fast)).body).toEqual({ heartbeat_ms: 10_000 });
    expect(await regionStatus('eu-west')).toMatchObject({ status: 'active', nodes: 2 });
    plane.advance(3 * 2000 + 1);
    expect(await regionStatus('eu-west')).toMatchObject({ status: 'degraded', nodes: 1 });
    // The session script judges the same way: only the node now told 10 s takes sessions.
    const p = await plane.principal('business');
    expect((await plane.create(p, { region: 'eu-west' })).body.node.id).toBe(fast.id);
  });

  test('3. sessions on a node that stopped beating read node_lost; new ones go elsewhere', async () => {
    const p = await plane.principal('business');
    const lost = await plane.node('eu-west');
    const s = await plane.create(p, { region: 'eu-west' });
    expect(s.body.node.id).toBe(lost.id);
    const survivor = await plane.node('eu-west');
    plane.advance(3 * interval() + 1);
    await plane.heartbeat(survivor);
    expect((await plane.as(p, 'get', `/v1/sessions/${s.body.id}`)).body.status).toBe('node_lost');
    expect((await plane.create(p, { region: 'eu-west' })).body.node.id).toBe(survivor.id);
  });

  test('4. byte counters → session rx/tx and account usage, as deltas; a lower counter is a node restart', async () => {
    const p = await plane.principal('pro');
    const node = await plane.node('eu-west');
    const client = keyPair();
    const s = await plane.create(p, { region: 'eu-west', public_key: client.publicKey });
    const report = (rx: number, tx: number, handshake: string | null = null) =>
      plane.heartbeat(node, {
        peers: [{ public_key: client.publicKey, rx_bytes: rx, tx_bytes: tx, last_handshake_at: handshake }],
      });
    const usage = async () => (await plane.as(p, 'get', '/v1/usage')).body.bytes.used;
    const session = async () => (await plane.as(p, 'get', `/v1/sessions/${s.body.id}`)).body;

    await report(1000, 200);
    expect(await usage()).toBe(1200);
    await report(1500, 300); // +500 +100
    expect(await usage()).toBe(1800);
    await report(1500, 300); // nothing new
    expect(await usage()).toBe(1800);
    await report(100, 50); // node restarted: counters began again
    expect(await usage()).toBe(1950);
    await report(2 * GiB, 1000);
    expect(await usage()).toBe(1950 + (2 * GiB - 100) + 950);
    expect(await session()).toMatchObject({
      rx_bytes: 1500 + 100 + (2 * GiB - 100),
      tx_bytes: 300 + 50 + 950,
    });

    // Handshake times only move forward.
    const t1 = new Date(plane.now()).toISOString();
    await report(2 * GiB, 1000, t1);
    await report(2 * GiB, 1000, new Date(plane.now() - 60_000).toISOString());
    expect((await session()).last_handshake_at).toBe(t1);

    // The lifetime counter of GET /v1/auth/user follows too.
    const user = await plane.as(p, 'get', '/v1/auth/user');
    expect(user.body.usage).toMatchObject({
      bytes_transferred: 1950 + (2 * GiB - 100) + 950,
      sessions_created: 1,
    });
  });

  test('5. reports for unknown peers or closed sessions count nothing', async () => {
    const p = await plane.principal('pro');
    const node = await plane.node('eu-west');
    const client = keyPair();
    const s = await plane.create(p, { region: 'eu-west', public_key: client.publicKey });
    await plane.as(p, 'delete', `/v1/sessions/${s.body.id}`);
    const live = keyPair();
    expect((await plane.create(p, { region: 'eu-west', public_key: live.publicKey })).status).toBe(201);
    const res = await plane.heartbeat(node, {
      peers: [
        { public_key: client.publicKey, rx_bytes: 5000, tx_bytes: 5000 },
        { public_key: keyPair().publicKey, rx_bytes: 5000, tx_bytes: 5000 },
        { public_key: live.publicKey, rx_bytes: 30, tx_bytes: 12 },
      ],
    });
    // Accepted, and the one live peer in the same report is counted: only the other two count nothing.
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ heartbeat_ms: interval() });
    expect((await plane.as(p, 'get', '/v1/usage')).body.bytes.used).toBe(42);
    await checkPlane(plane.broker.redis, 'eu-west');
  });

  test('6. today’s one-body report of 600 peers (over 64 KiB) is applied whole; only its node may send that much', async () => {
    const node = await plane.node('eu-west', { capacity: 1000 });
    const accounts = await Promise.all(Array.from({ length: 12 }, () => plane.principal('business')));
    const peers: Record<string, unknown>[] = [];
    for (const [i, p] of accounts.entries()) {
      const clients = Array.from({ length: 50 }, () => keyPair().publicKey);
      const created = await Promise.all(
        clients.map((key) => plane.create(p, { region: 'eu-west', public_key: key })),
      );
      expect(created.map((res) => res.status)).toEqual(clients.map(() => 201));
      for (const key of clients)
        peers.push({ public_key: key, rx_bytes: 1000 + i, tx_bytes: 7, last_handshake_at: null });
    }
    const body = { load: 0.6, draining: false, peers };
    expect(JSON.stringify(body).length).toBeGreaterThan(64 * 1024);
    const anonymous = await request(plane.broker.app).post(`/v1/nodes/${node.id}/heartbeat`).send(body);
    expect([anonymous.status, anonymous.body.error]).toEqual([401, 'unauthorized']);
    const res = await plane.heartbeat(node, body);
    expect([res.status, res.body]).toEqual([200, { heartbeat_ms: interval() }]);
    for (const [i, p] of accounts.entries()) {
      expect((await plane.as(p, 'get', '/v1/usage')).body.bytes.used).toBe(50 * (1000 + i + 7));
    }
    expect(await regionStatus('eu-west')).toMatchObject({ status: 'active', load: 0.6 });
    // Beyond what the largest node could send: 413 in the contract's shape, naming the heartbeat's limit
    // (64 KiB + 256 B for each of TB_NODE_MAX_CAPACITY's 10,000 peers), not every other endpoint's.
    const huge = await plane.heartbeat(node, { pad: 'x'.repeat(3 * 1024 * 1024) });
    expect([huge.status, huge.body.error, huge.body.message]).toEqual([
      413,
      'payload_too_large',
      'The request body is larger than 2564 KiB.',
    ]);
    await checkPlane(plane.broker.redis, 'eu-west');
  }, 120_000); // 600 sessions created through the API first: minutes on a busy 2-core host

  test('7. feed polls past TB_NODE_REQUESTS_PER_MINUTE get 429; the node’s heartbeats have a window of their own', async () => {
    await plane.close();
    plane = await startPlane({ env: { TB_NODE_REQUESTS_PER_MINUTE: '5' } });
    const node = await plane.node('eu-west'); // its registration is one of the 5
    const poll = () =>
      request(plane.broker.app)
        .get(`/v1/nodes/${node.id}/peers?wait=0`)
        .set('Authorization', `Bearer ${node.token}`);
    const polls = [];
    for (let i = 0; i < 6; i++) polls.push((await poll()).status);
    expect(polls).toEqual([200, 200, 200, 200, 429, 429]);
    // Under churn a node polls as fast as sessions change; its health must not pay for it.
    const beats = [];
    for (let i = 0; i < 5; i++) beats.push(await plane.heartbeat(node, { load: 0.1 }));
    expect(beats.map((res) => res.status)).toEqual([200, 200, 200, 200, 200]);
    expect(beats[4]!.headers['ratelimit-remaining']).toBe('0');
    expect(await regionStatus('eu-west')).toMatchObject({ status: 'active', nodes: 1 });
    // The heartbeats' own window is bounded too, and spends nothing of the polls'.
    const over = await plane.heartbeat(node, { load: 0.1 });
    expect([over.status, over.body.error]).toEqual([429, 'rate_limited']);
    expect((await poll()).status).toBe(429);
  });
});

test('tunnel addresses: index → 10.64.0.0/10 and fd64::/64', () => {
  expect(tunnelAddresses(2)).toEqual({ v4: '10.64.0.2', v6: 'fd64::2' });
  expect(tunnelAddresses(256)).toEqual({ v4: '10.64.1.0', v6: 'fd64::100' });
  expect(tunnelAddresses(65536 + 5)).toEqual({ v4: '10.65.0.5', v6: 'fd64::1:5' });
  expect(tunnelAddresses(2 ** 22 - 2)).toEqual({ v4: '10.127.255.254', v6: 'fd64::3f:fffe' });
});
