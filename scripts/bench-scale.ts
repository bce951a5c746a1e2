// Scale benchmark (not a test), engine rows: with 1, 1,000 and 10,000 configured peers on one engine, in
// one run: peer-add rate, idle heap per peer, restart-to-serving time (a node coming back into its peers
// until the first client's handshake and packet are through), and the engine's cost per event-loop turn
// (nextDeadline + tick with nothing due). Baselines measured side by side: the per-turn scan of every
// peer's timers that the deadline queue replaced, and one X25519 (what each add cost while upsertPeer
// computed the static-static DH).
import { randomBytes } from 'node:crypto';
import { execSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import { DH, generatePrivateKey, publicKey } from '../crypto/primitives.js';
import { PeerTimers } from '../crypto/timers.js';
import { Tunnel, type TunnelAction } from '../crypto/tunnel.js';

const SIZES = [1, 1_000, 10_000];
const ROUNDS = 3;
const random = (n: number) => new Uint8Array(randomBytes(n));

const CLIENT_ENDPOINT = { address: '192.0.2.1', port: 51820 };
const innerAddress = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

/**
 * Bytes of every object reachable from the roots, from a heap snapshot (which collects first): exact and
 * repeatable, where process.memoryUsage() after gc() varies by a quarter between identical runs.
 */
function heapBytes(): number {
  const file = writeHeapSnapshot(join(tmpdir(), `tb-bench-scale-${process.pid}.heapsnapshot`));
  try {
    const snapshot = JSON.parse(readFileSync(file, 'utf8')) as {
      snapshot: { meta: { node_fields: string[] } };
      nodes: number[];
    };
    const fields = snapshot.snapshot.meta.node_fields;
    const selfSize = fields.indexOf('self_size');
    let total = 0;
    for (let i = selfSize; i < snapshot.nodes.length; i += fields.length) total += snapshot.nodes[i]!;
    return total;
  } finally {
    rmSync(file, { force: true });
  }
}

function newTunnel(): Tunnel {
  return new Tunnel({ privateKey: random(32), randomBytes: random, wallClockMs: Date.now });
}

/** Adds `keys` as peers, one /32 each (host .1 is left for the client side's packets). */
function addPeers(tunnel: Tunnel, keys: Uint8Array[]): void {
  keys.forEach((key, i) => tunnel.upsertPeer(key, { allowedIps: [`${innerAddress(i + 2)}/32`] }, 0));
}

const SERVER_ENDPOINT = { address: '192.0.2.2', port: 51820 };

/** Hands the sends of each engine to the other until quiet; returns the packets the server delivered. */
function exchange(server: Tunnel, client: Tunnel, fromClient: TunnelAction[]): number {
  let delivered = 0;
  let queue = [{ producer: client, actions: fromClient }];
  while (queue.length > 0) {
    const next: typeof queue = [];
    for (const { producer, actions } of queue) {
      const receiver = producer === server ? client : server;
      const from = producer === server ? SERVER_ENDPOINT : CLIENT_ENDPOINT;
      for (const action of actions) {
        if (action.kind === 'deliver' && producer === server) delivered++;
        if (action.kind === 'send') {
          next.push({ producer: receiver, actions: receiver.decapsulate(action.datagram, from, 0) });
        }
      }
    }
    queue = next;
  }
  return delivered;
}

interface Row {
  peers: number;
  addMicrosPerPeer: number;
  heapPerPeer: number;
  /** With a /32 and a /128 each, as a node's peers have. */
  dualHeapPerPeer: number;
  restartMs: number;
  turnMicros: number;
  scanMicros: number;
}

/** Idle heap per peer of an engine whose `count` peers have an IPv4 /32 and an IPv6 /128 each. */
function dualHeapPerPeer(keys: Uint8Array[]): number {
  const before = heapBytes();
  const server = newTunnel();
  keys.forEach((key, i) =>
    server.upsertPeer(
      key,
      { allowedIps: [`${innerAddress(i + 2)}/32`, `fd00::${(i + 2).toString(16)}/128`] },
      0,
    ),
  );
  const perPeer = (heapBytes() - before) / keys.length;
  if (server.peerCount !== keys.length) throw new Error('peers missing');
  return perPeer;
}

/** One engine with `count` peers, of which the first is a real client that then handshakes. */
function measureSize(count: number): Row {
  const client = newTunnel();
  const keys = Array.from({ length: count }, (_, i) => (i === 0 ? client.publicKey : random(32)));
  const before = heapBytes();
  const start = performance.now();
  const server = newTunnel();
  addPeers(server, keys);
  const added = performance.now();
  // Idle: every peer configured, none has handshaken (collecting here does not count as serving time).
  const heapPerPeer = (heapBytes() - before) / count;
  const resumed = performance.now();
  client.upsertPeer(server.publicKey, { allowedIps: ['0.0.0.0/0'], endpoint: SERVER_ENDPOINT }, 0);
  const packet = new Uint8Array(84);
  packet.set([0x45, 0, 0, 84], 0);
  packet.set([10, 0, 0, 2, 10, 0, 0, 1], 12); // from the client's /32 (peer 0 has 10.0.0.2)
  const delivered = exchange(server, client, client.encapsulate(packet, 0));
  const serving = performance.now();
  if (delivered !== 1) throw new Error(`the first packet did not get through (${delivered})`);

  // Per event-loop turn with nothing due: what the scheduler asks the engine.
  const turns = 20_000;
  let t = performance.now();
  for (let i = 0; i < turns; i++) {
    server.nextDeadline();
    server.tick(1);
  }
  const turnMicros = ((performance.now() - t) * 1000) / turns;

  // Baseline: the scan of every peer's timers that nextDeadline and tick did per turn before the queue.
  const timers = Array.from({ length: count }, () => new PeerTimers({ jitter: () => 0 }));
  const scans = Math.max(10, Math.floor(2_000_000 / count));
  t = performance.now();
  for (let i = 0; i < scans; i++) {
    let earliest: number | undefined;
    for (const peer of timers) {
      const at = peer.nextDeadline();
      if (at !== undefined && (earliest === undefined || at < earliest)) earliest = at;
    }
    for (const peer of timers) if ((peer.nextDeadline() ?? Infinity) <= 1) peer.due(1);
  }
  const scanMicros = ((performance.now() - t) * 1000) / scans;

  return {
    peers: count,
    addMicrosPerPeer: ((added - start) * 1000) / count,
    heapPerPeer,
    dualHeapPerPeer: dualHeapPerPeer(keys),
    restartMs: serving - resumed + (added - start),
    turnMicros,
    scanMicros,
  };
}

/** One X25519 scalar multiplication, µs: what every add cost while upsertPeer computed the DH. */
function dhMicros(): number {
  const secret = generatePrivateKey(random);
  const peer = publicKey(generatePrivateKey(random));
  const runs = 300;
  const start = performance.now();
  for (let i = 0; i < runs; i++) DH(secret, peer);
  return ((performance.now() - start) * 1000) / runs;
}

// Best of interleaved rounds: JIT warm-up and GC affect every size alike.
let rows = SIZES.map(measureSize);
let dh = dhMicros();
for (let round = 1; round < ROUNDS; round++) {
  const again = SIZES.map(measureSize);
  rows = rows.map((row, i) => {
    const other = again[i]!;
    return {
      peers: row.peers,
      addMicrosPerPeer: Math.min(row.addMicrosPerPeer, other.addMicrosPerPeer),
      heapPerPeer: Math.min(row.heapPerPeer, other.heapPerPeer),
      dualHeapPerPeer: Math.min(row.dualHeapPerPeer, other.dualHeapPerPeer),
      restartMs: Math.min(row.restartMs, other.restartMs),
      turnMicros: Math.min(row.turnMicros, other.turnMicros),
      scanMicros: Math.min(row.scanMicros, other.scanMicros),
    };
  });
  dh = Math.min(dh, dhMicros());
}

const fmt = (n: number, digits = 1) => n.toFixed(digits);
const largest = rows[rows.length - 1]!;
const lines = [
  '# Scale benchmark',
  '',
  `- date: ${new Date().toISOString()}`,
  `- command: \`bash scripts/bench-scale\` (${process.env.BENCH_PINNED ?? 'not pinned'}; best of ${ROUNDS} interleaved rounds)`,
  `- machine: nproc ${process.env.BENCH_NPROC ?? execSync('nproc').toString().trim()}, ${cpus()[0]?.model ?? 'unknown CPU'}, node ${process.version}`,
  `- load average at the end (1/5/15 min): ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ')}: other work on the machine slows every row alike`,
  '',
  '## Engine (crypto/), one process, peers with one /32 each',
  '',
  'Flat is the goal: per-peer and per-turn costs should not grow with the number of peers.',
  '',
  '| peers | add µs/peer | adds/s | idle heap B/peer | idle heap B/peer, /32 + /128 | restart-to-serving ms | engine µs per loop turn | naive scan µs per turn (before) | scan ÷ engine |',
  '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...rows.map(
    (r) =>
      `| ${r.peers.toLocaleString('en')} | ${fmt(r.addMicrosPerPeer)} | ${fmt(1e6 / r.addMicrosPerPeer, 0)} | ${r.peers === 1 ? 'n/a (noise)' : fmt(r.heapPerPeer, 0)} | ${r.peers === 1 ? 'n/a (noise)' : fmt(r.dualHeapPerPeer, 0)} | ${fmt(r.restartMs)} | ${fmt(r.turnMicros, 2)} | ${fmt(r.scanMicros, 2)} | ${fmt(r.scanMicros / r.turnMicros)}× |`,
  ),
  '',
  `- add: \`upsertPeer\` with one allowed IP; the static-static DH waits for the peer's first handshake. One`,
  `  X25519, measured in this run, costs **${fmt(dh)} µs**: computing it at add time (as before) would make`,
  `  each add ${fmt((largest.addMicrosPerPeer + dh) / largest.addMicrosPerPeer)}× as slow at ${largest.peers.toLocaleString('en')} peers.`,
  '- idle heap: bytes of all reachable objects (heap snapshot) after the adds minus before, per peer added',
  "  (the peer table, the allowed-IPs trie and the timer queue included; the callers' key arrays, made",
  '  before and kept, are not). A peer keeps its public key once, as the base64 name its table is keyed by',
  '  (the bytes are decoded for a handshake); a trie node keeps its prefix as a one-byte string, which a join',
  "  node shares. With the /32 and /128 a node's peers get, the trie's two more nodes and a 16-byte key add",
  '  the difference.',
  '- restart-to-serving: a fresh engine, every peer added (as a node restarting into its peer feed), then one',
  "  client's handshake and first packet delivered, in memory (no I/O).",
  '- loop turn: `nextDeadline()` + `tick()` with no timer due, what the node asks after every batch of',
  "  packets; the naive scan reads every peer's timers twice, as `nextDeadline()`/`tick()` did before the",
  '  deadline queue.',
  '',
];
console.log(lines.join('\n'));
