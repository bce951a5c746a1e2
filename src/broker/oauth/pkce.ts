// PKCE (RFC 7636) with S256 only: `plain` would hand the verifier to whoever reads the authorization
// request, so RFC 9700 §2.1.1 rules it out.
import { createHash, timingSafeEqual } from 'node:crypto';

/** 43..128 characters of [A-Z a-z 0-9 - . _ ~] (RFC 7636 §4.1). */
const VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/;
/** BASE64URL(SHA-256(verifier)) without padding: exactly 43 characters. */
const CHALLENGE = /^[A-Za-z0-9\-_]{43}$/;

export const isCodeVerifier = (value: string) => VERIFIER.test(value);
export const isCodeChallenge = (value: string) => CHALLENGE.test(value);

export function s256(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

/** True when the verifier is well formed and hashes to the challenge (compared in constant time). */
export function verifierMatches(verifier: string, challenge: string): boolean {
  if (!isCodeVerifier(verifier)) return false;
  const a = Buffer.from(s256(verifier));
  const b = Buffer.from(challenge);
  return a.length === b.length && timingSafeEqual(a, b);
}
