// ChaCha20-Poly1305 (RFC 8439) for the transport hot path: one object per key, no allocation per packet,
// encryption in place into caller buffers, and unrolled ChaCha20 rounds on 32-bit locals; Poly1305 is in
// poly1305.ts. createTransportCipher (primitives.ts) uses it on little-endian hosts and @stablelib
// elsewhere; test/crypto/aead.test.ts checks it against RFC 8439, every Wycheproof vector and @stablelib,
// and scripts/bench-crypto measures it against @stablelib in the same run.
import { equal as constantTimeEqual } from '@stablelib/constant-time';
import { Poly1305 } from './poly1305.js';
import { redactInstances } from './secret.js';

/** Typed-array views over the ChaCha state assume a little-endian host; createTransportCipher checks this. */
export const HOST_IS_LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

const readU32 = (b: Uint8Array, o: number): number =>
  b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24);

/** 20-round ChaCha block of state `s` (counter in s[12]) into `out`. */
function chachaBlock(s: Uint32Array, out: Uint32Array): void {
  let x0 = s[0]!;
  let x1 = s[1]!;
  let x2 = s[2]!;
  let x3 = s[3]!;
  let x4 = s[4]!;
  let x5 = s[5]!;
  let x6 = s[6]!;
  let x7 = s[7]!;
  let x8 = s[8]!;
  let x9 = s[9]!;
  let x10 = s[10]!;
  let x11 = s[11]!;
  let x12 = s[12]!;
  let x13 = s[13]!;
  let x14 = s[14]!;
  let x15 = s[15]!;
  for (let i = 0; i < 10; i++) {
    // column round: QR(0,4,8,12) QR(1,5,9,13) QR(2,6,10,14) QR(3,7,11,15)
    x0 = (x0 + x4) | 0;
    x12 ^= x0;
    x12 = (x12 << 16) | (x12 >>> 16);
    x8 = (x8 + x12) | 0;
    x4 ^= x8;
    x4 = (x4 << 12) | (x4 >>> 20);
    x0 = (x0 + x4) | 0;
    x12 ^= x0;
    x12 = (x12 << 8) | (x12 >>> 24);
    x8 = (x8 + x12) | 0;
    x4 ^= x8;
    x4 = (x4 << 7) | (x4 >>> 25);
    x1 = (x1 + x5) | 0;
    x13 ^= x1;
    x13 = (x13 << 16) | (x13 >>> 16);
    x9 = (x9 + x13) | 0;
    x5 ^= x9;
    x5 = (x5 << 12) | (x5 >>> 20);
    x1 = (x1 + x5) | 0;
    x13 ^= x1;
    x13 = (x13 << 8) | (x13 >>> 24);
    x9 = (x9 + x13) | 0;
    x5 ^= x9;
    x5 = (x5 << 7) | (x5 >>> 25);
    x2 = (x2 + x6) | 0;
    x14 ^= x2;
    x14 = (x14 << 16) | (x14 >>> 16);
    x10 = (x10 + x14) | 0;
    x6 ^= x10;
    x6 = (x6 << 12) | (x6 >>> 20);
    x2 = (x2 + x6) | 0;
    x14 ^= x2;
    x14 = (x14 << 8) | (x14 >>> 24);
    x10 = (x10 + x14) | 0;
    x6 ^= x10;
    x6 = (x6 << 7) | (x6 >>> 25);
    x3 = (x3 + x7) | 0;
    x15 ^= x3;
    x15 = (x15 << 16) | (x15 >>> 16);
    x11 = (x11 + x15) | 0;
    x7 ^= x11;
    x7 = (x7 << 12) | (x7 >>> 20);
    x3 = (x3 + x7) | 0;
    x15 ^= x3;
    x15 = (x15 << 8) | (x15 >>> 24);
    x11 = (x11 + x15) | 0;
    x7 ^= x11;
    x7 = (x7 << 7) | (x7 >>> 25);
    // diagonal round: QR(0,5,10,15) QR(1,6,11,12) QR(2,7,8,13) QR(3,4,9,14)
    x0 = (x0 + x5) | 0;
    x15 ^= x0;
    x15 = (x15 << 16) | (x15 >>> 16);
    x10 = (x10 + x15) | 0;
    x5 ^= x10;
    x5 = (x5 << 12) | (x5 >>> 20);
    x0 = (x0 + x5) | 0;
    x15 ^= x0;
    x15 = (x15 << 8) | (x15 >>> 24);
    x10 = (x10 + x15) | 0;
    x5 ^= x10;
    x5 = (x5 << 7) | (x5 >>> 25);
    x1 = (x1 + x6) | 0;
    x12 ^= x1;
    x12 = (x12 << 16) | (x12 >>> 16);
    x11 = (x11 + x12) | 0;
    x6 ^= x11;
    x6 = (x6 << 12) | (x6 >>> 20);
    x1 = (x1 + x6) | 0;
    x12 ^= x1;
    x12 = (x12 << 8) | (x12 >>> 24);
    x11 = (x11 + x12) | 0;
    x6 ^= x11;
    x6 = (x6 << 7) | (x6 >>> 25);
    x2 = (x2 + x7) | 0;
    x13 ^= x2;
    x13 = (x13 << 16) | (x13 >>> 16);
    x8 = (x8 + x13) | 0;
    x7 ^= x8;
    x7 = (x7 << 12) | (x7 >>> 20);
    x2 = (x2 + x7) | 0;
    x13 ^= x2;
    x13 = (x13 << 8) | (x13 >>> 24);
    x8 = (x8 + x13) | 0;
    x7 ^= x8;
    x7 = (x7 << 7) | (x7 >>> 25);
    x3 = (x3 + x4) | 0;
    x14 ^= x3;
    x14 = (x14 << 16) | (x14 >>> 16);
    x9 = (x9 + x14) | 0;
    x4 ^= x9;
    x4 = (x4 << 12) | (x4 >>> 20);
    x3 = (x3 + x4) | 0;
    x14 ^= x3;
    x14 = (x14 << 8) | (x14 >>> 24);
    x9 = (x9 + x14) | 0;
    x4 ^= x9;
    x4 = (x4 << 7) | (x4 >>> 25);
  }
  out[0] = x0 + s[0]!;
  out[1] = x1 + s[1]!;
  out[2] = x2 + s[2]!;
  out[3] = x3 + s[3]!;
  out[4] = x4 + s[4]!;
  out[5] = x5 + s[5]!;
  out[6] = x6 + s[6]!;
  out[7] = x7 + s[7]!;
  out[8] = x8 + s[8]!;
  out[9] = x9 + s[9]!;
  out[10] = x10 + s[10]!;
  out[11] = x11 + s[11]!;
  out[12] = x12 + s[12]!;
  out[13] = x13 + s[13]!;
  out[14] = x14 + s[14]!;
  out[15] = x15 + s[15]!;
}

/**
 * ChaCha20-Poly1305 with a 12-byte nonce, one instance per key. seal/open write into caller buffers; dst may
 * be the input itself (in place) but must not overlap it at a different offset.
 */
export class ChaChaPoly {
  private readonly state = new Uint32Array(16);
  private readonly keystream = new Uint32Array(16);
  private readonly keystreamBytes = new Uint8Array(this.keystream.buffer);
  private readonly poly = new Poly1305();
  /** Scratch for zero padding, the length block and the computed tag. */
  private readonly scratch = new Uint8Array(16);
  private readonly tag = new Uint8Array(16);

  constructor(key: Uint8Array) {
    if (key.length !== 32) throw new RangeError('ChaCha20-Poly1305 key must be 32 bytes');
    const s = this.state;
    s[0] = 0x61707865;
    s[1] = 0x3320646e;
    s[2] = 0x79622d32;
    s[3] = 0x6b206574;
    for (let i = 0; i < 8; i++) s[4 + i] = readU32(key, 4 * i);
  }

  /** Encrypts plaintext into dst[0 .. n) and writes the tag to dst[n .. n+16). */
  seal(nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array | undefined, dst: Uint8Array): void {
    const n = plaintext.length;
    if (dst.length !== n + 16) throw new RangeError('ChaCha20-Poly1305: dst must be plaintext length + 16');
    this.start(nonce);
    this.xor(plaintext, dst, n);
    this.authenticate(ad, dst, n);
    dst.set(this.tag, n);
  }

  /** Checks the tag, then decrypts into dst (length sealed.length - 16). False, dst untouched, if forged. */
  open(nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array | undefined, dst: Uint8Array): boolean {
    if (nonce.length !== 12) throw new RangeError('ChaCha20-Poly1305 nonce must be 12 bytes');
    const n = sealed.length - 16;
    if (n < 0) return false;
    if (dst.length !== n) throw new RangeError('ChaCha20-Poly1305: dst must be sealed length - 16');
    this.start(nonce);
    this.authenticate(ad, sealed, n);
    if (!constantTimeEqual(this.tag, sealed.subarray(n))) return false;
    this.xor(sealed, dst, n);
    return true;
  }

  /** Overwrites the key. */
  wipe(): void {
    this.state.fill(0);
    this.keystream.fill(0);
  }

  /** Sets the nonce and derives the Poly1305 one-time key from block 0. */
  private start(nonce: Uint8Array): void {
    if (nonce.length !== 12) throw new RangeError('ChaCha20-Poly1305 nonce must be 12 bytes');
    const s = this.state;
    s[12] = 0;
    s[13] = readU32(nonce, 0);
    s[14] = readU32(nonce, 4);
    s[15] = readU32(nonce, 8);
    chachaBlock(s, this.keystream);
    this.poly.init(this.keystreamBytes);
  }

  /** dst[0..n) = src[0..n) XOR keystream from block 1. */
  private xor(src: Uint8Array, dst: Uint8Array, n: number): void {
    const s = this.state;
    const ks = this.keystream;
    const ksBytes = this.keystreamBytes;
    let counter = 1;
    let pos = 0;
    const fullEnd = n - (n % 64);
    if (fullEnd > 0 && src.byteOffset % 4 === 0 && dst.byteOffset % 4 === 0) {
      const src32 = new Uint32Array(src.buffer, src.byteOffset, fullEnd >>> 2);
      const dst32 = new Uint32Array(dst.buffer, dst.byteOffset, fullEnd >>> 2);
      for (; pos < fullEnd; pos += 64) {
        s[12] = counter++;
        chachaBlock(s, ks);
        const w = pos >>> 2;
        dst32[w + 0] = src32[w + 0]! ^ ks[0]!;
        dst32[w + 1] = src32[w + 1]! ^ ks[1]!;
        dst32[w + 2] = src32[w + 2]! ^ ks[2]!;
        dst32[w + 3] = src32[w + 3]! ^ ks[3]!;
        dst32[w + 4] = src32[w + 4]! ^ ks[4]!;
        dst32[w + 5] = src32[w + 5]! ^ ks[5]!;
        dst32[w + 6] = src32[w + 6]! ^ ks[6]!;
        dst32[w + 7] = src32[w + 7]! ^ ks[7]!;
        dst32[w + 8] = src32[w + 8]! ^ ks[8]!;
        dst32[w + 9] = src32[w + 9]! ^ ks[9]!;
        dst32[w + 10] = src32[w + 10]! ^ ks[10]!;
        dst32[w + 11] = src32[w + 11]! ^ ks[11]!;
        dst32[w + 12] = src32[w + 12]! ^ ks[12]!;
        dst32[w + 13] = src32[w + 13]! ^ ks[13]!;
        dst32[w + 14] = src32[w + 14]! ^ ks[14]!;
        dst32[w + 15] = src32[w + 15]! ^ ks[15]!;
      }
    }
    for (; pos < n; pos += 64) {
      s[12] = counter++;
      chachaBlock(s, ks);
      const end = Math.min(64, n - pos);
      for (let i = 0; i < end; i++) dst[pos + i] = src[pos + i]! ^ ksBytes[i]!;
    }
  }

  /** Tag over pad16(ad) ‖ pad16(ciphertext) ‖ le64(|ad|) ‖ le64(|ciphertext|) into this.tag. */
  private authenticate(ad: Uint8Array | undefined, ciphertext: Uint8Array, n: number): void {
    const adLength = ad?.length ?? 0;
    if (ad !== undefined) this.absorbPadded(ad, adLength);
    this.absorbPadded(ciphertext, n);
    const block = this.scratch;
    block.fill(0);
    writeLength(block, 0, adLength);
    writeLength(block, 8, n);
    this.poly.blocks(block, 0, 16);
    this.poly.finish(this.tag, 0);
  }

  private absorbPadded(data: Uint8Array, length: number): void {
    const whole = length - (length % 16);
    this.poly.blocks(data, 0, whole);
    if (whole < length) {
      const block = this.scratch;
      block.fill(0);
      block.set(data.subarray(whole, length));
      this.poly.blocks(block, 0, 16);
    }
  }
}
redactInstances(ChaChaPoly.prototype);

function writeLength(out: Uint8Array, offset: number, length: number): void {
  out[offset] = length;
  out[offset + 1] = length >>> 8;
  out[offset + 2] = length >>> 16;
  out[offset + 3] = length >>> 24;
  // Messages are far below 2^32 bytes: the high half stays zero.
}

/** Writes the 12-byte AEAD nonce 0x00000000 ‖ u64 LE counter (given as 32-bit halves). */
export function writeNonce(nonce: Uint8Array, counterHigh: number, counterLow: number): void {
  nonce[0] = nonce[1] = nonce[2] = nonce[3] = 0;
  nonce[4] = counterLow;
  nonce[5] = counterLow >>> 8;
  nonce[6] = counterLow >>> 16;
  nonce[7] = counterLow >>> 24;
  nonce[8] = counterHigh;
  nonce[9] = counterHigh >>> 8;
  nonce[10] = counterHigh >>> 16;
  nonce[11] = counterHigh >>> 24;
}

/** The transport AEAD interface: one instance per direction of a keypair, writing into caller buffers. */
export interface TransportAEAD {
  /**
   * Encrypts `plaintext` into `dst` (length plaintext.length + 16; may be the same memory as plaintext
   * shifted by 0, i.e. in place) under the counter given as 32-bit halves. No associated data.
   */
  seal(counterHigh: number, counterLow: number, plaintext: Uint8Array, dst: Uint8Array): void;
  /** Authenticates and decrypts `sealed` into `dst` (length sealed.length - 16). False if forged. */
  open(counterHigh: number, counterLow: number, sealed: Uint8Array, dst: Uint8Array): boolean;
  /** Overwrites the key. */
  wipe(): void;
}

/** TransportAEAD over ChaChaPoly: the nonce buffer and all state live in the object. */
export class ChaChaPolyTransportCipher implements TransportAEAD {
  private readonly cipher: ChaChaPoly;
  private readonly nonce = new Uint8Array(12);

  constructor(key: Uint8Array) {
    this.cipher = new ChaChaPoly(key);
  }

  seal(counterHigh: number, counterLow: number, plaintext: Uint8Array, dst: Uint8Array): void {
    writeNonce(this.nonce, counterHigh, counterLow);
    this.cipher.seal(this.nonce, plaintext, undefined, dst);
  }

  open(counterHigh: number, counterLow: number, sealed: Uint8Array, dst: Uint8Array): boolean {
    if (sealed.length < 16) return false;
    writeNonce(this.nonce, counterHigh, counterLow);
    return this.cipher.open(this.nonce, sealed, undefined, dst);
  }

  wipe(): void {
    this.cipher.wipe();
  }
}
