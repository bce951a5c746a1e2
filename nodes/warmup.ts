// Warms the data path before the node's first real packet. V8 runs new code in its interpreter (or its
// baseline compiler) until the code is hot, and a fresh node would carry its first thousands of packets
// that way: an idle ping through a cold node took about 1.4 ms where the same node, warm, took 0.8 ms
// (scripts/bench-tunnel's idle row measures exactly those first pings). So at start-up:
// - warmDataPath: two throwaway engines, configured as the node's own, handshake with each other and carry
//   a few thousand packets both ways, IPv4 and IPv6, small and full size, in memory;
// - warmDevicePath: then two throwaway devices do the same over the node's kind of UDP socket on loopback,
//   a few packets per event-loop turn, so the device's and the socket's per-packet and per-turn code is hot
//   too (a lone ping crosses each once; warm, the node's idle ping went from about 0.70 to 0.50 ms). With
//   offloads, a TCP flow as well, in the shapes a TUN hands bulk traffic over in: super-segments split on the
//   way in and coalesced again on the way out, and the ACKs and small segments back. Without it, a node's
//   first bulk transfer compiled that code as it went, and again at each shape it had not met yet.
// No packet leaves the host, and no key outlives the call.
import { closeSync, openSync } from 'node:fs';
import { constants } from 'node:os';

import type { Endpoint } from '../crypto/peer.js';
import { openTransport, sealTransportInPlace } from '../crypto/messages.js';
import { createTransportCipher } from '../crypto/primitives.js';
import { Tunnel, type TunnelAction, type TunnelOptions } from '../crypto/tunnel.js';
import { Device, type OpenUdp } from './device.js';
import { NodeMetrics } from './metrics.js';
import {
  PROTO_ICMP,
  PROTO_ICMPV6,
  PROTO_TCP,
  setIpv4Checksum,
  setTcpOffload,
  VNET_HEADER_SIZE,
} from './offload.js';
import type { CryptoThreads } from './threads/pool.js';
import { createRing, HEADER_BYTES, ringViews } from './threads/ring.js';
import { loadAddon } from './tun/addon.js';
import { openTun, type Tun, type TunAddon } from './tun/index.js';

/** Packets per direction: enough for V8 to optimize every function the data path runs. */
export const WARM_PACKETS = 2000;
/**
 * Event-loop turns per direction through the warm-up devices: every other turn a few packets of each kind,
 * in between a lone ping, as an idle node sees them (the same length in the same place, turn after turn,
 * takes other branches than a mix does). The code that runs once a turn (the socket's receive callback, the
 * batch ends, the TUN's writes) gets hot by turns, not packets: V8 optimized none of it after 400 turns and
 * most of it after 1200, which took an idle ping's time in the node from about 458 to 427 µs (median of six
 * runs each, 2 threads) for about 0.1 s more start-up.
 */
const WARM_TURNS = 1200;
const WARM_PACKETS_PER_TURN = 4;
/** The routed packets one side hands its device in `turn`. */
const routedInTurn = (turn: number) => (turn % 2 === 0 ? WARM_PACKETS_PER_TURN : 1);
/** With offloads, every TCP_EVERY turns, a turn of a few packets is followed by a TCP flow's reads (tcpReads). */
const TCP_EVERY = 16;
const tcpInTurn = (turn: number, tunOffload: boolean) => tunOffload && turn % TCP_EVERY === 0;
/** Packets the device warm-up carries, both ways together, in `turns` turns. */
function devicePackets(turns: number, tunOffload: boolean): number {
  let packets = 0;
  for (let turn = 0; turn < turns; turn++) {
    packets += 2 * routedInTurn(turn);
    if (tcpInTurn(turn, tunOffload)) packets += TCP_PACKETS_PER_TURN;
  }
  return packets;
}
/** Packets the device warm-up carries, both ways together, into stand-in TUNs with offloads or without. */
export const warmDevicePackets = (tunOffload: boolean) => devicePackets(WARM_TURNS, tunOffload);
/**
 * How long one turn may take before the warm-up gives up: a loopback that drops what it is given must not
 * hold up the start for long, while a machine busy enough to starve this process for a while (a 2-core CI
 * runner with the test suite in parallel) still completes it. A healthy turn takes well under a millisecond.
 */
const WARM_TURN_TIMEOUT_MS = 2_000;
const LOOPBACK = '127.0.0.1';
// Documentation addresses (RFC 5737, RFC 3849): endpoints and inner addresses of the two engines.
const ENDPOINTS: readonly [Endpoint, Endpoint] = [
  { address: '192.0.2.1', port: 1 },
  { address: '192.0.2.2', port: 2 },
];
const INNER = [
  { v4: [192, 0, 2, 101], v6: 0x01 },
  { v4: [192, 0, 2, 102], v6: 0x02 },
] as const;
const V6_PREFIX = [0x20, 0x01, 0x0d, 0xb8];

/**
 * An IP packet of `length` bytes from engine `from` to the other one, with the header fields the engine reads
 * and the protocol the TUN reader sorts by (offload.ts latencyFirst): ICMP for a ping, else none.
 */
function packet(version: 4 | 6, length: number, from: 0 | 1, ping = false): Uint8Array {
  // A ping lies off a word boundary, as a TUN read's lone packet behind its 10-byte vnet header may.
  const bytes = ping ? new Uint8Array(length + 2).subarray(2) : new Uint8Array(length);
  const [source, destination] = [INNER[from], INNER[1 - from]!];
  if (version === 4) {
    bytes.set([0x45, 0, length >> 8, length & 0xff], 0);
    bytes[9] = ping ? PROTO_ICMP : 0;
    bytes.set([...source.v4, ...destination.v4], 12);
  } else {
    const payload = length - 40;
    bytes.set([0x60, 0, 0, 0, payload >> 8, payload & 0xff, ping ? PROTO_ICMPV6 : 0], 0);
    bytes.set(V6_PREFIX, 8);
    bytes[23] = source.v6;
    bytes.set(V6_PREFIX, 24);
    bytes[39] = destination.v6;
  }
  return bytes;
}

// IP lengths: a ping (84 and 104 bytes, sealed with padding) and full size (1420, the MTU: no padding).
const PACKET_LENGTHS = { 4: [84, 1420], 6: [104, 1420] } as const;

const TCP_ACK = 0x10;
const TCP_PSH = 0x08;
/** The IP header's length (no options, no extension headers). */
const ipHeaderLength = (version: 4 | 6) => (version === 4 ? 20 : 40);
/** A full-size segment's TCP payload: the MTU less the IP and TCP headers. */
const tcpSegmentSize = (version: 4 | 6) => PACKET_LENGTHS[version][1] - ipHeaderLength(version) - 20;

/**
 * A TCP segment from side `from` as a TUN with offloads reads it, vnet header first, with NEEDS_CSUM:
 * `payload` bytes from `sequence` on, a super-segment of full-size segments when more than one's worth (ACK,
 * and PSH as the kernel sets it on a write's last), or with none a bare ACK of `sequence`.
 */
function tcpFrame(version: 4 | 6, from: 0 | 1, sequence: number, payload: number): Uint8Array {
  const ip = ipHeaderLength(version);
  const headerLength = ip + 20;
  const bytes = packet(version, headerLength + payload, from);
  bytes[version === 4 ? 9 : 6] = PROTO_TCP;
  if (version === 4) bytes.set([0x40, 0, 64], 6); // DF, TTL
  const tcp = new DataView(bytes.buffer, ip);
  tcp.setUint16(0, from === 0 ? 5201 : 40000); // ports
  tcp.setUint16(2, from === 0 ? 40000 : 5201);
  tcp.setUint32(payload === 0 ? 8 : 4, sequence); // the ACK's acknowledgement number, or the data's sequence
  tcp.setUint8(12, 5 << 4); // header length: 20 bytes
  const segmentSize = tcpSegmentSize(version);
  const gsoSize = payload > segmentSize ? segmentSize : 0;
  tcp.setUint8(13, gsoSize > 0 ? TCP_ACK | TCP_PSH : TCP_ACK);
  tcp.setUint16(14, 0xffff); // window
  // A flow's bytes, not zeros: sums of them run past 31 bits.
  for (let i = headerLength; i < bytes.length; i++) bytes[i] = (i * 167 + sequence) & 0xff;
  if (version === 4) setIpv4Checksum(bytes, ip);
  const frame = new Uint8Array(VNET_HEADER_SIZE + bytes.length);
  frame.set(bytes, VNET_HEADER_SIZE);
  setTcpOffload(frame, 0, frame.subarray(VNET_HEADER_SIZE), ip, headerLength, gsoSize);
  return frame;
}

/** A TUN read of the warm-up's TCP flow: the side that reads it, its frames, and the packets they make. */
interface TcpRead {
  side: 0 | 1;
  frames: Uint8Array[];
  packets: number;
}

/** Full-size segments in the warm-up's super-segments: IPv4's as many as 64 KB holds, IPv6's fewer. */
const SUPER_SEGMENTS = { 4: 44, 6: 13 } as const;
/** The ACKs side 1 reads at once in a TCP turn: a burst's worth, more than the turns of a few packets hold. */
const ACKS_PER_READ = 12;
/** A small segment's payload, ahead of the ACKs: odd, and long enough to be summed word by word. */
const SMALL_SEGMENT_PAYLOAD = 101;
/** Packets each TCP read of a turn makes (tcpReads): side 0's segments, side 1's small segment and ACKs. */
const TCP_READ_PACKETS = [SUPER_SEGMENTS[4] + SUPER_SEGMENTS[6], 1 + ACKS_PER_READ] as const;
const TCP_PACKETS_PER_TURN = TCP_READ_PACKETS[0] + TCP_READ_PACKETS[1];
/** Where the warm-up's TCP flows start, and how far each TCP turn moves them: past 2^31, soon wrapping. */
const TCP_FIRST_SEQUENCE = 0xfff0_0000;
const TCP_SEQUENCE_STEP = 0x1_0000;

/**
 * The reads of the TCP flows in `turn`, in the shapes bulk traffic takes. Side 0 reads two super-segments at
 * once, an IPv4 flow's and an IPv6 flow's, so side 1's device meets the second flow while the first one's run
 * is open. The IPv4 one ends on a whole segment every other turn and a short, odd one in between (its segments
 * then lie in a packet of another length), the IPv6 one always short and odd. Side 1 reads a small segment of
 * the IPv4 flow and a burst of its ACKs, which side 0's device meets behind the small segment's open run.
 */
function tcpReads(turn: number): TcpRead[] {
  const flowTurn = turn / TCP_EVERY;
  const payload = {
    4: SUPER_SEGMENTS[4] * tcpSegmentSize(4) - (flowTurn % 2 === 0 ? 0 : 7),
    6: SUPER_SEGMENTS[6] * tcpSegmentSize(6) - 7,
  };
  const sequence = (TCP_FIRST_SEQUENCE + flowTurn * TCP_SEQUENCE_STEP) >>> 0;
  const acknowledged = (sequence + payload[4]) >>> 0;
  const acks = Array.from({ length: ACKS_PER_READ }, () => tcpFrame(4, 1, acknowledged, 0));
  return [
    {
      side: 0,
      frames: [tcpFrame(4, 0, sequence, payload[4]), tcpFrame(6, 0, sequence, payload[6])],
      packets: TCP_READ_PACKETS[0],
    },
    {
      side: 1,
      frames: [tcpFrame(4, 1, acknowledged, SMALL_SEGMENT_PAYLOAD), ...acks],
      packets: TCP_READ_PACKETS[1],
    },
  ];
}

/**
 * Each side's packets: IPv4 and IPv6, a ping and full size. The ping lies off a word boundary and full-size
 * ones on one, as a split's segments do: sealing takes a different path for each (messages.ts sealTransport).
 */
function packetsFrom(side: 0 | 1): Uint8Array[] {
  return ([4, 6] as const).flatMap((version) =>
    PACKET_LENGTHS[version].map((length, i) => packet(version, length, side, i === 0)),
  );
}

/**
 * Packets no peer's allowed IPs cover, which the engine drops (as a TUN's IPv6 multicast chatter, or traffic to
 * a departed peer): a node meets them within its first seconds, and code never run here would be compiled for
 * the warm-up's packets only and thrown away at the first of them.
 */
function unroutableFrom(side: 0 | 1): Uint8Array[] {
  return ([4, 6] as const).map((version) => {
    const bytes = packet(version, PACKET_LENGTHS[version][0], side);
    bytes[version === 4 ? 19 : 39] = 0xfe; // the destination's last byte: nobody's
    return bytes;
  });
}

/**
 * Each engine's peer: the other one, with its inner addresses, at `endpoint`; without one, as the node's own
 * peers are configured (the endpoint learned from the peer's first message), with no preshared key.
 */
function peerSettings(other: 0 | 1, endpoint: Endpoint | undefined) {
  const inner = INNER[other]!;
  const allowedIps = [`${inner.v4.join('.')}/32`, `2001:db8::${inner.v6}/128`];
  return endpoint === undefined ? { presharedKey: null, allowedIps } : { allowedIps, endpoint };
}

/** Messages the main thread seals and opens in a crypto thread's ring record before the warm-up. */
export const WARM_RECORD_MESSAGES = 200;

/**
 * Before the warm-up of a node with crypto threads (`--threads` above 1): ring records in shared memory,
 * which the main thread seals and opens itself for a turn's few messages (nodes/threads/pool.ts). The crypto
 * code compiled for the warm-up's ArrayBuffers alone was thrown away at the first of them (wrong map); sealed
 * and opened here first, it is compiled for both. Returns the messages that opened (a check that it did its
 * work: every one).
 */
export function warmThreadShapes(mtu: number, randomBytes: (length: number) => Uint8Array): number {
  const key = randomBytes(32);
  const cipher = createTransportCipher(key);
  // One record's room, the message behind its header at the ring's own offset in the buffer, as the pool's are.
  const { bytes } = ringViews(createRing(HEADER_BYTES + mtu + 64));
  let opened = 0;
  for (let i = 0; i < WARM_RECORD_MESSAGES; i++) {
    const plainLength = i % 2 === 0 ? 84 : mtu;
    const length = sealTransportInPlace(cipher, 1, 0, i, plainLength, mtu, bytes, HEADER_BYTES);
    if (openTransport(cipher, bytes, 0, i, HEADER_BYTES, length) >= plainLength) opened++;
  }
  cipher.wipe();
  key.fill(0);
  return opened;
}

/**
 * Runs the data path of engines built with `options` (the node's, without its key) until V8 has optimized
 * it. Returns the packets delivered, which is every packet sent (a check that the warm-up did its work).
 */
export function warmDataPath(options: Omit<TunnelOptions, 'privateKey'>): number {
  const engines = [0, 1].map(() => new Tunnel({ ...options, privateKey: options.randomBytes(32) })) as [
    Tunnel,
    Tunnel,
  ];
  for (const side of [0, 1] as const) {
    const other = side === 0 ? 1 : 0;
    // Engine 0 initiates; engine 1 answers and learns engine 0's endpoint from it, as the node does.
    const endpoint = side === 0 ? ENDPOINTS[other] : undefined;
    engines[side].upsertPeer(engines[other].publicKey, peerSettings(other, endpoint), 0);
  }
  let delivered = 0;
  let now = 0;
  // Carries every datagram to the other engine until none is left (the handshake takes three).
  const carry = (sender: 0 | 1, actions: TunnelAction[]) => {
    const queue: Array<[to: 0 | 1, datagram: Uint8Array]> = [];
    const collect = (from: 0 | 1, list: TunnelAction[]) => {
      for (const action of list) {
        if (action.kind === 'deliver') delivered++;
        // A copy: the engines reuse their send buffers on their next call.
        else if (action.kind === 'send') queue.push([from === 0 ? 1 : 0, action.datagram.slice()]);
      }
    };
    collect(sender, actions);
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      const [to, datagram] = next;
      collect(to, engines[to].decapsulate(datagram, ENDPOINTS[to === 0 ? 1 : 0], now));
    }
  };
  const bySide = ([0, 1] as const).map(packetsFrom);
  for (let i = 0; i < WARM_PACKETS; i++) {
    now += 0.37; // fractional milliseconds, as the node's clock gives them
    for (const side of [0, 1] as const) {
      const packets = bySide[side]!;
      carry(side, engines[side].encapsulate(packets[i % packets.length]!, now));
    }
  }
  engines[0].removePeer(engines[1].publicKey); // wipes both sessions' keys
  engines[1].removePeer(engines[0].publicKey);
  return delivered;
}

const NO_FRAMES: readonly Uint8Array[] = [];

/**
 * A TUN reader fed by hand (the warm-up's stand-in TUN, bench-alloc's in-memory one): the addon's
 * startReading and readFrames, and frames laid into the reader's slab as the C reader lays a read's (one after
 * another, offsets and lengths in the records).
 */
export class HandFedReader {
  private reader: { slab: Uint8Array; records: Int32Array; onFrames: (count: number) => void } | undefined;
  private waiting: readonly Uint8Array[] = NO_FRAMES;
  private waitingHeader = 0;

  readonly startReading: TunAddon['startReading'] = (_fd, slab, records, onFrames) => {
    this.reader = { slab, records, onFrames };
    return { stop: () => (this.reader = undefined) };
  };

  /** The frames `queue` left, read now, or -EAGAIN when none wait. */
  readonly readFrames: TunAddon['readFrames'] = (_fd, slab, records) => {
    const frames = this.takeWaiting();
    if (frames.length === 0) return -constants.errno.EAGAIN;
    return layFrames(frames, this.waitingHeader, slab, records);
  };

  /** Hands the reader `frames` as one read's, each behind `header` zeroed bytes (none: as given). */
  read(frames: readonly Uint8Array[], header = 0): void {
    if (this.reader === undefined) return;
    const { slab, records, onFrames } = this.reader;
    onFrames(layFrames(frames, header, slab, records));
  }

  /** Leaves `frames` for the next readFrames, as a host's answers queued while a TUN write ran. */
  queue(frames: readonly Uint8Array[], header = 0): void {
    this.waiting = frames;
    this.waitingHeader = header;
  }

  /** Hands the reader what `queue` left and no readFrames took, as the reader's next wakeup would. */
  readQueued(): void {
    const frames = this.takeWaiting();
    if (frames.length > 0) this.read(frames, this.waitingHeader);
  }

  private takeWaiting(): readonly Uint8Array[] {
    const frames = this.waiting;
    this.waiting = NO_FRAMES; // not a new array: bench-alloc counts this reader's allocations as the node's
    return frames;
  }
}

/** Lays `frames` into `slab` as one read's, each behind `header` zeroed bytes; returns their count. */
function layFrames(
  frames: readonly Uint8Array[],
  header: number,
  slab: Uint8Array,
  records: Int32Array,
): number {
  // A loop, not forEach: bench-alloc counts what this allocates as the node's own.
  let used = 0;
  for (let i = 0; i < frames.length; i++) {
    const frame = frames[i]!;
    slab.fill(0, used, used + header);
    slab.set(frame, used + header);
    records[2 * i] = used;
    records[2 * i + 1] = header + frame.length;
    used += header + frame.length;
  }
  return frames.length;
}

/**
 * A TUN as the node's (openTun: the same object and closures, so the device's calls into it and its read and
 * write glue are warm), over the addon with its descriptor on /dev/null: each write is the addon's real native
 * call and goes nowhere, and each read is frames the warm-up lays into the reader's slab itself, behind a
 * virtio_net_hdr when `offload`, as the kernel hands them over.
 */
class StandInTun {
  readonly tun: Tun;
  private readonly frames = new HandFedReader();
  /** Zeroed bytes before each frame: a virtio_net_hdr with offloads. */
  private readonly header: number;

  constructor(offload: boolean) {
    this.header = offload ? VNET_HEADER_SIZE : 0;
    const addon = loadAddon<TunAddon>('tun');
    this.tun = openTun(
      'warm-up',
      { offload },
      {
        ...addon,
        open: (name) => ({ fd: openSync('/dev/null', 'w'), name }),
        setOffload: () => 0,
        close: (fd) => closeSync(fd),
        startReading: this.frames.startReading,
        readFrames: this.frames.readFrames,
      },
    );
  }

  /** Hands the reader `packets` as one read's frames (a zeroed header: no GSO, as the kernel hands a ping). */
  read(packets: readonly Uint8Array[]): void {
    this.frames.read(packets, this.header);
  }

  /** Leaves `packets` for the device's next read-back, as the kernel queues a host's answers to its writes. */
  answer(packets: readonly Uint8Array[]): void {
    this.frames.queue(packets, this.header);
  }

  /** Hands the reader `frames`, each behind its own vnet header, as one read's. */
  readFrames(frames: readonly Uint8Array[]): void {
    this.frames.read(frames);
  }

  /** The answers no read-back took (a dgram socket's device reads none back), read as the next wakeup's. */
  readAnswers(): void {
    this.frames.readQueued();
  }
}

/** Resolves true once `done()`, checked every event-loop turn, false after `timeoutMs`. */
export async function until(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return true;
}

/**
 * Runs two throwaway devices, with engines built with `options` and sockets from `openUdp` bound to
 * 127.0.0.1 (`ipv4Only`, as a node listening on an IPv4 address) or to its IPv4-mapped form (a dual-stack
 * socket, as the node's default), through WARM_TURNS turns each way, into stand-in TUNs (with offloads when
 * `tunOffload`), and with the node's crypto threads when it has them (`threads`). Returns the packets
 * delivered: every packet sent, or fewer when the loopback did not carry them (it then stops early, having
 * warmed what it could). Throws when a socket cannot be bound there.
 *
 * With threads, the devices take the paths a node with threads takes while its main thread has time to spare:
 * the engine asks the pool (CryptoThreads.takes), which leaves every message to it (keepInline), as nothing
 * may reach a ring here: its results would go to whichever device the pool serves (the last started).
 *
 * Device 0 starts the handshake from outside a read (Device.resumeHandshake), as a node's timers and its
 * handshake workers' answers send: the socket's send outside a read's batch, never run in a warm-up that only
 * reads, was otherwise thrown away at the first such send (a node with threads: its first handshake).
 *
 * A rehearsal comes first: two devices through one turn, then torn down. Tearing down writes fields that are
 * otherwise written once (a device's and its scheduler's closed flags, a removed peer's state), and V8
 * compiles a field written once into optimized code as a constant: its first write throws away every function
 * compiled so (the whole data path). Rehearsed, that happens before the warm-up proper, not at its end, which
 * left the node to carry its first real packets in unoptimized code.
 */
export async function warmDevicePath(
  options: Omit<TunnelOptions, 'privateKey'>,
  openUdp: OpenUdp,
  ipv4Only: boolean,
  tunOffload: boolean,
  threads?: CryptoThreads,
): Promise<number> {
  const host = ipv4Only ? LOOPBACK : `::ffff:${LOOPBACK}`;
  const rehearsed = await carryThroughDevices(options, openUdp, host, tunOffload, threads, 1);
  if (rehearsed < devicePackets(1, tunOffload)) return rehearsed;
  return carryThroughDevices(options, openUdp, host, tunOffload, threads, WARM_TURNS);
}

/** Two devices over `host`, `turns` turns each way, then torn down; returns the packets delivered. */
async function carryThroughDevices(
  options: Omit<TunnelOptions, 'privateKey'>,
  openUdp: OpenUdp,
  host: string,
  tunOffload: boolean,
  threads: CryptoThreads | undefined,
  turns: number,
): Promise<number> {
  const sides: StandInTun[] = [];
  const devices: Device[] = [];
  const counts: NodeMetrics[] = [];
  const delivered = () => counts.reduce((sum, metrics) => sum + metrics.innerPackets('rx'), 0);
  /** Whether a read's `packets` were delivered, in time. */
  const carried = (read: () => void, packets: number) => {
    const expected = delivered() + packets;
    read();
    return until(() => delivered() >= expected, WARM_TURN_TIMEOUT_MS);
  };
  const keys = [options.randomBytes(32), options.randomBytes(32)];
  threads?.keepInline(true);
  try {
    // One at a time, so a second that cannot open (EMFILE) leaves the first in `sides`, closed below.
    while (sides.length < 2) sides.push(new StandInTun(tunOffload));
    for (const side of [0, 1] as const) {
      const privateKey = keys[side]!;
      const tunnel = new Tunnel({ ...options, privateKey, ...(threads && { transportCrypto: threads }) });
      // Counted as the node's device counts (without the process metrics' timers), so the counting is warm.
      const metrics = new NodeMetrics(tunnel, Date.now, false);
      counts.push(metrics);
      devices.push(
        await Device.start({
          tunnel,
          privateKey,
          packets: sides[side]!.tun,
          listenPort: 0,
          openUdp: (o) => openUdp({ ...o, host }),
          metrics,
          ...(threads && { threads }),
        }),
      );
    }
    // Device 0 initiates; device 1 answers, as the node does, and learns device 0's endpoint from it.
    const endpoint = { address: LOOPBACK, port: devices[1]!.listenPort };
    devices[0]!.upsertPeer(devices[1]!.publicKey()!, peerSettings(1, endpoint));
    devices[1]!.upsertPeer(devices[0]!.publicKey()!, peerSettings(0, undefined));
    devices[0]!.resumeHandshake(devices[1]!.publicKey()!, endpoint);
    const bySide = ([0, 1] as const).map(packetsFrom);
    const unroutable = ([0, 1] as const).map(unroutableFrom);
    for (let turn = 0; turn < turns; turn++) {
      const routed = routedInTurn(turn);
      const batches = ([0, 1] as const).map((side) => {
        const packets = bySide[side]!;
        const batch = Array.from({ length: routed }, (_, i) => packets[(turn + i) % packets.length]!);
        if (routed > 1) batch.push(unroutable[side]![(turn / 2) % 2]!); // dropped: not counted as delivered
        return batch;
      });
      if (routed === 1) {
        // A lone ping and its answer, as an idle node meets them: side 1's answer is queued by the time its
        // device has written the ping, and leaves in the same turn (the device's read-back; with a dgram
        // socket, which reads none back, at the reader's next wakeup).
        const pinged = delivered() + 1;
        sides[1]!.answer(batches[1]!);
        sides[0]!.read(batches[0]!);
        if (!(await until(() => delivered() >= pinged, WARM_TURN_TIMEOUT_MS))) return delivered();
        sides[1]!.readAnswers();
        if (!(await until(() => delivered() >= pinged + 1, WARM_TURN_TIMEOUT_MS))) return delivered();
        continue;
      }
      for (const side of [0, 1] as const)
        if (!(await carried(() => sides[side]!.read(batches[side]!), routed))) return delivered();
      if (!tcpInTurn(turn, tunOffload)) continue;
      for (const { side, frames, packets } of tcpReads(turn))
        if (!(await carried(() => sides[side]!.readFrames(frames), packets))) return delivered();
    }
    return delivered();
  } finally {
    // Each device closed whatever another's close does (a rejected close must not leave the rest open).
    await Promise.allSettled(
      devices.map((device) => {
        device.removeAllPeers(); // wipes the sessions' keys
        return device.close();
      }),
    );
    for (const side of sides) side.tun.close(); // the device closed its own; not one whose start failed
    for (const key of keys) key.fill(0);
    threads?.keepInline(false);
  }
}
