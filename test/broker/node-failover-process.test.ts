// Exit failover where the user meets it: two built `tunnelbyte-broker serve` processes on one real
// redis-server with a short TB_HEARTBEAT_MS, two exit nodes speaking the node protocol through
// nodes/broker-client.ts (one through each broker), and the built `tunnelbyte` CLI. The node a session
// is on stops heartbeating: the session moves to the other node (its feed carries the peer with the
// same addresses); then that one stops too: the session reads node_lost, holds no slot, `status` says
// what to do, the gauges say so, and `connect` works again as soon as a node is back.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { BrokerClient } from '../../nodes/broker-client.js';
import { loadConfig } from '../../src/broker/config.js';
import { createContext } from '../../src/broker/context.js';
import { createNodeToken } from '../../src/broker/services/enrollment.js';
import { upsertRegion } from '../../src/broker/services/regions.js';
import { createRedis, waitForReady } from '../../src/broker/store/redis.js';
import { generateKeyPair } from '../../src/cli/wgkeys.js';
import { parseWgQuick } from '../../src/lib/wgquick.js';
import { cliBin, machine } from '../cli/harness.js';
import { freePort, startRedis, type RedisServer } from '../helpers/redis.js';
import { builtProgram } from '../helpers/repo.js';

const BROKER = builtProgram('src/broker/main.js');
// Short for a quick test, long enough that a live node on a busy machine is never judged lost.
const HEARTBEAT_MS = 1000;

let redis: RedisServer;
const brokers: { url: string; child: ChildProcess }[] = [];
const timers: NodeJS.Timeout[] = [];

async function serve(): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, [BROKER, 'serve'], {
    env: {
      PATH: process.env.PATH ?? '',
      REDIS_URL: redis.url,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      TB_HEARTBEAT_MS: String(HEARTBEAT_MS),
      PUBLIC_BURST: '100000',
      TB_TIERS: JSON.stringify({ free: { requestsPerMinute: 100000 } }),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('"msg":"listening"') && output.includes('"msg":"redis ready"')) resolve();
    });
    child.once('exit', () => reject(new Error(`broker exited early: ${output}`)));
  });
  const broker = { url: `http://127.0.0.1:${port}`, child };
  brokers.push(broker);
  return broker;
}

/** An exit node that registers through `brokerUrl` and heartbeats at the interval it is told, until stopped. */
async function node(brokerUrl: string, token: string, n: number) {
  const client = new BrokerClient(brokerUrl, token);
  const publicKey = generateKeyPair().publicKey;
  const registered = await client.register({
    region: 'eu-west',
    endpoint: `192.0.2.${n}:51820`,
    publicKey,
    egressIps: [`198.51.100.${n}`],
    capacity: 10,
    version: 'test',
  });
  if (!registered.ok) throw new Error(registered.message);
  const id = registered.value.node_id;
  expect(registered.value.heartbeat_ms).toBe(HEARTBEAT_MS);
  let beating = true;
  const timer = setInterval(() => {
    if (beating) void client.heartbeat(id, { load: 0, draining: false, peers: [] });
  }, registered.value.heartbeat_ms);
  timers.push(timer);
  return {
    id,
    publicKey,
    client,
    stop: () => (beating = false),
    resume: () => (beating = true),
  };
}

/** Polls `read` until `done` holds (no timing assertion: the bound only ends a broken run). */
async function until<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  let value = await read();
  for (let i = 0; i < 300 && !done(value); i++) {
    await new Promise((r) => setTimeout(r, 100));
    value = await read();
  }
  return value;
}

/** The operator's side, straight on Redis: the region and two node tokens. */
let tokens: string[];

beforeAll(async () => {
  redis = await startRedis();
  const ops = createRedis(redis.url);
  await waitForReady(ops);
  const ctx = createContext({
    config: loadConfig({ REDIS_URL: redis.url }),
    redis: ops,
    logger: pino({ level: 'silent' }),
  });
  await upsertRegion(ctx, {
    id: 'eu-west',
    name: 'Frankfurt',
    country: 'DE',
    tiers: ['free', 'pro', 'business'],
  });
  tokens = [(await createNodeToken(ctx, 'eu-west')).token, (await createNodeToken(ctx, 'eu-west')).token];
  ops.disconnect();
  await Promise.all([serve(), serve()]);
});

afterAll(async () => {
  timers.forEach(clearInterval);
  for (const b of brokers) {
    b.child.kill('SIGTERM');
    await new Promise((r) => b.child.once('exit', r));
  }
  await redis.stop();
});

test('a session follows its node across a failover, then reads node_lost with no slot held when no node has room', async () => {
  const [one, two] = brokers;
  const nodes = [await node(one!.url, tokens[0]!, 11), await node(two!.url, tokens[1]!, 12)];

  const m = machine(one!.url);
  expect((await cliBin(['signup'], m.env)).code).toBe(0);
  const file = join(m.configDir, 'tb-failover.conf');
  const connected = await cliBin(['connect', 'eu-west', '--no-dns', '--out', file], m.env);
  expect(connected.code).toBe(0);
  const written = parseWgQuick(readFileSync(file, 'utf8'));
  if (!written.ok) throw new Error(written.error.message);
  const addresses = written.config.interface.addresses;

  const status = async () =>
    JSON.parse((await cliBin(['status', '--json'], m.env)).stdout) as {
      id: string;
      status: string;
      node: { id: string; endpoint: string; public_key: string };
      moved_at: string | null;
      config: string;
    };
  const first = await status();
  const [from, to] = first.node.id === nodes[0]!.id ? [nodes[0]!, nodes[1]!] : [nodes[1]!, nodes[0]!];
  expect([first.node.id, first.moved_at]).toEqual([from.id, null]);

  // 1. Its node stops heartbeating: the session moves to the other one, its addresses with it.
  from.stop();
  const moved = await until(status, (s) => s.node.id === to.id);
  expect(moved).toMatchObject({
    node: { id: to.id, public_key: to.publicKey },
    moved_at: expect.any(String),
  });
  expect(moved.config).toContain(`PublicKey = ${to.publicKey}`);
  expect(moved.config).toContain(`Address = ${addresses.join(', ')}`);
  const feed = await to.client.peers(to.id, '', undefined, 0);
  if (!feed.ok) throw new Error(feed.message);
  expect(feed.value.peers.map((p) => p.allowed_ips)).toEqual([addresses]);
  const old = await from.client.peers(from.id, '', undefined, 0);
  expect(old.ok && old.value.peers).toEqual([]);

  // 2. That node stops too, and the first is still gone: no room anywhere.
  to.stop();
  const lost = await until(
    async () => (await cliBin(['status'], m.env)).stdout,
    (text) => /run `tunnelbyte connect` again/.test(text),
  );
  expect(lost).toMatch(/^status: +node_lost$/m);
  const scrape = async () => (await fetch(`${two!.url}/metrics`)).text();
  const gauges = await until(scrape, (text) =>
    /^tunnelbyte_nodes\{region="eu-west",state="lost"\} 2$/m.test(text),
  );
  expect(gauges).toMatch(/^tunnelbyte_nodes\{region="eu-west",state="healthy"\} 0$/m);
  expect(gauges).toMatch(/^tunnelbyte_sessions\{region="eu-west",status="node_lost"\} 1$/m);
  const usage = async () => JSON.parse((await cliBin(['usage', '--json'], m.env)).stdout).sessions.active;
  expect(await until(usage, (active) => active === 0)).toBe(0);

  // 3. A node is back: the free tier's one session is free, and connect works at once.
  from.resume();
  const again = await until(
    async () =>
      cliBin(['connect', 'eu-west', '--no-dns', '--out', join(m.configDir, 'tb-again.conf')], m.env),
    (res) => res.code === 0 || !/no capacity/.test(res.stderr),
  );
  expect([again.code, again.stderr]).toEqual([0, expect.not.stringMatching(/quota/)]);
  expect((await status()).node.id).toBe(from.id);
}, 120_000);
