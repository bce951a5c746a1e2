// Client and egress IP addresses as the broker keys them: attribution lookups, egress records and
// rate-limit identities. Untrusted input: never throws, answers null for anything that is not exactly
// an address. Parsing and RFC 5952 printing are crypto/ipaddr.ts's (strict dotted quads, no leading
// zeros, which some parsers read as octal); here an IPv4-mapped IPv6 address is its IPv4 address.
import { formatIpAddress, formatPrefix, maskPrefix, parseIpAddress } from '../../crypto/ipaddr.js';

export type IpVersion = 4 | 6;

export interface ParsedIp {
  version: IpVersion;
  /** Canonical text: dotted quad, or RFC 5952 IPv6. */
  text: string;
}

const isV4Mapped = (bytes: Uint8Array) =>
  bytes.length === 16 &&
  bytes.subarray(0, 10).every((b) => b === 0) &&
  bytes[10] === 0xff &&
  bytes[11] === 0xff;

/** The address as 4 or 16 bytes, an IPv4-mapped one as its 4; null for anything else. */
function addressBytes(input: string): Uint8Array | null {
  if (typeof input !== 'string') return null;
  const parsed = parseIpAddress(input);
  if (!parsed.ok) return null;
  return isV4Mapped(parsed.value) ? parsed.value.slice(12) : parsed.value;
}

export function parseIp(input: string): ParsedIp | null {
  const bytes = addressBytes(input);
  return bytes && { version: bytes.length === 4 ? 4 : 6, text: formatIpAddress(bytes) };
}

export const canonicalIp = (input: string): string | null => parseIp(input)?.text ?? null;

/**
 * The rate-limit identity of a client address: an IPv4 address as it is, an IPv6 address as its /64
 * (one subscriber line usually holds a whole /64, so per-/128 buckets would be free to multiply).
 * Anything unparsable is its own identity.
 */
export function sourceOf(address: string): string {
  const bytes = addressBytes(address.split('%')[0]!); // a zone id (fe80::1%eth0) names no other host
  if (!bytes) return address;
  return bytes.length === 4 ? formatIpAddress(bytes) : formatPrefix(maskPrefix({ address: bytes, cidr: 64 }));
}
