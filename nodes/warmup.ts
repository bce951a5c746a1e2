// Warms the engine's data path before the node's first real packet. V8 runs new code in its interpreter
// until the code is hot, and a fresh node would carry its first thousands of packets that way: an idle
// ping through a cold node took about 1.4 ms where the same node, warm, took 0.8 ms (scripts/bench-tunnel's
// idle row measures exactly those first pings). So at start-up two throwaway engines, configured as the
// node's own, handshake with each other and carry a few thousand packets both ways, IPv4 and IPv6, small
// and full size, in memory: no packet leaves the process and no key outlives the call.
import type { Endpoint } from '../crypto/peer.js';
import { Tunnel, type TunnelAction, type TunnelOptions } from '../crypto/tunnel.js';

/** Packets per direction: enough for V8 to optimize every function the data path runs. */
export const WARM_PACKETS = 2000;
// Documentation addresses (RFC 5737, RFC 3849): endpoints and inner addresses of the two engines.
const ENDPOINTS: readonly [Endpoint, Endpoint] = [
  { address: '192.0.2.1', port: 1 },
  { address: '192.0.2.2', port: 2 },
];
const INNER = [
  { v4: [192, 0, 2, 101], v6: 0x01 },
  { v4: [192, 0, 2, 102], v6: 0x02 },
] as const;
const V6_PREFIX = [0x20, 0x01, 0x0d, 0xb8];

/** An IP packet of `length` bytes from engine `from` to the other one, with the header fields the engine reads. */
function packet(version: 4 | 6, length: number, from: 0 | 1): Uint8Array {
  const bytes = new Uint8Array(length);
  const [source, destination] = [INNER[from], INNER[1 - from]!];
  if (version === 4) {
    bytes.set([0x45, 0, length >> 8, length & 0xff], 0);
    bytes.set([...source.v4, ...destination.v4], 12);
  } else {
    const payload = length - 40;
    bytes.set([0x60, 0, 0, 0, payload >> 8, payload & 0xff], 0);
    bytes.set(V6_PREFIX, 8);
    bytes[23] = source.v6;
    bytes.set(V6_PREFIX, 24);
    bytes[39] = destination.v6;
  }
  return bytes;
}

/**
 * Runs the data path of engines built with `options` (the node's, without its key) until V8 has optimized
 * it. Returns the packets delivered, which is every packet sent (a check that the warm-up did its work).
 */
export function warmDataPath(options: Omit<TunnelOptions, 'privateKey'>): number {
  const engines = [0, 1].map(() => new Tunnel({ ...options, privateKey: options.randomBytes(32) })) as [
    Tunnel,
    Tunnel,
  ];
  for (const side of [0, 1] as const) {
    const other = INNER[1 - side]!;
    engines[side].upsertPeer(
      engines[1 - side]!.publicKey,
      {
        allowedIps: [`${other.v4.join('.')}/32`, `2001:db8::${other.v6}/128`],
        endpoint: ENDPOINTS[1 - side]!,
      },
      0,
    );
  }
  let delivered = 0;
  let now = 0;
  // Carries every datagram to the other engine until none is left (the handshake takes three).
  const carry = (sender: 0 | 1, actions: TunnelAction[]) => {
    const queue: Array<[to: 0 | 1, datagram: Uint8Array]> = [];
    const collect = (from: 0 | 1, list: TunnelAction[]) => {
      for (const action of list) {
        if (action.kind === 'deliver') delivered++;
        // A copy: the engines reuse their send buffers on their next call.
        else if (action.kind === 'send') queue.push([from === 0 ? 1 : 0, action.datagram.slice()]);
      }
    };
    collect(sender, actions);
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      const [to, datagram] = next;
      collect(to, engines[to].decapsulate(datagram, ENDPOINTS[to === 0 ? 1 : 0], now));
    }
  };
  // Each side's packets: IPv4 and IPv6, small (a ping) and full size.
  const bySide = ([0, 1] as const).map((side) =>
    ([4, 6] as const).flatMap((version) => [packet(version, 96, side), packet(version, 1420, side)]),
  );
  for (let i = 0; i < WARM_PACKETS; i++) {
    now += 0.37; // fractional milliseconds, as the node's clock gives them
    for (const side of [0, 1] as const) {
      const packets = bySide[side]!;
      carry(side, engines[side].encapsulate(packets[i % packets.length]!, now));
    }
  }
  engines[0].removePeer(engines[1].publicKey); // wipes both sessions' keys
  engines[1].removePeer(engines[0].publicKey);
  return delivered;
}
