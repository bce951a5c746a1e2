// GET /v1/nodes/{id}/peers: full set for no cursor / a trimmed-away cursor / a cursor from a lost
// stream, incremental changes otherwise, long poll woken by a new session, and a restarted node
// rebuilding its exact peer set from the feed alone.
import request from 'supertest';
import { peerAllowedIps } from '../../src/lib/addresses.js';
import { keys } from '../../src/broker/store/keys.js';
import { waitForReady } from '../../src/broker/store/redis.js';
import { keyPair, startPlane, type Plane, type TestNode } from './sessions-fixture.js';

let plane: Plane;
let node: TestNode;
beforeEach(async () => {
  plane = await startPlane();
  node = await plane.node('eu-west');
});
afterEach(async () => plane.close());

interface Page {
  cursor: string;
  full: boolean;
  peers: { public_key: string; preshared_key?: string; allowed_ips: string[] }[];
  removed: string[];
}

const poll = async (cursor = '', wait = 0, who: TestNode = node) => {
  const res = await request(plane.broker.app)
    .get(`/v1/nodes/${who.id}/peers`)
    .query({ cursor, wait })
    .set('Authorization', `Bearer ${who.token}`);
  if (res.status !== 200) throw new Error(`poll: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as Page;
};

/** The longest wait the feed allows; a poll that returns far sooner was woken, not timed out. */
const LONGEST_WAIT = 25;
/** Generous against scheduling noise and far below LONGEST_WAIT: a behaviour check, not a benchmark. */
const WOKEN_WITHIN_MS = 10_000;

/** A poll with the longest wait, and how long after it started it answered. */
function longPoll(cursor: string) {
  const started = performance.now();
  return poll(cursor, LONGEST_WAIT).then((page) => ({ page, ms: performance.now() - started }));
}

/** What a node does with pages: the whole set on `full`, else removals then upserts. */
class PeerTable {
  peers = new Map<string, Page['peers'][number]>();
  cursor = '';
  apply(page: Page) {
    if (page.full) this.peers.clear();
    for (const pk of page.removed) this.peers.delete(pk);
    for (const p of page.peers) this.peers.set(p.public_key, p);
    this.cursor = page.cursor;
  }
}

async function openSession(options: { psk?: boolean } = {}) {
  const p = await plane.principal('pro');
  const client = keyPair();
  const res = await plane.create(p, {
    region: 'eu-west',
    public_key: client.publicKey,
    preshared_key: options.psk,
  });
  if (res.status !== 201) throw new Error(JSON.stringify(res.body));
  const idx = Number((res.body.interface.addresses[0] as string).split('/')[0]!.split('.')[3]);
  return { p, client, body: res.body, idx };
}

test('1. empty cursor → full set (empty at first), then incremental adds and removes', async () => {
  const empty = await poll();
  expect(empty).toEqual({ cursor: '0-0', full: true, peers: [], removed: [] });

  const a = await openSession({ psk: true });
  const b = await openSession();
  const changes = await poll(empty.cursor);
  expect(changes.full).toBe(false);
  expect(changes.removed).toEqual([]);
  expect(changes.peers).toEqual([
    {
      public_key: a.client.publicKey,
      preshared_key: a.body.peer.preshared_key,
      allowed_ips: peerAllowedIps(a.idx),
    },
    { public_key: b.client.publicKey, allowed_ips: peerAllowedIps(b.idx) },
  ]);

  await plane.as(a.p, 'delete', `/v1/sessions/${a.body.id}`);
  const after = await poll(changes.cursor);
  expect(after).toEqual({
    cursor: expect.any(String),
    full: false,
    peers: [],
    removed: [a.client.publicKey],
  });
  expect(after.cursor > changes.cursor).toBe(true);

  // Nothing new: same cursor, no changes.
  expect(await poll(after.cursor)).toEqual({ cursor: after.cursor, full: false, peers: [], removed: [] });

  // A full read now matches what incremental reads built.
  const table = new PeerTable();
  table.apply(await poll());
  expect([...table.peers.keys()]).toEqual([b.client.publicKey]);
});

test('2. a key removed and added again within one page ends as added, with its new address', async () => {
  const first = await poll();
  const a = await openSession();
  await plane.as(a.p, 'delete', `/v1/sessions/${a.body.id}`);
  const again = await plane.create(a.p, { region: 'eu-west', public_key: a.client.publicKey });
  expect(again.status).toBe(201);
  const page = await poll(first.cursor);
  expect(page.removed).toEqual([]);
  expect(page.peers.map((p) => p.public_key)).toEqual([a.client.publicKey]);
});

test('3. long poll: waits, and wakes with the new peer when a session is created', async () => {
  const start = await poll();
  const waiting = longPoll(start.cursor);
  await new Promise((r) => setTimeout(r, 200));
  const a = await openSession();
  const { page, ms } = await waiting;
  expect(ms).toBeLessThan(WOKEN_WITHIN_MS);
  expect(page.full).toBe(false);
  expect(page.peers.map((p) => p.public_key)).toEqual([a.client.publicKey]);
});

test('4. long poll with no change answers the same cursor when the wait ends', async () => {
  const start = await poll();
  expect(await poll(start.cursor, 1)).toEqual({ cursor: start.cursor, full: false, peers: [], removed: [] });
});

test('5. a cursor older than the trimmed stream → the full set', async () => {
  const start = await poll();
  const a = await openSession();
  const b = await openSession();
  // Trimming drops entries the cursor has not seen (what MAXLEN does to a node that fell behind).
  await plane.broker.redis.xtrim(keys.nodeFeed('eu-west', node.id), 'MAXLEN', 1);
  const page = await poll(start.cursor);
  expect(page.full).toBe(true);
  expect(page.peers.map((p) => p.public_key).sort()).toEqual([a.client.publicKey, b.client.publicKey].sort());
  // The cursor it got is current: the next read is incremental again.
  expect((await poll(page.cursor)).full).toBe(false);
});

test('6. a cursor from the future (the stream was lost and rebuilt) → the full set', async () => {
  await openSession();
  const page = await poll('99999999999999-0');
  expect(page.full).toBe(true);
  expect(page.peers).toHaveLength(1);
});

test('7. a restarted node rebuilds exactly its live peer set from an empty cursor', async () => {
  const table = new PeerTable();
  table.apply(await poll());
  const sessions = await Promise.all([1, 2, 3, 4].map(() => openSession({ psk: true })));
  table.apply(await poll(table.cursor));
  await plane.as(sessions[1]!.p, 'delete', `/v1/sessions/${sessions[1]!.body.id}`);
  table.apply(await poll(table.cursor));

  // The node restarts: same key, re-registers (same id), knows nothing, asks with no cursor.
  const reborn = new PeerTable();
  reborn.apply(await poll(''));
  expect(reborn.peers).toEqual(table.peers);
  expect([...reborn.peers.values()].map((p) => p.public_key).sort()).toEqual(
    [0, 2, 3].map((i) => sessions[i]!.client.publicKey).sort(),
  );
  expect([...reborn.peers.values()].every((p) => p.preshared_key !== undefined)).toBe(true);
});

test('8. auth: another enrollment’s node → 404; a malformed cursor → 400', async () => {
  const stranger = await plane.node('eu-west');
  const res = await request(plane.broker.app)
    .get(`/v1/nodes/${node.id}/peers`)
    .set('Authorization', `Bearer ${stranger.token}`);
  expect(res.status).toBe(404);
  const bad = await request(plane.broker.app)
    .get(`/v1/nodes/${node.id}/peers?cursor=abc`)
    .set('Authorization', `Bearer ${node.token}`);
  expect(bad.body).toMatchObject({ error: 'invalid_request', field: 'cursor' });
});

test('9. shutdown ends a waiting poll at once', async () => {
  const start = await poll();
  const waiting = longPoll(start.cursor);
  await new Promise((r) => setTimeout(r, 200));
  plane.broker.app.locals.close();
  const { page, ms } = await waiting;
  expect(ms).toBeLessThan(WOKEN_WITHIN_MS);
  expect(page).toEqual({ cursor: start.cursor, full: false, peers: [], removed: [] });
});

test('10. Redis lost during a long poll → 503 unavailable; the feed works again after it returns', async () => {
  const start = await poll();
  // then() starts the request now (supertest sends lazily).
  const answer = request(plane.broker.app)
    .get(`/v1/nodes/${node.id}/peers`)
    .query({ cursor: start.cursor, wait: 10 })
    .set('Authorization', `Bearer ${node.token}`)
    .then((res) => res);
  await new Promise((r) => setTimeout(r, 200));
  await plane.broker.server.kill();
  const res = await answer;
  expect([res.status, res.body.error]).toEqual([503, 'unavailable']);
  expect(res.headers['retry-after']).toBeDefined();
  await plane.broker.server.restart();
  await waitForReady(plane.broker.redis);
  const a = await openSession();
  const page = await poll(start.cursor);
  expect(page.peers.map((p) => p.public_key)).toEqual([a.client.publicKey]);
});
