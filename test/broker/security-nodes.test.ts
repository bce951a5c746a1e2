// Issue 9, findings 7 and 9, over HTTP against a broker with a real Redis: what one leaked node token
// can do (extra nodes, huge capacity, someone else's egress IPs, no way to revoke it) and taking the
// whole long-poll pool with one node.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { startPlane, type Plane } from './sessions-fixture.js';

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
