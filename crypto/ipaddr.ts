// Strict textual IP addresses and prefixes (the inet_pton grammar: no leading zeros in IPv4 octets,
// no zone ids, no brackets), as raw network-order bytes. Lives in crypto/ because the allowed-IPs trie
// needs it and crypto/ imports nothing outside itself; src/ reuses it for the wg-quick format.

/** An address (4 or 16 bytes, network order) and a prefix length. Host bits may be set (see maskPrefix). */
export interface IpPrefix {
  readonly address: Uint8Array;
  readonly cidr: number;
}

export type IpParse<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

const fail = (error: string): { ok: false; error: string } => ({ ok: false, error });

const DECIMAL_OCTET = /^(?:0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseIpv4Into(text: string, out: Uint8Array, offset: number): boolean {
  const parts = text.split('.');
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const part = parts[i]!;
    if (!DECIMAL_OCTET.test(part)) return false;
    const value = Number(part);
    if (value > 255) return false;
    out[offset + i] = value;
  }
  return true;
}

function parseIpv6(text: string): Uint8Array | undefined {
  const gap = text.indexOf('::');
  if (gap !== text.lastIndexOf('::')) return undefined;
  const head = gap < 0 ? text : text.slice(0, gap);
  const tail = gap < 0 ? '' : text.slice(gap + 2);
  const headParts = head === '' ? [] : head.split(':');
  const tailParts = tail === '' ? [] : tail.split(':');
  if (gap < 0 && headParts.length === 0) return undefined;

  // An embedded IPv4 address may only end the whole address, and counts as two groups.
  const parts = gap < 0 ? headParts : tailParts;
  const last = parts[parts.length - 1];
  const embeddedV4 = last !== undefined && last.includes('.');
  const groups = headParts.length + tailParts.length + (embeddedV4 ? 1 : 0);
  if (gap < 0 ? groups !== 8 : groups > 7) return undefined;

  const out = new Uint8Array(16);
  const writeGroups = (list: string[], firstGroup: number): boolean => {
    for (let i = 0; i < list.length; i++) {
      const part = list[i]!;
      const group = firstGroup + i;
      if (embeddedV4 && list === parts && i === list.length - 1) return parseIpv4Into(part, out, group * 2);
      if (!HEX_GROUP.test(part)) return false;
      const value = parseInt(part, 16);
      out[group * 2] = value >> 8;
      out[group * 2 + 1] = value & 0xff;
    }
    return true;
  };
  if (!writeGroups(headParts, 0)) return undefined;
  if (gap >= 0 && !writeGroups(tailParts, 8 - (tailParts.length + (embeddedV4 ? 1 : 0)))) return undefined;
  return out;
}

/** Parses a dotted-quad IPv4 or an IPv6 address into 4 or 16 bytes. */
export function parseIpAddress(text: string): IpParse<Uint8Array> {
  if (text.length === 0 || text.length > 45) return fail(`invalid IP address '${text.slice(0, 64)}'`);
  if (text.includes(':')) {
    const address = parseIpv6(text);
    return address ? { ok: true, value: address } : fail(`invalid IPv6 address '${text}'`);
  }
  const address = new Uint8Array(4);
  return parseIpv4Into(text, address, 0)
    ? { ok: true, value: address }
    : fail(`invalid IPv4 address '${text}'`);
}

/** Parses 'ip/cidr'; a bare address means a host prefix (/32 or /128), as wg(8) reads AllowedIPs. */
export function parsePrefix(text: string): IpParse<IpPrefix> {
  const slash = text.indexOf('/');
  const parsed = parseIpAddress(slash < 0 ? text : text.slice(0, slash));
  if (!parsed.ok) return parsed;
  const maxBits = parsed.value.length * 8;
  if (slash < 0) return { ok: true, value: { address: parsed.value, cidr: maxBits } };
  const digits = text.slice(slash + 1);
  if (!/^[0-9]{1,3}$/.test(digits) || Number(digits) > maxBits) {
    return fail(`invalid prefix length '/${digits.slice(0, 8)}' (0 to ${maxBits})`);
  }
  return { ok: true, value: { address: parsed.value, cidr: Number(digits) } };
}

/** The same prefix with its host bits cleared (a new address array). */
export function maskPrefix(prefix: IpPrefix): IpPrefix {
  const address = prefix.address.slice();
  const fullBytes = prefix.cidr >> 3;
  const remainder = prefix.cidr & 7;
  if (remainder !== 0) address[fullBytes] = address[fullBytes]! & (0xff << (8 - remainder));
  address.fill(0, remainder !== 0 ? fullBytes + 1 : fullBytes);
  return { address, cidr: prefix.cidr };
}

/**
 * bytes[offset .. offset + 4) as a dotted quad. Read by index, not through a subarray: a subarray of a small
 * typed array moves its bytes out of the V8 heap into a malloc'ed store, per address formatted.
 */
export const dottedQuad = (bytes: Uint8Array, offset: number): string =>
  `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;

/** Whether bytes[offset .. offset + 12) are the IPv4-mapped prefix (::ffff:0:0/96), read by index (as dottedQuad). */
export function isIpv4Mapped(bytes: Uint8Array, offset = 0): boolean {
  for (let i = 0; i < 12; i++) if (bytes[offset + i] !== (i < 10 ? 0 : 0xff)) return false;
  return true;
}

/** Canonical text: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run of 2+ groups as '::'). */
export function formatIpAddress(address: Uint8Array): string {
  if (address.length === 4) return dottedQuad(address, 0);
  if (address.length !== 16) throw new RangeError(`an IP address has 4 or 16 bytes, not ${address.length}`);
  if (isIpv4Mapped(address)) return `::ffff:${dottedQuad(address, 12)}`; // as inet_ntop writes it
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((address[i]! << 8) | address[i + 1]!);
  let bestStart = -1;
  let bestLength = 1; // a single zero group is never compressed
  for (let start = 0; start < 8;) {
    let end = start;
    while (end < 8 && groups[end] === 0) end++;
    if (end - start > bestLength) [bestStart, bestLength] = [start, end - start];
    start = end === start ? start + 1 : end;
  }
  const hex = (list: number[]) => list.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

export function formatPrefix(prefix: IpPrefix): string {
  return `${formatIpAddress(prefix.address)}/${prefix.cidr}`;
}
