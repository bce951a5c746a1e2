// Poly1305 (RFC 8439 §2.5) for the ChaCha20-Poly1305 of aead.ts, in six 22-bit limbs held as doubles. JavaScript
// has no 64-bit integer multiply, but a double holds integers up to 2^53 exactly: with 22-bit limbs every
// product is below 2^49.4 and the twelve of a two-block step sum below 2^52.3, so a block costs 36
// multiplications (13-bit limbs in 16-bit storage, as poly1305-donna-16 and @stablelib do it, need 100) and
// half a carry. It only ever sees whole 16-byte blocks:
// the AEAD construction pads associated data and ciphertext with zeros to a multiple of 16 and appends a
// 16-byte length block, so no partial-block rule is needed.
//
// Limb i holds bits 22i .. 22i+21 of the accumulator (limb 5 holds bits 110 .. 131). A product limb at or
// past 2^132 wraps around as 2^132 ≡ 4 · 5 = 20 (mod 2^130 - 5), hence the 20·r limbs.

import { WordView, readWord } from './words.js';

const LIMB = 4194304; // 2^22
const INV_LIMB = 1 / LIMB; // exact: scaling by a power of two
const MASK = LIMB - 1;
/** Adding and subtracting 1.5 · 2^52 rounds a double below 2^51 in magnitude to the nearest integer. */
const ROUND = 6755399441055744;
/** Unaligned input is absorbed in chunks of this many bytes (a multiple of 32: whole block pairs). */
const GATHERED_BYTES = 256;

/** Poly1305 over whole blocks with reusable state (one per cipher object). */
export class Poly1305 {
  /** r0..r5, 20·r1 .. 20·r5, then the same for r² mod p (R0..R5 at 11..16, 20·R1 .. 20·R5 at 17..21). */
  private readonly r = new Float64Array(22);
  private readonly h = new Float64Array(6);
  /** s, the second half of the one-time key, as four 32-bit words. */
  private readonly pad = new Float64Array(4);

  /** Unaligned input, gathered into words (GATHERED_BYTES at a time). */
  private readonly gathered = new Int32Array(GATHERED_BYTES / 4);

  /** `wordView` may be shared with the cipher that reads the same packets (aead.ts). */
  constructor(private readonly wordView = new WordView()) {}

  /** Overwrites the one-time key and the running state (the cipher's wipe). */
  wipe(): void {
    this.r.fill(0);
    this.h.fill(0);
    this.pad.fill(0);
    this.gathered.fill(0);
  }

  /** Starts a MAC with the one-time key (r is clamped as RFC 8439 §2.5 requires). */
  init(key: Uint8Array): void {
    const t0 = readWord(key, 0) & 0x0fffffff;
    const t1 = readWord(key, 4) & 0x0ffffffc;
    const t2 = readWord(key, 8) & 0x0ffffffc;
    const t3 = readWord(key, 12) & 0x0ffffffc;
    const r = this.r;
    const r0 = (r[0] = t0 & MASK),
      r1 = (r[1] = ((t0 >>> 22) | (t1 << 10)) & MASK),
      r2 = (r[2] = ((t1 >>> 12) | (t2 << 20)) & MASK),
      r3 = (r[3] = (t2 >>> 2) & MASK),
      r4 = (r[4] = ((t2 >>> 24) | (t3 << 8)) & MASK),
      r5 = (r[5] = t3 >>> 14); // clamping leaves r below 2^124: 14 bits
    const s1 = (r[6] = 20 * r1),
      s2 = (r[7] = 20 * r2),
      s3 = (r[8] = 20 * r3),
      s4 = (r[9] = 20 * r4),
      s5 = (r[10] = 20 * r5);
    // r² for two blocks at a time: schoolbook with the 20·r wrap (each sum below 2^51), then two carry passes
    // from limb 0 to 5, the last limb's carry wrapping into limb 0 as 20·c. Written out: this runs per packet.
    let q0 = r0 * r0 + r1 * s5 + r2 * s4 + r3 * s3 + r4 * s2 + r5 * s1;
    let q1 = r0 * r1 + r1 * r0 + r2 * s5 + r3 * s4 + r4 * s3 + r5 * s2;
    let q2 = r0 * r2 + r1 * r1 + r2 * r0 + r3 * s5 + r4 * s4 + r5 * s3;
    let q3 = r0 * r3 + r1 * r2 + r2 * r1 + r3 * r0 + r4 * s5 + r5 * s4;
    let q4 = r0 * r4 + r1 * r3 + r2 * r2 + r3 * r1 + r4 * r0 + r5 * s5;
    let q5 = r0 * r5 + r1 * r4 + r2 * r3 + r3 * r2 + r4 * r1 + r5 * r0;
    for (let pass = 0; pass < 2; pass++) {
      let c = Math.floor(q0 * INV_LIMB);
      q0 -= c * LIMB;
      q1 += c;
      c = Math.floor(q1 * INV_LIMB);
      q1 -= c * LIMB;
      q2 += c;
      c = Math.floor(q2 * INV_LIMB);
      q2 -= c * LIMB;
      q3 += c;
      c = Math.floor(q3 * INV_LIMB);
      q3 -= c * LIMB;
      q4 += c;
      c = Math.floor(q4 * INV_LIMB);
      q4 -= c * LIMB;
      q5 += c;
      c = Math.floor(q5 * INV_LIMB);
      q5 -= c * LIMB;
      q0 += 20 * c;
    }
    r[11] = q0;
    r[12] = q1;
    r[13] = q2;
    r[14] = q3;
    r[15] = q4;
    r[16] = q5;
    r[17] = 20 * q1;
    r[18] = 20 * q2;
    r[19] = 20 * q3;
    r[20] = 20 * q4;
    r[21] = 20 * q5;
    for (let i = 0; i < 4; i++) this.pad[i] = readWord(key, 16 + 4 * i) >>> 0;
    const h = this.h;
    h[0] = h[1] = h[2] = h[3] = h[4] = h[5] = 0;
  }

  /**
   * Absorbs `length` bytes (a multiple of 16) of `data` from `offset`. Aligned packets are read a word at a
   * time where they lie; anything else (single blocks: padding, lengths) is gathered into words first, a
   * chunk at a time, so the loop reads words only (a per-word choice between the two cost it about 10%).
   */
  blocks(data: Uint8Array, offset: number, length: number): void {
    const words = offset % 4 === 0 && length > 16 ? this.wordView.of(data) : undefined;
    if (words !== undefined) {
      this.absorb(words, this.wordView.base + (offset >>> 2), length);
      return;
    }
    const gathered = this.gathered;
    for (let done = 0; done < length; done += GATHERED_BYTES) {
      const chunk = Math.min(GATHERED_BYTES, length - done);
      for (let k = 0; k < chunk; k += 4) gathered[k >>> 2] = readWord(data, offset + done + k);
      this.absorb(gathered, 0, chunk);
    }
  }

  /**
   * Absorbs `length` bytes (a multiple of 16) held as 32-bit words (the little-endian words of the message)
   * from words[first], two blocks a step where it can: h ← (h + m1)·r² + m2·r, the same as two single steps
   * but with one carry instead of two and twice the independent multiplications. A last odd block goes alone:
   * h ← (h + m)·r.
   */
  absorb(words: Int32Array, first: number, length: number): void {
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
    const R0 = r[11]!,
      R1 = r[12]!,
      R2 = r[13]!,
      R3 = r[14]!,
      R4 = r[15]!,
      R5 = r[16]!;
    const S1 = r[17]!,
      S2 = r[18]!,
      S3 = r[19]!,
      S4 = r[20]!,
      S5 = r[21]!;
    const h = this.h;
    let h0 = h[0]!,
      h1 = h[1]!,
      h2 = h[2]!,
      h3 = h[3]!,
      h4 = h[4]!,
      h5 = h[5]!;
    const end = first + (length >>> 2);
    for (let o = first; o < end;) {
      // x = h + m1 and y = m2 for a pair; x = 0 and y = h + m for a last odd block.
      let x0 = 0,
        x1 = 0,
        x2 = 0,
        x3 = 0,
        x4 = 0,
        x5 = 0;
      let y0 = h0,
        y1 = h1,
        y2 = h2,
        y3 = h3,
        y4 = h4,
        y5 = h5;
      if (end - o >= 8) {
        const w0 = words[o]!,
          w1 = words[o + 1]!,
          w2 = words[o + 2]!,
          w3 = words[o + 3]!;
        x0 = y0 + (w0 & MASK);
        x1 = y1 + (((w0 >>> 22) | (w1 << 10)) & MASK);
        x2 = y2 + (((w1 >>> 12) | (w2 << 20)) & MASK);
        x3 = y3 + ((w2 >>> 2) & MASK);
        x4 = y4 + (((w2 >>> 24) | (w3 << 8)) & MASK);
        x5 = y5 + ((w3 >>> 14) | (1 << 18)); // and the 2^128 bit of every full block
        y0 = y1 = y2 = y3 = y4 = y5 = 0;
        o += 4;
      }
      const w0 = words[o]!,
        w1 = words[o + 1]!,
        w2 = words[o + 2]!,
        w3 = words[o + 3]!;
      y0 += w0 & MASK;
      y1 += ((w0 >>> 22) | (w1 << 10)) & MASK;
      y2 += ((w1 >>> 12) | (w2 << 20)) & MASK;
      y3 += (w2 >>> 2) & MASK;
      y4 += ((w2 >>> 24) | (w3 << 8)) & MASK;
      y5 += (w3 >>> 14) | (1 << 18);
      o += 4;
      // x·r² + y·r: x and y limbs below 2^23 + 2^14, r and r² limbs below 2^22 + 2^14 (their 20· below
      // 2^26.4); twelve terms, at most six of them at 2^49.4: below 2^52.3, exact in a double.
      let d0 =
        x0 * R0 +
        x1 * S5 +
        x2 * S4 +
        x3 * S3 +
        x4 * S2 +
        x5 * S1 +
        (y0 * r0 + y1 * s5 + y2 * s4 + y3 * s3 + y4 * s2 + y5 * s1);
      let d1 =
        x0 * R1 +
        x1 * R0 +
        x2 * S5 +
        x3 * S4 +
        x4 * S3 +
        x5 * S2 +
        (y0 * r1 + y1 * r0 + y2 * s5 + y3 * s4 + y4 * s3 + y5 * s2);
      let d2 =
        x0 * R2 +
        x1 * R1 +
        x2 * R0 +
        x3 * S5 +
        x4 * S4 +
        x5 * S3 +
        (y0 * r2 + y1 * r1 + y2 * r0 + y3 * s5 + y4 * s4 + y5 * s3);
      let d3 =
        x0 * R3 +
        x1 * R2 +
        x2 * R1 +
        x3 * R0 +
        x4 * S5 +
        x5 * S4 +
        (y0 * r3 + y1 * r2 + y2 * r1 + y3 * r0 + y4 * s5 + y5 * s4);
      let d4 =
        x0 * R4 +
        x1 * R3 +
        x2 * R2 +
        x3 * R1 +
        x4 * R0 +
        x5 * S5 +
        (y0 * r4 + y1 * r3 + y2 * r2 + y3 * r1 + y4 * r0 + y5 * s5);
      let d5 =
        x0 * R5 +
        x1 * R4 +
        x2 * R3 +
        x3 * R2 +
        x4 * R1 +
        x5 * R0 +
        (y0 * r5 + y1 * r4 + y2 * r3 + y3 * r2 + y4 * r1 + y5 * r0);
      // Carry twice, every limb at once: a chain from limb 0 to 5 would be seven dependent steps per block.
      // Each carry rounds to nearest (adding and subtracting 1.5 · 2^52: cheaper than Math.floor), so limbs
      // are signed. The first pass leaves them below 2^21 + 2^31 in magnitude (d5 has no 20·r term: below
      // 2^48.6, so 20 · its carry is below 2^31 too), the second below 2^21 + 2^14.
      let c0 = d0 * INV_LIMB + ROUND - ROUND,
        c1 = d1 * INV_LIMB + ROUND - ROUND,
        c2 = d2 * INV_LIMB + ROUND - ROUND,
        c3 = d3 * INV_LIMB + ROUND - ROUND,
        c4 = d4 * INV_LIMB + ROUND - ROUND,
        c5 = d5 * INV_LIMB + ROUND - ROUND;
      d0 = d0 - c0 * LIMB + c5 * 20;
      d1 = d1 - c1 * LIMB + c0;
      d2 = d2 - c2 * LIMB + c1;
      d3 = d3 - c3 * LIMB + c2;
      d4 = d4 - c4 * LIMB + c3;
      d5 = d5 - c5 * LIMB + c4;
      c0 = d0 * INV_LIMB + ROUND - ROUND;
      c1 = d1 * INV_LIMB + ROUND - ROUND;
      c2 = d2 * INV_LIMB + ROUND - ROUND;
      c3 = d3 * INV_LIMB + ROUND - ROUND;
      c4 = d4 * INV_LIMB + ROUND - ROUND;
      c5 = d5 * INV_LIMB + ROUND - ROUND;
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
    // Limbs are integers below 2^22 in magnitude here, possibly negative: 32-bit integer operations from
    // now on, whose arithmetic shifts carry signed limbs as floor division does.
    let h0 = h[0]! | 0,
      h1 = h[1]! | 0,
      h2 = h[2]! | 0,
      h3 = h[3]! | 0,
      h4 = h[4]! | 0,
      h5 = h[5]! | 0;
    // Carry passes with bits 130 and up wrapped as · 5: the first brings every limb into range but limb 0,
    // which the wrap can push out of it again, the next two settle that: 0 ≤ h < 2^130, every limb in range.
    for (let pass = 0; pass < 3; pass++) {
      h1 += h0 >> 22;
      h0 &= MASK;
      h2 += h1 >> 22;
      h1 &= MASK;
      h3 += h2 >> 22;
      h2 &= MASK;
      h4 += h3 >> 22;
      h3 &= MASK;
      h5 += h4 >> 22;
      h4 &= MASK;
      h0 += 5 * (h5 >> 20);
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
  const low = value >>> 0; // ToUint32 is the value mod 2^32; a % on doubles is a call into C
  out[offset] = low;
  out[offset + 1] = low >>> 8;
  out[offset + 2] = low >>> 16;
  out[offset + 3] = low >>> 24;
}
