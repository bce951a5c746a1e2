// Hex helpers and loaders for the known-answer vectors the crypto tests share (WIREGUARD.md §7).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
export const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** ../shared/vectors/ next to the work tree: Wycheproof suites and the WireGuard-framed KAT. */
export const SHARED_VECTORS = fileURLToPath(new URL('../../../shared/vectors/', import.meta.url));

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
