// A ChaCha20-Poly1305 (RFC 8439) written for the transport hot path: one object per key, no allocation per
// packet, encryption in place into caller buffers, unrolled ChaCha20 rounds on 32-bit locals, and Poly1305
// with 13-bit limbs in 16-bit storage (poly1305-donna-16, as @noble/ciphers and @stablelib/poly1305).
// The engine uses it only if scripts/bench-crypto measures it faster than @stablelib (createTransportCipher
// in primitives.ts); it is checked against RFC 8439, all Wycheproof vectors and @stablelib in
// test/crypto/aead.test.ts.
//
// Poly1305 here only ever sees whole 16-byte blocks: the AEAD construction pads associated data and
// ciphertext with zeros to a multiple of 16 and appends a 16-byte length block, so no partial-block rule is
// needed.
import { equal as constantTimeEqual } from '@stablelib/constant-time';
import type { TransportAEAD } from './primitives.js';

/** Typed-array views over the ChaCha state assume a little-endian host; createTransportCipher checks this. */
export const HOST_IS_LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

const readU32 = (b: Uint8Array, o: number): number =>
  b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24);
const readU16 = (b: Uint8Array, o: number): number => b[o]! | (b[o + 1]! << 8);

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

/** Poly1305 over whole blocks with reusable state (one per cipher object). */
class Poly1305 {
  private readonly r = new Uint16Array(10);
  private readonly h = new Uint16Array(10);
  private readonly pad = new Uint16Array(8);
  private readonly g = new Uint16Array(10);

  /** Starts a MAC with the one-time key (r is clamped as RFC 8439 §2.5 requires). */
  init(key: Uint8Array): void {
    const t0 = readU16(key, 0),
      t1 = readU16(key, 2),
      t2 = readU16(key, 4),
      t3 = readU16(key, 6);
    const t4 = readU16(key, 8),
      t5 = readU16(key, 10),
      t6 = readU16(key, 12),
      t7 = readU16(key, 14);
    const r = this.r;
    r[0] = t0 & 0x1fff;
    r[1] = ((t0 >>> 13) | (t1 << 3)) & 0x1fff;
    r[2] = ((t1 >>> 10) | (t2 << 6)) & 0x1f03;
    r[3] = ((t2 >>> 7) | (t3 << 9)) & 0x1fff;
    r[4] = ((t3 >>> 4) | (t4 << 12)) & 0x00ff;
    r[5] = (t4 >>> 1) & 0x1ffe;
    r[6] = ((t4 >>> 14) | (t5 << 2)) & 0x1fff;
    r[7] = ((t5 >>> 11) | (t6 << 5)) & 0x1f81;
    r[8] = ((t6 >>> 8) | (t7 << 8)) & 0x1fff;
    r[9] = (t7 >>> 5) & 0x007f;
    for (let i = 0; i < 8; i++) this.pad[i] = readU16(key, 16 + 2 * i);
    this.h.fill(0);
  }

  /** Absorbs `length` bytes (a multiple of 16) of `data` from `offset`. */
  blocks(data: Uint8Array, offset: number, length: number): void {
    const h = this.h;
    const r = this.r;
    const r0 = r[0]!,
      r1 = r[1]!,
      r2 = r[2]!,
      r3 = r[3]!,
      r4 = r[4]!;
    const r5 = r[5]!,
      r6 = r[6]!,
      r7 = r[7]!,
      r8 = r[8]!,
      r9 = r[9]!;
    // 2^130 ≡ 5 (mod p): limbs that wrap around are multiplied by 5, precomputed once per call.
    const s1 = 5 * r1,
      s2 = 5 * r2,
      s3 = 5 * r3,
      s4 = 5 * r4,
      s5 = 5 * r5,
      s6 = 5 * r6,
      s7 = 5 * r7,
      s8 = 5 * r8,
      s9 = 5 * r9;
    let h0 = h[0]!,
      h1 = h[1]!,
      h2 = h[2]!,
      h3 = h[3]!,
      h4 = h[4]!;
    let h5 = h[5]!,
      h6 = h[6]!,
      h7 = h[7]!,
      h8 = h[8]!,
      h9 = h[9]!;
    for (let o = offset, end = offset + length; o < end; o += 16) {
      const t0 = readU16(data, o),
        t1 = readU16(data, o + 2),
        t2 = readU16(data, o + 4),
        t3 = readU16(data, o + 6);
      const t4 = readU16(data, o + 8),
        t5 = readU16(data, o + 10),
        t6 = readU16(data, o + 12),
        t7 = readU16(data, o + 14);
      h0 += t0 & 0x1fff;
      h1 += ((t0 >>> 13) | (t1 << 3)) & 0x1fff;
      h2 += ((t1 >>> 10) | (t2 << 6)) & 0x1fff;
      h3 += ((t2 >>> 7) | (t3 << 9)) & 0x1fff;
      h4 += ((t3 >>> 4) | (t4 << 12)) & 0x1fff;
      h5 += (t4 >>> 1) & 0x1fff;
      h6 += ((t4 >>> 14) | (t5 << 2)) & 0x1fff;
      h7 += ((t5 >>> 11) | (t6 << 5)) & 0x1fff;
      h8 += ((t6 >>> 8) | (t7 << 8)) & 0x1fff;
      h9 += (t7 >>> 5) | (1 << 11); // the 2^128 bit of every full block
      let c = 0;
      let d0 = h0 * r0 + h1 * s9 + h2 * s8 + h3 * s7 + h4 * s6;
      c = d0 >>> 13;
      d0 &= 0x1fff;
      d0 += h5 * s5 + h6 * s4 + h7 * s3 + h8 * s2 + h9 * s1;
      c += d0 >>> 13;
      d0 &= 0x1fff;
      let d1 = c + h0 * r1 + h1 * r0 + h2 * s9 + h3 * s8 + h4 * s7;
      c = d1 >>> 13;
      d1 &= 0x1fff;
      d1 += h5 * s6 + h6 * s5 + h7 * s4 + h8 * s3 + h9 * s2;
      c += d1 >>> 13;
      d1 &= 0x1fff;
      let d2 = c + h0 * r2 + h1 * r1 + h2 * r0 + h3 * s9 + h4 * s8;
      c = d2 >>> 13;
      d2 &= 0x1fff;
      d2 += h5 * s7 + h6 * s6 + h7 * s5 + h8 * s4 + h9 * s3;
      c += d2 >>> 13;
      d2 &= 0x1fff;
      let d3 = c + h0 * r3 + h1 * r2 + h2 * r1 + h3 * r0 + h4 * s9;
      c = d3 >>> 13;
      d3 &= 0x1fff;
      d3 += h5 * s8 + h6 * s7 + h7 * s6 + h8 * s5 + h9 * s4;
      c += d3 >>> 13;
      d3 &= 0x1fff;
      let d4 = c + h0 * r4 + h1 * r3 + h2 * r2 + h3 * r1 + h4 * r0;
      c = d4 >>> 13;
      d4 &= 0x1fff;
      d4 += h5 * s9 + h6 * s8 + h7 * s7 + h8 * s6 + h9 * s5;
      c += d4 >>> 13;
      d4 &= 0x1fff;
      let d5 = c + h0 * r5 + h1 * r4 + h2 * r3 + h3 * r2 + h4 * r1;
      c = d5 >>> 13;
      d5 &= 0x1fff;
      d5 += h5 * r0 + h6 * s9 + h7 * s8 + h8 * s7 + h9 * s6;
      c += d5 >>> 13;
      d5 &= 0x1fff;
      let d6 = c + h0 * r6 + h1 * r5 + h2 * r4 + h3 * r3 + h4 * r2;
      c = d6 >>> 13;
      d6 &= 0x1fff;
      d6 += h5 * r1 + h6 * r0 + h7 * s9 + h8 * s8 + h9 * s7;
      c += d6 >>> 13;
      d6 &= 0x1fff;
      let d7 = c + h0 * r7 + h1 * r6 + h2 * r5 + h3 * r4 + h4 * r3;
      c = d7 >>> 13;
      d7 &= 0x1fff;
      d7 += h5 * r2 + h6 * r1 + h7 * r0 + h8 * s9 + h9 * s8;
      c += d7 >>> 13;
      d7 &= 0x1fff;
      let d8 = c + h0 * r8 + h1 * r7 + h2 * r6 + h3 * r5 + h4 * r4;
      c = d8 >>> 13;
      d8 &= 0x1fff;
      d8 += h5 * r3 + h6 * r2 + h7 * r1 + h8 * r0 + h9 * s9;
      c += d8 >>> 13;
      d8 &= 0x1fff;
      let d9 = c + h0 * r9 + h1 * r8 + h2 * r7 + h3 * r6 + h4 * r5;
      c = d9 >>> 13;
      d9 &= 0x1fff;
      d9 += h5 * r4 + h6 * r3 + h7 * r2 + h8 * r1 + h9 * r0;
      c += d9 >>> 13;
      d9 &= 0x1fff;
      c = ((c << 2) + c) | 0;
      c = (c + d0) | 0;
      d0 = c & 0x1fff;
      c = c >>> 13;
      d1 += c;
      h0 = d0;
      h1 = d1;
      h2 = d2;
      h3 = d3;
      h4 = d4;
      h5 = d5;
      h6 = d6;
      h7 = d7;
      h8 = d8;
      h9 = d9;
    }
    h[0] = h0;
    h[1] = h1;
    h[2] = h2;
    h[3] = h3;
    h[4] = h4;
    h[5] = h5;
    h[6] = h6;
    h[7] = h7;
    h[8] = h8;
    h[9] = h9;
  }

  /** Writes the 16-byte tag: full reduction mod 2^130 - 5, then + pad mod 2^128. */
  finish(out: Uint8Array, offset: number): void {
    const h = this.h;
    const g = this.g;
    let c = h[1]! >>> 13;
    h[1]! &= 0x1fff;
    for (let i = 2; i < 10; i++) {
      h[i]! += c;
      c = h[i]! >>> 13;
      h[i]! &= 0x1fff;
    }
    h[0]! += c * 5;
    c = h[0]! >>> 13;
    h[0]! &= 0x1fff;
    h[1]! += c;
    c = h[1]! >>> 13;
    h[1]! &= 0x1fff;
    h[2]! += c;

    g[0] = h[0]! + 5;
    c = g[0]! >>> 13;
    g[0]! &= 0x1fff;
    for (let i = 1; i < 10; i++) {
      g[i] = h[i]! + c;
      c = g[i]! >>> 13;
      g[i]! &= 0x1fff;
    }
    g[9]! -= 1 << 13;

    // h >= p ⇔ the carry out of g is 1: select g, else h, without branching on secrets.
    let mask = (c ^ 1) - 1;
    for (let i = 0; i < 10; i++) g[i]! &= mask;
    mask = ~mask;
    for (let i = 0; i < 10; i++) h[i] = (h[i]! & mask) | g[i]!;

    h[0] = (h[0]! | (h[1]! << 13)) & 0xffff;
    h[1] = ((h[1]! >>> 3) | (h[2]! << 10)) & 0xffff;
    h[2] = ((h[2]! >>> 6) | (h[3]! << 7)) & 0xffff;
    h[3] = ((h[3]! >>> 9) | (h[4]! << 4)) & 0xffff;
    h[4] = ((h[4]! >>> 12) | (h[5]! << 1) | (h[6]! << 14)) & 0xffff;
    h[5] = ((h[6]! >>> 2) | (h[7]! << 11)) & 0xffff;
    h[6] = ((h[7]! >>> 5) | (h[8]! << 8)) & 0xffff;
    h[7] = ((h[8]! >>> 8) | (h[9]! << 5)) & 0xffff;

    let f = h[0]! + this.pad[0]!;
    h[0] = f & 0xffff;
    for (let i = 1; i < 8; i++) {
      f = (((h[i]! + this.pad[i]!) | 0) + (f >>> 16)) | 0;
      h[i] = f & 0xffff;
    }
    for (let i = 0; i < 8; i++) {
      out[offset + 2 * i] = h[i]!;
      out[offset + 2 * i + 1] = h[i]! >>> 8;
    }
  }
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
