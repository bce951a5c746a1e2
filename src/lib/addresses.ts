// The tunnel address plan, shared by the broker (which leases addresses to sessions) and the node (whose
// interface and NAT rules cover the pool). Every node numbers its peers from its pool, one IPv4 and one
// IPv6 prefix: index i is the prefix's network address + i. The node's interface holds index 1; clients
// get 2 and up. The pool is a region setting (default 10.64.0.0/10 and fd64::/64). The broker leases
// indexes per region and pool, not per node, so a session keeps its addresses when it moves to another
// node of its region with the same pool (exit failover); each node NATs its own peers.
import {
  formatIpAddress,
  formatPrefix,
  maskPrefix,
  parsePrefix,
  type IpPrefix,
} from '../../crypto/ipaddr.js';

export interface Pool {
  v4: string;
  v6: string;
}

/** The default pool. */
export const POOL_PREFIXES: Pool = { v4: '10.64.0.0/10', v6: 'fd64::/64' };

const prefix = (text: string): IpPrefix => {
  const parsed = parsePrefix(text);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
};

export const NODE_ADDRESS_INDEX = 1;
/** At most this many addresses per node, whatever the pool (index < 2^32 in the low 32 bits). */
const MAX_INDEX_LIMIT = 2 ** 31 - 2;
/** The smallest pools: a node, a client, and IPv4's network and broadcast addresses. */
const MAX_CIDR = { v4: 29, v6: 125 } as const;

/** The highest index both prefixes of a pool hold (IPv4 keeps its broadcast address free). */
export function poolMaxIndex(pool: Pool): number {
  const v4 = 2 ** (32 - prefix(pool.v4).cidr) - 2;
  const v6 = 2 ** Math.min(31, 128 - prefix(pool.v6).cidr) - 1;
  return Math.min(v4, v6, MAX_INDEX_LIMIT);
}

/** The last index of the default pool, below the /10's top address; node capacity is bounded by it. */
export const MAX_ADDRESS_INDEX = poolMaxIndex(POOL_PREFIXES);

/** The pool's base address plus `index` in its low 32 bits (index < 2^32). */
function nth(base: IpPrefix, index: number): string {
  const address = base.address.slice();
  const view = new DataView(address.buffer);
  const low = address.length - 4;
  view.setUint32(low, view.getUint32(low) + index);
  return formatIpAddress(address);
}

export function tunnelAddresses(index: number, pool: Pool = POOL_PREFIXES): { v4: string; v6: string } {
  return { v4: nth(prefix(pool.v4), index), v6: nth(prefix(pool.v6), index) };
}

/** A peer's two host addresses: its interface's Address, and what its node routes to it. */
export const peerAllowedIps = (index: number, pool: Pool = POOL_PREFIXES) => {
  const { v4, v6 } = tunnelAddresses(index, pool);
  return [`${v4}/32`, `${v6}/128`];
};

/**
 * The node's own interface addresses: index 1 of its pool, with the pool's prefix, so the kernel routes
 * every client address (index 2 and up) into the interface.
 */
export function nodeInterfaceAddresses(pool: Pool = POOL_PREFIXES): string[] {
  const { v4, v6 } = tunnelAddresses(NODE_ADDRESS_INDEX, pool);
  return [`${v4}/${prefix(pool.v4).cidr}`, `${v6}/${prefix(pool.v6).cidr}`];
}

export const NODE_INTERFACE_ADDRESSES = nodeInterfaceAddresses();

/** Why `text` is not a pool prefix of this family (a network address with room for a node and clients), or null. */
export function poolPrefixError(family: 'v4' | 'v6', text: string): string | null {
  const name = family === 'v4' ? 'IPv4' : 'IPv6';
  const parsed = parsePrefix(text);
  if (!parsed.ok || !text.includes('/') || parsed.value.address.length !== (family === 'v4' ? 4 : 16))
    return `${text.slice(0, 64)} is not an ${name} CIDR`;
  if (parsed.value.cidr > MAX_CIDR[family]) return `${text} is too small: at most /${MAX_CIDR[family]}`;
  const network = formatPrefix(maskPrefix(parsed.value));
  if (network !== formatPrefix(parsed.value))
    return `${text} is not a network address (did you mean ${network}?)`;
  return null;
}

/** Whether two prefixes of the same family share an address. */
export function prefixesOverlap(a: string, b: string): boolean {
  const x = prefix(a);
  const y = prefix(b);
  if (x.address.length !== y.address.length) return false;
  const shorter = Math.min(x.cidr, y.cidr);
  return (
    formatPrefix(maskPrefix({ address: x.address, cidr: shorter })) ===
    formatPrefix(maskPrefix({ address: y.address, cidr: shorter }))
  );
}
