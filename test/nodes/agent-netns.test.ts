// `tunnelbyte-node run` as a process with a real TUN, inside a throwaway namespace, under a real broker
// (createApp on a real redis-server, in this process) and carrying a real WireGuard client's traffic:
// Debian wireguard-go, configured from the broker-issued config, in a second namespace.
//
// The broker listens on a Unix socket; a small relay inside the node's namespace forwards its loopback
// port to that socket (the filesystem is shared, the network is not), so nothing touches the host network.
// Runs the built daemon (scripts/test builds first).
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';

import { createNodeToken } from '../../src/broker/services/enrollment.js';
import { upsertRegion } from '../../src/broker/services/regions.js';
import { keys } from '../../src/broker/store/keys.js';
import type { Principal } from '../broker/authz.js';
import { startPlane, type Plane } from '../broker/sessions-fixture.js';
import { netnsHarness, PAIR_ADDRESSES, type Namespace, type Pair, type ProcessHandle } from './netns.js';
import {
  NODE_GATEWAY,
  NODE_PORT,
  RELAY_PORT,
  relayBroker,
  spawnNode as spawnNodeProcess,
  type NodeArgs as NodeArgsOf,
} from './node-process.js';
import { eventually } from '../helpers/eventually.js';
import { PEERS_FILE } from '../../nodes/resume.js';

const readIfThere = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8') : '');

const harness = netnsHarness();
const DEADLINE_MS = 15_000;

let plane: Plane;
let server: Server;
let socketPath: string;
let pair: Pair;
let user: Principal;
let regions = 0;

beforeAll(async () => {
  // Short heartbeats: the node also writes its peers' endpoints every interval.
  plane = await startPlane({ env: { TB_HEARTBEAT_MS: '1000' } });
  user = await plane.principal('business');
  socketPath = join(harness.tempDir(), 'broker.sock');
  server = createServer(plane.broker.app);
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  pair = await harness.pair();
  await relayBroker(pair.a, socketPath);
});

afterAll(async () => {
  await harness.cleanup();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await plane.close();
});

async function newRegion(): Promise<string> {
  const id = `netns-${++regions}`;
  await upsertRegion(plane.broker.ctx, { id, name: id, country: 'DE', tiers: ['free', 'pro', 'business'] });
  return id;
}

interface RunningNode {
  proc: ProcessHandle;
  nodeId: string;
  interfaceName: string;
  nodeWg(args: string[]): Promise<string>;
}

/**
 * Each node (one state dir, one key) reports its own egress IP: the broker refuses an IP that another
 * live node holds, and an earlier test's node stays live for a few heartbeats. Documentation addresses
 * (RFC 5737): reported to the broker only, never sent to.
 */
const egressIps = new Map<string, string>();
const egressIpOf = (stateDir: string) => {
  if (!egressIps.has(stateDir)) egressIps.set(stateDir, `198.51.100.${egressIps.size + 1}`);
  return egressIps.get(stateDir)!;
};

type NodeArgs = Omit<NodeArgsOf, 'endpoint' | 'egressIp'>;

const spawnNode = (ns: Namespace, args: NodeArgs) =>
  spawnNodeProcess(ns, {
    ...args,
    endpoint: `${PAIR_ADDRESSES.a.v4}:${NODE_PORT}`,
    egressIp: egressIpOf(args.stateDir),
  });

async function startNode(args: NodeArgs): Promise<RunningNode> {
  const proc = spawnNode(pair.a, args);
  await proc.waitFor(/up, node node_\w+/, DEADLINE_MS);
  const nodeId = /up, node (node_\w+)/.exec(proc.output())![1]!;
  return {
    proc,
    nodeId,
    interfaceName: args.interfaceName,
    nodeWg: async (wgArgs) => (await pair.a.exec('wg', wgArgs)).stdout,
  };
}

/** The broker's wg-quick file as wg(8) takes it: wg-quick's own keys (Address, DNS) set apart. */
function splitWgQuick(config: string): { wg: string; addresses: string[] } {
  const addresses: string[] = [];
  const wg = config
    .split('\n')
    .filter((line) => {
      const match = /^(Address|DNS|MTU)\s*=\s*(.*)$/.exec(line);
      if (match?.[1] === 'Address') addresses.push(...match[2]!.split(',').map((a) => a.trim()));
      return !match;
    })
    .join('\n');
  return { wg, addresses };
}

async function nodeFor(extra: string[] = []): Promise<RunningNode & { region: string }> {
  const region = await newRegion();
  const { token } = await createNodeToken(plane.broker.ctx, region);
  const node = await startNode({
    region,
    token,
    stateDir: harness.tempDir(),
    interfaceName: harness.interfaceName(),
    extra,
  });
  return { ...node, region };
}

async function sessionClient(region: string) {
  const res = await plane.create(user, { region });
  expect(res.status).toBe(201);
  const { wg, addresses } = splitWgQuick(res.body.config as string);
  const client = await harness.wireguardGo(pair.b, { logLevel: 'error' });
  await client.setconf(wg);
  await harness.configureInterface(pair.b, client.interfaceName, addresses);
  await pair.b.exec('ip', ['route', 'add', '10.64.0.0/10', 'dev', client.interfaceName]);
  await pair.b.exec('ip', ['-6', 'route', 'add', 'fd64::/64', 'dev', client.interfaceName]);
  return { id: res.body.id as string, client, publicKey: (await client.dump()).publicKey };
}

/** A node in a new region and one client session on it that has pinged through. */
async function nodeWithClient(nodeFlags: readonly string[] = []) {
  const region = await newRegion();
  const { token } = await createNodeToken(plane.broker.ctx, region);
  const args = {
    region,
    token,
    stateDir: harness.tempDir(),
    interfaceName: harness.interfaceName(),
    nodeFlags,
  };
  const node = await startNode(args);
  const session = await sessionClient(region);
  await eventually('the peer on the node', async () =>
    (await node.nodeWg(['show', node.interfaceName, 'peers'])).includes(session.publicKey),
  );
  await ping(NODE_GATEWAY);
  return { args, node, session, region };
}

const ping = (target: string) => pair.b.exec('ping', ['-c', '3', '-i', '0.2', '-W', '5', target]);

describe('tunnelbyte-node run in a namespace', () => {
  test('a bad token: exit 1 with one line, nothing left behind', async () => {
    const interfaceName = harness.interfaceName();
    const proc = spawnNode(pair.a, {
      region: await newRegion(),
      token: 'tbn_' + 'x'.repeat(38),
      stateDir: harness.tempDir(),
      interfaceName,
    });
    expect(await proc.exited).toBe(1);
    const lines = proc.output().trim().split('\n');
    expect(lines).toEqual([expect.stringMatching(/^tunnelbyte-node: POST \/v1\/nodes\/register → 401/)]);
    await expect(pair.a.exec('ip', ['link', 'show', interfaceName])).rejects.toThrow(/does not exist/);
  });

  test('broker-issued config carries traffic; restart rebuilds the peers; SIGTERM drains', async () => {
    // A session through the API, a real client configured from its config: ping the node's gateway.
    // V8 says when a thread first detaches a buffer (checked at the end).
    const first = await nodeWithClient(['--trace-protector-invalidation']);
    const { args, session, region } = first;
    let node = first.node;
    await ping('fd64::1');

    // Killed without a word and started again from its state dir: same node, peer set from the feed.
    process.kill(node.proc.pid, 'SIGKILL');
    await node.proc.exited;
    node = await startNode(args);
    expect(node.proc.output()).toContain(node.nodeId);
    await eventually('the peer rebuilt from the feed', async () =>
      (await node.nodeWg(['show', node.interfaceName, 'peers'])).includes(session.publicKey),
    );
    // The client's old session is unknown to the restarted node: the node greets the client if it kept
    // the endpoint before the kill, else wireguard-go starts a new handshake when its packets go
    // unanswered (KEEPALIVE_TIMEOUT + REKEY_TIMEOUT = 15 s).
    await pair.b.exec('ping', ['-c', '1', '-w', '40', NODE_GATEWAY]);

    // Heartbeats carry the peer's counters (every 10 s): the session's bytes reach the broker.
    await eventually(
      'byte counters reported',
      async () => (await plane.as(user, 'get', `/v1/sessions/${session.id}`)).body.rx_bytes > 0,
      { timeoutMs: 30_000 },
    );

    // SIGTERM: draining heartbeat, no new sessions here, traffic still flows; the last peer gone → exit 0.
    process.kill(node.proc.pid, 'SIGTERM');
    await node.proc.waitFor('draining');
    await eventually(
      'draining recorded',
      async () => (await plane.broker.redis.hget(keys.node(node.nodeId), 'draining')) === '1',
    );
    const refused = await plane.create(user, { region });
    expect(refused.status).toBe(503);
    await ping(NODE_GATEWAY);
    expect((await plane.as(user, 'delete', `/v1/sessions/${session.id}`)).status).toBe(204);
    expect(await node.proc.exited).toBe(0);
    await session.client.stop();
    // One thread gave up V8's fast typed-array code: the fetch thread (Node's fetch detaches the buffers it
    // reads), not the data path's nor a handshake worker's.
    const detached = node.proc
      .output()
      .split('\n')
      .filter((line) => line.includes('ArrayBufferDetaching'));
    expect(detached).toEqual(['Invalidating protector cell ArrayBufferDetaching']);
  }, 120_000);

  test('a restarted node greets its recent client at the endpoint it kept: the client handshakes again without sending', async () => {
    const first = await nodeWithClient();
    const { args, session } = first;
    let node = first.node;
    const kept = join(args.stateDir, PEERS_FILE);
    await eventually('the endpoint kept with the state', () => readIfThere(kept).includes(session.publicKey));
    const before = (await session.client.dump()).peers[0]!.latestHandshake;

    process.kill(node.proc.pid, 'SIGKILL');
    await node.proc.exited;
    node = await startNode(args);
    await node.proc.waitFor('greeted 1 peers');
    // The client sends nothing: only the node's initiation (and its keepalive) can renew the handshake.
    await eventually(
      'the client handshook again',
      async () => (await session.client.dump()).peers[0]!.latestHandshake > before,
    );
    expect((await pair.b.exec('ping', ['-c', '1', '-W', '5', NODE_GATEWAY])).stdout).toMatch(/1 received/);
    process.kill(node.proc.pid, 'SIGKILL');
    await node.proc.exited;
    await session.client.stop();
  });

  test('--drain-timeout: a draining node with peers left stops when it elapses', async () => {
    const node = await nodeFor(['--drain-timeout', '1']);
    expect((await plane.create(user, { region: node.region })).status).toBe(201);
    await eventually(
      'the peer',
      async () => (await node.nodeWg(['show', node.interfaceName, 'peers'])).trim().length > 0,
    );
    process.kill(node.proc.pid, 'SIGTERM');
    expect(await node.proc.exited).toBe(0);
    expect(node.proc.output()).toMatch(/draining: no new sessions/);
  });

  test('--nat: the pool is masqueraded out of another interface; a second signal stops at once', async () => {
    // An "internet" namespace behind the node that has no route back to the pool: only NAT answers.
    const internet = await harness.namespace('c');
    await pair.a.exec('ip', [
      'link',
      'add',
      'veth1',
      'type',
      'veth',
      'peer',
      'name',
      'veth1',
      'netns',
      internet.name,
    ]);
    await pair.a.exec('ip', ['address', 'add', '198.51.100.1/24', 'dev', 'veth1']);
    await pair.a.exec('ip', ['link', 'set', 'veth1', 'up']);
    await internet.exec('ip', ['address', 'add', '198.51.100.2/24', 'dev', 'veth1']);
    await internet.exec('ip', ['link', 'set', 'veth1', 'up']);

    const node = await nodeFor(['--nat']);
    const table = `tunnelbyte_${node.interfaceName}`;
    await pair.a.exec('nft', ['list', 'table', 'inet', table]);
    expect((await pair.a.exec('sysctl', ['-n', 'net.ipv4.ip_forward'])).stdout.trim()).toBe('1');

    const session = await sessionClient(node.region);
    await pair.b.exec('ip', ['route', 'add', '198.51.100.0/24', 'dev', session.client.interfaceName]);
    const reply = await pair.b.exec('ping', ['-c', '3', '-i', '0.2', '-W', '5', '198.51.100.2']);
    expect(reply.stdout).toMatch(/3 received/);

    process.kill(node.proc.pid, 'SIGTERM');
    await node.proc.waitFor('draining');
    process.kill(node.proc.pid, 'SIGTERM');
    expect(await node.proc.exited).toBe(0);
    await expect(pair.a.exec('nft', ['list', 'table', 'inet', table])).rejects.toThrow();
    await session.client.stop();
  });

  test('broker out of reach: registration is retried; a signal meanwhile stops cleanly', async () => {
    const interfaceName = harness.interfaceName();
    const proc = spawnNode(pair.a, {
      region: await newRegion(),
      token: 'tbn_' + 'x'.repeat(38),
      stateDir: harness.tempDir(),
      interfaceName,
      broker: `http://127.0.0.1:${RELAY_PORT + 1}`, // nothing listens there
    });
    await proc.waitFor(/register: POST \/v1\/nodes\/register: ECONNREFUSED; retrying with backoff/);
    await pair.a.exec('ip', ['link', 'show', interfaceName]); // the node serves while it waits
    process.kill(proc.pid, 'SIGTERM');
    expect(await proc.exited).toBe(0);
    await expect(pair.a.exec('ip', ['link', 'show', interfaceName])).rejects.toThrow(/does not exist/);
  });
});
