// Poly1305 (RFC 8439 §2.5) for the ChaCha20-Poly1305 of aead.ts, in six 22-bit limbs held as doubles. JavaScript
// has no 64-bit integer multiply, but a double holds integers up to 2^53 exactly: with 22-bit limbs every
// product is below 2^49.4 and a sum of six below 2^52, so one block costs 36 multiplications (13-bit limbs in
// 16-bit storage, as poly1305-donna-16 and @stablelib do it, need 100). It only ever sees whole 16-byte blocks:
// the AEAD construction pads associated data and ciphertext with zeros to a multiple of 16 and appends a
// 16-byte length block, so no partial-block rule is needed.
//
// Limb i holds bits 22i .. 22i+21 of the accumulator (limb 5 holds bits 110 .. 131). A product limb at or
// past 2^132 wraps around as 2^132 ≡ 4 · 5 = 20 (mod 2^130 - 5), hence the 20·r limbs.

import { WordView, readWord } from './words.js';

const LIMB = 4194304; // 2^22
const INV_LIMB = 1 / LIMB; // exact: scaling by a power of two
const MASK = LIMB - 1;

/** Poly1305 over whole blocks with reusable state (one per cipher object). */
export class Poly1305 {
  /** r0..r5, then 20·r1 .. 20·r5 at indices 6..10. */
  private readonly r = new Float64Array(11);
  private readonly h = new Float64Array(6);
  /** s, the second half of the one-time key, as four 32-bit words. */
  private readonly pad = new Float64Array(4);
  private readonly wordView = new WordView();

  /** Starts a MAC with the one-time key (r is clamped as RFC 8439 §2.5 requires). */
  init(key: Uint8Array): void {
    const t0 = readWord(key, 0) & 0x0fffffff;
    const t1 = readWord(key, 4) & 0x0ffffffc;
    const t2 = readWord(key, 8) & 0x0ffffffc;
    const t3 = readWord(key, 12) & 0x0ffffffc;
    const r = this.r;
    r[0] = t0 & MASK;
    r[1] = ((t0 >>> 22) | (t1 << 10)) & MASK;
    r[2] = ((t1 >>> 12) | (t2 << 20)) & MASK;
    r[3] = (t2 >>> 2) & MASK;
    r[4] = ((t2 >>> 24) | (t3 << 8)) & MASK;
    r[5] = t3 >>> 14; // clamping leaves r below 2^124: 14 bits
    for (let i = 1; i < 6; i++) r[5 + i] = 20 * r[i]!;
    for (let i = 0; i < 4; i++) this.pad[i] = readWord(key, 16 + 4 * i) >>> 0;
    this.h.fill(0);
  }

  /** Absorbs `length` bytes (a multiple of 16) of `data` from `offset`. */
  blocks(data: Uint8Array, offset: number, length: number): void {
    const r = this.r;
    const r0 = r[0]!,
      r1 = r[1]!,
      r2 = r[2]!,
      r3 = r[3]!,
      r4 = r[4]!,
      r5 = r[5]!;
    const s1 = r[6]!,
      s2 = r[7]!,
      s3 = r[8]!,
      s4 = r[9]!,
      s5 = r[10]!;
    const h = this.h;
    let h0 = h[0]!,
      h1 = h[1]!,
      h2 = h[2]!,
      h3 = h[3]!,
      h4 = h[4]!,
      h5 = h[5]!;
    // Aligned packets are read a word at a time; single blocks (padding, lengths) bytewise, so the word view
    // keeps following the packet buffer.
    const words = offset % 4 === 0 && length > 16 ? this.wordView.of(data) : undefined;
    const first = (data.byteOffset + offset) >>> 2;
    for (let o = 0; o < length; o += 16) {
      let w0, w1, w2, w3;
      if (words !== undefined) {
        const i = first + (o >>> 2);
        w0 = words[i]!;
        w1 = words[i + 1]!;
        w2 = words[i + 2]!;
        w3 = words[i + 3]!;
      } else {
        w0 = readWord(data, offset + o);
        w1 = readWord(data, offset + o + 4);
        w2 = readWord(data, offset + o + 8);
        w3 = readWord(data, offset + o + 12);
      }
      h0 += w0 & MASK;
      h1 += ((w0 >>> 22) | (w1 << 10)) & MASK;
      h2 += ((w1 >>> 12) | (w2 << 20)) & MASK;
      h3 += (w2 >>> 2) & MASK;
      h4 += ((w2 >>> 24) | (w3 << 8)) & MASK;
      h5 += (w3 >>> 14) | (1 << 18); // and the 2^128 bit of every full block
      // h · r: limbs below 2^23 times r limbs below 2^22 (20·r below 2^26.4), six terms: below 2^52.
      let d0 = h0 * r0 + h1 * s5 + h2 * s4 + h3 * s3 + h4 * s2 + h5 * s1;
      let d1 = h0 * r1 + h1 * r0 + h2 * s5 + h3 * s4 + h4 * s3 + h5 * s2;
      let d2 = h0 * r2 + h1 * r1 + h2 * r0 + h3 * s5 + h4 * s4 + h5 * s3;
      let d3 = h0 * r3 + h1 * r2 + h2 * r1 + h3 * r0 + h4 * s5 + h5 * s4;
      let d4 = h0 * r4 + h1 * r3 + h2 * r2 + h3 * r1 + h4 * r0 + h5 * s5;
      let d5 = h0 * r5 + h1 * r4 + h2 * r3 + h3 * r2 + h4 * r1 + h5 * r0;
      // Carry twice, every limb at once: a chain from limb 0 to 5 would be seven dependent steps per block.
      // The first pass leaves limbs below 2^22 + 2^30 (d5 has no 20·r term, so 20 · its carry is below
      // 2^30 too), the second below 2^22 + 2^14.
      let c0 = Math.floor(d0 * INV_LIMB),
        c1 = Math.floor(d1 * INV_LIMB),
        c2 = Math.floor(d2 * INV_LIMB),
        c3 = Math.floor(d3 * INV_LIMB),
        c4 = Math.floor(d4 * INV_LIMB),
        c5 = Math.floor(d5 * INV_LIMB);
      d0 = d0 - c0 * LIMB + c5 * 20;
      d1 = d1 - c1 * LIMB + c0;
      d2 = d2 - c2 * LIMB + c1;
      d3 = d3 - c3 * LIMB + c2;
      d4 = d4 - c4 * LIMB + c3;
      d5 = d5 - c5 * LIMB + c4;
      c0 = Math.floor(d0 * INV_LIMB);
      c1 = Math.floor(d1 * INV_LIMB);
      c2 = Math.floor(d2 * INV_LIMB);
      c3 = Math.floor(d3 * INV_LIMB);
      c4 = Math.floor(d4 * INV_LIMB);
      c5 = Math.floor(d5 * INV_LIMB);
      h0 = d0 - c0 * LIMB + c5 * 20;
      h1 = d1 - c1 * LIMB + c0;
      h2 = d2 - c2 * LIMB + c1;
      h3 = d3 - c3 * LIMB + c2;
      h4 = d4 - c4 * LIMB + c3;
      h5 = d5 - c5 * LIMB + c4;
    }
    h[0] = h0;
    h[1] = h1;
    h[2] = h2;
    h[3] = h3;
    h[4] = h4;
    h[5] = h5;
  }

  /** Writes the 16-byte tag: full reduction mod 2^130 - 5, then + s mod 2^128. */
  finish(out: Uint8Array, offset: number): void {
    const h = this.h;
    // Limbs are integers below 2^23 here: 32-bit integer operations from now on.
    let h0 = h[0]! | 0,
      h1 = h[1]! | 0,
      h2 = h[2]! | 0,
      h3 = h[3]! | 0,
      h4 = h[4]! | 0,
      h5 = h[5]! | 0;
    // Two carry passes with bits 130 and up wrapped as · 5: h < 2^130 with every limb in range.
    for (let pass = 0; pass < 2; pass++) {
      h1 += h0 >>> 22;
      h0 &= MASK;
      h2 += h1 >>> 22;
      h1 &= MASK;
      h3 += h2 >>> 22;
      h2 &= MASK;
      h4 += h3 >>> 22;
      h3 &= MASK;
      h5 += h4 >>> 22;
      h4 &= MASK;
      h0 += 5 * (h5 >>> 20);
      h5 &= 0xfffff;
    }
    // g = h + 5 - 2^130: h ≥ p exactly when g does not borrow (bit 130 of h + 5 is set).
    let g0 = h0 + 5;
    let g1 = h1 + (g0 >>> 22);
    g0 &= MASK;
    let g2 = h2 + (g1 >>> 22);
    g1 &= MASK;
    let g3 = h3 + (g2 >>> 22);
    g2 &= MASK;
    let g4 = h4 + (g3 >>> 22);
    g3 &= MASK;
    let g5 = h5 + (g4 >>> 22);
    g4 &= MASK;
    const useG = -(g5 >>> 20); // all ones when h ≥ p, without branching on secrets
    g5 &= 0xfffff;
    const useH = ~useG;
    h0 = (h0 & useH) | (g0 & useG);
    h1 = (h1 & useH) | (g1 & useG);
    h2 = (h2 & useH) | (g2 & useG);
    h3 = (h3 & useH) | (g3 & useG);
    h4 = (h4 & useH) | (g4 & useG);
    h5 = (h5 & useH) | (g5 & useG);
    // The low 128 bits as four words, plus s, carried through doubles.
    const pad = this.pad;
    let f = ((h0 | (h1 << 22)) >>> 0) + pad[0]!;
    writeU32(out, offset, f);
    f = (((h1 >>> 10) | (h2 << 12)) >>> 0) + pad[1]! + Math.floor(f / 4294967296);
    writeU32(out, offset + 4, f);
    f = (((h2 >>> 20) | (h3 << 2) | (h4 << 24)) >>> 0) + pad[2]! + Math.floor(f / 4294967296);
    writeU32(out, offset + 8, f);
    f = (((h4 >>> 8) | (h5 << 14)) >>> 0) + pad[3]! + Math.floor(f / 4294967296);
    writeU32(out, offset + 12, f);
  }
}

/** The low 32 bits of a non-negative integer below 2^53, little-endian. */
function writeU32(out: Uint8Array, offset: number, value: number): void {
  const low = value % 4294967296;
  out[offset] = low;
  out[offset + 1] = low >>> 8;
  out[offset + 2] = low >>> 16;
  out[offset + 3] = low >>> 24;
}
