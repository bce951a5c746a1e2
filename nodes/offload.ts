// TUN offloads, sans-IO: what goes in and out of a TUN opened with IFF_VNET_HDR (nodes/tun/tun.c), where
// every read and write is a virtio_net_hdr (include/uapi/linux/virtio_net.h, little-endian here) followed
// by one IP packet, and that packet may be a TCP "super-segment" of up to 64 KiB.
//
// Read side (the kernel's packets to encrypt): a GSO frame is split into the MTU-sized TCP segments the
// kernel would have sent (the segmentation tcp_gso_segment does: sequence numbers, IPv4 ids, lengths,
// FIN/PSH on the last segment only, CWR on the first only, every checksum), and a NEEDS_CSUM frame gets
// the partial checksum it carries completed.
//
// Write side (decrypted packets for the kernel): consecutive TCP segments of one flow are coalesced into
// one super-segment written with a GSO header, as the kernel's own GRO would (tcp_gro_receive's rules:
// in-sequence, same ACK, same options and window, only ACK/PSH set, every segment but the last full
// size), so the kernel's stack handles one packet instead of dozens. Everything else is written singly
// behind a zero header. Order within a flow is kept; different flows may pass each other, as with GRO.
//
// Buffers are reused: what split() and coalesce() return is valid until their next call.

import { bufferOf, byteOffsetOf } from '../crypto/words.js';
import { ReusedViews } from './views.js';

/** sizeof(struct virtio_net_hdr): the header TUNSETIFF with IFF_VNET_HDR puts before every packet. */
export const VNET_HEADER_SIZE = 10;
// Split segments and each coalesced frame's first packet start 8-byte aligned in this module's slabs: copied
// from or to a crypto thread's ring, shared memory whose payloads are 16-byte aligned, V8 copies word by word
// only when both sides have the same alignment (threads/ring.ts copyIn). A frame's later packets follow on
// from the one before, as a super-segment must. A segment's checksum, summed word-wise, needs 4.
const ALIGN = 8;
const alignUp = (offset: number): number => (offset + ALIGN - 1) & -ALIGN;

/** TUNSETOFFLOAD flags (linux/if_tun.h). */
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;

// virtio_net_hdr fields and values.
const FLAGS = 0;
const GSO_TYPE = 1;
const HDR_LEN = 2;
const GSO_SIZE = 4;
const CSUM_START = 6;
const CSUM_OFFSET = 8;
const F_NEEDS_CSUM = 1;
const GSO_NONE = 0;
const GSO_TCPV4 = 1;
const GSO_TCPV6 = 4;
const GSO_ECN = 0x80;

export const PROTO_TCP = 6;
const IPV4_HEADER_MIN = 20;
const IPV6_HEADER = 40;
const TCP_HEADER_MIN = 20;
const TCP_CHECKSUM = 16; // offset of the checksum in the TCP header
const UDP_CHECKSUM = 6;
const IP_PACKET_MAX = 65535;

// TCP flags (byte 13 of the header).
const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_ACK = 0x10;
const TCP_CWR = 0x80;

export const OFFLOAD_DROP_REASONS = [
  'vnet_header_short', // a read shorter than the header plus one byte of packet
  'gso_unsupported', // a GSO type we never asked for (UDP, USO)
  'gso_malformed', // GSO headers that do not describe a TCP packet we can split
  'checksum_offset_invalid', // NEEDS_CSUM pointing outside the packet
] as const;
export type OffloadDropReason = (typeof OFFLOAD_DROP_REASONS)[number];

export type OffloadDrops = Record<OffloadDropReason, number>;
export const noOffloadDrops = (): OffloadDrops => ({
  vnet_header_short: 0,
  gso_unsupported: 0,
  gso_malformed: 0,
  checksum_offset_invalid: 0,
});

// --- RFC 1071 checksums -------------------------------------------------------------------------------

/** The one's-complement sum of bytes[start, end) as 16-bit big-endian words, added to `initial`, folded. */
export function sum16(bytes: Uint8Array, start: number, end: number, initial = 0): number {
  let sum = initial;
  let i = start;
  // Word-wise when the range starts on an even address: align to 4, then 32 bits per read (below).
  if (end - i >= 64) {
    const view = wordsOf(bytes);
    const byteOffset = wordsByteOffset;
    if (((byteOffset + i) & 1) === 0) {
      if (((byteOffset + i) & 2) !== 0) {
        sum += (bytes[i]! << 8) | bytes[i + 1]!;
        i += 2;
      }
      const words = (end - i) >>> 2;
      sum += sumWords(view, (byteOffset + i) >>> 2, words);
      i += words * 4;
    }
  }
  for (; i + 1 < end; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  if (i < end) sum += bytes[i]! << 8;
  return fold(sum);
}

// RFC 1071 §2(B): the sum is byte-order independent, so native-order words summed and then byte-swapped
// give the big-endian sum. And 2^16 ≡ 1 (mod 2^16 - 1), so whole 32-bit words may be added as they are and
// the total reduced once: the one's-complement sum is that total mod 0xffff (0xffff for a non-zero multiple).
// Four double accumulators: independent additions, each exact while below 2^53 (any IP packet is far below).
// One cached 32-bit view per buffer (the slabs are reused, so it rarely changes), and the last array summed
// with its byteOffset: the buffer getter is a call into C++ (about 40 ns), and callers that sum one slab at
// several places (split) pass the same array each time.
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;
let wordsBuffer: ArrayBufferLike | undefined;
let wordsView: Uint32Array<ArrayBufferLike> = new Uint32Array(0);
let otherBuffer: ArrayBufferLike | undefined;
let otherView: Uint32Array<ArrayBufferLike> = wordsView;
let wordsBytes: Uint8Array | undefined;
let wordsByteOffset = 0;

/** The 32-bit view over the buffer under `bytes`; sets wordsByteOffset to bytes' byteOffset. */
function wordsOf(bytes: Uint8Array): Uint32Array {
  if (bytes === wordsBytes) return wordsView;
  wordsBytes = bytes;
  wordsByteOffset = byteOffsetOf(bytes);
  const buffer = bufferOf(bytes);
  if (buffer === wordsBuffer) return wordsView;
  // Two kept: the node sums in two slabs by turns (the split's segments, the UDP slab's decrypted packets).
  const previousBuffer = wordsBuffer;
  const previousView = wordsView;
  if (buffer === otherBuffer) wordsView = otherView;
  else wordsView = new Uint32Array(buffer, 0, buffer.byteLength >>> 2);
  wordsBuffer = buffer;
  otherBuffer = previousBuffer;
  otherView = previousView;
  return wordsView;
}

function sumWords(view: Uint32Array, first: number, count: number): number {
  let a = 0;
  let b = 0;
  let c = 0;
  let d = 0;
  const end = first + count;
  let k = first;
  // Eight words a step into the four accumulators: about 25% faster than four a step (1.4 KB packets).
  for (; k + 8 <= end; k += 8) {
    a += view[k]! + view[k + 4]!;
    b += view[k + 1]! + view[k + 5]!;
    c += view[k + 2]! + view[k + 6]!;
    d += view[k + 3]! + view[k + 7]!;
  }
  for (; k < end; k++) a += view[k]!;
  const total = a + b + c + d;
  // total mod 0xffff without %, which on doubles is a call into C: the quotient of an exact multiple is exact,
  // and any other is at least 1/0xffff from an integer, far more than the division's rounding.
  const rest = total - Math.floor(total / 0xffff) * 0xffff;
  // total first: a rest of 0 is rare, and a test V8 never saw run would be compiled as a deopt.
  const sum = total !== 0 && rest === 0 ? 0xffff : rest;
  return LITTLE_ENDIAN ? ((sum & 0xff) << 8) | (sum >>> 8) : sum;
}

function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** The pseudo-header's sum (RFC 793 / RFC 8200 §8.1) for a transport segment of `length` bytes. */
function pseudoHeaderSum(packet: Uint8Array, v6: boolean, protocol: number, length: number): number {
  const addresses = v6 ? sum16(packet, 8, 40) : sum16(packet, 12, 20);
  return fold(addresses + protocol + length);
}

const isV6 = (packet: Uint8Array) => packet[0]! >> 4 === 6;

function setUint16(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value >>> 8;
  bytes[offset + 1] = value & 0xff;
}

const getUint16 = (bytes: Uint8Array, offset: number) => (bytes[offset]! << 8) | bytes[offset + 1]!;
const getUint32 = (bytes: Uint8Array, offset: number) =>
  ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>>
  0;

function setUint32(bytes: Uint8Array, offset: number, value: number): void {
  setUint16(bytes, offset, value >>> 16);
  setUint16(bytes, offset + 2, value & 0xffff);
}

/** Recomputes an IPv4 header checksum of `headerLength` bytes in place. */
export function setIpv4Checksum(packet: Uint8Array, headerLength: number): void {
  setUint16(packet, 10, 0);
  setUint16(packet, 10, ~sum16(packet, 0, headerLength) & 0xffff);
}

/** Sets the IP length fields for a packet of `length` bytes whose IP header is `ipHeader` bytes. */
function setIpLength(packet: Uint8Array, v6: boolean, ipHeader: number, length: number): void {
  if (v6) {
    setUint16(packet, 4, length - IPV6_HEADER);
  } else {
    setUint16(packet, 2, length);
    setIpv4Checksum(packet, ipHeader);
  }
}

/** Growable scratch memory, reused across calls. */
class Scratch {
  bytes = new Uint8Array(0);
  reserve(size: number): Uint8Array {
    if (this.bytes.length < size) this.bytes = new Uint8Array(Math.max(size, this.bytes.length * 2));
    return this.bytes;
  }
}

/**
 * The views a split makes, kept by frame and by segment: a bulk flow's reads split into the same places each
 * time, so a read makes none.
 */
class SplitViews {
  readonly packets = new ReusedViews(); // each frame's packet, after its vnet header
  readonly segments = new ReusedViews(); // the segments handed out
  readonly payloads = new ReusedViews(); // the parts of super-segments copied into them
  readonly headers = new ReusedViews(); // a super-segment's headers, copied into its first segment
}

// --- read side: split ---------------------------------------------------------------------------------

/**
 * Turns frames read from a vnet-header TUN into plain IP packets. Malformed frames are dropped and counted
 * in `drops`; a frame's packet may be completed in place (frames are the caller's to change).
 */
export class GsoSplitter {
  readonly drops: OffloadDrops = noOffloadDrops();
  /** GSO frames split so far. */
  superSegments = 0;
  private readonly scratch = new Scratch();
  private readonly views = new SplitViews();
  /** Packets put in `out` so far by this split. */
  private count = 0;

  /**
   * Fills `out` with the IP packets of `frames` (views valid until the next call). `out` is refilled from
   * its start and cut to length, never emptied: emptied, an array gives up its storage and grows it again.
   */
  split(frames: readonly Uint8Array[], out: Uint8Array[]): void {
    let needed = 0;
    for (let index = 0; index < frames.length; index++) needed += splitSize(frames[index]!);
    const slab = this.scratch.reserve(needed);
    this.count = 0;
    let used = 0;
    for (let index = 0; index < frames.length; index++) {
      const result = this.splitOne(frames[index]!, index, slab, used, out);
      if (typeof result === 'string') this.drops[result]++;
      else used = result;
    }
    out.length = this.count;
  }

  /** One frame: its packets go to `out`, segments written into slab from `used`; returns the new `used`. */
  private splitOne(
    frame: Uint8Array,
    index: number,
    slab: Uint8Array,
    used: number,
    out: Uint8Array[],
  ): number | OffloadDropReason {
    if (frame.length <= VNET_HEADER_SIZE) return 'vnet_header_short';
    const packet = this.views.packets.view(index, frame, VNET_HEADER_SIZE, frame.length - VNET_HEADER_SIZE);
    const gsoType = frame[GSO_TYPE]! & ~GSO_ECN;
    const csumStart = frame[CSUM_START]! | (frame[CSUM_START + 1]! << 8);
    const csumOffset = frame[CSUM_OFFSET]! | (frame[CSUM_OFFSET + 1]! << 8);
    if (gsoType === GSO_NONE) {
      if ((frame[FLAGS]! & F_NEEDS_CSUM) === 0) {
        out[this.count++] = packet;
        return used;
      }
      if (csumStart < IPV4_HEADER_MIN || csumStart + csumOffset + 2 > packet.length)
        return 'checksum_offset_invalid';
      completeChecksum(packet, csumStart, csumStart + csumOffset);
      out[this.count++] = packet;
      return used;
    }
    if (gsoType !== GSO_TCPV4 && gsoType !== GSO_TCPV6) return 'gso_unsupported';
    const gsoSize = frame[GSO_SIZE]! | (frame[GSO_SIZE + 1]! << 8);
    // The kernel's csum_start must be where the TCP header is; hdr_len is only a hint (recomputed here).
    if (
      !readTcpHeaders(packet, gsoType === GSO_TCPV6, csumStart) ||
      headers.ip !== csumStart ||
      gsoSize === 0
    )
      return 'gso_malformed';
    this.superSegments++;
    return this.splitSegments(packet, headers.ip, headers.ip + headers.tcp, gsoSize, slab, used, out);
  }

  /** A super-segment's segments go to `out`, written into slab from `used`; returns the new `used`. */
  private splitSegments(
    packet: Uint8Array,
    ipHeader: number,
    headerLength: number,
    gsoSize: number,
    slab: Uint8Array,
    used: number,
    out: Uint8Array[],
  ): number {
    const views = this.views;
    const v6 = isV6(packet);
    const payload = packet.length - headerLength;
    const firstSequence = getUint32(packet, ipHeader + 4);
    const firstId = v6 ? 0 : getUint16(packet, 4);
    const flags = packet[ipHeader + 13]!;
    // The pseudo-header's addresses are every segment's: summed once.
    const addresses = v6 ? sum16(packet, 8, 40) : sum16(packet, 12, 20);
    const first = used;
    let offset = headerLength;
    for (let index = 0; index === 0 || offset < packet.length; index++) {
      const segmentPayload = Math.min(gsoSize, packet.length - offset);
      const length = headerLength + segmentPayload;
      const segment = views.segments.view(this.count, slab, used, length);
      // Headers from the packet once, then from the first segment (every field that differs is rewritten
      // below): no view made for them per segment.
      if (index === 0) slab.set(views.headers.view(this.count, packet, 0, headerLength), used);
      else slab.copyWithin(used, first, first + headerLength);
      segment.set(views.payloads.view(this.count, packet, offset, segmentPayload), headerLength);
      if (!v6) setUint16(segment, 4, (firstId + index) & 0xffff);
      setIpLength(segment, v6, ipHeader, length);
      setUint32(segment, ipHeader + 4, (firstSequence + index * gsoSize) >>> 0);
      const last = offset + segmentPayload >= packet.length;
      segment[ipHeader + 13] = flags & ~(last ? 0 : TCP_FIN | TCP_PSH) & ~(index === 0 ? 0 : TCP_CWR);
      setUint16(segment, ipHeader + TCP_CHECKSUM, 0);
      const pseudo = fold(addresses + PROTO_TCP + length - ipHeader);
      // Summed in the slab, not the segment's view: the same array every segment (see wordsOf).
      const checksum = ~sum16(slab, used + ipHeader, used + length, pseudo) & 0xffff;
      setUint16(segment, ipHeader + TCP_CHECKSUM, checksum);
      out[this.count++] = segment;
      used = alignUp(used + length); // its checksum is summed word-wise; its copy into a ring, word by word
      offset += segmentPayload;
      if (payload === 0) break;
    }
    return used;
  }
}

/** Bytes a frame's segments take once split (0 for a frame passed through as a view). */
function splitSize(frame: Uint8Array): number {
  if (frame.length <= VNET_HEADER_SIZE || (frame[GSO_TYPE]! & ~GSO_ECN) === GSO_NONE) return 0;
  const gsoSize = frame[GSO_SIZE]! | (frame[GSO_SIZE + 1]! << 8);
  const headerLength = frame[HDR_LEN]! | (frame[HDR_LEN + 1]! << 8);
  const csumStart = frame[CSUM_START]! | (frame[CSUM_START + 1]! << 8);
  // An upper bound whatever hdr_len says: every segment repeats the IP headers up to csum_start (where
  // TCP must begin: IPv6 extension headers make that more than 40) and at most 60 bytes of TCP header,
  // and up to ALIGN - 1 bytes of padding.
  const segments = gsoSize === 0 ? 1 : Math.ceil(frame.length / gsoSize);
  const repeated = Math.max(headerLength, csumStart + 60, IPV6_HEADER + 60 + 20);
  return frame.length + segments * (repeated + ALIGN - 1);
}

/** The header lengths readTcpHeaders found (one reused record: nothing allocated per packet). */
const headers = { ip: 0, tcp: 0 };

/**
 * Reads the IP and TCP header lengths of an IPv4 (not a fragment) or IPv6 TCP packet into `headers`;
 * false when it is not one or its headers do not fit. IPv6 extension headers are taken only from the
 * kernel: `transport`, its csum_start, says where TCP begins after them.
 */
function readTcpHeaders(packet: Uint8Array, v6: boolean, transport = IPV6_HEADER): boolean {
  let ip: number;
  if (v6) {
    ip = packet[6] === PROTO_TCP ? IPV6_HEADER : transport;
    if (!isV6(packet) || (ip <= IPV6_HEADER && packet[6] !== PROTO_TCP)) return false;
  } else {
    if (packet.length < IPV4_HEADER_MIN + TCP_HEADER_MIN || packet[0]! >> 4 !== 4) return false;
    ip = (packet[0]! & 0x0f) * 4;
    const fragment = getUint16(packet, 6) & 0x3fff; // MF and the offset
    if (ip < IPV4_HEADER_MIN || packet[9] !== PROTO_TCP || fragment !== 0) return false;
  }
  if (packet.length < ip + TCP_HEADER_MIN) return false;
  const tcp = (packet[ip + 12]! >> 4) * 4;
  if (tcp < TCP_HEADER_MIN || ip + tcp > packet.length) return false;
  headers.ip = ip;
  headers.tcp = tcp;
  return true;
}

/** Finishes a partial checksum (the field holds the pseudo-header's sum) over packet[start..end]. */
function completeChecksum(packet: Uint8Array, start: number, field: number): void {
  let checksum = ~sum16(packet, start, packet.length) & 0xffff;
  // UDP (its checksum 6 bytes in) sends "no checksum" as 0, so a computed 0 goes out as its other form
  // (RFC 768); TCP's sits 16 bytes in.
  if (field - start === UDP_CHECKSUM && checksum === 0) checksum = 0xffff; // (TCP's never reaches the rare test)
  setUint16(packet, field, checksum);
}

// --- read side: latency first ---------------------------------------------------------------------------

// IP protocols whose packets are moved ahead of the bulk of a batch: a ping, a DNS query, a QUIC or VoIP
// datagram. TCP, IPv6 extension headers and anything unknown keep their place.
export const PROTO_ICMP = 1;
const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;

function latencyFirstProtocol(packet: Uint8Array): boolean {
  const version = packet.length > 0 ? packet[0]! >> 4 : 0;
  let protocol = -1;
  if (version === 4 && packet.length >= IPV4_HEADER_MIN) protocol = packet[9]!;
  else if (version === 6 && packet.length >= IPV6_HEADER) protocol = packet[6]!;
  return protocol === PROTO_ICMP || protocol === PROTO_UDP || protocol === PROTO_ICMPV6;
}

/**
 * Reorders a batch read from the TUN, in place, so that ICMP and UDP packets go first, each group in its
 * original order. One read may hold a thousand TCP segments split from super-segments, and a ping reply
 * behind them would wait for all of them to be encrypted; this way it is sealed and sent first. No flow is
 * reordered within itself: a flow's packets are all TCP or all not (but for IPv6 UDP with and without
 * extension headers, which UDP tolerates).
 */
export function latencyFirst(packets: Uint8Array[]): void {
  let front = 0;
  let held = 0;
  for (const packet of packets) {
    if (latencyFirstProtocol(packet)) packets[front++] = packet;
    else bulkScratch[held++] = packet;
  }
  if (front === 0) return; // all bulk, as most batches are: nothing moved
  for (let i = 0; i < held; i++) packets[front + i] = bulkScratch[i]!;
}

// latencyFirst's bulk packets, per read; never emptied (that would give up its storage).
const bulkScratch: Uint8Array[] = [];

// --- write side: coalesce -----------------------------------------------------------------------------

/** An Int32Array with room for at least `size` entries: `array` itself while it has, else a larger one. */
function atLeast(array: Int32Array<ArrayBuffer>, size: number): Int32Array<ArrayBuffer> {
  return array.length >= size ? array : new Int32Array(Math.max(size, array.length * 2));
}

/**
 * Turns decrypted IP packets into frames for a vnet-header TUN: TCP runs of one flow coalesced behind a
 * GSO header, everything else behind a zero header. Every packet lands in exactly one frame.
 * Its bookkeeping lives in typed arrays sized for the largest batch so far, and the frames are views made
 * again only when a frame's place or length changes: a steady flow's batches allocate nothing.
 */
export class GroCoalescer {
  private readonly scratch = new Scratch();
  // Per item (a frame to be): its packets, as indexes into the batch chained through `next`.
  private items = 0;
  private heads = new Int32Array(0);
  private tails = new Int32Array(0);
  private next = new Int32Array(0);
  private itemPayload = new Int32Array(0); // TCP payload bytes so far
  private segmentSize = new Int32Array(0); // the head's payload: gso_size
  private verified = new Int32Array(0); // 1 once the head's TCP checksum was checked
  private open = new Int32Array(0); // items a following segment may still join, [0, openCount)
  private openCount = 0;
  private chain = new Int32Array(0); // one item's packets, for frame()
  private perFrame = new Int32Array(0);
  private readonly frames: Uint8Array[] = [];
  private readonly frameViews = new ReusedViews();
  private readonly packetViews = new ReusedViews(); // a super-segment's IP packet, behind its vnet header
  /** Frames written with a GSO header so far. */
  superSegments = 0;

  /** How many packets each frame of the last coalesce() carries. */
  get packetsPerFrame(): ArrayLike<number> {
    return this.perFrame;
  }

  /**
   * One frame per item: the batch's packets coalesced where they can be. The array and its views are
   * valid until the next call (the array is the same one each time, refilled).
   */
  coalesce(packets: readonly Uint8Array[]): readonly Uint8Array[] {
    const count = packets.length;
    if (this.next.length < count) {
      this.next = atLeast(this.next, count);
      this.heads = atLeast(this.heads, count);
      this.tails = atLeast(this.tails, count);
      this.itemPayload = atLeast(this.itemPayload, count);
      this.segmentSize = atLeast(this.segmentSize, count);
      this.verified = atLeast(this.verified, count);
      this.open = atLeast(this.open, count);
      this.chain = atLeast(this.chain, count);
      this.perFrame = atLeast(this.perFrame, count);
    }
    this.items = this.openCount = 0;
    let bytes = 0;
    for (let index = 0; index < count; index++) {
      this.next[index] = -1;
      bytes += VNET_HEADER_SIZE + packets[index]!.length + ALIGN - 1;
      this.place(packets, index);
    }
    const slab = this.scratch.reserve(bytes);
    // Refilled, then cut to length: emptied first, an array gives up its storage and grows it again.
    const frames = this.frames;
    let used = 0;
    for (let item = 0; item < this.items; item++) {
      used = alignUp(used + VNET_HEADER_SIZE) - VNET_HEADER_SIZE; // the packet behind the header aligned
      const length = this.frame(packets, item, slab, used);
      frames[item] = this.frameViews.view(item, slab, used, length);
      used += length;
    }
    frames.length = this.items;
    return frames;
  }

  /** Appends packet `index` to the open item of its flow, or starts an item of its own. */
  private place(packets: readonly Uint8Array[], index: number): void {
    const packet = packets[index]!;
    const tcp = coalescableTcpHeader(packet);
    const open = this.findOpen(packets, packet);
    if (tcp > 0 && open >= 0 && this.append(packets, open, index, tcp)) return;
    if (open >= 0) this.close(open); // what follows in this flow must not overtake this packet
    const item = this.items++;
    const ip = isV6(packet) ? IPV6_HEADER : IPV4_HEADER_MIN;
    this.heads[item] = index;
    this.tails[item] = index;
    this.itemPayload[item] = this.segmentSize[item] = tcp > 0 ? packet.length - ip - tcp : 0;
    this.verified[item] = 0;
    if (tcp > 0 && (packet[ip + 13]! & TCP_PSH) === 0) this.open[this.openCount++] = item;
  }

  /** The open item whose head is in the same TCP flow (addresses and ports) as `packet`, or -1. */
  private findOpen(packets: readonly Uint8Array[], packet: Uint8Array): number {
    const v6 = isV6(packet);
    const ip = v6 ? IPV6_HEADER : (packet[0]! & 0x0f) * 4;
    if (packet.length < ip + 4 || (v6 ? packet[6] : packet[9]) !== PROTO_TCP) return -1;
    const addresses = v6 ? 8 : 12;
    const headIp = v6 ? IPV6_HEADER : IPV4_HEADER_MIN; // open items' heads carry no IPv4 options
    for (let i = this.openCount - 1; i >= 0; i--) {
      const item = this.open[i]!;
      const head = packets[this.heads[item]!]!;
      if (isV6(head) !== v6 || !equalBytes(head, packet, addresses, addresses + (v6 ? 32 : 8))) continue;
      if (equalBytes(head, packet, headIp, headIp + 4, ip)) return item; // ports
    }
    return -1;
  }

  private close(item: number): void {
    const open = this.open;
    let at = 0;
    while (at < this.openCount && open[at] !== item) at++;
    if (at === this.openCount) return;
    open.copyWithin(at, at + 1, this.openCount);
    this.openCount--;
  }

  /** Adds the segment to `item` when GRO's rules allow it; false leaves the item as it was. */
  private append(packets: readonly Uint8Array[], item: number, index: number, tcp: number): boolean {
    const head = packets[this.heads[item]!]!;
    const packet = packets[index]!;
    const v6 = isV6(packet);
    const ip = v6 ? IPV6_HEADER : IPV4_HEADER_MIN;
    const payload = packet.length - ip - tcp;
    const segmentSize = this.segmentSize[item]!;
    const tail = packets[this.tails[item]!]!;
    const tailPayload = tail.length - ip - tcp;
    if (
      payload > segmentSize ||
      ip + tcp + this.itemPayload[item]! + payload > IP_PACKET_MAX ||
      getUint32(packet, ip + 4) !== (getUint32(tail, ip + 4) + tailPayload) >>> 0 ||
      !sameHeaders(head, packet, v6, ip, tcp)
    )
      return false;
    if (this.verified[item] === 0) {
      if (!tcpChecksumValid(head, v6, ip)) return false;
      this.verified[item] = 1;
    }
    if (!tcpChecksumValid(packet, v6, ip)) return false;
    this.next[this.tails[item]!] = index;
    this.tails[item] = index;
    this.itemPayload[item] = this.itemPayload[item]! + payload;
    // A short segment ends a run (GRO's rule: every segment but the last is gso_size); so does PSH.
    if (payload < segmentSize || (packet[ip + 13]! & TCP_PSH) !== 0) this.close(item);
    return true;
  }

  /** Writes the item's frame at slab[used..]: vnet header, then the packet or the super-segment; returns its length. */
  private frame(packets: readonly Uint8Array[], item: number, slab: Uint8Array, used: number): number {
    const headIndex = this.heads[item]!;
    const head = packets[headIndex]!;
    for (let i = used; i < used + VNET_HEADER_SIZE; i++) slab[i] = 0; // (fill is a call into C++)
    if (this.tails[item] === headIndex) {
      slab.set(head, used + VNET_HEADER_SIZE);
      this.perFrame[item] = 1;
      return VNET_HEADER_SIZE + head.length;
    }

    const v6 = isV6(head);
    const ip = v6 ? IPV6_HEADER : (head[0]! & 0x0f) * 4;
    const headerLength = ip + (head[ip + 12]! >> 4) * 4;
    const chain = this.chain;
    let count = 0;
    let end = used + VNET_HEADER_SIZE + head.length;
    for (let index = this.next[headIndex]!; index >= 0; index = this.next[index]!) {
      chain[count++] = index;
      end += packets[index]!.length - headerLength;
    }
    // Each packet whole, from the last back to the head: a packet's header lands where the one before it
    // puts the end of its payload next, so only payloads remain, and no view of a payload is made.
    let at = end;
    for (let k = count - 1; k >= 0; k--) {
      const packet = packets[chain[k]!]!;
      at -= packet.length - headerLength;
      slab.set(packet, at - headerLength);
    }
    slab.set(head, used + VNET_HEADER_SIZE);
    this.perFrame[item] = count + 1;
    this.superSegments++;
    const length = end - used;
    const packet = this.packetViews.view(item, slab, used + VNET_HEADER_SIZE, length - VNET_HEADER_SIZE);
    setIpLength(packet, v6, ip, packet.length);
    packet[ip + 13] = packet[ip + 13]! | (packets[chain[count - 1]!]![ip + 13]! & TCP_PSH);
    setTcpOffload(slab, used, packet, ip, headerLength, this.segmentSize[item]!);
    return length;
  }
}

/**
 * Makes the frame at frame[at..] (its vnet header, then `packet`: IP, TCP at `ip`, headers `headerLength`
 * bytes) one a TUN with offloads takes and hands over: NEEDS_CSUM, with the pseudo-header's sum left in the
 * TCP checksum field for the kernel (or the split) to finish, and with a `gsoSize`, a super-segment cut into
 * segments of that payload (GSO TCPv4 or TCPv6).
 */
export function setTcpOffload(
  frame: Uint8Array,
  at: number,
  packet: Uint8Array,
  ip: number,
  headerLength: number,
  gsoSize: number,
): void {
  const v6 = isV6(packet);
  setUint16(packet, ip + TCP_CHECKSUM, pseudoHeaderSum(packet, v6, PROTO_TCP, packet.length - ip));
  frame[at + FLAGS] = F_NEEDS_CSUM;
  frame[at + GSO_TYPE] = gsoSize === 0 ? GSO_NONE : v6 ? GSO_TCPV6 : GSO_TCPV4;
  setUint16LE(frame, at + HDR_LEN, headerLength);
  setUint16LE(frame, at + GSO_SIZE, gsoSize);
  setUint16LE(frame, at + CSUM_START, ip);
  setUint16LE(frame, at + CSUM_OFFSET, TCP_CHECKSUM);
}

function setUint16LE(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value & 0xff;
  bytes[offset + 1] = value >>> 8;
}

/** a[start, end) equals b from bStart on. */
function equalBytes(a: Uint8Array, b: Uint8Array, start: number, end: number, bStart = start): boolean {
  for (let i = start; i < end; i++) if (a[i] !== b[i - start + bStart]) return false;
  return true;
}

/**
 * The TCP header length of a segment GRO may merge, else 0: IPv4 without options or fragments and with
 * a valid header checksum, or IPv6 without extension headers (so its IP header is 20 or 40 bytes); IP
 * length matching the packet; only ACK (and PSH) set; some payload.
 */
function coalescableTcpHeader(packet: Uint8Array): number {
  const v6 = isV6(packet);
  if (!readTcpHeaders(packet, v6)) return 0;
  const { ip, tcp } = headers;
  const ipLength = v6 ? getUint16(packet, 4) + IPV6_HEADER : getUint16(packet, 2);
  if ((!v6 && ip !== IPV4_HEADER_MIN) || ipLength !== packet.length || packet.length === ip + tcp) return 0;
  // A merged header is rewritten with a fresh checksum, so a bad one must keep its packet out (the kernel
  // then drops it alone, as its own GRO would).
  if (!v6 && sum16(packet, 0, IPV4_HEADER_MIN) !== 0xffff) return 0;
  return (packet[ip + 13]! & ~TCP_PSH) === TCP_ACK ? tcp : 0;
}

/** Everything but lengths, ids, checksums and sequence numbers equal, as tcp_gro_receive requires. */
function sameHeaders(head: Uint8Array, packet: Uint8Array, v6: boolean, ip: number, tcp: number): boolean {
  if (head.length < ip + tcp || (head[ip + 12]! >> 4) * 4 !== tcp) return false;
  if (v6) {
    // version, traffic class, flow label; next header and hop limit
    if (!equalBytes(head, packet, 0, 4) || !equalBytes(head, packet, 6, 8)) return false;
  } else {
    // TOS; DF; TTL and protocol
    if (
      head[1] !== packet[1] ||
      (head[6]! & 0x40) !== (packet[6]! & 0x40) ||
      !equalBytes(head, packet, 8, 10)
    )
      return false;
  }
  // ACK number; header length and flags but PSH; window; then the options
  return (
    equalBytes(head, packet, ip + 8, ip + 12) &&
    head[ip + 12] === packet[ip + 12] &&
    (head[ip + 13]! & ~TCP_PSH) === (packet[ip + 13]! & ~TCP_PSH) &&
    equalBytes(head, packet, ip + 14, ip + 16) &&
    equalBytes(head, packet, ip + TCP_HEADER_MIN, ip + tcp)
  );
}

function tcpChecksumValid(packet: Uint8Array, v6: boolean, ip: number): boolean {
  const pseudo = pseudoHeaderSum(packet, v6, PROTO_TCP, packet.length - ip);
  return sum16(packet, ip, packet.length, pseudo) === 0xffff;
}
