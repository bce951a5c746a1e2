// The Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshake (docs/WIREGUARD.md §2.3-§2.7) as Create/Consume pairs,
// with the prologue and payloads as parameters so the same code passes the generic Noise vector and
// speaks WireGuard (prologue IDENTIFIER, payload 1 = TAI64N, payload 2 = empty).
//
// These functions work on message *fields*; framing, indices and mac1/mac2 belong to messages.ts and
// cookie.ts. Example (initiator, WireGuard):
//   const out = createInitiation(WIREGUARD, local, peer, generatePrivateKey(randomBytes), TAI64N(wallClockMs()));
//   if (out.ok) send(writeInitiation({ senderIndex, ephemeral: out.fields.ephemeral,
//       encryptedStatic: out.fields.encryptedStatic, encryptedTimestamp: out.fields.encryptedPayload }));
//
// Replay and flood rules for initiations live here as pure functions (initiationRejection); the state they
// need (greatest timestamp, time of the last accepted initiation) lives with the peer.
import {
  CONSTRUCTION,
  HANDSHAKE_INITIATION_RATE_MS,
  IDENTIFIER,
  KEY_LENGTH,
  TIMESTAMP_LENGTH,
} from './constants.js';
import type { InitiationMessage } from './messages.js';
import { AEAD, DH, HASH, KDF1, KDF2, KDF3, clamp, publicKey, timestampAfter, wipe } from './primitives.js';
import { secret } from './secret.js';

/** The initial chaining key and hash of a Noise protocol instance: Ci = HASH(CONSTRUCTION), Hi = HASH(Ci ‖ prologue). */
export interface NoiseProtocol {
  readonly initialChainKey: Uint8Array;
  readonly initialHash: Uint8Array;
}

export function noiseProtocol(prologue: Uint8Array): NoiseProtocol {
  const initialChainKey = HASH(CONSTRUCTION);
  return { initialChainKey, initialHash: HASH(initialChainKey, prologue) };
}

/** WireGuard's instance: prologue "WireGuard v1 zx2c4 Jason@zx2c4.com". */
export const WIREGUARD: NoiseProtocol = noiseProtocol(IDENTIFIER);

/** Our static key pair. */
export interface LocalStatic {
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

/** Our key pair from a private key (stored clamped, as a copy the caller may wipe independently). */
export function localStatic(privateKey: Uint8Array): LocalStatic {
  const clamped = clamp(privateKey);
  return { privateKey: clamped, publicKey: publicKey(clamped) };
}

/** What the handshake needs to know about a peer; kept per peer and replaced when either key changes. */
export interface PeerKeys {
  readonly remoteStatic: Uint8Array;
  /** 32 zero bytes when no pre-shared key is configured. */
  readonly presharedKey: Uint8Array;
  /** DH(local private, remote static); undefined (low-order key) makes the peer unusable. */
  readonly staticStatic: Uint8Array | undefined;
}

// Read by the handshake, never written: the pre-shared key of every peer that has none.
const NO_PRESHARED_KEY = secret(new Uint8Array(KEY_LENGTH));

/**
 * The static-static DH costs as much as the rest of adding a peer many times over, and most configured
 * peers of an exit node are idle: it is computed when the peer's first handshake reads it, then kept.
 */
class LazyPeerKeys implements PeerKeys {
  private local: LocalStatic | undefined;
  private shared: Uint8Array | undefined;

  constructor(
    local: LocalStatic,
    private readonly remote: Uint8Array | string,
    readonly presharedKey: Uint8Array,
  ) {
    this.local = local;
  }

  /** A key given in base64 is decoded for each handshake: an idle peer keeps no second copy of it. */
  get remoteStatic(): Uint8Array {
    return typeof this.remote === 'string' ? new Uint8Array(Buffer.from(this.remote, 'base64')) : this.remote;
  }

  get staticStatic(): Uint8Array | undefined {
    if (this.local !== undefined) {
      this.shared = DH(this.local.privateKey, this.remoteStatic);
      this.local = undefined;
    }
    return this.shared;
  }
}

/** Our own copy of a pre-shared key; all zero means none (it is what "none" uses in the handshake). */
export function ownPresharedKey(presharedKey: Uint8Array | undefined): Uint8Array | undefined {
  if (presharedKey === undefined || presharedKey.every((byte) => byte === 0)) return undefined;
  return secret(Uint8Array.from(presharedKey));
}

/**
 * A peer's handshake keys over the caller's buffers (the peer owns them and replaces its PeerKeys before it
 * changes or wipes either); the public key may be its base64 text. The static-static DH waits for the
 * first handshake.
 */
export function peerKeys(
  local: LocalStatic,
  remoteStatic: Uint8Array | string,
  presharedKey?: Uint8Array,
): PeerKeys {
  const length =
    typeof remoteStatic === 'string' ? Buffer.byteLength(remoteStatic, 'base64') : remoteStatic.length;
  if (length !== KEY_LENGTH) throw new RangeError('peer public key must be 32 bytes');
  if (presharedKey !== undefined && presharedKey.length !== KEY_LENGTH) {
    throw new RangeError('pre-shared key must be 32 bytes');
  }
  return new LazyPeerKeys(local, remoteStatic, presharedKey ?? NO_PRESHARED_KEY);
}

export type HandshakeFailure =
  | 'invalid_public_key' // a DH gave the all-zero result (low-order point), or the peer has no static-static
  | 'decrypt_failed' // an AEAD did not authenticate
  | 'unknown_peer' // the initiator's static key is not one of our peers
  | 'refused'; // the caller's admit check refused the initiation (replayed or flooded timestamp)

export type Outcome<T> =
  ({ readonly ok: true } & T) | { readonly ok: false; readonly reason: HandshakeFailure };

const fail = (reason: HandshakeFailure): { ok: false; reason: HandshakeFailure } => ({ ok: false, reason });

/** Handshake state, boringtun style: each variant carries only its own fields. */
export type HandshakeState<P = PeerKeys> = HandshakeZeroed | InitiationCreated | InitiationConsumed<P>;

export interface HandshakeZeroed {
  readonly state: 'zeroed';
}

/** Initiator, after sending an initiation and until the response (only the latest one can be answered). */
export interface InitiationCreated {
  readonly state: 'initiation_created';
  /** Our sender index in the initiation: the response names it as its receiver index. */
  readonly localIndex: number;
  readonly chainKey: Uint8Array;
  readonly hash: Uint8Array;
  readonly ephemeralPrivate: Uint8Array;
}

/** Responder, after authenticating an initiation and until it sends the response. */
export interface InitiationConsumed<P = PeerKeys> {
  readonly state: 'initiation_consumed';
  readonly chainKey: Uint8Array;
  readonly hash: Uint8Array;
  readonly remoteEphemeral: Uint8Array;
  readonly peer: P;
  /** Decrypted payload 1 (WireGuard: the 12-byte TAI64N timestamp). */
  readonly payload: Uint8Array;
}

export const ZEROED: HandshakeZeroed = { state: 'zeroed' };

/** Message 1 fields: e ‖ enc(s) ‖ enc(payload). */
export interface InitiationFields {
  readonly ephemeral: Uint8Array;
  readonly encryptedStatic: Uint8Array;
  readonly encryptedPayload: Uint8Array;
}

/** Message 1's fields from a parsed initiation (messages.ts). */
export const initiationFields = (message: InitiationMessage): InitiationFields => ({
  ephemeral: message.ephemeral,
  encryptedStatic: message.encryptedStatic,
  encryptedPayload: message.encryptedTimestamp,
});

/** Message 2 fields: e ‖ enc(payload). */
export interface ResponseFields {
  readonly ephemeral: Uint8Array;
  readonly encryptedPayload: Uint8Array;
}

/** The end of a handshake: the chaining key to split and the final handshake hash. */
export interface HandshakeResult {
  readonly chainKey: Uint8Array;
  readonly hash: Uint8Array;
}

export interface TransportKeys {
  readonly sendKey: Uint8Array;
  readonly receiveKey: Uint8Array;
}

/** Both sides start from Ci/Hi and the responder's static key (the IK pre-message). */
function initialState(
  protocol: NoiseProtocol,
  responderStatic: Uint8Array,
): { chainKey: Uint8Array; hash: Uint8Array } {
  return { chainKey: protocol.initialChainKey, hash: HASH(protocol.initialHash, responderStatic) };
}

/**
 * Initiator: builds message 1 with a fresh ephemeral private key (clamped, from injected randomness). The
 * state remembers `localIndex`, the sender index the message goes out with.
 */
export function createInitiation(
  protocol: NoiseProtocol,
  local: LocalStatic,
  peer: PeerKeys,
  ephemeralPrivate: Uint8Array,
  payload: Uint8Array,
  localIndex: number,
): Outcome<{ fields: InitiationFields; state: InitiationCreated }> {
  if (peer.staticStatic === undefined) return fail('invalid_public_key');
  let { chainKey, hash } = initialState(protocol, peer.remoteStatic);
  let key: Uint8Array;

  /* e */
  const ephemeral = publicKey(ephemeralPrivate);
  hash = HASH(hash, ephemeral);
  chainKey = KDF1(chainKey, ephemeral);

  /* es */
  const es = DH(ephemeralPrivate, peer.remoteStatic);
  if (es === undefined) return fail('invalid_public_key');
  [chainKey, key] = KDF2(chainKey, es);

  /* s */
  const encryptedStatic = AEAD.seal(key, 0, local.publicKey, hash);
  hash = HASH(hash, encryptedStatic);

  /* ss */
  [chainKey, key] = KDF2(chainKey, peer.staticStatic);

  /* {t} */
  const encryptedPayload = AEAD.seal(key, 0, payload, hash);
  hash = HASH(hash, encryptedPayload);

  wipe(es, key);
  return {
    ok: true,
    fields: { ephemeral, encryptedStatic, encryptedPayload },
    state: { state: 'initiation_created', localIndex, chainKey, hash, ephemeralPrivate },
  };
}

/**
 * Responder: authenticates message 1. `lookup` maps the decrypted initiator static key to our peer record
 * (or undefined). Never throws on bad input. The caller must still apply initiationRejection to the
 * payload (timestamp) before accepting the state.
 */
export function consumeInitiation<P extends PeerKeys>(
  protocol: NoiseProtocol,
  local: LocalStatic,
  fields: InitiationFields,
  lookup: (remoteStatic: Uint8Array) => P | undefined,
): Outcome<{ state: InitiationConsumed<P> }> {
  let { chainKey, hash } = initialState(protocol, local.publicKey);
  let key: Uint8Array;

  /* e */
  hash = HASH(hash, fields.ephemeral);
  chainKey = KDF1(chainKey, fields.ephemeral);

  /* es */
  const es = DH(local.privateKey, fields.ephemeral);
  if (es === undefined) return fail('invalid_public_key');
  [chainKey, key] = KDF2(chainKey, es);

  /* s */
  const remoteStatic = AEAD.open(key, 0, fields.encryptedStatic, hash);
  if (remoteStatic === undefined) return fail('decrypt_failed');
  hash = HASH(hash, fields.encryptedStatic);
  const peer = lookup(remoteStatic);
  if (peer === undefined) return fail('unknown_peer');
  if (peer.staticStatic === undefined) return fail('invalid_public_key');

  /* ss */
  [chainKey, key] = KDF2(chainKey, peer.staticStatic);

  /* {t} */
  const payload = AEAD.open(key, 0, fields.encryptedPayload, hash);
  if (payload === undefined) return fail('decrypt_failed');
  hash = HASH(hash, fields.encryptedPayload);

  return {
    ok: true,
    state: {
      state: 'initiation_consumed',
      chainKey,
      hash,
      remoteEphemeral: fields.ephemeral.slice(),
      peer,
      payload,
    },
  };
}

/** The psk token and the final encryption, shared by both sides of message 2. */
function mixPresharedKey(chainKey: Uint8Array, hash: Uint8Array, psk: Uint8Array) {
  const [nextChainKey, tau, key] = KDF3(chainKey, psk);
  return { chainKey: nextChainKey, hash: HASH(hash, tau), key };
}

/**
 * Responder: builds message 2 from the consumed initiation, then wipes `ephemeralPrivate` (it is used once).
 * Session keys follow at once via deriveTransportKeys(result, false).
 */
export function createResponse<P extends PeerKeys>(
  consumed: InitiationConsumed<P>,
  ephemeralPrivate: Uint8Array,
  payload: Uint8Array,
): Outcome<{ fields: ResponseFields; result: HandshakeResult }> {
  let { chainKey, hash } = consumed;

  /* e */
  const ephemeral = publicKey(ephemeralPrivate);
  hash = HASH(hash, ephemeral);
  chainKey = KDF1(chainKey, ephemeral);

  /* ee */
  const ee = DH(ephemeralPrivate, consumed.remoteEphemeral);
  /* se */
  const se = DH(ephemeralPrivate, consumed.peer.remoteStatic);
  if (ee === undefined || se === undefined) return fail('invalid_public_key');
  chainKey = KDF1(chainKey, ee);
  chainKey = KDF1(chainKey, se);

  /* psk */
  const mixed = mixPresharedKey(chainKey, hash, consumed.peer.presharedKey);

  /* {} */
  const encryptedPayload = AEAD.seal(mixed.key, 0, payload, mixed.hash);
  hash = HASH(mixed.hash, encryptedPayload);

  wipe(ee, se, mixed.key, ephemeralPrivate);
  return { ok: true, fields: { ephemeral, encryptedPayload }, result: { chainKey: mixed.chainKey, hash } };
}

/** An initiation answered: message 2 and its session keys, before any peer state has changed. */
export interface InitiationAnswer<P = PeerKeys> {
  readonly peer: P;
  /** Decrypted payload 1 (WireGuard: the TAI64N timestamp) for initiationRejection. */
  readonly payload: Uint8Array;
  readonly fields: ResponseFields;
  /** The responder's transport keys (deriveTransportKeys(result, false)). */
  readonly keys: TransportKeys;
}

/**
 * Responder, the pure part of answering message 1 (consumeInitiation, createResponse, deriveTransportKeys):
 * it reads peers only through `lookup` and changes none, so it may run on another thread over a snapshot
 * of them. The state part (replay and flood rules, the keypair, the response's indices and MACs) stays
 * with the caller, which must apply initiationRejection to `payload` whatever `admit` said. `admit` may
 * refuse an initiation once its payload is read, sparing the response's three DHs. Wipes ephemeralPrivate.
 */
export function answerInitiation<P extends PeerKeys>(
  protocol: NoiseProtocol,
  local: LocalStatic,
  fields: InitiationFields,
  lookup: (remoteStatic: Uint8Array) => P | undefined,
  ephemeralPrivate: Uint8Array,
  payload: Uint8Array,
  admit: (peer: P, initiationPayload: Uint8Array) => boolean = () => true,
): Outcome<{ answer: InitiationAnswer<P> }> {
  const consumed = consumeInitiation(protocol, local, fields, lookup);
  if (!consumed.ok || !admit(consumed.state.peer, consumed.state.payload)) {
    if (consumed.ok) wipe(consumed.state.chainKey);
    wipe(ephemeralPrivate);
    return consumed.ok ? fail('refused') : consumed;
  }
  const { state } = consumed;
  const response = createResponse(state, ephemeralPrivate, payload);
  wipe(state.chainKey, ephemeralPrivate);
  if (!response.ok) return response;
  return {
    ok: true,
    answer: {
      peer: state.peer,
      payload: state.payload,
      fields: response.fields,
      keys: deriveTransportKeys(response.result, false),
    },
  };
}

/** Initiator: authenticates message 2 against the latest initiation. Never throws on bad input. */
export function consumeResponse(
  created: InitiationCreated,
  local: LocalStatic,
  peer: PeerKeys,
  fields: ResponseFields,
): Outcome<{ result: HandshakeResult; payload: Uint8Array }> {
  let { chainKey, hash } = created;

  /* e */
  hash = HASH(hash, fields.ephemeral);
  chainKey = KDF1(chainKey, fields.ephemeral);

  /* ee */
  const ee = DH(created.ephemeralPrivate, fields.ephemeral);
  /* se */
  const se = DH(local.privateKey, fields.ephemeral);
  if (ee === undefined || se === undefined) return fail('invalid_public_key');
  chainKey = KDF1(chainKey, ee);
  chainKey = KDF1(chainKey, se);

  /* psk */
  const mixed = mixPresharedKey(chainKey, hash, peer.presharedKey);

  /* {} */
  const payload = AEAD.open(mixed.key, 0, fields.encryptedPayload, mixed.hash);
  if (payload === undefined) return fail('decrypt_failed');
  hash = HASH(mixed.hash, fields.encryptedPayload);

  wipe(ee, se, mixed.key);
  return { ok: true, result: { chainKey: mixed.chainKey, hash }, payload };
}

/**
 * Split (wireguard-go BeginSymmetricSession): (T1, T2) = KDF2(C, ε); the initiator sends with T1, the
 * responder with T2. Wipes the chaining key; the caller then forgets the handshake (state := zeroed) and
 * wipes the initiator's ephemeral private key.
 */
export function deriveTransportKeys(result: HandshakeResult, isInitiator: boolean): TransportKeys {
  const [first, second] = KDF2(result.chainKey, new Uint8Array(0));
  wipe(result.chainKey);
  return isInitiator ? { sendKey: first, receiveKey: second } : { sendKey: second, receiveKey: first };
}

/** What a peer remembers about the last initiation it accepted (for the replay and flood rules). */
export interface InitiationHistory {
  /** Greatest TAI64N timestamp accepted so far. */
  readonly timestamp: Uint8Array;
  /** Monotonic ms when that initiation was consumed. */
  readonly consumedAt: number;
}

/**
 * The two rules applied after consumeInitiation authenticated an initiation (docs/WIREGUARD.md §2.4): its
 * timestamp must be strictly greater than the greatest accepted one, and the previous accepted initiation
 * must be at least 20 ms old. Returns the rejection, or undefined to accept.
 */
export function initiationRejection(
  history: InitiationHistory | undefined,
  timestamp: Uint8Array,
  now: number,
): 'replay' | 'flood' | undefined {
  if (timestamp.length !== TIMESTAMP_LENGTH) return 'replay';
  if (history === undefined) return undefined;
  if (!timestampAfter(timestamp, history.timestamp)) return 'replay';
  if (now - history.consumedAt < HANDSHAKE_INITIATION_RATE_MS) return 'flood';
  return undefined;
}
