// tunnelbyte-node against real peers: Debian wireguard-go (configured with wg) in one namespace, the
// built daemon (`node dist/nodes/main.js up`) in the other, joined by a veth pair — the kernel's
// netns.sh way. Runs after `npm run build` (scripts/test builds first).
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  endpointString,
  expectPingCounters,
  PINGS,
  netnsHarness,
  PAIR_ADDRESSES,
  parseWgDump,
  TUNNEL_ADDRESSES,
  TUNNEL_PREFIX,
  wgConfig,
  type Namespace,
  type Pair,
  type ProcessHandle,
  type WireguardGo,
} from './netns.js';
import { builtProgram } from '../helpers/repo.js';
import { INITIATION_SIZE, RESPONSE_SIZE } from '../../crypto/constants.js';

const DAEMON = builtProgram('nodes/main.js');
const harness = netnsHarness();

const INNER = TUNNEL_ADDRESSES; // a = wireguard-go client, b = tunnelbyte-node
const PORT = { client: 51820, node: 51821 } as const;
const METRICS_PORT = 9586;

type Family = 'v4' | 'v6';

interface Interop extends Pair {
  client: WireguardGo;
  node: ProcessHandle;
  nodeInterface: string;
  clientKey: string;
  nodeKey: string;
  /** `wg` against the daemon's UAPI socket. */
  nodeWg(args: readonly string[]): Promise<string>;
}

interface InteropOptions {
  /** Outer transport family. */
  outer: Family;
  /** Who knows the other's endpoint (and so initiates): the wireguard-go client or tunnelbyte-node. */
  initiator: 'client' | 'node';
  /** Mode flags for the daemon (default: its defaults). */
  nodeArgs?: readonly string[];
  /** How the node's public key compares (bytewise) with the client's: crossed initiations depend on it. */
  nodeKey?: 'smaller' | 'larger';
}

/** A data-path mode in the daemon's arguments: each defaults on. */
const mode = (nodeArgs: readonly string[], flag: '--batch' | '--offload') =>
  nodeArgs.includes(flag) ? nodeArgs[nodeArgs.indexOf(flag) + 1] : 'on';

const hostRoutes = (inner: { v4: string; v6: string }) => [`${inner.v4}/32`, `${inner.v6}/128`];

async function startInterop({ outer, initiator, nodeArgs = [], nodeKey }: InteropOptions): Promise<Interop> {
  const pair = await harness.pair();
  let [clientKeys, nodeKeys] = [await harness.generateKeys(), await harness.generateKeys()];
  const order = Buffer.compare(
    Buffer.from(nodeKeys.publicKey, 'base64'),
    Buffer.from(clientKeys.publicKey, 'base64'),
  );
  if ((nodeKey === 'smaller' && order > 0) || (nodeKey === 'larger' && order < 0))
    [clientKeys, nodeKeys] = [nodeKeys, clientKeys];

  const client = await harness.wireguardGo(pair.a);
  await client.setconf(
    wgConfig({
      privateKey: clientKeys.privateKey,
      listenPort: PORT.client,
      peer: {
        publicKey: nodeKeys.publicKey,
        allowedIps: hostRoutes(INNER.b),
        ...(initiator === 'client' && { endpoint: endpointString(PAIR_ADDRESSES.b[outer], PORT.node) }),
      },
    }),
  );
  await harness.configureInterface(pair.a, client.interfaceName, [
    `${INNER.a.v4}/${TUNNEL_PREFIX.v4}`,
    `${INNER.a.v6}/${TUNNEL_PREFIX.v6}`,
  ]);

  const nodeInterface = harness.interfaceName();
  const configFile = join(harness.tempDir(), 'node.conf');
  writeFileSync(
    configFile,
    wgConfig({
      privateKey: nodeKeys.privateKey,
      listenPort: PORT.node,
      addresses: [`${INNER.b.v4}/${TUNNEL_PREFIX.v4}`, `${INNER.b.v6}/${TUNNEL_PREFIX.v6}`],
      peer: {
        publicKey: clientKeys.publicKey,
        allowedIps: hostRoutes(INNER.a),
        ...(initiator === 'node' && { endpoint: endpointString(PAIR_ADDRESSES.a[outer], PORT.client) }),
      },
    }),
    { mode: 0o600 },
  );
  const node = pair.b.spawn('node', [
    '--trace-protector-invalidation', // test 5
    DAEMON,
    'up',
    '--config',
    configFile,
    '--interface',
    nodeInterface,
    '--metrics',
    `127.0.0.1:${METRICS_PORT}`,
    ...nodeArgs,
  ]);
  await node.waitFor(`${nodeInterface} up`);
  // The start-up line says what is in force: the TUN offloads and, separately, how the UDP socket sends
  // (GSO and GRO only with batched UDP and offload on; this kernel has them all).
  const offload = mode(nodeArgs, '--offload') === 'on';
  expect(node.output()).toMatch(
    offload ? /, TUN offload on \(TSO4, TSO6, checksum\)/ : /, TUN offload off[,\n]/,
  );
  const udp =
    mode(nodeArgs, '--batch') === 'off'
      ? 'dgram, GSO off, GRO off'
      : `batched, GSO ${offload ? 'on' : 'off'}, GRO ${offload ? 'on' : 'off'}`;
  expect(node.output()).toContain(`, UDP port ${PORT.node} (${udp}), `);
  if (nodeArgs.includes('--threads'))
    expect(node.output()).toContain(`, threads ${nodeArgs[nodeArgs.indexOf('--threads') + 1]}`);
  return {
    ...pair,
    client,
    node,
    nodeInterface,
    clientKey: clientKeys.publicKey,
    nodeKey: nodeKeys.publicKey,
    nodeWg: async (args) => (await pair.b.exec('wg', args)).stdout,
  };
}

async function ping(ns: Namespace, target: string, count: number, extra: string[] = []): Promise<string> {
  const family = target.includes(':') ? ['-6'] : [];
  const result = await ns.exec('ping', [
    ...family,
    ...extra,
    '-c',
    String(count),
    '-i',
    '0.2',
    '-W',
    '2',
    target,
  ]);
  return result.stdout;
}

/** A ping expected to fail: its summary line, without the rejection a non-zero exit would cause. */
async function unansweredPing(ns: Namespace, target: string, extra: string[] = []): Promise<string> {
  const command = ['ping', ...extra, '-c', '2', '-i', '0.2', '-W', '1', target].join(' ');
  return (await ns.exec('sh', ['-c', `${command} || true`])).stdout;
}

/**
 * The value of one metric series. An absent series fails the test, unless `absentIs` says what it
 * means (a drop counter has no series for a reason before its first drop).
 */
async function metric(ns: Namespace, series: string, absentIs?: number): Promise<number> {
  const text = (await ns.exec('curl', ['-s', `http://127.0.0.1:${METRICS_PORT}/metrics`])).stdout;
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  if (line === undefined && absentIs !== undefined) return absentIs;
  if (line === undefined) throw new Error(`no metric series ${series}`);
  const value = Number(line.slice(series.length + 1));
  if (!Number.isFinite(value)) throw new Error(`metric series ${series} is not a number: ${line}`);
  return value;
}

// Small node programs run inside the namespaces (CommonJS under `node -e`).
const TCP_SINK = `
const net = require('net'), crypto = require('crypto');
const [host, port] = process.argv.slice(1);
const server = net.createServer((c) => {
  const hash = crypto.createHash('sha256'); let n = 0;
  c.on('data', (d) => { hash.update(d); n += d.length; });
  c.on('end', () => { console.log('received ' + n + ' ' + hash.digest('hex')); c.end(); server.close(); });
}).listen(Number(port), host, () => console.log('listening'));`;

const TCP_SOURCE = `
const net = require('net'), crypto = require('crypto');
const [host, port, size] = process.argv.slice(1);
const data = crypto.randomBytes(Number(size));
const c = net.connect(Number(port), host, () => c.end(data));
c.on('close', () => console.log('sent ' + data.length + ' ' + crypto.createHash('sha256').update(data).digest('hex')));
c.resume();`;

const UDP_ECHO = `
const dgram = require('dgram');
const [host, port] = process.argv.slice(1);
const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
s.on('message', (m, r) => s.send(Buffer.from(m).reverse(), r.port, r.address));
s.bind(Number(port), host, () => console.log('listening'));`;

const UDP_CLIENT = `
const dgram = require('dgram'), crypto = require('crypto');
const [host, port, count] = process.argv.slice(1);
const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
const sent = new Map(); let ok = 0;
s.on('message', (m) => { const k = Buffer.from(m).reverse().toString('hex'); if (sent.delete(k)) ok++; });
for (let i = 0; i < Number(count); i++) {
  const d = crypto.randomBytes(1 + ((i * 97) % 1300)); sent.set(d.toString('hex'), true); s.send(d, Number(port), host);
}
setTimeout(() => { console.log('echoed ' + ok); s.close(); }, 1500);`;

const UDP_NOISE = `
const dgram = require('dgram'), crypto = require('crypto');
const [host, port, count] = process.argv.slice(1);
const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
let replies = 0; s.on('message', () => replies++);
s.bind(0, () => {
  for (let i = 0; i < Number(count); i++) {
    const d = crypto.randomBytes(1 + (i % 300));
    if (i % 3 === 0) d[0] = 1 + (i % 4); // plausible message types, wrong lengths and macs
    s.send(d, Number(port), host);
  }
  setTimeout(() => { console.log('replies ' + replies); s.close(); }, 1000);
});`;

// A UDP relay between the two peers (each one's Endpoint is a port of it) that makes their handshakes cross: the
// first initiation from either side waits until the other side's first one has come, then both go on at once,
// and the first responses likewise. So each side has sent its initiation before the other's arrives, and has
// answered the other's before the answer to its own arrives, however either schedules its handshake work.
// Everything else passes at once. Prints "<from> <type> <length>" for each datagram it passes on.
const CROSSING_RELAY = `
const dgram = require('dgram');
const [host, clientFacing, nodeFacing, clientHost, clientPort, nodePort] = process.argv.slice(1);
const socket = { client: dgram.createSocket('udp4'), node: dgram.createSocket('udp4') };
const onward = { client: [socket.node, Number(nodePort), host], node: [socket.client, Number(clientPort), clientHost] };
const held = { 1: {}, 2: {} }; // by message type (initiation, response), then by side
const pass = (from, d) => { console.log(from + ' ' + d[0] + ' ' + d.length); const [s, port, to] = onward[from]; s.send(d, port, to); };
for (const [from, other] of [['client', 'node'], ['node', 'client']]) {
  socket[from].on('message', (d) => {
    const waiting = held[d[0]];
    if (waiting === undefined || waiting[from] !== undefined) return pass(from, d);
    waiting[from] = d;
    if (waiting[other] !== undefined) { pass(other, waiting[other]); pass(from, d); }
  });
}
let bound = 0; const ready = () => { if (++bound === 2) console.log('listening'); };
socket.client.bind(Number(clientFacing), host, ready);
socket.node.bind(Number(nodeFacing), host, ready);`;

async function tcpTransfer(
  from: Namespace,
  to: Namespace,
  host: string,
  size: number,
): Promise<[string, string]> {
  const sink = to.spawn('node', ['-e', TCP_SINK, host, '5201']);
  await sink.waitFor('listening');
  const sent = (await from.exec('node', ['-e', TCP_SOURCE, host, '5201', String(size)])).stdout.trim();
  await sink.waitFor('received', 30000);
  const received = /received .*/.exec(sink.output())![0];
  return [sent.replace('sent', ''), received.replace('received', '')];
}

describe('wireguard-go initiates to tunnelbyte-node over outer IPv4', () => {
  let net: Interop;
  beforeAll(async () => {
    net = await startInterop({ outer: 'v4', initiator: 'client' });
  });

  test('1. ping -c 10: §7.5 byte counters exact on both sides', async () => {
    expect(await ping(net.a, INNER.b.v4, PINGS)).toContain(`${PINGS} received`);
    const [atClient] = (await net.client.dump()).peers;
    const [atNode] = parseWgDump(await net.nodeWg(['show', net.nodeInterface, 'dump'])).peers;
    expectPingCounters(atClient!, atNode!);
    expect(atNode!.publicKey).toBe(net.clientKey);
    expect(atNode!.endpoint).toBe(`${PAIR_ADDRESSES.a.v4}:${PORT.client}`);
    expect(atNode!.latestHandshake).toBeGreaterThan(0);
  });

  test('2. inner IPv4 and IPv6 ping in both directions', async () => {
    expect(await ping(net.b, INNER.a.v4, 3)).toContain('3 received');
    expect(await ping(net.a, INNER.b.v6, 3)).toContain('3 received');
    expect(await ping(net.b, INNER.a.v6, 3)).toContain('3 received');
  });

  test('3. a 12 MB TCP transfer each way arrives intact (sha256)', async () => {
    const size = 12 * 1024 * 1024;
    const [sentUp, receivedUp] = await tcpTransfer(net.a, net.b, INNER.b.v4, size);
    expect(receivedUp).toBe(sentUp);
    expect(sentUp).toMatch(new RegExp(`^ ${size} [0-9a-f]{64}$`));
    const [sentDown, receivedDown] = await tcpTransfer(net.b, net.a, INNER.a.v6, size);
    expect(receivedDown).toBe(sentDown);
  });

  test('4. UDP datagrams both ways (echo with reversed bytes), IPv4 and IPv6', async () => {
    for (const host of [INNER.b.v4, INNER.b.v6]) {
      const echo = net.b.spawn('node', ['-e', UDP_ECHO, host, '7007']);
      await echo.waitFor('listening');
      const result = (await net.a.exec('node', ['-e', UDP_CLIENT, host, '7007', '50'])).stdout;
      await echo.stop();
      expect(result.trim()).toBe('echoed 50');
    }
  });

  test('5. wg show, showconf and set against the daemon', async () => {
    const conf = await net.nodeWg(['showconf', net.nodeInterface]);
    expect(conf).toContain(`ListenPort = ${PORT.node}`);
    expect(conf).toContain(`PublicKey = ${net.clientKey}`);
    const stranger = (await harness.generateKeys()).publicKey;
    await net.nodeWg(['set', net.nodeInterface, 'peer', stranger, 'allowed-ips', '10.99.0.0/16']);
    expect(await net.nodeWg(['show', net.nodeInterface, 'allowed-ips'])).toContain(
      `${stranger}\t10.99.0.0/16`,
    );
    await net.nodeWg(['set', net.nodeInterface, 'peer', stranger, 'remove']);
    expect(await net.nodeWg(['show', net.nodeInterface, 'peers'])).toBe(`${net.clientKey}\n`);
    expect(await net.nodeWg(['show', net.nodeInterface, 'public-key'])).toBe(`${net.nodeKey}\n`);
  });

  test('6. roaming: a new client listen port becomes the node’s endpoint for it', async () => {
    await net.client.set(['listen-port', '51830']);
    expect(await ping(net.a, INNER.b.v4, 2)).toContain('2 received');
    const [atNode] = parseWgDump(await net.nodeWg(['show', net.nodeInterface, 'dump'])).peers;
    expect(atNode!.endpoint).toBe(`${PAIR_ADDRESSES.a.v4}:51830`);
    expect(await ping(net.b, INNER.a.v4, 2)).toContain('2 received');
  });

  test('7. an inner source outside the client’s allowed IPs is dropped', async () => {
    const series = 'tunnelbyte_node_drops_total{reason="allowed_ips_violation"}';
    const spoofed = INNER.a.v4.replace(/\.1$/, '.99');
    const before = await metric(net.b, series, 0);
    await net.a.exec('ip', ['address', 'add', `${spoofed}/32`, 'dev', net.client.interfaceName]);
    expect(await unansweredPing(net.a, INNER.b.v4, ['-I', spoofed])).toContain('100% packet loss');
    expect(await metric(net.b, series)).toBe(before + 2);
  });

  test('8. a burst of random datagrams gets no reply and the daemon keeps serving', async () => {
    const noise = (
      await net.a.exec('node', ['-e', UDP_NOISE, PAIR_ADDRESSES.b.v4, String(PORT.node), '1000'])
    ).stdout;
    expect(noise.trim()).toBe('replies 0');
    expect(await ping(net.a, INNER.b.v4, 2)).toContain('2 received');
    expect(await metric(net.b, 'tunnelbyte_node_drops_total{reason="malformed"}')).toBeGreaterThan(0);
  });

  test('9. wg set peer remove stops that peer', async () => {
    await net.nodeWg(['set', net.nodeInterface, 'peer', net.clientKey, 'remove']);
    expect(await net.nodeWg(['show', net.nodeInterface, 'peers'])).toBe('');
    expect(await unansweredPing(net.a, INNER.b.v4)).toContain('100% packet loss');
  });

  test('10. SIGTERM: exit 0, UAPI socket and interface gone', async () => {
    const socket = `/var/run/wireguard/${net.nodeInterface}.sock`;
    expect(existsSync(socket)).toBe(true);
    await net.node.stop();
    expect(await net.node.exited).toBe(0);
    expect(existsSync(socket)).toBe(false);
    expect((await net.b.exec('ip', ['-o', 'link', 'show'])).stdout).not.toContain(net.nodeInterface);
  });
});

describe('tunnelbyte-node initiates to wireguard-go over outer IPv6', () => {
  let net: Interop;
  beforeAll(async () => {
    net = await startInterop({ outer: 'v6', initiator: 'node' });
  });

  test('1. ping -c 10 from the node side: §7.5 counters with the roles swapped', async () => {
    expect(await ping(net.b, INNER.a.v4, PINGS)).toContain(`${PINGS} received`);
    const [atNode] = parseWgDump(await net.nodeWg(['show', net.nodeInterface, 'dump'])).peers;
    const [atClient] = (await net.client.dump()).peers;
    expectPingCounters(atNode!, atClient!);
    expect(atClient!.endpoint).toBe(`[${PAIR_ADDRESSES.b.v6}]:${PORT.node}`);
  });

  test('2. inner IPv6 and IPv4 both ways over the IPv6 transport', async () => {
    expect(await ping(net.a, INNER.b.v6, 3)).toContain('3 received');
    expect(await ping(net.b, INNER.a.v6, 3)).toContain('3 received');
    expect(await ping(net.a, INNER.b.v4, 3)).toContain('3 received');
  });

  test('3. removing the UAPI socket stops the daemon and removes the interface', async () => {
    await net.b.exec('rm', [`/var/run/wireguard/${net.nodeInterface}.sock`]);
    expect(await net.node.exited).toBe(0);
    expect((await net.b.exec('ip', ['-o', 'link', 'show'])).stdout).not.toContain(net.nodeInterface);
  });
});

// Every mode the daemon runs in, both initiators, both outer families: exact counters and intact data.
const MODES = [
  ['batched UDP, offload on, 1 thread', ['--batch', 'on', '--offload', 'on', '--threads', '1']],
  ['batched UDP, offload off, 1 thread', ['--batch', 'on', '--offload', 'off', '--threads', '1']],
  ['dgram UDP, offload on, 1 thread', ['--batch', 'off', '--offload', 'on', '--threads', '1']],
  ['dgram UDP, offload off, 1 thread', ['--batch', 'off', '--offload', 'off', '--threads', '1']],
  // Bulk traffic to the crypto threads at every bulk turn, as when the main thread is CPU-bound; with the
  // default (auto), a node that one core carries seals and opens on its main thread.
  [
    'batched UDP, offload on, 2 threads, hand-over bulk',
    ['--batch', 'on', '--offload', 'on', '--threads', '2', '--hand-over', 'bulk'],
  ],
  [
    'dgram UDP, offload off, 2 threads, hand-over bulk',
    ['--batch', 'off', '--offload', 'off', '--threads', '2', '--hand-over', 'bulk'],
  ],
  [
    'batched UDP, offload on, 2 threads, hand-over auto',
    ['--batch', 'on', '--offload', 'on', '--threads', '2'],
  ],
] as const;
const ROLES = [
  ['client', 'v4'],
  ['node', 'v4'],
  ['client', 'v6'],
  ['node', 'v6'],
] as const;

describe.each(
  MODES.flatMap(([mode, args]) => ROLES.map(([initiator, outer]) => [mode, initiator, outer, args] as const)),
)('mode %s: %s initiates over outer %s', (_mode, initiator, outer, nodeArgs) => {
  let net: Interop;
  beforeAll(async () => {
    net = await startInterop({ outer, initiator, nodeArgs });
  });
  afterAll(() => net.node.stop());

  test('1. ping -c 10 from the initiator: §7.5 byte counters exact on both sides', async () => {
    const [from, target] = initiator === 'client' ? [net.a, INNER.b.v4] : [net.b, INNER.a.v4];
    expect(await ping(from, target, PINGS)).toContain(`${PINGS} received`);
    const [atClient] = (await net.client.dump()).peers;
    const [atNode] = parseWgDump(await net.nodeWg(['show', net.nodeInterface, 'dump'])).peers;
    if (initiator === 'client') expectPingCounters(atClient!, atNode!);
    else expectPingCounters(atNode!, atClient!);
  });

  test('2. a 4 MB TCP transfer each way (inner IPv4 up, inner IPv6 down) arrives intact', async () => {
    const size = 4 * 1024 * 1024;
    const [sentUp, receivedUp] = await tcpTransfer(net.a, net.b, INNER.b.v4, size);
    expect(receivedUp).toBe(sentUp);
    expect(sentUp).toMatch(new RegExp(`^ ${size} [0-9a-f]{64}$`));
    const [sentDown, receivedDown] = await tcpTransfer(net.b, net.a, INNER.a.v6, size);
    expect(receivedDown).toBe(sentDown);
  });

  test('3. with offload on, TCP crossed the TUN as super-segments; none without', async () => {
    const series = (direction: string) =>
      metric(net.b, `tunnelbyte_node_offload_super_segments_total{direction="${direction}"}`);
    const [split, coalesced] = [await series('tx'), await series('rx')];
    if (mode(nodeArgs, '--offload') === 'off') {
      expect([split, coalesced]).toEqual([0, 0]);
    } else {
      expect(split).toBeGreaterThan(0);
      // Coalescing needs several segments per write: dgram hands over one datagram per callback.
      if (mode(nodeArgs, '--batch') === 'off') expect(coalesced).toBe(0);
      else expect(coalesced).toBeGreaterThan(0);
    }
    expect(await metric(net.b, 'tunnelbyte_node_offload_drops_total{reason="gso_malformed"}')).toBe(0);
  });

  test('4. with batched UDP and offload on, the TCP download left in UDP GSO messages; none otherwise', async () => {
    const gso = await metric(net.b, 'tunnelbyte_node_udp_offload_messages_total{direction="tx"}');
    const batchedWithOffload = mode(nodeArgs, '--batch') === 'on' && mode(nodeArgs, '--offload') === 'on';
    if (batchedWithOffload) expect(gso).toBeGreaterThan(0);
    else expect(gso).toBe(0);
  });

  test('5. after all that, no thread of the node has detached a buffer (V8 keeps its fast typed-array code)', () => {
    expect(net.node.output()).not.toContain('Invalidating protector cell ArrayBufferDetaching');
  });
});

describe('both ends start at once: their initiations cross (docs/WIREGUARD.md §6)', () => {
  const RELAY_PORT = { client: 51900, node: 51901 } as const; // where each side's Endpoint points

  test.each([
    [1, 'smaller'],
    [2, 'larger'],
  ] as const)(
    '%i. wireguard-go and the node (its key the %s) ping each other at the same moment: one handshake each way, every ping answered',
    async (_n, nodeKey) => {
      const net = await startInterop({ outer: 'v4', initiator: 'client', nodeKey });
      const host = PAIR_ADDRESSES.b.v4;
      const relay = net.b.spawn('node', [
        '-e',
        CROSSING_RELAY,
        host,
        String(RELAY_PORT.client),
        String(RELAY_PORT.node),
        PAIR_ADDRESSES.a.v4,
        String(PORT.client),
        String(PORT.node),
      ]);
      try {
        await relay.waitFor('listening');
        await net.client.set(['peer', net.nodeKey, 'endpoint', endpointString(host, RELAY_PORT.client)]);
        await net.nodeWg([
          'set',
          net.nodeInterface,
          'peer',
          net.clientKey,
          'endpoint',
          endpointString(host, RELAY_PORT.node),
        ]);

        // Each side's first echo request starts a handshake; the relay makes the two initiations cross.
        const [fromClient, fromNode] = await Promise.all([
          ping(net.a, INNER.b.v4, 3),
          ping(net.b, INNER.a.v4, 3),
        ]);
        for (const output of [fromClient, fromNode]) {
          expect(output).toContain('3 received');
          expect(output).toMatch(/ icmp_seq=1 /); // the staged first packet, answered
        }
        // No retry: one initiation each way, and each side answered the other's once.
        const handshakes = relay
          .output()
          .split('\n')
          .filter((line) => / [12] /.test(line))
          .sort();
        expect(handshakes).toEqual([
          `client 1 ${INITIATION_SIZE}`,
          `client 2 ${RESPONSE_SIZE}`,
          `node 1 ${INITIATION_SIZE}`,
          `node 2 ${RESPONSE_SIZE}`,
        ]);
        // wireguard-go forgot its own initiation when it answered the node's, so it dropped the node's
        // answer to it unread (an unknown index): the session is the node's, and the §7.5 counters say so.
        const [atClient] = (await net.client.dump()).peers;
        const [atNode] = parseWgDump(await net.nodeWg(['show', net.nodeInterface, 'dump'])).peers;
        expect(atNode!.rxBytes).toBe(atClient!.txBytes);
        expect(atNode!.txBytes).toBe(atClient!.rxBytes + RESPONSE_SIZE);
      } finally {
        await relay.stop();
        await net.node.stop();
      }
    },
  );
});

describe('sticky source: the node holds a second outer address per family', () => {
  const SECOND = { v4: '192.168.241.3', v6: 'fd00:241::3' } as const;

  test.each([
    [1, 'v4'],
    [2, 'v6'],
  ] as const)('%i. a client that targets the second %s address sees replies from it', async (_n, outer) => {
    const net = await startInterop({ outer, initiator: 'client', nodeArgs: ['--batch', 'on'] });
    try {
      await net.b.exec('ip', [
        outer === 'v6' ? '-6' : '-4',
        'address',
        'add',
        `${SECOND[outer]}/${outer === 'v6' ? 64 : 24}`,
        'dev',
        'veth0',
        ...(outer === 'v6' ? ['nodad'] : []),
      ]);
      const target = endpointString(SECOND[outer], PORT.node);
      await net.client.set(['peer', net.nodeKey, 'endpoint', target]);
      expect(await ping(net.a, INNER.b.v4, 3)).toContain('3 received');
      // wireguard-go roams to the source of every authenticated reply: it still names the second address.
      const [atClient] = (await net.client.dump()).peers;
      expect(atClient!.endpoint).toBe(target);
    } finally {
      await net.node.stop();
    }
  });
});
