// The node's randomness: the operating system's CSPRNG, for keys, handshake ephemerals, indices and cookie
// nonces. The engine takes its random bytes from the caller (sans-IO); this is what the node, its workers
// and its tools hand it.
import { randomFillSync } from 'node:crypto';

/**
 * Small requests are served from a block drawn POOL_BYTES at a time: one call into the CSPRNG costs about
 * 2.5 µs whatever its size, as much as the rest of a cookie reply, which a flood asks for per datagram.
 * Bytes are wiped from the block as they are handed out, so it never holds what it gave.
 */
const POOL_BYTES = 4096;
const POOLED_MAX = 64;
const pool = new Uint8Array(POOL_BYTES);
let taken = POOL_BYTES;

export function secureRandomBytes(length: number): Uint8Array {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`random bytes: no length ${length}`);
  if (length > POOLED_MAX) return randomFillSync(new Uint8Array(length));
  if (taken + length > POOL_BYTES) {
    randomFillSync(pool);
    taken = 0;
  }
  const bytes = pool.slice(taken, taken + length);
  pool.fill(0, taken, (taken += length));
  return bytes;
}
