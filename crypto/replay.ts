// RFC 6479 anti-replay window without bit shifting, as wireguard-go's replay/replay.go and the kernel's
// counter_validate: a ring of 128 blocks of 64 bits, of which one block is always being recycled, so the
// usable window is (128 - 1) * 64 = 8128 counters behind the highest one seen.
//
// Counters are 64-bit. The hot path takes them as two 32-bit halves (as read from the transport header with
// DataView.getUint32) so no BigInt is created per packet; every comparison below is exact over all 2^64 values.

import { REJECT_AFTER_MESSAGES } from './constants.js';

// Counters at or above the limit are rejected; compared as halves like the counters.
const REJECT_AFTER_MESSAGES_HIGH = Number(REJECT_AFTER_MESSAGES >> 32n);
const REJECT_AFTER_MESSAGES_LOW = Number(REJECT_AFTER_MESSAGES & 0xffffffffn);

const BLOCK_BITS_LOG = 6; // 64-bit blocks
const RING_BLOCKS = 128;
const RING_BLOCKS_MASK = RING_BLOCKS - 1;
export const REPLAY_WINDOW_SIZE = (RING_BLOCKS - 1) * 64; // 8128

const TWO_POW_32 = 0x1_0000_0000;
const TWO_POW_26 = 1 << 26; // blocks per unit of the high half: 2^32 / 64

export class ReplayFilter {
  // Each 64-bit block is two 32-bit words: word 2k holds bits 0..31 of block k, word 2k+1 bits 32..63.
  private readonly ring = new Uint32Array(RING_BLOCKS * 2);
  private lastHigh = 0;
  private lastLow = 0;

  /** Forgets everything seen, as for a fresh keypair. */
  reset(): void {
    this.ring.fill(0);
    this.lastHigh = 0;
    this.lastLow = 0;
  }

  /**
   * Accepts a counter (given as its high and low 32-bit halves) at most once, and only within the window.
   * Call it only after the packet authenticated, so forged packets cannot move the window.
   */
  validate(counterHigh: number, counterLow: number): boolean {
    if (
      counterHigh > REJECT_AFTER_MESSAGES_HIGH ||
      (counterHigh === REJECT_AFTER_MESSAGES_HIGH && counterLow >= REJECT_AFTER_MESSAGES_LOW)
    ) {
      return false;
    }
    if (counterHigh > this.lastHigh || (counterHigh === this.lastHigh && counterLow > this.lastLow)) {
      this.advanceTo(counterHigh, counterLow);
    } else {
      // Exact while the high halves differ by less than 2^21; beyond that the distance is huge anyway.
      const behind = (this.lastHigh - counterHigh) * TWO_POW_32 + (this.lastLow - counterLow);
      if (behind > REPLAY_WINDOW_SIZE) return false;
    }
    // Bit (counter mod 64) of block (counter / 64) mod 128 is bit (counter mod 32) of word (counter / 32) mod 256.
    const word = (counterLow >>> 5) & (RING_BLOCKS * 2 - 1);
    const bit = 1 << (counterLow & 31);
    const old = this.ring[word]!;
    if ((old & bit) !== 0) return false;
    this.ring[word] = old | bit;
    return true;
  }

  /** Convenience form of validate for a bigint counter (tests, cold paths). */
  validateCounter(counter: bigint): boolean {
    if (counter < 0n || counter >= 1n << 64n) return false;
    return this.validate(Number(counter >> 32n), Number(counter & 0xffffffffn));
  }

  // Moves the top of the window to a higher counter, zeroing the blocks it passes (at most the whole ring).
  private advanceTo(counterHigh: number, counterLow: number): void {
    const oldBlockLow = this.lastLow >>> BLOCK_BITS_LOG;
    const blockDistance =
      (counterHigh - this.lastHigh) * TWO_POW_26 + ((counterLow >>> BLOCK_BITS_LOG) - oldBlockLow);
    const toClear = Math.min(blockDistance, RING_BLOCKS);
    for (let i = 1; i <= toClear; i++) {
      const block = (oldBlockLow + i) & RING_BLOCKS_MASK;
      this.ring[block * 2] = 0;
      this.ring[block * 2 + 1] = 0;
    }
    this.lastHigh = counterHigh;
    this.lastLow = counterLow;
  }
}
