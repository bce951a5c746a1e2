// The offered-load rows of bench-tunnel (not a test): WireGuard peers that cost the sender almost nothing per
// packet, so that a 2-core host can load a server past one core. Real peers cannot: a wireguard-go client
// seals each packet as it sends it and spends about as much CPU as the server opens it with. Here each
// identity completes a real handshake with the server (crypto/tunnel.ts as the initiator), seals every
// packet of the run before it starts, and then only sends: the packets go out at a fixed rate with sendmmsg
// (nodes/udp.ts, batched), in order per peer, so the server's replay windows accept every one. With `gso`
// each sendmmsg message is one UDP GSO message (up to 64 KiB: 45 of these datagrams), which the veth
// carries whole: a server socket with UDP GRO on receives it as one batch, as a NIC's GRO would hand it
// over; any other gets the datagrams one by one, cut by the kernel. Without, one datagram per message, as
// these veths deliver them.
//
// Run by bench-tunnel in a client namespace, with one JSON argument (Setup below). Prints
// `ready <packets>` once everything is sealed, starts sending at SIGUSR1, and prints
// `sent <datagrams> refused <datagrams> bytes <sent bytes> seconds <from the first to the last>` when it has
// sent them all: a sender that fell behind its rate took longer. Every inner packet is IPv4 UDP of
// INNER_LENGTH bytes to `destination`, from its identity's own address (its allowed IP on the server).
import { performance } from 'node:perf_hooks';

import { AEAD_TAG_LENGTH, MESSAGE_TRANSPORT, TRANSPORT_HEADER_SIZE } from '../crypto/constants.js';
import { Tunnel, type TunnelAction } from '../crypto/tunnel.js';
import { setIpv4Checksum } from '../nodes/offload.js';
import { secureRandomBytes } from '../nodes/random.js';
import { noUdpSendCounts, openUdp, type UdpEndpoint, type UdpTransport } from '../nodes/udp.js';
import { ipv4Packet } from '../test/crypto/tunnel-pair.js';

interface Setup {
  server: { address: string; port: number; publicKey: string };
  identities: Array<{ privateKey: string; source: string }>;
  destination: { address: string; port: number };
  mbitPerSecond: number;
  seconds: number;
  gso: boolean;
}

const INNER_LENGTH = 1420; // the node's and wg-quick's default MTU: full-sized packets
const IPV4_HEADER = 20;
const SOURCE_PORT = 40000;
const HANDSHAKE_MS = 15_000;
const TICK_MS = 1; // pacing: each timer turn sends what is due by then

const setup = JSON.parse(process.argv[2] ?? '') as Setup;
const server: UdpEndpoint = { address: setup.server.address, port: setup.server.port };
const serverKey = Buffer.from(setup.server.publicKey, 'base64');

function innerPacket(source: string): Uint8Array {
  const packet = ipv4Packet(source, setup.destination.address, INNER_LENGTH, 0);
  packet[9] = 17; // UDP, its checksum 0 (none, as IPv4 allows)
  const udp = new DataView(packet.buffer, IPV4_HEADER);
  udp.setUint16(0, SOURCE_PORT);
  udp.setUint16(2, setup.destination.port);
  udp.setUint16(4, INNER_LENGTH - IPV4_HEADER);
  setIpv4Checksum(packet, IPV4_HEADER);
  return packet;
}

const sends = (actions: readonly TunnelAction[]) =>
  actions.flatMap((action) => (action.kind === 'send' ? [action.datagram] : []));

/** One peer of the server: its socket and, once `seal` ran, every transport message it will send. */
class Identity {
  private readonly tunnel: Tunnel;
  private readonly packet: Uint8Array;
  private sealed = new Uint8Array(0);
  private wireLength = 0;

  constructor(
    private readonly socket: UdpTransport,
    privateKey: string,
    source: string,
  ) {
    this.tunnel = new Tunnel({
      privateKey: Buffer.from(privateKey, 'base64'),
      randomBytes: secureRandomBytes,
      wallClockMs: Date.now,
      // Sealing gigabytes: each message is copied out at once, so the engine may reuse its buffers.
      reuseSendBuffers: true,
      reuseActions: true,
    });
    this.tunnel.upsertPeer(
      serverKey,
      { endpoint: server, allowedIps: [`${setup.destination.address}/32`] },
      0,
    );
    this.packet = innerPacket(source);
  }

  /** A real handshake: the first packet stages it; the server's response releases that packet. */
  async handshake(): Promise<void> {
    let done = false;
    this.socket.onDatagram((received, from) => {
      if (done) return; // while sending: keepalives and the like need no answer here
      for (const datagram of sends(this.tunnel.decapsulate(received, from, performance.now())))
        this.socket.send(datagram, server);
      done = this.tunnel.peers()[0]!.lastHandshakeUnixMs > 0;
    });
    for (const datagram of sends(this.tunnel.encapsulate(this.packet, performance.now())))
      this.socket.send(datagram, server);
    const deadline = performance.now() + HANDSHAKE_MS;
    while (!done) {
      if (performance.now() > deadline) throw new Error(`no handshake with ${server.address}:${server.port}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
      for (const datagram of sends(this.tunnel.tick(performance.now()))) this.socket.send(datagram, server);
    }
  }

  /** Seals `count` packets into one buffer, in counter order. */
  seal(count: number): void {
    for (let i = 0; i < count; i++) {
      const [datagram] = sends(this.tunnel.encapsulate(this.packet, performance.now()));
      // A transport message each, all of one length: no handshake slipped in (a rekey).
      if (datagram?.[0] !== MESSAGE_TRANSPORT || (i > 0 && datagram.length !== this.wireLength))
        throw new Error('the engine did not seal a transport message');
      if (i === 0) {
        this.wireLength = datagram.length;
        this.sealed = new Uint8Array(count * datagram.length);
      }
      this.sealed.set(datagram, i * this.wireLength);
    }
  }

  send(index: number): void {
    const at = index * this.wireLength;
    this.socket.send(this.sealed.subarray(at, at + this.wireLength), server);
  }
}

const sendCounts = noUdpSendCounts();
const identities: Identity[] = [];
for (const { privateKey, source } of setup.identities) {
  const socket = await openUdp({ host: '0.0.0.0', batched: true, offload: setup.gso, sendCounts });
  identities.push(new Identity(socket, privateKey, source));
}
await Promise.all(identities.map((identity) => identity.handshake()));

// The rate counts the outer UDP payload: INNER_LENGTH is the MTU, so the packet needs no padding.
const perSecond = (setup.mbitPerSecond * 1e6) / 8 / (TRANSPORT_HEADER_SIZE + INNER_LENGTH + AEAD_TAG_LENGTH);
const perIdentity = Math.ceil((perSecond * setup.seconds) / identities.length);
for (const identity of identities) identity.seal(perIdentity);
const total = perIdentity * identities.length;

// Listening before saying ready: Node's own SIGUSR1 (the inspector) would take a signal sent in between.
process.once('SIGUSR1', () => {
  const start = performance.now();
  let sent = 0;
  const timer = setInterval(() => {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * perSecond));
    for (; sent < due; sent++)
      identities[sent % identities.length]!.send(Math.floor(sent / identities.length));
    if (sent < total) return;
    clearInterval(timer);
    // Let the last batch reach the kernel (a microtask), then report.
    const seconds = (performance.now() - start) / 1000;
    setTimeout(() => {
      const { datagrams, refused, bytes } = sendCounts;
      process.stdout.write(`sent ${datagrams} refused ${refused} bytes ${bytes} seconds ${seconds}\n`);
      process.exit(0);
    }, 10);
  }, TICK_MS);
});
process.stdout.write(`ready ${total}\n`);
