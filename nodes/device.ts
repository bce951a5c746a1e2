// The I/O shell around the sans-IO engine: UDP datagrams go to tunnel.decapsulate, packets read from the
// interface go to tunnel.encapsulate, and the actions that come back are carried out here (send → UDP,
// deliver → interface, drop → metrics). The device is also what the UAPI configures.
import { MESSAGE_INITIATION, MESSAGE_TRANSPORT, UNDER_LOAD_HANDSHAKE_BACKLOG } from '../crypto/constants.js';
import { handshakeTypeOf } from '../crypto/messages.js';
import { type Endpoint, endpointAddress } from '../crypto/peer.js';
import { sourceKey } from '../crypto/ratelimiter.js';
import { secret } from '../crypto/secret.js';
import type { PeerCounters, PeerSettings, PeerStatus, Tunnel, TunnelAction } from '../crypto/tunnel.js';
import { HandshakeWorkers } from './handshakes.js';
import type { NodeMetrics } from './metrics.js';
import type { CryptoThreads } from './threads/pool.js';
import { monotonicNow, TimerScheduler } from './scheduler.js';
import type { UdpEndpoint, UdpOptions, UdpTransport } from './udp.js';
import type { UapiDevice, UapiDeviceStatus } from './uapi-protocol.js';

/** Where inner packets come from and go to: a TUN interface, or a userspace stack later. */
export interface PacketIo {
  onPackets(listener: (packets: Uint8Array[]) => void): void;
  /** Returns how many packets were accepted. The packets are valid during the call only. */
  writeMany(packets: readonly Uint8Array[]): number;
  /** Hands the onPackets listener, now, what already waits to be read (Tun.readBack); optional. */
  readBack?(): void;
  close(): void;
}

export type OpenUdp = (options: UdpOptions) => Promise<UdpTransport>;

export interface DeviceOptions {
  tunnel: Tunnel;
  privateKey: Uint8Array;
  packets: PacketIo;
  openUdp: OpenUdp;
  /** 0 lets the kernel pick a port. */
  listenPort: number;
  metrics?: NodeMetrics;
  clock?: () => number;
  /** Worker threads that answer handshake initiations (nodes/handshakes.ts); 0 or absent: inline. */
  handshakeThreads?: number;
  /** The compiled handshake worker, for callers that do not run from dist/ (tests). */
  handshakeWorkerUrl?: URL;
  /** The crypto threads the engine's seal and open actions go to (the engine made with them). */
  threads?: CryptoThreads;
}

/**
 * Initiations from one source (an IPv4 address or an IPv6 /64, as the rate limiter keys them, whatever the
 * port) that one event-loop turn takes further than the mac1 check: the rest are dropped as rate_limited. A
 * flood from one address was otherwise answered in full (a cookie reply each, on the main thread): at 100k a
 * second the socket's queue overflowed, and real peers lost their handshakes and their traffic with it, where
 * wireguard-go's bounded handshake queue drops a flood unread. Counted first towards the turn's backlog: a
 * flood still puts the node under load. As many as that backlog's threshold: one source reaches the cap only
 * once the node is under load, so many peers behind one address (a NAT; the handshake benchmark's peers on
 * loopback) are not held back before.
 */
const INITIATIONS_PER_SOURCE_PER_TURN = UNDER_LOAD_HANDSHAKE_BACKLOG;

export class Device implements UapiDevice {
  private readonly tunnel: Tunnel;
  private readonly packets: PacketIo;
  private readonly openUdpSocket: OpenUdp;
  private readonly metrics: NodeMetrics | undefined;
  private readonly clock: () => number;
  private readonly scheduler: TimerScheduler<TunnelAction>;
  private privateKey: Uint8Array | undefined;
  private udp: UdpTransport | undefined;
  private handshakesThisTurn = 0;
  /** This turn's initiations by source (INITIATIONS_PER_SOURCE_PER_TURN). */
  private readonly initiationsBySource = new Map<string, number>();
  /** What the sockets replaced by setListenPort dropped (udpReceiveDrops). */
  private droppedByClosedSockets = 0;
  /**
   * The clock as read once per event-loop turn by the data path (turnNow). Undefined between turns, which
   * keeps the field tagged: it holds the clock's own heap number and hands out that one, where a field of
   * doubles would box its value anew on every read.
   */
  private turnTime: number | undefined = undefined;
  private readonly deliveries: Uint8Array[] = [];
  private deliveryCount = 0;
  /**
   * Inside a read's batch (a UDP or a TUN read): its end (endBatch) writes the deliveries, the queued
   * datagrams and forgets the turn's clock, so nothing is queued for the end of the turn. Outside one
   * (timers, handshake answers, the crypto threads' results), microtasks do that.
   */
  private inBatch = false;
  /** The batch was opened by a read-back of the crypto threads' results (ended by their `flushed`). */
  private resultsBatch = false;
  /** A UDP batch's end is reading the interface back (networkBatchEnded): that batch's end ends it. */
  private readingBack = false;
  private readonly threads: CryptoThreads | undefined;
  private readonly handshakes: HandshakeWorkers | undefined;
  private failure: Error | undefined;
  private failureListener: ((error: Error) => void) | undefined;
  private closed = false;

  private constructor(options: DeviceOptions) {
    this.tunnel = options.tunnel;
    this.privateKey = secret(Uint8Array.from(options.privateKey));
    this.packets = options.packets;
    this.openUdpSocket = options.openUdp;
    this.metrics = options.metrics;
    this.clock = options.clock ?? monotonicNow;
    this.scheduler = new TimerScheduler(this.tunnel, (actions) => this.perform(actions), this.clock);
    this.threads = options.threads;
    // A read-back of the threads' results is a batch too, unless it runs inside a read's batch.
    this.threads?.attach({
      sealed: (datagram, to, peer) => {
        this.beginResultsBatch();
        this.metrics?.datagramSending(datagram);
        this.udp?.send(datagram, to, peer);
      },
      opened: (keypair, message, plainLength, from) => {
        this.beginResultsBatch();
        this.perform(this.tunnel.transportOpened(keypair, message, plainLength, from, this.turnNow()));
      },
      rejected: (reason) => this.metrics?.drop(reason),
      unsealed: (peer, plainLength) => {
        this.tunnel.sealDropped(peer, plainLength);
        this.metrics?.drop('keypair_expired');
      },
      flushed: () => {
        this.writeDeliveries(); // they are views into the ring, whose space is reused next
        this.scheduler.rearmIfEarlier();
        if (!this.resultsBatch) return;
        this.resultsBatch = false;
        this.endBatch();
      },
    });
    if (options.handshakeThreads) {
      this.handshakes = new HandshakeWorkers({
        threads: options.handshakeThreads,
        privateKey: options.privateKey,
        ...(options.handshakeWorkerUrl && { workerUrl: options.handshakeWorkerUrl }),
        onAnswer: (answer, senderIndex, from) => {
          if (answer === undefined || this.privateKey === undefined) {
            this.metrics?.drop('handshake_invalid');
            return;
          }
          this.perform(this.tunnel.acceptInitiation(answer, senderIndex, from, this.clock()));
          this.scheduler.rearmIfEarlier();
        },
        onFailure: (error) => this.fail(error),
      });
    }
  }

  static async start(options: DeviceOptions): Promise<Device> {
    const device = new Device(options);
    await device.setListenPort(options.listenPort);
    device.packets.onPackets((batch) => device.fromInterface(batch));
    return device;
  }

  /**
   * A helper thread failed, or the UDP socket stopped receiving (once): the device no longer answers
   * handshakes or hears its peers, and should be stopped.
   */
  onFailure(listener: (error: Error) => void): void {
    this.failureListener = listener;
    if (this.failure !== undefined) listener(this.failure);
  }

  private fail(error: Error): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.failureListener?.(error);
  }

  get listenPort(): number {
    return this.udp?.port ?? 0;
  }

  /**
   * Datagrams the kernel dropped before the device read them, over every socket it has had; undefined where
   * its socket cannot tell.
   */
  udpReceiveDrops(): number | undefined {
    const current = this.udp?.receiveDrops();
    return current === undefined ? undefined : this.droppedByClosedSockets + current;
  }

  // --- data path -------------------------------------------------------------------------------------

  private fromNetwork(datagram: Uint8Array, from: UdpEndpoint): void {
    this.metrics?.datagramReceived(datagram);
    if (this.privateKey === undefined) return; // no identity: wireguard-go drops everything
    this.beginReadBatch(true);
    // Only initiations with a valid mac1 count towards the backlog: datagrams anyone can make without the
    // key must not send real peers to the cookie round trip (a 5 s retransmission). The others are dropped
    // here, at the cost of one MAC.
    let fromSource = 0;
    if (handshakeTypeOf(datagram) === MESSAGE_INITIATION) {
      const refused = this.tunnel.screenInitiation(datagram);
      if (refused !== undefined) {
        this.perform(refused);
        return;
      }
      if (++this.handshakesThisTurn === 1) setImmediate(this.handshakeTurnEnded);
      const source = sourceKey(endpointAddress(from)) ?? from.address;
      fromSource = (this.initiationsBySource.get(source) ?? 0) + 1;
      this.initiationsBySource.set(source, fromSource);
    }
    const now = this.turnNow();
    // Node emits a socket's whole read batch in one turn: initiations counted this turn are the backlog,
    // or those the handshake workers have not answered yet, when more.
    const backlog = Math.max(this.handshakesThisTurn, this.handshakes?.backlog ?? 0);
    if (backlog >= UNDER_LOAD_HANDSHAKE_BACKLOG) this.tunnel.markUnderLoad(now);
    if (fromSource > INITIATIONS_PER_SOURCE_PER_TURN) {
      this.metrics?.drop('rate_limited');
      return;
    }
    if (datagram[0] === MESSAGE_INITIATION) {
      if (this.handshakes !== undefined) {
        // Admitted here (mac1; cookies under load), answered by a worker, accepted in onAnswer.
        const refused = this.tunnel.admitInitiation(datagram, from, now);
        if (refused === undefined) this.handshakes.submit(datagram, from);
        else this.perform(refused);
      } else {
        // Admitted, then answered inline; the engine copies an admitted one, not a flood's.
        this.perform(this.tunnel.respondToInitiation(datagram, from, now));
        this.scheduler.rearmIfEarlier();
      }
      return;
    }
    // The datagram may live in a buffer the next UDP batch reuses. Transport messages are consumed before
    // decapsulate returns; other handshake messages (rare) are copied, so no handshake state can alias them.
    const owned = datagram[0] === MESSAGE_TRANSPORT ? datagram : datagram.slice();
    this.threads?.makeRoom(datagram.length, false);
    this.perform(this.tunnel.decapsulate(owned, from, now));
    this.scheduler.rearmIfEarlier();
  }

  private fromInterface(batch: Uint8Array[]): void {
    if (this.privateKey === undefined) return;
    const readBack = this.readingBack;
    this.beginReadBatch(false);
    // A batch ends even if it throws part-way: corked, the socket would hold every later send.
    try {
      const now = this.turnNow();
      // Indexed loops on the data path: a for-of over arrays of more than one shape (the engine's reused
      // result, its frozen empty one, fresh ones from configuration calls) allocates an iterator and a
      // result object per element once V8 stops optimizing it away.
      for (let i = 0; i < batch.length; i++) {
        const packet = batch[i]!;
        this.metrics?.innerPacket('tx', packet);
        this.threads?.makeRoom(packet.length, true);
        this.perform(this.tunnel.encapsulate(packet, now));
      }
      this.scheduler.rearmIfEarlier();
    } finally {
      if (!readBack) this.endReadBatch();
    }
  }

  private beginResultsBatch(): void {
    if (this.inBatch) return;
    this.resultsBatch = true;
    this.beginBatch();
  }

  private beginBatch(): void {
    if (this.inBatch) return;
    this.inBatch = true;
    this.udp?.cork();
  }

  /** A UDP (`datagram`) or TUN read's batch: the crypto threads' turn ends with it (endReadBatch). */
  private beginReadBatch(datagram: boolean): void {
    this.threads?.readBatchBegan(datagram);
    this.beginBatch();
  }

  /**
   * The threads' turn ends first, inside the batch: the results read back now leave with the batch's own
   * datagrams and share its clock reading.
   */
  private endReadBatch(): void {
    try {
      this.threads?.readBatchEnded();
    } finally {
      this.endBatch();
    }
  }

  /**
   * A UDP read's batch is done. When it wrote packets to the interface, what the host answered to them while
   * they were written (the kernel handles a TUN write in the writer's system call: an echo reply, an ACK, the
   * data an ACK released) is read back and sealed now, and leaves in this batch's flush, rather than after
   * another event-loop wakeup. Batched UDP only: dgram ends a batch at every datagram, and a read per
   * datagram would cost a system call each, mostly finding nothing.
   */
  private readonly networkBatchEnded = (): void => {
    try {
      if (this.inBatch && this.deliveryCount > 0 && this.udp?.batched === true) {
        this.writeDeliveries();
        this.readingBack = true;
        this.packets.readBack?.();
      }
    } finally {
      this.readingBack = false;
      this.endReadBatch();
    }
  };

  /** A read's batch is done: its packets and datagrams go out now, in one native call each. */
  private readonly endBatch = (): void => {
    if (!this.inBatch) return;
    this.inBatch = false;
    try {
      this.writeDeliveries();
    } finally {
      this.udp?.uncork();
      this.turnTime = undefined;
    }
  };

  /**
   * The clock, read once per batch (or per event-loop turn outside one): a UDP or TUN batch's packets share
   * one reading (they arrive microseconds apart), where a reading per packet would be a new heap number per
   * packet.
   */
  private turnNow(): number {
    if (this.turnTime === undefined) {
      this.turnTime = this.clock();
      if (!this.inBatch) queueMicrotask(this.turnEnded);
    }
    // Read back from the field, never the clock's result itself: optimized code may hold that unboxed and
    // box it again for every call it is passed to.
    return this.turnTime;
  }

  // The data path's callbacks are made once: a closure over `this` inside a data-path method would make V8
  // allocate that method's context on every call, made or not.
  private readonly turnEnded = (): void => {
    this.turnTime = undefined;
  };

  private readonly handshakeTurnEnded = (): void => {
    this.handshakesThisTurn = 0;
    this.initiationsBySource.clear();
  };

  private perform(actions: TunnelAction[]): void {
    for (let i = 0; i < actions.length; i++) {
      const action = actions[i]!;
      switch (action.kind) {
        case 'send':
          this.metrics?.datagramSending(action.datagram);
          this.udp?.send(action.datagram, action.to, action.peer);
          break;
        case 'deliver':
          this.metrics?.innerPacket('rx', action.packet);
          if (this.deliveryCount === 0 && !this.inBatch) queueMicrotask(this.writeDeliveries);
          this.deliveries[this.deliveryCount++] = action.packet;
          break;
        case 'drop':
          this.metrics?.drop(action.reason);
          break;
        case 'seal':
          if (!this.threads?.seal(action)) {
            this.tunnel.sealDropped(action.peer, action.packet.length);
            this.metrics?.drop('queue_full');
          }
          break;
        case 'open':
          if (!this.threads?.open(action)) this.metrics?.drop('queue_full');
          break;
      }
    }
  }

  // Packets for the interface are written when the batch that produced them is done (endBatch, or a
  // microtask outside a read's batch): one native call per UDP batch. They may be views into the UDP
  // batch's buffer, which is reused only by the next read.
  // The array is refilled from its start and cut to the turn's count, never emptied: emptied, an array gives
  // up its storage and grows it again, piece by piece, every batch.
  private readonly writeDeliveries = (): void => {
    const count = this.deliveryCount;
    this.deliveryCount = 0;
    if (this.closed || count === 0) return;
    if (this.deliveries.length !== count) this.deliveries.length = count; // a length store calls the runtime
    this.packets.writeMany(this.deliveries);
  };

  // --- configuration (UAPI and startup) --------------------------------------------------------------

  status(): UapiDeviceStatus {
    const status: UapiDeviceStatus = { listenPort: this.listenPort, fwmark: 0, peers: this.tunnel.peers() };
    if (this.privateKey) status.privateKey = Uint8Array.from(this.privateKey);
    return status;
  }

  peers(): PeerStatus[] {
    return this.tunnel.peers();
  }

  get peerCount(): number {
    return this.tunnel.peerCount;
  }

  hasPeer(publicKey: Uint8Array): boolean {
    return this.tunnel.hasPeer(publicKey);
  }

  forEachPeer(visit: (peer: PeerCounters) => void): void {
    this.tunnel.forEachPeer(visit);
  }

  publicKey(): Uint8Array | undefined {
    return this.privateKey && this.tunnel.publicKey;
  }

  setPrivateKey(privateKey: Uint8Array | undefined): void {
    this.privateKey = privateKey && secret(Uint8Array.from(privateKey));
    if (privateKey) {
      // The engine drops a peer that has our new public key (as wireguard-go): its thread's place goes too.
      this.tunnel.setPrivateKey(privateKey);
      this.threads?.peerRemoved(Buffer.from(this.tunnel.publicKey).toString('base64'));
      this.handshakes?.setPrivateKey(privateKey);
    }
    this.scheduler.rearm();
  }

  /** Binds the new port before letting the old one go, so a failed rebind leaves the device as it was. */
  async setListenPort(port: number): Promise<void> {
    if (this.closed) throw new Error('device closed');
    if (this.udp && port !== 0 && port === this.udp.port) return;
    const metrics = this.metrics;
    const counts = metrics && { offloadCounts: metrics.udpOffload, sendCounts: metrics.udpSends };
    const udp = await this.openUdpSocket({ port, ...counts });
    // close() may have run while the socket was being bound: it never saw this one.
    if (this.closed) {
      await udp.close();
      throw new Error('device closed');
    }
    udp.onDatagram((datagram, from) => this.fromNetwork(datagram, from), this.networkBatchEnded);
    udp.onError((error) => this.fail(new Error(`UDP port ${udp.port}: ${error.message}`)));
    // txBytes counts what reached the socket: what it refused is given back.
    udp.onRefused((peer, bytes) => this.tunnel.unsent(peer, bytes));
    const previous = this.udp;
    this.droppedByClosedSockets += previous?.receiveDrops() ?? 0;
    this.udp = udp;
    await previous?.close();
  }

  /** Node cannot set SO_MARK on a socket; only "no mark" can be honoured. */
  setFwmark(mark: number): void {
    if (mark !== 0) throw new Error('fwmark is not supported');
  }

  removeAllPeers(): void {
    for (const peer of this.tunnel.peers()) this.removePeerOnly(peer.publicKey);
    this.handshakes?.removeAllPeers();
    this.scheduler.rearm();
  }

  upsertPeer(publicKey: Uint8Array, settings: PeerSettings): void {
    const known = this.handshakes !== undefined && this.tunnel.hasPeer(publicKey);
    this.perform(this.tunnel.upsertPeer(publicKey, settings, this.clock()));
    this.handshakes?.upsertPeer(publicKey, settings.presharedKey, known);
    this.scheduler.rearm();
  }

  removePeer(publicKey: Uint8Array): void {
    this.removePeerOnly(publicKey);
    this.handshakes?.removePeer(publicKey);
    this.scheduler.rearm();
  }

  private removePeerOnly(publicKey: Uint8Array): void {
    if (this.tunnel.removePeer(publicKey))
      this.threads?.peerRemoved(Buffer.from(publicKey).toString('base64'));
  }

  /** One initiation to a peer at an endpoint kept from before a restart (Tunnel.resumeHandshake). */
  resumeHandshake(publicKey: Uint8Array, endpoint: Endpoint): void {
    this.perform(this.tunnel.resumeHandshake(publicKey, endpoint, this.clock()));
    this.scheduler.rearmIfEarlier();
  }

  /** Stops timers, closes the UDP socket and the interface. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.scheduler.stop();
    await this.handshakes?.close();
    await this.udp?.close();
    this.packets.close();
  }
}
