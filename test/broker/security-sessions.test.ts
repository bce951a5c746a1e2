// Issue 9, findings 8, 11 and the list half of 5, over HTTP against a broker with a real Redis and
// nodes that register and heartbeat over HTTP: a session that runs past its byte quota, closed
// sessions piling up without bound, and unbounded lists.
import request from 'supertest';
import { keys } from '../../src/broker/store/keys.js';
import { checkPlane, GiB, keyPair, startPlane, type Plane, type TestNode } from './sessions-fixture.js';
import type { Principal } from './authz.js';

let plane: Plane;
beforeAll(async () => {
  plane = await startPlane();
});
afterAll(async () => plane.close());

const feed = async (node: TestNode, cursor = '') =>
  (
    await request(plane.broker.app)
      .get(`/v1/nodes/${node.id}/peers?wait=0&cursor=${cursor}`)
      .set('Authorization', `Bearer ${node.token}`)
  ).body as { cursor: string; full: boolean; peers: { public_key: string }[]; removed: string[] };

describe('finding 8: the byte quota holds during a session, not only at creation', () => {
  test('a heartbeat that pushes a free account past 10 GiB closes its session; the peer leaves the feed', async () => {
    const node = await plane.node('eu-west');
    const user = await plane.principal('free');
    const { publicKey } = keyPair();
    const created = await plane.create(user, { region: 'eu-west', public_key: publicKey });
    expect(created.status).toBe(201);
    const before = await feed(node);
    expect(before.peers.map((p) => p.public_key)).toContain(publicKey);

    // 9 GiB: under the quota, the session stays.
    const report = (bytes: number) => ({
      peers: [{ public_key: publicKey, rx_bytes: bytes, tx_bytes: 0, last_handshake_at: null }],
    });
    expect((await plane.heartbeat(node, report(9 * GiB))).status).toBe(200);
    expect((await plane.as(user, 'get', `/v1/sessions/${created.body.id}`)).body.status).not.toBe('closed');
    // 20 GiB: over it; the session closes at this heartbeat.
    expect((await plane.heartbeat(node, report(20 * GiB))).status).toBe(200);
    const read = await plane.as(user, 'get', `/v1/sessions/${created.body.id}`);
    expect(read.body).toMatchObject({ status: 'closed', closed_reason: 'quota_exhausted' });
    const after = await feed(node, before.cursor);
    expect(after.removed).toContain(publicKey);
    expect((await feed(node)).peers.map((p) => p.public_key)).not.toContain(publicKey);

    // New sessions: 429 quota_exhausted, retry_after until the period resets (30 days from signup).
    const again = await plane.create(user, { region: 'eu-west' });
    expect(again.status).toBe(429);
    expect(again.body).toMatchObject({ error: 'quota_exhausted', code: 4290 });
    const periodEnd = user.account.createdAt + 30 * 24 * 3600 * 1000;
    expect(again.body.retry_after).toBe(Math.ceil((periodEnd - plane.now()) / 1000));
    expect(again.headers['retry-after']).toBe(String(again.body.retry_after));
    await checkPlane(plane.broker.redis, 'eu-west');
  });

  test('accounts under their quota, and unlimited ones, keep their sessions', async () => {
    const node = await plane.node('eu-west');
    const pro = await plane.principal('pro');
    const business = await plane.principal('business');
    const sessions = [];
    for (const p of [pro, business]) {
      const { publicKey } = keyPair();
      const res = await plane.create(p, { region: 'eu-west', public_key: publicKey });
      expect(res.body.node.id).toBeDefined();
      sessions.push({ p, id: res.body.id as string, publicKey, node: res.body.node.id as string });
    }
    const peers = sessions
      .filter((s) => s.node === node.id)
      .map((s) => ({ public_key: s.publicKey, rx_bytes: 50 * GiB, tx_bytes: 0, last_handshake_at: null }));
    expect((await plane.heartbeat(node, { peers })).status).toBe(200);
    for (const s of sessions) {
      expect((await plane.as(s.p, 'get', `/v1/sessions/${s.id}`)).body.status).not.toBe('closed');
    }
  });

  test('a session closed by its owner says so; session creation answers no-store', async () => {
    await plane.node('eu-west');
    const user = await plane.principal('free');
    const created = await plane.create(user, { region: 'eu-west' });
    expect(created.headers['cache-control']).toBe('no-store');
    expect(created.body.interface.private_key).toBeDefined();
    expect((await plane.as(user, 'delete', `/v1/sessions/${created.body.id}`)).status).toBe(204);
    const read = await plane.as(user, 'get', `/v1/sessions/${created.body.id}`);
    expect(read.body).toMatchObject({ status: 'closed', closed_reason: 'deleted' });
    expect(read.headers['cache-control']).toBeUndefined();
  });
});

async function churn(p: Principal, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const res = await plane.create(p, { region: 'eu-west' });
    expect(res.status).toBe(201);
    expect((await plane.as(p, 'delete', `/v1/sessions/${res.body.id}`)).status).toBe(204);
    ids.push(res.body.id as string);
    plane.advance(1);
  }
  return ids;
}

describe('finding 11: closed sessions do not pile up', () => {
  test('130 create/delete cycles keep the last 100 closed sessions; older records are gone', async () => {
    await plane.node('eu-west', { capacity: 1000 });
    const user = await plane.principal('free');
    const ids = await churn(user, 130);
    const all: string[] = [];
    let cursor: string | null = null;
    do {
      const res: request.Response = await plane.as(
        user,
        'get',
        `/v1/sessions?limit=200${cursor ? `&cursor=${cursor}` : ''}`,
      );
      all.push(...(res.body.sessions as { id: string }[]).map((s) => s.id));
      cursor = res.body.next_cursor as string | null;
    } while (cursor);
    expect(all).toEqual(ids.slice(30).reverse());
    expect((await plane.as(user, 'get', `/v1/sessions/${ids[0]}`)).status).toBe(404);
    expect(await plane.broker.redis.exists(keys.session('eu-west', ids[0]!))).toBe(0);
    expect(await plane.broker.redis.hlen(keys.accountSessions(user.account.id))).toBe(100);
    await checkPlane(plane.broker.redis, 'eu-west');
  });
});

describe('finding 5: lists come a page at a time', () => {
  test('GET /v1/sessions: limit (default 50, max 200), cursor, next_cursor null at the end, status filter', async () => {
    await plane.node('eu-west', { capacity: 1000 });
    const user = await plane.principal('pro');
    const closed = await churn(user, 60);
    const open = await plane.create(user, { region: 'eu-west' });
    const first = await plane.as(user, 'get', '/v1/sessions');
    expect(first.status).toBe(200);
    expect(first.body.sessions).toHaveLength(50);
    expect(first.body.sessions[0].id).toBe(open.body.id);
    const second = await plane.as(user, 'get', `/v1/sessions?cursor=${first.body.next_cursor}`);
    expect(second.body.sessions).toHaveLength(11);
    expect(second.body.next_cursor).toBeNull();
    const seen = [...first.body.sessions, ...second.body.sessions].map((s: { id: string }) => s.id);
    expect(seen).toEqual([open.body.id, ...closed.slice().reverse()]);
    const onlyOpen = await plane.as(user, 'get', '/v1/sessions?status=pending');
    expect(onlyOpen.body).toEqual({
      sessions: [expect.objectContaining({ id: open.body.id })],
      next_cursor: null,
    });
    const small = await plane.as(user, 'get', '/v1/sessions?status=closed&limit=7');
    expect(small.body.sessions).toHaveLength(7);
    for (const [query, field] of [
      ['limit=0', 'limit'],
      ['limit=201', 'limit'],
      ['cursor=not-a-cursor', 'cursor'],
      ['status=sleeping', 'status'],
    ]) {
      const bad = await plane.as(user, 'get', `/v1/sessions?${query}`);
      expect([bad.status, bad.body.error, bad.body.field]).toEqual([400, 'invalid_request', field]);
    }
  });

  test('GET /v1/auth/keys: pages of keys, oldest first', async () => {
    const user = await plane.principal('pro');
    // One millisecond apart, so creation order is the listing order (equal times order by id).
    for (let i = 0; i < 4; i++) {
      plane.advance(1);
      const made = await plane
        .as(user, 'post', '/v1/auth/keys')
        .send({ name: `k${i}`, permissions: ['tunnels:read'] });
      expect(made.status).toBe(201);
    }
    const first = await plane.as(user, 'get', '/v1/auth/keys?limit=3');
    expect(first.body.keys.map((k: { name: string }) => k.name)).toEqual(['test', 'k0', 'k1']);
    const rest = await plane.as(user, 'get', `/v1/auth/keys?limit=3&cursor=${first.body.next_cursor}`);
    expect(rest.body).toEqual({
      keys: [expect.objectContaining({ name: 'k2' }), expect.objectContaining({ name: 'k3' })],
      next_cursor: null,
    });
  });
});
