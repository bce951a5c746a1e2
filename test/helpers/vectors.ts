// Hex helpers and loaders for the known-answer vectors the crypto tests share (docs/WIREGUARD.md §7).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
export const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** test/crypto/vectors/: each file's source, licence and sha256 are in its README. */
export const VECTORS = fileURLToPath(new URL('../crypto/vectors/', import.meta.url));

export const loadJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;

/** A Wycheproof AEAD suite (chacha20_poly1305_test.json, xchacha20_poly1305_test.json). */
export interface WycheproofAead {
  testGroups: {
    ivSize: number;
    tests: {
      tcId: number;
      key: string;
      iv: string;
      aad: string;
      msg: string;
      ct: string;
      tag: string;
      result: string;
    }[];
  }[];
}
