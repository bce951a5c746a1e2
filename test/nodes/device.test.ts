// Two full devices in one process, wired as wireguard-go's device_test.go does: real engines, real UDP
// sockets on loopback, and channel "interfaces" standing in for the TUN (the netns interop tests use
// real TUNs and real wireguard-go).
import { createSocket } from 'node:dgram';
import { inspect } from 'node:util';

import nacl from 'tweetnacl';

import {
  DEFAULT_MTU,
  HANDSHAKE_INITIATION_RATE_MS,
  INITIATION_SIZE,
  MESSAGE_INITIATION,
  UNDER_LOAD_HANDSHAKE_BACKLOG,
} from '../../crypto/constants.js';
import { transportLength } from '../../crypto/messages.js';
import { Tunnel, type PeerSettings, type TunnelOptions } from '../../crypto/tunnel.js';
import { nodeEngineOptions } from '../../nodes/daemon.js';
import { Device, type DeviceOptions, type PacketIo } from '../../nodes/device.js';
import { secureRandomBytes } from '../../nodes/random.js';
import { NodeMetrics } from '../../nodes/metrics.js';
import { BUSY_TURNS, CryptoThreads } from '../../nodes/threads/pool.js';
import { openUdp, type UdpTransport } from '../../nodes/udp.js';
import { eventually } from '../helpers/eventually.js';

class ChannelPackets implements PacketIo {
  written: Uint8Array[] = [];
  closed = false;
  /** What the host answers the next write with: queued by the time the write returns, as a TUN's are. */
  answers: Uint8Array[] = [];
  writes = 0;
  readBacks = 0;
  private queued: Uint8Array[] = [];
  private listener: (packets: Uint8Array[]) => void = () => undefined;
  onPackets(listener: (packets: Uint8Array[]) => void): void {
    this.listener = listener;
  }
  writeMany(packets: readonly Uint8Array[]): number {
    this.writes++;
    this.written.push(...packets.map((p) => Uint8Array.from(p)));
    this.queued.push(...this.answers.splice(0));
    return packets.length;
  }
  readBack(): void {
    this.readBacks++;
    if (this.queued.length > 0) this.listener(this.queued.splice(0));
  }
  close(): void {
    this.closed = true;
  }
  inject(...packets: Uint8Array[]): void {
    this.listener(packets);
  }
}

/** A minimal IPv4 datagram (protocol 17, no checksum needed by the engine) carrying `payload`. */
function ipv4(source: string, destination: string, payload: Uint8Array): Uint8Array {
  const packet = new Uint8Array(20 + payload.length);
  packet[0] = 0x45;
  packet[2] = packet.length >> 8;
  packet[3] = packet.length & 0xff;
  packet[8] = 64;
  packet[9] = 17;
  packet.set(source.split('.').map(Number), 12);
  packet.set(destination.split('.').map(Number), 16);
  packet.set(payload, 20);
  return packet;
}

interface Node {
  device: Device;
  packets: ChannelPackets;
  metrics: NodeMetrics;
  privateKey: Uint8Array;
  publicKey: Uint8Array;
  tunnel: Tunnel;
  threads: CryptoThreads | undefined;
  /** The device, then its crypto threads. */
  close(): Promise<void>;
}

// The compiled handshake worker: a worker thread runs JavaScript, not these TypeScript sources.

/**
 * How a device runs: initiations answered on its own thread or by two handshake workers; transport
 * messages sealed and opened on the main thread (1) or in crypto threads.
 */
const MODES = [
  ['handshakes inline, 1 thread', 0, 1],
  ['handshake workers, 1 thread', 2, 1],
  ['handshakes inline, 2 crypto threads', 0, 2],
] as const;

/**
 * `batched`: the UDP socket's mode (default: openUdp's, batched). `wrapUdp`: what the device is handed
 * instead of the socket, built around it.
 */
async function startNode(
  handshakeThreads = 0,
  threads = 1,
  batched?: boolean,
  wrapUdp: (udp: UdpTransport) => UdpTransport = (udp) => udp,
  engineOptions: Partial<TunnelOptions> = {},
): Promise<Node> {
  const privateKey = nacl.randomBytes(32);
  const crypto =
    threads > 1
      ? await CryptoThreads.start(
          threads,
          DEFAULT_MTU,
          (line) => {
            throw new Error(line);
          },
          batched === false,
        )
      : undefined;
  const tunnel = new Tunnel({
    randomBytes: secureRandomBytes,
    wallClockMs: Date.now,
    ...engineOptions,
    privateKey,
    ...(crypto && { transportCrypto: crypto }),
  });
  const packets = new ChannelPackets();
  const metrics = new NodeMetrics(tunnel);
  if (crypto) metrics.countCryptoThreads(crypto);
  const device = await Device.start({
    tunnel,
    privateKey,
    packets,
    metrics,
    listenPort: 0,
    openUdp: async (o) =>
      wrapUdp(await openUdp({ ...o, host: '127.0.0.1', ...(batched !== undefined && { batched }) })),
    handshakeThreads,
    ...(crypto && { threads: crypto }),
  });
  const close = async () => {
    await device.close();
    await crypto?.close();
  };
  return {
    device,
    packets,
    metrics,
    privateKey,
    publicKey: tunnel.publicKey,
    tunnel,
    threads: crypto,
    close,
  };
}

/** A node's transport messages by where they were sealed and opened, as its metrics count them. */
async function cryptoMessages(node: Node): Promise<{ inline: number; handedOver: number }> {
  const name = 'tunnelbyte_node_crypto_messages_total';
  return {
    inline: await counter(node.metrics, name, 'path="inline"'),
    handedOver: await counter(node.metrics, name, 'path="handed_over"'),
  };
}

/** A counter's sample for `labels` (as the exposition prints them; '' for none): 0 before its first count. */
async function counter(metrics: NodeMetrics, name: string, labels: string): Promise<number> {
  const text = await metrics.registry.getSingleMetricAsString(name);
  const series = labels === '' ? name : `${name}{${labels}}`;
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  if (line === undefined) return 0;
  const count = Number(line.split(' ')[1]);
  if (!Number.isInteger(count)) throw new Error(`${name}{${labels}} is not a count: ${line}`);
  return count;
}

const drops = (metrics: NodeMetrics, reason: string): Promise<number> =>
  counter(metrics, 'tunnelbyte_node_drops_total', `reason="${reason}"`);

/** Handshake initiations a node sent ('tx') or received ('rx'). */
const initiations = (node: Node, direction: 'tx' | 'rx'): Promise<number> =>
  counter(
    node.metrics,
    'tunnelbyte_node_handshake_messages_total',
    `type="initiation",direction="${direction}"`,
  );

/** An initiation from a stranger (a key `to` does not know) with a valid mac1: it costs `to` a DH. */
function strangerInitiation(to: Node, port: number): Uint8Array {
  const stranger = new Tunnel({
    privateKey: nacl.randomBytes(32),
    randomBytes: secureRandomBytes,
    wallClockMs: Date.now,
  });
  stranger.upsertPeer(
    to.publicKey,
    { allowedIps: ['0.0.0.0/0'], endpoint: { address: '127.0.0.1', port } },
    0,
  );
  const initiation = stranger
    .encapsulate(ipv4('10.9.0.1', '10.0.0.1', new Uint8Array(8)), 0)
    .find((x) => x.kind === 'send');
  if (initiation?.kind !== 'send') throw new Error('the stranger made no initiation');
  return initiation.datagram;
}

describe.each(MODES)('Device, %s', (_, handshakeThreads, threads) => {
  let a: Node;
  let b: Node;

  beforeEach(async () => {
    [a, b] = await Promise.all([startNode(handshakeThreads, threads), startNode(handshakeThreads, threads)]);
    a.device.upsertPeer(b.publicKey, {
      allowedIps: ['10.0.0.2/32'],
      endpoint: { address: '127.0.0.1', port: b.device.listenPort },
    });
    b.device.upsertPeer(a.publicKey, { allowedIps: ['10.0.0.1/32'] });
  });
  afterEach(async () => {
    await Promise.all([a.close(), b.close()]);
  });

  test('packets cross both ways and the byte counters of the two ends agree', async () => {
    const request = ipv4('10.0.0.1', '10.0.0.2', new Uint8Array(64).fill(1));
    a.packets.inject(request);
    await eventually('the packet at b', () => b.packets.written.length === 1);
    expect(b.packets.written[0]).toEqual(request);

    const reply = ipv4('10.0.0.2', '10.0.0.1', new Uint8Array(100).fill(2));
    b.packets.inject(reply, reply);
    await eventually('the replies at a', () => a.packets.written.length === 2);
    expect(a.packets.written[1]).toEqual(reply);

    const [peerAtA] = a.device.peers();
    const [peerAtB] = b.device.peers();
    await eventually(
      'counters to settle',
      () => a.device.peers()[0]!.rxBytes === b.device.peers()[0]!.txBytes,
    );
    expect(peerAtA!.lastHandshakeUnixMs).toBeGreaterThan(0);
    expect(peerAtB!.endpoint).toEqual({
      address: '127.0.0.1',
      port: a.device.listenPort,
      local: '127.0.0.1',
    });
    // initiation 148 + request (84 → 96 padded) 16+96+16 = 128 at least; the handshake is in both totals.
    expect(a.device.peers()[0]!.txBytes).toBe(b.device.peers()[0]!.rxBytes);
    expect(a.device.peers()[0]!.txBytes).toBeGreaterThanOrEqual(148 + 128);
  });

  test('an inner source outside the sender’s allowed IPs is dropped', async () => {
    a.packets.inject(ipv4('10.0.0.1', '10.0.0.2', new Uint8Array(8)));
    await eventually('the first packet', () => b.packets.written.length === 1);
    b.packets.inject(
      ipv4('10.0.0.9', '10.0.0.1', new Uint8Array(8)),
      ipv4('10.0.0.2', '10.0.0.1', new Uint8Array(8)),
    );
    await eventually('the legitimate packet', () => a.packets.written.length === 1);
    expect(await drops(a.metrics, 'allowed_ips_violation')).toBe(1);
  });

  test('roaming: a new listen port at b becomes a’s endpoint for b', async () => {
    a.packets.inject(ipv4('10.0.0.1', '10.0.0.2', new Uint8Array(8)));
    await eventually('the first packet', () => b.packets.written.length === 1);
    const oldPort = b.device.listenPort;
    await b.device.setListenPort(0);
    expect(b.device.listenPort).not.toBe(oldPort);
    b.packets.inject(ipv4('10.0.0.2', '10.0.0.1', new Uint8Array(8)));
    await eventually('the packet from the new port', () => a.packets.written.length === 1);
    expect(a.device.peers()[0]!.endpoint).toEqual({
      address: '127.0.0.1',
      port: b.device.listenPort,
      local: '127.0.0.1',
    });
    a.packets.inject(ipv4('10.0.0.1', '10.0.0.2', new Uint8Array(8)));
    await eventually('the answer to the new port', () => b.packets.written.length === 2);
  });

  test('random datagrams get no answer and the device keeps serving', async () => {
    const probe = createSocket('udp4');
    await new Promise<void>((r) => probe.bind(0, '127.0.0.1', () => r()));
    let answers = 0;
    probe.on('message', () => answers++);
    for (let i = 0; i < 200; i++) {
      const garbage = nacl.randomBytes(1 + (i % 200));
      if (i % 4 === 0) garbage[0] = 1 + (i % 4);
      probe.send(garbage, a.device.listenPort, '127.0.0.1');
    }
    a.packets.inject(ipv4('10.0.0.1', '10.0.0.2', new Uint8Array(8)));
    await eventually('traffic after the garbage', () => b.packets.written.length === 1);
    await new Promise((r) => setTimeout(r, 100));
    probe.close();
    expect(answers).toBe(0);
    expect(
      (await drops(a.metrics, 'malformed')) +
        (await drops(a.metrics, 'mac1_invalid')) +
        (await drops(a.metrics, 'unknown_index')),
    ).toBeGreaterThan(0);
  });

  test('a burst of initiations from one address puts the engine under load: a few a turn get cookie replies, the rest are rate-limited', async () => {
    const probe = await openUdp({ host: '127.0.0.2' });
    const cookieReplies: Uint8Array[] = [];
    probe.onDatagram((datagram) => cookieReplies.push(datagram.slice())); // a view: copy to keep
    const to = { address: '127.0.0.1', port: a.device.listenPort };
    const initiation = strangerInitiation(a, to.port);
    const burst = () => {
      for (let i = 0; i < 2 * UNDER_LOAD_HANDSHAKE_BACKLOG; i++) probe.send(initiation, to);
    };
    // The first burst is the load: its first few initiations went on before it was seen (a DH each).
    burst();
    await eventually('the first burst read', async () => (await drops(a.metrics, 'rate_limited')) > 0);
    burst();
    await eventually('a cookie reply', () => cookieReplies.length > 0);
    await probe.close();
    expect(cookieReplies[0]![0]).toBe(3);
    expect(cookieReplies[0]!.length).toBe(64);
    expect(await drops(a.metrics, 'cookie_sent')).toBeGreaterThan(0);
    expect(await drops(a.metrics, 'handshake_invalid')).toBeLessThan(UNDER_LOAD_HANDSHAKE_BACKLOG);
  });

  test('initiations anyone can make without the key (mac1 invalid) are not load: a real peer gets no cookie', async () => {
    // Random bytes of an initiation's type and length, ten backlogs' worth every 20 ms: had they valid
    // mac1s, the first burst would put b under load (the test above).
    const probe = await openUdp({ host: '127.0.0.1' });
    const to = { address: '127.0.0.1', port: b.device.listenPort };
    const forged = Array.from({ length: 10 * UNDER_LOAD_HANDSHAKE_BACKLOG }, () => {
      const datagram = nacl.randomBytes(INITIATION_SIZE);
      datagram.set([MESSAGE_INITIATION, 0, 0, 0]);
      return datagram;
    });
    const burst = () => forged.forEach((datagram) => probe.send(datagram, to));
    burst();
    await eventually(
      'a burst refused',
      async () => (await drops(b.metrics, 'mac1_invalid')) >= UNDER_LOAD_HANDSHAKE_BACKLOG,
    );
    const flood = setInterval(burst, 20);
    try {
      a.packets.inject(ipv4('10.0.0.1', '10.0.0.2', new Uint8Array(8)));
      await eventually('a’s packet through b', () => b.packets.written.length === 1);
    } finally {
      clearInterval(flood);
      await probe.close();
    }
    expect(await drops(b.metrics, 'cookie_sent')).toBe(0);
    expect(await initiations(a, 'tx')).toBe(1);
  });

  test('during a flood of initiations a real peer connects within 2 retries; the flood gets cookies or none, not DHs (counted)', async () => {
    // b is the responder under attack; a is its real peer. The flood: bursts of ten times the backlog that
    // means load, every 20 ms until a is through (well above what one core answers: bench-crypto's
    // responder handshakes per second), of initiations from strangers with valid mac1s, which would each
    // cost b a DH if b were not under load. From another address than a's: one address gets only a few of
    // its initiations a turn past mac1 (the test above).
    const probe = await openUdp({ host: '127.0.0.2' });
    const to = { address: '127.0.0.1', port: b.device.listenPort };
    const strangers = Array.from({ length: 4 }, () => strangerInitiation(b, to.port));
    let sent = 0;
    const burst = () => {
      for (let i = 0; i < 10 * UNDER_LOAD_HANDSHAKE_BACKLOG; i++, sent++) probe.send(strangers[i % 4]!, to);
    };
    burst();
    const flood = setInterval(burst, 20);
    try {
      await eventually('b under load', async () => (await drops(b.metrics, 'cookie_sent')) > 0);
      a.packets.inject(ipv4('10.0.0.1', '10.0.0.2', new Uint8Array(8)));
      await eventually('a’s packet through b', () => b.packets.written.length === 1, {
        timeoutMs: 20_000,
      });
    } finally {
      clearInterval(flood);
      await probe.close();
    }
    // a's first initiation got a cookie reply; its retransmission carried mac2 and was answered.
    expect(await initiations(a, 'tx')).toBeLessThanOrEqual(3);
    expect(
      await counter(
        a.metrics,
        'tunnelbyte_node_handshake_messages_total',
        'type="cookie_reply",direction="rx"',
      ),
    ).toBeGreaterThan(0);
    // Of the flood, only initiations before the first backlog was seen cost a DH (they end as
    // handshake_invalid: an unknown static key); the rest got cookie replies, or past a few a turn nothing.
    expect(sent).toBeGreaterThan(100 * UNDER_LOAD_HANDSHAKE_BACKLOG);
    expect(await drops(b.metrics, 'handshake_invalid')).toBeLessThan(2 * UNDER_LOAD_HANDSHAKE_BACKLOG);
    expect(await drops(b.metrics, 'cookie_sent')).toBeGreaterThan(0);
    expect(
      (await drops(b.metrics, 'cookie_sent')) + (await drops(b.metrics, 'rate_limited')),
    ).toBeGreaterThan(sent / 2);
  }, 30_000);

  test('a pre-shared key and a new private key set while running are the ones handshakes use', async () => {
    const presharedKey = nacl.randomBytes(32);
    const newKey = nacl.randomBytes(32);
    b.device.setPrivateKey(newKey);
    b.device.upsertPeer(a.publicKey, { presharedKey });
    a.device.removePeer(b.publicKey);
    a.device.upsertPeer(b.device.publicKey()!, {
      allowedIps: ['10.0.0.2/32'],
      endpoint: { address: '127.0.0.1', port: b.device.listenPort },
      presharedKey,
    });
    a.packets.inject(ipv4('10.0.0.1', '10.0.0.2', new Uint8Array(8)));
    await eventually('the packet at b', () => b.packets.written.length === 1);
    expect(b.device.publicKey()).toEqual(nacl.scalarMult.base(newKey));
  });

  test('the private key never prints, yet status() hands a plain copy to UAPI get', () => {
    const everything = { depth: Infinity, maxArrayLength: Infinity, breakLength: Infinity, compact: true };
    // Bytes 1..30 are the same before and after clamping, so they find the key in either form.
    const key = Array.from(a.privateKey.subarray(1, 31)).join(', ');
    expect(inspect(a.device, everything)).not.toContain(key);
    expect(inspect(a.device.status().privateKey, everything)).toContain(key);
  });

  test('a removed peer is refused; close releases the socket and the interface', async () => {
    b.device.removePeer(a.publicKey);
    expect(b.device.peers()).toEqual([]);
    a.packets.inject(ipv4('10.0.0.1', '10.0.0.2', new Uint8Array(8)));
    await eventually('the refusal', async () => (await drops(b.metrics, 'handshake_invalid')) > 0);
    expect(b.packets.written).toEqual([]);

    const port = a.device.listenPort;
    await a.close();
    expect(a.packets.closed).toBe(true);
    const rebound = await openUdp({ port, host: '127.0.0.1' });
    await rebound.close();
  });
});

// With crypto threads too: a lone packet is opened by the engine itself, within the UDP batch.
describe.each(MODES)('Device read-back, %s', (_, handshakeThreads, threads) => {
  test('a UDP batch that wrote packets reads the interface back once: an answer queued by the write reaches the sender', async () => {
    const [a, b] = await Promise.all([
      startNode(handshakeThreads, threads),
      startNode(handshakeThreads, threads),
    ]);
    try {
      a.device.upsertPeer(b.publicKey, {
        allowedIps: ['10.0.0.2/32'],
        endpoint: { address: '127.0.0.1', port: b.device.listenPort },
      });
      b.device.upsertPeer(a.publicKey, { allowedIps: ['10.0.0.1/32'] });
      const answer = ipv4('10.0.0.2', '10.0.0.1', new Uint8Array(16).fill(2));
      b.packets.answers.push(answer); // b's interface is never read otherwise: only the read-back hands it over
      a.packets.inject(ipv4('10.0.0.1', '10.0.0.2', new Uint8Array(8).fill(1)));
      await eventually('the answer at a', () => a.packets.written.length === 1);
      expect(a.packets.written[0]).toEqual(answer);
      // The handshake's batches wrote nothing and read nothing back.
      for (const node of [a, b]) expect([node.packets.writes, node.packets.readBacks]).toEqual([1, 1]);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

test('dgram: a datagram that wrote a packet does not read the interface back (it would be a read per datagram)', async () => {
  const [a, b] = await Promise.all([startNode(0, 1, false), startNode(0, 1, false)]);
  try {
    a.device.upsertPeer(b.publicKey, {
      allowedIps: ['10.0.0.2/32'],
      endpoint: { address: '127.0.0.1', port: b.device.listenPort },
    });
    b.device.upsertPeer(a.publicKey, { allowedIps: ['10.0.0.1/32'] });
    for (let n = 1; n <= 3; n++) a.packets.inject(ipv4('10.0.0.1', '10.0.0.2', new Uint8Array(8).fill(n)));
    await eventually('the packets at b', () => b.packets.written.length === 3);
    expect([b.packets.writes, b.packets.readBacks]).toEqual([3, 0]);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

describe.each([
  ['1 thread, batched UDP', 1, true],
  ['1 thread, dgram', 1, false],
  ['2 crypto threads, batched UDP', 2, true],
  ['2 crypto threads, dgram', 2, false],
] as const)('txBytes, %s', (_, threads, batched) => {
  const packet = (length: number) => ipv4('10.0.0.1', '10.0.0.2', new Uint8Array(length).fill(length));
  /** Devices a and b, peers of each other (a knows b's endpoint), after a's first packet reached b. */
  async function connectedPair(): Promise<{ a: Node; b: Node; toB: PeerSettings }> {
    const [a, b] = await Promise.all([startNode(0, threads, batched), startNode(0, threads, batched)]);
    const toB = {
      allowedIps: ['10.0.0.2/32'],
      endpoint: { address: '127.0.0.1', port: b.device.listenPort },
    };
    a.device.upsertPeer(b.publicKey, toB);
    b.device.upsertPeer(a.publicKey, { allowedIps: ['10.0.0.1/32'] });
    a.packets.inject(packet(100));
    await eventually('the first packet at b', () => b.packets.written.length === 1);
    return { a, b, toB };
  }

  test('counts what reached the socket: messages to a port it refuses (0) are not counted', async () => {
    const { a, b, toB } = await connectedPair();
    try {
      const sent = () => a.device.peers()[0]!.txBytes;
      const received = () => b.device.peers()[0]!.rxBytes;
      expect(sent()).toBe(received()); // the initiation and the packet
      const before = sent();
      const udpTx = (unit: 'packets' | 'bytes') =>
        counter(a.metrics, `tunnelbyte_node_udp_${unit}_total`, 'direction="tx"');
      const [packetsBefore, bytesBefore] = [await udpTx('packets'), await udpTx('bytes')];
      // Three messages to port 0, which the socket refuses (the kernel's own refusals are in
      // test/nodes/udp-netns.test.ts), then one to b, after them in the same turn.
      a.device.upsertPeer(b.publicKey, { ...toB, endpoint: { address: '127.0.0.1', port: 0 } });
      a.packets.inject(packet(200), packet(300), packet(400));
      a.device.upsertPeer(b.publicKey, toB);
      a.packets.inject(packet(500));
      await eventually('the last packet at b', () => b.packets.written.length === 2);
      expect(b.packets.written[1]).toEqual(packet(500));
      expect(sent()).toBe(before + transportLength(packet(500).length, DEFAULT_MTU));
      expect(sent()).toBe(received());
      // The node's own counters likewise; the three refused are counted apart.
      expect(await udpTx('packets')).toBe(packetsBefore + 1);
      expect(await udpTx('bytes')).toBe(bytesBefore + transportLength(packet(500).length, DEFAULT_MTU));
      expect(await counter(a.metrics, 'tunnelbyte_node_udp_send_drops_total', '')).toBe(3);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  test('a refusal is taken back only from the peer that counted it, not from one added again under its name', async () => {
    const { a, b, toB } = await connectedPair();
    // b refuses a peer's initiation that comes within HANDSHAKE_INITIATION_RATE_MS of the last one it took
    // (the flood rule, as wireguard-go's). The new peer's handshake below must come later, or a sends it
    // again 5 s on and counts it twice while b counts it once.
    await new Promise((resolve) => setTimeout(resolve, HANDSHAKE_INITIATION_RATE_MS));
    try {
      // A message for port 0, refused once it reaches the socket (with crypto threads: after its seal comes
      // back, a turn later), and in the same turn a UAPI replace_peers: the peer removed and added again.
      a.device.upsertPeer(b.publicKey, { ...toB, endpoint: { address: '127.0.0.1', port: 0 } });
      a.packets.inject(packet(200));
      const receivedBefore = b.device.peers()[0]!.rxBytes;
      a.device.removePeer(b.publicKey);
      a.device.upsertPeer(b.publicKey, toB);
      a.packets.inject(packet(300));
      await eventually('the packet after the new handshake at b', () => b.packets.written.length === 2);
      expect(b.packets.written[1]).toEqual(packet(300));
      // The new peer's txBytes is what it sent (a handshake and one message): b received exactly that.
      expect(a.device.peers()[0]!.txBytes).toBe(b.device.peers()[0]!.rxBytes - receivedBefore);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

test('a batch that throws part-way still ends: what it queued before the throw is sent', async () => {
  let sendsBeforeThrow = Infinity;
  const failingSend = (udp: UdpTransport): UdpTransport => ({
    ...udp,
    send: (datagram, to, peer) => {
      if (sendsBeforeThrow-- === 0) throw new Error('send failed');
      udp.send(datagram, to, peer);
    },
  });
  // Batched: the device corks the socket for its batch, and only the batch's end writes what it queued.
  const [a, b] = await Promise.all([startNode(0, 1, true, failingSend), startNode(0, 1, true)]);
  try {
    a.device.upsertPeer(b.publicKey, {
      allowedIps: ['10.0.0.2/32'],
      endpoint: { address: '127.0.0.1', port: b.device.listenPort },
    });
    b.device.upsertPeer(a.publicKey, { allowedIps: ['10.0.0.1/32'] });
    const packet = (n: number) => ipv4('10.0.0.1', '10.0.0.2', new Uint8Array(n).fill(n));
    a.packets.inject(packet(1));
    await eventually('the first packet at b', () => b.packets.written.length === 1);
    const heard = () => counter(a.metrics, 'tunnelbyte_node_udp_packets_total', 'direction="rx"');
    const heardBefore = await heard();
    sendsBeforeThrow = 1;
    expect(() => a.packets.inject(packet(2), packet(3))).toThrow('send failed');
    await eventually('the packet sent before the throw at b', () => b.packets.written.length === 2);
    // It left at the failed batch's end, not at the end of a's next read (b's keepalive, 10 s later).
    expect(await heard()).toBe(heardBefore);
    a.packets.inject(packet(4));
    await eventually('the next packet at b', () => b.packets.written.length === 3);
    expect(b.packets.written).toEqual([packet(1), packet(2), packet(4)]);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

/** A device with a fresh key and no peers, on a loopback socket unless `options` says otherwise. */
async function loneDevice(options: Partial<DeviceOptions> = {}): Promise<Device> {
  const privateKey = nacl.randomBytes(32);
  const tunnel = new Tunnel({ privateKey, randomBytes: secureRandomBytes, wallClockMs: Date.now });
  return Device.start({
    tunnel,
    privateKey,
    packets: new ChannelPackets(),
    listenPort: 0,
    openUdp: (o) => openUdp({ ...o, host: '127.0.0.1' }),
    ...options,
  });
}

test("the kernel's receive drops add up across a listen-port change", async () => {
  // The smallest receive buffer, and bursts sent in one turn: most of each burst is dropped.
  const device = await loneDevice({
    openUdp: (options) => openUdp({ ...options, host: '127.0.0.1', receiveBufferSize: 1 }),
  });
  const sender = createSocket('udp4');
  try {
    const burst = () => {
      for (let i = 0; i < 200; i++) sender.send(new Uint8Array(1000), device.listenPort, '127.0.0.1');
    };
    burst();
    await eventually('drops counted', () => device.udpReceiveDrops()! > 0);
    await device.setListenPort(0); // a new socket, counting from 0
    const carried = device.udpReceiveDrops()!;
    expect(carried).toBeGreaterThan(0); // the old socket's
    burst();
    await eventually('the new socket’s drops added', () => device.udpReceiveDrops()! > carried);
  } finally {
    sender.close();
    await device.close();
  }
});

test('a listen-port change that completes after close releases its new socket', async () => {
  const opened: UdpTransport[] = [];
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  const device = await loneDevice({
    openUdp: async (options) => {
      const udp = await openUdp({ ...options, host: '127.0.0.1' });
      opened.push(udp);
      if (opened.length > 1) await held; // the rebind is still under way when close() runs
      return udp;
    },
  });
  const change = device.setListenPort(0);
  await eventually('the second bind', () => opened.length === 2);
  await device.close();
  release();
  await expect(change).rejects.toThrow('device closed');
  const rebound = await openUdp({ port: opened[1]!.port, host: '127.0.0.1' });
  await rebound.close();
});

test('a handshake worker that dies is reported once and the device still closes', async () => {
  const device = await loneDevice({
    handshakeThreads: 2,
    handshakeWorkerUrl: new URL('data:text/javascript,process.exit(3)'),
  });
  const failures: string[] = [];
  device.onFailure((error) => failures.push(error.message));
  await eventually('the failure', () => failures.length > 0);
  await new Promise((resolve) => setTimeout(resolve, 100)); // the second worker's exit too
  expect(failures).toEqual(['a handshake worker exited (code 3)']);
  await device.close();
});

test('a UDP socket that stops receiving is a failure of the device, reported once with its port', async () => {
  let stopReceiving: (error: Error) => void = () => undefined;
  const device = await loneDevice({
    // The real socket; its receiver's failure (nodes/tun/udp.c, a descriptor that cannot be read any more or
    // a detached buffer: test/nodes/udp-addon.test.ts) is raised here by hand.
    openUdp: async (options) => {
      const udp = await openUdp({ ...options, host: '127.0.0.1' });
      return { ...udp, onError: (listener) => (stopReceiving = listener) };
    },
  });
  const failures: string[] = [];
  device.onFailure((error) => failures.push(error.message));
  stopReceiving(new Error('UDP receive: buffer detached'));
  stopReceiving(new Error('UDP receive: buffer detached'));
  expect(failures).toEqual([`UDP port ${device.listenPort}: UDP receive: buffer detached`]);
  await device.close();
});

describe('per-peer order with crypto threads', () => {
  // A node with two crypto threads serves four peers at once, two on each thread; each sends numbered
  // packets through it and the node sends numbered packets back. Within each peer, in both directions,
  // every packet arrives once and in the order it was sent.
  const PEERS = 4;
  const PACKETS = 400;
  const numbered = (source: string, destination: string, n: number) => {
    const payload = new Uint8Array(200 + (n % 300));
    payload[0] = n >> 8;
    payload[1] = n & 0xff;
    return ipv4(source, destination, payload);
  };
  const numbersFrom = (packets: Uint8Array[], source: number) =>
    packets.filter((packet) => packet[15] === source).map((packet) => (packet[20]! << 8) | packet[21]!);

  let node: Node;
  let peers: Node[];
  beforeAll(async () => {
    node = await startNode(0, 2);
    peers = await Promise.all(Array.from({ length: PEERS }, () => startNode()));
    peers.forEach((peer, i) => {
      node.device.upsertPeer(peer.publicKey, { allowedIps: [`10.1.0.${i + 1}/32`] });
      peer.device.upsertPeer(node.publicKey, {
        allowedIps: ['10.1.0.100/32'],
        endpoint: { address: '127.0.0.1', port: node.device.listenPort },
      });
    });
  });
  afterAll(async () => {
    await Promise.all([node, ...peers].map((n) => n.close()));
  });

  test('1. peers to node: every peer’s packets arrive in order', async () => {
    // A first packet each, so every handshake is done before the numbered run (staged packets are in
    // order too, but the queue holds 128).
    peers.forEach((peer, i) => peer.packets.inject(numbered(`10.1.0.${i + 1}`, '10.1.0.100', 0)));
    await eventually('the handshakes', () => node.packets.written.length === PEERS);
    expect(node.threads!.peersPerThread()).toEqual([2, 2]);
    for (let n = 1; n <= PACKETS; n += 40) {
      peers.forEach((peer, i) =>
        peer.packets.inject(
          ...Array.from({ length: 40 }, (_, k) => numbered(`10.1.0.${i + 1}`, '10.1.0.100', n + k)),
        ),
      );
      await new Promise((resolve) => setImmediate(resolve));
    }
    await eventually('every packet', () => node.packets.written.length === PEERS * (PACKETS + 1), {
      timeoutMs: 20_000,
    });
    const inOrder = Array.from({ length: PACKETS + 1 }, (_, n) => n);
    for (let i = 0; i < PEERS; i++) expect(numbersFrom(node.packets.written, i + 1)).toEqual(inOrder);
  });

  test('2. node to peers: every peer gets its packets in order; byte counters agree', async () => {
    for (let n = 0; n < PACKETS; n += 40) {
      node.packets.inject(
        ...Array.from({ length: 40 }, (_, k) =>
          peers.map((_peer, i) => numbered('10.1.0.100', `10.1.0.${i + 1}`, n + k)),
        ).flat(),
      );
      await new Promise((resolve) => setImmediate(resolve));
    }
    await eventually('every packet', () => peers.every((peer) => peer.packets.written.length === PACKETS), {
      timeoutMs: 20_000,
    });
    const inOrder = Array.from({ length: PACKETS }, (_, n) => n);
    for (const peer of peers) expect(numbersFrom(peer.packets.written, 100)).toEqual(inOrder);
    await eventually('counters to settle', () => peers.every((peer) => peer.device.peers()[0]!.rxBytes > 0));
    const atNode = new Map(node.device.peers().map((p) => [Buffer.from(p.publicKey).toString('hex'), p]));
    for (const peer of peers) {
      const mine = peer.device.peers()[0]!;
      const theirs = atNode.get(Buffer.from(peer.publicKey).toString('hex'))!;
      expect([theirs.txBytes, theirs.rxBytes]).toEqual([mine.rxBytes, mine.txBytes]);
    }
  });

  test('3. lone packets are sealed and opened by the engine, as without threads; a burst and the packet after it go to the thread, in order', async () => {
    const [peer] = peers;
    const exchange = async (n: number) => {
      const [atNode, atPeer] = [node.packets.written.length, peer!.packets.written.length];
      peer!.packets.inject(numbered('10.1.0.1', '10.1.0.100', n));
      await eventually('the packet at the node', () => node.packets.written.length === atNode + 1);
      node.packets.inject(numbered('10.1.0.100', '10.1.0.1', n));
      await eventually('the answer at the peer', () => peer!.packets.written.length === atPeer + 1);
    };
    // The first exchanges follow tests 1 and 2's bursts closely enough to count as their tail (BUSY_TURNS).
    for (let n = 0; n < BUSY_TURNS; n++) await exchange(2000 + n);
    const before = await cryptoMessages(node);
    for (let n = 2100; n < 2110; n++) await exchange(n);
    // (At least: the other peers' passive keepalives, 10 s after test 2 on a slow host, are lone ones too.)
    const lone = await cryptoMessages(node);
    expect(lone.inline).toBeGreaterThanOrEqual(before.inline + 20);
    expect(lone.handedOver).toBe(before.handedOver);

    // A burst of 40 in one turn: the first 4 done at once, the rest handed over; then one packet in the next
    // turn, which follows the burst (bulk traffic's turns stay with the threads) and arrives after it.
    const atPeer = peer!.packets.written.length;
    node.packets.inject(
      ...Array.from({ length: 40 }, (_, k) => numbered('10.1.0.100', '10.1.0.1', 3000 + k)),
    );
    await new Promise((resolve) => setImmediate(resolve));
    node.packets.inject(numbered('10.1.0.100', '10.1.0.1', 3040));
    await eventually('the burst and the one after', () => peer!.packets.written.length === atPeer + 41);
    // (At least, as above: another peer's keepalive in the burst's BUSY_TURNS is handed over too.)
    expect((await cryptoMessages(node)).handedOver).toBeGreaterThanOrEqual(before.handedOver + 37);
    const arrived = numbersFrom(peer!.packets.written.slice(atPeer), 100);
    expect(arrived).toEqual(Array.from({ length: 41 }, (_, k) => 3000 + k));
  });
});

test('dgram socket, 2 crypto threads (a node’s engine options): a burst of datagrams goes to the threads, and the engine keeps no view per datagram', async () => {
  const [node, peer] = await Promise.all([
    startNode(0, 2, false, undefined, nodeEngineOptions(DEFAULT_MTU, false)),
    startNode(0, 1, false),
  ]);
  try {
    node.device.upsertPeer(peer.publicKey, { allowedIps: ['10.2.0.1/32'] });
    peer.device.upsertPeer(node.publicKey, {
      allowedIps: ['10.2.0.2/32'],
      endpoint: { address: '127.0.0.1', port: node.device.listenPort },
    });
    const packet = (n: number) => ipv4('10.2.0.1', '10.2.0.2', new Uint8Array(200).fill(n));
    peer.packets.inject(packet(0));
    await eventually('the first packet', () => node.packets.written.length === 1);
    // 100 datagrams sent in one turn: dgram hands each to the node in a callback of its own.
    const before = await cryptoMessages(node);
    peer.packets.inject(...Array.from({ length: 100 }, (_, n) => packet(n + 1)));
    await eventually('the burst', () => node.packets.written.length === 101);
    expect(node.packets.written.map((p) => p[p.length - 1])).toEqual(
      Array.from({ length: 101 }, (_, n) => n),
    );
    // What the engine keeps per message object (only for a socket that hands the same ones in again).
    const engine = node.tunnel as unknown as { deliveredViews: Map<Uint8Array, Uint8Array> | undefined };
    expect(engine.deliveredViews?.size ?? 0).toBe(0);
    const { inline, handedOver } = await cryptoMessages(node);
    expect(handedOver - before.handedOver).toBeGreaterThan(inline - before.inline);
  } finally {
    await Promise.all([node.close(), peer.close()]);
  }
});

test('a new private key whose public key is a peer’s: the peer goes (as in wireguard-go), and its place on a crypto thread with it', async () => {
  const [node, peer] = await Promise.all([startNode(0, 2), startNode()]);
  try {
    node.device.upsertPeer(peer.publicKey, { allowedIps: ['10.3.0.1/32'] });
    peer.device.upsertPeer(node.publicKey, {
      allowedIps: ['10.3.0.2/32'],
      endpoint: { address: '127.0.0.1', port: node.device.listenPort },
    });
    peer.packets.inject(ipv4('10.3.0.1', '10.3.0.2', new Uint8Array(100)));
    await eventually('the first packet', () => node.packets.written.length === 1);
    expect(node.threads!.peersPerThread().reduce((a, b) => a + b)).toBe(1);

    node.device.setPrivateKey(peer.privateKey);
    expect(node.tunnel.hasPeer(peer.publicKey)).toBe(false);
    expect(node.threads!.peersPerThread()).toEqual([0, 0]);
  } finally {
    await Promise.all([node.close(), peer.close()]);
  }
});
