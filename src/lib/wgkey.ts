// The WireGuard key codec: 32 bytes as 44 characters of standard base64, as wg(8) reads and prints them.
// The broker (API bodies), the node (feed, key file) and the CLI (configs) all decode keys through here.

export const KEY_BYTES = 32;

// 44 characters of standard base64 for exactly 32 bytes: the last data character carries 2 unused bits,
// which must be zero (wireguard-tools key_from_base64 rejects the other spellings).
const BASE64_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

export const isBase64Key = (text: string) => BASE64_KEY.test(text);

/** Decodes a WireGuard key from its 44-character base64 form; undefined if it is not one. */
export function keyFromBase64(text: string): Uint8Array | undefined {
  return BASE64_KEY.test(text) ? new Uint8Array(Buffer.from(text, 'base64')) : undefined;
}

export function keyToBase64(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('base64');
}
