// The session and node data plane on a real 3-master Redis Cluster (redis-server --cluster-enabled,
// joined with redis-cli --cluster create), through ioredis' Cluster client: every script and MULTI
// stays in one hash slot, so nothing answers CROSSSLOT, and the keys really spread over the masters.
import { Cluster } from 'ioredis';
import { loadConfig } from '../../src/broker/config.js';
import { createContext, type BrokerContext } from '../../src/broker/context.js';
import { createAccount } from '../../src/broker/services/accounts.js';
import { createNodeToken } from '../../src/broker/services/enrollment.js';
import { pollPeers } from '../../src/broker/services/feed.js';
import { recordHeartbeat, registerNode, getNode } from '../../src/broker/services/nodes.js';
import { failoverRound } from '../../src/broker/services/failover.js';
import { reapExpired } from '../../src/broker/services/reaper.js';
import { upsertRegion } from '../../src/broker/services/regions.js';
import {
  createSession,
  deleteSession,
  getSession,
  listSessions,
} from '../../src/broker/services/sessions.js';
import { usageOf } from '../../src/broker/services/usage.js';
import { keys } from '../../src/broker/store/keys.js';
import { createRedis, keySlot, waitForReady } from '../../src/broker/store/redis.js';
import { redisCli, startCluster, type RedisServer } from '../helpers/redis.js';
import { silentLogger } from './helpers.js';
import { keyPair, T0 } from './sessions-fixture.js';

const servers: RedisServer[] = [];
let cluster: Cluster;
let ctx: BrokerContext;
/** The broker's shutdown: closes the feed's own connections (a Cluster each), which reconnect forever else. */
const shutdown = new AbortController();
let now = T0;

beforeAll(async () => {
  servers.push(...(await startCluster(3, 0, ['--appendonly', 'no', '--cluster-node-timeout', '5000'])));
  // Through REDIS_URL's Cluster form, as the broker and the admin command connect.
  const url = `redis+cluster://${servers.map((server) => `127.0.0.1:${server.port}`).join(',')}`;
  // No replicas here (the failover suite has them): nothing to WAIT for.
  const config = loadConfig({ REDIS_URL: url, REDIS_WAIT_REPLICAS: '0' });
  const redis = createRedis(config.redisUrl);
  await waitForReady(redis);
  cluster = redis as unknown as Cluster;
  ctx = createContext(
    {
      config,
      redis,
      logger: silentLogger,
      clock: () => now,
    },
    shutdown.signal,
  );
}, 90_000);

afterAll(async () => {
  shutdown.abort();
  cluster?.disconnect();
  await Promise.all(servers.map((server) => server.stop()));
});

test('session lifecycle on Redis Cluster: no CROSSSLOT anywhere, keys spread over the masters', async () => {
  const regions = ['eu-west', 'us-east', 'ap-south', 'sa-east'];
  for (const id of regions)
    await upsertRegion(ctx, { id, name: id, country: 'DE', tiers: ['free', 'pro', 'business'] });
  const nodes = [];
  for (const [i, region] of regions.entries()) {
    const token = await createNodeToken(ctx, region);
    const { nodeId } = await registerNode(ctx, token, {
      region,
      endpoint: '198.51.100.1:51820',
      publicKey: keyPair().publicKey,
      // One egress IP per live node: another live node's address is refused.
      egressIps: [`203.0.113.${i + 1}`],
      capacity: 100,
      version: 'test',
    });
    nodes.push((await getNode(ctx, nodeId))!);
  }

  const accounts = await Promise.all(
    Array.from({ length: 6 }, () => createAccount(ctx, { plan: 'business' })),
  );
  const made = [];
  for (const account of accounts) {
    for (const region of regions) {
      const client = keyPair();
      made.push({
        account,
        client,
        session: await createSession(ctx, account, {
          region,
          publicKey: client.publicKey,
          presharedKey: true,
        }),
      });
    }
  }
  expect(made).toHaveLength(24);

  // Session records of different regions live on different masters.
  const slots = new Set(
    made.map((m) => cluster.slots[keySlot(keys.session(m.session.region, m.session.id))]?.[0]),
  );
  expect(slots.size).toBeGreaterThan(1);

  // Heartbeat with counters → usage in the account slots.
  const first = made[0]!;
  const node = nodes.find((n) => n.id === first.session.node.id)!;
  await recordHeartbeat(ctx, node, {
    load: 0.2,
    draining: false,
    peers: [{ publicKey: first.client.publicKey, rxBytes: 700, txBytes: 300, lastHandshakeAt: now }],
  });
  expect((await usageOf(ctx, first.account)).bytes.used).toBe(1000);
  expect(await getSession(ctx, first.account.id, first.session.id)).toMatchObject({
    status: 'active',
    rx_bytes: 700,
  });
  expect(await listSessions(ctx, first.account.id)).toHaveLength(4);

  // The feed (XREAD on a dedicated cluster connection) and a delete.
  const full = await pollPeers(ctx, node, '', 0, new AbortController().signal);
  expect(full.full).toBe(true);
  expect(full.peers.map((p) => p.public_key)).toContain(first.client.publicKey);
  const waiting = pollPeers(ctx, node, full.cursor, 5000, new AbortController().signal);
  await deleteSession(ctx, first.account.id, first.session.id);
  expect((await waiting).removed).toEqual([first.client.publicKey]);

  // Exit failover: every node misses its heartbeats but a new one in eu-west; eu-west's five open
  // sessions move to it, the other regions' eighteen find no room.
  const spare = await registerNode(ctx, await createNodeToken(ctx, 'eu-west'), {
    region: 'eu-west',
    endpoint: '198.51.100.2:51820',
    publicKey: keyPair().publicKey,
    egressIps: ['203.0.113.50'],
    capacity: 100,
    version: 'test',
  });
  now += 31_000;
  await recordHeartbeat(ctx, (await getNode(ctx, spare.nodeId))!, { load: 0, draining: false, peers: [] });
  expect(await failoverRound(ctx)).toEqual({ moved: 5, lost: 18 });
  expect(await failoverRound(ctx)).toEqual({ moved: 0, lost: 0 });
  const second = made[4]!;
  expect(await getSession(ctx, second.account.id, second.session.id)).toMatchObject({
    node: { id: spare.nodeId },
  });

  // The reaper closes the rest at expiry.
  now += 25 * 3600 * 1000;
  for (const n of nodes) await recordHeartbeat(ctx, n, { load: 0, draining: false, peers: [] });
  expect(await reapExpired(ctx)).toBe(23);
  expect((await usageOf(ctx, first.account)).sessions.active).toBe(0);
});

test('keySlot agrees with CLUSTER KEYSLOT, hash tags included', () => {
  const samples = [
    '',
    'a',
    'tb:{acc_1}:sessions',
    '{}x',
    'x{}y',
    '{a}{b}',
    'tb:region:{eu-west}:nodes',
    'ü{ä}',
  ];
  for (const key of samples)
    expect(keySlot(key)).toBe(Number(redisCli(servers[0]!.port, 'cluster', 'keyslot', key)));
});
