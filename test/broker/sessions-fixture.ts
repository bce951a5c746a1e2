// Shared by the session, node, feed, usage, reaper and crash suites: a broker on a real Redis with an
// injected clock, regions, enrolled nodes that register and heartbeat over HTTP, principals of every
// tier, and checkPlane(), the invariant check that proves no address, peer or record leaked.
import request from 'supertest';
import nacl from 'tweetnacl';
import type { Tier } from '../../src/broker/config.js';
import { createAccount, issueKey } from '../../src/broker/services/accounts.js';
import { createNodeToken } from '../../src/broker/services/enrollment.js';
import { upsertRegion } from '../../src/broker/services/regions.js';
import { USER_SCOPES } from '../../src/broker/scopes.js';
import { keys } from '../../src/broker/store/keys.js';
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
  const broker = await startBroker({
    clock: () => now,
    server: options.server,
    env: {
      ...options.env,
      PUBLIC_BURST: '1000000',
      TB_TIERS: JSON.stringify({
        free: { requestsPerMinute: 1000000 },
        pro: { requestsPerMinute: 1000000 },
        business: { requestsPerMinute: 1000000 },
      }),
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
      const res = await request(broker.app)
        .post('/v1/nodes/register')
        .set('Authorization', `Bearer ${token}`)
        .send({
          region,
          endpoint: fields.endpoint ?? `198.51.100.${n % 250}:51820`,
          public_key: publicKey,
          egress_ips: fields.egress_ips ?? [`203.0.113.${n % 250}`],
          capacity: fields.capacity ?? 100,
          version: '0.1.0',
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
 * - every address index from 2 to the node's counter is either leased or free, never both (no leak);
 * - each lease, peer entry and expiry entry belongs to an open session that points back at it;
 * - each open session holds exactly one lease and one peer entry, and is in the expiry index;
 * - replaying the node's whole feed gives exactly its peer set.
 * Returns the number of open sessions per node.
 */
export async function checkPlane(redis: Redis, region: string): Promise<Map<string, number>> {
  const nodeIds = await redis.zrange(keys.regionNodes(region), 0, -1);
  const expiry = new Set(await redis.zrange(keys.regionExpiry(region), 0, -1));
  const openPerNode = new Map<string, number>();
  const seenOpen = new Set<string>();
  for (const nodeId of nodeIds) {
    const next = Number(await redis.hget(keys.regionNode(region, nodeId), 'next_index'));
    const leases = await redis.hgetall(keys.nodeLeases(region, nodeId));
    const free = await redis.zrange(keys.nodeFreeAddresses(region, nodeId), 0, -1);
    const peers = await redis.hgetall(keys.nodePeers(region, nodeId));
    for (const idx of free) expect(leases[idx]).toBeUndefined();
    const covered = new Set([...Object.keys(leases), ...free].map(Number));
    expect(covered.size).toBe(Object.keys(leases).length + free.length);
    const expected = new Set(Array.from({ length: Math.max(0, next - 1) }, (_, i) => i + 2));
    expect([...covered].sort((a, b) => a - b)).toEqual([...expected].sort((a, b) => a - b));

    for (const [idx, sessionId] of Object.entries(leases)) {
      const s = await redis.hgetall(keys.session(region, sessionId));
      expect({ state: s.state, node: s.node, idx: s.idx }).toEqual({ state: 'open', node: nodeId, idx });
      expect(peers[s.public_key!]).toBeDefined();
      expect(JSON.parse(peers[s.public_key!]!)).toMatchObject({ ses: sessionId, idx: Number(idx) });
      expect(expiry.has(sessionId)).toBe(true);
      seenOpen.add(sessionId);
    }
    expect(Object.keys(peers).length).toBe(Object.keys(leases).length);
    openPerNode.set(nodeId, Object.keys(leases).length);

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
  for (const sessionId of expiry) expect(seenOpen.has(sessionId)).toBe(true);
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
      if (state === 'open') expect(seenOpen.has(key.slice(key.lastIndexOf(':') + 1))).toBe(true);
    }
  } while (cursor !== '0');
  return openPerNode;
}
