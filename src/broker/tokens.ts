// Secret token format: <prefix> + 32 base62 characters + a 6-character base62 CRC32 of those 32,
// like GitHub's tokens, so a leaked token is recognisable and a typo is caught without a lookup.
// The broker stores only SHA-256 hashes of tokens.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { crc32 } from 'node:zlib';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const BODY_LENGTH = 32;
const CHECKSUM_LENGTH = 6;

export const API_TOKEN_PREFIX = 'tb_';
export const NODE_TOKEN_PREFIX = 'tbn_';
/** OAuth refresh tokens (docs/API.md "OAuth 2.0"); access tokens are ordinary tb_ tokens. */
export const REFRESH_TOKEN_PREFIX = 'tbr_';
export const CLIENT_SECRET_PREFIX = 'tbcs_';
export const AUTHORIZATION_CODE_PREFIX = 'tbac_';
/** The value of the browser sign-in cookie. */
export const WEB_SESSION_PREFIX = 'tbws_';

/** Uniform random base62 string (rejection sampling keeps it unbiased). */
export function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248 && out.length < length) out += BASE62[byte % 62];
    }
  }
  return out;
}

function base62Fixed(value: number, width: number): string {
  let out = '';
  for (let v = value; v > 0; v = Math.floor(v / 62)) out = BASE62[v % 62] + out;
  return out.padStart(width, '0');
}

export function checksum(body: string): string {
  return base62Fixed(crc32(body), CHECKSUM_LENGTH);
}

export function mintToken(prefix: string): string {
  const body = randomBase62(BODY_LENGTH);
  return prefix + body + checksum(body);
}

const SHAPE = new RegExp(`^[0-9A-Za-z]{${BODY_LENGTH + CHECKSUM_LENGTH}}$`);

/** True when `token` has the prefix, the length, the alphabet and a matching checksum. */
export function isWellFormedToken(prefix: string, token: string): boolean {
  if (!token.startsWith(prefix)) return false;
  const rest = token.slice(prefix.length);
  if (!SHAPE.test(rest)) return false;
  return rest.slice(BODY_LENGTH) === checksum(rest.slice(0, BODY_LENGTH));
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Constant-time equality of two hex digests of equal length. */
export function sameDigest(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

/** The last three characters, kept to show a key as `tb_***…abc`. */
export const tokenHint = (token: string) => token.slice(-3);
export const maskToken = (prefix: string, hint: string) => `${prefix}***…${hint}`;

/** Prefixed public ids: usr_, key_, ses_, node_, ... */
export function newId(prefix: string): string {
  return `${prefix}_${randomBase62(20)}`;
}
