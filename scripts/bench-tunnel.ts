// Tunnel benchmark (not a test): the exit node against Debian wireguard-go, every row from one run.
//
// Topology (all in namespaces this script makes): a server namespace (the exit side) joined by its own
// veth pair to each of CLIENTS client namespaces; each client runs Debian wireguard-go as one peer of the
// server. The server is each entry of SERVERS in turn: wireguard-go first (the baseline), then
// tunnelbyte-node in each mode (offload on and off, batched and dgram UDP, one thread and two). Per server
// it measures ping RTT idle, one iperf3 TCP stream each way (with a ping under load alongside the first),
// then CLIENTS streams from CLIENTS peers at once. CPU is the server's whole process tree (every thread,
// crypto threads included, every child: utime + stime + waited-for children) per GB received by iperf3;
// tunnelbyte-node's GC counts come from its own metrics endpoint. Prints a markdown report;
// scripts/bench-tunnel writes it to bench-results/tunnel.md.
import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { NetnsHarness, waitUntil, type Namespace, type WireguardKeys } from '../test/nodes/netns.js';
import { iperf3, type IperfResult } from './iperf3.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
/**
 * Unmeasured seconds of one stream each way before the measured ones: the rows compare steady states, not
 * TCP's slow start or (tunnelbyte-node) V8 compiling the bulk path it has just met, a cost paid once.
 */
const WARM_SECONDS = Number(process.env.BENCH_WARM_SECONDS ?? 2);
const CLIENTS = 4;
const IDLE_PINGS = 100; // 0.05 s apart: the average is ping's own; the median is steadier on a shared machine
const LISTEN_PORT = { server: 51820, client: 51821 } as const;
const IPERF_PORT = 5201;
const METRICS_PORT = 9586;
const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ; `getconf CLK_TCK` is 100 on every Linux target we run on
const root = fileURLToPath(new URL('../..', import.meta.url)); // dist/scripts → repository root
const daemon = join(root, 'dist/nodes/main.js');

// Outer: server 10.200.<i>.1 ↔ client i 10.200.<i>.2 on veth pair i. Inner: server .1, client i .(i+2).
const outer = (client: number, side: 1 | 2) => `10.200.${client}.${side}`;
const INNER_SERVER = { v4: '10.241.0.1', v6: 'fd10:241::1' };
const innerClient = (client: number) => ({ v4: `10.241.0.${client + 2}`, v6: `fd10:241::${client + 2}` });
const SERVER_ADDRESSES = [`${INNER_SERVER.v4}/24`, `${INNER_SERVER.v6}/64`];

interface Star {
  server: Namespace;
  clients: Namespace[];
}

/** A WireGuard server running in the server namespace; the harness owns its processes. */
interface RunningServer {
  readonly pid: number;
  /** Its TUN, whose receive counters are what it delivered (the offered-load rows). */
  readonly interfaceName: string;
  /** tunnelbyte-node only: its Prometheus text. */
  metrics?(): Promise<string>;
  stop(): Promise<void>;
}

interface TunnelServer {
  readonly name: string;
  unavailable(): string | undefined;
  start(
    harness: NetnsHarness,
    star: Star,
    keys: WireguardKeys,
    peers: WireguardKeys[],
  ): Promise<RunningServer>;
}

/** [Interface] + one [Peer] per client, in wg(8) format; `addresses` adds wg-quick's Address line. */
function serverConfig(keys: WireguardKeys, peers: WireguardKeys[], addresses?: readonly string[]): string {
  const lines = ['[Interface]', `PrivateKey = ${keys.privateKey}`, `ListenPort = ${LISTEN_PORT.server}`];
  if (addresses) lines.push(`Address = ${addresses.join(', ')}`);
  peers.forEach((peer, i) => {
    const inner = innerClient(i);
    lines.push('', '[Peer]', `PublicKey = ${peer.publicKey}`, `AllowedIPs = ${inner.v4}/32, ${inner.v6}/128`);
  });
  return lines.join('\n') + '\n';
}

const wireguardGoServer: TunnelServer = {
  name: 'wireguard-go',
  unavailable: () => undefined,
  async start(harness, star, keys, peers) {
    const wg = await harness.wireguardGo(star.server, { logLevel: 'error' });
    await wg.setconf(serverConfig(keys, peers));
    await harness.configureInterface(star.server, wg.interfaceName, SERVER_ADDRESSES);
    return { pid: wg.process.pid, interfaceName: wg.interfaceName, stop: () => wg.stop() };
  },
};

// `tunnelbyte-node up --config <wg-quick file> --interface NAME` (docs/ARCHITECTURE.md "External interfaces").
function tunnelbyteNode(label: string, extraArgs: readonly string[]): TunnelServer {
  return {
    name: `tunnelbyte-node (${label})`,
    unavailable: () => (existsSync(daemon) ? undefined : `${daemon} not built`),
    async start(harness, star, keys, peers) {
      const interfaceName = harness.interfaceName();
      const config = join(harness.tempDir(), `${interfaceName}.conf`);
      writeFileSync(config, serverConfig(keys, peers, SERVER_ADDRESSES), { mode: 0o600 });
      const proc = star.server.spawn(process.execPath, [
        daemon,
        'up',
        '--config',
        config,
        '--interface',
        interfaceName,
        '--metrics',
        `127.0.0.1:${METRICS_PORT}`,
        ...extraArgs,
      ]);
      await waitUntil(
        () => existsSync(`/var/run/wireguard/${interfaceName}.sock`),
        proc,
        'tunnelbyte-node UAPI',
      );
      // The column must measure the mode it names: the start-up line says which TUN offload the kernel
      // granted, and whether the UDP socket sends with GSO (batched UDP with offloads only).
      await proc.waitFor(`${interfaceName} up`);
      const line = proc.output();
      const asked = (flag: string) =>
        extraArgs.includes(flag) ? extraArgs[extraArgs.indexOf(flag) + 1] : 'on';
      const granted = /, TUN offload (on|off)/.exec(line)?.[1];
      if (granted !== asked('--offload'))
        throw new Error(`asked for offload ${asked('--offload')}, got ${granted}`);
      const gso = /\(\w+, GSO (on|off)/.exec(line)?.[1];
      const gsoAsked = asked('--offload') === 'on' && asked('--batch') === 'on' ? 'on' : 'off';
      if (gso !== gsoAsked) throw new Error(`expected UDP GSO ${gsoAsked}, got ${gso}`);
      const scrape = `fetch('http://127.0.0.1:${METRICS_PORT}/metrics').then((r) => r.text()).then(console.log)`;
      return {
        pid: proc.pid,
        interfaceName,
        metrics: async () => (await star.server.exec(process.execPath, ['-e', scrape])).stdout,
        stop: () => proc.stop(),
      };
    },
  };
}

/** A tunnelbyte-node column, named after its flags. */
const nodeColumn = (udp: 'batched' | 'dgram', offload: 'on' | 'off', threads: number, handOver?: 'bulk') =>
  tunnelbyteNode(
    `${udp} UDP, offload ${offload}, ${threads} thread${threads > 1 ? 's' : ''}` +
      (handOver ? `, hand-over ${handOver}` : ''),
    [
      ...['--batch', udp === 'batched' ? 'on' : 'off', '--offload', offload, '--threads', String(threads)],
      ...(handOver ? ['--hand-over', handOver] : []),
    ],
  );

const ALL_SERVERS: readonly TunnelServer[] = [
  wireguardGoServer,
  nodeColumn('batched', 'on', 1),
  nodeColumn('batched', 'on', 2),
  nodeColumn('batched', 'on', 2, 'bulk'),
  nodeColumn('batched', 'off', 1),
  nodeColumn('batched', 'off', 2),
  nodeColumn('dgram', 'off', 1),
];

// BENCH_COLUMNS=<regular expression> keeps wireguard-go and the columns whose name matches it: a short run
// while working on one mode. The committed results come from the whole table.
const COLUMN_FILTER = process.env.BENCH_COLUMNS ? new RegExp(process.env.BENCH_COLUMNS) : undefined;
const SERVERS = ALL_SERVERS.filter(
  (server) => server === wireguardGoServer || COLUMN_FILTER === undefined || COLUMN_FILTER.test(server.name),
);

/** `/proc/<pid>/stat`, or with `path` another stat file (a thread's: /proc/<pid>/task/<tid>/stat). */
function statFields(pid: number, path = `/proc/${pid}/stat`): string[] | undefined {
  try {
    const stat = readFileSync(path, 'utf8');
    // Fields after the parenthesised command name: [1] ppid, [11..14] utime stime cutime cstime.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined; // exited while we looked
  }
}

/** CPU seconds of `pid` and every live descendant, each with all its threads and waited-for children. */
function treeCpuSeconds(pid: number): number {
  const children = new Map<number, number[]>();
  const ticks = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    const child = Number(entry);
    if (!Number.isInteger(child)) continue;
    const fields = statFields(child);
    if (!fields) continue;
    const parent = Number(fields[1]);
    children.set(parent, [...(children.get(parent) ?? []), child]);
    ticks.set(
      child,
      [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0),
    );
  }
  let total = 0;
  const pending = [pid];
  while (pending.length > 0) {
    const next = pending.pop()!;
    total += ticks.get(next) ?? 0;
    pending.push(...(children.get(next) ?? []));
  }
  return total / CLOCK_TICKS_PER_SECOND;
}

/**
 * CPU seconds of `pid`'s own threads by name: its main thread ('main'; tid = pid) and each crypto thread
 * (they name themselves crypto-N); the rest of the tree is `other` (treeCpuSeconds minus these).
 */
function threadCpuSeconds(pid: number): Map<string, number> {
  const seconds = new Map<string, number>();
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return seconds; // exited while we looked
  }
  for (const task of tasks) {
    let name: string;
    try {
      name = readFileSync(`/proc/${pid}/task/${task}/comm`, 'utf8').trim();
    } catch {
      continue;
    }
    // /proc/<pid>/stat sums every thread of the process: a thread's own is under task/.
    const fields = statFields(pid, `/proc/${pid}/task/${task}/stat`);
    const key = Number(task) === pid ? 'main' : name.startsWith('crypto-') ? name : undefined;
    if (fields === undefined || key === undefined) continue;
    seconds.set(
      key,
      (seconds.get(key) ?? 0) + (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND,
    );
  }
  return seconds;
}

/** The server's CPU over an interval: its whole tree, and by thread (threadCpuSeconds) with the rest as 'other'. */
interface CpuUse {
  cpuSeconds: number;
  threadSeconds: Map<string, number>;
}

interface CpuSnapshot {
  tree: number;
  threads: Map<string, number>;
}

const cpuSnapshot = (pid: number): CpuSnapshot => ({
  tree: treeCpuSeconds(pid),
  threads: threadCpuSeconds(pid),
});

function cpuSince(pid: number, before: CpuSnapshot): CpuUse {
  const cpuSeconds = treeCpuSeconds(pid) - before.tree;
  const threadSeconds = new Map<string, number>();
  for (const [name, seconds] of threadCpuSeconds(pid))
    threadSeconds.set(name, seconds - (before.threads.get(name) ?? 0));
  const named = [...threadSeconds.values()].reduce((sum, seconds) => sum + seconds, 0);
  threadSeconds.set('other', cpuSeconds - named);
  return { cpuSeconds, threadSeconds };
}

type Transfer = IperfResult & CpuUse;

/** iperf3 TCP from each of `clients` at once (one stream each); `reverse`: the server sends. */
async function iperf(
  star: Star,
  clients: number[],
  reverse: boolean,
  server: RunningServer,
  seconds = SECONDS,
): Promise<Transfer> {
  let before: CpuSnapshot | undefined;
  const result = await iperf3({
    server: star.server,
    address: INNER_SERVER.v4,
    streams: clients.map((i) => ({ client: star.clients[i]!, bind: innerClient(i).v4 })),
    seconds,
    reverse,
    firstPort: IPERF_PORT,
    onStart: () => {
      before = cpuSnapshot(server.pid);
    },
  });
  if (before === undefined) throw new Error('iperf3 never started');
  return { ...result, ...cpuSince(server.pid, before) };
}

// Offered load (scripts/offered-load.ts): CLIENTS peers whose packets were all sealed before they are sent,
// from client 0's namespace at a fixed rate, so the server can be loaded past one core by a sender that
// costs little. The inner packets go to a socket that is bound and never read: the kernel drops what its
// buffer does not take, without an ICMP error each.
const OFFERED_MBIT = Number(process.env.BENCH_OFFERED_MBIT ?? 3000);
const OFFERED_WARM_SECONDS = 1;
const OFFERED_SECONDS = 4;
const OFFERED_TAIL_SECONDS = 0.5; // sending goes on a little past the measured interval
// Sealing takes seconds (about 2 GB at 300 MB/s); well within the keys' 180 s of life (REJECT_AFTER_TIME).
const OFFERED_READY_MS = 90_000;
const DISCARD_PORT = 9;
const offeredLoadScript = join(root, 'dist/scripts/offered-load.js');
const SINK = [
  'import socket, sys, time',
  's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
  's.bind((sys.argv[1], int(sys.argv[2])))',
  "print('bound', flush=True)",
  'time.sleep(1e6)',
].join('\n');

interface OfferedLoad extends CpuUse {
  /** Inner IP bytes the server wrote to its TUN over the measured interval, and per second. */
  bytes: number;
  mbitPerSecond: number;
  seconds: number;
  /** WireGuard datagram bytes the sender handed the kernel per second, over its whole run. */
  offeredMbitPerSecond: number;
  /** Datagrams the sender's kernel refused (none, or the offered rate is not what it says). */
  refused: number;
}

/**
 * Bytes the kernel received from the server's TUN (the inner packets it delivered), read from the server's
 * own namespace (/proc/<pid>/net/dev), in the same instant as its CPU.
 */
function tunReceivedBytes(server: RunningServer): number {
  const stats = readFileSync(`/proc/${server.pid}/net/dev`, 'utf8');
  const line = stats.split('\n').find((l) => l.trimStart().startsWith(`${server.interfaceName}:`));
  if (line === undefined) throw new Error(`${server.interfaceName} is gone (did the server exit?)`);
  return Number(
    line
      .slice(line.indexOf(':') + 1)
      .trim()
      .split(/\s+/)[0],
  );
}

/** How the offered load's datagrams arrive (scripts/offered-load.ts): one by one, or as GRO would hand them. */
const ARRIVALS = ['single', 'coalesced'] as const;
type Arrival = (typeof ARRIVALS)[number];
const ARRIVAL_NAMES: Record<Arrival, string> = {
  single: 'one datagram per message',
  coalesced: 'sent with UDP GSO, as a NIC’s GRO hands them over',
};

async function offeredLoad(
  star: Star,
  server: RunningServer,
  serverKeys: WireguardKeys,
  clientKeys: WireguardKeys[],
  arrival: Arrival,
): Promise<OfferedLoad> {
  const sink = star.server.spawn('python3', ['-c', SINK, INNER_SERVER.v4, String(DISCARD_PORT)]);
  const setup = {
    server: { address: outer(0, 1), port: LISTEN_PORT.server, publicKey: serverKeys.publicKey },
    identities: clientKeys.map((keys, i) => ({ privateKey: keys.privateKey, source: innerClient(i).v4 })),
    destination: { address: INNER_SERVER.v4, port: DISCARD_PORT },
    mbitPerSecond: OFFERED_MBIT,
    seconds: OFFERED_WARM_SECONDS + OFFERED_SECONDS + OFFERED_TAIL_SECONDS,
    gso: arrival === 'coalesced',
  };
  const load = star.clients[0]!.spawn(process.execPath, [offeredLoadScript, JSON.stringify(setup)]);
  try {
    await sink.waitFor('bound');
    await load.waitFor(/^ready/m, OFFERED_READY_MS);
    process.kill(load.pid, 'SIGUSR1');
    await sleep(OFFERED_WARM_SECONDS * 1000);
    const [cpuBefore, bytesBefore, start] = [
      cpuSnapshot(server.pid),
      tunReceivedBytes(server),
      performance.now(),
    ];
    await sleep(OFFERED_SECONDS * 1000);
    const cpu = cpuSince(server.pid, cpuBefore);
    const bytes = tunReceivedBytes(server) - bytesBefore;
    const seconds = (performance.now() - start) / 1000;
    await load.waitFor(/^sent/m, (OFFERED_TAIL_SECONDS + 10) * 1000);
    const sent = /^sent \d+ refused (\d+) bytes (\d+) seconds ([\d.]+)/m.exec(load.output());
    if (!sent) throw new Error(`offered load: ${load.output().trim().split('\n').pop()}`);
    return {
      ...cpu,
      bytes,
      mbitPerSecond: (bytes * 8) / seconds / 1e6,
      seconds,
      offeredMbitPerSecond: (Number(sent[2]) * 8) / Number(sent[3]) / 1e6,
      refused: Number(sent[1]),
    };
  } finally {
    await load.stop();
    await sink.stop();
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Rtt {
  averageMs: number;
  medianMs: number;
}

/** Ping RTTs in ms from client 0 to the server's inner address: the average (ping's own) and the median. */
async function pingRtt(star: Star, count: number, intervalSeconds: number): Promise<Rtt> {
  const { stdout } = await star.clients[0]!.exec('ping', [
    ...['-c', String(count), '-i', String(intervalSeconds), '-W', '2', INNER_SERVER.v4],
  ]);
  const times = [...stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  const average = /= [\d.]+\/([\d.]+)\//.exec(stdout);
  if (!average || times.length === 0) throw new Error(`no RTT in ping output: ${stdout}`);
  return { averageMs: Number(average[1]), medianMs: median(times) };
}

// How long the server holds an idle ping, from the kernel's raw_syscalls:sys_exit tracepoint (perf record,
// no ptrace stop): from the receive call that returns the ping's datagram to the send call that returns
// with its reply, on any thread. The RTT rows also carry both clients' wireguard-go, the veths and each
// server's wake-up; this is the part the server's own code decides. Linux x86-64 syscall numbers.
const RESIDENCE_PINGS = 50;
const RECEIVE_CALLS = new Set([45, 47, 299]); // recvfrom, recvmsg, recvmmsg
const SEND_CALLS = new Set([44, 46, 307]); // sendto, sendmsg, sendmmsg
const PERF_READY_MS = 500;

/** The median residence in µs of RESIDENCE_PINGS idle pings, or undefined where perf cannot trace. */
async function pingResidence(harness: NetnsHarness, star: Star, pid: number): Promise<number | undefined> {
  if (process.arch !== 'x64') return undefined;
  const data = join(harness.tempDir(), 'syscalls.data');
  const perf = spawn('perf', ['record', '-q', '-e', 'raw_syscalls:sys_exit', '-p', String(pid), '-o', data], {
    stdio: 'ignore',
  });
  // perf record writes its file on SIGINT and then dies of it (or exits 0): either way the data is whole.
  const recorded = new Promise<boolean>((resolve) => {
    perf.on('exit', (code, signal) => resolve(code === 0 || signal === 'SIGINT'));
    perf.on('error', () => resolve(false));
  });
  await new Promise((resolve) => setTimeout(resolve, PERF_READY_MS));
  await pingRtt(star, RESIDENCE_PINGS, 0.05);
  perf.kill('SIGINT');
  if (!(await recorded)) return undefined;
  const script = promisify(execFile)('perf', ['script', '-i', data, '-F', 'time,trace'], {
    maxBuffer: 64 * 1024 * 1024,
  });
  const stdout = await script.then(({ stdout }) => stdout).catch(() => undefined); // a perf that cannot read its own file
  if (stdout === undefined) return undefined;
  const held: number[] = [];
  let received: number | undefined;
  for (const match of stdout.matchAll(/([\d.]+):\s+NR (\d+) = (-?\d+)/g)) {
    const [time, call, result] = [Number(match[1]), Number(match[2]), Number(match[3])];
    if (result <= 0) continue;
    if (received === undefined && RECEIVE_CALLS.has(call)) received = time;
    else if (received !== undefined && SEND_CALLS.has(call)) {
      held.push((time - received) * 1e6);
      received = undefined;
    }
  }
  return held.length === 0 ? undefined : median(held);
}

const median = (values: readonly number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!;

/** Minor and major GC counts from prom-client's default metrics. */
function gcCounts(text: string): { minor: number; major: number } {
  const count = (kind: string) =>
    Number(new RegExp(`gc_duration_seconds_count\\{kind="${kind}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
  return { minor: count('minor'), major: count('major') };
}

interface Measurement {
  server: string;
  pingIdle: Rtt;
  /** µs from the ping's receive call to its reply's send call, median (pingResidence). */
  residenceUs?: number;
  pingLoaded: Rtt;
  up: Transfer; // client → server, one stream
  down: Transfer; // server → client, one stream
  many: Transfer; // CLIENTS peers, one stream each, client → server
  offered: Record<Arrival, OfferedLoad>; // CLIENTS peers' pre-sealed packets, client → server
  gcPerGB?: { minor: number; major: number };
  /** tunnelbyte-node with UDP GSO: datagrams per GSO message it sent, over all three transfers. */
  datagramsPerGsoSend?: number;
}

/** A series' value in Prometheus text, 0 when absent (a counter not yet counted). */
function metricValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

const GSO_SERIES = ['messages', 'datagrams'].map(
  (what) => `tunnelbyte_node_udp_offload_${what}_total{direction="tx"}`,
);

async function buildStar(harness: NetnsHarness): Promise<Star> {
  const server = await harness.namespace('srv');
  const clients: Namespace[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const client = await harness.namespace(`c${i}`);
    await harness.veth(
      { ns: server, link: `veth${i}`, addresses: [`${outer(i, 1)}/24`] },
      { ns: client, link: 'veth0', addresses: [`${outer(i, 2)}/24`] },
    );
    clients.push(client);
  }
  return { server, clients };
}

async function measure(harness: NetnsHarness, server: TunnelServer): Promise<Measurement> {
  const star = await buildStar(harness);
  const serverKeys = await harness.generateKeys();
  const clientKeys: WireguardKeys[] = [];
  for (let i = 0; i < CLIENTS; i++) clientKeys.push(await harness.generateKeys());
  const running = await server.start(harness, star, serverKeys, clientKeys);
  const stops: Array<() => Promise<void>> = [];
  try {
    for (let i = 0; i < CLIENTS; i++) {
      const client = await harness.wireguardGo(star.clients[i]!, { logLevel: 'error' });
      stops.push(() => client.stop());
      const inner = innerClient(i);
      await client.setconf(
        [
          '[Interface]',
          `PrivateKey = ${clientKeys[i]!.privateKey}`,
          `ListenPort = ${LISTEN_PORT.client}`,
          '',
          '[Peer]',
          `PublicKey = ${serverKeys.publicKey}`,
          `AllowedIPs = ${INNER_SERVER.v4}/32, ${INNER_SERVER.v6}/128`,
          `Endpoint = ${outer(i, 1)}:${LISTEN_PORT.server}`,
          '',
        ].join('\n'),
      );
      await harness.configureInterface(star.clients[i]!, client.interfaceName, [
        `${inner.v4}/24`,
        `${inner.v6}/64`,
      ]);
      await star.clients[i]!.exec('ping', ['-c', '1', '-W', '5', INNER_SERVER.v4]); // handshake first
    }
    const pingIdle = await pingRtt(star, IDLE_PINGS, 0.05);
    const residenceUs = await pingResidence(harness, star, running.pid);
    if (WARM_SECONDS > 0)
      for (const reverse of [false, true]) await iperf(star, [0], reverse, running, WARM_SECONDS);
    // After the warm-up: the GC and GSO counts are of the measured transfers, whose bytes divide them.
    const metricsBefore = running.metrics && (await running.metrics());
    const loaded = pingRtt(star, SECONDS * 5 - 5, 0.2);
    const up = await iperf(star, [0], false, running);
    const pingLoaded = await loaded;
    const down = await iperf(star, [0], true, running);
    const many = await iperf(
      star,
      Array.from({ length: CLIENTS }, (_, i) => i),
      false,
      running,
    );
    // The GC and GSO counts are of the three transfers: read before the offered load.
    const metricsAfter = running.metrics && (await running.metrics());
    // The clients' wireguard-go go first: the offered load's identities are theirs, and the CPU is the server's.
    for (const stop of stops.splice(0)) await stop();
    const offered = {} as Record<Arrival, OfferedLoad>;
    for (const arrival of ARRIVALS)
      offered[arrival] = await offeredLoad(star, running, serverKeys, clientKeys, arrival);
    const measurement: Measurement = {
      server: server.name,
      pingIdle,
      residenceUs,
      pingLoaded,
      up,
      down,
      many,
      offered,
    };
    if (metricsBefore !== undefined && metricsAfter !== undefined) {
      const [gcBefore, gcAfter] = [gcCounts(metricsBefore), gcCounts(metricsAfter)];
      const gigabytes = (up.bytes + down.bytes + many.bytes) / 1e9;
      measurement.gcPerGB = {
        minor: (gcAfter.minor - gcBefore.minor) / gigabytes,
        major: (gcAfter.major - gcBefore.major) / gigabytes,
      };
      const [messages, datagrams] = GSO_SERIES.map(
        (series) => metricValue(metricsAfter, series) - metricValue(metricsBefore, series),
      );
      if (messages! > 0) measurement.datagramsPerGsoSend = datagrams! / messages!;
    }
    return measurement;
  } finally {
    // Stop every end before the next server runs, so it does not share the CPU with leftovers.
    for (const stop of stops) await stop();
    await running.stop();
  }
}

type Row = [what: string, goal: string, value: (m: Measurement) => number | undefined, digits: number];

const perGB = (t: CpuUse & { bytes: number }) => t.cpuSeconds / (t.bytes / 1e9);
const ROWS: Row[] = [
  ['iperf3 TCP one stream client→server, Mbit/s', '≥ 1.3×', (m) => m.up.mbitPerSecond, 0],
  ['iperf3 TCP one stream server→client, Mbit/s', '≥ 1.3×', (m) => m.down.mbitPerSecond, 0],
  ['server CPU s/GB, client→server', '≤ 0.6×', (m) => perGB(m.up), 2],
  ['server CPU s/GB, server→client', '≤ 0.6×', (m) => perGB(m.down), 2],
  [`iperf3 TCP ${CLIENTS} peers × 1 stream, Mbit/s`, '≥ 1.3×', (m) => m.many.mbitPerSecond, 0],
  [`server CPU s/GB, ${CLIENTS} peers`, '', (m) => perGB(m.many), 2],
  [`cores the server used, ${CLIENTS} peers (CPU s / wall s)`, 'both', (m) => m.many.cpuSeconds / SECONDS, 2],
  ...ARRIVALS.flatMap((arrival): Row[] => [
    [
      `offered load, ${ARRIVAL_NAMES[arrival]}: offered Mbit/s (what the sender sent, over its run)`,
      '',
      (m) => m.offered[arrival].offeredMbitPerSecond,
      0,
    ],
    [
      `offered load, ${ARRIVAL_NAMES[arrival]}: delivered Mbit/s`,
      '',
      (m) => m.offered[arrival].mbitPerSecond,
      0,
    ],
    [
      `cores the server used, offered load, ${ARRIVAL_NAMES[arrival]}`,
      'both',
      (m) => m.offered[arrival].cpuSeconds / m.offered[arrival].seconds,
      2,
    ],
    [
      `server CPU s/GB delivered, offered load, ${ARRIVAL_NAMES[arrival]}`,
      '',
      (m) => perGB(m.offered[arrival]),
      2,
    ],
  ]),
  ['ping RTT idle, average ms', '≤ 1.2×', (m) => m.pingIdle.averageMs, 3],
  ['ping RTT idle, median ms', '≤ 1.2×', (m) => m.pingIdle.medianMs, 3],
  [
    'idle ping held by the server, median µs (its receive call to the reply’s send call)',
    '≤ 1.2×',
    (m) => m.residenceUs,
    0,
  ],
  ['ping RTT under load (one stream), average ms', '≤ 1.2×', (m) => m.pingLoaded.averageMs, 3],
  ['ping RTT under load (one stream), median ms', '≤ 1.2×', (m) => m.pingLoaded.medianMs, 3],
  ['minor GCs per GB (tunnelbyte-node metrics)', 'none', (m) => m.gcPerGB?.minor, 1],
  ['major GCs per GB (tunnelbyte-node metrics)', 'none', (m) => m.gcPerGB?.major, 2],
  ['UDP datagrams per GSO send (tunnelbyte-node metrics)', '', (m) => m.datagramsPerGsoSend, 1],
];

function threadLine(m: Measurement): string {
  const transfer = (what: string, t: CpuUse) =>
    `${what} ${[...t.threadSeconds].map(([name, seconds]) => `${name} ${seconds.toFixed(2)}`).join(', ')}`;
  return [
    transfer('client→server:', m.up),
    transfer('server→client:', m.down),
    transfer(`${CLIENTS} peers:`, m.many),
    ...ARRIVALS.map((arrival) => transfer(`offered load (${arrival}):`, m.offered[arrival])),
  ].join('; ');
}

function report(
  measurements: Measurement[],
  notes: string[],
  loadBefore: number[],
  loadAfter: number[],
): string {
  const baseline = measurements.find((m) => m.server === wireguardGoServer.name);
  const others = measurements.filter((m) => m !== baseline);
  const header = ['what', 'goal', wireguardGoServer.name, ...others.flatMap((m) => [m.server, 'ratio'])];
  const lines = ROWS.map(([what, goal, value, digits]) => {
    const base = baseline && value(baseline);
    const cells = [what, goal, base === undefined ? '-' : base.toFixed(digits)];
    for (const m of others) {
      const v = value(m);
      cells.push(v === undefined ? '-' : v.toFixed(digits));
      cells.push(v === undefined || !base ? '-' : (v / base).toFixed(2));
    }
    return `| ${cells.join(' | ')} |`;
  });
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(', ');
  const allNotes = [
    ...notes,
    ...measurements.flatMap((m) =>
      ARRIVALS.filter((arrival) => m.offered[arrival].refused > 0).map(
        (arrival) =>
          `${m.server}: offered load (${arrival}): the sender's kernel refused ${m.offered[arrival].refused} datagrams`,
      ),
    ),
  ];
  return [
    '# Tunnel throughput',
    '',
    `Command: \`bash scripts/bench-tunnel\` (BENCH_SECONDS=${SECONDS}, BENCH_WARM_SECONDS=${WARM_SECONDS}). A server namespace joined by its own veth`,
    `pair to each of ${CLIENTS} client namespaces, each client one Debian wireguard-go peer of the server. The`,
    'server runs each column in turn; every ratio is against the wireguard-go column of this same run. iperf3 TCP',
    `over inner IPv4; the one-stream rows use client 0, and client 0 pings the server (${IDLE_PINGS} pings idle, then`,
    'every 0.2 s during the client→server stream; average and median). Between the idle pings and the measured',
    `transfers, ${WARM_SECONDS} s of one stream each way are not measured: the rows compare steady states, without TCP's`,
    'slow start or, for tunnelbyte-node, V8 compiling the bulk path it has just met (a cost paid once per process).',
    'CPU is the server process tree (every thread and child,',
    'utime + stime) per GB received by iperf3. GC counts come from the node’s Prometheus metrics',
    '(prom-client default metrics) over all three transfers. Handshakes per second and AEAD speed are in',
    'bench-results/crypto.md (scripts/bench-crypto). Offload on: the TUN opened with a vnet header and',
    'TSO4/TSO6/checksum offloads, 64 KiB TCP super-segments split and coalesced in nodes/offload.ts, and with',
    'batched UDP, UDP GSO (same-size datagrams to one peer in one sendmmsg message) and GRO on the socket (these',
    'veths do no GRO, so nothing arrives coalesced); off: one packet per TUN read and write, one datagram per',
    'UDP message. 1 thread: everything on the node’s main thread; 2 threads: two crypto threads (nodes/threads),',
    'the main thread keeping the sockets, the TUN and the engine; with the default hand-over (auto) bulk',
    'traffic goes to them only while the main thread is CPU-bound (nodes/threads/load.ts), with hand-over bulk',
    'at every bulk turn (transport messages sealed and opened in the threads) whatever the load.',
    'The cores row counts every thread of the node. The held row times what the server itself does with an',
    `idle ping (${RESIDENCE_PINGS} more pings, traced by \`perf record -e raw_syscalls:sys_exit\`): from the receive call that`,
    'returns its datagram to the send call that returns with the reply, on any thread; the RTT rows add both',
    'clients’ wireguard-go, the veths and the wake-ups. "-" where perf could not trace.',
    `The offered-load rows (scripts/offered-load.ts) load the server past what real peers can here: ${CLIENTS} wireguard-go`,
    'clients and their iperf3 cost about as much CPU as the server, so above no server gets much more than one',
    `core. After the clients have stopped, one process in client 0's namespace completes a real handshake as each`,
    `of the ${CLIENTS} peers, seals every packet of the run before it starts (1420-byte IPv4 UDP, in counter order per`,
    `peer), then only sends them, ${OFFERED_MBIT} Mbit/s of WireGuard datagrams: one per sendmmsg message, as these veths`,
    'deliver them, or UDP GSO messages of up to 64 KiB that the veth carries whole, which a socket with UDP GRO on',
    '(tunnelbyte-node’s) receives as one batch, as a NIC’s GRO hands them over, and which the kernel cuts into',
    'datagrams for any other (wireguard-go’s). The server opens them and writes them to its TUN, towards a socket',
    'that is bound and never read; delivered is what its TUN took (the interface’s receive bytes), over',
    `${OFFERED_SECONDS} s after ${OFFERED_WARM_SECONDS} s unmeasured; offered is what the sender handed its kernel over its whole run (less than`,
    `the rate if it fell behind). The sender and the kernel’s receive work share the same ${cpus().length} cores.`,
    '',
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, node ${process.version}; load average`,
    `before ${load(loadBefore)}, after ${load(loadAfter)} (other jobs share the machine: compare ratios,`,
    `not absolute numbers); ${new Date().toISOString()}.`,
    '',
    `| ${header.join(' | ')} |`,
    `| ${header.map((_, i) => (i < 2 ? '---' : '---:')).join(' | ')} |`,
    ...lines,
    '',
    'Server CPU seconds by thread over each transfer (main: the thread that owns the sockets; crypto-N: the',
    'crypto threads; other: every other thread and child, the handshake workers and V8’s and libuv’s included):',
    '',
    ...measurements.map((m) => `- ${m.server}: ${threadLine(m)}`),
    ...(allNotes.length ? ['', ...allNotes.map((note) => `- ${note}`)] : []),
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const loadBefore = loadavg();
  const harness = new NetnsHarness();
  // Signals do not run 'exit' handlers by themselves; exiting does, and the harness cleans up there.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  const measurements: Measurement[] = [];
  const notes: string[] = [];
  try {
    for (const server of SERVERS) {
      const reason = server.unavailable();
      if (reason) {
        notes.push(`${server.name}: not run (${reason})`);
        continue;
      }
      try {
        measurements.push(await measure(harness, server));
      } catch (error) {
        notes.push(`${server.name}: failed (${String(error).split('\n')[0]})`);
      }
    }
  } finally {
    await harness.cleanup();
  }
  process.stdout.write(report(measurements, notes, loadBefore, loadavg()));
}

await main();
