// X25519 (RFC 7748) for the handshake: field arithmetic mod p = 2^255 - 19 in thirteen limbs of 19 or 20 bits
// (limb i holds bits ⌈255·i/13⌉ up to the next one) held as doubles. A double holds integers up to 2^53
// exactly; limbs of inputs stay below 2^20.6 in magnitude (sums and differences of two carried elements), so
// a product is below 2^41.2, and a row of a multiplication, whose coefficients (1, 2, 19 or 38: a limb
// product that lands half a bit above its limb's position counts twice, one past 2^255 wraps as 19) add up
// to at most 457, stays below 2^50.1. A multiplication costs 169 products, a squaring 91 (tweetnacl's radix
// 2^16 needs 256 for either). Limbs are signed: a carry rounds to the nearest multiple of the limb's unit
// (cheaper than Math.floor: measured 20% faster overall), and differences are left negative. The scalar
// ladder is the constant-time Montgomery ladder of RFC 7748 §5 with an arithmetic conditional swap.
//
// test/crypto/primitives.test.ts checks it against RFC 7748's vectors, every Wycheproof x25519 vector and
// tweetnacl; scripts/bench-crypto measures it beside tweetnacl in the same run.

const LIMBS = 13;
/** Bit position of each limb, and of the end (255). */
const POSITION = [0, 20, 40, 59, 79, 99, 118, 138, 157, 177, 197, 216, 236, 255];

type Element = Float64Array;
const element = (): Element => new Float64Array(LIMBS);

const TWO_19 = 524288;
const TWO_20 = 1048576;
const INV_19 = 1 / TWO_19;
const INV_20 = 1 / TWO_20;
/** Adding and subtracting 1.5 · 2^52 rounds a double below 2^51 in magnitude to the nearest integer. */
const ROUND = 6755399441055744;

/**
 * Carries o in place, every limb at once, twice, each carry rounded to nearest: from rows below 2^51.3 in
 * magnitude the first pass leaves limbs below 2^19 + 19·2^32.3, the second below 2^19.6.
 */
function carry(o: Element): void {
  const d0 = o[0]!;
  const d1 = o[1]!;
  const d2 = o[2]!;
  const d3 = o[3]!;
  const d4 = o[4]!;
  const d5 = o[5]!;
  const d6 = o[6]!;
  const d7 = o[7]!;
  const d8 = o[8]!;
  const d9 = o[9]!;
  const d10 = o[10]!;
  const d11 = o[11]!;
  const d12 = o[12]!;
  let c0 = d0 * INV_20 + ROUND - ROUND;
  let c1 = d1 * INV_20 + ROUND - ROUND;
  let c2 = d2 * INV_19 + ROUND - ROUND;
  let c3 = d3 * INV_20 + ROUND - ROUND;
  let c4 = d4 * INV_20 + ROUND - ROUND;
  let c5 = d5 * INV_19 + ROUND - ROUND;
  let c6 = d6 * INV_20 + ROUND - ROUND;
  let c7 = d7 * INV_19 + ROUND - ROUND;
  let c8 = d8 * INV_20 + ROUND - ROUND;
  let c9 = d9 * INV_20 + ROUND - ROUND;
  let c10 = d10 * INV_19 + ROUND - ROUND;
  let c11 = d11 * INV_20 + ROUND - ROUND;
  let c12 = d12 * INV_19 + ROUND - ROUND;
  const e0 = d0 - c0 * TWO_20 + 19 * c12;
  const e1 = d1 - c1 * TWO_20 + c0;
  const e2 = d2 - c2 * TWO_19 + c1;
  const e3 = d3 - c3 * TWO_20 + c2;
  const e4 = d4 - c4 * TWO_20 + c3;
  const e5 = d5 - c5 * TWO_19 + c4;
  const e6 = d6 - c6 * TWO_20 + c5;
  const e7 = d7 - c7 * TWO_19 + c6;
  const e8 = d8 - c8 * TWO_20 + c7;
  const e9 = d9 - c9 * TWO_20 + c8;
  const e10 = d10 - c10 * TWO_19 + c9;
  const e11 = d11 - c11 * TWO_20 + c10;
  const e12 = d12 - c12 * TWO_19 + c11;
  c0 = e0 * INV_20 + ROUND - ROUND;
  c1 = e1 * INV_20 + ROUND - ROUND;
  c2 = e2 * INV_19 + ROUND - ROUND;
  c3 = e3 * INV_20 + ROUND - ROUND;
  c4 = e4 * INV_20 + ROUND - ROUND;
  c5 = e5 * INV_19 + ROUND - ROUND;
  c6 = e6 * INV_20 + ROUND - ROUND;
  c7 = e7 * INV_19 + ROUND - ROUND;
  c8 = e8 * INV_20 + ROUND - ROUND;
  c9 = e9 * INV_20 + ROUND - ROUND;
  c10 = e10 * INV_19 + ROUND - ROUND;
  c11 = e11 * INV_20 + ROUND - ROUND;
  c12 = e12 * INV_19 + ROUND - ROUND;
  o[0] = e0 - c0 * TWO_20 + 19 * c12;
  o[1] = e1 - c1 * TWO_20 + c0;
  o[2] = e2 - c2 * TWO_19 + c1;
  o[3] = e3 - c3 * TWO_20 + c2;
  o[4] = e4 - c4 * TWO_20 + c3;
  o[5] = e5 - c5 * TWO_19 + c4;
  o[6] = e6 - c6 * TWO_20 + c5;
  o[7] = e7 - c7 * TWO_19 + c6;
  o[8] = e8 - c8 * TWO_20 + c7;
  o[9] = e9 - c9 * TWO_20 + c8;
  o[10] = e10 - c10 * TWO_19 + c9;
  o[11] = e11 - c11 * TWO_20 + c10;
  o[12] = e12 - c12 * TWO_19 + c11;
}

/** o = a·b mod p (o may be a or b). */
function multiply(o: Element, a: Element, b: Element): void {
  const a0 = a[0]!;
  const a1 = a[1]!;
  const a2 = a[2]!;
  const a3 = a[3]!;
  const a4 = a[4]!;
  const a5 = a[5]!;
  const a6 = a[6]!;
  const a7 = a[7]!;
  const a8 = a[8]!;
  const a9 = a[9]!;
  const a10 = a[10]!;
  const a11 = a[11]!;
  const a12 = a[12]!;
  const b0 = b[0]!;
  const b1 = b[1]!;
  const b2 = b[2]!;
  const b3 = b[3]!;
  const b4 = b[4]!;
  const b5 = b[5]!;
  const b6 = b[6]!;
  const b7 = b[7]!;
  const b8 = b[8]!;
  const b9 = b[9]!;
  const b10 = b[10]!;
  const b11 = b[11]!;
  const b12 = b[12]!;
  const b1_2 = 2 * b1;
  const b1_38 = 38 * b1;
  const b2_2 = 2 * b2;
  const b2_38 = 38 * b2;
  const b3_2 = 2 * b3;
  const b3_19 = 19 * b3;
  const b3_38 = 38 * b3;
  const b4_2 = 2 * b4;
  const b4_19 = 19 * b4;
  const b4_38 = 38 * b4;
  const b5_2 = 2 * b5;
  const b5_38 = 38 * b5;
  const b6_2 = 2 * b6;
  const b6_19 = 19 * b6;
  const b6_38 = 38 * b6;
  const b7_2 = 2 * b7;
  const b7_19 = 19 * b7;
  const b7_38 = 38 * b7;
  const b8_19 = 19 * b8;
  const b8_38 = 38 * b8;
  const b9_2 = 2 * b9;
  const b9_19 = 19 * b9;
  const b9_38 = 38 * b9;
  const b10_2 = 2 * b10;
  const b10_19 = 19 * b10;
  const b10_38 = 38 * b10;
  const b11_19 = 19 * b11;
  const b11_38 = 38 * b11;
  const b12_19 = 19 * b12;
  const b12_38 = 38 * b12;
  o[0] =
    a0 * b0 +
    a1 * b12_38 +
    a2 * b11_38 +
    a3 * b10_38 +
    a4 * b9_38 +
    a5 * b8_38 +
    a6 * b7_38 +
    a7 * b6_38 +
    a8 * b5_38 +
    a9 * b4_38 +
    a10 * b3_38 +
    a11 * b2_38 +
    a12 * b1_38;
  o[1] =
    a0 * b1 +
    a1 * b0 +
    a2 * b12_38 +
    a3 * b11_19 +
    a4 * b10_38 +
    a5 * b9_38 +
    a6 * b8_19 +
    a7 * b7_38 +
    a8 * b6_19 +
    a9 * b5_38 +
    a10 * b4_38 +
    a11 * b3_19 +
    a12 * b2_38;
  o[2] =
    a0 * b2 +
    a1 * b1 +
    a2 * b0 +
    a3 * b12_19 +
    a4 * b11_19 +
    a5 * b10_38 +
    a6 * b9_19 +
    a7 * b8_19 +
    a8 * b7_19 +
    a9 * b6_19 +
    a10 * b5_38 +
    a11 * b4_19 +
    a12 * b3_19;
  o[3] =
    a0 * b3 +
    a1 * b2_2 +
    a2 * b1_2 +
    a3 * b0 +
    a4 * b12_38 +
    a5 * b11_38 +
    a6 * b10_38 +
    a7 * b9_38 +
    a8 * b8_19 +
    a9 * b7_38 +
    a10 * b6_38 +
    a11 * b5_38 +
    a12 * b4_38;
  o[4] =
    a0 * b4 +
    a1 * b3 +
    a2 * b2_2 +
    a3 * b1 +
    a4 * b0 +
    a5 * b12_38 +
    a6 * b11_19 +
    a7 * b10_38 +
    a8 * b9_19 +
    a9 * b8_19 +
    a10 * b7_38 +
    a11 * b6_19 +
    a12 * b5_38;
  o[5] =
    a0 * b5 +
    a1 * b4 +
    a2 * b3 +
    a3 * b2 +
    a4 * b1 +
    a5 * b0 +
    a6 * b12_19 +
    a7 * b11_19 +
    a8 * b10_19 +
    a9 * b9_19 +
    a10 * b8_19 +
    a11 * b7_19 +
    a12 * b6_19;
  o[6] =
    a0 * b6 +
    a1 * b5_2 +
    a2 * b4_2 +
    a3 * b3 +
    a4 * b2_2 +
    a5 * b1_2 +
    a6 * b0 +
    a7 * b12_38 +
    a8 * b11_19 +
    a9 * b10_38 +
    a10 * b9_38 +
    a11 * b8_19 +
    a12 * b7_38;
  o[7] =
    a0 * b7 +
    a1 * b6 +
    a2 * b5_2 +
    a3 * b4 +
    a4 * b3 +
    a5 * b2_2 +
    a6 * b1 +
    a7 * b0 +
    a8 * b12_19 +
    a9 * b11_19 +
    a10 * b10_38 +
    a11 * b9_19 +
    a12 * b8_19;
  o[8] =
    a0 * b8 +
    a1 * b7_2 +
    a2 * b6_2 +
    a3 * b5_2 +
    a4 * b4_2 +
    a5 * b3_2 +
    a6 * b2_2 +
    a7 * b1_2 +
    a8 * b0 +
    a9 * b12_38 +
    a10 * b11_38 +
    a11 * b10_38 +
    a12 * b9_38;
  o[9] =
    a0 * b9 +
    a1 * b8 +
    a2 * b7_2 +
    a3 * b6 +
    a4 * b5_2 +
    a5 * b4_2 +
    a6 * b3 +
    a7 * b2_2 +
    a8 * b1 +
    a9 * b0 +
    a10 * b12_38 +
    a11 * b11_19 +
    a12 * b10_38;
  o[10] =
    a0 * b10 +
    a1 * b9 +
    a2 * b8 +
    a3 * b7 +
    a4 * b6 +
    a5 * b5_2 +
    a6 * b4 +
    a7 * b3 +
    a8 * b2 +
    a9 * b1 +
    a10 * b0 +
    a11 * b12_19 +
    a12 * b11_19;
  o[11] =
    a0 * b11 +
    a1 * b10_2 +
    a2 * b9_2 +
    a3 * b8 +
    a4 * b7_2 +
    a5 * b6_2 +
    a6 * b5_2 +
    a7 * b4_2 +
    a8 * b3 +
    a9 * b2_2 +
    a10 * b1_2 +
    a11 * b0 +
    a12 * b12_38;
  o[12] =
    a0 * b12 +
    a1 * b11 +
    a2 * b10_2 +
    a3 * b9 +
    a4 * b8 +
    a5 * b7_2 +
    a6 * b6 +
    a7 * b5_2 +
    a8 * b4 +
    a9 * b3 +
    a10 * b2_2 +
    a11 * b1 +
    a12 * b0;
  carry(o);
}

/** o = a² mod p (o may be a): the products a_i·a_j and a_j·a_i are taken once, doubled. */
function square(o: Element, a: Element): void {
  const a0 = a[0]!;
  const a1 = a[1]!;
  const a2 = a[2]!;
  const a3 = a[3]!;
  const a4 = a[4]!;
  const a5 = a[5]!;
  const a6 = a[6]!;
  const a7 = a[7]!;
  const a8 = a[8]!;
  const a9 = a[9]!;
  const a10 = a[10]!;
  const a11 = a[11]!;
  const a12 = a[12]!;
  const a1_2 = 2 * a1;
  const a2_2 = 2 * a2;
  const a2_4 = 4 * a2;
  const a3_2 = 2 * a3;
  const a4_2 = 2 * a4;
  const a4_4 = 4 * a4;
  const a5_2 = 2 * a5;
  const a5_4 = 4 * a5;
  const a6_2 = 2 * a6;
  const a6_4 = 4 * a6;
  const a7_2 = 2 * a7;
  const a7_4 = 4 * a7;
  const a7_38 = 38 * a7;
  const a7_76 = 76 * a7;
  const a8_2 = 2 * a8;
  const a8_19 = 19 * a8;
  const a8_38 = 38 * a8;
  const a8_76 = 76 * a8;
  const a9_2 = 2 * a9;
  const a9_4 = 4 * a9;
  const a9_19 = 19 * a9;
  const a9_38 = 38 * a9;
  const a9_76 = 76 * a9;
  const a10_2 = 2 * a10;
  const a10_4 = 4 * a10;
  const a10_38 = 38 * a10;
  const a10_76 = 76 * a10;
  const a11_2 = 2 * a11;
  const a11_19 = 19 * a11;
  const a11_38 = 38 * a11;
  const a11_76 = 76 * a11;
  const a12_2 = 2 * a12;
  const a12_38 = 38 * a12;
  const a12_76 = 76 * a12;
  o[0] = a0 * a0 + a1 * a12_76 + a2 * a11_76 + a3 * a10_76 + a4 * a9_76 + a5 * a8_76 + a6 * a7_76;
  o[1] = a0 * a1_2 + a2 * a12_76 + a3 * a11_38 + a4 * a10_76 + a5 * a9_76 + a6 * a8_38 + a7 * a7_38;
  o[2] = a0 * a2_2 + a1 * a1 + a3 * a12_38 + a4 * a11_38 + a5 * a10_76 + a6 * a9_38 + a7 * a8_38;
  o[3] = a0 * a3_2 + a1 * a2_4 + a4 * a12_76 + a5 * a11_76 + a6 * a10_76 + a7 * a9_76 + a8 * a8_19;
  o[4] = a0 * a4_2 + a1 * a3_2 + a2 * a2_2 + a5 * a12_76 + a6 * a11_38 + a7 * a10_76 + a8 * a9_38;
  o[5] = a0 * a5_2 + a1 * a4_2 + a2 * a3_2 + a6 * a12_38 + a7 * a11_38 + a8 * a10_38 + a9 * a9_19;
  o[6] = a0 * a6_2 + a1 * a5_4 + a2 * a4_4 + a3 * a3 + a7 * a12_76 + a8 * a11_38 + a9 * a10_76;
  o[7] = a0 * a7_2 + a1 * a6_2 + a2 * a5_4 + a3 * a4_2 + a8 * a12_38 + a9 * a11_38 + a10 * a10_38;
  o[8] = a0 * a8_2 + a1 * a7_4 + a2 * a6_4 + a3 * a5_4 + a4 * a4_2 + a9 * a12_76 + a10 * a11_76;
  o[9] = a0 * a9_2 + a1 * a8_2 + a2 * a7_4 + a3 * a6_2 + a4 * a5_4 + a10 * a12_76 + a11 * a11_19;
  o[10] = a0 * a10_2 + a1 * a9_2 + a2 * a8_2 + a3 * a7_2 + a4 * a6_2 + a5 * a5_2 + a11 * a12_38;
  o[11] = a0 * a11_2 + a1 * a10_4 + a2 * a9_4 + a3 * a8_2 + a4 * a7_4 + a5 * a6_4 + a12 * a12_38;
  o[12] = a0 * a12_2 + a1 * a11_2 + a2 * a10_4 + a3 * a9_2 + a4 * a8_2 + a5 * a7_4 + a6 * a6;
  carry(o);
}

function add(o: Element, a: Element, b: Element): void {
  for (let i = 0; i < LIMBS; i++) o[i] = a[i]! + b[i]!;
}

function subtract(o: Element, a: Element, b: Element): void {
  for (let i = 0; i < LIMBS; i++) o[i] = a[i]! - b[i]!;
}

/** o = a · 121665 (RFC 7748's a24), carried. */
function multiplyA24(o: Element, a: Element): void {
  for (let i = 0; i < LIMBS; i++) o[i] = a[i]! * 121665;
  carry(o);
}

/** Swaps a and b when bit is 1, leaves them when 0, with the same operations either way. */
function conditionalSwap(a: Element, b: Element, bit: number): void {
  for (let i = 0; i < LIMBS; i++) {
    const t = bit * (a[i]! - b[i]!);
    a[i]! -= t;
    b[i]! += t;
  }
}

/** The field element of a little-endian u-coordinate, its top bit ignored (RFC 7748 §5). */
function decode(o: Element, bytes: Uint8Array): void {
  let accumulator = 0;
  let bits = 0;
  let next = 0;
  for (let i = 0; i < LIMBS; i++) {
    const width = POSITION[i + 1]! - POSITION[i]!;
    while (bits < width) {
      const byte = next === 31 ? bytes[31]! & 0x7f : bytes[next]!;
      accumulator += byte * 2 ** bits;
      next++;
      bits += 8;
    }
    const low = accumulator % 2 ** width;
    o[i] = low;
    accumulator = (accumulator - low) / 2 ** width;
    bits -= width;
  }
}

/** One sequential carry pass, bits 255 and up wrapped as · 19. */
function carrySequential(a: Element): void {
  for (let i = 0; i < LIMBS; i++) {
    const unit = 2 ** (POSITION[i + 1]! - POSITION[i]!);
    const c = Math.floor(a[i]! / unit);
    a[i]! -= c * unit;
    if (i + 1 < LIMBS) a[i + 1]! += c;
    else a[0]! += 19 * c;
  }
}

/** The canonical little-endian encoding of a (fully reduced mod p), into 32 bytes. */
function encode(out: Uint8Array, a: Element): void {
  // Three passes leave 0 ≤ a < 2^255 with every limb in range (the first two can leave a wrap behind).
  for (let pass = 0; pass < 3; pass++) carrySequential(a);
  // a ≥ p exactly when a + 19 reaches 2^255: then take a + 19 - 2^255, in constant time.
  const reduced = scratch[9]!;
  reduced.set(a);
  reduced[0]! += 19;
  let c = 0;
  for (let i = 0; i < LIMBS; i++) {
    const unit = 2 ** (POSITION[i + 1]! - POSITION[i]!);
    reduced[i]! += c;
    c = Math.floor(reduced[i]! / unit);
    reduced[i]! -= c * unit;
  }
  // c is 1 when a ≥ p; reduced then holds a - p.
  for (let i = 0; i < LIMBS; i++) a[i]! += c * (reduced[i]! - a[i]!);
  let accumulator = 0;
  let bits = 0;
  let next = 0;
  for (let i = 0; i < LIMBS; i++) {
    accumulator += a[i]! * 2 ** bits;
    bits += POSITION[i + 1]! - POSITION[i]!;
    while (bits >= 8) {
      const byte = accumulator % 256;
      out[next++] = byte;
      accumulator = (accumulator - byte) / 256;
      bits -= 8;
    }
  }
  out[31] = accumulator; // the last 7 bits
}

/** o = a^(2^count) by repeated squaring. */
function squareTimes(o: Element, a: Element, count: number): void {
  square(o, a);
  for (let i = 1; i < count; i++) square(o, o);
}

/** o = z^(p-2) = 1/z (0 for 0), by the usual chain of 254 squarings and 11 multiplications. */
function invert(o: Element, z: Element): void {
  const [t0, t1, t2, t3] = scratch as [Element, Element, Element, Element];
  square(t0, z); // z^2
  squareTimes(t1, t0, 2); // z^8
  multiply(t1, z, t1); // z^9
  multiply(t0, t0, t1); // z^11
  square(t2, t0); // z^22
  multiply(t1, t1, t2); // z^(2^5 - 1)
  squareTimes(t2, t1, 5);
  multiply(t1, t2, t1); // z^(2^10 - 1)
  squareTimes(t2, t1, 10);
  multiply(t2, t2, t1); // z^(2^20 - 1)
  squareTimes(t3, t2, 20);
  multiply(t2, t3, t2); // z^(2^40 - 1)
  squareTimes(t2, t2, 10);
  multiply(t1, t2, t1); // z^(2^50 - 1)
  squareTimes(t2, t1, 50);
  multiply(t2, t2, t1); // z^(2^100 - 1)
  squareTimes(t3, t2, 100);
  multiply(t2, t3, t2); // z^(2^200 - 1)
  squareTimes(t2, t2, 50);
  multiply(t1, t2, t1); // z^(2^250 - 1)
  squareTimes(t1, t1, 5); // z^(2^255 - 32)
  multiply(o, t1, t0); // z^(2^255 - 21) = z^(p - 2)
}

/** Working elements, reused by every call (JavaScript runs one call at a time per thread). */
const scratch = Array.from({ length: 10 }, element);
const [x1, x2, z2, x3, z3] = Array.from({ length: 5 }, element) as [
  Element,
  Element,
  Element,
  Element,
  Element,
];
const [A, B, C, D] = Array.from({ length: 4 }, element) as [Element, Element, Element, Element];

/**
 * X25519(scalar, u): the u-coordinate of scalar · (u, …), 32 bytes. The scalar is clamped here as RFC 7748
 * §5 decodes it (callers' keys are already clamped; clamping twice changes nothing).
 */
export function x25519(scalar: Uint8Array, u: Uint8Array): Uint8Array {
  if (scalar.length !== 32 || u.length !== 32) throw new RangeError('X25519 scalars and points are 32 bytes');
  decode(x1, u);
  x2.fill(0);
  x2[0] = 1;
  z2.fill(0);
  x3.set(x1);
  z3.fill(0);
  z3[0] = 1;
  let swap = 0;
  for (let t = 254; t >= 0; t--) {
    let byte = scalar[t >>> 3]!;
    if (t >>> 3 === 0) byte &= 248;
    if (t >>> 3 === 31) byte = (byte & 127) | 64;
    const bit = (byte >>> (t & 7)) & 1;
    swap ^= bit;
    conditionalSwap(x2, x3, swap);
    conditionalSwap(z2, z3, swap);
    swap = bit;
    // RFC 7748 §5's ladder step, in its names: A = x2 + z2, B = x2 - z2, C = x3 + z3, D = x3 - z3.
    add(A, x2, z2);
    subtract(B, x2, z2);
    add(C, x3, z3);
    subtract(D, x3, z3);
    multiply(D, D, A); // DA
    multiply(C, C, B); // CB
    square(A, A); // AA
    square(B, B); // BB
    add(x3, D, C);
    square(x3, x3); // x3 = (DA + CB)^2
    subtract(z3, D, C);
    square(z3, z3);
    multiply(z3, z3, x1); // z3 = x1 · (DA - CB)^2
    multiply(x2, A, B); // x2 = AA · BB
    subtract(B, A, B); // E = AA - BB
    multiplyA24(C, B);
    add(C, C, A);
    multiply(z2, B, C); // z2 = E · (AA + a24 · E)
  }
  conditionalSwap(x2, x3, swap);
  conditionalSwap(z2, z3, swap);
  invert(z2, z2);
  multiply(x2, x2, z2);
  const out = new Uint8Array(32);
  encode(out, x2);
  // The working elements held secret-dependent values: leave none behind.
  for (const e of [...scratch, x1, x2, z2, x3, z3, A, B, C, D]) e.fill(0);
  return out;
}

const BASE_POINT = Uint8Array.of(9, ...new Array<number>(31).fill(0));

/** X25519(scalar, 9): the public key of a private key. */
export const x25519Base = (scalar: Uint8Array): Uint8Array => x25519(scalar, BASE_POINT);
