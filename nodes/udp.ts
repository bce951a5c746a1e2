// The daemon's UDP transport: one socket for both address families, batched (the addon in nodes/tun/udp.c:
// recvmmsg/sendmmsg, sticky source address) or through Node's dgram (one system call per datagram).
//
// With offloads (the default where the kernel has them), the batched socket also sends the same-size
// datagrams queued for one endpoint as one UDP GSO message (UDP_SEGMENT: the kernel or the NIC cuts it),
// and receives GRO batches (UDP_GRO: several datagrams of one sender in one read), split here into views.
// When the kernel refuses GSO on this socket (EIO: no checksum offload on the route; or its first GSO
// message refused), the socket says so once and goes on with one datagram per message, as wireguard-go does.
//
// Why one dual-stack socket (udp6, ipv6Only false, bound to [::]) rather than wireguard-go's and the
// kernel's two: Node gives each socket its own 'message' path, so one socket means one receive loop
// and one port to bind (no race where v4 gets the port and v6 finds it taken). IPv4 peers appear as
// IPv4-mapped addresses (::ffff:a.b.c.d); the engine sees plain a.b.c.d, so endpoints compare equal
// whether a peer was configured or roamed, and we map back when sending. If the host has no IPv6
// (module absent or disabled), we fall back to a plain udp4 socket.
import { createSocket, type Socket } from 'node:dgram';
import { isIPv4, isIPv6 } from 'node:net';
import { constants } from 'node:os';
import { getSystemErrorName } from 'node:util';

import { dottedQuad, formatIpAddress, isIpv4Mapped, parseIpAddress } from '../crypto/ipaddr.js';
import type { PeerRef } from '../crypto/tunnel.js';
import { loadAddon } from './tun/addon.js';
import { ReusedViews } from './views.js';

export interface UdpEndpoint {
  readonly address: string; // numeric IPv4 or IPv6, never IPv4-mapped
  readonly port: number;
  /** Batched mode: our address the datagram arrived at; sending to this endpoint leaves from it. */
  readonly local?: string;
}

export interface UdpOptions {
  /** 0 (default) lets the kernel pick; read the result from `port`. */
  port?: number;
  /** Default '::' (all addresses, both families); an IPv4 address binds an IPv4-only socket. */
  host?: string;
  /** Requested socket buffer sizes; the kernel caps them at net.core.{r,w}mem_max. */
  receiveBufferSize?: number;
  sendBufferSize?: number;
  /** recvmmsg/sendmmsg through the addon (default), or Node's dgram, one system call per datagram. */
  batched?: boolean;
  /** Batched only: UDP GSO and GRO where the kernel has them (default on; `--offload`). */
  offload?: boolean;
  /** Told once, when the kernel refuses GSO on this socket and it falls back to plain sendmmsg. */
  onNotice?: (line: string) => void;
  /** Batched with offloads: counted in place, for the metrics. */
  offloadCounts?: UdpOffloadCounts;
  /** Counted in place, for the metrics. */
  sendCounts?: UdpSendCounts;
}

/**
 * What the socket sent: datagrams (a GSO message's each) and their bytes that reached the kernel, and the
 * datagrams that did not (refused by the kernel or the socket; those sent for a peer are also named back to
 * onRefused).
 */
export interface UdpSendCounts {
  datagrams: number;
  bytes: number;
  refused: number;
}

export const noUdpSendCounts = (): UdpSendCounts => ({ datagrams: 0, bytes: 0, refused: 0 });

/** What the batched socket's offloads carried: GSO messages sent and GRO batches received, in datagrams. */
export interface UdpOffloadCounts {
  gsoMessages: number;
  gsoDatagrams: number;
  groBatches: number;
  groDatagrams: number;
}

export const noUdpOffloadCounts = (): UdpOffloadCounts => ({
  gsoMessages: 0,
  gsoDatagrams: 0,
  groBatches: 0,
  groDatagrams: 0,
});

export interface UdpTransport {
  readonly port: number;
  /** What carries datagrams, for the start-up line: "batched, GSO on, GRO on", "dgram, GSO off, GRO off"... */
  readonly mode: string;
  /** A read hands over a batch of datagrams (recvmmsg), where dgram hands over each in a callback of its own. */
  readonly batched: boolean;
  /**
   * Every received datagram with its normalised source. The datagram may be a view into a buffer the next
   * batch reuses: it is valid during the call only (copy what must outlive it). `batchEnded` is called after
   * the last datagram of each read (batched: a recvmmsg batch; dgram: every datagram), also when the
   * listener threw.
   */
  onDatagram(listener: (datagram: Uint8Array, from: UdpEndpoint) => void, batchEnded?: () => void): void;
  /**
   * Receiving stopped for good (batched: the descriptor can no longer be read, or a buffer was detached); the
   * socket no longer hears anything. Node's dgram reports errors that concern one datagram only: never.
   */
  onError(listener: (error: Error) => void): void;
  /**
   * Fire and forget (batched: queued and written at the end of this event-loop turn); a datagram the kernel
   * refuses is dropped, as on the wire. One sent for a `peer` is named back to onRefused if it is refused.
   */
  send(datagram: Uint8Array, to: UdpEndpoint, peer?: PeerRef): void;
  /**
   * Each datagram sent for a peer that did not reach the kernel or that the kernel refused (an address it
   * cannot reach, a closed socket), with its bytes: called during send or when the batch is written.
   */
  onRefused(listener: (peer: PeerRef, bytes: number) => void): void;
  /**
   * Batched: until uncork(), queued datagrams wait for uncork() to write them rather than for the end of the
   * turn, which spares queueing a callback per turn. The caller uncorks before its callback returns.
   * dgram: nothing to hold.
   */
  cork(): void;
  uncork(): void;
  /** Actual buffer sizes the kernel granted (it reports double the usable size). */
  bufferSizes(): { receive: number; send: number };
  /**
   * Datagrams the kernel dropped for this socket before they were read (a full receive buffer, a bad
   * checksum), since it opened; after close, as last read. Undefined where the socket cannot tell (dgram).
   */
  receiveDrops(): number | undefined;
  /** Datagrams sent before it are written first (batched: those still queued), or named back if refused. */
  close(): Promise<void>;
}

// Large buffers absorb bursts while the single JS thread is busy encrypting.
const DEFAULT_BUFFER_SIZE = 8 * 1024 * 1024;
const MAPPED_PREFIX = '::ffff:';

/** '::ffff:a.b.c.d' → 'a.b.c.d'; every other address unchanged. */
export function normaliseAddress(address: string): string {
  if (
    address.length > MAPPED_PREFIX.length &&
    address.slice(0, MAPPED_PREFIX.length).toLowerCase() === MAPPED_PREFIX
  ) {
    const v4 = address.slice(MAPPED_PREFIX.length);
    if (isIPv4(v4)) return v4;
  }
  return address;
}

/** The address to hand a socket of `family`: IPv4 becomes IPv4-mapped on a dual-stack socket. */
export function socketAddress(address: string, family: 'udp4' | 'udp6'): string | undefined {
  if (family === 'udp6')
    return isIPv4(address) ? MAPPED_PREFIX + address : isIPv6(address) ? address : undefined;
  return isIPv4(address) ? address : undefined;
}

// Addresses are always numeric here; skipping dns.lookup saves a tick per datagram.
function numericLookup(
  address: string,
  _options: unknown,
  callback: (error: Error | null, address: string, family: number) => void,
): void {
  callback(null, address, isIPv6(address) ? 6 : 4);
}

function bind(family: 'udp4' | 'udp6', host: string, port: number): Promise<Socket> {
  return new Promise((resolveBind, reject) => {
    const socket = createSocket({ type: family, ipv6Only: false, lookup: numericLookup });
    // A failed bind leaves the descriptor open: close it, or every retry leaks one.
    socket.once('error', (error) => {
      socket.close();
      reject(error);
    });
    socket.bind({ port, address: host, exclusive: true }, () => {
      socket.removeAllListeners('error');
      resolveBind(socket);
    });
  });
}

const IPV6_UNAVAILABLE = new Set(['EAFNOSUPPORT', 'EADDRNOTAVAIL', 'EPROTONOSUPPORT']);

export async function openUdp(options: UdpOptions = {}): Promise<UdpTransport> {
  return options.batched === false ? openDgramUdp(options) : openBatchedUdp(options);
}

/**
 * The dgram sends whose callback has yet to come, oldest first: whom each was for, and its bytes. Node calls a
 * socket's send callbacks in the order of the sends: an outcome known at once is reported on the next tick,
 * and once a send waits in libuv's queue, every later one queues behind it. A ring that doubles when full.
 */
class SendsInFlight {
  private peers: Array<PeerRef | undefined> = new Array(64).fill(undefined);
  private lengths = new Int32Array(64);
  private head = 0;
  private count = 0;

  push(peer: PeerRef | undefined, length: number): void {
    if (this.count === this.lengths.length) this.grow();
    const at = (this.head + this.count) & (this.lengths.length - 1);
    this.peers[at] = peer;
    this.lengths[at] = length;
    this.count++;
  }

  oldestPeer(): PeerRef | undefined {
    return this.peers[this.head];
  }

  oldestLength(): number {
    return this.lengths[this.head]!;
  }

  shift(): void {
    this.peers[this.head] = undefined;
    this.head = (this.head + 1) & (this.lengths.length - 1);
    this.count--;
  }

  private grow(): void {
    const size = this.lengths.length;
    const order = (i: number) => (this.head + i) & (size - 1);
    this.peers = Array.from({ length: 2 * size }, (_, i) => (i < size ? this.peers[order(i)] : undefined));
    const lengths = new Int32Array(2 * size);
    for (let i = 0; i < size; i++) lengths[i] = this.lengths[order(i)]!;
    this.lengths = lengths;
    this.head = 0;
  }
}

async function openDgramUdp(options: UdpOptions): Promise<UdpTransport> {
  const { port = 0, host = '::' } = options;
  let family: 'udp4' | 'udp6' = isIPv4(host) ? 'udp4' : 'udp6';
  let socket: Socket;
  try {
    socket = await bind(family, host, port);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    if (host !== '::' || !IPV6_UNAVAILABLE.has(code)) throw error;
    family = 'udp4';
    socket = await bind(family, '0.0.0.0', port);
  }
  socket.setRecvBufferSize(options.receiveBufferSize ?? DEFAULT_BUFFER_SIZE);
  socket.setSendBufferSize(options.sendBufferSize ?? DEFAULT_BUFFER_SIZE);
  // Errors on an unconnected UDP socket (e.g. a failed send) concern one datagram, never the socket.
  socket.on('error', () => undefined);

  let closed = false;
  const sendCounts = options.sendCounts ?? noUdpSendCounts();
  let refused: (peer: PeerRef, bytes: number) => void = () => undefined;
  const refuse = (peer: PeerRef | undefined, length: number) => {
    sendCounts.refused++;
    if (peer !== undefined) refused(peer, length);
  };
  // One callback for every send, rather than a closure per send to carry its peer and bytes.
  const inFlight = new SendsInFlight();
  const sent = (error: Error | null) => {
    const peer = inFlight.oldestPeer();
    const length = inFlight.oldestLength();
    inFlight.shift();
    if (error !== null) {
      refuse(peer, length);
      return;
    }
    sendCounts.datagrams++;
    sendCounts.bytes += length;
  };
  return {
    port: socket.address().port,
    mode: 'dgram, GSO off, GRO off',
    batched: false,
    onError() {}, // see UdpTransport.onError
    onRefused(listener) {
      refused = listener;
    },
    onDatagram(listener, batchEnded) {
      socket.removeAllListeners('message');
      socket.on('message', (datagram, remote) => {
        try {
          listener(datagram, { address: normaliseAddress(remote.address), port: remote.port });
        } finally {
          batchEnded?.();
        }
      });
    },
    send(datagram, to, peer) {
      const address = socketAddress(to.address, family);
      // dgram throws on port 0 or out of range; a bad endpoint is one dropped datagram, not a crash.
      if (closed || address === undefined || !Number.isInteger(to.port) || to.port < 1 || to.port > 65535) {
        refuse(peer, datagram.length);
        return;
      }
      socket.send(datagram, to.port, address, sent);
      inFlight.push(peer, datagram.length); // after: a throwing send never calls back
    },
    cork() {},
    uncork() {},
    bufferSizes: () => ({ receive: socket.getRecvBufferSize(), send: socket.getSendBufferSize() }),
    receiveDrops: () => undefined,
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      return new Promise((resolveClose) => socket.close(() => resolveClose()));
    },
  };
}

// --- batched: the addon's recvmmsg / sendmmsg --------------------------------------------------------------

/** The UDP addon's functions (nodes/tun/udp.c). */
export interface UdpAddon {
  open(
    family: 4 | 6,
    address: Uint8Array,
    port: number,
    receiveBuffer: number,
    sendBuffer: number,
  ): { fd: number; port: number };
  bufferSizes(fd: number): [number, number];
  receiveDrops(fd: number): number;
  startReceiving(
    fd: number,
    slab: Uint8Array,
    records: Int32Array,
    slotSize: number,
    onBatch: (count: number) => void,
    onError: (message: string) => void,
  ): { stop(): void };
  /** `family` is the one `open` was given: the addon trusts it rather than asking the kernel per call. */
  sendMany(
    fd: number,
    family: 4 | 6,
    slab: Uint8Array,
    records: Int32Array,
    slotSize: number,
    start: number,
    end: number,
  ): number;
  enableOffloads(fd: number): { gso: boolean; gro: boolean };
  /** Datagrams per GSO message that every kernel with UDP_SEGMENT accepts; sendMany refuses more. */
  readonly GSO_SEGMENTS_MAX: number;
  close(fd: number): void;
}

// The record layout of udp.c: int32 fields, then the remote and local addresses as 16 bytes each.
const RECORD_INTS = 12;
const RECORD_LENGTH = 0;
const RECORD_PORT = 1;
const RECORD_FLAGS = 2;
const RECORD_SEGMENT = 3; // 0: one datagram; above 0: GSO/GRO datagrams of that size, the last shorter
const RECORD_REMOTE = 4;
const RECORD_LOCAL = 8;
const ADDRESS_INTS = 4;
const FLAG_LOCAL = 1;
const FLAG_TRUNCATED = 2;

// One slot holds the largest UDP payload, so no datagram a peer sends is cut; 64 slots = one recvmmsg.
const SLOT_SIZE = 65536;
const BATCH_SLOTS = 64;
// Received views kept per slot: its datagram, or the GRO segments of a coalesced one.
const VIEWS_PER_SLOT = 64;
// Errors that mean the sticky source address is no longer ours (removed, or the route changed).
const STALE_SOURCE_ERRNOS = new Set([
  constants.errno.EINVAL,
  constants.errno.EADDRNOTAVAIL,
  constants.errno.ENETUNREACH,
]);
const ENDPOINT_CACHE_MAX = 4096;
// Sources seen once, by hash, in a table of this many slots (a power of two): ReceivedEndpoints.remember.
const SEEN_ONCE_SLOTS = 8192;
// A GSO message is one UDP datagram to the kernel until it is cut: at most 65535 bytes of IP packet.
const GSO_BYTES_MAX = { v4: 65535 - 20 - 8, v6: 65535 - 8 } as const;
// How the kernel refuses a GSO message it would send as separate datagrams: EIO when the route cannot
// checksum-offload (then GSO is off for the socket), EMSGSIZE or EINVAL when a segment exceeds the route's
// MTU (the kernel fragments a lone datagram, never a segment).
const GSO_REFUSALS = new Set([constants.errno.EIO, constants.errno.EINVAL, constants.errno.EMSGSIZE]);

/** The datagrams a send record's message carries: one, or its GSO segments. */
function datagramsIn(records: Int32Array, record: number): number {
  const segment = records[record + RECORD_SEGMENT]!;
  return segment === 0 ? 1 : Math.ceil(records[record + RECORD_LENGTH]! / segment);
}

/** 16 bytes for an address: IPv4 as IPv4-mapped IPv6, as the addon's records hold it. */
function addressBytes(address: string): Uint8Array | undefined {
  const parsed = parseIpAddress(address);
  if (!parsed.ok) return undefined;
  if (parsed.value.length === 16) return parsed.value;
  const mapped = new Uint8Array(16);
  mapped[10] = mapped[11] = 0xff;
  mapped.set(parsed.value, 12);
  return mapped;
}

/** The text of the 16 address bytes at `at` (IPv4 as IPv4-mapped, as records hold it): IPv4 as a dotted quad. */
function addressText(bytes: Uint8Array, at: number): string {
  return isIpv4Mapped(bytes, at) ? dottedQuad(bytes, at + 12) : formatIpAddress(bytes.slice(at, at + 16));
}

/**
 * A source the batched socket received from, made once per new source straight from its record: its text,
 * and, so that nothing parses that text back, its bytes (the engine's cookie and rate-limit keys) and the
 * send target replies use. Under a flood from ever-new sources that parsing, a WeakMap entry each and the
 * garbage they left were most of what a cookie reply cost. The extras are private, not own properties: the
 * endpoint reads as the plain { address, port, local } every transport hands over.
 */
class ReceivedEndpoint implements UdpEndpoint {
  readonly address: string;
  readonly port: number;
  readonly local: string | undefined;
  readonly #bytes: Uint8Array;
  /** Null for port 0 (a spoofed source's), which no datagram can be sent to: refused before it is queued. */
  readonly #target: SendTarget | null;

  constructor(records: Int32Array, bytes: Uint8Array, record: number, hasLocal: boolean) {
    const remote = (record + RECORD_REMOTE) * 4;
    const remoteV4 = isIpv4Mapped(bytes, remote);
    this.address = addressText(bytes, remote);
    this.port = records[record + RECORD_PORT]!;
    this.local = hasLocal ? addressText(bytes, (record + RECORD_LOCAL) * 4) : undefined;
    this.#bytes = remoteV4 ? bytes.slice(remote + 12, remote + 16) : bytes.slice(remote, remote + 16);
    const addresses = new Int32Array(2 * ADDRESS_INTS);
    for (let i = 0; i < (hasLocal ? 2 : 1) * ADDRESS_INTS; i++)
      addresses[i] = records[record + RECORD_REMOTE + i]!;
    const gsoBytesMax = remoteV4 ? GSO_BYTES_MAX.v4 : GSO_BYTES_MAX.v6;
    this.#target = this.port === 0 ? null : { addresses, port: this.port, gsoBytesMax, hasSource: hasLocal };
  }

  get addressBytes(): Uint8Array {
    return this.#bytes;
  }

  /** Where replies to it go: to its address and port, from the address it sent to. */
  get target(): SendTarget | null {
    return this.#target;
  }
}

/**
 * Received sources as endpoint objects, reused while the same peer keeps sending from the same address to
 * the same local address: the steady receive path creates no strings or objects per datagram.
 */
class ReceivedEndpoints {
  private readonly byHash = new Map<number, { key: Int32Array; endpoint: UdpEndpoint }>();
  // The last one found: a bulk flow's datagrams come from one peer, batch after batch, and comparing its
  // key is cheaper than hashing the record and looking the hash up.
  private last: { key: Int32Array; endpoint: UdpEndpoint } | undefined;

  private readonly bytes: Uint8Array;
  private readonly seenOnce = new Int32Array(SEEN_ONCE_SLOTS);

  constructor(private readonly records: Int32Array) {
    this.bytes = new Uint8Array(records.buffer, records.byteOffset, records.byteLength);
  }

  lookup(record: number): UdpEndpoint {
    const records = this.records;
    const hasLocal = (records[record + RECORD_FLAGS]! & FLAG_LOCAL) !== 0;
    const ints = hasLocal ? 2 * ADDRESS_INTS : ADDRESS_INTS;
    const last = this.last;
    if (last !== undefined && this.matches(last.key, record, ints)) return last.endpoint;
    let hash = records[record + RECORD_PORT]! ^ (hasLocal ? 0x5bd1e995 : 0);
    for (let i = 0; i < ints; i++) hash = Math.imul(hash ^ records[record + RECORD_REMOTE + i]!, 0x01000193);
    const cached = this.byHash.get(hash);
    if (cached !== undefined && this.matches(cached.key, record, ints)) {
      this.last = cached;
      return cached.endpoint;
    }
    return this.remember(record, hash, hasLocal, ints);
  }

  // A source is kept from its second datagram on. A flood from ever-new (spoofed) sources would otherwise
  // fill the cache with endpoints that outlive the young generation, each copied by every scavenge until the
  // cache is cleared: after the cookie replies themselves, most of what such a flood cost the node.
  private remember(record: number, hash: number, hasLocal: boolean, ints: number): UdpEndpoint {
    const endpoint = new ReceivedEndpoint(this.records, this.bytes, record, hasLocal);
    const slot = hash & (SEEN_ONCE_SLOTS - 1);
    if (this.seenOnce[slot] !== hash) {
      this.seenOnce[slot] = hash;
      return endpoint;
    }
    const key = this.records.slice(record + RECORD_PORT, record + RECORD_REMOTE + ints);
    if (this.byHash.size >= ENDPOINT_CACHE_MAX) this.byHash.clear();
    this.last = { key, endpoint };
    this.byHash.set(hash, this.last);
    return endpoint;
  }

  // key = [port, flags, reserved, remote..., local...] as copied from the record.
  private matches(key: Int32Array, record: number, ints: number): boolean {
    const records = this.records;
    if (key.length !== RECORD_REMOTE - RECORD_PORT + ints) return false;
    if (key[0] !== records[record + RECORD_PORT]) return false;
    if ((key[RECORD_FLAGS - RECORD_PORT]! & FLAG_LOCAL) !== (records[record + RECORD_FLAGS]! & FLAG_LOCAL))
      return false;
    for (let i = 0; i < ints; i++) {
      if (key[RECORD_REMOTE - RECORD_PORT + i] !== records[record + RECORD_REMOTE + i]) return false;
    }
    return true;
  }
}

/** Where a send goes, encoded once per endpoint object: destination (and sticky source) as record ints. */
interface SendTarget {
  readonly addresses: Int32Array; // remote then local, 2 × 16 bytes
  readonly port: number;
  /** The most bytes one GSO message to this destination may carry. */
  readonly gsoBytesMax: number;
  hasSource: boolean;
}

/**
 * Where sendTarget writes a target's addresses as bytes before copying them out as ints. A target's own small
 * Int32Array lives in the V8 heap until its `.buffer` is asked for, which moves it to a malloc'ed backing store
 * that the collector then sweeps: per new endpoint, as in a flood from spoofed sources, most of what a cookie
 * reply cost the node end to end.
 */
const targetBytes = new Uint8Array(2 * ADDRESS_INTS * 4);
const targetInts = new Int32Array(targetBytes.buffer);

function sendTarget(to: UdpEndpoint, family: 4 | 6): SendTarget | undefined {
  const remote = addressBytes(to.address);
  if (remote === undefined || !Number.isInteger(to.port) || to.port < 1 || to.port > 65535) return undefined;
  const remoteV4 = isIpv4Mapped(remote);
  if (family === 4 && !remoteV4) return undefined;
  targetBytes.fill(0);
  targetBytes.set(remote, 0);
  const local = to.local === undefined ? undefined : addressBytes(to.local);
  // The source must be of the destination's family; anything else is left to the kernel's choice.
  const usable = local !== undefined && isIpv4Mapped(local) === remoteV4;
  if (usable) targetBytes.set(local, 16);
  const gsoBytesMax = remoteV4 ? GSO_BYTES_MAX.v4 : GSO_BYTES_MAX.v6;
  return { addresses: targetInts.slice(), port: to.port, gsoBytesMax, hasSource: usable };
}

/** Whether two targets name the same destination and source (endpoint objects differ per caller). */
function sameTarget(a: SendTarget, b: SendTarget): boolean {
  if (a === b) return true;
  if (a.port !== b.port || a.hasSource !== b.hasSource) return false;
  for (let i = 0; i < a.addresses.length; i++) if (a.addresses[i] !== b.addresses[i]) return false;
  return true;
}

function openAddonSocket(addon: UdpAddon, host: string, port: number, options: UdpOptions) {
  const family: 4 | 6 = isIPv4(host) ? 4 : 6;
  const address = addressBytes(host);
  if (address === undefined) throw new Error(`UDP listen address ${host} is not a numeric IP address`);
  const buffers = [
    options.receiveBufferSize ?? DEFAULT_BUFFER_SIZE,
    options.sendBufferSize ?? DEFAULT_BUFFER_SIZE,
  ] as const;
  return { family, ...addon.open(family, address, port, ...buffers) };
}

async function openBatchedUdp(options: UdpOptions): Promise<UdpTransport> {
  const addon = loadAddon<UdpAddon>('udp');
  const { port = 0, host = '::' } = options;
  let socket: { family: 4 | 6; fd: number; port: number };
  try {
    socket = openAddonSocket(addon, host, port, options);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    if (host !== '::' || !IPV6_UNAVAILABLE.has(code)) throw error;
    socket = openAddonSocket(addon, '0.0.0.0', port, options);
  }
  const { fd, family } = socket;
  let granted = { gso: false, gro: false };
  try {
    if (options.offload !== false) granted = addon.enableOffloads(fd);
  } catch (error) {
    addon.close(fd);
    throw error;
  }
  let gso = granted.gso; // GRO needs no state here: a GRO batch says its segment size
  const onOff = (on: boolean) => (on ? 'on' : 'off');
  const mode = `batched, GSO ${onOff(gso)}, GRO ${onOff(granted.gro)}`;
  const counts = options.offloadCounts ?? noUdpOffloadCounts();
  const sendCounts = options.sendCounts ?? noUdpSendCounts();
  const segmentsMax = addon.GSO_SEGMENTS_MAX;

  const receiveSlab = new Uint8Array(BATCH_SLOTS * SLOT_SIZE);
  const receiveRecords = new Int32Array(BATCH_SLOTS * RECORD_INTS);
  const endpoints = new ReceivedEndpoints(receiveRecords);
  const sendSlab = new Uint8Array(BATCH_SLOTS * SLOT_SIZE);
  const sendRecords = new Int32Array(BATCH_SLOTS * RECORD_INTS);
  const queuedTargets: Array<SendTarget | undefined> = new Array(BATCH_SLOTS).fill(undefined);
  // Per slot, the peer whose datagrams it holds (a GSO message holds one peer's only), for onRefused.
  const queuedPeers: Array<PeerRef | undefined> = new Array(BATCH_SLOTS).fill(undefined);
  let refused: (peer: PeerRef, bytes: number) => void = () => undefined;
  const refuse = (peer: PeerRef | undefined, bytes: number, datagrams: number) => {
    sendCounts.refused += datagrams;
    if (peer !== undefined) refused(peer, bytes);
  };
  const targets = new WeakMap<UdpEndpoint, SendTarget | null>();
  // The last endpoint sent to and its target: a bulk flow sends to one peer, and an identity check is
  // cheaper than the WeakMap's lookup.
  let lastTo: UdpEndpoint | undefined;
  let lastTarget: SendTarget | null = null;
  // A received endpoint brings its own target; any other is encoded once and kept in `targets`.
  const targetFor = (to: UdpEndpoint): SendTarget | null => {
    if (to === lastTo) return lastTarget;
    if (to instanceof ReceivedEndpoint) return to.target;
    let target = targets.get(to);
    if (target === undefined) {
      target = sendTarget(to, family) ?? null;
      targets.set(to, target);
    }
    return target;
  };
  let queued = 0;
  // The last queued slot while more datagrams may join it as GSO segments of its first one's size.
  let open: SendTarget | undefined;
  let openSegment = 0;
  let openSegments = 0;
  // Until one GSO message of this socket goes through, a refusal means the kernel will not do GSO at all;
  // after that, it concerns that message only (a segment larger than a route's MTU).
  const gsoMessagesAtOpen = counts.gsoMessages;
  let receiver: { stop(): void } | undefined;
  let closed = false;
  let corked = false;
  let receiveDrops = 0;
  let receiveDropsRead = 0;

  // Sends slots [0, count) of `slab`; each refused message is dropped (and named to refuse), except that
  // a stale sticky source is forgotten and the message retried from the kernel's choice of address, and a
  // GSO message the kernel refuses (without a source to blame) goes out as separate datagrams.
  const sendSlots = (
    slab: Uint8Array,
    records: Int32Array,
    slotSize: number,
    count: number,
    targetOf: (slot: number) => SendTarget | undefined,
    peerOf: (slot: number) => PeerRef | undefined,
  ) => {
    let start = 0;
    while (start < count) {
      const sent = addon.sendMany(fd, family, slab, records, slotSize, start, count);
      if (sent > 0) {
        countSent(records, start, start + sent);
        start += sent;
        continue;
      }
      const record = start * RECORD_INTS;
      const target = targetOf(start);
      // A stale source comes first: EINVAL is also how the kernel refuses a source no longer ours.
      if ((records[record + RECORD_FLAGS]! & FLAG_LOCAL) !== 0 && STALE_SOURCE_ERRNOS.has(-sent)) {
        records[record + RECORD_FLAGS] = records[record + RECORD_FLAGS]! & ~FLAG_LOCAL;
        if (target) target.hasSource = false;
        continue;
      }
      const peer = peerOf(start);
      if (target && records[record + RECORD_SEGMENT]! > 0 && GSO_REFUSALS.has(-sent)) {
        if (-sent === constants.errno.EIO || counts.gsoMessages === gsoMessagesAtOpen) disableGso(-sent);
        sendSeparately(start, target, peer);
      } else {
        refuse(peer, records[record + RECORD_LENGTH]!, datagramsIn(records, record));
      }
      start++;
    }
  };

  const disableGso = (errno: number) => {
    if (!gso) return;
    gso = false;
    options.onNotice?.(
      `UDP GSO refused by the kernel (${getSystemErrorName(-errno)}): sending one datagram per message`,
    );
  };

  // A refused GSO message's datagrams, each in its own slot of a scratch slab (rare: made when needed).
  const sendSeparately = (slot: number, target: SendTarget, peer: PeerRef | undefined) => {
    const record = slot * RECORD_INTS;
    const length = sendRecords[record + RECORD_LENGTH]!;
    const segment = sendRecords[record + RECORD_SEGMENT]!;
    const datagrams = datagramsIn(sendRecords, record);
    const slab = new Uint8Array(datagrams * segment);
    slab.set(sendSlab.subarray(slot * SLOT_SIZE, slot * SLOT_SIZE + length));
    const records = new Int32Array(datagrams * RECORD_INTS);
    for (let i = 0; i < datagrams; i++) {
      records.set(sendRecords.subarray(record, record + RECORD_INTS), i * RECORD_INTS);
      records[i * RECORD_INTS + RECORD_LENGTH] = Math.min(segment, length - i * segment);
      records[i * RECORD_INTS + RECORD_SEGMENT] = 0;
    }
    sendSlots(
      slab,
      records,
      segment,
      datagrams,
      () => target,
      () => peer,
    );
  };

  const countSent = (records: Int32Array, start: number, end: number) => {
    for (let record = start * RECORD_INTS; record < end * RECORD_INTS; record += RECORD_INTS) {
      const datagrams = datagramsIn(records, record);
      sendCounts.datagrams += datagrams;
      sendCounts.bytes += records[record + RECORD_LENGTH]!;
      if (records[record + RECORD_SEGMENT] === 0) continue;
      counts.gsoMessages++;
      counts.gsoDatagrams += datagrams;
    }
  };

  const targetOfSlot = (slot: number) => queuedTargets[slot];
  const peerOfSlot = (slot: number) => queuedPeers[slot];
  // Writes what send() queued.
  const flush = () => {
    sendSlots(sendSlab, sendRecords, SLOT_SIZE, queued, targetOfSlot, peerOfSlot);
    // (Array fill is a call into C++.)
    for (let slot = 0; slot < queued; slot++) queuedTargets[slot] = queuedPeers[slot] = undefined;
    queued = 0;
    open = undefined;
  };

  // The views handed to the listener, by slot and GRO segment (the segments past VIEWS_PER_SLOT share the
  // last key): a bulk flow's datagrams get the same views again, not new objects.
  const receiveViews = new ReusedViews();

  const receiveBatch = (
    listener: (datagram: Uint8Array, from: UdpEndpoint) => void,
    batchEnded: (() => void) | undefined,
    count: number,
  ) => {
    try {
      for (let i = 0; i < count; i++) {
        const record = i * RECORD_INTS;
        // Longer than any slot: not a datagram WireGuard sends, and its tail is gone.
        if ((receiveRecords[record + RECORD_FLAGS]! & FLAG_TRUNCATED) !== 0) continue;
        const offset = i * SLOT_SIZE;
        const end = offset + receiveRecords[record + RECORD_LENGTH]!;
        const segment = receiveRecords[record + RECORD_SEGMENT]!;
        const from = endpoints.lookup(record);
        if (segment <= 0) {
          listener(receiveViews.view(i * VIEWS_PER_SLOT, receiveSlab, offset, end - offset), from);
          continue;
        }
        counts.groBatches++;
        for (let at = offset, k = 0; at < end; at += segment, k++) {
          counts.groDatagrams++;
          const key = i * VIEWS_PER_SLOT + Math.min(k, VIEWS_PER_SLOT - 1);
          listener(receiveViews.view(key, receiveSlab, at, Math.min(segment, end - at)), from);
        }
      }
    } finally {
      batchEnded?.();
    }
  };

  let errorListener: (error: Error) => void = () => undefined;

  return {
    port: socket.port,
    mode,
    batched: true,
    onDatagram(listener, batchEnded) {
      receiver?.stop();
      receiver = addon.startReceiving(
        fd,
        receiveSlab,
        receiveRecords,
        SLOT_SIZE,
        (count) => receiveBatch(listener, batchEnded, count),
        // Only a descriptor that cannot be read any more, or a detached buffer, ends up here.
        (message) => {
          receiver = undefined;
          errorListener(new Error(message));
        },
      );
    },
    onError(listener) {
      errorListener = listener;
    },
    onRefused(listener) {
      refused = listener;
    },
    send(datagram, to, peer) {
      const length = datagram.length;
      const target = closed || length > SLOT_SIZE ? null : targetFor(to);
      if (target === null) {
        refuse(peer, length, 1);
        return;
      }
      lastTo = to;
      lastTarget = target;
      if (
        open !== undefined &&
        sameTarget(open, target) &&
        queuedPeers[queued - 1] === peer &&
        length <= openSegment &&
        openSegments < segmentsMax
      ) {
        // Another segment of the open slot's GSO message; a shorter one is its last.
        const record = (queued - 1) * RECORD_INTS;
        const used = sendRecords[record + RECORD_LENGTH]!;
        if (used + length <= target.gsoBytesMax) {
          sendSlab.set(datagram, (queued - 1) * SLOT_SIZE + used);
          sendRecords[record + RECORD_LENGTH] = used + length;
          sendRecords[record + RECORD_SEGMENT] = openSegment;
          openSegments++;
          if (length < openSegment) open = undefined;
          return;
        }
      }
      if (queued === BATCH_SLOTS) flush();
      const slot = queued++;
      const record = slot * RECORD_INTS;
      sendSlab.set(datagram, slot * SLOT_SIZE);
      sendRecords[record + RECORD_LENGTH] = length;
      sendRecords[record + RECORD_PORT] = target.port;
      sendRecords[record + RECORD_FLAGS] = target.hasSource ? FLAG_LOCAL : 0;
      sendRecords[record + RECORD_SEGMENT] = 0;
      sendRecords.set(target.addresses, record + RECORD_REMOTE);
      queuedTargets[slot] = target;
      queuedPeers[slot] = peer;
      open = gso && length > 0 ? target : undefined;
      openSegment = length;
      openSegments = 1;
      if (slot === 0 && !corked) queueMicrotask(flush);
    },
    cork() {
      corked = true;
    },
    uncork() {
      corked = false;
      if (queued > 0) flush();
    },
    bufferSizes() {
      const [receive, send] = addon.bufferSizes(fd);
      return { receive, send };
    },
    receiveDrops() {
      // The kernel's count is a u32 that wraps (a flood of a million a second does in 72 minutes): each
      // read adds its difference mod 2^32, so the total only grows.
      if (!closed) {
        const count = addon.receiveDrops(fd);
        receiveDrops += (count - receiveDropsRead) >>> 0;
        receiveDropsRead = count;
      }
      return receiveDrops;
    },
    close() {
      if (!closed) {
        closed = true;
        receiver?.stop();
        // What this turn queued leaves first (what the kernel refuses is named back): none goes uncounted.
        try {
          flush();
        } finally {
          addon.close(fd);
        }
      }
      return Promise.resolve();
    },
  };
}
