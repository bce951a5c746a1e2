// nodes/offload.ts: GSO split (read side) and GRO coalesce (write side) of vnet-header TUN frames. Packets
// are built here; every checksum is checked with this file's own RFC 1071 function, not the module's.
import {
  GroCoalescer,
  GsoSplitter,
  latencyFirst,
  OFFLOAD_DROP_REASONS,
  setTcpOffload,
  sum16,
  VNET_HEADER_SIZE,
  type OffloadDropReason,
} from '../../nodes/offload.js';

// ---- an independent checksum and packet builder ----
function ones(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i]! << 8) + (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

const SOURCE = { v4: [10, 0, 0, 1], v6: [0xfd, 0, ...new Array<number>(13).fill(0), 1] };
const DEST = { v4: [10, 0, 0, 2], v6: [0xfd, 0, ...new Array<number>(13).fill(0), 2] };
const TCP = 6;
const UDP = 17;
const FIN = 0x01;
const PSH = 0x08;
const ACK = 0x10;
const CWR = 0x80;

type Family = 'v4' | 'v6';
const ipLength = (family: Family) => (family === 'v4' ? 20 : 40);

function pseudo(packet: Uint8Array, family: Family, protocol: number): number {
  const ip = ipLength(family);
  const header = new Uint8Array(family === 'v4' ? 12 : 40);
  const addresses = family === 'v4' ? packet.subarray(12, 20) : packet.subarray(8, 40);
  header.set(addresses);
  const length = packet.length - ip;
  const view = new DataView(header.buffer);
  if (family === 'v4') {
    header[9] = protocol;
    view.setUint16(10, length);
  } else {
    view.setUint32(32, length);
    header[39] = protocol;
  }
  return ones(header);
}

/** The transport checksum is right: the sum over pseudo-header and segment is 0xffff. */
const transportValid = (packet: Uint8Array, family: Family, protocol = TCP) =>
  ones(packet.subarray(ipLength(family)), pseudo(packet, family, protocol)) === 0xffff;
const ipv4HeaderValid = (packet: Uint8Array) => ones(packet.subarray(0, 20)) === 0xffff;

interface TcpOptions {
  family?: Family;
  payload?: Uint8Array | number;
  sequence?: number;
  ack?: number;
  flags?: number;
  window?: number;
  id?: number;
  sourcePort?: number;
  /** TCP options (a multiple of 4 bytes). */
  options?: number[];
  checksum?: 'valid' | 'partial' | 'bad';
}

function payloadBytes(payload: Uint8Array | number, seed = 1): Uint8Array {
  if (typeof payload !== 'number') return payload;
  return Uint8Array.from({ length: payload }, (_, i) => (i * 7 + seed) & 0xff);
}

function tcpPacket({
  family = 'v4',
  payload = 100,
  sequence = 1000,
  ack = 5000,
  flags = ACK,
  window = 512,
  id = 77,
  sourcePort = 40000,
  options = [],
  checksum = 'valid',
}: TcpOptions = {}): Uint8Array {
  const data = payloadBytes(payload);
  const ip = ipLength(family);
  const tcp = 20 + options.length;
  const packet = new Uint8Array(ip + tcp + data.length);
  const view = new DataView(packet.buffer);
  if (family === 'v4') {
    packet[0] = 0x45;
    view.setUint16(2, packet.length);
    view.setUint16(4, id);
    packet[6] = 0x40; // DF
    packet[8] = 64;
    packet[9] = TCP;
    packet.set(SOURCE.v4, 12);
    packet.set(DEST.v4, 16);
    view.setUint16(10, ~ones(packet.subarray(0, 20)) & 0xffff);
  } else {
    packet[0] = 0x60;
    view.setUint16(4, packet.length - 40);
    packet[6] = TCP;
    packet[7] = 64;
    packet.set(SOURCE.v6, 8);
    packet.set(DEST.v6, 24);
  }
  view.setUint16(ip, sourcePort);
  view.setUint16(ip + 2, 5201);
  view.setUint32(ip + 4, sequence >>> 0);
  view.setUint32(ip + 8, ack);
  packet[ip + 12] = (tcp / 4) << 4;
  packet[ip + 13] = flags;
  view.setUint16(ip + 14, window);
  packet.set(options, ip + 20);
  packet.set(data, ip + tcp);
  const partial = pseudo(packet, family, TCP);
  if (checksum === 'partial') view.setUint16(ip + 16, partial);
  else view.setUint16(ip + 16, (~ones(packet.subarray(ip), partial) & 0xffff) ^ (checksum === 'bad' ? 1 : 0));
  return packet;
}

function udpPacket(family: Family, length: number, checksum: 'valid' | 'partial'): Uint8Array {
  const ip = ipLength(family);
  const packet = tcpPacket({ family, payload: length + 8 - 20 });
  const view = new DataView(packet.buffer);
  if (family === 'v4') {
    packet[9] = UDP;
    view.setUint16(10, 0);
    view.setUint16(10, ~ones(packet.subarray(0, 20)) & 0xffff);
  } else packet[6] = UDP;
  view.setUint16(ip + 4, packet.length - ip);
  view.setUint16(ip + 6, 0);
  const partial = pseudo(packet, family, UDP);
  view.setUint16(ip + 6, checksum === 'partial' ? partial : ~ones(packet.subarray(ip), partial) & 0xffff);
  return packet;
}

interface VnetHeader {
  flags?: number;
  gsoType?: number;
  hdrLen?: number;
  gsoSize?: number;
  csumStart?: number;
  csumOffset?: number;
}

function frame(packet: Uint8Array, header: VnetHeader = {}): Uint8Array {
  const bytes = new Uint8Array(VNET_HEADER_SIZE + packet.length);
  const view = new DataView(bytes.buffer);
  bytes[0] = header.flags ?? 0;
  bytes[1] = header.gsoType ?? 0;
  view.setUint16(2, header.hdrLen ?? 0, true);
  view.setUint16(4, header.gsoSize ?? 0, true);
  view.setUint16(6, header.csumStart ?? 0, true);
  view.setUint16(8, header.csumOffset ?? 0, true);
  bytes.set(packet, VNET_HEADER_SIZE);
  return bytes;
}

const readHeader = (bytes: Uint8Array) => {
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  return {
    flags: bytes[0],
    gsoType: bytes[1],
    hdrLen: view.getUint16(2, true),
    gsoSize: view.getUint16(4, true),
    csumStart: view.getUint16(6, true),
    csumOffset: view.getUint16(8, true),
  };
};

/** A TSO frame as the kernel hands it over: one packet, NEEDS_CSUM with the pseudo-header sum. */
function superSegment(
  family: Family,
  payload: number,
  gsoSize: number,
  options: TcpOptions = {},
): Uint8Array {
  const packet = tcpPacket({ family, payload, checksum: 'partial', ...options });
  const ip = ipLength(family);
  return frame(packet, {
    flags: 1,
    gsoType: family === 'v4' ? 1 : 4,
    hdrLen: ip + 20 + (options.options?.length ?? 0),
    gsoSize,
    csumStart: ip,
    csumOffset: 16,
  });
}

/** An IPv6 packet with a hop-by-hop header between its IP header and TCP. */
function withHopByHop(plain: Uint8Array, hopByHop: Uint8Array): Uint8Array {
  const packet = concat([plain.subarray(0, 40), hopByHop, plain.subarray(40)]);
  packet[6] = 0; // hop-by-hop options first
  new DataView(packet.buffer).setUint16(4, packet.length - 40);
  return packet;
}

/** The frame of a TCPv6 super-segment whose TCP header starts at csumStart. */
const v6SuperSegment = (packet: Uint8Array, hdrLen: number, gsoSize: number, csumStart: number) =>
  frame(packet, { flags: 1, gsoType: 4, hdrLen, gsoSize, csumStart, csumOffset: 16 });

function split(frames: Uint8Array[]): { packets: Uint8Array[]; drops: Record<OffloadDropReason, number> } {
  const splitter = new GsoSplitter();
  const packets: Uint8Array[] = [];
  splitter.split(frames, packets);
  return { packets: packets.map((p) => p.slice()), drops: { ...splitter.drops } };
}

const field16 = (p: Uint8Array, offset: number) => (p[offset]! << 8) | p[offset + 1]!;
const field32 = (p: Uint8Array, offset: number) => new DataView(p.buffer, p.byteOffset).getUint32(offset);
const tcpPayload = (p: Uint8Array, family: Family) =>
  p.subarray(ipLength(family) + (p[ipLength(family) + 12]! >> 4) * 4);
const concat = (parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((part) => [...part]));
const noDrops = Object.fromEntries(OFFLOAD_DROP_REASONS.map((r) => [r, 0]));

describe('sum16: the word-wise sum equals the byte-wise reference', () => {
  const buffer = Uint8Array.from({ length: 70000 }, (_, i) => (i * 131 + (i >> 8)) & 0xff);
  test.each([
    // n, offset of the view into its buffer (alignment), start within the view, length
    [1, 0, 0, 65536],
    [2, 1, 0, 3001],
    [3, 2, 0, 3000],
    [4, 3, 5, 1499],
    [5, 4, 2, 64],
    [6, 6, 1, 63],
    [7, 0, 0, 0],
    [8, 2, 0, 1],
  ])('%i. view at +%i, from %i, %i bytes', (_n, viewOffset, start, length) => {
    const view = new Uint8Array(buffer.buffer, viewOffset, start + length);
    const reference = ones(view.subarray(start));
    expect(sum16(view, start, start + length)).toBe(reference);
    expect(sum16(view, start, start + length, 0xfffe)).toBe(ones(view.subarray(start), 0xfffe));
  });
});

describe('GsoSplitter: super-segments into MTU-sized segments', () => {
  test.each([
    // n, family, payload, gso_size, expected segment payloads, flags on the super-segment
    [1, 'v4', 4000, 1400, [1400, 1400, 1200], ACK | PSH | FIN | CWR],
    [2, 'v6', 4000, 1380, [1380, 1380, 1240], ACK | PSH],
    [3, 'v4', 2800, 1400, [1400, 1400], ACK],
    [4, 'v6', 65535 - 40 - 20, 1440, [...new Array<number>(45).fill(1440), 65475 - 45 * 1440], ACK],
    [5, 'v4', 900, 1400, [900], ACK | PSH],
  ] as const)('%i. %s %i bytes at gso_size %i', (_n, family, payload, gsoSize, sizes, flags) => {
    const sequence = 0xffffff00; // wraps within the run
    const input = superSegment(family, payload, gsoSize, { flags, sequence, id: 0xfffe });
    const { packets, drops } = split([input]);
    expect(drops).toEqual(noDrops);
    expect(packets.map((p) => tcpPayload(p, family).length)).toEqual(sizes);
    expect(concat(packets.map((p) => tcpPayload(p, family)))).toEqual(payloadBytes(payload));
    const ip = ipLength(family);
    let expectedSequence = sequence;
    packets.forEach((p, i) => {
      const last = i === packets.length - 1;
      expect(transportValid(p, family)).toBe(true);
      expect(field32(p, ip + 4)).toBe(expectedSequence >>> 0);
      expectedSequence += sizes[i]!;
      expect(p[ip + 13]).toBe(flags & ~(last ? 0 : FIN | PSH) & ~(i === 0 ? 0 : CWR));
      if (family === 'v4') {
        expect(ipv4HeaderValid(p)).toBe(true);
        expect(field16(p, 2)).toBe(p.length);
        expect(field16(p, 4)).toBe((0xfffe + i) & 0xffff);
      } else {
        expect(field16(p, 4)).toBe(p.length - 40);
      }
    });
  });

  test.each([
    [
      6,
      'TCP v4',
      frame(tcpPacket({ checksum: 'partial' }), { flags: 1, csumStart: 20, csumOffset: 16 }),
      'v4',
      TCP,
    ],
    [
      7,
      'TCP v6',
      frame(tcpPacket({ family: 'v6', checksum: 'partial' }), { flags: 1, csumStart: 40, csumOffset: 16 }),
      'v6',
      TCP,
    ],
    [
      8,
      'UDP v4',
      frame(udpPacket('v4', 300, 'partial'), { flags: 1, csumStart: 20, csumOffset: 6 }),
      'v4',
      UDP,
    ],
    [
      9,
      'UDP v6',
      frame(udpPacket('v6', 301, 'partial'), { flags: 1, csumStart: 40, csumOffset: 6 }),
      'v6',
      UDP,
    ],
  ] as const)(
    '%i. NEEDS_CSUM without GSO (%s): the partial checksum is completed',
    (_n, _what, input, family, protocol) => {
      const { packets } = split([input]);
      expect(packets).toHaveLength(1);
      expect(transportValid(packets[0]!, family, protocol)).toBe(true);
    },
  );

  test('10. a frame with a zero header passes through unchanged', () => {
    const packet = tcpPacket({ checksum: 'bad' });
    expect(split([frame(packet)]).packets).toEqual([packet]);
  });

  test('11. an IPv6 super-segment behind a hop-by-hop header: TCP found where csum_start says', () => {
    const plain = tcpPacket({ family: 'v6', payload: 3000, checksum: 'partial', flags: ACK | PSH });
    const hopByHop = Uint8Array.of(TCP, 0, 1, 4, 0, 0, 0, 0); // next header TCP, 8 bytes, PadN
    const { packets, drops } = split([v6SuperSegment(withHopByHop(plain, hopByHop), 68, 1400, 48)]);
    expect(drops).toEqual(noDrops);
    expect(packets.map((p) => p.length)).toEqual([68 + 1400, 68 + 1400, 68 + 200]);
    for (const p of packets) {
      expect(p.subarray(40, 48)).toEqual(hopByHop);
      expect(field16(p, 4)).toBe(p.length - 40);
      // the TCP pseudo-header counts the TCP segment only, not the extension header
      const tcp = p.subarray(48);
      expect(ones(tcp, pseudo(concat([p.subarray(0, 40), tcp]), 'v6', TCP))).toBe(0xffff);
    }
    expect(concat(packets.map((p) => p.subarray(68)))).toEqual(payloadBytes(3000));
  });

  test('14. long IPv6 extension headers and a hdr_len that understates them: the split has room for every segment', () => {
    // csum_start says where TCP begins (1,000 bytes in); hdr_len 0 says nothing. Each segment repeats those
    // 1,000 bytes: the slab is sized from csum_start, not hdr_len alone.
    const plain = tcpPacket({ family: 'v6', payload: 4000, checksum: 'partial', flags: ACK });
    const hopByHop = new Uint8Array(960);
    hopByHop.set([TCP, 960 / 8 - 1]); // next header TCP, 960 bytes of Pad1 options
    const { packets, drops } = split([v6SuperSegment(withHopByHop(plain, hopByHop), 0, 8, 1000)]);
    expect(drops).toEqual(noDrops);
    expect(packets.map((p) => p.length)).toEqual(new Array<number>(500).fill(1000 + 20 + 8));
    expect(concat(packets.map((p) => p.subarray(1020)))).toEqual(payloadBytes(4000));
  });

  test('12. reads laid out alike (one reused read buffer) get the same segment views back, each holding its own read', () => {
    // As the TUN reader hands frames over: views into one read buffer, refilled for every read.
    const readBuffer = new Uint8Array(16384);
    const read = (...frames: Uint8Array[]): Uint8Array[] => {
      let at = 0;
      return frames.map((f) => {
        readBuffer.set(f, at);
        at += f.length;
        return readBuffer.subarray(at - f.length, at);
      });
    };
    const splitter = new GsoSplitter();
    const splitRead = (frames: Uint8Array[]): Uint8Array[] => {
      const packets: Uint8Array[] = [];
      splitter.split(frames, packets);
      return packets;
    };
    const reads = [1, 2, 3].map((seed) => [
      superSegment('v4', 3000, 1400, { payload: payloadBytes(3000, seed) }),
      frame(tcpPacket({ payload: payloadBytes(60, seed) })),
    ]);
    const first = splitRead(read(...reads[0]!));
    const firstBytes = first.map((p) => p.slice());
    const second = splitRead(read(...reads[1]!));
    expect(second).toHaveLength(first.length);
    second.forEach((packet, i) => expect(packet).toBe(first[i])); // no new view
    expect(second.map((p) => p.slice())).toEqual(split(reads[1]!).packets);
    expect(second.map((p) => p.slice())).not.toEqual(firstBytes);
    // Laid out otherwise (another segment size): views of their own, bytes still right.
    const third = splitRead(read(superSegment('v4', 3000, 1000, { payload: payloadBytes(3000, 3) })));
    expect(third.map((p) => p.slice())).toEqual(
      split([superSegment('v4', 3000, 1000, { payload: payloadBytes(3000, 3) })]).packets,
    );
  });

  test('13. segments start 8-byte aligned in the slab, also those whose length is not a multiple of 8', () => {
    // 1380-byte payloads behind 40 bytes of IPv4 and TCP: 1,420-byte segments. A crypto thread's ring copies
    // them word by word only when aligned as its records are (threads/ring.ts copyIn).
    const packets: Uint8Array[] = [];
    new GsoSplitter().split([superSegment('v4', 4000, 1380, { flags: ACK })], packets);
    expect(packets.map((p) => p.length)).toEqual([1420, 1420, 1280]);
    expect(packets.map((p) => p.byteOffset % 8)).toEqual([0, 0, 0]);
  });

  const good = superSegment('v4', 3000, 1400);
  const v6InV4 = superSegment('v6', 3000, 1400);
  v6InV4[1] = 1; // TCPV4 over an IPv6 packet
  const fragment = superSegment('v4', 3000, 1400);
  fragment[VNET_HEADER_SIZE + 6] = 0x20; // MF
  test.each([
    [1, 'nothing after the header', Uint8Array.of(1, 1, 0, 0), 'vnet_header_short'],
    [2, 'a header and no packet', new Uint8Array(VNET_HEADER_SIZE), 'vnet_header_short'],
    [
      3,
      'UDP GSO (never asked for)',
      frame(udpPacket('v4', 3000, 'partial'), {
        flags: 1,
        gsoType: 3,
        gsoSize: 1400,
        csumStart: 20,
        csumOffset: 6,
      }),
      'gso_unsupported',
    ],
    [
      4,
      'csum_start not at the TCP header',
      (() => {
        const f = good.slice();
        f[6] = 24;
        return f;
      })(),
      'gso_malformed',
    ],
    [
      5,
      'gso_size 0',
      (() => {
        const f = good.slice();
        f[4] = f[5] = 0;
        return f;
      })(),
      'gso_malformed',
    ],
    [6, 'TCPV4 over an IPv6 packet', v6InV4, 'gso_malformed'],
    [7, 'an IPv4 fragment', fragment, 'gso_malformed'],
    [8, 'TCP header cut short', good.slice(0, VNET_HEADER_SIZE + 30), 'gso_malformed'],
    [
      9,
      'NEEDS_CSUM past the end',
      frame(tcpPacket(), { flags: 1, csumStart: 20, csumOffset: 200 }),
      'checksum_offset_invalid',
    ],
    [
      10,
      'NEEDS_CSUM inside the IP header',
      frame(tcpPacket(), { flags: 1, csumStart: 2, csumOffset: 16 }),
      'checksum_offset_invalid',
    ],
  ] as const)('drop %i. %s: dropped and counted, the batch goes on', (_n, _what, bad, reason) => {
    const { packets, drops } = split([bad, good]);
    expect(drops).toEqual({ ...noDrops, [reason]: 1 });
    expect(packets).toHaveLength(3); // the good frame's segments
    expect(packets.every((p) => transportValid(p, 'v4'))).toBe(true);
  });
});

function coalesce(packets: Uint8Array[]): Uint8Array[] {
  return new GroCoalescer().coalesce(packets).map((f) => f.slice());
}

/** The frames split back into plain packets, with the kernel's view of their checksums. */
function resplit(frames: Uint8Array[]): Uint8Array[] {
  return split(frames).packets;
}

/** n full segments of one flow, as a sender with TSO off would put them on the wire. */
function run(family: Family, n: number, size = 1400, options: TcpOptions = {}): Uint8Array[] {
  return Array.from({ length: n }, (_, i) =>
    tcpPacket({ family, payload: payloadBytes(size, i), sequence: 1000 + i * size, id: 100 + i, ...options }),
  );
}

describe('GroCoalescer: decrypted segments into super-segments', () => {
  test.each([
    [1, 'v4'],
    [2, 'v6'],
  ] as const)(
    '%i. split then coalesce (%s) gives back the super-segment, and splitting that again the same segments',
    (_n, family) => {
      const original = superSegment(family, 10000, 1400, { flags: ACK | PSH });
      const segments = resplit([original]);
      const frames = coalesce(segments);
      expect(frames).toHaveLength(1);
      const ip = ipLength(family);
      expect(readHeader(frames[0]!)).toEqual({
        flags: 1,
        gsoType: family === 'v4' ? 1 : 4,
        hdrLen: ip + 20,
        gsoSize: 1400,
        csumStart: ip,
        csumOffset: 16,
      });
      // byte for byte the kernel's super-segment: IP header, TCP header with the pseudo-header sum, payload
      expect(frames[0]!.subarray(VNET_HEADER_SIZE)).toEqual(original.subarray(VNET_HEADER_SIZE));
      expect(resplit(frames)).toEqual(segments);
    },
  );

  test('3. two interleaved flows: one frame each, payload in order', () => {
    const a = run('v4', 4);
    const b = run('v4', 4, 1400, { sourcePort: 40001 });
    const frames = coalesce([a[0]!, b[0]!, a[1]!, b[1]!, a[2]!, b[2]!, a[3]!, b[3]!]);
    expect(frames).toHaveLength(2);
    expect(resplit(frames)).toEqual([...a, ...b]);
  });

  test.each([
    // n, what, packets, how they group into frames (indexes)
    [
      4,
      'a gap in the sequence starts a new frame',
      () => [
        ...run('v4', 2),
        ...[9000, 10400].map((sequence, i) => tcpPacket({ payload: 1400, sequence, id: 200 + i })),
      ],
      [
        [0, 1],
        [2, 3],
      ],
    ],
    [
      5,
      'FIN in the middle is written alone, in its place',
      () => {
        const r = run('v4', 5);
        r[2] = tcpPacket({
          payload: payloadBytes(1400, 2),
          sequence: 1000 + 2 * 1400,
          flags: ACK | FIN,
          id: 102,
        });
        return r;
      },
      [[0, 1], [2], [3, 4]],
    ],
    [
      6,
      'a bad TCP checksum is never merged',
      () => {
        const r = run('v6', 4);
        r[1] = tcpPacket({ family: 'v6', payload: payloadBytes(1400, 1), sequence: 2400, checksum: 'bad' });
        return r;
      },
      [[0], [1], [2, 3]],
    ],
    [
      7,
      'a different window is a different run',
      () => {
        const r = run('v4', 4);
        r[2] = tcpPacket({
          payload: payloadBytes(1400, 2),
          sequence: 1000 + 2 * 1400,
          window: 1024,
          id: 102,
        });
        return r;
      },
      [[0, 1], [2], [3]],
    ],
    [
      8,
      'different TCP options (timestamps) are a different run',
      () =>
        run('v6', 3).map((_, i) =>
          tcpPacket({
            family: 'v6',
            payload: payloadBytes(1400, i),
            sequence: 1000 + i * 1400,
            options: [1, 1, 8, 10, 0, 0, 0, i < 2 ? 1 : 2, 0, 0, 0, 0],
          }),
        ),
      [[0, 1], [2]],
    ],
    [
      9,
      'a short segment ends the run',
      () => [
        ...run('v4', 1),
        tcpPacket({ payload: payloadBytes(500, 1), sequence: 2400, id: 101 }),
        tcpPacket({ payload: payloadBytes(1400, 2), sequence: 2900, id: 102 }),
      ],
      [[0, 1], [2]],
    ],
    [
      10,
      'PSH ends the run and stays on the merged header',
      () => {
        const r = run('v4', 4);
        r[1] = tcpPacket({ payload: payloadBytes(1400, 1), sequence: 2400, flags: ACK | PSH, id: 101 });
        return r;
      },
      [
        [0, 1],
        [2, 3],
      ],
    ],
    [
      11,
      'UDP and pure ACKs are written alone',
      () => [udpPacket('v4', 200, 'valid'), tcpPacket({ payload: 0 }), udpPacket('v6', 100, 'valid')],
      [[0], [1], [2]],
    ],
    [
      12,
      'a super-segment stops below 64 KiB',
      () => run('v4', 50),
      [[...Array(46).keys()], [46, 47, 48, 49]],
    ],
    [
      13,
      'IPv4 and IPv6 of the same ports are different flows',
      () => [run('v4', 1)[0]!, run('v6', 1)[0]!, run('v4', 2)[1]!, run('v6', 2)[1]!],
      [
        [0, 2],
        [1, 3],
      ],
    ],
    [
      14,
      'an IPv4 header with a bad checksum is never merged',
      () => {
        const r = run('v4', 3);
        r[1]![10]! ^= 1;
        return r;
      },
      [[0], [1], [2]],
    ],
  ] as const)('%i. %s', (_n, _what, make, groups) => {
    const packets = make();
    const frames = coalesce(packets);
    expect(frames).toHaveLength(groups.length);
    frames.forEach((f, i) => {
      const members = groups[i]!.map((index) => packets[index]!);
      const header = readHeader(f);
      const family: Family = f[VNET_HEADER_SIZE]! >> 4 === 6 ? 'v6' : 'v4';
      if (members.length === 1) {
        expect(header).toEqual({ flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 });
        expect(f.subarray(VNET_HEADER_SIZE)).toEqual(members[0]);
        return;
      }
      expect(header.gsoSize).toBe(tcpPayload(members[0]!, family).length);
      // the kernel would segment it back into exactly the members (ids counting from the first)
      expect(resplit([f])).toEqual(
        members.map((m, k) => (family === 'v4' ? withId(m, field16(members[0]!, 4) + k) : m)),
      );
    });
  });

  test('15. batches laid out alike get the same frames array and frame views back, each holding its own batch', () => {
    const coalescer = new GroCoalescer();
    const first = coalescer.coalesce([...run('v4', 4), ...run('v6', 2)]);
    const firstFrames = [...first];
    const firstBytes = first.map((f) => f.slice());
    expect(Array.from(coalescer.packetsPerFrame).slice(0, first.length)).toEqual([4, 2]);
    const next = [...run('v4', 4, 1400, { ack: 7 }), ...run('v6', 2, 1400, { ack: 7 })];
    const second = coalescer.coalesce(next);
    expect(second).toBe(first); // the same array, refilled
    second.forEach((frame, i) => expect(frame).toBe(firstFrames[i])); // no new view
    expect(second.map((f) => f.slice())).toEqual(coalesce(next));
    expect(second.map((f) => f.slice())).not.toEqual(firstBytes);
    // Fewer frames: the array is cut to them.
    expect(coalescer.coalesce(run('v4', 2))).toHaveLength(1);
  });

  test('16. every frame’s packet starts 8-byte aligned behind its 10-byte header, whatever the lengths before it', () => {
    // Packets copied out of a crypto thread's ring (16-byte aligned) then copy word by word.
    const batch = [
      udpPacket('v4', 301, 'valid'),
      ...run('v4', 3),
      udpPacket('v6', 45, 'valid'),
      udpPacket('v4', 1421, 'valid'),
      ...run('v6', 2, 1381),
    ];
    const frames = new GroCoalescer().coalesce(batch);
    expect(frames).toHaveLength(5);
    expect(frames.map((f) => (f.byteOffset + VNET_HEADER_SIZE) % 8)).toEqual([0, 0, 0, 0, 0]);
    expect(resplit([...frames])).toEqual(batch);
  });
});

describe('setTcpOffload: a TCP packet made into the frame a TUN with offloads hands over', () => {
  test.each([
    [1, 'IPv4 super-segment', 'v4', 4000, 1380],
    [2, 'IPv6 super-segment', 'v6', 4000, 1360],
    [3, 'IPv4 segment, no GSO (checksum only)', 'v4', 101, 0],
    [4, 'IPv6 bare ACK, no GSO', 'v6', 0, 0],
  ] as const)(
    '%i. %s: the header and partial checksum the kernel writes',
    (_n, _what, family, payload, gsoSize) => {
      const packet = tcpPacket({ family, payload, checksum: 'bad' });
      const made = new Uint8Array(VNET_HEADER_SIZE + packet.length);
      made.set(packet, VNET_HEADER_SIZE);
      const ip = ipLength(family);
      setTcpOffload(made, 0, made.subarray(VNET_HEADER_SIZE), ip, ip + 20, gsoSize);
      const gsoType = gsoSize === 0 ? 0 : family === 'v4' ? 1 : 4;
      const header = { flags: 1, gsoType, hdrLen: ip + 20, gsoSize, csumStart: ip, csumOffset: 16 };
      const expected = frame(tcpPacket({ family, payload, checksum: 'partial' }), header);
      expect(made).toEqual(expected);
      // and the split makes it into valid segments
      const { packets } = split([made]);
      expect(packets).toHaveLength(gsoSize === 0 ? 1 : Math.ceil(payload / gsoSize));
      for (const p of packets) expect(transportValid(p, family)).toBe(true);
    },
  );
});

/** An IPv4 packet with another id (and so header checksum). */
function withId(packet: Uint8Array, id: number): Uint8Array {
  const copy = packet.slice();
  if (copy[0]! >> 4 !== 4) return copy;
  const view = new DataView(copy.buffer);
  view.setUint16(4, id);
  view.setUint16(10, 0);
  view.setUint16(10, ~ones(copy.subarray(0, 20)) & 0xffff);
  return copy;
}

describe('latencyFirst: ICMP and UDP ahead of bulk TCP in a batch read from the TUN', () => {
  /** A bare IP header of `protocol` (the only field latencyFirst reads), tagged in its last byte. */
  const bare = (family: Family, protocol: number, tag: number): Uint8Array => {
    const packet = new Uint8Array(ipLength(family));
    packet[0] = family === 'v4' ? 0x45 : 0x60;
    packet[family === 'v4' ? 9 : 6] = protocol;
    packet[packet.length - 1] = tag;
    return packet;
  };
  const ICMP = 1;
  const ICMPV6 = 58;
  const HOP_BY_HOP = 0; // an IPv6 extension header: keeps its place

  test.each([
    // [n, batch as [family, protocol, tag], expected order of tags]
    [
      1,
      [
        ['v4', TCP, 1],
        ['v4', TCP, 2],
        ['v4', ICMP, 3],
        ['v4', TCP, 4],
      ],
      [3, 1, 2, 4],
    ],
    [
      2,
      [
        ['v6', TCP, 1],
        ['v6', UDP, 2],
        ['v6', ICMPV6, 3],
        ['v4', UDP, 4],
      ],
      [2, 3, 4, 1],
    ],
    [
      3,
      [
        ['v4', ICMP, 1],
        ['v4', ICMP, 2],
      ],
      [1, 2],
    ], // all latency-first: unchanged
    [
      4,
      [
        ['v6', TCP, 1],
        ['v6', HOP_BY_HOP, 2],
        ['v4', TCP, 3],
      ],
      [1, 2, 3],
    ], // none: unchanged
    [
      5,
      [
        ['v4', TCP, 1],
        ['v6', UDP, 2],
        ['v4', TCP, 3],
        ['v6', UDP, 4],
      ],
      [2, 4, 1, 3],
    ], // each group in order
  ] as const)('%i. the batch is reordered in place, stably', (_n, batch, expected) => {
    const packets = batch.map(([family, protocol, tag]) => bare(family, protocol, tag));
    const same = packets;
    latencyFirst(packets);
    expect(packets).toBe(same);
    expect(packets.map((packet) => packet[packet.length - 1])).toEqual(expected);
  });

  test('6. TCP segments and a ping read in one batch: the ping first, the segments in sequence after', () => {
    const splitter = new GsoSplitter();
    const ping = bare('v4', ICMP, 9);
    const frame = new Uint8Array(VNET_HEADER_SIZE + ping.length);
    frame.set(ping, VNET_HEADER_SIZE); // GSO none, no checksum to complete
    const segments = run('v4', 4);
    const packets: Uint8Array[] = [];
    splitter.split(
      [...segments.map((segment) => Uint8Array.of(...new Uint8Array(VNET_HEADER_SIZE), ...segment)), frame],
      packets,
    );
    latencyFirst(packets);
    expect(packets[0]).toEqual(ping);
    expect(packets.slice(1)).toEqual(segments);
  });

  test('7. short and empty packets keep their place (no protocol to read)', () => {
    const packets = [new Uint8Array(0), Uint8Array.of(0x45, 0, 0), bare('v4', UDP, 3)];
    latencyFirst(packets);
    expect(packets.map((packet) => packet.length)).toEqual([20, 0, 3]);
  });
});
