// Allocation benchmark (not a test): heap bytes allocated per packet on the node's whole data path, device,
// UDP socket, offload and crypto threads included, in steady state. Two Devices in this process carry a TCP
// bulk flow one way and its ACKs the other over real sockets on loopback (batched or dgram, as the node's);
// each Device's interface is the node's TUN code (nodes/tun/index.ts, with its GSO split and GRO coalescing)
// over an addon in memory that hands it the frames a TUN read would and takes its writes. V8's sampling heap
// profiler (node:inspector, objects collected by either GC included) counts what the steady state allocates,
// by call site; GCs are counted alongside. Prints a markdown report; scripts/bench-alloc writes it to
// bench-results/alloc.md. BENCH_COLUMNS (a regex over column names) runs some columns only.
import { randomBytes } from 'node:crypto';
import { Session } from 'node:inspector/promises';
import { cpus, loadavg } from 'node:os';

import { Tunnel } from '../crypto/tunnel.js';
import { nodeEngineOptions } from '../nodes/daemon.js';
import { Device } from '../nodes/device.js';
import { NodeMetrics } from '../nodes/metrics.js';
import { GsoSplitter, VNET_HEADER_SIZE } from '../nodes/offload.js';
import { CryptoThreads } from '../nodes/threads/pool.js';
import { openTun, type TunAddon } from '../nodes/tun/index.js';
import { openUdp } from '../nodes/udp.js';
import { HandFedReader, until } from '../nodes/warmup.js';
import { countGcs } from './gc-count.js';

const MTU = 1420;
const MSS = MTU - 40; // IPv4 + TCP headers
const SEGMENTS = 44; // one TSO super-segment's worth per read: 44 × 1380 B
const ACKS = 8; // the other way, per turn
const WARM_TURNS = 1000;
const TURNS = Number(process.env.BENCH_TURNS ?? 2000);
const SAMPLING_BYTES = 256;
const STALL_MS = 20;
const HANDSHAKE_MS = 10_000;
const STALLS_MAX = 100; // a column losing this many turns stops there: its numbers are then of fewer turns

interface Column {
  readonly name: string;
  readonly batched: boolean;
  readonly offload: boolean;
  readonly threads: number;
}

const COLUMNS: Column[] = [
  { name: 'batched, offload on, 1 thread', batched: true, offload: true, threads: 1 },
  { name: 'batched, offload off, 1 thread', batched: true, offload: false, threads: 1 },
  { name: 'batched, offload on, 2 threads', batched: true, offload: true, threads: 2 },
  { name: 'batched, offload off, 2 threads', batched: true, offload: false, threads: 2 },
  { name: 'dgram, 1 thread', batched: false, offload: false, threads: 1 },
];

/** An IPv4 TCP packet with `payload` bytes (zeros), ACK set; checksums are left to the split. */
function tcp(source: number, destination: number, payload: number): Uint8Array {
  const packet = new Uint8Array(40 + payload);
  packet.set([0x45, 0, (40 + payload) >> 8, (40 + payload) & 0xff, 0, 0, 0x40, 0, 64, 6], 0);
  packet.set([10, 0, 0, source, 10, 0, 0, destination], 12);
  packet.set([0x1f, 0x90, 0xc0, 0x01, 0, 0, 0x03, 0xe8], 20); // ports, sequence 1000
  packet.set([0x50, 0x10, 0xff, 0xff], 32); // header length, ACK, window
  return packet;
}

/** A TSO frame as the kernel reads it out: vnet header (GSO TCPv4, NEEDS_CSUM), then the super-segment. */
function superSegmentFrame(): Uint8Array {
  const packet = tcp(1, 2, SEGMENTS * MSS);
  const frame = new Uint8Array(VNET_HEADER_SIZE + packet.length);
  frame.set([1, 1, 40, 0, MSS & 0xff, MSS >> 8, 20, 0, 16, 0], 0);
  frame.set(packet, VNET_HEADER_SIZE);
  return frame;
}

/** A TUN addon in memory: read() hands frames over as the C reader does; writes are taken whole. */
class MemoryTun {
  private readonly frames = new HandFedReader();
  readonly addon: TunAddon = {
    open: (name) => ({ fd: -1, name }),
    setOffload: () => 0,
    writeMany: (_fd, packets, start) => packets.length - start,
    close: () => undefined,
    startReading: this.frames.startReading,
    readFrames: this.frames.readFrames,
  };

  read(frames: readonly Uint8Array[]): void {
    this.frames.read(frames);
  }
}

interface Side {
  readonly tun: MemoryTun;
  device: Device;
  threads: CryptoThreads | undefined;
  delivered: number;
}

async function startSide(column: Column): Promise<Side> {
  const privateKey = randomBytes(32);
  const threads =
    column.threads > 1
      ? await CryptoThreads.start(column.threads, MTU, (line) => console.error(line), !column.batched, 'bulk')
      : undefined;
  const tunnel = new Tunnel({
    privateKey,
    ...nodeEngineOptions(MTU, column.batched),
    ...(threads && { transportCrypto: threads }),
  });
  const memory = new MemoryTun();
  const tun = openTun('bench%d', { offload: column.offload }, memory.addon);
  const side = { tun: memory, threads, delivered: 0 } as Side;
  side.device = await Device.start({
    tunnel,
    privateKey,
    metrics: new NodeMetrics(tunnel),
    packets: {
      onPackets: (listener) => tun.onPackets(listener),
      writeMany: (packets) => {
        side.delivered += packets.length;
        return tun.writeMany(packets);
      },
      close: () => tun.close(),
    },
    openUdp: (options) =>
      openUdp({ ...options, host: '127.0.0.1', batched: column.batched, offload: column.offload }),
    listenPort: 0,
    ...(threads && { threads }),
  });
  return side;
}

/**
 * Runs `turns` turns: a super-segment (or its segments) read on one side, ACKS ACKs on the other, the next
 * turn once both arrived (polled from the event loop; a turn that lost something goes on after STALL_MS).
 * Returns how many turns stalled.
 */
function run(sides: readonly [Side, Side], batches: readonly [Uint8Array[], Uint8Array[]], turns: number) {
  const perTurn = [SEGMENTS, ACKS]; // packets the other side delivers per turn
  return new Promise<number>((resolve) => {
    let done = 0;
    let stalls = 0;
    let started = 0;
    const expected = [0, 0];
    const poll = () => {
      const arrived = sides[1].delivered >= expected[0]! && sides[0].delivered >= expected[1]!;
      if (!arrived && performance.now() - started < STALL_MS) {
        setImmediate(poll);
        return;
      }
      if (!arrived) stalls++;
      if (done === turns || stalls > STALLS_MAX) {
        resolve(stalls);
        return;
      }
      done++;
      expected[0] = sides[1].delivered + perTurn[0]!;
      expected[1] = sides[0].delivered + perTurn[1]!;
      started = performance.now();
      sides[0].tun.read(batches[0]);
      sides[1].tun.read(batches[1]);
      setImmediate(poll);
    };
    poll();
  });
}

/**
 * Both sides read at once, so their initiations cross (docs/WIREGUARD.md §6), until each delivered (at most
 * HANDSHAKE_MS): the session is up.
 */
async function handshake(sides: readonly [Side, Side], batches: readonly [Uint8Array[], Uint8Array[]]) {
  sides[0].tun.read(batches[0]);
  sides[1].tun.read(batches[1]);
  await until(() => sides[0].delivered > 0 && sides[1].delivered > 0, HANDSHAKE_MS);
}

interface Site {
  readonly bytes: number;
  readonly stack: string;
}

interface Measurement {
  packets: number;
  dataPathBytes: number;
  outsideBytes: number;
  sites: Site[];
  minorGCs: number;
  majorGCs: number;
  stalls: number;
}

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

const PROJECT_CODE = /\/dist\/(nodes|crypto)\//;

/** Each sampled allocation by its innermost frames; data path: some frame of the stack is the node's code. */
function attribute(head: ProfileNode): Pick<Measurement, 'dataPathBytes' | 'outsideBytes' | 'sites'> {
  const bySite = new Map<string, number>();
  let dataPathBytes = 0;
  let outsideBytes = 0;
  const walk = (node: ProfileNode, stack: string[], project: boolean) => {
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url.replace(/^.*\/dist\//, '').replace(/^node:/, '');
    const frame = `${functionName || '(anonymous)'} (${file || 'native'}${url ? `:${lineNumber + 1}` : ''})`;
    const inProject = project || PROJECT_CODE.test(url);
    const frames = [...stack, frame];
    if (node.selfSize > 0) {
      if (inProject) {
        dataPathBytes += node.selfSize;
        const site = frames.slice(-3).reverse().join(' < ');
        bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
      } else outsideBytes += node.selfSize;
    }
    for (const child of node.children) walk(child, frames, inProject);
  };
  walk(head, [], false);
  const sites = [...bySite].map(([stack, bytes]) => ({ stack, bytes })).sort((a, b) => b.bytes - a.bytes);
  return { dataPathBytes, outsideBytes, sites };
}

async function measure(column: Column): Promise<Measurement> {
  const sides = [await startSide(column), await startSide(column)] as const;
  const inner = ['10.0.0.1/32', '10.0.0.2/32'];
  for (const i of [0, 1] as const) {
    const other = sides[1 - i]!;
    const endpoint = { address: '127.0.0.1', port: other.device.listenPort };
    sides[i].device.upsertPeer(other.device.publicKey()!, { allowedIps: [inner[1 - i]!], endpoint });
  }
  // Offload on: the kernel's TSO frame and vnet-headed ACKs; off: the segments as the split makes them.
  const frame = superSegmentFrame();
  const segments: Uint8Array[] = [];
  new GsoSplitter().split([frame.slice()], segments);
  const ack = tcp(2, 1, 0);
  const ackFrame = new Uint8Array(VNET_HEADER_SIZE + ack.length);
  ackFrame.set(ack, VNET_HEADER_SIZE);
  const batches = [
    column.offload ? [frame] : segments.map((segment) => segment.slice()),
    Array.from({ length: ACKS }, () => (column.offload ? ackFrame : ack)),
  ] as const;

  await handshake(sides, batches);
  await run(sides, batches, WARM_TURNS); // V8 optimizes the path
  const counting = countGcs();
  const session = new Session();
  session.connect();
  const before = sides[0].delivered + sides[1].delivered;
  await session.post('HeapProfiler.startSampling', {
    samplingInterval: SAMPLING_BYTES,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  const stalls = await run(sides, batches, TURNS);
  const { profile } = (await session.post('HeapProfiler.stopSampling')) as { profile: { head: ProfileNode } };
  const packets = sides[0].delivered + sides[1].delivered - before;
  counting.stop();
  session.disconnect();
  for (const side of sides) {
    side.device.removeAllPeers();
    await side.device.close();
    await side.threads?.close();
  }
  return {
    packets,
    ...attribute(profile.head),
    minorGCs: counting.gcs.minor,
    majorGCs: counting.gcs.major,
    stalls,
  };
}

const filter = process.env.BENCH_COLUMNS ? new RegExp(process.env.BENCH_COLUMNS) : undefined;
const columns = COLUMNS.filter((column) => filter === undefined || filter.test(column.name));
const results: Array<[Column, Measurement]> = [];
for (const column of columns) {
  const started = performance.now();
  results.push([column, await measure(column)]);
  console.error(`${column.name}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

// A column whose loopback carried nothing measured nothing: said so, not divided by zero.
const perPacket = (bytes: number, m: Measurement) =>
  m.packets === 0 ? 'no packet delivered' : (bytes / m.packets).toFixed(1);
const gigabytes = (m: Measurement) => (m.packets * MTU) / 1e9;
const lines = [
  '# Allocation on the data path',
  '',
  `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}, load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')} at the end.`,
  '',
  `Two Devices in one process over loopback: per turn, one side reads a ${SEGMENTS}-segment TCP super-segment`,
  `(offload on: one TSO frame; off: its ${SEGMENTS} segments) and the other ${ACKS} ACKs; ${TURNS} turns after`,
  `${WARM_TURNS} of warm-up. 2 threads: each Device seals and opens in two crypto threads, handing every bulk`,
  "turn to them (`--hand-over bulk`: the rings' path, which `auto` takes only while the main thread is CPU-bound).",
  `Heap bytes per packet delivered (both directions) from V8's sampling heap profiler`,
  `(every ${SAMPLING_BYTES} B on average, collected objects included), split into what the node's code`,
  '(nodes/, crypto/, and what Node allocates for it) allocated and what was allocated with none of its frames',
  'on the stack ("no node frame"): the benchmark’s own loop (a setImmediate per poll), and Node’s and V8’s work',
  'before a callback reaches the node (dgram’s Buffer and address object per received datagram, the promise',
  'Atomics.waitAsync resolves for the crypto threads). Typed-array contents above 64 bytes live outside the',
  'heap and are not counted. GCs: the whole process, both Devices, during the measured turns.',
  '',
  '| column | packets | data path heap B/packet | no node frame, B/packet | minor GCs | major GCs | per GB (minor) |',
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...results.map(
    ([column, m]) =>
      `| ${column.name} | ${m.packets} | ${perPacket(m.dataPathBytes, m)} | ${perPacket(m.outsideBytes, m)} | ` +
      `${m.minorGCs} | ${m.majorGCs} | ${m.packets === 0 ? '-' : (m.minorGCs / gigabytes(m)).toFixed(1)} |`,
  ),
  '',
  'Where the data path still allocates (sampled bytes per packet, innermost frame first):',
  '',
  ...results.flatMap(([column, m]) => [
    `- ${column.name}${m.stalls > 0 ? ` (${m.stalls} turns stalled)` : ''}:`,
    ...m.sites.slice(0, 5).map((site) => `  - ${perPacket(site.bytes, m)} B: ${site.stack}`),
  ]),
  '',
];
console.log(lines.join('\n'));
process.exit(0); // the metrics' default collectors keep timers
