// A crowd of WireGuard clients for scale-netns.test.ts, run as its own process inside the node's
// namespace: each client a Device of the project's own engine with an in-memory interface and its own
// UDP socket, pinging the exit node's address through its tunnel. Prints one JSON line: the echo
// replies each client received, in input order; exits once all arrived or after DEADLINE_MS.
//   node dist/test/nodes/scale-clients.js crowd.json
import { readFileSync } from 'node:fs';

import { Tunnel } from '../../crypto/tunnel.js';
import { Device, type PacketIo } from '../../nodes/device.js';
import { secureRandomBytes } from '../../nodes/random.js';
import { openUdp } from '../../nodes/udp.js';
import { keyFromBase64 } from '../../src/lib/wgkey.js';

export interface Crowd {
  endpoint: { address: string; port: number };
  nodePublicKey: string;
  /** The node's tunnel address (its kernel answers the pings). */
  gateway: string;
  pings: number;
  clients: { privateKey: string; presharedKey?: string | undefined; address: string }[];
}

const DEADLINE_MS = 30_000;
const ICMP_ECHO_REQUEST = 8;
const ICMP_ECHO_REPLY = 0;
const PING_PAYLOAD = 56;

/** RFC 1071 Internet checksum of `bytes`. */
function checksum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** An IPv4 ICMP echo request with valid checksums, so the receiving kernel answers it. */
function echoRequest(source: string, destination: string, sequence: number): Uint8Array {
  const packet = new Uint8Array(20 + 8 + PING_PAYLOAD);
  const view = new DataView(packet.buffer);
  packet[0] = 0x45;
  view.setUint16(2, packet.length);
  packet[8] = 64; // TTL
  packet[9] = 1; // ICMP
  packet.set(source.split('.').map(Number), 12);
  packet.set(destination.split('.').map(Number), 16);
  view.setUint16(10, checksum(packet.subarray(0, 20)));
  packet[20] = ICMP_ECHO_REQUEST;
  view.setUint16(24, 0x7462); // identifier
  view.setUint16(26, sequence);
  const icmp = packet.subarray(20);
  view.setUint16(22, checksum(icmp));
  return packet;
}

/** The interface side of one client: counts echo replies, hands pings to the device. */
class Pinger implements PacketIo {
  replies = 0;
  private listener: (packets: Uint8Array[]) => void = () => undefined;
  constructor(private readonly onReply: () => void) {}
  onPackets(listener: (packets: Uint8Array[]) => void): void {
    this.listener = listener;
  }
  writeMany(packets: readonly Uint8Array[]): number {
    for (const packet of packets) {
      if (packet[9] === 1 && packet[20] === ICMP_ECHO_REPLY) {
        this.replies++;
        this.onReply();
      }
    }
    return packets.length;
  }
  close(): void {}
  send(packets: Uint8Array[]): void {
    this.listener(packets);
  }
}

async function main(): Promise<void> {
  const crowd = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as Crowd;
  const expected = crowd.clients.length * crowd.pings;
  let received = 0;
  let allIn: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (allIn = resolve));
  const onReply = () => ++received === expected && allIn();
  const clients = await Promise.all(
    crowd.clients.map(async (client) => {
      const privateKey = keyFromBase64(client.privateKey)!;
      const packets = new Pinger(onReply);
      const tunnel = new Tunnel({ privateKey, randomBytes: secureRandomBytes, wallClockMs: Date.now });
      const device = await Device.start({
        tunnel,
        privateKey,
        packets,
        openUdp: (options) => openUdp({ ...options, host: crowd.endpoint.address }),
        listenPort: 0,
      });
      device.upsertPeer(keyFromBase64(crowd.nodePublicKey)!, {
        presharedKey: client.presharedKey === undefined ? null : keyFromBase64(client.presharedKey)!,
        allowedIps: [`${crowd.gateway}/32`],
        endpoint: crowd.endpoint,
      });
      return { device, packets, address: client.address };
    }),
  );
  // The first ping starts each handshake; the rest wait staged for its keypair.
  for (const { packets, address } of clients) {
    packets.send(Array.from({ length: crowd.pings }, (_, i) => echoRequest(address, crowd.gateway, i)));
  }
  await Promise.race([done, new Promise((resolve) => setTimeout(resolve, DEADLINE_MS))]);
  process.stdout.write(`${JSON.stringify({ replies: clients.map((c) => c.packets.replies) })}\n`);
  await Promise.all(clients.map((c) => c.device.close()));
}

main().catch((error: unknown) => {
  process.stderr.write(`scale-clients: ${(error as Error).message}\n`);
  process.exit(1);
});
