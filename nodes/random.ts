// The node's randomness: the operating system's CSPRNG, for keys, handshake ephemerals and indices. The
// engine takes its random bytes from the caller (sans-IO); this is what the node, its workers and its
// tools hand it.
import { randomBytes } from 'node:crypto';

export const secureRandomBytes = (length: number): Uint8Array => new Uint8Array(randomBytes(length));
