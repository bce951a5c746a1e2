// The TUN addon against the real kernel. Each TUN is opened here, then moved into a namespace of its
// own (the descriptor stays attached), so every packet stays inside that namespace.
import { execFileSync } from 'node:child_process';
import { configureInterface, openTun, type Tun } from '../../nodes/tun/index.js';
import { netnsHarness, type Namespace } from './netns.js';

const harness = netnsHarness();

const ADDRESS = { v4: '10.250.0.1', v6: 'fd10:250::1' } as const; // the namespace's side of the TUN
const REMOTE = { v4: '10.250.0.2', v6: 'fd10:250::2' } as const; // "beyond" the TUN: our side
const PROTO_ICMP = 1;
const NEXT_HEADER_ICMPV6 = 58;
const ICMP_ECHO_REQUEST = 8;
const ICMP_ECHO_REPLY = 0;
const ICMPV6_ECHO_REQUEST = 128;
const ICMPV6_ECHO_REPLY = 129;

const opened: Tun[] = [];
afterAll(() => opened.forEach((tun) => tun.close()));

async function tunInNamespace(offload: boolean): Promise<{ tun: Tun; ns: Namespace }> {
  const ns = await harness.namespace('tun');
  const tun = openTun(harness.interfaceName(), { offload });
  opened.push(tun);
  execFileSync('ip', ['link', 'set', 'dev', tun.name, 'netns', ns.name]);
  await configureInterface(tun.name, {
    addresses: [`${ADDRESS.v4}/24`, `${ADDRESS.v6}/64`],
    mtu: 1420,
    netns: ns.name,
  });
  return { tun, ns };
}

// ---- minimal packet helpers (RFC 1071 checksum; IPv6 pseudo-header for ICMPv6) ----
function checksum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  if (bytes.length % 2) sum += bytes[bytes.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function parseV4(address: string): number[] {
  return address.split('.').map(Number);
}

function parseV6(address: string): number[] {
  const [head = '', tail = ''] = address.split('::');
  const groups = (part: string) => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const [h, t] = [groups(head), groups(tail)];
  const all = [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  return all.flatMap((g) => [g >> 8, g & 0xff]);
}

const isV4 = (p: Uint8Array) => p[0]! >> 4 === 4;
const isV6 = (p: Uint8Array) => p[0]! >> 4 === 6;
const isIcmpEcho = (p: Uint8Array, type: number) =>
  isV4(p) && p[9] === PROTO_ICMP && p[(p[0]! & 15) * 4] === type;
const isIcmpv6Echo = (p: Uint8Array, type: number) =>
  isV6(p) && p[6] === NEXT_HEADER_ICMPV6 && p[40] === type;

function icmpv6Checksum(packet: Uint8Array): number {
  const payload = packet.subarray(40);
  const pseudo = new Uint8Array(40);
  pseudo.set(packet.subarray(8, 40), 0); // source + destination
  new DataView(pseudo.buffer).setUint32(32, payload.length);
  pseudo[39] = NEXT_HEADER_ICMPV6;
  const partial = ~checksum(pseudo) & 0xffff;
  return checksum(payload, partial);
}

/** Turns an echo request into the matching reply, in place. */
function answerEcho(packet: Uint8Array): Uint8Array {
  const swap = (offset: number, length: number) => {
    const source = packet.slice(offset, offset + length);
    packet.copyWithin(offset, offset + length, offset + 2 * length);
    packet.set(source, offset + length);
  };
  if (isV4(packet)) {
    const ihl = (packet[0]! & 15) * 4;
    swap(12, 4);
    packet[ihl] = ICMP_ECHO_REPLY;
    packet[ihl + 2] = packet[ihl + 3] = 0;
    const sum = checksum(packet.subarray(ihl));
    packet[ihl + 2] = sum >> 8;
    packet[ihl + 3] = sum & 0xff;
  } else {
    swap(8, 16);
    packet[40] = ICMPV6_ECHO_REPLY;
    packet[42] = packet[43] = 0;
    const sum = icmpv6Checksum(packet);
    packet[42] = sum >> 8;
    packet[43] = sum & 0xff;
  }
  return packet;
}

/** An IPv4 ICMP echo request from REMOTE to ADDRESS, as if it came from beyond the TUN. */
function echoRequestV4(sequence: number): Uint8Array {
  const packet = new Uint8Array(20 + 8 + 16);
  const view = new DataView(packet.buffer);
  packet[0] = 0x45;
  view.setUint16(2, packet.length);
  packet[8] = 64; // TTL
  packet[9] = PROTO_ICMP;
  packet.set(parseV4(REMOTE.v4), 12);
  packet.set(parseV4(ADDRESS.v4), 16);
  view.setUint16(10, checksum(packet.subarray(0, 20)));
  packet[20] = ICMP_ECHO_REQUEST;
  view.setUint16(24, 0x7462); // identifier
  view.setUint16(26, sequence);
  view.setUint16(22, checksum(packet.subarray(20)));
  return packet;
}

function echoRequestV6(sequence: number): Uint8Array {
  const packet = new Uint8Array(40 + 8 + 16);
  const view = new DataView(packet.buffer);
  packet[0] = 0x60;
  view.setUint16(4, packet.length - 40);
  packet[6] = NEXT_HEADER_ICMPV6;
  packet[7] = 64; // hop limit
  packet.set(parseV6(REMOTE.v6), 8);
  packet.set(parseV6(ADDRESS.v6), 24);
  packet[40] = ICMPV6_ECHO_REQUEST;
  view.setUint16(44, 0x7462);
  view.setUint16(46, sequence);
  view.setUint16(42, icmpv6Checksum(packet));
  return packet;
}

/** Answers every echo request the kernel routes into the TUN; records batch sizes. */
function echoResponder(tun: Tun): { batches: number[] } {
  const stats = { batches: [] as number[] };
  tun.onPackets((packets) => {
    stats.batches.push(packets.length);
    const requests = packets.filter(
      (p) => isIcmpEcho(p, ICMP_ECHO_REQUEST) || isIcmpv6Echo(p, ICMPV6_ECHO_REQUEST),
    );
    tun.writeMany(requests.map(answerEcho));
  });
  return stats;
}

function collect(tun: Tun, wanted: (packet: Uint8Array) => boolean, count: number): Promise<Uint8Array[]> {
  return new Promise((resolveCollect) => {
    const matched: Uint8Array[] = [];
    tun.onPackets((packets) => {
      matched.push(...packets.filter(wanted).map((p) => p.slice())); // the batch's memory is reused
      if (matched.length >= count) resolveCollect(matched);
    });
  });
}

// Both ways the TUN runs: plain packets, and with a vnet header and offloads (split and coalesced in
// nodes/offload.ts; these tests' packets are not TCP, so they pass through behind zero headers).
describe.each([
  ['plain packets', false],
  ['offload on', true],
])('openTun, %s', (_mode, offload) => {
  test('1. a %d in the requested name is filled in by the kernel', () => {
    const tun = openTun(`tb${process.pid}t%d`, { offload });
    expect(tun.offload.enabled).toBe(offload);
    opened.push(tun);
    expect(tun.name).toMatch(new RegExp(`^tb${process.pid}t\\d+$`));
    tun.close();
  });

  test('2. names of 16+ bytes (or empty) are a programmer error; 15 bytes is fine', () => {
    expect(() => openTun('a-name-much-too-long-for-linux')).toThrow(/1 to 15 bytes/);
    expect(() => openTun(`tb${process.pid}`.padEnd(16, 'x'))).toThrow(/1 to 15 bytes/);
    expect(() => openTun('')).toThrow(/1 to 15 bytes/);
    const fifteen = openTun(`tb${process.pid}`.padEnd(15, 'x'));
    opened.push(fifteen);
    expect(fifteen.name).toHaveLength(15);
    fifteen.close();
  });

  test('3. IPv4 ping through the TUN: the kernel’s requests are read, our replies are written back', async () => {
    const { tun, ns } = await tunInNamespace(offload);
    echoResponder(tun);
    const ping = await ns.exec('ping', ['-c', '3', '-i', '0.2', '-W', '2', REMOTE.v4]);
    expect(ping.stdout).toContain('3 received');
  });

  test('4. IPv6 ping through the TUN', async () => {
    const { tun, ns } = await tunInNamespace(offload);
    echoResponder(tun);
    const ping = await ns.exec('ping', ['-6', '-c', '3', '-i', '0.2', '-W', '2', REMOTE.v6]);
    expect(ping.stdout).toContain('3 received');
  });

  test('5. a flood arrives in batches (several packets per callback), none lost', async () => {
    const { tun, ns } = await tunInNamespace(offload);
    const stats = echoResponder(tun);
    const ping = await ns.exec('ping', ['-q', '-f', '-l', '32', '-c', '2000', '-W', '2', REMOTE.v4]);
    expect(ping.stdout).toContain('2000 received');
    expect(Math.max(...stats.batches)).toBeGreaterThan(1);
    expect(stats.batches.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(2000);
  });

  test('6. writeMany injects a batch: the kernel answers every echo request with a reply', async () => {
    const { tun } = await tunInNamespace(offload);
    const count = 50;
    const replies = collect(
      tun,
      (p) => isIcmpEcho(p, ICMP_ECHO_REPLY) || isIcmpv6Echo(p, ICMPV6_ECHO_REPLY),
      2 * count,
    );
    const requests = Array.from({ length: count }, (_, i) => [echoRequestV4(i), echoRequestV6(i)]).flat();
    expect(tun.writeMany(requests)).toBe(2 * count);
    const sequences = (await replies).map((p) =>
      isV4(p) ? `4:${p[27]! | (p[26]! << 8)}` : `6:${p[47]! | (p[46]! << 8)}`,
    );
    expect(new Set(sequences).size).toBe(2 * count);
  });

  test('7. single writes report success; the kernel refuses non-IP bytes without throwing', async () => {
    const { tun } = await tunInNamespace(offload);
    const reply = collect(tun, (p) => isIcmpEcho(p, ICMP_ECHO_REPLY), 1);
    expect(tun.write(echoRequestV4(1))).toBe(true);
    expect((await reply)[0]?.[20]).toBe(ICMP_ECHO_REPLY);
    expect(tun.write(Uint8Array.of(0xff, 1, 2, 3))).toBe(false);
    expect(tun.write(new Uint8Array(0))).toBe(false);
    expect(tun.writeMany([Uint8Array.of(0x00), echoRequestV4(2)])).toBe(1);
  });

  test('8. deleting the interface under us reports an error and stops reading', async () => {
    const { tun, ns } = await tunInNamespace(offload);
    const failed = new Promise<Error>((resolveError) => tun.onError(resolveError));
    tun.onPackets(() => undefined);
    await ns.exec('ip', ['link', 'delete', tun.name]);
    expect((await failed).message).toMatch(/TUN read/);
  });

  test('9. close removes the interface and makes later writes no-ops', async () => {
    const { tun, ns } = await tunInNamespace(offload);
    tun.onPackets(() => undefined);
    tun.close();
    tun.close();
    expect(tun.write(echoRequestV4(1))).toBe(false);
    expect(tun.writeMany([echoRequestV4(1)])).toBe(0);
    await expect(ns.exec('ip', ['link', 'show', tun.name])).rejects.toThrow(/does not exist/);
    expect(() => tun.onPackets(() => undefined)).toThrow(/closed/);
  });

  test('10. readBack: the kernel answers a written request within the write, and readBack hands the answer over at once', async () => {
    const { tun } = await tunInNamespace(offload);
    tun.readBack(); // before onPackets: nothing to hand over to
    const replies: string[] = [];
    let depth = 0;
    let deepest = 0;
    let wroteInside = false;
    let eighth: () => void = () => undefined;
    const eighthArrived = new Promise<void>((resolveEighth) => (eighth = resolveEighth));
    tun.onPackets((packets) => {
      deepest = Math.max(deepest, ++depth);
      for (const p of packets) {
        if (isIcmpEcho(p, ICMP_ECHO_REPLY)) replies.push(`4:${p[27]}`);
        if (isIcmpv6Echo(p, ICMPV6_ECHO_REPLY)) replies.push(`6:${p[47]}`);
      }
      if (replies.includes('4:8')) eighth();
      if (!wroteInside) {
        // Inside the listener a read-back would overwrite this very batch: it does nothing, and the answer
        // to this write comes with the reader's next wakeup instead.
        wroteInside = true;
        tun.write(echoRequestV4(8));
        tun.readBack();
      }
      depth--;
    });
    expect(tun.writeMany([echoRequestV4(7), echoRequestV6(7)])).toBe(2);
    tun.readBack(); // no await in between: the answers were queued before writeMany returned
    expect([...replies].sort()).toEqual(['4:7', '6:7']);
    await eighthArrived;
    expect(deepest).toBe(1);
    tun.close();
    tun.readBack(); // closed: nothing
  });
});
