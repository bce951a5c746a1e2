// Scale benchmark (not a test), node rows, appended to bench-results/scale.md by scripts/bench-scale: the
// real `tunnelbyte-node run` with a real TUN in a namespace, under a real broker (createApp in this
// process on a private redis-server, served on a Unix socket that a relay in the namespace reaches), one
// node each with 1, 1,000 and 10,000 sessions created through the API, all three up at once. One session
// per node is a Debian wireguard-go client in a second namespace joined by a veth pair; the others are
// configured peers that never send.
//
// In ROUNDS rounds interleaved over the sizes: iperf3 TCP through the client's tunnel to the node's own
// address, each way (flat is the goal: ratios against the 1-peer row of this run), and restart-to-serving:
// the node is SIGKILLed (a crash) and started again on its state dir while the client pings it every
// 20 ms; serving is the first echo reply through the tunnel after the new process was spawned. To get
// there the restarted node loads, opens its TUN, registers, rebuilds its peers from the feed's full page,
// and greets the client it kept in peers.json; the client's wireguard-go answers that handshake and its
// pings flow again.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';

import { createNodeToken } from '../src/broker/services/enrollment.js';
import { upsertRegion } from '../src/broker/services/regions.js';
import type { CreatedSession } from '../src/lib/api.js';
import { PEERS_FILE } from '../nodes/resume.js';
import { businessToken, startBroker } from '../test/broker/helpers.js';
import { settled } from '../test/helpers/eventually.js';
import { NetnsHarness, parseWgDump, type Namespace, type ProcessHandle } from '../test/nodes/netns.js';
import {
  NODE_GATEWAY,
  NODE_PORT,
  pooled,
  relayBroker,
  serveOnSocket,
  spawnNode,
  type NodeArgs,
} from '../test/nodes/node-process.js';
import { iperf3, type IperfResult } from './iperf3.js';

const SIZES = [1, 1_000, 10_000];
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
// Short enough that peers.json (written every interval) holds the client soon after its handshake; long
// enough that a restart is not taken for a lost node (3 missed beats) on a loaded machine.
const HEARTBEAT_MS = 3_000;
// Every size on a node of the same capacity, so only the peer count differs (half full at 10,000).
const CAPACITY = 20_000;
const IN_FLIGHT = 32;
const PING_INTERVAL_S = 0.02;
const ROUNDS = 3;
const READY = /up, node node_\w+/;
const OUTER = { node: '192.168.250.1', client: '192.168.250.2' };
const SETTLE_MS = 180_000;

const harness = new NetnsHarness();
// Signals do not run 'exit' handlers by themselves; exiting does, and the harness cleans up there.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

const broker = await startBroker({
  clock: Date.now,
  env: {
    TB_HEARTBEAT_MS: String(HEARTBEAT_MS),
    TB_NODE_MAX_CAPACITY: String(CAPACITY),
    TB_TIERS: JSON.stringify({
      business: { concurrentSessions: 1_000_000_000, requestsPerMinute: 1_000_000_000 },
    }),
  },
});
const served = await serveOnSocket(broker.app, harness.tempDir(), IN_FLIGHT);
const token = await businessToken(broker.ctx, 'bench');

interface Setup {
  peers: number;
  nodeNs: Namespace;
  clientNs: Namespace;
  args: NodeArgs;
  node: ProcessHandle;
  clientPublicKey: string;
  /** The client's tunnel address (iperf3 binds it). */
  bind: string;
  rssMiB: number;
}

const rssMiB = (pid: number) =>
  Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

const wgPeers = async (setup: Setup) =>
  parseWgDump((await setup.nodeNs.exec('wg', ['show', setup.args.interfaceName, 'dump'])).stdout).peers
    .length;

/** The wall-clock time (ms) of the first echo reply `ping -D` printed at or after `sinceMs`. */
function firstReplyAfter(output: string, sinceMs: number): number | undefined {
  for (const match of output.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from/gm)) {
    const atMs = Number(match[1]) * 1000;
    if (atMs >= sinceMs) return atMs;
  }
  return undefined;
}

/** A node in its namespace with `peers` sessions, the first one a wireguard-go client that has pinged. */
async function setUp(peers: number, index: number): Promise<Setup> {
  const region = `scale-${peers}`;
  await upsertRegion(broker.ctx, { id: region, name: region, country: 'DE', tiers: ['business'] });
  const { token: nodeToken } = await createNodeToken(broker.ctx, region);
  const nodeNs = await harness.namespace(`node${peers}`);
  const clientNs = await harness.namespace(`client${peers}`);
  await harness.veth(
    { ns: nodeNs, link: 'veth0', addresses: [`${OUTER.node}/24`] },
    { ns: clientNs, link: 'veth0', addresses: [`${OUTER.client}/24`] },
  );
  await relayBroker(nodeNs, served.socketPath);
  const args: NodeArgs = {
    region,
    token: nodeToken,
    stateDir: harness.tempDir(),
    interfaceName: harness.interfaceName(),
    endpoint: `${OUTER.node}:${NODE_PORT}`,
    egressIp: `198.51.100.${index + 1}`,
    extra: ['--capacity', String(CAPACITY)],
  };
  const node = spawnNode(nodeNs, args);
  await node.waitFor(READY, 30_000);

  // The client's session first, then the configured peers that never send.
  const clientKeys = await harness.generateKeys();
  const publicKeys = [
    clientKeys.publicKey,
    ...Array.from({ length: peers - 1 }, () => randomBytes(32).toString('base64')),
  ];
  const created = await pooled(publicKeys, IN_FLIGHT, (publicKey) =>
    served.api<CreatedSession>('POST', '/v1/sessions', token, { region, public_key: publicKey }),
  );
  const refused = created.find((res) => res.status !== 201);
  if (refused) throw new Error(`session refused: ${refused.status} ${JSON.stringify(refused.body)}`);
  const setup: Setup = {
    peers,
    nodeNs,
    clientNs,
    args,
    node,
    clientPublicKey: clientKeys.publicKey,
    bind: '',
    rssMiB: 0,
  };
  await settled(
    'every session a peer on the node',
    () => wgPeers(setup),
    (count) => count === peers,
    {
      timeoutMs: SETTLE_MS,
      everyMs: 250,
    },
  );

  const session = created[0]!.body;
  const client = await harness.wireguardGo(clientNs, { logLevel: 'error' });
  await client.setconf(
    [
      '[Interface]',
      `PrivateKey = ${clientKeys.privateKey}`,
      '',
      '[Peer]',
      `PublicKey = ${session.node.public_key}`,
      ...(session.peer.preshared_key ? [`PresharedKey = ${session.peer.preshared_key}`] : []),
      `AllowedIPs = ${NODE_GATEWAY}/32`,
      `Endpoint = ${args.endpoint}`,
      '',
    ].join('\n'),
  );
  await harness.configureInterface(clientNs, client.interfaceName, session.interface.addresses);
  await clientNs.exec('ip', ['route', 'add', `${NODE_GATEWAY}/32`, 'dev', client.interfaceName]);
  await clientNs.exec('ping', ['-c', '1', '-w', '20', NODE_GATEWAY]); // the handshake first
  setup.bind = session.interface.addresses.find((a) => !a.includes(':'))!.split('/')[0]!;
  setup.rssMiB = rssMiB(node.pid);
  // A restart greets the client once the node has kept its endpoint (every heartbeat interval).
  await settled(
    'the client kept in peers.json',
    () => {
      try {
        return readFileSync(join(args.stateDir, PEERS_FILE), 'utf8').includes(clientKeys.publicKey);
      } catch {
        return false;
      }
    },
    (ok) => ok,
    { timeoutMs: 4 * HEARTBEAT_MS, everyMs: 100 },
  );
  return setup;
}

const transfer = (setup: Setup, reverse: boolean) =>
  iperf3({
    server: setup.nodeNs,
    address: NODE_GATEWAY,
    streams: [{ client: setup.clientNs, bind: setup.bind }],
    seconds: SECONDS,
    reverse,
  });

const backoffs = (node: ProcessHandle) => node.output().match(/retrying with backoff/g)?.length ?? 0;

/**
 * SIGKILL and a start on the same state dir while the client pings: ms to the ready line and to a reply,
 * and the backoffs the killed process had logged.
 */
async function restart(
  setup: Setup,
): Promise<{ registeredMs: number; greetedMs: number; servingMs: number; backoffs: number }> {
  const pinger = setup.clientNs.spawn('ping', ['-D', '-n', '-i', String(PING_INTERVAL_S), NODE_GATEWAY]);
  await pinger.waitFor(/bytes from/);
  const before = backoffs(setup.node);
  process.kill(setup.node.pid, 'SIGKILL');
  await setup.node.exited;
  const spawnedAt = Date.now();
  setup.node = spawnNode(setup.nodeNs, setup.args);
  // The greeting starts once the feed's full page is applied: its line marks the peers in place.
  const greeted = setup.node.waitFor(/greeted \d+ peers/, 60_000).then(() => Date.now() - spawnedAt);
  greeted.catch(() => undefined); // awaited below; its failure is thrown there
  await setup.node.waitFor(READY, 30_000);
  const registeredMs = Date.now() - spawnedAt;
  const repliedAt = await settled(
    'a ping through the restarted node',
    () => firstReplyAfter(pinger.output(), spawnedAt),
    (at) => at !== undefined,
    { timeoutMs: 60_000, everyMs: 10 },
  );
  await pinger.stop();
  const greetedMs = await greeted;
  await settled(
    'the restarted node’s peers',
    () => wgPeers(setup),
    (count) => count === setup.peers,
    {
      timeoutMs: SETTLE_MS,
    },
  );
  return { registeredMs, greetedMs, servingMs: repliedAt! - spawnedAt, backoffs: before };
}

interface Row {
  peers: number;
  up: IperfResult[];
  down: IperfResult[];
  rssMiB: number;
  registeredMs: number[];
  greetedMs: number[];
  servingMs: number[];
  backoffs: number;
}

const loadBefore = loadavg();
const rows: Row[] = [];
try {
  const setups: Setup[] = [];
  for (const [index, peers] of SIZES.entries()) setups.push(await setUp(peers, index));
  for (const setup of setups) {
    rows.push({
      peers: setup.peers,
      up: [],
      down: [],
      rssMiB: setup.rssMiB,
      registeredMs: [],
      greetedMs: [],
      servingMs: [],
      backoffs: 0,
    });
  }
  // Interleaved rounds: a busy moment of the machine falls on every size alike.
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, setup] of setups.entries()) {
      rows[i]!.up.push(await transfer(setup, false));
      rows[i]!.down.push(await transfer(setup, true));
      const restarted = await restart(setup);
      rows[i]!.registeredMs.push(restarted.registeredMs);
      rows[i]!.greetedMs.push(restarted.greetedMs);
      rows[i]!.servingMs.push(restarted.servingMs);
      rows[i]!.backoffs += restarted.backoffs;
    }
  }
  setups.forEach((setup, i) => (rows[i]!.backoffs += backoffs(setup.node)));
} finally {
  await harness.cleanup();
  await served.close();
  await broker.close();
}

const fmt = (n: number, digits = 0) => n.toFixed(digits);
const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' / ');
const best = (runs: IperfResult[]) => Math.max(...runs.map((r) => r.mbitPerSecond));
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const base = rows[0]!;
const lines = [
  '',
  '## Node: `tunnelbyte-node run` under a broker, one wireguard-go client (namespaces)',
  '',
  `- date: ${new Date().toISOString()}; load average (1/5/15 min) before ${load(loadBefore)}, after ${load(loadavg())}`,
  '',
  `Sessions created through the API onto one node per size (capacity ${CAPACITY.toLocaleString('en')} each, all three up at once); one session a Debian wireguard-go client in a namespace of its own, the rest configured peers that never send. iperf3 TCP, one stream for ${SECONDS} s each way between the client and the node's own address, through the tunnel: best of ${ROUNDS} rounds interleaved over the sizes, ratios against the 1-peer row of this run. Restart: ${ROUNDS} per size, in the same rounds.`,
  '',
  '| peers | iperf3 client→node Mbit/s | ratio | iperf3 node→client Mbit/s | ratio | node RSS MiB | restart: registered ms (median) | restart: peers in place ms (median) | restart: serving ms (median) | serving ms (worst) |',
  '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...rows.map(
    (r) =>
      `| ${r.peers.toLocaleString('en')} | ${fmt(best(r.up))} | ${fmt(best(r.up) / best(base.up), 2)} | ${fmt(best(r.down))} | ${fmt(best(r.down) / best(base.down), 2)} | ${fmt(r.rssMiB, 1)} | ${fmt(median(r.registeredMs))} | ${fmt(median(r.greetedMs))} | **${fmt(median(r.servingMs))}** | ${fmt(Math.max(...r.servingMs))} |`,
  ),
  '',
  '- restart: the node is SIGKILLed and spawned again on its state dir (key, peers.json) while the client',
  `  pings the node's address every ${PING_INTERVAL_S * 1000} ms. "registered": from the spawn to the node's ready line`,
  '  (module load, TUN, UAPI, registration with the broker). "peers in place": to its line saying it greeted',
  '  the client, which it does once the feed\'s full page is applied. "serving": from the spawn to the first echo reply',
  '  through the tunnel (`ping -D` timestamps): the full page of the feed applied, the client greeted from',
  "  peers.json, its wireguard-go's answer taken, a ping through. The issue's bar: under 5 s at 10,000 peers.",
  "- node RSS: the daemon's resident memory with every peer configured, after the client's first ping.",
  `- the node's broker requests met ${rows.every((r) => r.backoffs === 0) ? 'no backoff (no rate limit, no error) at any size' : `backoffs: ${rows.map((r) => `${r.peers.toLocaleString('en')} peers ${r.backoffs}`).join(', ')} "retrying with backoff" lines`}.`,
];
process.stdout.write(`${lines.join('\n')}\n`);
