// The tunnel address plan, shared by the broker (which leases addresses to sessions) and the node (whose
// interface and NAT rules cover the pool). Every node numbers its peers from its own pool: index i is
// 10.64.0.0 + i inside 10.64.0.0/10, and fd64::i inside fd64::/64. The node's interface holds index 1;
// clients get 2 and up. Pools are per node because each node NATs its own peers: the same inner
// address on two nodes never meets.
import { formatIpAddress, parsePrefix, type IpPrefix } from '../../crypto/ipaddr.js';

export const POOL_PREFIXES = { v4: '10.64.0.0/10', v6: 'fd64::/64' } as const;

const pool = (text: string): IpPrefix => {
  const parsed = parsePrefix(text);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
};
const V4_POOL = pool(POOL_PREFIXES.v4);
const V6_POOL = pool(POOL_PREFIXES.v6);

export const NODE_ADDRESS_INDEX = 1;
/** The last index below the /10's top address. */
export const MAX_ADDRESS_INDEX = 2 ** (32 - V4_POOL.cidr) - 2;

/** The pool's base address plus `index` in its low 32 bits (index < 2^32). */
function nth(base: IpPrefix, index: number): string {
  const address = base.address.slice();
  const view = new DataView(address.buffer);
  const low = address.length - 4;
  view.setUint32(low, view.getUint32(low) + index);
  return formatIpAddress(address);
}

export function tunnelAddresses(index: number): { v4: string; v6: string } {
  return { v4: nth(V4_POOL, index), v6: nth(V6_POOL, index) };
}

/** A peer's two host addresses: its interface's Address, and what its node routes to it. */
export const peerAllowedIps = (index: number) => {
  const { v4, v6 } = tunnelAddresses(index);
  return [`${v4}/32`, `${v6}/128`];
};

/**
 * The node's own interface addresses: index 1 of its pool, with the pool's prefix, so the kernel routes
 * every client address (index 2 and up) into the interface.
 */
export const NODE_INTERFACE_ADDRESSES = (() => {
  const { v4, v6 } = tunnelAddresses(NODE_ADDRESS_INDEX);
  return [`${v4}/${V4_POOL.cidr}`, `${v6}/${V6_POOL.cidr}`] as const;
})();
