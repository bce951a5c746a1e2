// POST/GET/DELETE /v1/sessions against a real Redis: success paths, every error row, node choice,
// address reuse, status transitions, concurrency, and the authorization matrix.
import { parseWgQuick } from '../../src/lib/wgquick.js';
import { keyToBase64 } from '../../src/lib/wgkey.js';
import nacl from 'tweetnacl';
import { keys } from '../../src/broker/store/keys.js';
import { POOL_PREFIXES } from '../../src/lib/addresses.js';
import { MAX_TTL_SECONDS, ACTIVE_HANDSHAKE_MS } from '../../src/broker/services/sessions.js';
import { PRIVATE_KEY_PLACEHOLDER } from '../../src/lib/session-config.js';
import { sessionConfig } from '../../src/cli/wgconfig.js';
import { authorizationMatrix, type EndpointRow } from './authz.js';
import { checkPlane, GiB, keyPair, startPlane, type Plane, type TestNode } from './sessions-fixture.js';
import { redisContents } from './helpers.js';

let plane: Plane;
let eu: TestNode;
beforeAll(async () => {
  plane = await startPlane();
  eu = await plane.node('eu-west');
});
afterAll(async () => plane.close());

/** Keeps every node given healthy after the clock moved. */
const beat = (...nodes: TestNode[]) => Promise.all(nodes.map((n) => plane.heartbeat(n)));

const allValues = () => redisContents(plane.broker.redis);

describe('POST /v1/sessions', () => {
  test('1. broker-made key pair: 201, config holds it, the private key is never stored', async () => {
    const p = await plane.principal('pro');
    const res = await plane.create(p, { region: 'eu-west' });
    expect(res.status).toBe(201);
    const s = res.body;
    expect(s).toMatchObject({
      id: expect.stringMatching(/^ses_/),
      status: 'pending',
      region: 'eu-west',
      node: { id: eu.id, endpoint: expect.stringMatching(/:51820$/), public_key: eu.publicKey },
      interface: {
        addresses: [
          expect.stringMatching(/^10\.64\.0\.\d+\/32$/),
          expect.stringMatching(/^fd64::[0-9a-f]+\/128$/),
        ],
      },
      peer: { public_key: eu.publicKey, allowed_ips: ['0.0.0.0/0', '::/0'], persistent_keepalive: 25 },
    });
    expect(Date.parse(s.expires_at) - Date.parse(s.created_at)).toBe(24 * 3600 * 1000);
    const parsed = parseWgQuick(s.config);
    if (!parsed.ok) throw new Error(parsed.error.message);
    const privateKey = Buffer.from(parsed.config.interface.privateKey).toString('base64');
    expect(privateKey).toBe(s.interface.private_key);
    expect(parsed.config.interface.addresses).toEqual(s.interface.addresses);
    expect(keyToBase64(parsed.config.peers[0]!.publicKey)).toBe(eu.publicKey);
    expect(parsed.config.peers[0]!.presharedKey).toBeUndefined();
    // The client's public key (derived from the returned private key) is the node's new peer.
    const clientPublic = keyToBase64(nacl.scalarMult.base(parsed.config.interface.privateKey));
    expect(await plane.broker.redis.hexists(keys.nodePeers('eu-west', eu.id), clientPublic)).toBe(1);
    expect((await allValues()).some((v) => v.includes(s.interface.private_key))).toBe(false);
    // Shown once: reading the session back never includes it.
    const again = await plane.as(p, 'get', `/v1/sessions/${s.id}`);
    expect(JSON.stringify(again.body)).not.toContain(s.interface.private_key);
  });

  test('2. client public key: no private key anywhere, config has the placeholder the CLI fills', async () => {
    const p = await plane.principal('pro');
    const client = keyPair();
    const res = await plane.create(p, { region: 'eu-west', public_key: client.publicKey });
    expect(res.status).toBe(201);
    expect(res.body.interface.private_key).toBeUndefined();
    expect(res.body.config).toContain(`PrivateKey = ${PRIVATE_KEY_PLACEHOLDER}`);
    const filled = sessionConfig(res.body, client.privateKey);
    expect(filled.ok).toBe(true);
    expect(await plane.broker.redis.hexists(keys.nodePeers('eu-west', eu.id), client.publicKey)).toBe(1);
  });

  test('3. preshared_key: true → returned once, in the config and in the node feed', async () => {
    const p = await plane.principal('pro');
    const client = keyPair();
    const res = await plane.create(p, {
      region: 'eu-west',
      public_key: client.publicKey,
      preshared_key: true,
    });
    expect(res.status).toBe(201);
    const psk = res.body.peer.preshared_key as string;
    expect(Buffer.from(psk, 'base64')).toHaveLength(32);
    expect(res.body.config).toContain(`PresharedKey = ${psk}`);
    const feed = await plane.broker.redis.xrange(keys.nodeFeed('eu-west', eu.id), '-', '+');
    expect(feed.at(-1)![1]).toEqual([
      'op',
      'add',
      'public_key',
      client.publicKey,
      'idx',
      expect.any(String),
      'psk',
      psk,
    ]);
  });

  test.each([
    [1, 'unknown region', { region: 'nowhere' }, 'region'],
    [2, 'malformed region', { region: '' }, 'region'],
    [3, 'public key not base64', { region: 'eu-west', public_key: 'not a key' }, 'public_key'],
    [
      4,
      'public key of 31 bytes',
      { region: 'eu-west', public_key: Buffer.alloc(31, 1).toString('base64') },
      'public_key',
    ],
    [5, 'ttl below the minimum', { region: 'eu-west', ttl_seconds: 10 }, 'ttl_seconds'],
    [6, 'ttl above every tier', { region: 'eu-west', ttl_seconds: 31 * 24 * 3600 }, 'ttl_seconds'],
    [7, 'ttl not an integer', { region: 'eu-west', ttl_seconds: 100.5 }, 'ttl_seconds'],
    [8, 'preshared_key not a boolean', { region: 'eu-west', preshared_key: 'yes' }, 'preshared_key'],
  ])('4.%i %s → 400 invalid_request', async (_n, _case, body, field) => {
    const p = await plane.principal('pro');
    const res = await plane.create(p, body);
    expect([res.status, res.body]).toEqual([
      400,
      expect.objectContaining({ error: 'invalid_request', code: 4000, field }),
    ]);
  });

  test('5. free token in a paid-only region → 403 tier_required (pro); pro in a business-only one → business', async () => {
    await plane.node('us-east');
    const free = await plane.principal('free');
    const res = await plane.create(free, { region: 'us-east' });
    expect([res.status, res.body]).toEqual([
      403,
      expect.objectContaining({ error: 'tier_required', code: 4031, required_tier: 'pro' }),
    ]);
    const pro = await plane.principal('pro');
    const res2 = await plane.create(pro, { region: 'ap-south' });
    expect(res2.body).toMatchObject({ error: 'tier_required', required_tier: 'business' });
  });

  test('6. ttl above the tier but within a higher one → 403 tier_required; at the tier max → 201', async () => {
    const free = await plane.principal('free');
    const res = await plane.create(free, { region: 'eu-west', ttl_seconds: MAX_TTL_SECONDS.free + 1 });
    expect(res.body).toMatchObject({ error: 'tier_required', required_tier: 'pro' });
    const ok = await plane.create(free, { region: 'eu-west', ttl_seconds: MAX_TTL_SECONDS.free });
    expect(ok.status).toBe(201);
  });

  test('7. concurrent-session quota: second free session → 429 quota_exhausted with retry_after', async () => {
    const free = await plane.principal('free');
    const first = await plane.create(free, { region: 'eu-west', ttl_seconds: 3600 });
    expect(first.status).toBe(201);
    const second = await plane.create(free, { region: 'eu-west' });
    expect([second.status, second.body]).toEqual([
      429,
      expect.objectContaining({ error: 'quota_exhausted', code: 4290, retry_after: 3600 }),
    ]);
    expect(second.headers['retry-after']).toBe('3600');
    // Closing the first frees the slot at once.
    expect((await plane.as(free, 'delete', `/v1/sessions/${first.body.id}`)).status).toBe(204);
    expect((await plane.create(free, { region: 'eu-west' })).status).toBe(201);
  });

  test('8. byte quota used up (from node reports) → 429 with retry_after = rest of the period', async () => {
    const free = await plane.principal('free');
    const client = keyPair();
    const s = await plane.create(free, { region: 'eu-west', public_key: client.publicKey });
    expect(s.status).toBe(201);
    const hb = await plane.heartbeat(eu, {
      peers: [
        { public_key: client.publicKey, rx_bytes: 6 * GiB, tx_bytes: 4 * GiB, last_handshake_at: null },
      ],
    });
    expect(hb.status).toBe(200);
    await plane.as(free, 'delete', `/v1/sessions/${s.body.id}`);
    const res = await plane.create(free, { region: 'eu-west' });
    expect(res.body).toMatchObject({ error: 'quota_exhausted' });
    const periodEnd = free.account.createdAt + 30 * 24 * 3600 * 1000;
    expect(res.body.retry_after).toBe(Math.ceil((periodEnd - plane.now()) / 1000));
  });

  test('9. no node in the region → 503 no_capacity with Retry-After', async () => {
    const biz = await plane.principal('business');
    const res = await plane.create(biz, { region: 'ap-south' });
    expect([res.status, res.body]).toEqual([
      503,
      expect.objectContaining({ error: 'no_capacity', code: 5003 }),
    ]);
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    // The failed attempt gave its reservation back.
    const usage = await plane.as(biz, 'get', '/v1/usage');
    expect(usage.body.sessions.active).toBe(0);
  });
});

describe('node choice', () => {
  let other: Plane;
  beforeEach(async () => {
    other = await startPlane();
  });
  afterEach(async () => other.close());

  test('1. least-loaded healthy node wins; draining and unhealthy ones take no sessions', async () => {
    const biz = await other.principal('business');
    const busy = await other.node('eu-west');
    const idle = await other.node('eu-west');
    await other.heartbeat(busy, { load: 0.8 });
    await other.heartbeat(idle, { load: 0.1 });
    expect((await other.create(biz, { region: 'eu-west' })).body.node.id).toBe(idle.id);

    await other.heartbeat(idle, { load: 0.1, draining: true });
    expect((await other.create(biz, { region: 'eu-west' })).body.node.id).toBe(busy.id);

    // busy misses 3 intervals (idle keeps beating, but drains): nothing left.
    other.advance(3 * other.broker.config.heartbeatMs + 1);
    await other.heartbeat(idle, { load: 0.1, draining: true });
    const res = await other.create(biz, { region: 'eu-west' });
    expect(res.body).toMatchObject({ error: 'no_capacity' });

    // Back from draining: sessions go there again.
    await other.heartbeat(idle, { load: 0.1, draining: false });
    expect((await other.create(biz, { region: 'eu-west' })).body.node.id).toBe(idle.id);
  });

  test('2. a full node takes no more; freed addresses are reused lowest first', async () => {
    const biz = await other.principal('business');
    await other.node('eu-west', { capacity: 2 });
    const a = await other.create(biz, { region: 'eu-west' });
    const b = await other.create(biz, { region: 'eu-west' });
    expect([a.body.interface.addresses, b.body.interface.addresses]).toEqual([
      ['10.64.0.2/32', 'fd64::2/128'],
      ['10.64.0.3/32', 'fd64::3/128'],
    ]);
    expect((await other.create(biz, { region: 'eu-west' })).body).toMatchObject({ error: 'no_capacity' });
    expect((await other.as(biz, 'delete', `/v1/sessions/${a.body.id}`)).status).toBe(204);
    const c = await other.create(biz, { region: 'eu-west' });
    expect(c.body.interface.addresses).toEqual(['10.64.0.2/32', 'fd64::2/128']);
    await checkPlane(other.broker.redis, 'eu-west');
  });

  test('3. the same client key twice on a one-node region, by one account or two → 409 conflict; on two nodes it spreads', async () => {
    const biz = await other.principal('business');
    await other.node('eu-west');
    const client = keyPair();
    expect((await other.create(biz, { region: 'eu-west', public_key: client.publicKey })).status).toBe(201);
    const res = await other.create(biz, { region: 'eu-west', public_key: client.publicKey });
    expect([res.status, res.body.error]).toEqual([409, 'conflict']);
    // Another account's session with that key: the same (a node holds a key once), as docs/API.md says.
    const stranger = await other.create(await other.principal('business'), {
      region: 'eu-west',
      public_key: client.publicKey,
    });
    expect([stranger.status, stranger.body.error]).toEqual([409, 'conflict']);
    await other.node('eu-west');
    expect((await other.create(biz, { region: 'eu-west', public_key: client.publicKey })).status).toBe(201);
    await checkPlane(other.broker.redis, 'eu-west');
  });

  test('4. N parallel creates on a 1-session tier → exactly one succeeds, no address leaked', async () => {
    const free = await other.principal('free');
    await other.node('eu-west');
    const results = await Promise.all(
      Array.from({ length: 25 }, () => other.create(free, { region: 'eu-west' })),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 429)).toHaveLength(24);
    const perNode = await checkPlane(other.broker.redis, 'eu-west');
    expect([...perNode.values()]).toEqual([1]);
  });

  test('5. parallel creates by many accounts → distinct addresses, all accounted for', async () => {
    const users = await Promise.all(Array.from({ length: 10 }, () => other.principal('pro')));
    await other.node('eu-west');
    await other.node('eu-west');
    const results = await Promise.all(
      users.flatMap((u) => [1, 2, 3].map(() => other.create(u, { region: 'eu-west' }))),
    );
    expect(results.every((r) => r.status === 201)).toBe(true);
    const byNode = new Map<string, string[]>();
    for (const r of results)
      byNode.set(r.body.node.id, [...(byNode.get(r.body.node.id) ?? []), r.body.interface.addresses[0]]);
    for (const addrs of byNode.values()) expect(new Set(addrs).size).toBe(addrs.length);
    const perNode = await checkPlane(other.broker.redis, 'eu-west');
    expect([...perNode.values()].reduce((a, b) => a + b, 0)).toBe(30);
  });
});

describe('GET /v1/sessions and /v1/sessions/{id}', () => {
  test('1. list holds own sessions only, newest first', async () => {
    const p = await plane.principal('pro');
    const q = await plane.principal('pro');
    const a = await plane.create(p, { region: 'eu-west' });
    plane.advance(1000);
    const b = await plane.create(p, { region: 'eu-west' });
    await plane.create(q, { region: 'eu-west' });
    const res = await plane.as(p, 'get', '/v1/sessions');
    expect(res.status).toBe(200);
    expect(res.body.sessions.map((s: { id: string }) => s.id)).toEqual([b.body.id, a.body.id]);
    expect(res.body.sessions[0]).toEqual({
      id: b.body.id,
      status: 'pending',
      region: 'eu-west',
      node: b.body.node,
      // The creation's config, the private key (shown once) replaced by its placeholder.
      config: b.body.config.replace(/^PrivateKey = .*$/m, `PrivateKey = ${PRIVATE_KEY_PLACEHOLDER}`),
      moved_at: null,
      created_at: b.body.created_at,
      expires_at: b.body.expires_at,
      last_handshake_at: null,
      rx_bytes: 0,
      tx_bytes: 0,
      closed_reason: null,
    });
    expect(res.body.sessions[0].config).not.toBe(b.body.config);
  });

  test('2. status: pending → active (handshake) → idle → node_lost → expired; counters from reports', async () => {
    const own = await startPlane();
    try {
      const p = await own.principal('pro');
      const node = await own.node('eu-west');
      const client = keyPair();
      const s = await own.create(p, { region: 'eu-west', public_key: client.publicKey, ttl_seconds: 3600 });
      const status = async () => (await own.as(p, 'get', `/v1/sessions/${s.body.id}`)).body;
      expect((await status()).status).toBe('pending');

      const handshake = new Date(own.now()).toISOString();
      await own.heartbeat(node, {
        peers: [
          { public_key: client.publicKey, rx_bytes: 1000, tx_bytes: 500, last_handshake_at: handshake },
        ],
      });
      expect(await status()).toMatchObject({
        status: 'active',
        last_handshake_at: handshake,
        rx_bytes: 1000,
        tx_bytes: 500,
      });

      own.advance(ACTIVE_HANDSHAKE_MS + 1000);
      await own.heartbeat(node);
      expect((await status()).status).toBe('idle');

      own.advance(3 * own.broker.config.heartbeatMs + 1);
      expect((await status()).status).toBe('node_lost');
      await own.heartbeat(node);
      expect((await status()).status).toBe('idle');

      own.advance(3600 * 1000);
      await own.heartbeat(node);
      expect((await status()).status).toBe('expired');
    } finally {
      await own.close();
    }
  });

  test('3. unknown or malformed id → 404 / 400', async () => {
    const p = await plane.principal('pro');
    expect((await plane.as(p, 'get', '/v1/sessions/ses_doesnotexist')).body).toMatchObject({
      error: 'not_found',
      code: 4004,
    });
    expect((await plane.as(p, 'get', '/v1/sessions/xyz')).body).toMatchObject({
      error: 'invalid_request',
      field: 'id',
    });
  });
});

describe('DELETE /v1/sessions/{id}', () => {
  test('1. 204; the peer leaves via the feed, the address is freed, status reads closed; repeat → 204', async () => {
    const p = await plane.principal('pro');
    const client = keyPair();
    const s = await plane.create(p, { region: 'eu-west', public_key: client.publicKey });
    const del = await plane.as(p, 'delete', `/v1/sessions/${s.body.id}`);
    expect([del.status, del.text]).toEqual([204, '']);
    const redis = plane.broker.redis;
    expect(await redis.hexists(keys.nodePeers('eu-west', eu.id), client.publicKey)).toBe(0);
    const last = (await redis.xrange(keys.nodeFeed('eu-west', eu.id), '-', '+')).at(-1)!;
    expect(last[1].slice(0, 4)).toEqual(['op', 'del', 'public_key', client.publicKey]);
    const idx = Number(s.body.interface.addresses[0].split('.')[3].split('/')[0]);
    expect(await redis.zscore(keys.freeAddresses('eu-west', POOL_PREFIXES), String(idx))).toBe(String(idx));
    expect((await plane.as(p, 'get', `/v1/sessions/${s.body.id}`)).body.status).toBe('closed');
    expect((await plane.as(p, 'delete', `/v1/sessions/${s.body.id}`)).status).toBe(204);
    await beat(eu);
    await checkPlane(redis, 'eu-west');
  });

  test("2. another account's session → 404 and it stays open", async () => {
    const p = await plane.principal('pro');
    const q = await plane.principal('pro');
    const s = await plane.create(p, { region: 'eu-west' });
    expect((await plane.as(q, 'delete', `/v1/sessions/${s.body.id}`)).body).toMatchObject({
      error: 'not_found',
    });
    expect((await plane.as(p, 'get', `/v1/sessions/${s.body.id}`)).body.status).toBe('pending');
  });
});

// The shared matrix (authz.ts) over the session endpoints and usage.
const sessionFor = async (owner: Parameters<EndpointRow['prepare']>[1]) => {
  const res = await plane.create(owner, { region: 'eu-west' });
  if (res.status !== 201) throw new Error(`fixture session: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.id as string;
};
const ROWS: EndpointRow[] = [
  {
    name: 'POST /v1/sessions',
    method: 'post',
    as: 'operator',
    scope: 'tunnels:write',
    ok: 201,
    prepare: async () => ({ path: '/v1/sessions', body: { region: 'eu-west' } }),
  },
  {
    name: 'GET /v1/sessions',
    method: 'get',
    as: 'user',
    scope: 'tunnels:read',
    ok: 200,
    prepare: async () => ({ path: '/v1/sessions' }),
  },
  {
    name: 'GET /v1/sessions/{id}',
    method: 'get',
    as: 'operator',
    scope: 'tunnels:read',
    ok: 200,
    ownsObject: true,
    prepare: async (_fx, owner) => ({
      path: `/v1/sessions/${await sessionFor(owner.account.plan === 'free' ? await plane.principal('pro') : owner)}`,
    }),
  },
  {
    name: 'DELETE /v1/sessions/{id}',
    method: 'delete',
    as: 'operator',
    scope: 'tunnels:delete',
    ok: 204,
    ownsObject: true,
    prepare: async (_fx, owner) => ({
      path: `/v1/sessions/${await sessionFor(owner.account.plan === 'free' ? await plane.principal('pro') : owner)}`,
    }),
  },
  {
    name: 'GET /v1/usage',
    method: 'get',
    as: 'user',
    scope: 'analytics:read',
    ok: 200,
    prepare: async () => ({ path: '/v1/usage' }),
  },
];
authorizationMatrix('sessions', () => plane.fx, ROWS);
