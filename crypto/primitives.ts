// The whitepaper's primitives (docs/WIREGUARD.md §2.1), over @stablelib and x25519.ts. Names follow the paper:
// HASH, MAC, HMAC, KDF1-3, AEAD, XAEAD, DH, TAI64N. Nothing here reads a clock or a random source: time and
// randomness are parameters.
import { BLAKE2s } from '@stablelib/blake2s';
import { ChaCha20Poly1305 } from '@stablelib/chacha20poly1305';
import { equal } from '@stablelib/constant-time';
import { HMAC as StableHMAC } from '@stablelib/hmac';
import { hchacha } from '@stablelib/xchacha20';
import { ChaChaPoly, ChaChaPolyTransportCipher, type TransportAEAD, writeNonce } from './aead.js';
import { HOST_IS_LITTLE_ENDIAN } from './words.js';
import { x25519, x25519Base } from './x25519.js';
import {
  AEAD_NONCE_LENGTH,
  AEAD_TAG_LENGTH,
  HASH_LENGTH,
  KEY_LENGTH,
  MAC_LENGTH,
  TIMESTAMP_LENGTH,
  XAEAD_NONCE_LENGTH,
} from './constants.js';
import { redactInstances, secret } from './secret.js';

/** Constant-time equality of two byte strings (false when lengths differ). */
export const constantTimeEqual = (a: Uint8Array, b: Uint8Array): boolean => equal(a, b);

/** HASH(parts…) = BLAKE2s-256 of the concatenation, without building it. */
export function HASH(...parts: Uint8Array[]): Uint8Array {
  const hash = new BLAKE2s(HASH_LENGTH);
  for (const part of parts) hash.update(part);
  return hash.digest();
}

/** MAC(key, parts…) = keyed BLAKE2s with a 16-byte output (mac1, mac2, cookies). */
export function MAC(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const hash = new BLAKE2s(MAC_LENGTH, { key });
  for (const part of parts) hash.update(part);
  return hash.digest();
}

/**
 * MAC under one fixed key, with one hasher reset per message rather than one made per message: about half
 * MAC's cost, for the mac1 check every initiation gets and the cookie every cookie reply seals. The result is
 * a view the next call overwrites.
 */
export class KeyedMac {
  private readonly hash: BLAKE2s;
  private readonly result = new Uint8Array(MAC_LENGTH);

  constructor(key: Uint8Array) {
    this.hash = new BLAKE2s(MAC_LENGTH, { key });
  }

  mac(data: Uint8Array): Uint8Array {
    // reset() puts the padded key back (unlike restoreState, §0.3 of docs/WIREGUARD.md, it clears "finished").
    this.hash.reset().update(data).finish(this.result);
    return this.result;
  }

  /** Overwrites the key and the last MAC. */
  wipe(): void {
    this.hash.clean();
    wipe(this.result);
  }
}
// Its key may be secret (the cookie secret's).
redactInstances(KeyedMac.prototype);

/**
 * HMAC(key, parts…) = RFC 2104 HMAC-BLAKE2s-256. A fresh HMAC object per call on purpose: @stablelib/blake2s
 * 2.0.1 cannot be reset after finishing, so reusing one (as @stablelib/hkdf does) throws (docs/WIREGUARD.md §0.3).
 */
export function HMAC(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const mac = new StableHMAC(BLAKE2s, key);
  for (const part of parts) mac.update(part);
  return mac.digest();
}

const ONE = Uint8Array.of(1);
const TWO = Uint8Array.of(2);
const THREE = Uint8Array.of(3);

/**
 * HKDF with salt = chaining key, IKM = input, empty info; returns the first `count` 32-byte blocks, marked
 * secret (they are chaining keys, message keys and transport keys).
 */
function kdf(count: 1 | 2 | 3, key: Uint8Array, input: Uint8Array): Uint8Array[] {
  const prk = HMAC(key, input);
  const t1 = secret(HMAC(prk, ONE));
  if (count === 1) return [t1];
  const t2 = secret(HMAC(prk, t1, TWO));
  if (count === 2) return [t1, t2];
  return [t1, t2, secret(HMAC(prk, t2, THREE))];
}

export const KDF1 = (key: Uint8Array, input: Uint8Array): Uint8Array => kdf(1, key, input)[0]!;
export const KDF2 = (key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array] =>
  kdf(2, key, input) as [Uint8Array, Uint8Array];
export const KDF3 = (key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] =>
  kdf(3, key, input) as [Uint8Array, Uint8Array, Uint8Array];

/** Nonce for a counter given as a safe integer or a u64 bigint (handshake messages use 0). */
function nonceFor(counter: number | bigint): Uint8Array {
  const value = BigInt(counter);
  if (
    value < 0n ||
    value > 0xffff_ffff_ffff_ffffn ||
    (typeof counter === 'number' && !Number.isSafeInteger(counter))
  ) {
    throw new RangeError('AEAD counter must be an unsigned 64-bit integer');
  }
  const nonce = new Uint8Array(AEAD_NONCE_LENGTH);
  writeNonce(nonce, Number(value >> 32n), Number(value & 0xffff_ffffn));
  return nonce;
}

/**
 * AEAD = ChaCha20-Poly1305 (RFC 8439) with nonce 4 zero bytes ‖ u64 LE counter. For one-off use (handshake);
 * the transport path keeps one TransportCipher per keypair instead.
 */
export const AEAD = {
  seal(key: Uint8Array, counter: number | bigint, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
    return new ChaCha20Poly1305(key).seal(nonceFor(counter), plaintext, ad);
  },
  /** The plaintext, or undefined when authentication fails. */
  open(
    key: Uint8Array,
    counter: number | bigint,
    sealed: Uint8Array,
    ad: Uint8Array,
  ): Uint8Array | undefined {
    return new ChaCha20Poly1305(key).open(nonceFor(counter), sealed, ad) ?? undefined;
  },
};

/**
 * XAEAD = XChaCha20-Poly1305 with a 24-byte nonce (cookie replies): HChaCha20 of the key and the nonce's first
 * 16 bytes keys ChaCha20-Poly1305 under 4 zero bytes ‖ its last 8 (draft-irtf-cfrg-xchacha §2.3). The inner
 * cipher is the engine's own (aead.ts): @stablelib's XChaCha20Poly1305 took about 6 µs per cookie reply,
 * which a flood of initiations asks for per datagram.
 */
export const XAEAD = {
  seal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
    const sealed = new Uint8Array(plaintext.length + AEAD_TAG_LENGTH);
    withInnerCipher(key, nonce, (cipher, innerNonce) => cipher.seal(innerNonce, plaintext, ad, sealed));
    return sealed;
  },
  open(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Uint8Array | undefined {
    return withInnerCipher(key, nonce, (cipher, innerNonce) => {
      if (sealed.length < AEAD_TAG_LENGTH) return undefined;
      const opened = new Uint8Array(sealed.length - AEAD_TAG_LENGTH);
      return cipher.open(innerNonce, sealed, ad, opened) ? opened : undefined;
    });
  },
};

/**
 * XAEAD's inner cipher, subkey and nonces, made once: each call rekeys them, and wipes them after. The nonce's
 * parts are copied by index: a subarray of a small nonce would move it out of the V8 heap into a malloc'ed
 * store, per cookie reply.
 */
const xaeadInner = new ChaChaPoly(new Uint8Array(KEY_LENGTH));
const xaeadSubkey = new Uint8Array(KEY_LENGTH);
const xaeadHChaChaInput = new Uint8Array(16);
const xaeadInnerNonce = new Uint8Array(AEAD_NONCE_LENGTH);

/** Runs `use` with XChaCha20's inner ChaCha20-Poly1305 keyed for `key` and `nonce`, and its nonce. */
function withInnerCipher<T>(
  key: Uint8Array,
  nonce: Uint8Array,
  use: (cipher: ChaChaPoly, innerNonce: Uint8Array) => T,
): T {
  if (nonce.length !== XAEAD_NONCE_LENGTH) throw new RangeError('XAEAD nonce must be 24 bytes');
  if (key.length !== KEY_LENGTH) throw new RangeError('XAEAD key must be 32 bytes');
  for (let i = 0; i < 16; i++) xaeadHChaChaInput[i] = nonce[i]!;
  for (let i = 0; i < 8; i++) xaeadInnerNonce[4 + i] = nonce[16 + i]!;
  xaeadInner.rekey(hchacha(key, xaeadHChaChaInput, xaeadSubkey));
  wipe(xaeadSubkey);
  try {
    return use(xaeadInner, xaeadInnerNonce);
  } finally {
    xaeadInner.wipe();
  }
}

/** TransportAEAD over @stablelib/chacha20poly1305: the key schedule object is created once per key. */
export class StablelibTransportCipher implements TransportAEAD {
  private readonly cipher: ChaCha20Poly1305;
  private readonly nonce = new Uint8Array(AEAD_NONCE_LENGTH);

  constructor(key: Uint8Array) {
    if (key.length !== KEY_LENGTH) throw new RangeError('transport key must be 32 bytes');
    this.cipher = new ChaCha20Poly1305(key);
  }

  seal(counterHigh: number, counterLow: number, plaintext: Uint8Array, dst: Uint8Array): void {
    writeNonce(this.nonce, counterHigh, counterLow);
    this.cipher.seal(this.nonce, plaintext, undefined, dst);
  }

  open(counterHigh: number, counterLow: number, sealed: Uint8Array, dst: Uint8Array): boolean {
    if (sealed.length < AEAD_TAG_LENGTH) return false;
    writeNonce(this.nonce, counterHigh, counterLow);
    return this.cipher.open(this.nonce, sealed, undefined, dst) !== null;
  }

  // The fallback cipher works on views: in place here means a subarray per call (big-endian hosts only).
  sealInPlace(
    counterHigh: number,
    counterLow: number,
    bytes: Uint8Array,
    offset: number,
    length: number,
  ): void {
    const region = bytes.subarray(offset, offset + length + AEAD_TAG_LENGTH);
    this.seal(counterHigh, counterLow, region.slice(0, length), region);
  }

  sealPadded(
    counterHigh: number,
    counterLow: number,
    src: Uint8Array,
    srcOffset: number,
    length: number,
    dst: Uint8Array,
    dstOffset: number,
    paddedLength: number,
  ): void {
    if (!(length <= paddedLength && srcOffset >= 0 && srcOffset + length <= src.length))
      throw new RangeError('the plaintext must lie inside src and fit the region');
    const region = dst.subarray(dstOffset, dstOffset + paddedLength + AEAD_TAG_LENGTH);
    if (region.length !== paddedLength + AEAD_TAG_LENGTH)
      throw new RangeError('the region must lie inside dst');
    const plaintext = new Uint8Array(paddedLength);
    plaintext.set(src.subarray(srcOffset, srcOffset + length));
    this.seal(counterHigh, counterLow, plaintext, region);
  }

  openInPlace(
    counterHigh: number,
    counterLow: number,
    bytes: Uint8Array,
    offset: number,
    length: number,
  ): boolean {
    return this.open(
      counterHigh,
      counterLow,
      bytes.subarray(offset, offset + length + AEAD_TAG_LENGTH),
      bytes.subarray(offset, offset + length),
    );
  }

  wipe(): void {
    this.cipher.clean();
  }
}
redactInstances(StablelibTransportCipher.prototype);

/**
 * The transport cipher the engine uses for one direction of a keypair: create one per key, reuse it for
 * every packet. crypto/aead.ts measured about twice as fast as @stablelib (bench-results/crypto.md); it
 * needs a little-endian host, so @stablelib remains the fallback.
 */
export function createTransportCipher(key: Uint8Array): TransportAEAD {
  return HOST_IS_LITTLE_ENDIAN ? new ChaChaPolyTransportCipher(key) : new StablelibTransportCipher(key);
}

/** Private keys are clamped whenever they are set or generated. Returns a clamped copy, marked secret. */
export function clamp(privateKey: Uint8Array): Uint8Array {
  if (privateKey.length !== KEY_LENGTH) throw new RangeError('private key must be 32 bytes');
  const key = Uint8Array.from(privateKey);
  key[0]! &= 248;
  key[31] = (key[31]! & 127) | 64;
  return secret(key);
}

/** DH-Generate: a clamped private key from injected randomness. */
export function generatePrivateKey(randomBytes: (length: number) => Uint8Array): Uint8Array {
  return clamp(randomBytes(KEY_LENGTH));
}

/**
 * The X25519 functions DH and publicKey call: x25519.ts. scripts/bench-crypto swaps tweetnacl's in for the
 * baseline rows it measures in the same run; nothing else changes them.
 */
export const X25519 = { scalarMult: x25519, scalarMultBase: x25519Base };

/** DH-Pubkey: the X25519 public key of a (clamped) private key. */
export function publicKey(privateKey: Uint8Array): Uint8Array {
  return X25519.scalarMultBase(clamp(privateKey));
}

/**
 * DH(private, public) = X25519, or undefined when the result is all zero (a low-order public key), as
 * wireguard-go and the kernel refuse it (RFC 7748 leaves the check to the caller). The zero test ORs every
 * byte (constant time). The shared secret is marked secret.
 */
export function DH(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | undefined {
  if (privateKey.length !== KEY_LENGTH || publicKey.length !== KEY_LENGTH) {
    throw new RangeError('X25519 keys must be 32 bytes');
  }
  const shared = X25519.scalarMult(privateKey, publicKey);
  let acc = 0;
  for (let i = 0; i < shared.length; i++) acc |= shared[i]!;
  return acc === 0 ? undefined : secret(shared);
}

const TAI64_EPOCH = 0x400000000000000an;
/** Nanoseconds are rounded down to a multiple of 2^24 so timestamps do not leak a precise clock. */
const WHITENER_MASK = ~0xffffff;

/** TAI64N label for a Unix time in milliseconds: 8-byte BE seconds + 2^62 + 10, 4-byte BE whitened nanos. */
export function TAI64N(unixMs: number): Uint8Array {
  const seconds = Math.floor(unixMs / 1000);
  const nanos = Math.round((unixMs - seconds * 1000) * 1e6) & WHITENER_MASK;
  const out = new Uint8Array(TIMESTAMP_LENGTH);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, TAI64_EPOCH + BigInt(seconds));
  view.setUint32(8, nanos >>> 0);
  return out;
}

/** True when TAI64N `a` is strictly after `b` (big-endian byte order is time order). */
export function timestampAfter(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < TIMESTAMP_LENGTH; i++) {
    if (a[i]! !== b[i]!) return a[i]! > b[i]!;
  }
  return false;
}

/** Overwrites secret material. */
export function wipe(...buffers: Uint8Array[]): void {
  for (const buffer of buffers) buffer.fill(0);
}
