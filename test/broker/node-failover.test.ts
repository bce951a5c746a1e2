// Exit failover (docs/API.md "Exit nodes"): the sessions of a node that stops heartbeating (or is
// removed) move to another node of the region with room, keeping key, addresses and preshared key, and
// the feeds tell both nodes; with no room a session reads node_lost and holds no slot. Nodes speak the
// node protocol over HTTP; the clock is injected, and each test runs the reaper's failover round itself.
import request from 'supertest';
import { failoverRound } from '../../src/broker/services/failover.js';
import { runCloseSession } from '../../src/broker/services/lua.js';
import { removeNode } from '../../src/broker/services/nodes.js';
import { upsertRegion } from '../../src/broker/services/regions.js';
import { keys } from '../../src/broker/store/keys.js';
import { PRESHARED_KEY_PLACEHOLDER, PRIVATE_KEY_PLACEHOLDER } from '../../src/lib/session-config.js';
import { parseWgQuick } from '../../src/lib/wgquick.js';
import { checkPlane, keyPair, startPlane, type Plane, type TestNode } from './sessions-fixture.js';

let plane: Plane;
beforeEach(async () => {
  plane = await startPlane();
});
afterEach(async () => plane.close());

const lose = (survivors: TestNode[]) => async () => {
  plane.advance(3 * plane.broker.config.heartbeatMs + 1);
  for (const node of survivors) expect((await plane.heartbeat(node)).status).toBe(200);
};

/** One poll of a node's feed, as the node makes it. */
const feed = async (node: TestNode, cursor = '') =>
  (
    await request(plane.broker.app)
      .get(`/v1/nodes/${node.id}/peers?cursor=${encodeURIComponent(cursor)}&wait=0`)
      .set('Authorization', `Bearer ${node.token}`)
  ).body as {
    cursor: string;
    full: boolean;
    peers: { public_key: string; preshared_key?: string; allowed_ips: string[] }[];
    removed: string[];
  };

const metrics = async () => (await request(plane.broker.app).get('/metrics')).text;
const gauge = (text: string, name: string, labels: string) =>
  Number(new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, 'm').exec(text)?.[1]);

test('1. a node stops heartbeating: its session moves with its key, addresses and preshared key; both feeds say so', async () => {
  const p = await plane.principal('pro');
  const a = await plane.node('eu-west');
  const client = keyPair();
  const made = await plane.create(p, {
    region: 'eu-west',
    public_key: client.publicKey,
    preshared_key: true,
  });
  expect([made.status, made.body.node.id]).toEqual([201, a.id]);
  const b = await plane.node('eu-west');
  const aCursor = (await feed(a)).cursor;

  await lose([b])();
  const read = async () => (await plane.as(p, 'get', `/v1/sessions/${made.body.id}`)).body;
  expect(await read()).toMatchObject({ status: 'node_lost', node: made.body.node, moved_at: null });

  expect(await failoverRound(plane.broker.ctx)).toEqual({ moved: 1, lost: 0 });
  const moved = await read();
  expect(moved).toMatchObject({
    status: 'pending', // until the client shakes hands with its new node
    node: { id: b.id, public_key: b.publicKey, endpoint: expect.stringMatching(/:51820$/) },
    moved_at: new Date(plane.now()).toISOString(),
    last_handshake_at: null,
  });
  expect(moved.node.endpoint).not.toBe(made.body.node.endpoint);

  // A fresh config: the new node as its peer, the same addresses, the keys as placeholders.
  // Filled in by the client with the keys it kept, it is a wg-quick file for the new node.
  const filled = parseWgQuick(
    moved.config
      .replace(PRIVATE_KEY_PLACEHOLDER, client.privateKey)
      .replace(PRESHARED_KEY_PLACEHOLDER, made.body.peer.preshared_key),
  );
  expect(filled.ok).toBe(true);
  expect(moved.config).toContain(`PrivateKey = ${PRIVATE_KEY_PLACEHOLDER}`);
  expect(moved.config).toContain(`PresharedKey = ${PRESHARED_KEY_PLACEHOLDER}`);
  expect(moved.config).toContain(`PublicKey = ${b.publicKey}`);
  expect(moved.config).toContain(`Endpoint = ${moved.node.endpoint}`);
  expect(moved.config).toContain(`Address = ${made.body.interface.addresses.join(', ')}`);
  expect(moved.config).not.toContain(made.body.peer.preshared_key);

  // The new node's feed carries the peer as it was; the old node's feed removes it.
  expect((await feed(b)).peers).toEqual([
    {
      public_key: client.publicKey,
      preshared_key: made.body.peer.preshared_key,
      allowed_ips: made.body.interface.addresses,
    },
  ]);
  const gone = await feed(a, aCursor);
  expect([gone.full, gone.peers, gone.removed]).toEqual([false, [], [client.publicKey]]);

  // Idempotent: another round (or another broker's) moves nothing more.
  expect(await failoverRound(plane.broker.ctx)).toEqual({ moved: 0, lost: 0 });
  const text = await metrics();
  expect(gauge(text, 'tunnelbyte_broker_sessions_failed_over_total', 'outcome="moved"')).toBe(1);
  expect(gauge(text, 'tunnelbyte_broker_sessions_failed_over_total', 'outcome="lost"')).toBe(0);
  await checkPlane(plane.broker.redis, 'eu-west');

  // The new node's counters start from zero and count in full.
  const handshake = new Date(plane.now()).toISOString();
  await plane.heartbeat(b, {
    peers: [{ public_key: client.publicKey, rx_bytes: 700, tx_bytes: 300, last_handshake_at: handshake }],
  });
  expect(await read()).toMatchObject({ status: 'active', last_handshake_at: handshake });
  expect((await plane.as(p, 'get', '/v1/usage')).body.bytes.used).toBe(1000);

  // The old node, back, gets new sessions again with its feed rebuilt without the peer.
  await plane.heartbeat(a);
  expect((await feed(a)).peers).toEqual([]);
});

test('2. addresses are unique across the nodes of a region, so every session can move keeping its own', async () => {
  const biz = await plane.principal('business');
  const a = await plane.node('eu-west');
  const b = await plane.node('eu-west');
  const c = await plane.node('eu-west');
  const made = await Promise.all(
    Array.from({ length: 30 }, () =>
      plane.create(biz, { region: 'eu-west', public_key: keyPair().publicKey }),
    ),
  );
  expect(made.every((r) => r.status === 201)).toBe(true);
  const addresses = made.map((r) => r.body.interface.addresses[0]);
  expect(new Set(addresses).size).toBe(30);
  const onA = made.filter((r) => r.body.node.id === a.id);
  expect(onA.length).toBeGreaterThan(0);

  await lose([b, c])();
  // Three brokers run their rounds at once: each session moves exactly once.
  const others = await Promise.all([plane.broker.another(), plane.broker.another()]);
  const rounds = await Promise.all(
    [plane.broker.app, ...others].map((app) => failoverRound(app.locals.broker)),
  );
  expect(rounds.reduce((sum, r) => sum + r.moved, 0)).toBe(onA.length);
  expect(rounds.reduce((sum, r) => sum + r.lost, 0)).toBe(0);
  const perNode = await checkPlane(plane.broker.redis, 'eu-west');
  expect([perNode.get(a.id), (perNode.get(b.id) ?? 0) + (perNode.get(c.id) ?? 0)]).toEqual([0, 30]);
  for (const r of onA) {
    const now = (await plane.as(biz, 'get', `/v1/sessions/${r.body.id}`)).body;
    expect([b.id, c.id]).toContain(now.node.id);
    expect(now.config).toContain(`Address = ${r.body.interface.addresses.join(', ')}`);
  }
});

test('3. a removed node: its sessions move to the other node of the region', async () => {
  const p = await plane.principal('pro');
  const a = await plane.node('eu-west');
  const made = await plane.create(p, { region: 'eu-west', public_key: keyPair().publicKey });
  const b = await plane.node('eu-west');
  expect(await removeNode(plane.broker.ctx, a.id, true)).toBe(true);
  expect(await failoverRound(plane.broker.ctx)).toEqual({ moved: 1, lost: 0 });
  const now = (await plane.as(p, 'get', `/v1/sessions/${made.body.id}`)).body;
  expect([now.status, now.node.id]).toEqual(['pending', b.id]);
  // Done with the removed node: it leaves the region's failover set.
  expect(await plane.broker.redis.smembers(keys.regionRemovedNodes('eu-west'))).toEqual([]);
  await checkPlane(plane.broker.redis, 'eu-west');
});

test('4. no room elsewhere: the session reads node_lost for good, holds no slot, and its user connects again at once', async () => {
  const user = await plane.principal('free'); // one concurrent session
  const a = await plane.node('eu-west');
  const made = await plane.create(user, { region: 'eu-west', public_key: keyPair().publicKey });
  expect(made.status).toBe(201);
  // The only other node is full.
  const b = await plane.node('eu-west', { capacity: 1 });
  const other = await plane.principal('pro');
  expect((await plane.create(other, { region: 'eu-west' })).body.node.id).toBe(b.id);

  await lose([b])();
  let text = await metrics();
  expect(gauge(text, 'tunnelbyte_nodes', 'region="eu-west",state="lost"')).toBe(1);
  expect(gauge(text, 'tunnelbyte_nodes', 'region="eu-west",state="healthy"')).toBe(1);
  expect(gauge(text, 'tunnelbyte_sessions', 'region="eu-west",status="node_lost"')).toBe(1);

  expect(await failoverRound(plane.broker.ctx)).toEqual({ moved: 0, lost: 1 });
  expect(gauge(await metrics(), 'tunnelbyte_broker_sessions_failed_over_total', 'outcome="lost"')).toBe(1);
  const read = async () => (await plane.as(user, 'get', `/v1/sessions/${made.body.id}`)).body;
  expect(await read()).toMatchObject({ status: 'node_lost', node: { id: a.id }, moved_at: null });
  expect((await plane.as(user, 'get', '/v1/usage')).body.sessions.active).toBe(0);
  text = await metrics();
  expect(gauge(text, 'tunnelbyte_sessions', 'region="eu-west",status="node_lost"')).toBe(1);
  expect(gauge(text, 'tunnelbyte_sessions', 'region="eu-west",status="pending"')).toBe(1);
  await checkPlane(plane.broker.redis, 'eu-west');

  // The node comes back: the lost session stays lost (its user may have connected elsewhere since).
  await plane.heartbeat(a);
  expect((await read()).status).toBe('node_lost');
  expect((await feed(a)).peers).toEqual([]);
  const again = await plane.create(user, { region: 'eu-west', public_key: keyPair().publicKey });
  expect([again.status, again.body.node.id]).toEqual([201, a.id]);

  // Deleting the lost session is allowed and changes nothing else; it expires like any other.
  expect((await plane.as(user, 'delete', `/v1/sessions/${made.body.id}`)).status).toBe(204);
  expect((await read()).status).toBe('closed');
  await checkPlane(plane.broker.redis, 'eu-west');
});

test('5. before the reaper runs: a session on a lost node frees its slot when its user connects again; retry_after is true', async () => {
  await upsertRegion(plane.broker.ctx, { id: 'eu-north', name: 'Stockholm', country: 'SE', tiers: ['free'] });
  const user = await plane.principal('free');
  await plane.node('eu-west');
  const north = await plane.node('eu-north');
  const made = await plane.create(user, { region: 'eu-west', ttl_seconds: 3600 });
  expect(made.status).toBe(201);

  // A session on a healthy node holds the slot; the hint is the time until it expires, and true.
  const refused = await plane.create(user, { region: 'eu-north' });
  expect([refused.status, refused.body.error, refused.body.retry_after]).toEqual([
    429,
    'quota_exhausted',
    3600,
  ]);
  expect(refused.headers['retry-after']).toBe('3600');

  // Its node dies (no other node in eu-west): the next connect, anywhere, gets the slot at once.
  await lose([north])();
  const again = await plane.create(user, { region: 'eu-north' });
  expect([again.status, again.body.node?.id]).toEqual([201, north.id]);
  expect((await plane.as(user, 'get', `/v1/sessions/${made.body.id}`)).body.status).toBe('node_lost');
  await checkPlane(plane.broker.redis, 'eu-west');
  await checkPlane(plane.broker.redis, 'eu-north');

  // Now the new session holds the slot, and its hint is as true: one second early is still refused.
  const hint = (await plane.create(user, { region: 'eu-north' })).body.retry_after as number;
  expect(hint).toBe(24 * 3600);
  plane.advance((hint - 1) * 1000);
  await plane.heartbeat(north);
  expect((await plane.create(user, { region: 'eu-north' })).status).toBe(429);
  plane.advance(1000);
  await plane.heartbeat(north);
  expect((await plane.create(user, { region: 'eu-north' })).status).toBe(201);
});

test('6. a session closed by a broker that died before giving its slot back holds it no longer', async () => {
  const user = await plane.principal('free');
  await plane.node('eu-west');
  const made = await plane.create(user, { region: 'eu-west' });
  // The region step of a close, without the account step after it.
  const { outcome } = await runCloseSession(plane.broker.redis, {
    region: 'eu-west',
    sessionId: made.body.id,
    owner: undefined,
    state: 'closed',
    retentionSeconds: 60,
    now: plane.now(),
    feedMaxLength: 100,
    onlyIfDue: false,
    reason: 'deleted',
  });
  expect(outcome).toBe('closed');
  expect(
    await plane.broker.redis.zscore(keys.accountLiveSessions(user.account.id), made.body.id),
  ).not.toBeNull();
  expect((await plane.create(user, { region: 'eu-west' })).status).toBe(201);
});
