// The sans-IO WireGuard device (boringtun's Tunn, wireguard-go's device/ minus the goroutines): the I/O shell
// hands it packets from the TUN side (encapsulate), datagrams from UDP (decapsulate) and the time (tick), and
// gets back actions: send this datagram there, deliver this packet, or a typed drop. It never reads a clock,
// never draws randomness it was not handed, and never throws on network input.
//
// nodes/ codes against the exported API (docs/ARCHITECTURE.md "Where things live"): change them together.
import {
  DEFAULT_MTU,
  INITIATION_SIZE,
  KEY_LENGTH,
  MESSAGE_COOKIE_REPLY,
  MESSAGE_INITIATION,
  MESSAGE_RESPONSE,
  RESPONSE_SIZE,
  TRANSPORT_CONTENT_OFFSET,
  UNDER_LOAD_AFTER_TIME_MS,
} from './constants.js';
import { CookieChecker, cookieSource } from './cookie.js';
import { AllowedIps } from './allowedips.js';
import { DeadlineQueue } from './deadlines.js';
import { IndexTable } from './indextable.js';
import { type IpPrefix, parsePrefix } from './ipaddr.js';
import { Keypair } from './keypair.js';
import {
  type CookieReplyMessage,
  type InitiationMessage,
  type ResponseMessage,
  isTransport,
  parseMessage,
  transportLength,
  transportReceiverKey,
  writeInitiation,
  writeResponse,
} from './messages.js';
import {
  type InitiationAnswer,
  type LocalStatic,
  WIREGUARD,
  answerInitiation,
  consumeResponse,
  createInitiation,
  deriveTransportKeys,
  initiationFields,
  initiationRejection,
  localStatic,
} from './noise.js';
import { type Endpoint, type IndexEntry, Peer, endpointAddress } from './peer.js';
import { TAI64N, clamp, constantTimeEqual, generatePrivateKey, wipe } from './primitives.js';
import { RateLimiter } from './ratelimiter.js';
import { type PeerTimersOptions, jitterFromRandomBytes } from './timers.js';

export type { Endpoint } from './peer.js';

/** Every reason the engine drops a packet or datagram; the daemon's metrics start each one at zero. */
export const DROP_REASONS = [
  'malformed', // wrong type/length: never throws, never answers
  'unknown_index', // receiver index not in the index table
  'mac1_invalid',
  'cookie_sent', // under load and mac2 invalid: a cookie reply was sent instead
  'rate_limited', // per-source handshake limits: under load, and a turn's few initiations (nodes/device.ts)
  'handshake_invalid', // AEAD/DH/unknown peer/replayed or flooded initiation
  'decrypt_failed',
  'replay',
  'keypair_expired',
  'allowed_ips_violation', // inner source not routed to the sending peer
  'no_route', // encapsulate: no peer's allowed IPs match the destination
  'no_endpoint', // peer has no known endpoint yet
  'queue_full', // staged-packet queue (128) overflow: oldest dropped
] as const;

export type DropReason = (typeof DROP_REASONS)[number];

/**
 * The peer a send, seal or open action is for. Its name is the base64 public key; the object is the peer
 * itself, so bytes given back (Tunnel.unsent) reach only the peer that counted them, never one removed and
 * added again under the same name meanwhile (a UAPI replace_peers).
 */
export interface PeerRef {
  readonly name: string;
}

export type TunnelAction =
  /**
   * `peer` (base64 public key) names whose authenticated message it is, already counted in its txBytes: a
   * shell that does not hand it to the socket gives the bytes back (Tunnel.unsent). Cookie replies: none.
   */
  | {
      readonly kind: 'send';
      readonly datagram: Uint8Array;
      readonly to: Endpoint;
      readonly peer: PeerRef | undefined;
    }
  | { readonly kind: 'deliver'; readonly packet: Uint8Array; readonly peer: string } // peer = base64 public key
  | { readonly kind: 'drop'; readonly reason: DropReason }
  | SealAction
  | OpenAction;

/**
 * With `transportCrypto`, for a message it takes: seal `packet` under `counter` with the keypair's send key
 * (messages.ts sealTransport) and send it to `to`. The counter is consumed and the message already counted
 * in txBytes: a shell that cannot seal or send it gives the bytes back (Tunnel.sealDropped, Tunnel.unsent).
 */
export interface SealAction {
  readonly kind: 'seal';
  readonly keypair: Keypair;
  readonly counter: number;
  readonly packet: Uint8Array;
  readonly to: Endpoint;
  readonly peer: PeerRef;
}

/**
 * With `transportCrypto`, for a message it takes: open this transport message in place with the keypair's
 * receive key and its own replay window, then hand it to Tunnel.transportOpened (or count the rejection as
 * a drop).
 */
export interface OpenAction {
  readonly kind: 'open';
  readonly keypair: Keypair;
  readonly datagram: Uint8Array;
  readonly from: Endpoint;
  readonly peer: PeerRef;
}

/**
 * Transport messages sealed and opened by the I/O shell (nodes/threads) when it takes them, the rest stays
 * here: the data path returns seal and open actions for those, keypairs keep their keys for
 * Keypair.takeKeys, and `retired` is told of every keypair that leaves service so its keys are wiped
 * wherever they were copied.
 */
export interface TransportCrypto {
  /**
   * Asked before each transport message of `peer` is sealed or opened: true, the shell does it (a seal or
   * open action); false, the engine does it here, as without transportCrypto (a send action, or the opened
   * message carried on). The shell keeps each peer's messages in order across the two.
   */
  takes(peer: PeerRef): boolean;
  retired(keypair: Keypair): void;
}

export interface TunnelOptions {
  privateKey: Uint8Array; // 32 bytes, clamped on input
  randomBytes(length: number): Uint8Array; // injected: crypto.randomBytes in the daemon, seeded in tests
  wallClockMs(): number; // injected Unix time in ms (TAI64N, last handshake time)
  mtu?: number; // padding bound, default 1420
  /**
   * decapsulate may overwrite a transport datagram with its plaintext and deliver a view into it (no copy
   * per packet): for an I/O shell that owns each datagram's buffer and is done with it.
   */
  decryptInPlace?: boolean;
  /**
   * Transport messages in send actions are sealed into buffers the engine reuses: each is valid until the
   * engine is next called (for an I/O shell that copies or sends every datagram at once).
   */
  reuseSendBuffers?: boolean;
  /**
   * The data path's results are reused too: the array encapsulate returns, the one decapsulate returns for
   * a transport message or a malformed datagram, and the send and deliver actions in any result, are valid
   * until the engine is next called (for an I/O shell that performs every action at once). No object is
   * then allocated per packet for them.
   */
  reuseActions?: boolean;
  /**
   * With reuseActions: decapsulate (and transportOpened) are handed the same message objects again (a
   * receive slab's views, a crypto thread's ring records), so the packet view delivered out of each is kept
   * and handed out again while the length matches: no view per packet. Off for a shell that hands in a new
   * object per message, whose messages the kept views would only keep alive.
   */
  reusedMessages?: boolean;
  /** Seal and open transport messages outside the engine (see TransportCrypto). */
  transportCrypto?: TransportCrypto;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type SendAction = Mutable<Extract<TunnelAction, { kind: 'send' }>>;
type DeliverAction = Mutable<Extract<TunnelAction, { kind: 'deliver' }>>;

// A reused send buffer fits the packet, the transport header, the tag and at most 15 bytes of padding.
const SEND_BUFFER_OVERHEAD = 64;
const SEND_BUFFER_MIN = 2048;
// Message objects whose delivered view is kept (TunnelOptions.reusedMessages): a UDP batch's receive views
// (64 slots, up to 64 GRO segments each) and the records of crypto threads' rings (about 2,900 full-sized ones
// in 4 MiB each). The bound only matters for a shell that hands in more objects than it said.
const DELIVERED_VIEWS_MAX = 16384;
// Views kept per reused send buffer. Transport lengths are few (the padded lengths are multiples of 16 up to
// the MTU, and the MTU itself); the bound only matters for packets larger than the MTU.
const SEND_VIEWS_MAX = 256;

/** A reused send buffer with a view of each length sealed into it, so a send action needs no new view. */
class SendBuffer {
  private readonly views = new Map<number, Uint8Array>();
  // The last view handed out: a bulk flow's datagrams are mostly one length (no Map lookup for those).
  private last: Uint8Array | undefined;

  constructor(readonly bytes: Uint8Array) {}

  /** bytes[0 .. length), the same view each time. */
  view(length: number): Uint8Array {
    if (this.last !== undefined && this.last.length === length) return this.last;
    let view = this.views.get(length);
    if (view === undefined) {
      if (this.views.size >= SEND_VIEWS_MAX) this.views.clear();
      view = this.bytes.subarray(0, length);
      this.views.set(length, view);
    }
    return (this.last = view);
  }
}

export interface PeerSettings {
  presharedKey?: Uint8Array | null; // null clears
  allowedIps?: string[]; // 'ip/cidr' list; when present REPLACES the peer's whole set
  endpoint?: Endpoint;
  persistentKeepaliveSeconds?: number; // 0 = off; turning it on while up sends one keepalive at once
}

export interface PeerStatus {
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  endpoint?: Endpoint;
  allowedIps: string[];
  persistentKeepaliveSeconds: number;
  rxBytes: number; // full UDP payload bytes of authenticated messages, handshakes included
  txBytes: number;
  lastHandshakeUnixMs: number; // 0 if none
}

/** A peer's counters and endpoint, read in place by forEachPeer (heartbeats, gauges): no status is built. */
export interface PeerCounters {
  /** The public key in base64. */
  readonly name: string;
  readonly rxBytes: number;
  readonly txBytes: number;
  readonly lastHandshakeUnixMs: number;
  readonly endpoint: Endpoint | undefined;
}

// Drops carry no data, so one frozen action per reason serves every packet.
const DROP = Object.fromEntries(
  DROP_REASONS.map((reason) => [reason, Object.freeze({ kind: 'drop', reason })]),
) as Record<DropReason, TunnelAction>;

const EMPTY_PACKET = new Uint8Array(0);
/** The reused result when a data-path call has no action (a keepalive received). */
const NO_ACTIONS: TunnelAction[] = Object.freeze([]) as unknown as TunnelAction[];
const MAX_PERSISTENT_KEEPALIVE_SECONDS = 65535;

// Inner IP header fields (RFC 791, RFC 8200) that routing and cryptokey routing read.
const IPV4_HEADER_LENGTH = 20;
const IPV4_TOTAL_LENGTH_OFFSET = 2;
const IPV4_SOURCE_OFFSET = 12;
const IPV4_DESTINATION_OFFSET = 16;
const IPV6_HEADER_LENGTH = 40;
const IPV6_PAYLOAD_LENGTH_OFFSET = 4;
const IPV6_SOURCE_OFFSET = 8;
const IPV6_DESTINATION_OFFSET = 24;

const ipVersion = (bytes: Uint8Array, offset = 0): number => bytes[offset]! >> 4;
const readU16 = (bytes: Uint8Array, offset: number): number => (bytes[offset]! << 8) | bytes[offset + 1]!;

export class Tunnel {
  private local: LocalStatic;
  private cookieChecker: CookieChecker;
  private readonly rateLimiter = new RateLimiter();
  private readonly randomBytes: (length: number) => Uint8Array;
  private readonly wallClockMs: () => number;
  private readonly mtu: number;
  private readonly decryptInPlace: boolean;
  private readonly sendBuffers: SendBuffer[] | undefined;
  private sendBuffersUsed = 0;
  /**
   * With reuseActions: the data path's result array and the actions handed out so far. A call may send and
   * seal many times (staged packets), but opens or delivers at most once: those need one record each.
   */
  private readonly reusedActions: TunnelAction[] | undefined;
  private reusedCount = 0;
  private readonly sendActions: SendAction[] = [];
  private readonly sealActions: Mutable<SealAction>[] = [];
  private sendActionsUsed = 0;
  private sealActionsUsed = 0;
  private reusedDeliver: DeliverAction | undefined;
  /**
   * With reuseActions: the view last delivered out of each message object decapsulated, handed out again
   * when the same object (an I/O shell's reused receive view) carries a packet of the same length, as a bulk
   * flow's messages do: no view per packet (TunnelOptions.reusedMessages).
   */
  private readonly deliveredViews: Map<Uint8Array, Uint8Array> | undefined;
  private reusedOpen: Mutable<OpenAction> | undefined;
  private readonly transportCrypto: TransportCrypto | undefined;
  private readonly peersByName = new Map<string, Peer>();
  private readonly indices: IndexTable<IndexEntry>;
  private readonly allowedIps = new AllowedIps<Peer>();
  private readonly timerQueue = new DeadlineQueue<Peer>((peer) => peer.timers.nextDeadline());
  private readonly peerTimers: PeerTimersOptions<Peer>;
  private readonly releaseIndex = (index: number): void => {
    const keypair = this.indices.get(index)?.keypair;
    if (keypair !== undefined) this.transportCrypto?.retired(keypair);
    this.indices.delete(index);
  };
  private lastUnderLoadAt = -Infinity;
  /**
   * The initiation screenInitiation last found with a valid mac1, and a copy of its bytes, until the next
   * engine call of any kind: admitting that same datagram right after (the I/O shell's order) parses it and
   * checks its mac1 once, not twice. Only while the buffer still holds those very bytes (screenedMessage): an
   * I/O shell may drop a screened datagram without calling the engine again, and its receive buffer (the
   * same view object) then hold another datagram, which must be parsed and checked anew.
   */
  private screened: InitiationMessage | undefined;
  private readonly screenedBytes = new Uint8Array(INITIATION_SIZE);

  constructor(options: TunnelOptions) {
    this.randomBytes = options.randomBytes;
    this.wallClockMs = options.wallClockMs;
    this.peerTimers = {
      jitter: jitterFromRandomBytes(options.randomBytes),
      armed: (peer, now, delay) => this.timerQueue.armed(peer, now, delay),
    };
    this.mtu = options.mtu ?? DEFAULT_MTU;
    this.decryptInPlace = options.decryptInPlace ?? false;
    this.sendBuffers = options.reuseSendBuffers ? [] : undefined;
    this.reusedActions = options.reuseActions ? [] : undefined;
    this.deliveredViews = options.reuseActions && options.reusedMessages ? new Map() : undefined;
    this.transportCrypto = options.transportCrypto;
    this.indices = new IndexTable<IndexEntry>(options.randomBytes);
    this.local = localStatic(clamp(options.privateKey));
    this.cookieChecker = new CookieChecker(this.local.publicKey, this.randomBytes);
  }

  get publicKey(): Uint8Array {
    return Uint8Array.from(this.local.publicKey);
  }

  /**
   * Replaces our static key (wireguard-go SetPrivateKey): a peer with the new public key is removed, every
   * peer's static-static DH is recomputed, handshakes in progress are forgotten and current keypairs stop
   * sending, so the next packet starts a fresh handshake at once.
   */
  setPrivateKey(privateKey: Uint8Array): void {
    const clamped = clamp(privateKey);
    if (constantTimeEqual(clamped, this.local.privateKey)) return;
    wipe(this.local.privateKey);
    this.local = localStatic(clamped);
    this.screened = undefined; // screened under the old key's mac1
    this.cookieChecker = new CookieChecker(this.local.publicKey, this.randomBytes);
    this.removePeer(this.local.publicKey);
    for (const peer of this.peersByName.values()) {
      peer.setLocal(this.local);
      peer.clearHandshake();
      peer.timers.allowHandshakeNow();
      peer.keypairs.expireForSending();
    }
  }

  /**
   * Creates or updates a peer. Settings are local configuration, validated by the caller: a malformed key,
   * prefix or interval is a programmer error (RangeError, nothing changed). Our own public key is ignored,
   * as wireguard-go does. A peer with a low-order public key is kept but can never complete a handshake.
   */
  upsertPeer(publicKey: Uint8Array, settings: PeerSettings, now: number): TunnelAction[] {
    this.beginCall();
    if (publicKey.length !== KEY_LENGTH) throw new RangeError('peer public key must be 32 bytes');
    const prefixes = settings.allowedIps?.map(parseAllowedIp);
    const keepalive = settings.persistentKeepaliveSeconds;
    if (
      keepalive !== undefined &&
      !(Number.isInteger(keepalive) && keepalive >= 0 && keepalive <= MAX_PERSISTENT_KEEPALIVE_SECONDS)
    ) {
      throw new RangeError('persistent keepalive must be an integer from 0 to 65535 seconds');
    }
    const psk = settings.presharedKey;
    if (psk && psk.length !== KEY_LENGTH) throw new RangeError('pre-shared key must be 32 bytes');
    if (constantTimeEqual(publicKey, this.local.publicKey)) return [];

    let peer = this.peersByName.get(Buffer.from(publicKey).toString('base64'));
    if (peer === undefined) {
      peer = new Peer({
        publicKey,
        local: this.local,
        presharedKey: psk ?? undefined,
        releaseIndex: this.releaseIndex,
        timers: this.peerTimers,
      });
      this.peersByName.set(peer.name, peer);
    } else if (psk !== undefined) {
      peer.setPresharedKey(this.local, psk ?? undefined);
    }
    if (prefixes !== undefined) {
      this.allowedIps.removeByPeer(peer);
      for (const prefix of prefixes) this.allowedIps.insert(prefix, peer);
    }
    if (settings.endpoint !== undefined) peer.roamTo(settings.endpoint);

    const actions: TunnelAction[] = [];
    if (keepalive !== undefined) {
      const wasOff = peer.timers.persistentKeepaliveSeconds === 0;
      peer.timers.setPersistentKeepalive(keepalive);
      if (wasOff && keepalive > 0) this.sendKeepalive(peer, now, actions);
    }
    return actions;
  }

  /** Removes a peer, wiping its keys and freeing its indices and routes. False if there was none. */
  removePeer(publicKey: Uint8Array): boolean {
    const name = Buffer.from(publicKey).toString('base64');
    const peer = this.peersByName.get(name);
    if (peer === undefined) return false;
    peer.zeroAndFlush();
    peer.timers.stop();
    this.timerQueue.remove(peer);
    this.allowedIps.removeByPeer(peer);
    this.peersByName.delete(name);
    return true;
  }

  get peerCount(): number {
    return this.peersByName.size;
  }

  hasPeer(publicKey: Uint8Array): boolean {
    return this.peersByName.has(Buffer.from(publicKey).toString('base64'));
  }

  /** Visits every peer's counters without copying keys or prefixes: status reads off the data path. */
  forEachPeer(visit: (peer: PeerCounters) => void): void {
    for (const peer of this.peersByName.values()) visit(peer);
  }

  /**
   * A node back from a restart greets a client it served recently, at the endpoint it kept: one
   * initiation, never retransmitted. A client still there answers and its tunnel works at once; one that
   * is gone costs nothing more. Nothing is sent to a peer that already handshook since.
   */
  resumeHandshake(publicKey: Uint8Array, endpoint: Endpoint, now: number): TunnelAction[] {
    this.beginCall();
    const actions: TunnelAction[] = [];
    const peer = this.peersByName.get(Buffer.from(publicKey).toString('base64'));
    if (peer === undefined || peer.lastHandshakeUnixMs !== 0 || peer.handshake.state !== 'zeroed')
      return actions;
    peer.roamTo(endpoint);
    this.sendInitiation(peer, now, false, actions);
    peer.timers.lastHandshakeAttempt();
    return actions;
  }

  /** Full status of every peer (UAPI `get`): copies keys, endpoints and prefixes. */
  peers(): PeerStatus[] {
    return [...this.peersByName.values()].map((peer) => {
      const status: PeerStatus = {
        publicKey: peer.publicKey,
        allowedIps: this.allowedIps.prefixesOf(peer),
        persistentKeepaliveSeconds: peer.timers.persistentKeepaliveSeconds,
        rxBytes: peer.rxBytes,
        txBytes: peer.txBytes,
        lastHandshakeUnixMs: peer.lastHandshakeUnixMs,
      };
      const psk = peer.presharedKeyCopy;
      if (psk !== undefined) status.presharedKey = psk;
      if (peer.endpoint !== undefined) status.endpoint = { ...peer.endpoint };
      return status;
    });
  }

  /** A packet from the TUN side: routed by its destination address to a peer, then sealed or staged. */
  encapsulate(packet: Uint8Array, now: number): TunnelAction[] {
    this.beginCall();
    let peer: Peer | undefined;
    const version = packet.length > 0 ? ipVersion(packet) : 0;
    if (version === 4 && packet.length >= IPV4_HEADER_LENGTH) {
      peer = this.allowedIps.lookupV4(packet, IPV4_DESTINATION_OFFSET);
    } else if (version === 6 && packet.length >= IPV6_HEADER_LENGTH) {
      peer = this.allowedIps.lookupV6(packet, IPV6_DESTINATION_OFFSET);
    } else {
      return this.dropped('malformed');
    }
    if (peer === undefined) return this.dropped('no_route');
    if (peer.endpoint === undefined) return this.dropped('no_endpoint');
    if (peer.keys.staticStatic === undefined) return this.dropped('handshake_invalid');

    const actions = this.dataPathActions();
    const keypair = peer.keypairs.current;
    if (peer.stagedCount === 0 && keypair !== undefined && keypair.canSend(now)) {
      // The common case, without copying the packet into the queue.
      this.sendTransport(peer, keypair, packet, now, actions);
      this.keepKeyFreshSending(peer, keypair, now, actions);
      return this.finished(actions);
    }
    if (!peer.stage(packet)) this.add(actions, DROP.queue_full);
    this.sendStaged(peer, now, actions);
    return this.finished(actions);
  }

  /** A datagram from UDP. Every rejection is a typed drop; only a cookie reply under load answers one. */
  decapsulate(datagram: Uint8Array, from: Endpoint, now: number): TunnelAction[] {
    this.beginCall();
    // Transport messages first, read in place: no message object per packet.
    if (isTransport(datagram)) return this.receiveTransport(datagram, from, now);
    const message = parseMessage(datagram);
    if (message === undefined) return this.dropped('malformed');
    switch (message.type) {
      case MESSAGE_INITIATION:
      case MESSAGE_RESPONSE:
        return this.receiveHandshake(message, from, now);
      case MESSAGE_COOKIE_REPLY:
        return this.receiveCookieReply(message, now);
      default:
        return this.receiveTransport(datagram, from, now);
    }
  }

  /** Fires the due timers of the peers that have any, without visiting the others. */
  tick(now: number): TunnelAction[] {
    this.beginCall();
    const actions: TunnelAction[] = [];
    for (const peer of this.timerQueue.takeDue(now)) {
      for (const expiry of peer.timers.due(now)) {
        switch (expiry) {
          case 'retransmitHandshake':
            this.sendInitiation(peer, now, true, actions);
            break;
          case 'newHandshake':
            this.sendInitiation(peer, now, false, actions);
            break;
          case 'sendKeepalive':
          case 'persistentKeepalive':
            this.sendKeepalive(peer, now, actions);
            break;
          case 'handshakeGaveUp':
            peer.takeStaged();
            break;
          case 'zeroKeyMaterial':
            peer.zeroAndFlush();
            break;
        }
      }
      this.timerQueue.requeue(peer);
    }
    return actions;
  }

  /** The earliest armed timer of any peer (monotonic ms), or undefined when none is armed. */
  nextDeadline(): number | undefined {
    return this.timerQueue.earliest();
  }

  /** False only when no peer's timer is armed before `at` (monotonic ms): one comparison, nothing scanned. */
  mayBeDueBefore(at: number): boolean {
    return this.timerQueue.mayBeBefore(at);
  }

  /**
   * The I/O shell's first look at a datagram of an initiation's type and length, before it counts it
   * towards its handshake backlog (markUnderLoad): undefined when its mac1 was made for this device's public
   * key (one MAC, no DH), and it goes on to admitInitiation or decapsulate; else the drop. Datagrams anyone
   * can make without the key then never count as load, and cost one MAC.
   */
  screenInitiation(datagram: Uint8Array): TunnelAction[] | undefined {
    const message = parseMessage(datagram);
    this.screened = undefined;
    if (message?.type !== MESSAGE_INITIATION) return [DROP.malformed];
    if (!this.cookieChecker.checkMac1(message)) return [DROP.mac1_invalid];
    this.screenedBytes.set(datagram);
    this.screened = message;
    return undefined;
  }

  /** The message screenInitiation parsed, when `datagram` is its datagram and still holds the same bytes. */
  private screenedMessage(datagram: Uint8Array): InitiationMessage | undefined {
    const screened = this.screened;
    if (screened === undefined || screened.bytes !== datagram) return undefined;
    const bytes = this.screenedBytes;
    for (let i = 0; i < INITIATION_SIZE; i++) if (datagram[i] !== bytes[i]) return undefined;
    return screened;
  }

  /** The I/O shell's handshake backlog crossed its threshold: check mac2 and rate-limit for the next second. */
  markUnderLoad(now: number): void {
    this.lastUnderLoadAt = now;
  }

  private underLoad(now: number): boolean {
    return now - this.lastUnderLoadAt < UNDER_LOAD_AFTER_TIME_MS;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Receiving
  // ---------------------------------------------------------------------------------------------------------

  /** Types 1 and 2: admitted (admitHandshake), then answered or consumed. */
  private receiveHandshake(
    message: InitiationMessage | ResponseMessage,
    from: Endpoint,
    now: number,
  ): TunnelAction[] {
    const refused = this.admitHandshake(message, from, now);
    if (refused !== undefined) return refused;
    return message.type === MESSAGE_INITIATION
      ? this.receiveInitiation(message, from, now)
      : this.receiveResponse(message, from, now);
  }

  /**
   * mac1 before any DH; under load, mac2 (else a cookie reply) and the per-source limit. Undefined when the
   * message may cost a DH, else what to do instead.
   */
  private admitHandshake(
    message: InitiationMessage | ResponseMessage,
    from: Endpoint,
    now: number,
    mac1Screened = false,
  ): TunnelAction[] | undefined {
    if (!mac1Screened && !this.cookieChecker.checkMac1(message)) return [DROP.mac1_invalid];
    if (!this.underLoad(now)) return undefined;
    const address = endpointAddress(from);
    if (address === undefined) return [DROP.malformed];
    const source = cookieSource(address, from.port);
    if (!this.cookieChecker.checkMac2(message, source, now)) {
      const reply = this.cookieChecker.createCookieReply(message, source, now);
      return [{ kind: 'send', datagram: reply, to: from, peer: undefined }, DROP.cookie_sent];
    }
    if (!this.rateLimiter.allow(address, now)) return [DROP.rate_limited];
    return undefined;
  }

  /** Responder, inline: answer the initiation (refusing a replay before the response's DHs), then respond. */
  private receiveInitiation(message: InitiationMessage, from: Endpoint, now: number): TunnelAction[] {
    let peer: Peer | undefined;
    const answered = answerInitiation(
      WIREGUARD,
      this.local,
      initiationFields(message),
      (remoteStatic) => (peer = this.peersByName.get(Buffer.from(remoteStatic).toString('base64')))?.keys,
      generatePrivateKey(this.randomBytes),
      EMPTY_PACKET,
      (_, timestamp) => initiationRejection(peer!.initiationHistory, timestamp, now) === undefined,
    );
    if (!answered.ok) return [DROP.handshake_invalid];
    return this.respond(peer!, answered.answer, message.senderIndex, from, now);
  }

  /**
   * Handshake offload, step 1 of 3 (the thread that runs this engine): everything an initiation must pass
   * before it may cost a DH (admitHandshake). Undefined when it passed: step 2, noise.ts answerInitiation
   * over a snapshot of the peers, may run on another thread; step 3 is acceptInitiation. Otherwise the
   * actions to perform instead (a drop, or a cookie reply under load).
   */
  admitInitiation(datagram: Uint8Array, from: Endpoint, now: number): TunnelAction[] | undefined {
    const screened = this.screenedMessage(datagram);
    this.beginCall();
    const message = screened ?? parseMessage(datagram);
    if (message?.type !== MESSAGE_INITIATION) return [DROP.malformed];
    return this.admitHandshake(message, from, now, screened !== undefined);
  }

  /**
   * The inline responder (no handshake offload): admitInitiation, then the answer, as decapsulate gives it.
   * Only an admitted initiation is copied, before handshake state is made from it: a caller that reuses its
   * receive buffer copies nothing for a flood's initiations (each gets a cookie reply or a drop), and the
   * datagram just screened has its mac1 checked once.
   */
  respondToInitiation(datagram: Uint8Array, from: Endpoint, now: number): TunnelAction[] {
    const refused = this.admitInitiation(datagram, from, now);
    if (refused !== undefined) return refused;
    const message = parseMessage(datagram.slice());
    if (message?.type !== MESSAGE_INITIATION) return [DROP.malformed]; // admitted: never (admitInitiation parsed it)
    return this.receiveInitiation(message, from, now);
  }

  /**
   * Handshake offload, step 3 of 3: the state part of an initiation answered elsewhere. `answer.peer` names
   * the initiator (its public key in base64); `senderIndex` is the initiation's. A peer removed since, or
   * a replayed or flooded timestamp, discards the answer (its keys wiped); else as receiveInitiation.
   */
  acceptInitiation(
    answer: InitiationAnswer<string>,
    senderIndex: number,
    from: Endpoint,
    now: number,
  ): TunnelAction[] {
    this.beginCall();
    const peer = this.peersByName.get(answer.peer);
    if (peer !== undefined) return this.respond(peer, answer, senderIndex, from, now);
    wipe(answer.keys.sendKey, answer.keys.receiveKey);
    return [DROP.handshake_invalid];
  }

  /** Responder, the state part: the replay and flood rules, then the keypair, and the response goes out. */
  private respond(
    peer: Peer,
    answer: Omit<InitiationAnswer<unknown>, 'peer'>,
    senderIndex: number,
    from: Endpoint,
    now: number,
  ): TunnelAction[] {
    if (initiationRejection(peer.initiationHistory, answer.payload, now) !== undefined) {
      wipe(answer.keys.sendKey, answer.keys.receiveKey);
      return [DROP.handshake_invalid];
    }
    peer.initiationHistory = { timestamp: answer.payload, consumedAt: now };
    this.authenticatedReceived(peer, from, INITIATION_SIZE, now);

    // An initiation of ours still waiting is kept (docs/WIREGUARD.md §6, crossed initiations): if the two
    // crossed, the peer answers ours too, and whichever handshake completes first carries the data at once.
    const entry: { peer: Peer; keypair: Keypair | undefined } = { peer, keypair: undefined };
    const localIndex = this.indices.allocate(entry);
    const exportKeys = this.transportCrypto !== undefined;
    entry.keypair = new Keypair(answer.keys, localIndex, senderIndex, now, false, exportKeys);
    peer.keypairs.installAsResponder(entry.keypair);

    const datagram = writeResponse({
      senderIndex: localIndex,
      receiverIndex: senderIndex,
      ephemeral: answer.fields.ephemeral,
      encryptedNothing: answer.fields.encryptedPayload,
    });
    peer.macSender.addMacs(datagram, now);
    peer.timers.handshakeResponseSent(now);
    peer.timers.sessionDerived(now);
    const actions: TunnelAction[] = [];
    this.send(peer, datagram, now, actions);
    return actions;
  }

  /** Initiator: authenticate the response to our latest initiation; the new keypair is usable at once. */
  private receiveResponse(message: ResponseMessage, from: Endpoint, now: number): TunnelAction[] {
    const entry = this.indices.get(message.receiverIndex);
    if (entry === undefined || entry.keypair !== undefined) return [DROP.unknown_index];
    const peer = entry.peer;
    const handshake = peer.handshake;
    if (handshake.state !== 'initiation_created' || handshake.localIndex !== message.receiverIndex) {
      return [DROP.handshake_invalid];
    }
    const consumed = consumeResponse(handshake, this.local, peer.keys, {
      ephemeral: message.ephemeral,
      encryptedPayload: message.encryptedNothing,
    });
    if (!consumed.ok) return [DROP.handshake_invalid];

    const localIndex = message.receiverIndex;
    const keypair = new Keypair(
      deriveTransportKeys(consumed.result, true),
      localIndex,
      message.senderIndex,
      now,
      true,
      this.transportCrypto !== undefined,
    );
    // The handshake's index now names the keypair: the peer keeps addressing us by it.
    this.indices.repoint(localIndex, { peer, keypair });
    peer.handshakeBecameKeypair();
    // Crossed initiations answered both ways (docs/WIREGUARD.md §6): the side with the smaller public key
    // keeps its answer waiting, so that the other side's session carries both ways.
    peer.keypairs.installAsInitiator(keypair, Buffer.compare(this.local.publicKey, peer.publicKey) < 0);

    this.authenticatedReceived(peer, from, RESPONSE_SIZE, now);
    peer.timers.sessionDerived(now);
    this.handshakeComplete(peer);
    // Confirm the session at once (the responder cannot send before it hears from us): staged packets, or
    // a keepalive when none are waiting.
    const actions: TunnelAction[] = [];
    this.sendKeepalive(peer, now, actions);
    return actions;
  }

  private receiveCookieReply(message: CookieReplyMessage, now: number): TunnelAction[] {
    const entry = this.indices.get(message.receiverIndex);
    if (entry === undefined) return [DROP.unknown_index];
    // Not authenticated traffic: neither counted nor roamed on. Storing the cookie is all: the retransmit timer resends the handshake, now with mac2.
    return entry.peer.macSender.consumeCookieReply(message, now) ? [] : [DROP.decrypt_failed];
  }

  /** Type 4: open with the keypair the index names, then the replay window, then cryptokey routing. */
  private receiveTransport(datagram: Uint8Array, from: Endpoint, now: number): TunnelAction[] {
    const entry = this.indices.get(transportReceiverKey(datagram));
    const keypair = entry?.keypair;
    if (keypair === undefined) return this.dropped('unknown_index');
    if (!keypair.canReceive(now)) return this.dropped('keypair_expired');
    if (this.transportCrypto?.takes(entry!.peer)) {
      const actions = this.dataPathActions();
      this.add(actions, this.openAction(keypair, datagram, from, entry!.peer));
      return this.finished(actions);
    }
    // Opening is in place: into a copy unless the caller gave the datagram up (decryptInPlace).
    const message = this.decryptInPlace ? datagram : datagram.slice();
    const opened = keypair.open(message);
    if (opened === 'decrypt_failed') return this.dropped('decrypt_failed');
    if (opened === 'replay') return this.dropped('replay');
    return this.transportAuthenticated(entry!.peer, keypair, message, opened, from, now);
  }

  /**
   * With transportCrypto: an open action's message authenticated and passed its keypair's replay window,
   * opened in place (its padded plaintext is message[16 .. 16 + plainLength)). Carries on as decapsulate
   * would; a delivered packet is a view into `message`.
   */
  transportOpened(
    keypair: Keypair,
    message: Uint8Array,
    plainLength: number,
    from: Endpoint,
    now: number,
  ): TunnelAction[] {
    this.beginCall();
    const entry = this.indices.get(keypair.localIndex);
    // Retired while it was being opened: its session is gone, as if the message had come a moment later.
    if (entry?.keypair !== keypair) return this.dropped('keypair_expired');
    return this.transportAuthenticated(entry.peer, keypair, message, plainLength, from, now);
  }

  /**
   * With transportCrypto: the shell dropped a seal action of `plainLength` bytes unsent (its crypto thread
   * could not take it, or the keypair was retired before it was sealed). The counter stays used: the gap is
   * one the peer's replay window accepts.
   */
  sealDropped(peer: PeerRef, plainLength: number): void {
    this.unsent(peer, transportLength(plainLength, this.mtu));
  }

  /**
   * `bytes` of `peer`'s messages, counted in its txBytes when their actions were made, never reached the
   * socket (the kernel refused them, or they were not sealed): txBytes counts what was handed to the socket
   * (wireguard-go counts a batch once its send succeeded), so they are taken back.
   */
  unsent(peer: PeerRef, bytes: number): void {
    const counted = this.peersByName.get(peer.name);
    if (counted === peer) counted.txBytes -= bytes;
  }

  /** Receiving a transport message after it authenticated: rotation, timers, cryptokey routing. */
  private transportAuthenticated(
    peer: Peer,
    keypair: Keypair,
    message: Uint8Array,
    opened: number,
    from: Endpoint,
    now: number,
  ): TunnelAction[] {
    const actions = this.dataPathActions();
    this.authenticatedReceived(peer, from, message.length, now);
    if (peer.keypairs.receivedWith(keypair)) {
      this.handshakeComplete(peer);
      this.sendStaged(peer, now, actions);
    }
    const current = peer.keypairs.current;
    if (
      current !== undefined &&
      !peer.timers.sentLastMinuteHandshake &&
      current.needsRekeyAfterReceiving(now)
    ) {
      peer.timers.sentLastMinuteHandshake = true;
      this.sendInitiation(peer, now, false, actions);
    }
    if (opened === 0) return this.finished(actions); // keepalive
    peer.timers.dataReceived(now);

    const length = this.innerPacketLength(message, opened, peer);
    this.add(
      actions,
      typeof length === 'string'
        ? DROP[length]
        : this.deliverAction(this.deliveredPacket(message, length), peer.name),
    );
    return this.finished(actions);
  }

  /**
   * The length of the packet inside a decrypted transport message (its padded plaintext is
   * message[16 .. 16 + plainLength)) without its padding, from the IP header, if its source address routes
   * back to the peer that sent it (cryptokey routing).
   */
  private innerPacketLength(
    message: Uint8Array,
    plainLength: number,
    peer: Peer,
  ): number | 'malformed' | 'allowed_ips_violation' {
    const at = TRANSPORT_CONTENT_OFFSET;
    let length: number;
    let routed: Peer | undefined;
    const version = ipVersion(message, at);
    if (version === 4 && plainLength >= IPV4_HEADER_LENGTH) {
      length = readU16(message, at + IPV4_TOTAL_LENGTH_OFFSET);
      if (length < IPV4_HEADER_LENGTH) return 'malformed';
      routed = this.allowedIps.lookupV4(message, at + IPV4_SOURCE_OFFSET);
    } else if (version === 6 && plainLength >= IPV6_HEADER_LENGTH) {
      length = IPV6_HEADER_LENGTH + readU16(message, at + IPV6_PAYLOAD_LENGTH_OFFSET);
      routed = this.allowedIps.lookupV6(message, at + IPV6_SOURCE_OFFSET);
    } else {
      return 'malformed';
    }
    if (length > plainLength) return 'malformed';
    if (routed !== peer) return 'allowed_ips_violation';
    return length;
  }

  /** Bookkeeping shared by every authenticated message received: roaming, counters, timers. */
  private authenticatedReceived(peer: Peer, from: Endpoint, size: number, now: number): void {
    peer.roamTo(from);
    peer.rxBytes += size;
    peer.timers.anyAuthenticatedPacketTraversal(now);
    peer.timers.anyAuthenticatedPacketReceived();
  }

  /** Either way: a response to our initiation, or the first packet under the keypair we answered with. */
  private handshakeComplete(peer: Peer): void {
    // An initiation of ours still waiting (crossed initiations, docs/WIREGUARD.md §6) is moot now.
    peer.clearHandshake();
    peer.timers.handshakeComplete();
    peer.lastHandshakeUnixMs = this.wallClockMs();
  }

  // ---------------------------------------------------------------------------------------------------------
  // Sending
  // ---------------------------------------------------------------------------------------------------------

  /**
   * A new initiation with a fresh ephemeral key and timestamp (wireguard-go SendHandshakeInitiation). A retry
   * keeps counting attempts; any initiation is skipped within REKEY_TIMEOUT of the last handshake message.
   */
  private sendInitiation(peer: Peer, now: number, isRetry: boolean, actions: TunnelAction[]): void {
    if (!isRetry) peer.timers.newHandshakeAttempt();
    if (!peer.timers.canSendHandshake(now) || peer.endpoint === undefined) return;
    peer.clearHandshake();
    const ephemeralPrivate = generatePrivateKey(this.randomBytes);
    const localIndex = this.indices.allocate({ peer, keypair: undefined });
    const created = createInitiation(
      WIREGUARD,
      this.local,
      peer.keys,
      ephemeralPrivate,
      TAI64N(this.wallClockMs()),
      localIndex,
    );
    if (!created.ok) {
      this.indices.delete(localIndex); // low-order peer key: this peer can never handshake
      return;
    }
    peer.handshake = created.state;
    const datagram = writeInitiation({
      senderIndex: localIndex,
      ephemeral: created.fields.ephemeral,
      encryptedStatic: created.fields.encryptedStatic,
      encryptedTimestamp: created.fields.encryptedPayload,
    });
    peer.macSender.addMacs(datagram, now);
    this.send(peer, datagram, now, actions);
    peer.timers.handshakeInitiated(now);
  }

  /** Queues a keepalive unless packets are already waiting (they confirm just as well), then flushes. */
  private sendKeepalive(peer: Peer, now: number, actions: TunnelAction[]): void {
    if (peer.stagedCount === 0) peer.stage(EMPTY_PACKET);
    this.sendStaged(peer, now, actions);
  }

  /** Sends the staged packets with the current keypair, or starts a handshake when there is none usable. */
  private sendStaged(peer: Peer, now: number, actions: TunnelAction[]): void {
    if (peer.stagedCount === 0 || peer.endpoint === undefined) return;
    const keypair = peer.keypairs.current;
    if (keypair === undefined || !keypair.canSend(now)) {
      this.sendInitiation(peer, now, false, actions);
      return;
    }
    for (const packet of peer.takeStaged()) this.sendTransport(peer, keypair, packet, now, actions);
    this.keepKeyFreshSending(peer, keypair, now, actions);
  }

  private sendTransport(
    peer: Peer,
    keypair: Keypair,
    packet: Uint8Array,
    now: number,
    actions: TunnelAction[],
  ): void {
    if (this.transportCrypto?.takes(peer)) {
      const counter = keypair.reserveCounter();
      this.add(actions, this.sealAction(keypair, counter, packet, peer.endpoint!, peer));
      this.sent(peer, transportLength(packet.length, this.mtu), now);
    } else {
      this.send(peer, this.sealed(keypair, packet), now, actions);
    }
    if (packet.length !== 0) peer.timers.dataSent(now);
  }

  /** Every entry point starts here: reused buffers and actions are free again (the caller is done with them). */
  private beginCall(): void {
    this.screened = undefined;
    this.sendBuffersUsed = 0;
    this.sendActionsUsed = 0;
    this.sealActionsUsed = 0;
  }

  /**
   * The array the data path collects its actions in: with reuseActions the reused one, refilled from its
   * start by add() and cut to length by finished(). It is never emptied: an array cut to length 0 gives up
   * its storage, and the next push would allocate it again.
   */
  private dataPathActions(): TunnelAction[] {
    const reused = this.reusedActions;
    if (reused === undefined) return [];
    this.reusedCount = 0;
    return reused;
  }

  /** Appends an action to a result. */
  private add(actions: TunnelAction[], action: TunnelAction): void {
    if (actions === this.reusedActions) actions[this.reusedCount++] = action;
    else actions.push(action);
  }

  /** The result of a data-path call: the reused array holds exactly its actions (none: a shared empty one). */
  private finished(actions: TunnelAction[]): TunnelAction[] {
    if (actions !== this.reusedActions) return actions;
    if (this.reusedCount === 0) return NO_ACTIONS;
    // Only when it changes: a length store is a call into the runtime (about 35 ns) even when it is equal.
    if (actions.length !== this.reusedCount) actions.length = this.reusedCount;
    return actions;
  }

  private sendAction(datagram: Uint8Array, to: Endpoint, peer: PeerRef): TunnelAction {
    if (this.reusedActions === undefined) return { kind: 'send', datagram, to, peer };
    const action = (this.sendActions[this.sendActionsUsed++] ??= { kind: 'send', datagram, to, peer });
    action.datagram = datagram;
    action.to = to;
    action.peer = peer;
    return action;
  }

  /** The packet of `length` bytes a decrypted message carries (a view into it). */
  private deliveredPacket(message: Uint8Array, length: number): Uint8Array {
    const views = this.deliveredViews;
    let view = views?.get(message);
    if (view === undefined || view.length !== length) {
      view = message.subarray(TRANSPORT_CONTENT_OFFSET, TRANSPORT_CONTENT_OFFSET + length);
      if (views !== undefined) {
        if (views.size >= DELIVERED_VIEWS_MAX) views.clear();
        views.set(message, view);
      }
    }
    return view;
  }

  private deliverAction(packet: Uint8Array, peer: string): TunnelAction {
    if (this.reusedActions === undefined) return { kind: 'deliver', packet, peer };
    const action = (this.reusedDeliver ??= { kind: 'deliver', packet, peer });
    action.packet = packet;
    action.peer = peer;
    return action;
  }

  private sealAction(
    keypair: Keypair,
    counter: number,
    packet: Uint8Array,
    to: Endpoint,
    peer: PeerRef,
  ): SealAction {
    if (this.reusedActions === undefined) return { kind: 'seal', keypair, counter, packet, to, peer };
    const action = (this.sealActions[this.sealActionsUsed++] ??= {
      kind: 'seal',
      keypair,
      counter,
      packet,
      to,
      peer,
    });
    action.keypair = keypair;
    action.counter = counter;
    action.packet = packet;
    action.to = to;
    action.peer = peer;
    return action;
  }

  private openAction(keypair: Keypair, datagram: Uint8Array, from: Endpoint, peer: PeerRef): OpenAction {
    if (this.reusedActions === undefined) return { kind: 'open', keypair, datagram, from, peer };
    const action = (this.reusedOpen ??= { kind: 'open', keypair, datagram, from, peer });
    action.keypair = keypair;
    action.datagram = datagram;
    action.from = from;
    action.peer = peer;
    return action;
  }

  /** `packet` sealed as a transport message: into the next free reused buffer with reuseSendBuffers. */
  private sealed(keypair: Keypair, packet: Uint8Array): Uint8Array {
    const pool = this.sendBuffers;
    if (pool === undefined) {
      const datagram = new Uint8Array(transportLength(packet.length, this.mtu));
      keypair.seal(packet, this.mtu, datagram);
      return datagram;
    }
    const size = packet.length + SEND_BUFFER_OVERHEAD;
    let buffer = pool[this.sendBuffersUsed];
    if (buffer === undefined || buffer.bytes.length < size) {
      buffer = new SendBuffer(new Uint8Array(Math.max(size, SEND_BUFFER_MIN)));
      pool[this.sendBuffersUsed] = buffer;
    }
    this.sendBuffersUsed++;
    return buffer.view(keypair.seal(packet, this.mtu, buffer.bytes));
  }

  /** A result holding one drop: the reused array with reuseActions. */
  private dropped(reason: DropReason): TunnelAction[] {
    const actions = this.dataPathActions();
    this.add(actions, DROP[reason]);
    return this.finished(actions);
  }

  /** After sending: too many messages, or (initiator only) a 120 s old keypair, starts a new handshake. */
  private keepKeyFreshSending(peer: Peer, keypair: Keypair, now: number, actions: TunnelAction[]): void {
    if (keypair.needsRekeyAfterSending(now)) this.sendInitiation(peer, now, false, actions);
  }

  /** Every authenticated message we send goes through here: counters and the send-side timers. */
  private send(peer: Peer, datagram: Uint8Array, now: number, actions: TunnelAction[]): void {
    this.add(actions, this.sendAction(datagram, peer.endpoint!, peer));
    this.sent(peer, datagram.length, now);
  }

  /** Counters and send-side timers of an authenticated message of `size` bytes on its way to the peer. */
  private sent(peer: Peer, size: number, now: number): void {
    peer.txBytes += size;
    peer.timers.anyAuthenticatedPacketTraversal(now);
    peer.timers.anyAuthenticatedPacketSent();
  }
}

function parseAllowedIp(text: string): IpPrefix {
  const parsed = parsePrefix(text);
  if (!parsed.ok) throw new RangeError(`allowed IP: ${parsed.error}`);
  return parsed.value;
}
