// Per-peer state (wireguard-go peer.go): static keys, the handshake in progress, cookie state, timers,
// keypairs, packets staged while no keypair is usable, the endpoint learned by roaming, and the counters
// `wg show` reports. The Tunnel façade drives it; this module holds state and small invariants only.
import { KEY_LENGTH, MAX_STAGED_PACKETS } from './constants.js';
import { MacSender } from './cookie.js';
import { type Keypair, Keypairs } from './keypair.js';
import {
  type HandshakeState,
  type InitiationHistory,
  type LocalStatic,
  type PeerKeys,
  ZEROED,
  ownPresharedKey,
  peerKeys,
} from './noise.js';
import { parseIpAddress } from './ipaddr.js';
import { wipe } from './primitives.js';
import type { Queued } from './deadlines.js';
import { PeerTimers, type PeerTimersOptions } from './timers.js';

export interface Endpoint {
  readonly address: string; // numeric IPv4/IPv6
  readonly port: number;
  /** Our address the peer's datagram arrived at, when the I/O shell knows it: replies leave from it. */
  readonly local?: string;
  /**
   * The address as 4 or 16 bytes, when the I/O shell has them: a flood from ever-new sources then costs no
   * parse of `address` per datagram (endpointAddress).
   */
  readonly addressBytes?: Uint8Array;
}

/** The endpoint's address as 4 or 16 bytes (those it carries, else parsed), or undefined when it is not one. */
export function endpointAddress(endpoint: Endpoint): Uint8Array | undefined {
  if (endpoint.addressBytes !== undefined) return endpoint.addressBytes;
  const parsed = parseIpAddress(endpoint.address);
  return parsed.ok ? parsed.value : undefined;
}

/** What a receiver index names: a peer's handshake in progress, or one of its keypairs. */
export interface IndexEntry {
  readonly peer: Peer;
  readonly keypair: Keypair | undefined;
}

export interface PeerOptions {
  readonly publicKey: Uint8Array;
  readonly local: LocalStatic;
  readonly presharedKey: Uint8Array | undefined;
  /** Frees a receiver index (the handshake's or a keypair's) in the device's index table. */
  readonly releaseIndex: (index: number) => void;
  /** The device's jitter source and timer queue, shared by its peers. */
  readonly timers: PeerTimersOptions<Peer>;
}

export class Peer implements Queued {
  /** The peer's name in 'deliver' actions and logs: its public key in base64, the only copy kept. */
  readonly name: string;
  readonly timers: PeerTimers<Peer>;
  private presharedKey: Uint8Array | undefined;
  private staticKeys: PeerKeys;
  private macs: MacSender | undefined;

  handshake: HandshakeState = ZEROED;
  /** The greatest initiation timestamp accepted from this peer and when (replay and flood rules). */
  initiationHistory: InitiationHistory | undefined;

  endpoint: Endpoint | undefined;
  /** Full UDP payload bytes of authenticated messages, handshakes included (docs/WIREGUARD.md §7.5). */
  rxBytes = 0;
  txBytes = 0;
  /** Wall-clock ms of the last completed handshake; 0 if none. */
  lastHandshakeUnixMs = 0;
  queueIndex = -1;
  queuedAt = 0;

  // Created on first use: most configured peers of an exit node are idle, and each object costs memory.
  private pairs: Keypairs | undefined;
  private staged: Uint8Array[] | undefined;
  private readonly releaseIndex: (index: number) => void;

  constructor(options: PeerOptions) {
    if (options.publicKey.length !== KEY_LENGTH) throw new RangeError('peer public key must be 32 bytes');
    this.name = Buffer.from(options.publicKey).toString('base64');
    this.presharedKey = ownPresharedKey(options.presharedKey);
    this.staticKeys = peerKeys(options.local, this.name, this.presharedKey);
    this.timers = new PeerTimers(options.timers, this);
    this.releaseIndex = options.releaseIndex;
  }

  /** The public key's bytes, decoded from `name` (status and MACs only; an idle peer keeps one copy). */
  get publicKey(): Uint8Array {
    return new Uint8Array(Buffer.from(this.name, 'base64'));
  }

  get keypairs(): Keypairs {
    return this.pairs ?? this.createKeypairs();
  }

  // Apart from the getter, which the data path calls for every packet: V8 allocates a function's context on
  // entry when a closure in it captures `this`, whether or not the closure is made.
  private createKeypairs(): Keypairs {
    return (this.pairs = new Keypairs((keypair) => this.releaseIndex(keypair.localIndex)));
  }

  /** mac1/mac2 for the handshakes we send, keyed from the peer's public key when the first one goes. */
  get macSender(): MacSender {
    return (this.macs ??= new MacSender(this.publicKey));
  }

  /** Static keys for the handshake; staticStatic is undefined for a low-order public key (peer unusable). */
  get keys(): PeerKeys {
    return this.staticKeys;
  }

  get hasPresharedKey(): boolean {
    return this.presharedKey !== undefined;
  }

  get presharedKeyCopy(): Uint8Array | undefined {
    return this.presharedKey && Uint8Array.from(this.presharedKey);
  }

  /** Sets or clears (undefined, or 32 zero bytes as in UAPI) the pre-shared key. */
  setPresharedKey(local: LocalStatic, presharedKey: Uint8Array | undefined): void {
    if (presharedKey !== undefined && presharedKey.length !== KEY_LENGTH) {
      throw new RangeError('pre-shared key must be 32 bytes');
    }
    if (this.presharedKey) wipe(this.presharedKey);
    this.presharedKey = ownPresharedKey(presharedKey);
    this.staticKeys = peerKeys(local, this.name, this.presharedKey);
  }

  /** Our private key changed: the static-static DH is computed again when the next handshake needs it. */
  setLocal(local: LocalStatic): void {
    this.staticKeys = peerKeys(local, this.name, this.presharedKey);
  }

  /** Updates the endpoint from an authenticated packet's source (roaming). */
  roamTo(from: Endpoint): void {
    const current = this.endpoint;
    if (
      current === undefined ||
      current.port !== from.port ||
      current.address !== from.address ||
      current.local !== from.local
    ) {
      this.endpoint =
        from.local === undefined
          ? { address: from.address, port: from.port }
          : { address: from.address, port: from.port, local: from.local };
    }
  }

  get stagedCount(): number {
    return this.staged?.length ?? 0;
  }

  /** Queues a packet (copied) until a keypair is usable; false when the queue was full and lost its oldest. */
  stage(packet: Uint8Array): boolean {
    const staged = (this.staged ??= []);
    const full = staged.length >= MAX_STAGED_PACKETS;
    if (full) staged.shift();
    staged.push(packet.slice());
    return !full;
  }

  /** Empties the queue, returning its packets in order. */
  takeStaged(): Uint8Array[] {
    const packets = this.staged ?? [];
    this.staged = undefined;
    return packets;
  }

  /** Forgets the handshake in progress: frees its index and wipes its secrets. */
  clearHandshake(): void {
    if (this.handshake.state === 'initiation_created') this.releaseIndex(this.handshake.localIndex);
    this.handshakeBecameKeypair();
  }

  /** The response arrived: the handshake's index now names the new keypair and stays; its secrets go. */
  handshakeBecameKeypair(): void {
    const handshake = this.handshake;
    if (handshake.state === 'initiation_created') wipe(handshake.ephemeralPrivate, handshake.chainKey);
    else if (handshake.state === 'initiation_consumed') wipe(handshake.chainKey);
    this.handshake = ZEROED;
  }

  /** zeroKeyMaterial and removal: keypairs, handshake and staged packets all go (wireguard-go ZeroAndFlushAll). */
  zeroAndFlush(): void {
    this.pairs?.clear();
    this.clearHandshake();
    this.staged = undefined;
  }
}
