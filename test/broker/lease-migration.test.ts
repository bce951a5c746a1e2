// Address leases from before they were regional (services/lease-migration.ts): Redis data written by
// the broker version that leased addresses per node, where sessions of two nodes of one region may hold
// the same index. Seeded in that layout on a real Redis, then moved as an upgraded broker does at start:
// no new session is ever given an address an older one still uses, on its node or after a move.
import { migrateLeases } from '../../src/broker/services/lease-migration.js';
import { failoverRound } from '../../src/broker/services/failover.js';
import { POOL_PREFIXES } from '../../src/lib/addresses.js';
import { keys, poolTag } from '../../src/broker/store/keys.js';
import { eventually } from '../helpers/eventually.js';
import { redisContents } from './helpers.js';
import { checkPlane, keyPair, startPlane, type Plane, type TestNode } from './sessions-fixture.js';
import type { Principal } from './authz.js';

const REGION = 'eu-west';
const TAG = poolTag(POOL_PREFIXES);
const PER_NODE = 3;

let plane: Plane;
let user: Principal;
let a: TestNode;
let b: TestNode;
/** Session ids by node, oldest first: each node's indices 2, 3, 4 in the old layout. */
let legacy: Record<string, string[]>;

const redis = () => plane.broker.redis;
const ses = (id: string) => keys.session(REGION, id);
const index = async (id: string) => Number(await redis().hget(ses(id), 'idx'));
const create = async () => {
  const res = await plane.create(user, { region: REGION, public_key: keyPair().publicKey });
  expect(res.status).toBe(201);
  return res.body as { id: string; node: { id: string } };
};
const close = async (id: string) =>
  expect((await plane.as(user, 'delete', `/v1/sessions/${id}`)).status).toBe(204);

/** Rewrites a node's sessions as the per-node leasing wrote them: indices from 2, leases under its id. */
async function asBeforeRegionalLeases(nodeId: string, sessionIds: string[]): Promise<void> {
  for (const [i, id] of sessionIds.entries()) {
    const idx = i + 2;
    const publicKey = (await redis().hget(ses(id), 'public_key'))!;
    const peer = JSON.parse((await redis().hget(keys.nodePeers(REGION, nodeId), publicKey))!);
    await redis().hset(keys.nodePeers(REGION, nodeId), publicKey, JSON.stringify({ ...peer, idx }));
    await redis().xadd(keys.nodeFeed(REGION, nodeId), '*', 'op', 'add', 'public_key', publicKey, 'idx', idx);
    await redis().hset(ses(id), 'idx', idx);
    await redis().hdel(ses(id), 'pool');
    await redis().hset(keys.nodeLeases(REGION, nodeId), idx, id);
  }
  await redis().hset(keys.regionNode(REGION, nodeId), 'next_index', sessionIds.length + 1);
}

/** Every node's peers hold distinct indices (one allowed IP per peer on its interface). */
async function indicesPerNode(): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const node of [a, b]) {
    const peers = Object.values(await redis().hgetall(keys.nodePeers(REGION, node.id)));
    out[node.id] = peers.map((json) => (JSON.parse(json) as { idx: number }).idx).sort((x, y) => x - y);
    expect(new Set(out[node.id]).size).toBe(out[node.id]!.length);
  }
  return out;
}

beforeEach(async () => {
  plane = await startPlane();
  user = await plane.principal('business');
  a = await plane.node(REGION);
  const onA = [];
  for (let i = 0; i < PER_NODE; i++) onA.push((await create()).id);
  // A draining: the next sessions go to B.
  expect((await plane.heartbeat(a, { draining: true })).status).toBe(200);
  b = await plane.node(REGION);
  const onB = [];
  for (let i = 0; i < PER_NODE; i++) onB.push((await create()).id);
  expect((await plane.heartbeat(a, { draining: false })).status).toBe(200);
  legacy = { [a.id]: onA, [b.id]: onB };
  await asBeforeRegionalLeases(a.id, onA);
  await asBeforeRegionalLeases(b.id, onB);
  await redis().del(
    keys.addressLeases(REGION, POOL_PREFIXES),
    keys.freeAddresses(REGION, POOL_PREFIXES),
    keys.addressCounter(REGION, POOL_PREFIXES),
  );
});
afterEach(async () => plane.close());

test('1. without the move, a new session would be given an index an older session holds on its node', async () => {
  const made = await create();
  const sameNode = legacy[made.node.id]!;
  expect(await Promise.all(sameNode.map(index))).toContain(await index(made.id));
});

test('2. moved once per index, the rest wait; idempotent; new sessions get indices nobody holds', async () => {
  expect(await migrateLeases(plane.broker.ctx)).toEqual({ moved: PER_NODE, waiting: PER_NODE, freed: 0 });
  const after = await redisContents(redis());
  expect((await migrateLeases(plane.broker.ctx)).moved).toBe(0);
  expect(await redisContents(redis())).toEqual(after);

  const leases = await redis().hgetall(keys.addressLeases(REGION, POOL_PREFIXES));
  expect(Object.keys(leases).sort()).toEqual(['2', '3', '4']);
  const waiting = await redis().hgetall(keys.waitingLeases(REGION, POOL_PREFIXES));
  expect(Object.keys(waiting).sort()).toEqual(['2', '3', '4']);
  for (const [idx, holder] of Object.entries(leases)) {
    expect(await redis().hget(ses(holder), 'pool')).toBe(TAG);
    expect(await index(waiting[idx]!)).toBe(Number(idx));
    expect(await redis().hget(ses(waiting[idx]!), 'pool')).toBeNull();
  }

  const fresh = [await create(), await create(), await create(), await create()];
  expect((await Promise.all(fresh.map((s) => index(s.id)))).sort()).toEqual([5, 6, 7, 8]);
  await indicesPerNode();
  await checkPlane(redis(), REGION);
});

test('3. a holder closes: the waiting session takes its lease over; when that one closes, the index is free', async () => {
  await migrateLeases(plane.broker.ctx);
  const leases = keys.addressLeases(REGION, POOL_PREFIXES);
  const holder = (await redis().hget(leases, '2'))!;
  const heir = (await redis().hget(keys.waitingLeases(REGION, POOL_PREFIXES), '2'))!;
  await close(holder);
  expect(await redis().hget(leases, '2')).toBe(heir);
  expect(await redis().hget(ses(heir), 'pool')).toBe(TAG);
  expect(await redis().hexists(keys.waitingLeases(REGION, POOL_PREFIXES), '2')).toBe(0);
  expect(await index((await create()).id)).toBe(5); // not 2: the heir uses it
  await indicesPerNode();
  await checkPlane(redis(), REGION);

  await close(heir);
  expect(await redis().zrange(keys.freeAddresses(REGION, POOL_PREFIXES), 0, -1)).toEqual(['2']);
  expect(await index((await create()).id)).toBe(2);
  await indicesPerNode();
  await checkPlane(redis(), REGION);
});

test('4. a waiting session closes: it leaves the list, and the holder keeps its lease', async () => {
  await migrateLeases(plane.broker.ctx);
  const waitingKey = keys.waitingLeases(REGION, POOL_PREFIXES);
  const waiter = (await redis().hget(waitingKey, '3'))!;
  const holder = (await redis().hget(keys.addressLeases(REGION, POOL_PREFIXES), '3'))!;
  await close(waiter);
  expect(await redis().hexists(waitingKey, '3')).toBe(0);
  await close(holder);
  expect(await redis().zrange(keys.freeAddresses(REGION, POOL_PREFIXES), 0, -1)).toEqual(['3']);
  await checkPlane(redis(), REGION);
});

test('5. failover: a session of a shared index never moves onto a node where it may meet it; others move', async () => {
  await migrateLeases(plane.broker.ctx);
  const waitingKey = keys.waitingLeases(REGION, POOL_PREFIXES);
  const waiters = Object.values(await redis().hgetall(waitingKey));
  const lostNode = (await redis().hget(ses(waiters[0]!), 'node')) === a.id ? a : b;
  const survivor = lostNode === a ? b : a;
  const newcomer = await create(); // index 5: regional from the start, free to move
  const onLostNode = [...legacy[lostNode.id]!, ...(newcomer.node.id === lostNode.id ? [newcomer.id] : [])];

  plane.advance(3 * plane.broker.config.heartbeatMs + 1);
  expect((await plane.heartbeat(survivor)).status).toBe(200);
  const { moved, lost } = await failoverRound(plane.broker.ctx);
  // Every old session of the lost node shares its index with one on the survivor: none moves.
  expect(lost).toBe(PER_NODE);
  expect(moved).toBe(onLostNode.length - PER_NODE);
  for (const id of legacy[lostNode.id]!) expect(await redis().hget(ses(id), 'state')).toBe('lost');
  // The survivor's sessions kept their addresses, and now hold them alone.
  expect(await redis().hlen(waitingKey)).toBe(0);
  await indicesPerNode();
  await checkPlane(redis(), REGION);
});

test('6. failover: the holders’ node is lost: they do not move, and each waiting session takes its lease over', async () => {
  await migrateLeases(plane.broker.ctx);
  const leases = await redis().hgetall(keys.addressLeases(REGION, POOL_PREFIXES));
  const lostNode = (await redis().hget(ses(leases['2']!), 'node')) === a.id ? a : b;
  const survivor = lostNode === a ? b : a;

  plane.advance(3 * plane.broker.config.heartbeatMs + 1);
  expect((await plane.heartbeat(survivor)).status).toBe(200);
  expect(await failoverRound(plane.broker.ctx)).toEqual({ moved: 0, lost: PER_NODE });
  for (const [i, id] of legacy[survivor.id]!.entries()) {
    expect(await redis().hget(keys.addressLeases(REGION, POOL_PREFIXES), String(i + 2))).toBe(id);
    expect(await redis().hget(ses(id), 'pool')).toBe(TAG);
  }
  expect(await redis().hlen(keys.waitingLeases(REGION, POOL_PREFIXES))).toBe(0);
  await indicesPerNode();
  await checkPlane(redis(), REGION);
});

test('7. indices of sessions that closed before the move are free again afterwards', async () => {
  // Closed under the old layout: each node's index 3.
  await close(legacy[a.id]![1]!);
  await close(legacy[b.id]![1]!);
  expect(await migrateLeases(plane.broker.ctx)).toEqual({ moved: 2, waiting: 2, freed: 1 });
  expect(await redis().zrange(keys.freeAddresses(REGION, POOL_PREFIXES), 0, -1)).toEqual(['3']);
  expect(await index((await create()).id)).toBe(3);
  expect(await index((await create()).id)).toBe(5);
  await indicesPerNode();
  await checkPlane(redis(), REGION);
});

test('8. a broker moves them when it starts', async () => {
  await plane.broker.another();
  await eventually(
    'the leases moved',
    async () => (await redis().hlen(keys.addressLeases(REGION, POOL_PREFIXES))) === PER_NODE,
  );
  expect(await redis().hlen(keys.waitingLeases(REGION, POOL_PREFIXES))).toBe(PER_NODE);
  await checkPlane(redis(), REGION);
});
