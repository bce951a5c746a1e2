// The session's X25519 key pair, made on this machine: the private key never leaves it (docs/API.md
// "Sessions": the broker only ever sees the public key).
import nacl from 'tweetnacl';

export interface KeyPair {
  privateKey: string;
  publicKey: string;
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');

/** As `wg genkey | wg pubkey`: 32 random bytes clamped per RFC 7748, public = X25519(priv, 9). */
export function generateKeyPair(random: (n: number) => Uint8Array = nacl.randomBytes): KeyPair {
  const secret = random(32);
  secret[0] = (secret[0] ?? 0) & 248;
  secret[31] = ((secret[31] ?? 0) & 127) | 64;
  return { privateKey: b64(secret), publicKey: b64(nacl.scalarMult.base(secret)) };
}
