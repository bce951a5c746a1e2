// Two Tunnels in memory, wired back to back: the 'send' actions of one are fed into the other's
// decapsulate. A manual monotonic clock and seeded randomness make every run identical.
import type { TransportAEAD } from '../../crypto/aead.js';
import { DEFAULT_MTU } from '../../crypto/constants.js';
import type { Keypair } from '../../crypto/keypair.js';
import {
  openTransport,
  sealTransport,
  transportCounterHigh,
  transportCounterLow,
  transportLength,
} from '../../crypto/messages.js';
import { clamp, createTransportCipher, publicKey, wipe } from '../../crypto/primitives.js';
import {
  type Endpoint,
  type OpenAction,
  type SealAction,
  type TransportCrypto,
  Tunnel,
  type TunnelAction,
} from '../../crypto/tunnel.js';

/** A deterministic byte source (xorshift32); not for real keys, only for repeatable tests. */
export function seededRandom(seed: number): (length: number) => Uint8Array {
  let state = seed >>> 0 || 1;
  return (length) => {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      state >>>= 0;
      out[i] = state & 0xff;
    }
    return out;
  };
}

export const WALL_CLOCK_BASE_MS = 1_700_000_000_000;

/** An IPv4 packet of `length` bytes (≥ 20) with a real header: version, total length, addresses. */
export function ipv4Packet(source: string, destination: string, length = 84, fill = 0xab): Uint8Array {
  const packet = new Uint8Array(length).fill(fill);
  packet[0] = 0x45;
  packet[1] = 0;
  packet[2] = length >> 8;
  packet[3] = length & 0xff;
  packet[8] = 64; // TTL
  packet[9] = 1; // ICMP
  packet.set(source.split('.').map(Number), 12);
  packet.set(destination.split('.').map(Number), 16);
  return packet;
}

/** An IPv6 packet of `length` bytes (≥ 40) with version, payload length and addresses set. */
export function ipv6Packet(source: Uint8Array, destination: Uint8Array, length = 104): Uint8Array {
  const packet = new Uint8Array(length).fill(0xcd);
  packet[0] = 0x60;
  packet.fill(0, 1, 4);
  packet[4] = (length - 40) >> 8;
  packet[5] = (length - 40) & 0xff;
  packet[6] = 58; // ICMPv6
  packet[7] = 64;
  packet.set(source, 8);
  packet.set(destination, 24);
  return packet;
}

/**
 * The I/O shell's half of TunnelOptions.transportCrypto done inline, as the crypto threads do it
 * (nodes/threads): keys taken once per keypair, sealing under the engine's counters, opening with keys of
 * its own and then the keypair's replay window (Keypair.acceptCounter), keys wiped when the engine retires
 * the keypair.
 */
export class InlineTransportCrypto implements TransportCrypto {
  /** Local indices of retired keypairs, in order. */
  readonly retiredIndices: number[] = [];
  /** Every counter sealed under, per keypair local index, in order. */
  readonly sealedCounters = new Map<number, number[]>();
  private readonly sessions = new Map<Keypair, { send: TransportAEAD; receive: TransportAEAD }>();
  /** Whether the next message is handed out (TransportCrypto.takes); else the engine does it itself. */
  takesNext: () => boolean = () => true;

  takes(): boolean {
    return this.takesNext();
  }

  retired(keypair: Keypair): void {
    this.retiredIndices.push(keypair.localIndex);
    const session = this.sessions.get(keypair);
    session?.send.wipe();
    session?.receive.wipe();
    this.sessions.delete(keypair);
  }

  get liveSessions(): number {
    return this.sessions.size;
  }

  private session(keypair: Keypair) {
    let session = this.sessions.get(keypair);
    if (session === undefined) {
      const keys = keypair.takeKeys();
      if (keys === undefined) return undefined;
      session = {
        send: createTransportCipher(keys.sendKey),
        receive: createTransportCipher(keys.receiveKey),
      };
      wipe(keys.sendKey, keys.receiveKey);
      this.sessions.set(keypair, session);
    }
    return session;
  }

  seal(action: SealAction): Uint8Array | undefined {
    const session = this.session(action.keypair);
    if (session === undefined) return undefined;
    const counters = this.sealedCounters.get(action.keypair.localIndex) ?? [];
    counters.push(action.counter);
    this.sealedCounters.set(action.keypair.localIndex, counters);
    const high = Math.floor(action.counter / 0x1_0000_0000);
    const datagram = new Uint8Array(transportLength(action.packet.length, DEFAULT_MTU));
    sealTransport(
      session.send,
      action.keypair.remoteIndex,
      high,
      action.counter >>> 0,
      action.packet,
      DEFAULT_MTU,
      datagram,
    );
    return datagram;
  }

  /** Opens a copy in place: the copy and its padded plaintext's length (at [16 ..)), or a rejection. */
  open(action: OpenAction): { message: Uint8Array; length: number } | 'decrypt_failed' | 'replay' {
    const session = this.session(action.keypair);
    if (session === undefined) return 'decrypt_failed';
    const datagram = action.datagram.slice(); // the pair records what was sent
    const [high, low] = [transportCounterHigh(datagram), transportCounterLow(datagram)];
    const opened = openTransport(session.receive, datagram, high, low);
    if (opened < 0) return 'decrypt_failed';
    return action.keypair.acceptCounter(high, low) ? { message: datagram, length: opened } : 'replay';
  }
}

export type Side = 'a' | 'b';
export const other = (side: Side): Side => (side === 'a' ? 'b' : 'a');

export const A_INNER = '10.9.0.1';
export const B_INNER = '10.9.0.2';

/** What one exchange produced, per side that produced it. */
export interface Flow {
  /** Datagrams sent, in order, with their destinations. */
  sent: Record<Side, { datagram: Uint8Array; to: Endpoint }[]>;
  delivered: Record<Side, Uint8Array[]>;
  drops: Record<Side, string[]>;
}

export interface PairOptions {
  /** Whether B is configured with A's endpoint (else it learns it from A's first packet). */
  bKnowsA?: boolean;
  presharedKey?: Uint8Array;
  seed?: number;
  /** Both tunnels decrypt transport messages in place (TunnelOptions.decryptInPlace). */
  decryptInPlace?: boolean;
  /** A seals transport messages into reused buffers (TunnelOptions.reuseSendBuffers). */
  aReusesSendBuffers?: boolean;
  /** Both tunnels reuse their data-path results (TunnelOptions.reuseActions, and reusedMessages with it). */
  reuseActions?: boolean;
  /** B's transport messages are sealed and opened outside its engine (TunnelOptions.transportCrypto). */
  bTransportCrypto?: boolean;
  /** A and B swap static keys: by default B's public key is the smaller one (bytewise). */
  swapKeys?: boolean;
}

export class TunnelPair {
  now = 0;
  readonly a: Tunnel;
  readonly b: Tunnel;
  readonly keys: Record<Side, { privateKey: Uint8Array; publicKey: Uint8Array }>;
  /** The outer address each side sends from; change one to simulate roaming. */
  readonly endpoints: Record<Side, Endpoint> = {
    a: { address: '192.0.2.1', port: 51820 },
    b: { address: '198.51.100.2', port: 51821 },
  };

  /** While false, datagrams are recorded but lost on the way. */
  linkUp = true;
  /** Every datagram either side sent: when, who, how big. */
  readonly log: { at: number; side: Side; size: number }[] = [];
  /** With bTransportCrypto: what seals and opens B's transport messages. */
  readonly bCrypto: InlineTransportCrypto | undefined;

  constructor(options: PairOptions = {}) {
    const random = seededRandom(options.seed ?? 0x5eed);
    const wallClockMs = () => WALL_CLOCK_BASE_MS + this.now;
    const keyOf = (fill: number) => {
      const privateKey = clamp(new Uint8Array(32).fill(fill));
      return { privateKey, publicKey: publicKey(privateKey) };
    };
    this.keys = options.swapKeys ? { a: keyOf(0x22), b: keyOf(0x11) } : { a: keyOf(0x11), b: keyOf(0x22) };
    const common = {
      randomBytes: random,
      wallClockMs,
      decryptInPlace: options.decryptInPlace ?? false,
      reuseActions: options.reuseActions ?? false,
      reusedMessages: options.reuseActions ?? false,
    };
    this.a = new Tunnel({
      privateKey: this.keys.a.privateKey,
      reuseSendBuffers: options.aReusesSendBuffers ?? false,
      ...common,
    });
    this.bCrypto = options.bTransportCrypto ? new InlineTransportCrypto() : undefined;
    this.b = new Tunnel({
      privateKey: this.keys.b.privateKey,
      ...common,
      ...(this.bCrypto && { transportCrypto: this.bCrypto }),
    });
    const psk = options.presharedKey;
    this.a.upsertPeer(
      this.keys.b.publicKey,
      { allowedIps: [`${B_INNER}/32`], endpoint: this.endpoints.b, presharedKey: psk },
      0,
    );
    this.b.upsertPeer(
      this.keys.a.publicKey,
      {
        allowedIps: [`${A_INNER}/32`],
        presharedKey: psk,
        ...(options.bKnowsA ? { endpoint: this.endpoints.a } : {}),
      },
      0,
    );
  }

  tunnel(side: Side): Tunnel {
    return side === 'a' ? this.a : this.b;
  }

  /** A ping-sized packet from one side's inner address to the other's. */
  packet(from: Side, length = 84, fill = 0xab): Uint8Array {
    return from === 'a'
      ? ipv4Packet(A_INNER, B_INNER, length, fill)
      : ipv4Packet(B_INNER, A_INNER, length, fill);
  }

  /** Encapsulates on one side and runs the exchange to completion. */
  send(from: Side, packet = this.packet(from)): Flow {
    return this.flow(from, this.tunnel(from).encapsulate(packet, this.now));
  }

  /**
   * Advances the clock by `ms` as the daemon's scheduler would: stepping to every deadline either side
   * reports on the way, ticking both sides there and running what they send to completion.
   */
  advance(ms: number): Flow {
    const end = this.now + ms;
    let flow: Flow = emptyFlow();
    for (;;) {
      const deadlines = [this.a.nextDeadline(), this.b.nextDeadline()].filter((d) => d !== undefined);
      const next = Math.min(...deadlines);
      if (!(next <= end)) break;
      this.now = Math.max(this.now, next);
      flow = merge(flow, this.flow('a', this.a.tick(this.now)));
      flow = merge(flow, this.flow('b', this.b.tick(this.now)));
    }
    this.now = end;
    return flow;
  }

  /**
   * Feeds the 'send' actions produced by `side` to the other tunnel (as coming from `side`'s endpoint),
   * and the answers back, until nothing is sent any more. Everything is recorded. Actions are copied as they
   * are queued: with reuseActions a tunnel's next call reuses them.
   */
  flow(side: Side, actions: TunnelAction[]): Flow {
    const result = emptyFlow();
    const copied = (list: TunnelAction[]) => list.map((action) => ({ ...action }));
    const queue: { side: Side; actions: TunnelAction[] }[] = [{ side, actions: copied(actions) }];
    for (let step = 0; step < 10_000 && queue.length > 0; step++) {
      const { side: at, actions: batch } = queue.shift()!;
      const send = (datagram: Uint8Array, to: Endpoint) => {
        result.sent[at].push({ datagram, to });
        this.log.push({ at: this.now, side: at, size: datagram.length });
        if (!this.linkUp) return;
        const receiver = other(at);
        queue.push({
          side: receiver,
          actions: copied(this.tunnel(receiver).decapsulate(datagram, this.endpoints[at], this.now)),
        });
      };
      for (const action of batch) {
        if (action.kind === 'send') {
          send(action.datagram, action.to);
        } else if (action.kind === 'deliver') {
          result.delivered[at].push(action.packet);
        } else if (action.kind === 'drop') {
          result.drops[at].push(action.reason);
        } else if (action.kind === 'seal') {
          const datagram = this.bCrypto!.seal(action);
          if (datagram === undefined) result.drops[at].push('keypair_expired');
          else send(datagram, action.to);
        } else {
          const opened = this.bCrypto!.open(action);
          if (typeof opened === 'string') result.drops[at].push(opened);
          else {
            const { message, length } = opened;
            queue.push({
              side: at,
              actions: copied(
                this.tunnel(at).transportOpened(action.keypair, message, length, action.from, this.now),
              ),
            });
          }
        }
      }
    }
    return result;
  }

  /** Runs a handshake initiated by `side` (with one packet that is then delivered) and returns its flow. */
  connect(side: Side = 'a'): Flow {
    return this.send(side);
  }

  status(side: Side) {
    const peers = this.tunnel(side).peers();
    if (peers.length !== 1) throw new Error(`expected one peer on ${side}, found ${peers.length}`);
    return peers[0]!;
  }
}

const emptyFlow = (): Flow => ({
  sent: { a: [], b: [] },
  delivered: { a: [], b: [] },
  drops: { a: [], b: [] },
});

export function merge(first: Flow, second: Flow): Flow {
  const sides: Side[] = ['a', 'b'];
  const out = emptyFlow();
  for (const side of sides) {
    out.sent[side] = [...first.sent[side], ...second.sent[side]];
    out.delivered[side] = [...first.delivered[side], ...second.delivered[side]];
    out.drops[side] = [...first.drops[side], ...second.drops[side]];
  }
  return out;
}

/** Sizes of the datagrams a side sent, for compact assertions (148 initiation, 92 response, 32 keepalive). */
export const sizes = (flow: Flow, side: Side): number[] => flow.sent[side].map((s) => s.datagram.length);

/** Message type of a datagram (first byte). */
export const typeOf = (datagram: Uint8Array): number => datagram[0]!;
