// Prometheus metrics for the exit node, served only when asked (`--metrics 127.0.0.1:9586`). The data
// path bumps plain numbers (a per-packet prom-client call with labels would cost a map lookup each); the
// registry reads them at scrape time. Per-second rates are left to Prometheus (rate() over the counters).
// No label carries a key or an address: peers are counted, never named.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { Counter, Gauge, Registry } from 'prom-client';

import { REJECT_AFTER_TIME_MS } from '../crypto/constants.js';
import { handshakeTypeOf } from '../crypto/messages.js';
import { DROP_REASONS, type DropReason } from '../crypto/tunnel.js';
import { collectProcessMetrics } from '../src/lib/process-metrics.js';
import { OFFLOAD_DROP_REASONS, type OffloadDrops } from './offload.js';
import { noUdpOffloadCounts, noUdpSendCounts, type UdpOffloadCounts, type UdpSendCounts } from './udp.js';

/** WireGuard message types 1–4 by their first byte. */
const MESSAGE_TYPES = ['initiation', 'response', 'cookie_reply', 'transport'] as const;
type Direction = 'rx' | 'tx';

/** The engine's peers as the gauges read them at scrape time (crypto/tunnel.ts). */
export interface PeerCounts {
  readonly peerCount: number;
  forEachPeer(visit: (peer: { readonly lastHandshakeUnixMs: number }) => void): void;
}

/** The crypto threads' counts of the transport messages the engine asked them about (nodes/threads/pool.ts). */
export interface CryptoThreadCounts {
  readonly messages: Readonly<{ inline: number; handedOver: number }>;
}

/** The TUN's offload layer as the counters read it at scrape time (nodes/tun/index.ts). */
export interface OffloadCounts {
  offloadDrops(): Readonly<OffloadDrops>;
  superSegments(): Record<Direction, number>;
}

interface Traffic {
  packets: number;
  bytes: number;
}
const traffic = (): Record<Direction, Traffic> => ({
  rx: { packets: 0, bytes: 0 },
  tx: { packets: 0, bytes: 0 },
});

export class NodeMetrics {
  readonly registry = new Registry();
  /** UDP datagrams received, all of them (handshakes, cookies, data, and garbage). */
  private readonly udpReceived: Traffic = { packets: 0, bytes: 0 };
  /** Inner IP packets: rx = written to the TUN, tx = read from it. */
  private readonly inner = traffic();
  private readonly messages = new Map<string, number>();
  private readonly drops = new Map<DropReason, number>(DROP_REASONS.map((r) => [r, 0]));
  private readonly exported = new Map<string, number>();
  /** The batched UDP socket counts its GSO sends and GRO batches here (nodes/udp.ts). */
  readonly udpOffload: UdpOffloadCounts = noUdpOffloadCounts();
  /** The UDP socket counts here what it sent and what it refused: tx is what reached the kernel. */
  readonly udpSends: UdpSendCounts = noUdpSendCounts();

  /**
   * @param processMetrics the process's metrics (CPU, heap, GC, event loop: src/lib/process-metrics.ts), which
   * start their own observers: off for the start-up warm-up's throwaway devices
   */
  constructor(source: PeerCounts, wallClockMs: () => number = Date.now, processMetrics = true) {
    if (processMetrics) collectProcessMetrics(this.registry, 'tunnelbyte_node_');
    const registers = [this.registry];
    new Gauge({
      name: 'tunnelbyte_node_peers',
      help: 'Configured peers.',
      registers,
      collect() {
        this.set(source.peerCount);
      },
    });
    new Gauge({
      name: 'tunnelbyte_node_peers_active',
      help: 'Peers whose last handshake is recent enough for their session to be usable (180 s).',
      registers,
      collect() {
        const since = wallClockMs() - REJECT_AFTER_TIME_MS;
        let active = 0;
        source.forEachPeer((peer) => {
          if (peer.lastHandshakeUnixMs > since) active++;
        });
        this.set(active);
      },
    });
    const udpSends = this.udpSends;
    this.counter(
      'tunnelbyte_node_udp_packets_total',
      'UDP datagrams received and sent (tx: what the kernel took, a GSO message as its datagrams).',
      ['direction'],
      () => [
        [{ direction: 'rx' }, this.udpReceived.packets],
        [{ direction: 'tx' }, udpSends.datagrams],
      ],
    );
    this.counter(
      'tunnelbyte_node_udp_bytes_total',
      'UDP payload bytes received and sent, as udp_packets_total.',
      ['direction'],
      () => [
        [{ direction: 'rx' }, this.udpReceived.bytes],
        [{ direction: 'tx' }, udpSends.bytes],
      ],
    );
    this.counter(
      'tunnelbyte_node_udp_send_drops_total',
      'UDP datagrams to send that the kernel refused (an unreachable or prohibited route, a full buffer) ' +
        'or the socket could not send (an endpoint it cannot address, closed); not in udp_packets_total.',
      [],
      () => [[{}, udpSends.refused]],
    );
    const udpOffload = this.udpOffload;
    this.counter(
      'tunnelbyte_node_udp_offload_messages_total',
      'UDP GSO messages sent (tx) and GRO batches received (rx), each several datagrams in one message.',
      ['direction'],
      () => [
        [{ direction: 'rx' }, udpOffload.groBatches],
        [{ direction: 'tx' }, udpOffload.gsoMessages],
      ],
    );
    this.counter(
      'tunnelbyte_node_udp_offload_datagrams_total',
      'UDP datagrams that crossed the socket in those GSO messages (tx) and GRO batches (rx).',
      ['direction'],
      () => [
        [{ direction: 'rx' }, udpOffload.groDatagrams],
        [{ direction: 'tx' }, udpOffload.gsoDatagrams],
      ],
    );
    this.counter(
      'tunnelbyte_node_tunnel_packets_total',
      'Inner IP packets delivered to the interface (rx) and read from it (tx).',
      ['direction'],
      () => (['rx', 'tx'] as const).map((d) => [{ direction: d }, this.inner[d].packets]),
    );
    this.counter(
      'tunnelbyte_node_tunnel_bytes_total',
      'Inner IP bytes, as tunnel_packets_total.',
      ['direction'],
      () => (['rx', 'tx'] as const).map((d) => [{ direction: d }, this.inner[d].bytes]),
    );
    this.counter(
      'tunnelbyte_node_handshake_messages_total',
      'Handshake messages received and sent (tx: handed to the socket, refused ones included), by type.',
      ['type', 'direction'],
      () =>
        MESSAGE_TYPES.slice(0, 3).flatMap((type) =>
          (['rx', 'tx'] as const).map((d): [Record<'type' | 'direction', string>, number] => [
            { type, direction: d },
            this.messages.get(`${type}/${d}`) ?? 0,
          ]),
        ),
    );
    this.counter('tunnelbyte_node_drops_total', 'Packets dropped by the engine, by reason.', ['reason'], () =>
      [...this.drops].map(([reason, count]) => [{ reason }, count]),
    );
  }

  /** Counts what the TUN's offload layer split, coalesced and dropped. */
  countOffload(offload: OffloadCounts): void {
    this.counter(
      'tunnelbyte_node_offload_drops_total',
      'Frames read from the TUN with a bad virtio_net_hdr or GSO headers, by reason.',
      ['reason'],
      () => {
        const drops = offload.offloadDrops();
        return OFFLOAD_DROP_REASONS.map((reason) => [{ reason }, drops[reason]]);
      },
    );
    this.counter(
      'tunnelbyte_node_offload_super_segments_total',
      'TCP super-segments coalesced for the interface (rx) and split from it (tx).',
      ['direction'],
      () => {
        const counts = offload.superSegments();
        return (['rx', 'tx'] as const).map((d) => [{ direction: d }, counts[d]]);
      },
    );
  }

  /** Counts where the crypto threads' transport messages were sealed and opened (a node with `--threads N > 1`). */
  countCryptoThreads(pool: CryptoThreadCounts): void {
    // From now on: the start-up warm-up's messages, counted by the same pool, are not the node's traffic.
    const { handedOver, inline } = pool.messages;
    this.counter(
      'tunnelbyte_node_crypto_messages_total',
      "Transport messages sealed and opened with crypto threads: handed over to a thread's ring " +
        '(handed_over; a full ring drops one as queue_full) or by the engine on the main thread at once, as ' +
        'without threads (inline).',
      ['path'],
      () => [
        [{ path: 'handed_over' }, pool.messages.handedOver - handedOver],
        [{ path: 'inline' }, pool.messages.inline - inline],
      ],
    );
  }

  /**
   * The datagrams the kernel dropped for the node's socket before they were read (`read`, at each scrape).
   * Only for a socket that can tell: a counter without labels would otherwise read 0.
   */
  countUdpReceiveDrops(read: () => number): void {
    this.counter(
      'tunnelbyte_node_udp_receive_drops_total',
      'UDP datagrams the kernel dropped for the socket before the node read them (a full receive buffer, ' +
        'a bad checksum); not in udp_packets_total.',
      [],
      () => [[{}, read()]],
    );
  }

  /** A datagram received: counted, and its message type. */
  datagramReceived(datagram: Uint8Array): void {
    this.udpReceived.packets++;
    this.udpReceived.bytes += datagram.length;
    this.messageType('rx', datagram);
  }

  /** A datagram handed to the socket: its message type (the socket counts what it sent: udpSends). */
  datagramSending(datagram: Uint8Array): void {
    this.messageType('tx', datagram);
  }

  // Handshake messages by type, of their exact size: a datagram that only starts like one is a malformed
  // drop, not a handshake message received.
  private messageType(direction: Direction, datagram: Uint8Array): void {
    const type = handshakeTypeOf(datagram);
    if (type !== 0) {
      const key = `${MESSAGE_TYPES[type - 1]}/${direction}`;
      this.messages.set(key, (this.messages.get(key) ?? 0) + 1);
    }
  }

  innerPacket(direction: Direction, packet: Uint8Array): void {
    const t = direction === 'rx' ? this.inner.rx : this.inner.tx;
    t.packets++;
    t.bytes += packet.length;
  }

  /** Inner IP packets counted so far: rx written to the TUN, tx read from it. */
  innerPackets(direction: Direction): number {
    return this.inner[direction].packets;
  }

  drop(reason: DropReason): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
  }

  /** A counter whose values are plain numbers read at scrape time. */
  private counter<L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    read: () => Array<[Record<L, string>, number]>,
  ): void {
    const exported = this.exported;
    new Counter<L>({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        for (const [labels, value] of read()) {
          const id = `${name}${JSON.stringify(labels)}`;
          const delta = value - (exported.get(id) ?? 0);
          // A reading below the last (a source that started again, or is gone) leaves the counter as it is:
          // prom-client throws rather than decrease one, and that would fail the whole scrape.
          if (delta < 0) continue;
          exported.set(id, value);
          this.inc(labels as never, delta);
        }
      },
    });
  }
}

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Serves GET /metrics on host:port (port 0 picks a free one). */
export async function serveMetrics(metrics: NodeMetrics, host: string, port: number): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404).end();
      return;
    }
    metrics.registry.metrics().then(
      (body) => response.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
      () => response.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
