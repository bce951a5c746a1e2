// IP address parsing and canonical text form, for attribution lookups and egress records.
// Untrusted input: never throws, answers null for anything that is not exactly an address.
// IPv4 is strict dotted-quad (no leading zeros, which some parsers read as octal); IPv6 follows
// RFC 4291 text forms and prints in RFC 5952 form; an IPv4-mapped IPv6 address is its IPv4 address.

export type IpVersion = 4 | 6;

const V4_PART = /^(0|[1-9][0-9]{0,2})$/;
const V6_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseV4(text: string): number[] | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const bytes: number[] = [];
  for (const part of parts) {
    if (!V4_PART.test(part)) return null;
    const value = Number(part);
    if (value > 255) return null;
    bytes.push(value);
  }
  return bytes;
}

/** Eight 16-bit groups, or null. */
function parseV6(text: string): number[] | null {
  if (text.length > 45) return null;
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groupsOf = (half: string, allowV4Tail: boolean): number[] | null => {
    if (half === '') return [];
    const parts = half.split(':');
    const out: number[] = [];
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (allowV4Tail && i === parts.length - 1 && part.includes('.')) {
        const v4 = parseV4(part);
        if (!v4) return null;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (V6_GROUP.test(part)) {
        out.push(parseInt(part, 16));
      } else {
        return null;
      }
    }
    return out;
  };
  if (halves.length === 1) {
    const groups = groupsOf(text, true);
    return groups && groups.length === 8 ? groups : null;
  }
  const head = groupsOf(halves[0]!, false);
  const tail = groupsOf(halves[1]!, true);
  if (!head || !tail || head.length + tail.length > 7) return null;
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

function formatV6(groups: number[]): string {
  // RFC 5952 §4.2: the longest run (first if tied) of two or more zero groups becomes "::".
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

export interface ParsedIp {
  version: IpVersion;
  /** Canonical text: dotted quad, or RFC 5952 IPv6. */
  text: string;
}

export function parseIp(input: string): ParsedIp | null {
  if (typeof input !== 'string' || input.length === 0 || input.length > 45) return null;
  const v4 = parseV4(input);
  if (v4) return { version: 4, text: v4.join('.') };
  const v6 = parseV6(input);
  if (!v6) return null;
  const mapped = v6.slice(0, 5).every((g) => g === 0) && v6[5] === 0xffff;
  if (mapped) {
    return { version: 4, text: [v6[6]! >> 8, v6[6]! & 0xff, v6[7]! >> 8, v6[7]! & 0xff].join('.') };
  }
  return { version: 6, text: formatV6(v6) };
}

export const canonicalIp = (input: string): string | null => parseIp(input)?.text ?? null;

/**
 * The rate-limit identity of a client address: an IPv4 address as it is, an IPv6 address as its /64
 * (one subscriber line usually holds a whole /64, so per-/128 buckets would be free to multiply).
 * Anything unparsable is its own identity.
 */
export function sourceOf(address: string): string {
  const bare = address.split('%')[0]!; // a zone id (fe80::1%eth0) names no other host
  const v6 = parseIp(bare)?.version === 6 ? parseV6(bare) : null;
  if (!v6) return canonicalIp(bare) ?? address;
  return `${formatV6([...v6.slice(0, 4), 0, 0, 0, 0])}/64`;
}
