// Exit failover as a user lives it (issue "Exit failover", Must show): two real `tunnelbyte-node run` in
// one region, each in a namespace of its own with its own TUN and egress IP, under a real broker (createApp
// with the wall clock on a real redis-server, a short TB_HEARTBEAT_MS, served on a Unix socket that a
// relay in each namespace reaches); a client namespace joined to both by veth pairs, where
// `tunnelbyte connect --up --follow` brings the tunnel up with the real wg-quick (wireguard-go as its
// userspace implementation, `--no-dns`), or the user does from an --out file under `tunnelbyte follow`.
// Traffic is a ping to the pool's gateway, which each node's own TUN holds in its namespace: it answers
// only through a tunnel. The node in use is SIGKILLed; the broker moves the session to the other node,
// the follower swaps the peer, and traffic resumes through it.
// Runs the built tree (scripts/test builds first).
//
//   exit-a (node, 192.168.241.2) ══ veth ══ client (192.168.241.1, 192.168.242.1) ══ veth ══ exit-b (node, 192.168.242.2)
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';

import { createNodeToken } from '../../src/broker/services/enrollment.js';
import { upsertRegion } from '../../src/broker/services/regions.js';
import type { Session } from '../../src/lib/api.js';
import { formatEndpoint } from '../../src/lib/endpoint.js';
import { keyToBase64 } from '../../src/lib/wgkey.js';
import { parseWgQuick } from '../../src/lib/wgquick.js';
import { startBroker, type TestBroker } from '../broker/helpers.js';
import { eventually } from '../helpers/eventually.js';
import { builtProgram } from '../helpers/repo.js';
import { netnsHarness, parseWgDump, type Namespace, type ProcessHandle } from './netns.js';
import { NODE_GATEWAY, NODE_PORT, RELAY_PORT, relayBroker, spawnNode } from './node-process.js';

const CLI = builtProgram('src/cli/main.js');
const HEARTBEAT_MS = 1_000;
const REGION = 'failover';
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Lost after 3 missed heartbeats, moved within a reaper round, read at the next poll; then the margin. */
const MOVE_BOUND_MS = 3 * HEARTBEAT_MS + 30_000;
const SETUP_MS = 60_000;
const TEST_MS = 120_000;

const harness = netnsHarness();
let broker: TestBroker;
let server: Server;
let client: Namespace;
let configDir: string;

interface ExitNode {
  ns: Namespace;
  proc: ProcessHandle;
  id: string;
  interfaceName: string;
  killed: boolean;
  /** Starts its `tunnelbyte-node run` again, with the same key and state, and waits until it is up. */
  start(): Promise<void>;
}
const exits: ExitNode[] = [];

beforeAll(async () => {
  broker = await startBroker({
    clock: Date.now,
    env: {
      TB_HEARTBEAT_MS: String(HEARTBEAT_MS),
      TB_TIERS: JSON.stringify({ free: { requestsPerMinute: 100_000, concurrentSessions: 10 } }),
    },
  });
  await upsertRegion(broker.ctx, { id: REGION, name: 'Failover', country: 'DE', tiers: ['free'] });
  const socketPath = join(harness.tempDir(), 'broker.sock');
  server = createServer(broker.app);
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));

  client = await harness.namespace('client');
  await relayBroker(client, socketPath);
  configDir = join(harness.tempDir(), 'tunnelbyte');
  const { token } = await createNodeToken(broker.ctx, REGION);
  for (const [i, label] of ['exit-a', 'exit-b'].entries()) {
    const ns = await harness.namespace(label);
    const subnet = `192.168.${241 + i}`;
    await harness.veth(
      { ns: client, link: `veth${i}`, addresses: [`${subnet}.1/24`] },
      { ns, link: 'veth0', addresses: [`${subnet}.2/24`] },
    );
    await relayBroker(ns, socketPath);
    const args = {
      region: REGION,
      token,
      stateDir: harness.tempDir(),
      interfaceName: harness.interfaceName(),
      endpoint: `${subnet}.2:${NODE_PORT}`,
      egressIp: `198.51.100.${211 + i}`,
    };
    const start = async () => {
      const proc = spawnNode(ns, args);
      await proc.waitFor(/up, node node_\w+/, 15_000);
      return { proc, id: /up, node (node_\w+)/.exec(proc.output())![1]!, killed: false };
    };
    const exit: ExitNode = {
      ns,
      interfaceName: args.interfaceName,
      ...(await start()),
      start: async () => void Object.assign(exit, await start()),
    };
    exits.push(exit);
  }
  expect((await tunnelbyte(['signup'])).stdout).toContain('tb_');
}, SETUP_MS);

afterAll(async () => {
  await harness.cleanup();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await broker?.close();
});

/** The environment of `tunnelbyte` in the client namespace, and nothing else of this process's. */
const cliEnv = () => [
  `PATH=${SYSTEM_PATH}`,
  'WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go',
  `TB_API=http://127.0.0.1:${RELAY_PORT}`,
  `TB_CONFIG_DIR=${configDir}`,
  `TB_FINGERPRINT=${'f0'.repeat(32)}`,
];

/** `tunnelbyte ARGS` in the client namespace, run to its end (rejects on a non-zero exit). */
const tunnelbyte = (args: string[]) =>
  client.exec('env', ['-i', ...cliEnv(), process.execPath, CLI, ...args]);

/** `tunnelbyte connect REGION --up --follow --no-dns --interval 1` in the client namespace, left running. */
async function following(extra: string[] = []): Promise<{
  run: ProcessHandle;
  sessionId: string;
  tunnel: string;
}> {
  const run = client.spawn('env', [
    ...['-i', ...cliEnv(), process.execPath, CLI],
    ...['connect', REGION, '--up', '--follow', '--no-dns', '--interval', '1', ...extra],
  ]);
  const human = /Z following session (\S+) through (\S+), node \S+/;
  const json = /^\{"event":"following","session":"(\S+?)",.*"interface":"(\S+?)"/m;
  const started = extra.includes('--json') ? json : human;
  await run.waitFor(started, 30_000);
  const [, sessionId, tunnel] = started.exec(run.output())!;
  return { run, sessionId: sessionId!, tunnel: tunnel! };
}

const pings = async () => {
  try {
    await client.exec('ping', ['-c', '1', '-W', '1', NODE_GATEWAY]);
    return true;
  } catch {
    return false;
  }
};

async function session(id: string) {
  return JSON.parse((await tunnelbyte(['status', id, '--json'])).stdout) as Session;
}

const links = async () => (await client.exec('ip', ['-o', 'link', 'show'])).stdout;

/** The peers a node serves, as its UAPI socket gives them to the real `wg`. */
const nodePeers = async (exit: ExitNode) =>
  parseWgDump((await exit.ns.exec('wg', ['show', exit.interfaceName, 'dump'])).stdout).peers;

/**
 * Kills the node the tunnel goes through with SIGKILL and waits (bounded) for the follower to swap the
 * peer and for pings to cross the other node, which then serves the client's key; returns that node.
 */
async function killNodeInUse(run: ProcessHandle, sessionId: string, tunnel: string): Promise<ExitNode> {
  await eventually('a ping through the tunnel', pings, { timeoutMs: 20_000, everyMs: 200 });
  const clientKey = parseWgDump((await client.exec('wg', ['show', tunnel, 'dump'])).stdout).publicKey;
  const inUse = (await session(sessionId)).node.id;
  const victim = exits.find((e) => e.id === inUse)!;
  const other = exits.find((e) => e !== victim)!;

  process.kill(-victim.proc.pid, 'SIGKILL');
  victim.killed = true;
  await victim.proc.exited;
  await run.waitFor(
    new RegExp(`Z session moved at \\S+ to node ${other.id} \\(\\S+\\); ${tunnel} now goes through it`),
    MOVE_BOUND_MS,
  );
  await eventually('a ping through the other node', pings, { timeoutMs: MOVE_BOUND_MS, everyMs: 200 });
  const served = (await nodePeers(other)).find((p) => p.publicKey === clientKey);
  expect(served?.latestHandshake).toBeGreaterThan(0);
  expect(served?.rxBytes).toBeGreaterThan(0);

  const moved = await session(sessionId);
  expect(moved.node.id).toBe(other.id);
  expect(moved.moved_at).toEqual(expect.any(String));
  expect((await tunnelbyte(['status', sessionId])).stdout).toMatch(
    new RegExp(`^node:\\s+${other.id}\\nmoved:\\s+${moved.moved_at}\\n`, 'm'),
  );
  const peers = parseWgDump((await client.exec('wg', ['show', tunnel, 'dump'])).stdout).peers;
  expect(peers.map((p) => [p.publicKey, p.allowedIps])).toEqual([
    [moved.node.public_key, ['0.0.0.0/0', '::/0']],
  ]);
  return other;
}

/** Both nodes up: the one an earlier test killed starts again. */
async function bothNodesUp(): Promise<void> {
  for (const exit of exits) if (exit.killed) await exit.start();
}

test(
  '1. the node in use is SIGKILLed: the session moves to the other node, the interface follows, traffic resumes; Ctrl-C takes it down and closes the session',
  async () => {
    const { run, sessionId, tunnel } = await following(['--psk']);
    const file = /^Config written to (\S+) \(mode 0600\)\.$/m.exec(run.output())![1]!;
    const before = parseWgQuick(readFileSync(file, 'utf8'));
    const other = await killNodeInUse(run, sessionId, tunnel);
    // The preshared key went along (the handshake with the new node needs it), and the file it was
    // brought up from now names the new node, with this machine's keys.
    const after = parseWgQuick(readFileSync(file, 'utf8'));
    if (!before.ok || !after.ok) throw new Error('the config file does not parse');
    const [peer] = after.config.peers;
    const { node } = await session(sessionId);
    expect(node.id).toBe(other.id);
    expect([keyToBase64(peer!.publicKey), formatEndpoint(peer!.endpoint!)]).toEqual([
      node.public_key,
      node.endpoint,
    ]);
    expect(peer!.presharedKey).toEqual(before.config.peers[0]!.presharedKey);
    expect(after.config.interface).toEqual(before.config.interface);

    process.kill(run.pid, 'SIGINT');
    expect(await run.exited).toBe(130);
    expect(run.output()).toMatch(
      new RegExp(`tunnelbyte: interrupted; ${tunnel} taken down; session ${sessionId} closed\\n$`),
    );
    expect(await links()).not.toContain(`${tunnel}:`);
    expect((await session(sessionId)).status).toBe('closed');
  },
  TEST_MS,
);

test(
  '2. the session closed from elsewhere (`tunnelbyte disconnect`): the follower says so and exits 0, the interface down',
  async () => {
    const { run, sessionId, tunnel } = await following();
    await eventually('a ping through the tunnel', pings, { timeoutMs: 20_000, everyMs: 200 });
    await tunnelbyte(['disconnect', sessionId]);
    expect(await run.exited).toBe(0);
    expect(run.output()).toMatch(new RegExp(`\\dZ session ${sessionId} closed\\n$`));
    expect(await links()).not.toContain(`${tunnel}:`);
  },
  TEST_MS,
);

test(
  '3. `tunnelbyte follow` for a tunnel brought up from an --out file: the same failover; Ctrl-C leaves the tunnel and the session',
  async () => {
    await bothNodesUp();
    const file = join(harness.tempDir(), 'tbfollow.conf');
    await tunnelbyte(['connect', REGION, '--out', file, '--no-dns']);
    const sessionId = JSON.parse((await tunnelbyte(['sessions', '--json'])).stdout).sessions[0].id as string;
    await client.exec('env', ['-i', ...cliEnv(), 'wg-quick', 'up', file]);
    const run = client.spawn('env', [
      ...['-i', ...cliEnv(), process.execPath, CLI],
      ...['follow', '--interface', 'tbfollow', '--interval', '1'],
    ]);
    await run.waitFor(`Z following session ${sessionId} through tbfollow`);
    await killNodeInUse(run, sessionId, 'tbfollow');

    process.kill(run.pid, 'SIGINT');
    expect(await run.exited).toBe(130);
    expect(run.output()).toMatch(
      new RegExp(
        `tunnelbyte: interrupted; stopped following; tbfollow and session ${sessionId} are left as they are\\n$`,
      ),
    );
    expect(await pings()).toBe(true);
    // Active again once the new node's next heartbeat carries the handshake the pings made.
    await eventually(
      'the session active on the new node',
      async () => (await session(sessionId)).status === 'active',
      {
        timeoutMs: 10 * HEARTBEAT_MS,
        everyMs: 200,
      },
    );
    await client.exec('env', ['-i', ...cliEnv(), 'wg-quick', 'down', file]);
    await tunnelbyte(['disconnect', sessionId]);
  },
  TEST_MS,
);

test(
  '4. SIGTERM (systemd, kill) does what Ctrl-C does under connect --up --follow: interface down, session closed, exit 143',
  async () => {
    await bothNodesUp();
    const { run, sessionId, tunnel } = await following(['--json']);
    // Following, --json output is one JSON object per line, the session's summary first.
    expect(run.output()).toMatch(new RegExp(`^\\{"id":"${sessionId}",.*"config_path":"[^"]+"\\}$`, 'm'));
    await eventually('a ping through the tunnel', pings, { timeoutMs: 20_000, everyMs: 200 });
    process.kill(run.pid, 'SIGTERM');
    expect(await run.exited).toBe(143);
    expect(run.output()).toContain(
      `tunnelbyte: terminated; ${tunnel} taken down; session ${sessionId} closed\n`,
    );
    expect(await links()).not.toContain(`${tunnel}:`);
    expect((await session(sessionId)).status).toBe('closed');
  },
  TEST_MS,
);
