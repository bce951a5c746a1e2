// Shared by the session, node, feed, usage, reaper and crash suites: a broker on a real Redis with an
// injected clock, regions, enrolled nodes that register and heartbeat over HTTP, principals of every
// tier, and checkPlane(), the invariant check that proves no address, peer or record leaked.
import request from 'supertest';
import nacl from 'tweetnacl';
import { TIERS, type Tier } from '../../src/broker/config.js';
import { createAccount, issueKey } from '../../src/broker/services/accounts.js';
import { createNodeToken } from '../../src/broker/services/enrollment.js';
import { upsertRegion } from '../../src/broker/services/regions.js';
import { USER_SCOPES } from '../../src/broker/scopes.js';
import { keys, poolTag } from '../../src/broker/store/keys.js';
import type { Redis } from '../../src/broker/store/redis.js';
import { createAuthFixture, type AuthFixture, type Principal } from './authz.js';
import { startBroker, type TestBroker } from './helpers.js';
import type { RedisServer } from '../helpers/redis.js';

export const T0 = Date.parse('2026-03-01T00:00:00Z');
export const GiB = 1024 ** 3;

export const keyPair = () => {
  const pair = nacl.box.keyPair();
  return {
    publicKey: Buffer.from(pair.publicKey).toString('base64'),
    privateKey: Buffer.from(pair.secretKey).toString('base64'),
  };
};

/** POST /v1/nodes/register with the node's tbn_ token, as a node registers. */
export const registerNode = (
  app: TestBroker['app'],
  token: string,
  fields: { region: string; endpoint: string; public_key: string; egress_ips: string[]; capacity: number },
) =>
  request(app)
    .post('/v1/nodes/register')
    .set('Authorization', `Bearer ${token}`)
    .send({ ...fields, version: '0.1.0' });

export interface TestNode {
  id: string;
  token: string;
  region: string;
  publicKey: string;
}

export interface Plane {
  broker: TestBroker;
  fx: AuthFixture;
  now(): number;
  advance(ms: number): void;
  principal(plan: Tier): Promise<Principal>;
  /** Enrolls and registers a node over HTTP. */
  node(
    region: string,
    fields?: { capacity?: number; endpoint?: string; egress_ips?: string[] },
  ): Promise<TestNode>;
  heartbeat(node: TestNode, body?: Record<string, unknown>): Promise<request.Response>;
  create(p: Principal, body: Record<string, unknown>): Promise<request.Response>;
  as(p: Principal, method: 'get' | 'delete' | 'post', path: string): request.Test;
  close(): Promise<void>;
}

export async function startPlane(
  options: { server?: RedisServer; env?: Record<string, string> } = {},
): Promise<Plane> {
  let now = T0;
  const givenTiers = JSON.parse(options.env?.TB_TIERS ?? '{}') as Partial<Record<Tier, object>>;
  const broker = await startBroker({
    clock: () => now,
    server: options.server,
    env: {
      // Tests drive the reaper themselves (reapExpired, failoverRound), on the injected clock.
      TB_REAP_INTERVAL_MS: '86400000',
      ...options.env,
      PUBLIC_BURST: '1000000',
      // Rate limits out of the way; a caller's TB_TIERS (e.g. a lifted session cap) is kept.
      TB_TIERS: JSON.stringify(
        Object.fromEntries(TIERS.map((t) => [t, { requestsPerMinute: 1000000, ...givenTiers[t] }])),
      ),
    },
  });
  const fx = await createAuthFixture(broker.app, (ms) => {
    now += ms;
  });
  const ctx = broker.ctx;
  await upsertRegion(ctx, {
    id: 'eu-west',
    name: 'Frankfurt',
    country: 'DE',
    tiers: ['free', 'pro', 'business'],
  });
  await upsertRegion(ctx, { id: 'us-east', name: 'Ashburn', country: 'US', tiers: ['pro', 'business'] });
  await upsertRegion(ctx, { id: 'ap-south', name: 'Mumbai', country: 'IN', tiers: ['business'] });
  let nodeCount = 0;

  const as = (p: Principal, method: 'get' | 'delete' | 'post', path: string) => {
    const req = request(broker.app)[method](path).set('Authorization', `Bearer ${p.token}`);
    return p.fingerprint ? req.set('X-Machine-Fingerprint', p.fingerprint) : req;
  };

  return {
    broker,
    fx,
    now: () => now,
    advance: (ms) => {
      now += ms;
    },
    principal: async (plan) => {
      const account = await createAccount(ctx, { plan });
      const fingerprint = plan === 'free' ? `f00d${(++nodeCount).toString(16).padStart(8, '0')}` : undefined;
      const { token } = await issueKey(ctx, account.id, {
        name: 'test',
        permissions: [...USER_SCOPES],
        fingerprint: fingerprint ?? null,
        expiresAt: null,
      });
      return { account, token, permissions: [...USER_SCOPES], fingerprint };
    },
    node: async (region, fields = {}) => {
      const { token } = await createNodeToken(ctx, region);
      const { publicKey } = keyPair();
      const n = ++nodeCount;
      const res = await registerNode(broker.app, token, {
        region,
        endpoint: fields.endpoint ?? `198.51.100.${n % 250}:51820`,
        public_key: publicKey,
        egress_ips: fields.egress_ips ?? [`203.0.113.${n % 250}`],
        capacity: fields.capacity ?? 100,
      });
      if (res.status !== 200) throw new Error(`register: ${res.status} ${JSON.stringify(res.body)}`);
      return { id: res.body.node_id as string, token, region, publicKey };
    },
    heartbeat: async (node, body = {}) => {
      const res = await request(broker.app)
        .post(`/v1/nodes/${node.id}/heartbeat`)
        .set('Authorization', `Bearer ${node.token}`)
        .send({ load: 0, draining: false, peers: [], ...body });
      // Callers check 4xx answers themselves; a 5xx is never expected.
      if (res.status >= 500) throw new Error(`heartbeat: ${res.status} ${JSON.stringify(res.body)}`);
      return res;
    },
    create: (p, body) => as(p, 'post', '/v1/sessions').send(body),
    as,
    close: () => broker.close(),
  };
}

/**
 * The data-plane invariants of one region, checked straight in Redis:
 * - per pool of the region, every address index from 2 to the pool's counter is either leased or free,
 *   never both (no leak);
 * - each lease belongs to an open session of that pool that points back at it, and that session's node
 *   carries its peer; each peer entry belongs to an open session on that node;
 * - each open session holds exactly one lease (or, from before regional leases, waits for its index on
 *   another node than the index's holder) and one peer entry, and is in the expiry index; a lost one
 *   (its node lost with no room elsewhere) holds neither, and stays in the index until it expires;
 * - replaying each node's whole feed gives exactly its peer set.
 * Returns the number of open sessions per node.
 */
export async function checkPlane(redis: Redis, region: string): Promise<Map<string, number>> {
  const nodeIds = [
    ...new Set([
      ...(await redis.zrange(keys.regionNodes(region), 0, -1)),
      ...(await redis.smembers(keys.regionRemovedNodes(region))),
    ]),
  ];
  const expiry = new Set(await redis.zrange(keys.regionExpiry(region), 0, -1));
  const openPerNode = new Map<string, number>();
  const leased = new Set<string>();
  const pools = new Map<string, { v4: string; v6: string }>();
  for (const nodeId of nodeIds) {
    const [v4, v6] = await redis.hmget(keys.regionNode(region, nodeId), 'pool_v4', 'pool_v6');
    if (v4 && v6) pools.set(poolTag({ v4, v6 }), { v4, v6 });
  }
  for (const [tag, pool] of pools) {
    const next = Number((await redis.get(keys.addressCounter(region, pool))) ?? 1);
    const leases = await redis.hgetall(keys.addressLeases(region, pool));
    const free = await redis.zrange(keys.freeAddresses(region, pool), 0, -1);
    for (const idx of free) expect(leases[idx]).toBeUndefined();
    const covered = new Set([...Object.keys(leases), ...free].map(Number));
    expect(covered.size).toBe(Object.keys(leases).length + free.length);
    const expected = Array.from({ length: Math.max(0, next - 1) }, (_, i) => i + 2);
    expect([...covered].sort((a, b) => a - b)).toEqual(expected);
    for (const [idx, sessionId] of Object.entries(leases)) {
      const s = await redis.hgetall(keys.session(region, sessionId));
      expect({ state: s.state, pool: s.pool, idx: s.idx }).toEqual({ state: 'open', pool: tag, idx });
      const peer = await redis.hget(keys.nodePeers(region, s.node!), s.public_key!);
      expect(JSON.parse(peer ?? 'null')).toMatchObject({ ses: sessionId, idx: Number(idx) });
      expect(expiry.has(sessionId)).toBe(true);
      expect(leased.has(sessionId)).toBe(false);
      leased.add(sessionId);
    }
    // Sessions from before regional leases that wait for an index (services/lease-migration.ts): each
    // open, on another node than the index's holder and than each other, its lease still its node's.
    for (const [idx, list] of Object.entries(await redis.hgetall(keys.waitingLeases(region, pool)))) {
      const holder = await redis.hget(keys.session(region, leases[idx]!), 'node');
      const nodes = new Set([holder]);
      for (const sessionId of list.split(' ')) {
        const s = await redis.hgetall(keys.session(region, sessionId));
        expect({ state: s.state, pool: s.pool, idx: s.idx }).toEqual({ state: 'open', pool: undefined, idx });
        expect(await redis.hget(keys.nodeLeases(region, s.node!), idx)).toBe(sessionId);
        expect(nodes.has(s.node!)).toBe(false);
        nodes.add(s.node!);
        expect(leased.has(sessionId)).toBe(false);
        leased.add(sessionId);
      }
    }
  }
  for (const nodeId of nodeIds) {
    const peers = await redis.hgetall(keys.nodePeers(region, nodeId));
    for (const json of Object.values(peers)) {
      const { ses } = JSON.parse(json) as { ses: string };
      expect(await redis.hmget(keys.session(region, ses), 'state', 'node')).toEqual(['open', nodeId]);
    }
    openPerNode.set(nodeId, Object.keys(peers).length);
    // Replaying the whole feed (never trimmed in these tests) yields the peer set.
    const replay = new Map<string, string>();
    for (const [, flat] of await redis.xrange(keys.nodeFeed(region, nodeId), '-', '+')) {
      const f = Object.fromEntries(flat.flatMap((v, i) => (i % 2 ? [] : [[v, flat[i + 1]!]])));
      if (f.op === 'add') replay.set(f.public_key!, f.idx!);
      else replay.delete(f.public_key!);
    }
    expect(Object.fromEntries(replay)).toEqual(
      Object.fromEntries(Object.entries(peers).map(([pk, json]) => [pk, String(JSON.parse(json).idx)])),
    );
  }
  const peerCount = [...openPerNode.values()].reduce((a, b) => a + b, 0);
  expect(peerCount).toBe(leased.size);
  for (const sessionId of expiry) {
    const state = await redis.hget(keys.session(region, sessionId), 'state');
    expect(state === 'lost' || leased.has(sessionId)).toBe(true);
  }
  // No open session record without a lease (records of closed ones may remain, for reading).
  let cursor = '0';
  do {
    const [nextCursor, found] = await redis.scan(
      cursor,
      'MATCH',
      `${keys.regionPrefix(region)}ses:*`,
      'COUNT',
      1000,
    );
    cursor = nextCursor;
    for (const key of found) {
      const state = await redis.hget(key, 'state');
      const id = key.slice(key.lastIndexOf(':') + 1);
      if (state === 'open') expect(leased.has(id)).toBe(true);
      if (state === 'lost') expect(expiry.has(id)).toBe(true);
    }
  } while (cursor !== '0');
  return openPerNode;
}
