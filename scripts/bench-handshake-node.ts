// The node side of bench-crypto's end-to-end handshake rows (not a test): the node's engine and device
// (crypto/tunnel.ts, nodes/device.ts) on a loopback UDP port, answering initiations inline or through
// handshake workers, as tunnelbyte-node does. Run by bench-crypto as a child process, so the parent's pin
// to one core does not apply here. Protocol on stdin/stdout, one JSON line each:
//   in:  { "handshakeThreads": N, "peers": [base64 public key, ...] }
//   out: { "port": P, "publicKey": base64, "udp": "batched" | "dgram" }
//   in:  "start"  (the measured interval begins)   out: nothing
//   in:  "stop"   out: { "cpuSeconds": S, "drops": { reason: count } } and the process exits
import { createInterface } from 'node:readline';

import { DROP_REASONS, Tunnel } from '../crypto/tunnel.js';
import { Device } from '../nodes/device.js';
import { secureRandomBytes } from '../nodes/random.js';
import { NodeMetrics } from '../nodes/metrics.js';
import { openUdp, type UdpOptions } from '../nodes/udp.js';

interface Setup {
  handshakeThreads: number;
  peers: string[];
}

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const next = async (): Promise<string> => {
  const { value, done } = await lines.next();
  if (done) process.exit(0); // the bench went away
  return value as string;
};
const say = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

const setup = JSON.parse(await next()) as Setup;
const privateKey = secureRandomBytes(32);
const tunnel = new Tunnel({
  privateKey,
  randomBytes: secureRandomBytes,
  wallClockMs: Date.now,
  decryptInPlace: true,
  reuseActions: true,
});
const metrics = new NodeMetrics(tunnel);
// The node's batched UDP when the addon is built, else Node's dgram (`--batch off`).
let udp: 'batched' | 'dgram' = 'batched';
const open = async (options: UdpOptions) => {
  try {
    return await openUdp({ ...options, host: '127.0.0.1', batched: udp === 'batched' });
  } catch {
    udp = 'dgram';
    return openUdp({ ...options, host: '127.0.0.1', batched: false });
  }
};
const device = await Device.start({
  tunnel,
  privateKey,
  packets: { onPackets: () => undefined, writeMany: (packets) => packets.length, close: () => undefined },
  openUdp: open,
  listenPort: 0,
  metrics,
  handshakeThreads: setup.handshakeThreads,
});
device.onFailure((error) => {
  process.stderr.write(`handshake worker failed: ${error.message}\n`);
  process.exit(1);
});
for (const peer of setup.peers) device.upsertPeer(new Uint8Array(Buffer.from(peer, 'base64')), {});
say({ port: device.listenPort, publicKey: Buffer.from(tunnel.publicKey).toString('base64'), udp });

await next(); // start
const dropsBefore = await dropCounts();
const before = process.cpuUsage(); // every thread of the process
await next(); // stop
const { user, system } = process.cpuUsage(before);
const dropsAfter = await dropCounts();
const drops = Object.fromEntries(
  DROP_REASONS.map((reason) => [reason, dropsAfter[reason]! - dropsBefore[reason]!]).filter(([, n]) => n),
);
say({ cpuSeconds: (user + system) / 1e6, drops });
await device.close();
process.exit(0);

async function dropCounts(): Promise<Record<string, number>> {
  const text = await metrics.registry.getSingleMetricAsString('tunnelbyte_node_drops_total');
  const counts: Record<string, number> = Object.fromEntries(DROP_REASONS.map((reason) => [reason, 0]));
  for (const match of text.matchAll(/reason="(\w+)"\} (\d+)/g)) counts[match[1]!] = Number(match[2]);
  return counts;
}
