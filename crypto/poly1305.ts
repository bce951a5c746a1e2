// Poly1305 (RFC 8439 §2.5) with 13-bit limbs in 16-bit storage (poly1305-donna-16, as @noble/ciphers and
// @stablelib/poly1305), for the ChaCha20-Poly1305 of aead.ts. It only ever sees whole 16-byte blocks: the AEAD
// construction pads associated data and ciphertext with zeros to a multiple of 16 and appends a 16-byte
// length block, so no partial-block rule is needed.

const readU16 = (b: Uint8Array, o: number): number => b[o]! | (b[o + 1]! << 8);

/** Poly1305 over whole blocks with reusable state (one per cipher object). */
export class Poly1305 {
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
