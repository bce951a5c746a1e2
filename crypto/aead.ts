// ChaCha20-Poly1305 (RFC 8439) for the transport hot path: one object per key, no allocation per packet,
// encryption in place into caller buffers, unrolled ChaCha20 rounds on 32-bit locals that stay in locals across
// a packet's blocks, and whole blocks XORed a word at a time through words.ts's views; Poly1305 is in
// poly1305.ts. createTransportCipher (primitives.ts) uses it on little-endian hosts and @stablelib
// elsewhere; test/crypto/aead.test.ts checks it against RFC 8439, every Wycheproof vector and @stablelib,
// and scripts/bench-crypto measures it against @stablelib in the same run.
import { Poly1305 } from './poly1305.js';
import { redactInstances } from './secret.js';
import { WordView, readWord } from './words.js';

const ZERO_BLOCK = new Int32Array(16);

/**
 * `blocks` 20-round ChaCha blocks of state `s` from the counter in s[12], XORed into words: dst[di + k] =
 * src[si + k] ^ keystream[k] for k < 16·blocks; s[12] is left at the next counter. With src = ZERO_BLOCK and
 * one block it writes the keystream itself. The state stays in locals across blocks and the XOR is fused:
 * no keystream buffer is written or read.
 */
function chachaXor(
  s: Int32Array,
  src: Int32Array,
  si: number,
  dst: Int32Array,
  di: number,
  blocks: number,
): void {
  const j0 = s[0]!;
  const j1 = s[1]!;
  const j2 = s[2]!;
  const j3 = s[3]!;
  const j4 = s[4]!;
  const j5 = s[5]!;
  const j6 = s[6]!;
  const j7 = s[7]!;
  const j8 = s[8]!;
  const j9 = s[9]!;
  const j10 = s[10]!;
  const j11 = s[11]!;
  const j13 = s[13]!;
  const j14 = s[14]!;
  const j15 = s[15]!;
  let j12 = s[12]!;
  for (let block = 0; block < blocks; block++, si += 16, di += 16) {
    let x0 = j0;
    let x1 = j1;
    let x2 = j2;
    let x3 = j3;
    let x4 = j4;
    let x5 = j5;
    let x6 = j6;
    let x7 = j7;
    let x8 = j8;
    let x9 = j9;
    let x10 = j10;
    let x11 = j11;
    let x13 = j13;
    let x14 = j14;
    let x15 = j15;
    let x12 = j12;
    // Two double rounds per iteration, written out: V8 then keeps more of the sixteen words in registers
    // (scripts/bench-crypto measured ChaCha20 alone about 15% faster than with one double round per iteration).
    for (let i = 0; i < 5; i++) {
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
    dst[di] = src[si]! ^ (x0 + j0);
    dst[di + 1] = src[si + 1]! ^ (x1 + j1);
    dst[di + 2] = src[si + 2]! ^ (x2 + j2);
    dst[di + 3] = src[si + 3]! ^ (x3 + j3);
    dst[di + 4] = src[si + 4]! ^ (x4 + j4);
    dst[di + 5] = src[si + 5]! ^ (x5 + j5);
    dst[di + 6] = src[si + 6]! ^ (x6 + j6);
    dst[di + 7] = src[si + 7]! ^ (x7 + j7);
    dst[di + 8] = src[si + 8]! ^ (x8 + j8);
    dst[di + 9] = src[si + 9]! ^ (x9 + j9);
    dst[di + 10] = src[si + 10]! ^ (x10 + j10);
    dst[di + 11] = src[si + 11]! ^ (x11 + j11);
    dst[di + 12] = src[si + 12]! ^ (x12 + j12);
    dst[di + 13] = src[si + 13]! ^ (x13 + j13);
    dst[di + 14] = src[si + 14]! ^ (x14 + j14);
    dst[di + 15] = src[si + 15]! ^ (x15 + j15);
    j12 = (j12 + 1) | 0;
  }
  s[12] = j12;
}

/**
 * ChaCha20-Poly1305 with a 12-byte nonce, one instance per key. seal/open write into caller buffers; dst may
 * be the input itself (in place) but must not overlap it at a different offset.
 */
export class ChaChaPoly {
  private readonly state = new Int32Array(16);
  private readonly keystream = new Int32Array(16);
  private readonly keystreamBytes = new Uint8Array(this.keystream.buffer);
  // One view for the MAC and the cipher: both ask about the same packet, and the second asks for free.
  private readonly words = new WordView();
  private readonly poly = new Poly1305(this.words);
  /** Scratch for zero padding and the computed tag. */
  private readonly scratch = new Uint8Array(16);
  /** The length block, le64(|ad|) ‖ le64(|ciphertext|), as the words Poly1305 takes (high halves 0). */
  private readonly lengths = new Int32Array(4);
  private readonly tag = new Uint8Array(16);

  constructor(key: Uint8Array) {
    this.rekey(key);
  }

  /** Takes a new key (after wipe too): one instance serves keys used once each, as XChaCha20's subkeys. */
  rekey(key: Uint8Array): void {
    if (key.length !== 32) throw new RangeError('ChaCha20-Poly1305 key must be 32 bytes');
    const s = this.state;
    s[0] = 0x61707865;
    s[1] = 0x3320646e;
    s[2] = 0x79622d32;
    s[3] = 0x6b206574;
    for (let i = 0; i < 8; i++) s[4 + i] = readWord(key, 4 * i);
  }

  /** Encrypts plaintext into dst[0 .. n) and writes the tag to dst[n .. n+16). */
  seal(nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array | undefined, dst: Uint8Array): void {
    const n = plaintext.length;
    if (dst.length !== n + 16) throw new RangeError('ChaCha20-Poly1305: dst must be plaintext length + 16');
    this.start(nonce);
    this.xor(plaintext, 0, dst, 0, n);
    this.authenticate(ad, dst, 0, n);
    this.writeTag(dst, n);
  }

  /**
   * In place, without associated data: encrypts bytes[offset .. offset+n) where it lies and writes the tag
   * to bytes[offset+n .. offset+n+16). No view of `bytes` is made (any buffer, SharedArrayBuffer too).
   */
  sealInPlace(nonce: Uint8Array, bytes: Uint8Array, offset: number, n: number): void {
    checkRegion(bytes, offset, n);
    this.start(nonce);
    this.xor(bytes, offset, bytes, offset, n);
    this.authenticate(undefined, bytes, offset, n);
    this.writeTag(bytes, offset + n);
  }

  /**
   * sealInPlace of src[si .. si+length) followed by n - length zero bytes, written to dst[di ..) without
   * copying it there first: whole blocks are encrypted from src straight into dst (when both start on a word
   * boundary), the rest is copied and encrypted where it lands. src and dst must not overlap.
   */
  sealPadded(
    nonce: Uint8Array,
    src: Uint8Array,
    si: number,
    length: number,
    dst: Uint8Array,
    di: number,
    n: number,
  ): void {
    checkRegion(dst, di, n);
    if (!(si >= 0 && length >= 0 && length <= n && si + length <= src.length))
      throw new RangeError('ChaCha20-Poly1305: the plaintext must lie inside src and fit the region');
    this.start(nonce);
    // Whole blocks straight from src; the tail is copied and zero-padded into dst and encrypted there.
    const whole = length - (length % 64);
    this.xor(src, si, dst, di, whole);
    for (let i = whole; i < length; i++) dst[di + i] = src[si + i]!;
    for (let i = length; i < n; i++) dst[di + i] = 0;
    this.xor(dst, di + whole, dst, di + whole, n - whole, 1 + (whole >>> 6));
    this.authenticate(undefined, dst, di, n);
    this.writeTag(dst, di + n);
  }

  /** Checks the tag, then decrypts into dst (length sealed.length - 16). False, dst untouched, if forged. */
  open(nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array | undefined, dst: Uint8Array): boolean {
    if (nonce.length !== 12) throw new RangeError('ChaCha20-Poly1305 nonce must be 12 bytes');
    const n = sealed.length - 16;
    if (n < 0) return false;
    if (dst.length !== n) throw new RangeError('ChaCha20-Poly1305: dst must be sealed length - 16');
    this.start(nonce);
    this.authenticate(ad, sealed, 0, n);
    if (!this.tagMatches(sealed, n)) return false;
    this.xor(sealed, 0, dst, 0, n);
    return true;
  }

  /**
   * In place, without associated data: checks the tag at bytes[offset+n .. offset+n+16) over the n bytes
   * before it, then decrypts those where they lie. False, nothing written, if forged.
   */
  openInPlace(nonce: Uint8Array, bytes: Uint8Array, offset: number, n: number): boolean {
    checkRegion(bytes, offset, n);
    this.start(nonce);
    this.authenticate(undefined, bytes, offset, n);
    if (!this.tagMatches(bytes, offset + n)) return false;
    this.xor(bytes, offset, bytes, offset, n);
    return true;
  }

  /** Overwrites the key, and the last message's one-time MAC key. */
  wipe(): void {
    this.state.fill(0);
    this.keystream.fill(0);
    this.poly.wipe();
  }

  /** Sets the nonce and derives the Poly1305 one-time key from block 0. */
  private start(nonce: Uint8Array): void {
    if (nonce.length !== 12) throw new RangeError('ChaCha20-Poly1305 nonce must be 12 bytes');
    const s = this.state;
    s[12] = 0;
    s[13] = readWord(nonce, 0);
    s[14] = readWord(nonce, 4);
    s[15] = readWord(nonce, 8);
    chachaXor(s, ZERO_BLOCK, 0, this.keystream, 0, 1);
    this.poly.init(this.keystreamBytes);
  }

  /**
   * dst[di .. di+n) = src[si .. si+n) XOR keystream from block `counter` (1: the first after the MAC key's): whole blocks word by word when both start
   * on a word boundary. In place (src = dst, si = di) works; other overlaps do not.
   */
  private xor(src: Uint8Array, si: number, dst: Uint8Array, di: number, n: number, counter = 1): void {
    const s = this.state;
    s[12] = counter;
    let pos = 0;
    const fullEnd = n - (n % 64);
    const words = this.words;
    const src32 = fullEnd > 0 && (si & 3) === 0 ? words.of(src) : undefined;
    const srcBase = words.base;
    const dst32 = src32 !== undefined && (di & 3) === 0 ? words.of(dst) : undefined;
    if (src32 !== undefined && dst32 !== undefined) {
      chachaXor(s, src32, srcBase + (si >>> 2), dst32, words.base + (di >>> 2), fullEnd >>> 6);
      pos = fullEnd;
    }
    const ks = this.keystream;
    const ksBytes = this.keystreamBytes;
    for (; pos < n; pos += 64) {
      chachaXor(s, ZERO_BLOCK, 0, ks, 0, 1);
      const end = Math.min(64, n - pos);
      for (let i = 0; i < end; i++) dst[di + pos + i] = src[si + pos + i]! ^ ksBytes[i]!;
    }
  }

  /** bytes[at .. at+16) = this.tag (a loop: TypedArray set is a call into C++, slower for 16 bytes). */
  private writeTag(bytes: Uint8Array, at: number): void {
    const tag = this.tag;
    for (let i = 0; i < 16; i++) bytes[at + i] = tag[i]!;
  }

  /** this.tag = bytes[tagOffset .. tagOffset+16), in constant time and without a subarray per packet. */
  private tagMatches(bytes: Uint8Array, tagOffset: number): boolean {
    const tag = this.tag;
    let difference = 0;
    for (let i = 0; i < 16; i++) difference |= tag[i]! ^ bytes[tagOffset + i]!;
    return difference === 0;
  }

  /** Tag over pad16(ad) ‖ pad16(ciphertext) ‖ le64(|ad|) ‖ le64(|ciphertext|) into this.tag. */
  private authenticate(ad: Uint8Array | undefined, bytes: Uint8Array, offset: number, n: number): void {
    const adLength = ad?.length ?? 0;
    if (ad !== undefined) this.absorbPadded(ad, 0, adLength);
    this.absorbPadded(bytes, offset, n);
    // Messages are far below 2^32 bytes: the high words stay 0.
    const lengths = this.lengths;
    lengths[0] = adLength;
    lengths[2] = n;
    this.poly.absorb(lengths, 0, 16);
    this.poly.finish(this.tag, 0);
  }

  private absorbPadded(data: Uint8Array, offset: number, length: number): void {
    const whole = length - (length % 16);
    this.poly.blocks(data, offset, whole);
    if (whole < length) {
      const block = this.scratch;
      const tail = length - whole;
      for (let i = 0; i < tail; i++) block[i] = data[offset + whole + i]!;
      for (let i = tail; i < 16; i++) block[i] = 0; // (TypedArray fill is a call into C++: slower for 16 bytes)
      this.poly.blocks(block, 0, 16);
    }
  }
}
redactInstances(ChaChaPoly.prototype);

/** An in-place region of n bytes and its 16-byte tag must lie inside `bytes`. */
function checkRegion(bytes: Uint8Array, offset: number, n: number): void {
  if (!(offset >= 0 && n >= 0 && offset + n + 16 <= bytes.length))
    throw new RangeError('ChaCha20-Poly1305: the region and its tag must lie inside the buffer');
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
  /**
   * In place on a caller's buffer (a SharedArrayBuffer's too), with no view made: encrypts
   * bytes[offset .. offset+length) where it lies and writes the tag after it.
   */
  sealInPlace(
    counterHigh: number,
    counterLow: number,
    bytes: Uint8Array,
    offset: number,
    length: number,
  ): void;
  /**
   * sealInPlace of src[srcOffset .. srcOffset+length) followed by zeros up to paddedLength bytes, written to
   * dst[dstOffset ..) with its tag: a packet sealed into a message buffer without copying it there first.
   * src and dst must not overlap.
   */
  sealPadded(
    counterHigh: number,
    counterLow: number,
    src: Uint8Array,
    srcOffset: number,
    length: number,
    dst: Uint8Array,
    dstOffset: number,
    paddedLength: number,
  ): void;
  /**
   * In place: authenticates bytes[offset .. offset+length) with the tag that follows it and decrypts it where
   * it lies. False, nothing written, if forged.
   */
  openInPlace(
    counterHigh: number,
    counterLow: number,
    bytes: Uint8Array,
    offset: number,
    length: number,
  ): boolean;
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

  sealInPlace(
    counterHigh: number,
    counterLow: number,
    bytes: Uint8Array,
    offset: number,
    length: number,
  ): void {
    writeNonce(this.nonce, counterHigh, counterLow);
    this.cipher.sealInPlace(this.nonce, bytes, offset, length);
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
    writeNonce(this.nonce, counterHigh, counterLow);
    this.cipher.sealPadded(this.nonce, src, srcOffset, length, dst, dstOffset, paddedLength);
  }

  openInPlace(
    counterHigh: number,
    counterLow: number,
    bytes: Uint8Array,
    offset: number,
    length: number,
  ): boolean {
    writeNonce(this.nonce, counterHigh, counterLow);
    return this.cipher.openInPlace(this.nonce, bytes, offset, length);
  }

  wipe(): void {
    this.cipher.wipe();
  }
}
