// mac1, mac2 and cookie replies (docs/WIREGUARD.md §3), split as wireguard-go's cookie.go:
//  - MacSender (CookieGenerator): one per peer; adds mac1/mac2 to our handshake messages, remembers the
//    last mac1 sent and consumes the cookie replies that answer it.
//  - CookieChecker: one per device (our static key); verifies mac1/mac2 on incoming handshake messages and
//    builds cookie replies, rotating its secret every 120 s.
// Time is a monotonic millisecond number supplied by the caller; randomness is injected.
import {
  COOKIE_REFRESH_TIME_MS,
  INITIATION_MAC1_OFFSET,
  INITIATION_MAC2_OFFSET,
  INITIATION_SIZE,
  KEY_LENGTH,
  LABEL_COOKIE,
  LABEL_MAC1,
  MAC_LENGTH,
  MESSAGE_INITIATION,
  MESSAGE_RESPONSE,
  RESPONSE_MAC1_OFFSET,
  RESPONSE_MAC2_OFFSET,
  RESPONSE_SIZE,
  XAEAD_NONCE_LENGTH,
} from './constants.js';
import { writeCookieReply, type CookieReplyMessage, type HandshakeMessage } from './messages.js';
import { HASH, KeyedMac, MAC, XAEAD, constantTimeEqual, wipe } from './primitives.js';
import { secret } from './secret.js';

/** mac1 key for messages sent TO the owner of `publicKey`: HASH(LABEL_MAC1 ‖ publicKey). */
export const mac1Key = (publicKey: Uint8Array): Uint8Array => HASH(LABEL_MAC1, publicKey);
/** Cookie-reply encryption key of the owner of `publicKey`: HASH(LABEL_COOKIE ‖ publicKey). */
export const cookieKey = (publicKey: Uint8Array): Uint8Array => HASH(LABEL_COOKIE, publicKey);

/**
 * The bytes a cookie is bound to: source address (4 or 16 bytes) then UDP port big-endian, as the kernel.
 * Only this responder makes and checks them, so the encoding need not match anyone else's.
 */
export function cookieSource(address: Uint8Array, port: number): Uint8Array {
  const out = new Uint8Array(address.length + 2);
  out.set(address);
  out[address.length] = port >>> 8;
  out[address.length + 1] = port & 0xff;
  return out;
}

/** mac1/mac2 offsets of a handshake message, by its exact size (programmer error otherwise). */
function macOffsets(bytes: Uint8Array): { mac1: number; mac2: number } {
  if (bytes.length === INITIATION_SIZE && bytes[0] === MESSAGE_INITIATION) {
    return { mac1: INITIATION_MAC1_OFFSET, mac2: INITIATION_MAC2_OFFSET };
  }
  if (bytes.length === RESPONSE_SIZE && bytes[0] === MESSAGE_RESPONSE) {
    return { mac1: RESPONSE_MAC1_OFFSET, mac2: RESPONSE_MAC2_OFFSET };
  }
  throw new RangeError('mac1/mac2 apply only to initiation and response messages');
}

/** Sender side, one per peer (wireguard-go CookieGenerator). */
export class MacSender {
  private readonly mac1Key: Uint8Array;
  private readonly cookieKey: Uint8Array;
  private cookie: { readonly value: Uint8Array; readonly receivedAt: number } | undefined;
  /** The last mac1 we sent: the AD a cookie reply must be bound to. Cleared once a reply is consumed. */
  private lastMac1: Uint8Array | undefined;

  /** @param remotePublic the peer's static public key (messages are MACed with the receiver's key). */
  constructor(remotePublic: Uint8Array) {
    if (remotePublic.length !== KEY_LENGTH) throw new RangeError('peer public key must be 32 bytes');
    this.mac1Key = mac1Key(remotePublic);
    this.cookieKey = cookieKey(remotePublic);
  }

  /**
   * Writes mac1, and mac2 when we hold a cookie younger than 120 s (else 16 zero bytes), into an
   * initiation or response built by messages.ts. Call last, right before sending.
   */
  addMacs(message: Uint8Array, now: number): void {
    const offsets = macOffsets(message);
    const mac1 = MAC(this.mac1Key, message.subarray(0, offsets.mac1));
    message.set(mac1, offsets.mac1);
    this.lastMac1 = mac1;
    const mac2 = message.subarray(offsets.mac2, offsets.mac2 + MAC_LENGTH);
    if (this.cookie !== undefined && now - this.cookie.receivedAt < COOKIE_REFRESH_TIME_MS) {
      mac2.set(MAC(this.cookie.value, message.subarray(0, offsets.mac2)));
    } else {
      mac2.fill(0);
    }
  }

  /**
   * Opens a cookie reply addressed to one of this peer's indices (the caller dispatched it by receiver
   * index). Stores the cookie and returns true; false if we sent no mac1 since the last reply or it does
   * not authenticate. The next (re)transmitted handshake then carries mac2; nothing is resent here.
   */
  consumeCookieReply(reply: CookieReplyMessage, now: number): boolean {
    if (this.lastMac1 === undefined) return false;
    const cookie = XAEAD.open(this.cookieKey, reply.nonce, reply.encryptedCookie, this.lastMac1);
    if (cookie === undefined) return false;
    this.cookie = { value: secret(cookie), receivedAt: now };
    this.lastMac1 = undefined; // one cookie per mac1, as the kernel
    return true;
  }
}

/** Receiver side, one per device (wireguard-go CookieChecker). */
export class CookieChecker {
  private readonly mac1: KeyedMac;
  private readonly cookieKey: Uint8Array;
  /** MAC(secret, ·), the cookie for a source: keyed with the secret, replaced with it every 120 s. */
  private secretMac: KeyedMac;
  private secretCreatedAt: number | undefined;

  /**
   * @param localPublic our static public key (incoming handshakes are MACed with it)
   * @param randomBytes injected randomness for the cookie secret and reply nonces
   */
  constructor(
    localPublic: Uint8Array,
    private readonly randomBytes: (length: number) => Uint8Array,
  ) {
    if (localPublic.length !== KEY_LENGTH) throw new RangeError('public key must be 32 bytes');
    this.mac1 = new KeyedMac(mac1Key(localPublic));
    this.cookieKey = cookieKey(localPublic);
    this.secretMac = new KeyedMac(new Uint8Array(KEY_LENGTH));
  }

  /** Constant-time check of mac1 over the bytes before it. Invalid ⇒ drop silently. */
  checkMac1(message: HandshakeMessage): boolean {
    const offsets = macOffsets(message.bytes);
    return constantTimeEqual(this.mac1.mac(message.bytes.subarray(0, offsets.mac1)), message.mac1);
  }

  /**
   * Under load only: mac2 must be MAC(cookie for this source, bytes before mac2). Fails outright while the
   * secret is unset or older than 120 s (no valid cookie can exist then), and for a mac2 of zeros: what a
   * sender without a cookie writes (every datagram of a flood that never asked for one), not worth two MACs.
   */
  checkMac2(message: HandshakeMessage, source: Uint8Array, now: number): boolean {
    if (this.secretCreatedAt === undefined || now - this.secretCreatedAt >= COOKIE_REFRESH_TIME_MS)
      return false;
    if (message.mac2.every((byte) => byte === 0)) return false;
    const offsets = macOffsets(message.bytes);
    const cookie = this.secretMac.mac(source);
    const valid = constantTimeEqual(MAC(cookie, message.bytes.subarray(0, offsets.mac2)), message.mac2);
    wipe(cookie);
    return valid;
  }

  /**
   * The cookie reply answering `message` (whose mac1 was valid) from `source`: cookie = MAC(secret, source)
   * sealed with XChaCha20-Poly1305 under our cookie key, a random nonce and AD = the message's mac1.
   */
  createCookieReply(message: HandshakeMessage, source: Uint8Array, now: number): Uint8Array {
    this.refreshSecret(now);
    const cookie = this.secretMac.mac(source);
    const nonce = this.randomBytes(XAEAD_NONCE_LENGTH);
    const encryptedCookie = XAEAD.seal(this.cookieKey, nonce, cookie, message.mac1);
    wipe(cookie);
    return writeCookieReply({ receiverIndex: message.senderIndex, nonce, encryptedCookie });
  }

  /** Regenerates the secret lazily when it is older than 120 s (wireguard-go CreateReply). */
  private refreshSecret(now: number): void {
    if (this.secretCreatedAt !== undefined && now - this.secretCreatedAt < COOKIE_REFRESH_TIME_MS) return;
    this.secretMac.wipe();
    const key = Uint8Array.from(this.randomBytes(KEY_LENGTH));
    this.secretMac = new KeyedMac(key);
    wipe(key);
    this.secretCreatedAt = now;
  }
}
