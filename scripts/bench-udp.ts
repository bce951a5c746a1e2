// UDP send-path benchmark (not a test): the batched socket (nodes/udp.ts) sending WireGuard-sized datagrams
// on loopback, one datagram per sendmmsg message (offload off) against UDP GSO (offload on), in interleaved
// rounds of one run. Each event-loop turn queues bursts of BURST same-size datagrams to one endpoint (what
// one 64 KiB TCP super-segment becomes after splitting and encryption) and lets the socket flush them at the
// end of the turn, as the node does. The receiver is a socket nobody reads: the kernel drops what overflows
// its buffer, the same for both modes. CPU is this process's user + system time, which includes the
// loopback delivery the kernel runs in the sender's context, per GB handed to send(). Prints a markdown
// report; scripts/bench-udp writes it to bench-results/udp.md.
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';

import { noUdpOffloadCounts, openUdp, type UdpOffloadCounts, type UdpTransport } from '../nodes/udp.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const ROUNDS = 4;
const DATAGRAM = 1452; // a 1420-byte inner packet in a WireGuard data message
const BURST = 45; // 45 × 1452 B: one 64 KiB TCP super-segment's worth
const BURSTS_PER_TURN = 8;

interface Mode {
  readonly name: string;
  readonly offload: boolean;
  udp?: UdpTransport;
  counts: UdpOffloadCounts;
  cpuSeconds: number;
  wallSeconds: number;
  datagrams: number;
}

const cpuSeconds = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};

async function run(mode: Mode, to: { address: string; port: number }, seconds: number): Promise<void> {
  const datagram = new Uint8Array(DATAGRAM).fill(0xa5);
  const [cpuStart, wallStart] = [cpuSeconds(), performance.now()];
  const wallEnd = wallStart + seconds * 1000;
  while (performance.now() < wallEnd) {
    for (let i = 0; i < BURSTS_PER_TURN * BURST; i++) mode.udp!.send(datagram, to);
    mode.datagrams += BURSTS_PER_TURN * BURST;
    await new Promise((resolveTurn) => setImmediate(resolveTurn)); // the queued datagrams leave here
  }
  mode.cpuSeconds += cpuSeconds() - cpuStart;
  mode.wallSeconds += (performance.now() - wallStart) / 1000;
}

async function main(): Promise<void> {
  const loadBefore = loadavg();
  const sink = await openUdp({ host: '127.0.0.1', offload: false, receiveBufferSize: 1 << 20 });
  const to = { address: '127.0.0.1', port: sink.port };
  const modes: Mode[] = [
    { name: 'sendmmsg, one datagram per message (offload off)', offload: false },
    { name: 'UDP GSO, one message per burst (offload on)', offload: true },
  ].map((m) => ({ ...m, counts: noUdpOffloadCounts(), cpuSeconds: 0, wallSeconds: 0, datagrams: 0 }));
  for (const mode of modes) {
    mode.udp = await openUdp({ host: '127.0.0.1', offload: mode.offload, offloadCounts: mode.counts });
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of modes) await run(mode, to, SECONDS / ROUNDS);
  }
  for (const mode of modes) await mode.udp!.close();
  await sink.close();

  const [baseline] = modes;
  const perGB = (m: Mode) => m.cpuSeconds / ((m.datagrams * DATAGRAM) / 1e9);
  const perSecond = (m: Mode) => m.datagrams / m.cpuSeconds;
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(', ');
  const rows = modes.map((m) =>
    [
      m.name,
      Math.round(perSecond(m)).toLocaleString('en-US'),
      perGB(m).toFixed(3),
      (perGB(m) / perGB(baseline!)).toFixed(2),
      m.counts.gsoMessages === 0 ? '-' : (m.counts.gsoDatagrams / m.counts.gsoMessages).toFixed(1),
    ].join(' | '),
  );
  console.log(
    [
      '# UDP send path',
      '',
      `Command: \`bash scripts/bench-udp\` (BENCH_SECONDS=${SECONDS}, in ${ROUNDS} interleaved rounds). The batched`,
      `socket of nodes/udp.ts sends ${DATAGRAM}-byte datagrams (a 1420-byte packet as WireGuard data) to a`,
      `socket on 127.0.0.1 that nobody reads, ${BURSTS_PER_TURN} bursts of ${BURST} to one endpoint per`,
      'event-loop turn (one 64 KiB TCP super-segment per burst). CPU is the process’s user + system time,',
      'which includes the loopback delivery the kernel does in the sender’s context (with GSO, cutting the',
      'message into datagrams for a receiver without GRO). The tunnel as a whole: bench-results/tunnel.md.',
      '',
      `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, node ${process.version}; load average`,
      `before ${load(loadBefore)}, after ${load(loadavg())}; ${new Date().toISOString()}.`,
      '',
      '| send path | datagrams per CPU second | CPU s/GB | ratio | datagrams per GSO message |',
      '| --- | ---: | ---: | ---: | ---: |',
      ...rows.map((row) => `| ${row} |`),
      '',
    ].join('\n'),
  );
}

await main();
