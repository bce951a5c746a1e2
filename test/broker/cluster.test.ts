// The session and node data plane on a real 3-master Redis Cluster (redis-server --cluster-enabled,
// joined with redis-cli --cluster create), through ioredis' Cluster client: every script and MULTI
// stays in one hash slot, so nothing answers CROSSSLOT, and the keys really spread over the masters.
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cluster } from 'ioredis';
import { loadConfig } from '../../src/broker/config.js';
import { createContext, type BrokerContext } from '../../src/broker/context.js';
import { createAccount } from '../../src/broker/services/accounts.js';
import { createNodeToken } from '../../src/broker/services/enrollment.js';
import { pollPeers } from '../../src/broker/services/feed.js';
import { recordHeartbeat, registerNode, getNode } from '../../src/broker/services/nodes.js';
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
import type { Redis } from '../../src/broker/store/redis.js';
import { freePort, startRedis, type RedisServer } from '../helpers/redis.js';
import { silentLogger } from './helpers.js';
import { keyPair, T0 } from './sessions-fixture.js';

const servers: RedisServer[] = [];
let cluster: Cluster;
let ctx: BrokerContext;
let now = T0;

const canListen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });

/** A free port whose cluster-bus twin (port + 10000) is free too. */
async function clusterPort(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port + 10000 <= 65535 && (await canListen(port + 10000))) return port;
  }
}

beforeAll(async () => {
  const ports = [await clusterPort(), await clusterPort(), await clusterPort()];
  for (const port of ports) {
    servers.push(
      await startRedis(
        ['--appendonly', 'no', '--cluster-enabled', 'yes', '--cluster-node-timeout', '5000'],
        port,
      ),
    );
  }
  const create = spawnSync(
    'redis-cli',
    [
      '--cluster',
      'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  if (create.status !== 0) throw new Error(`cluster create failed: ${create.stdout} ${create.stderr}`);
  for (let i = 0; i < 200; i++) {
    const info = spawnSync('redis-cli', ['-p', String(ports[0]), 'cluster', 'info'], { encoding: 'utf8' });
    if (info.stdout.includes('cluster_state:ok')) break;
    await sleep(100);
  }
  cluster = new Cluster(
    ports.map((port) => ({ host: '127.0.0.1', port })),
    { redisOptions: { maxRetriesPerRequest: 1 } },
  );
  cluster.on('error', () => {});
  await new Promise<void>((resolve) => cluster.once('ready', () => resolve()));
  ctx = createContext({
    config: loadConfig({}),
    redis: cluster as unknown as Redis,
    logger: silentLogger,
    clock: () => now,
  });
}, 90_000);

afterAll(async () => {
  cluster?.disconnect();
  await Promise.all(servers.map((server) => server.stop()));
});

test('session lifecycle on Redis Cluster: no CROSSSLOT anywhere, keys spread over the masters', async () => {
  const regions = ['eu-west', 'us-east', 'ap-south', 'sa-east'];
  for (const id of regions)
    await upsertRegion(ctx, { id, name: id, country: 'DE', tiers: ['free', 'pro', 'business'] });
  const nodes = [];
  for (const region of regions) {
    const token = await createNodeToken(ctx, region);
    const { nodeId } = await registerNode(ctx, token, {
      region,
      endpoint: '198.51.100.1:51820',
      publicKey: keyPair().publicKey,
      egressIps: ['203.0.113.1'],
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
    made.map((m) => cluster.slots[slotOf(keys.session(m.session.region, m.session.id))]?.[0]),
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

  // The reaper closes the rest at expiry.
  now += 25 * 3600 * 1000;
  for (const n of nodes) await recordHeartbeat(ctx, n, { load: 0, draining: false, peers: [] });
  expect(await reapExpired(ctx)).toBe(23);
  expect((await usageOf(ctx, first.account)).sessions.active).toBe(0);
});

/** CRC16/XMODEM of the hash tag, mod 16384 (the Redis Cluster key slot). */
function slotOf(key: string): number {
  const open = key.indexOf('{');
  const close = open >= 0 ? key.indexOf('}', open + 1) : -1;
  const tagged = open >= 0 && close > open + 1 ? key.slice(open + 1, close) : key;
  let crc = 0;
  for (const byte of Buffer.from(tagged)) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}
