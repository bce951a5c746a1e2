// Issue 9, findings 7 and 9, over HTTP against a broker with a real Redis: what one leaked node token
// can do (extra nodes, huge capacity, someone else's egress IPs, no way to revoke it) and taking the
// whole long-poll pool with one node.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import request from 'supertest';
import { keyPair, startPlane, type Plane } from './sessions-fixture.js';

let plane: Plane;
let server: Server;
let base: string;
beforeAll(async () => {
  plane = await startPlane();
  server = plane.broker.app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await plane.close();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const blockedClients = async () =>
  Number(/blocked_clients:(\d+)/.exec(await plane.broker.redis.info('clients'))?.[1] ?? 0);

describe('finding 9: one node cannot take the long-poll pool', () => {
  test('70 waiting polls of one node leave room for another node, whose poll sees its new peer', async () => {
    const greedy = await plane.node('us-east');
    const other = await plane.node('eu-west');
    const poll = (node: { id: string; token: string }, cursor: string, wait: number) =>
      fetch(`${base}/v1/nodes/${node.id}/peers?cursor=${cursor}&wait=${wait}`, {
        headers: { Authorization: `Bearer ${node.token}` },
      }).then(async (r) => ({
        status: r.status,
        body: (await r.json()) as { cursor: string; peers: unknown[] },
      }));
    const cursorOf = async (node: { id: string; token: string }) => (await poll(node, '', 0)).body.cursor;
    const greedyCursor = await cursorOf(greedy);
    const turnedAway: { status: number; body: { cursor: string; peers: unknown[] } }[] = [];
    for (let i = 0; i < 70; i++) {
      // The two that wait are ended by the broker's shutdown in afterAll.
      void poll(greedy, greedyCursor, 20).then(
        (r) => turnedAway.push(r),
        () => undefined,
      );
    }
    // Every one of the 70 is either answered (turned away) or blocked in Redis (bounded wait).
    for (let i = 0; i < 200 && turnedAway.length + (await blockedClients()) < 70; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(await blockedClients()).toBeLessThanOrEqual(2);
    const otherCursor = await cursorOf(other);
    const waiting = poll(other, otherCursor, 20);
    for (let i = 0; i < 200 && (await blockedClients()) < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const user = await plane.principal('free');
    const created = await plane.create(user, { region: 'eu-west' });
    expect(created.status).toBe(201);
    expect(created.body.node.id).toBe(other.id);
    const answer = await waiting;
    expect(answer.status).toBe(200);
    expect(answer.body.peers).toHaveLength(1);
    // The turned-away polls were answered "no changes" with the same cursor, not errors.
    expect(turnedAway.length).toBeGreaterThanOrEqual(68);
    for (const r of turnedAway)
      expect(r).toEqual({ status: 200, body: expect.objectContaining({ cursor: greedyCursor, peers: [] }) });
  });
});

describe('finding 7: a leaked node token is contained', () => {
  const admin = async () => {
    const token = await plane.fx.keyFor(plane.fx.operator, ['admin:read', 'admin:write']);
    return { Authorization: `Bearer ${token}` };
  };
  const register = (token: string, fields: Record<string, unknown> = {}) =>
    request(plane.broker.app)
      .post('/v1/nodes/register')
      .set('Authorization', `Bearer ${token}`)
      .send({
        region: 'eu-west',
        endpoint: '198.51.100.200:51820',
        public_key: keyPair().publicKey,
        egress_ips: [],
        capacity: 100,
        version: 'attack',
        ...fields,
      });
  const issue = async (body: Record<string, unknown>) => {
    const res = await request(plane.broker.app)
      .post('/v1/admin/node-tokens')
      .set(await admin())
      .send(body);
    expect(res.status).toBe(201);
    return res.body as { id: string; token: string; max_nodes: number; expires_at: string | null };
  };

  test('a token enrolls at most max_nodes nodes, each with at most TB_NODE_MAX_CAPACITY', async () => {
    const leaked = await issue({ region: 'eu-west', max_nodes: 3 });
    expect(leaked.id).toMatch(/^ntk_/);
    const huge = await register(leaked.token, { capacity: 1_000_000 });
    expect(huge.status).toBe(400);
    expect(huge.body).toMatchObject({ error: 'invalid_request', field: 'capacity' });
    const answers = [];
    for (let i = 0; i < 20; i++) answers.push((await register(leaked.token)).status);
    expect(answers).toEqual([200, 200, 200, ...Array(17).fill(409)]);
    const listed = await request(plane.broker.app)
      .get('/v1/admin/node-tokens')
      .set(await admin());
    expect(listed.body.node_tokens).toContainEqual(
      expect.objectContaining({ id: leaked.id, nodes: 3, max_nodes: 3, revoked_at: null }),
    );
    expect(JSON.stringify(listed.body)).not.toContain(leaked.token);
  });

  test('an expired token is refused', async () => {
    const shortLived = await issue({ region: 'eu-west', expires_in: 60 });
    expect((await register(shortLived.token)).status).toBe(200);
    plane.advance(61_000);
    expect((await register(shortLived.token)).status).toBe(401);
  });

  test('revoking a token: its nodes get 401 on their next call and no new sessions', async () => {
    const leaked = await issue({ region: 'ap-south' });
    const reg = await register(leaked.token, { region: 'ap-south' });
    expect(reg.status).toBe(200);
    const node = { id: reg.body.node_id as string, token: leaked.token };
    expect((await plane.heartbeat({ ...node, region: 'ap-south', publicKey: '' })).status).toBe(200);
    const revoked = await request(plane.broker.app)
      .delete(`/v1/admin/node-tokens/${leaked.id}`)
      .set(await admin());
    expect(revoked.status).toBe(204);
    expect((await plane.heartbeat({ ...node, region: 'ap-south', publicKey: '' })).status).toBe(401);
    expect((await register(leaked.token, { region: 'ap-south' })).status).toBe(401);
    const user = await plane.principal('business');
    expect((await plane.create(user, { region: 'ap-south' })).status).toBe(503);
    const again = await request(plane.broker.app)
      .delete(`/v1/admin/node-tokens/${leaked.id}`)
      .set(await admin());
    expect(again.status).toBe(204);
    const unknown = await request(plane.broker.app)
      .delete('/v1/admin/node-tokens/ntk_nope')
      .set(await admin());
    expect(unknown.status).toBe(404);
  });

  test('removing a node: its sessions read node_lost, it cannot come back', async () => {
    const owner = await issue({ region: 'us-east' });
    const { publicKey } = keyPair();
    const reg = await register(owner.token, { region: 'us-east', public_key: publicKey });
    const nodeId = reg.body.node_id as string;
    const user = await plane.principal('pro');
    const created = await plane.create(user, { region: 'us-east' });
    expect(created.body.node.id).toBe(nodeId);
    const removed = await request(plane.broker.app)
      .delete(`/v1/admin/nodes/${nodeId}`)
      .set(await admin());
    expect(removed.status).toBe(204);
    expect((await plane.as(user, 'get', `/v1/sessions/${created.body.id}`)).body.status).toBe('node_lost');
    expect((await register(owner.token, { region: 'us-east', public_key: publicKey })).status).toBe(401);
    const gone = await request(plane.broker.app)
      .delete(`/v1/admin/nodes/${nodeId}`)
      .set(await admin());
    expect(gone.status).toBe(404);
  });

  test('an egress IP of a live node is refused at registration and kept at heartbeats', async () => {
    const honest = await plane.node('eu-west', { egress_ips: ['192.0.2.55'] });
    const leaked = await issue({ region: 'eu-west' });
    const claim = await register(leaked.token, { egress_ips: ['192.0.2.55'] });
    expect(claim.status).toBe(400);
    expect(claim.body).toMatchObject({ error: 'invalid_request', field: 'egress_ips' });
    const ip = await request(plane.broker.app).get('/v1/ip/192.0.2.55');
    expect(ip.body).toMatchObject({ exit: true, node: honest.id });
    // Once the honest node has been silent for 3 intervals, the address may move.
    plane.advance(31_000);
    expect((await register(leaked.token, { egress_ips: ['192.0.2.55'] })).status).toBe(200);
  });

  test('an egress IP of a node taken out (its token revoked, as after a leak) is free at once; attribution keeps its period', async () => {
    const revoked = await issue({ region: 'eu-west' });
    const first = await register(revoked.token, { egress_ips: ['192.0.2.56'] });
    expect(first.status).toBe(200);
    const before = (await request(plane.broker.app).get('/v1/ip/192.0.2.56')).body as { last_seen: string };
    expect(before).toMatchObject({ exit: true, node: first.body.node_id });
    const revoking = await request(plane.broker.app)
      .delete(`/v1/admin/node-tokens/${revoked.id}`)
      .set(await admin());
    expect(revoking.status).toBe(204);
    // A new token for the same host registers with its address a second later, not 3 intervals.
    plane.advance(1000);
    const fresh = await issue({ region: 'eu-west' });
    const again = await register(fresh.token, { egress_ips: ['192.0.2.56'] });
    expect(again.status).toBe(200);
    expect((await request(plane.broker.app).get('/v1/ip/192.0.2.56')).body).toMatchObject({
      exit: true,
      node: again.body.node_id,
    });
    // Who held it before is still answered for that time.
    const at = encodeURIComponent(before.last_seen);
    expect((await request(plane.broker.app).get(`/v1/ip/192.0.2.56?at=${at}`)).body).toMatchObject({
      node: first.body.node_id,
    });
  });
});
