// Tunnel benchmark (not a test): iperf3 TCP through the two-namespace topology of test/nodes/netns.ts.
// The client namespace (b) always runs Debian wireguard-go; the server namespace (a, the exit side) runs
// each entry of SERVERS in turn: wireguard-go first (the baseline), then tunnelbyte-node when built.
// For each server and direction it prints Mbit/s, the ratio to the baseline, and the server process's
// CPU time per GB moved (utime + stime from /proc/<pid>/stat, all threads). Prints a markdown report;
// scripts/bench-tunnel writes it to bench-results/tunnel.md. Traffic stays inside namespaces it made.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  endpointString,
  NetnsHarness,
  PAIR_ADDRESSES,
  TUNNEL_ADDRESSES,
  TUNNEL_PREFIX,
  waitUntil,
  wgConfig,
  type Namespace,
  type WireguardKeys,
} from '../test/nodes/netns.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const LISTEN_PORT = { server: 51820, client: 51821 } as const;
const IPERF_PORT = 5201;
const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ; `getconf CLK_TCK` is 100 on every Linux target we run on
const root = fileURLToPath(new URL('../..', import.meta.url)); // dist/scripts → repository root
const daemon = join(root, 'dist/nodes/main.js');

/** A WireGuard server running in namespace `a`; the harness owns its process. */
interface RunningServer {
  readonly pid: number;
  stop(): Promise<void>;
}

interface TunnelServer {
  readonly name: string;
  /** Why it cannot run here, or undefined if it can. */
  unavailable(): string | undefined;
  start(
    harness: NetnsHarness,
    ns: Namespace,
    keys: WireguardKeys,
    clientPublicKey: string,
  ): Promise<RunningServer>;
}

const SERVER_ADDRESSES = [
  `${TUNNEL_ADDRESSES.a.v4}/${TUNNEL_PREFIX.v4}`,
  `${TUNNEL_ADDRESSES.a.v6}/${TUNNEL_PREFIX.v6}`,
];
const CLIENT_ALLOWED = [`${TUNNEL_ADDRESSES.b.v4}/32`, `${TUNNEL_ADDRESSES.b.v6}/128`];

const wireguardGoServer: TunnelServer = {
  name: 'wireguard-go',
  unavailable: () => undefined,
  async start(harness, ns, keys, clientPublicKey) {
    const wg = await harness.wireguardGo(ns, { logLevel: 'error' });
    await wg.setconf(
      wgConfig({
        privateKey: keys.privateKey,
        listenPort: LISTEN_PORT.server,
        peer: { publicKey: clientPublicKey, allowedIps: CLIENT_ALLOWED },
      }),
    );
    await harness.configureInterface(ns, wg.interfaceName, SERVER_ADDRESSES);
    return { pid: wg.process.pid, stop: () => wg.stop() };
  },
};

// docs/ARCHITECTURE.md "External interfaces": `tunnelbyte-node up --config <wg-quick file> --interface NAME`
// creates the interface, assigns Address, brings it up and serves UAPI at /var/run/wireguard/NAME.sock.
const tunnelbyteNodeServer: TunnelServer = {
  name: 'tunnelbyte-node',
  unavailable: () => (existsSync(daemon) ? undefined : `${daemon} not built`),
  async start(harness, ns, keys, clientPublicKey) {
    const interfaceName = harness.interfaceName();
    const config = join(harness.tempDir(), `${interfaceName}.conf`);
    writeFileSync(
      config,
      wgConfig({
        privateKey: keys.privateKey,
        listenPort: LISTEN_PORT.server,
        addresses: SERVER_ADDRESSES,
        peer: { publicKey: clientPublicKey, allowedIps: CLIENT_ALLOWED },
      }),
      { mode: 0o600 },
    );
    const proc = ns.spawn(process.execPath, [daemon, 'up', '--config', config, '--interface', interfaceName]);
    await waitUntil(
      () => existsSync(`/var/run/wireguard/${interfaceName}.sock`),
      proc,
      'tunnelbyte-node UAPI',
    );
    return { pid: proc.pid, stop: () => proc.stop() };
  },
};

const SERVERS: readonly TunnelServer[] = [wireguardGoServer, tunnelbyteNodeServer];

function cpuSeconds(pid: number): number {
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15 of the line.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

type Direction = 'client→server' | 'server→client';
interface Measurement {
  server: string;
  direction: Direction;
  mbitPerSecond: number;
  cpuSecondsPerGB: number;
}

interface IperfResult {
  end: { sum_received: { bytes: number; bits_per_second: number } };
}

async function iperf(client: Namespace, server: Namespace, direction: Direction) {
  const listener = server.spawn('iperf3', [
    '-s',
    '-1',
    '-B',
    TUNNEL_ADDRESSES.a.v4,
    '-p',
    String(IPERF_PORT),
    '--forceflush',
  ]);
  await listener.waitFor('Server listening');
  const reverse = direction === 'server→client' ? ['-R'] : [];
  const args = [
    '-c',
    TUNNEL_ADDRESSES.a.v4,
    '-p',
    String(IPERF_PORT),
    '-t',
    String(SECONDS),
    '-J',
    ...reverse,
  ];
  // `timeout` bounds a wedged tunnel: iperf3's own -t cannot end a connect that never completes.
  const { stdout } = await client.exec('timeout', [String(SECONDS + 20), 'iperf3', ...args]);
  await listener.exited;
  const result = JSON.parse(stdout) as IperfResult;
  return { bytes: result.end.sum_received.bytes, bitsPerSecond: result.end.sum_received.bits_per_second };
}

async function measure(harness: NetnsHarness, server: TunnelServer): Promise<Measurement[]> {
  const { a, b } = await harness.pair();
  const serverKeys = await harness.generateKeys();
  const clientKeys = await harness.generateKeys();
  const running = await server.start(harness, a, serverKeys, clientKeys.publicKey);
  const client = await harness.wireguardGo(b, { logLevel: 'error' });
  try {
    await client.setconf(
      wgConfig({
        privateKey: clientKeys.privateKey,
        listenPort: LISTEN_PORT.client,
        peer: {
          publicKey: serverKeys.publicKey,
          allowedIps: [`${TUNNEL_ADDRESSES.a.v4}/32`, `${TUNNEL_ADDRESSES.a.v6}/128`],
          endpoint: endpointString(PAIR_ADDRESSES.a.v4, LISTEN_PORT.server),
        },
      }),
    );
    await harness.configureInterface(b, client.interfaceName, [
      `${TUNNEL_ADDRESSES.b.v4}/${TUNNEL_PREFIX.v4}`,
      `${TUNNEL_ADDRESSES.b.v6}/${TUNNEL_PREFIX.v6}`,
    ]);
    await b.exec('ping', ['-c', '1', '-W', '5', TUNNEL_ADDRESSES.a.v4]); // handshake outside the measurement

    const results: Measurement[] = [];
    for (const direction of ['client→server', 'server→client'] as const) {
      const before = cpuSeconds(running.pid);
      const { bytes, bitsPerSecond } = await iperf(b, a, direction);
      const cpu = cpuSeconds(running.pid) - before;
      results.push({
        server: server.name,
        direction,
        mbitPerSecond: bitsPerSecond / 1e6,
        cpuSecondsPerGB: cpu / (bytes / 1e9),
      });
    }
    return results;
  } finally {
    // Stop both ends before the next server runs, so it does not share the CPU with leftovers.
    await client.stop();
    await running.stop();
  }
}

function report(measurements: Measurement[], notes: string[], loadBefore: number[]): string {
  const baseline = (direction: Direction) =>
    measurements.find((m) => m.server === wireguardGoServer.name && m.direction === direction)?.mbitPerSecond;
  const rows = measurements.map((m) => {
    const base = baseline(m.direction);
    const ratio = base ? (m.mbitPerSecond / base).toFixed(2) : '-';
    return `| ${m.server} | ${m.direction} | ${m.mbitPerSecond.toFixed(0)} | ${ratio} | ${m.cpuSecondsPerGB.toFixed(2)} |`;
  });
  return [
    '# Tunnel throughput',
    '',
    `iperf3 TCP, ${SECONDS} s per run, one stream, inner IPv4, through a veth pair between two network`,
    'namespaces. The client namespace runs Debian wireguard-go; the server column names what runs on the',
    'exit side. Ratio is against wireguard-go as the server in the same run and direction. CPU is the',
    'server process alone (utime + stime, all threads) per GB received by iperf3.',
    '',
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}; load average before the run ${loadBefore
      .map((l) => l.toFixed(2))
      .join(', ')}; ${new Date().toISOString()}.`,
    '',
    '| server | direction | Mbit/s | ratio | server CPU s/GB |',
    '| ------ | --------- | -----: | ----: | --------------: |',
    ...rows,
    ...(notes.length ? ['', ...notes.map((note) => `- ${note}`)] : []),
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
        measurements.push(...(await measure(harness, server)));
      } catch (error) {
        notes.push(`${server.name}: failed (${String(error).split('\n')[0]})`);
      }
    }
  } finally {
    await harness.cleanup();
  }
  process.stdout.write(report(measurements, notes, loadBefore));
}

await main();
