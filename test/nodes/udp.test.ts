// The daemon's UDP transport on loopback, IPv4 and IPv6, against plain dgram sockets and itself.
import { execFile } from 'node:child_process';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { type Endpoint, endpointAddress } from '../../crypto/peer.js';
import {
  noUdpOffloadCounts,
  noUdpSendCounts,
  normaliseAddress,
  openUdp,
  socketAddress,
  type UdpEndpoint,
  type UdpTransport,
} from '../../nodes/udp.js';
import { descriptorsOpenedSince, openDescriptors } from '../helpers/fds.js';
import { eventually } from '../helpers/eventually.js';
import { builtProgram } from '../helpers/repo.js';

const open: Array<UdpTransport | Socket> = [];
// The mode the current describe block runs openUdp in (set by its beforeAll).
const mode = { batched: true };
afterEach(async () => {
  await Promise.all(
    open
      .splice(0)
      .map((item) =>
        'port' in item ? item.close() : new Promise<void>((resolveClose) => item.close(() => resolveClose())),
      ),
  );
});

async function transport(options: Parameters<typeof openUdp>[0] = {}): Promise<UdpTransport> {
  const udp = await openUdp({ batched: mode.batched, ...options });
  open.push(udp);
  return udp;
}

async function plainSocket(type: 'udp4' | 'udp6', address: string): Promise<Socket> {
  const socket = createSocket(type);
  open.push(socket);
  await new Promise<void>((resolveBind) => socket.bind(0, address, () => resolveBind()));
  return socket;
}

function nextDatagram(udp: UdpTransport): Promise<{ datagram: Uint8Array; from: UdpEndpoint }> {
  return new Promise((resolveNext) => udp.onDatagram((datagram, from) => resolveNext({ datagram, from })));
}

function nextMessage(socket: Socket): Promise<{ message: Buffer; remote: RemoteInfo }> {
  return new Promise((resolveNext) =>
    socket.once('message', (message, remote) => resolveNext({ message, remote })),
  );
}

describe('normaliseAddress / socketAddress', () => {
  test.each([
    [1, '::ffff:192.0.2.1', '192.0.2.1'],
    [2, '::FFFF:10.0.0.1', '10.0.0.1'],
    [3, '192.0.2.1', '192.0.2.1'],
    [4, '2001:db8::1', '2001:db8::1'],
    [5, '::1', '::1'],
    [6, '::ffff:', '::ffff:'],
    [7, '::ffff:1:2', '::ffff:1:2'], // mapped prefix but not a dotted quad: a real IPv6 address
    [8, 'fe80::1%veth0', 'fe80::1%veth0'],
  ])('%i. %s → %s', (_n, input, expected) => {
    expect(normaliseAddress(input)).toBe(expected);
  });

  test.each([
    [1, '192.0.2.1', 'udp6', '::ffff:192.0.2.1'],
    [2, '2001:db8::1', 'udp6', '2001:db8::1'],
    [3, '192.0.2.1', 'udp4', '192.0.2.1'],
    [4, '2001:db8::1', 'udp4', undefined],
    [5, 'example.com', 'udp6', undefined],
    [6, '', 'udp4', undefined],
  ] as const)('%i. socketAddress(%s, %s) = %s', (_n, address, family, expected) => {
    expect(socketAddress(address, family)).toBe(expected);
  });

  test('normalising a mapped IPv4 address and mapping it back is the identity', () => {
    fc.assert(
      fc.property(fc.ipV4(), (v4) => {
        expect(normaliseAddress(socketAddress(v4, 'udp6')!)).toBe(v4);
      }),
    );
  });

  test('arbitrary strings never throw', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        expect(typeof normaliseAddress(text)).toBe('string');
        socketAddress(text, 'udp6');
      }),
    );
  });
});

describe.each([
  ['batched (addon: recvmmsg/sendmmsg, pktinfo)', true],
  ['dgram', false],
])('openUdp on loopback, %s', (_label, batched) => {
  beforeAll(() => (mode.batched = batched));
  /** What a received endpoint holds: the batched socket also names our address it arrived at. */
  const endpoint = (address: string, port: number) =>
    batched ? { address, port, local: address } : { address, port };

  test('1. an IPv4 sender appears as a plain IPv4 endpoint, and replies reach it', async () => {
    const udp = await transport();
    const peer = await plainSocket('udp4', '127.0.0.1');
    const received = nextDatagram(udp);
    peer.send(Buffer.from('hello v4'), udp.port, '127.0.0.1');
    const { datagram, from } = await received;
    expect(Buffer.from(datagram).toString()).toBe('hello v4');
    expect(from).toEqual(endpoint('127.0.0.1', peer.address().port));
    // The bytes the engine keys cookies and rate limits by: the batched socket's endpoints carry them.
    expect(endpointAddress(from)).toEqual(Uint8Array.of(127, 0, 0, 1));
    expect((from as Endpoint).addressBytes !== undefined).toBe(batched);

    const reply = nextMessage(peer);
    udp.send(new TextEncoder().encode('reply v4'), from);
    const { message, remote } = await reply;
    expect(message.toString()).toBe('reply v4');
    expect(remote.port).toBe(udp.port);
  });

  test('2. an IPv6 sender appears as an IPv6 endpoint, and replies reach it', async () => {
    const udp = await transport();
    const peer = await plainSocket('udp6', '::1');
    const received = nextDatagram(udp);
    peer.send(Buffer.from('hello v6'), udp.port, '::1');
    const { datagram, from } = await received;
    expect(Buffer.from(datagram).toString()).toBe('hello v6');
    expect(from).toEqual(endpoint('::1', peer.address().port));
    expect(endpointAddress(from)).toEqual(Uint8Array.of(...new Array(15).fill(0), 1));
    expect((from as Endpoint).addressBytes !== undefined).toBe(batched);

    const reply = nextMessage(peer);
    udp.send(new TextEncoder().encode('reply v6'), from);
    expect((await reply).message.toString()).toBe('reply v6');
  });

  test('3. two transports exchange datagrams over both families', async () => {
    const [left, right] = [await transport(), await transport()];
    for (const address of ['127.0.0.1', '::1']) {
      const received = nextDatagram(right);
      left.send(Uint8Array.of(1, 2, 3, 4), { address, port: right.port });
      const { datagram, from } = await received;
      expect([...datagram]).toEqual([1, 2, 3, 4]);
      expect(from).toEqual(endpoint(address, left.port));
    }
  });

  test('4. a requested port is bound, and binding it twice fails with EADDRINUSE', async () => {
    const probe = await openUdp({ batched });
    const port = probe.port;
    await probe.close();
    const udp = await transport({ port });
    expect(udp.port).toBe(port);
    await expect(openUdp({ port, batched })).rejects.toThrow(/EADDRINUSE/);
  });

  test('5. an IPv4 host binds an IPv4-only socket that drops IPv6 destinations', async () => {
    const udp = await transport({ host: '127.0.0.1' });
    const peer = await plainSocket('udp4', '127.0.0.1');
    const received = nextMessage(peer);
    udp.send(Uint8Array.of(9), { address: '::1', port: peer.address().port }); // dropped, no throw
    udp.send(Uint8Array.of(7), { address: '127.0.0.1', port: peer.address().port });
    expect([...(await received).message]).toEqual([7]);
  });

  test('6. sends to impossible endpoints are dropped without throwing', async () => {
    const udp = await transport();
    for (const to of [
      { address: '127.0.0.1', port: 0 },
      { address: '127.0.0.1', port: 70000 },
      { address: 'not-an-ip', port: 51820 },
      { address: '127.0.0.1', port: 1.5 },
    ])
      expect(() => udp.send(Uint8Array.of(1), to)).not.toThrow();
  });

  test('7. socket buffers are raised to the request, up to the kernel maximum', async () => {
    const wanted = 4 * 1024 * 1024;
    const udp = await transport({ receiveBufferSize: wanted, sendBufferSize: wanted });
    const cap = (file: string) => Number(readFileSync(`/proc/sys/net/core/${file}`, 'utf8'));
    const sizes = udp.bufferSizes();
    // Linux doubles the requested value for bookkeeping; the batched socket, as root, may pass the cap
    // (SO_RCVBUFFORCE, as wireguard-go).
    for (const [size, file] of [
      [sizes.receive, 'rmem_max'],
      [sizes.send, 'wmem_max'],
    ] as const) {
      if (batched) expect([2 * Math.min(wanted, cap(file)), 2 * wanted]).toContain(size);
      else expect(size).toBe(2 * Math.min(wanted, cap(file)));
    }
  });

  test('8. after close nothing is delivered and send is a no-op; close twice is fine', async () => {
    const udp = await openUdp({ batched });
    let delivered = 0;
    udp.onDatagram(() => delivered++);
    await udp.close();
    await udp.close();
    expect(() => udp.send(Uint8Array.of(1), { address: '127.0.0.1', port: 9 })).not.toThrow();
    const peer = await plainSocket('udp4', '127.0.0.1');
    await new Promise<void>((resolveSend) =>
      peer.send(Uint8Array.of(1), udp.port, '127.0.0.1', () => resolveSend()),
    );
    await new Promise((resolveWait) => setTimeout(resolveWait, 50));
    expect(delivered).toBe(0);
  });

  test('9. a failed bind leaves no descriptor behind', async () => {
    const udp = await transport({ host: '127.0.0.1' });
    const before = openDescriptors();
    for (let i = 0; i < 5; i++) {
      await expect(openUdp({ host: '127.0.0.1', port: udp.port, batched })).rejects.toThrow(/EADDRINUSE/);
    }
    expect(descriptorsOpenedSince(before)).toEqual([]);
  });

  test('10. corked sends wait for uncork; batchEnded follows the last datagram of every read', async () => {
    const [left, right] = [await transport({ host: '127.0.0.1' }), await transport({ host: '127.0.0.1' })];
    if (batched) {
      // dgram holds nothing (it writes each datagram as it comes); the batched socket's queue waits.
      const probe = await plainSocket('udp4', '127.0.0.1');
      const toProbe = { address: '127.0.0.1', port: probe.address().port };
      left.cork();
      left.send(Uint8Array.of(1), toProbe);
      await new Promise((resolveTurn) => setImmediate(resolveTurn)); // uncorked, it would be out by now
      const first = nextMessage(probe);
      right.send(Uint8Array.of(2), toProbe);
      // One receiving socket on loopback keeps the order of the writes: 1 was not written before 2.
      expect((await first).message[0]).toBe(2);
      const second = nextMessage(probe);
      left.uncork();
      expect((await second).message[0]).toBe(1);
    }

    const events: string[] = [];
    const all = new Promise<void>((resolveAll) =>
      right.onDatagram(
        (datagram) => {
          events.push(`d${datagram[0]}`);
          if (events.filter((e) => e !== 'end').length === 6) resolveAll();
        },
        () => events.push('end'),
      ),
    );
    for (let i = 0; i < 6; i++) left.send(Uint8Array.of(i), { address: '127.0.0.1', port: right.port });
    await all;
    await new Promise((resolveTurn) => setImmediate(resolveTurn));
    expect(events.filter((e) => e !== 'end')).toEqual(['d0', 'd1', 'd2', 'd3', 'd4', 'd5']);
    expect(events.at(-1)).toBe('end');
    // Every end closes a read of at least one datagram; dgram reads one at a time.
    events.forEach((e, i) => e === 'end' && expect(events[i - 1]).not.toBe('end'));
    if (!batched) expect(events.filter((e) => e === 'end')).toHaveLength(6);
  });

  test('11. senders taking turns, on both families, are each named with their own address and port', async () => {
    const udp = await transport();
    const peers = [
      await plainSocket('udp4', '127.0.0.1'),
      await plainSocket('udp6', '::1'),
      await plainSocket('udp4', '127.0.0.1'),
    ];
    const addresses = ['127.0.0.1', '::1', '127.0.0.1'];
    const received: Array<{ byte: number; from: UdpEndpoint }> = [];
    const all = new Promise<void>((resolveAll) =>
      udp.onDatagram((datagram, from) => {
        received.push({ byte: datagram[0]!, from });
        if (received.length === 12) resolveAll();
      }),
    );
    for (let i = 0; i < 12; i++) {
      const peer = i % 3;
      await new Promise<void>((resolveSend) =>
        peers[peer]!.send(Uint8Array.of(peer), udp.port, addresses[peer], () => resolveSend()),
      );
    }
    await all;
    for (const { byte, from } of received)
      expect(from).toEqual(endpoint(addresses[byte]!, peers[byte]!.address().port));
    expect(received.filter(({ byte }) => byte === 2)).toHaveLength(4);
  });

  test('12. a datagram sent for a peer and refused (port 0, the wrong family, a closed socket) is named back with its bytes; every refused one is counted apart from those sent', async () => {
    const sendCounts = noUdpSendCounts();
    const udp = await transport({ host: '127.0.0.1', sendCounts });
    const refused: string[] = [];
    udp.onRefused((peer, bytes) => refused.push(`${peer.name}: ${bytes}`));
    const listener = await plainSocket('udp4', '127.0.0.1');
    const port = listener.address().port;
    const received = nextMessage(listener);
    udp.send(new Uint8Array(10), { address: '127.0.0.1', port: 0 }, { name: 'zero' });
    udp.send(new Uint8Array(20), { address: '::1', port }, { name: 'v6' });
    udp.send(new Uint8Array(30), { address: '127.0.0.1', port: 0 }); // no peer named: not reported
    udp.send(new Uint8Array(40), { address: '127.0.0.1', port }, { name: 'sent' });
    expect((await received).message.length).toBe(40);
    await udp.close();
    udp.send(new Uint8Array(50), { address: '127.0.0.1', port }, { name: 'closed' });
    expect(refused.sort()).toEqual(['closed: 50', 'v6: 20', 'zero: 10']);
    expect(sendCounts).toEqual({ datagrams: 1, bytes: 40, refused: 4 });
  });

  test('13. a listener that throws still ends its read (batchEnded), and the next read is heard', async () => {
    // In a process of its own: the throw is the process's uncaught exception, which this one records.
    const run = await promisify(execFile)('node', [
      '--input-type=module',
      '-e',
      THROWING_LISTENER,
      builtProgram('nodes/udp.js'),
      batched ? 'batched' : 'dgram',
    ]);
    expect(run.stdout.trim()).toBe('d1 end uncaught: d1 d2 end');
  });

  test('14. a datagram sent in the turn its socket closes leaves before the close: none is lost uncounted', async () => {
    const sendCounts = noUdpSendCounts();
    const udp = await openUdp({ batched, host: '127.0.0.1', sendCounts });
    const refused: string[] = [];
    udp.onRefused((peer, bytes) => refused.push(`${peer.name}: ${bytes}`));
    const listener = await plainSocket('udp4', '127.0.0.1');
    const received = nextMessage(listener);
    udp.send(new Uint8Array(40), { address: '127.0.0.1', port: listener.address().port }, { name: 'p' });
    await udp.close();
    expect((await received).message.length).toBe(40);
    await new Promise((resolveTurn) => setImmediate(resolveTurn)); // dgram's send callback
    expect(refused).toEqual([]);
    expect(sendCounts).toEqual({ datagrams: 1, bytes: 40, refused: 0 });
  });

  test('15. receiveDrops: the batched socket counts from 0 when it opens; dgram cannot tell', async () => {
    const udp = await transport({ host: '127.0.0.1' });
    expect(udp.receiveDrops()).toBe(batched ? 0 : undefined);
  });
});

// A listener that throws at datagram 1; datagram 2 is sent once the throw was reported. Prints the events.
const THROWING_LISTENER = `
const { openUdp } = await import(process.argv[1]);
const udp = await openUdp({ host: '127.0.0.1', batched: process.argv[2] === 'batched' });
const self = { address: '127.0.0.1', port: udp.port };
const events = [];
const done = () => { console.log(events.join(' ')); udp.close(); };
const late = setTimeout(done, 5000);
process.on('uncaughtException', (error) => {
  events.push('uncaught: ' + error.message);
  udp.send(Uint8Array.of(2), self);
});
udp.onDatagram(
  (datagram) => {
    events.push('d' + datagram[0]);
    if (datagram[0] === 1) throw new Error('d1');
  },
  () => {
    events.push('end');
    if (events.includes('d2')) { clearTimeout(late); done(); }
  },
);
udp.send(Uint8Array.of(1), self);`;

describe('openUdp on loopback, batched: received endpoints', () => {
  beforeAll(() => (mode.batched = true));

  test('1. a source is one endpoint object from its second datagram on; its first, which a spoofed flood sends once per source, is not kept', async () => {
    const udp = await transport();
    const senders = [
      { peer: await plainSocket('udp4', '127.0.0.1'), address: '127.0.0.1' },
      { peer: await plainSocket('udp6', '::1'), address: '::1' },
    ];
    for (const { peer, address } of senders) {
      const seen: UdpEndpoint[] = [];
      for (let i = 0; i < 3; i++) {
        const received = nextDatagram(udp);
        peer.send(Uint8Array.of(i), udp.port, address);
        seen.push((await received).from);
      }
      for (const from of seen) expect(from).toEqual({ address, port: peer.address().port, local: address });
      expect(seen[1]).not.toBe(seen[0]);
      expect(seen[2]).toBe(seen[1]);
    }
  });

  test('2. a source with port 0 (spoofed: no socket sends from it) is received, and a reply to it is refused before it is queued', async () => {
    const sendCounts = noUdpSendCounts();
    const udp = await transport({ sendCounts });
    const refused: string[] = [];
    udp.onRefused((peer, bytes) => refused.push(`${peer.name}: ${bytes}`));
    const received = nextDatagram(udp);
    // A UDP header by hand on a raw socket (checksum 0: none, as IPv4 allows), from port 0.
    const rawSender =
      'import socket,struct,sys; p=b"port zero"; s=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_UDP); ' +
      's.sendto(struct.pack("!HHHH",0,int(sys.argv[1]),8+len(p),0)+p,("127.0.0.1",0))';
    await promisify(execFile)('python3', ['-c', rawSender, String(udp.port)]);
    const { datagram, from } = await received;
    expect([Buffer.from(datagram).toString(), from]).toEqual([
      'port zero',
      { address: '127.0.0.1', port: 0, local: '127.0.0.1' },
    ]);
    udp.send(new Uint8Array(64), from, { name: 'spoofed' });
    expect(refused).toEqual(['spoofed: 64']);
    expect(sendCounts).toEqual({ datagrams: 0, bytes: 0, refused: 1 });
  });
});

describe('openUdp on loopback, batched with offloads: UDP GSO and GRO', () => {
  beforeAll(() => (mode.batched = true));

  /** `count` datagrams of `size` bytes and a shorter tail, each filled with its own index. */
  const burst = (count: number, size: number, tail: number) =>
    [...Array.from({ length: count }, () => size), tail].map((length, i) => new Uint8Array(length).fill(i));

  /** The next `count` datagrams at a plain socket, with the address each came from. */
  function collect(socket: Socket, count: number): Promise<Array<{ bytes: number[]; from: string }>> {
    const arrived: Array<{ bytes: number[]; from: string }> = [];
    return new Promise((resolveAll) =>
      socket.on('message', (message, remote) => {
        arrived.push({ bytes: [...message], from: remote.address });
        if (arrived.length === count) resolveAll(arrived);
      }),
    );
  }

  test.each([
    [1, 'udp4', '127.0.0.1', 20, 1200, 1, 'a new endpoint object each time'],
    [2, 'udp6', '::1', 20, 1200, 1, 'a new endpoint object each time'],
    [3, 'udp4', '127.0.0.1', 70, 100, 2, 'at most 64 datagrams in one'],
    [4, 'udp4', '127.0.0.1', 59, 1400, 2, 'at most 65,507 bytes in one'],
    [5, 'udp6', '::1', 59, 1400, 2, 'at most 65,527 bytes in one'],
  ] as const)(
    '%i. %s to %s: %i datagrams of %i bytes and a shorter one leave in %i GSO message(s), %s, and arrive separately, exact',
    async (_n, type, address, count, size, messages, _why) => {
      const counts = noUdpOffloadCounts();
      const udp = await transport({ offloadCounts: counts });
      const peer = await plainSocket(type, address);
      peer.setRecvBufferSize(4 * 1024 * 1024);
      const sent = burst(count, size, size - 1);
      const arrived = collect(peer, sent.length);
      for (const datagram of sent) udp.send(datagram, { address, port: peer.address().port });
      expect((await arrived).map(({ bytes }) => bytes)).toEqual(sent.map((datagram) => [...datagram]));
      expect(counts).toMatchObject({ gsoMessages: messages, gsoDatagrams: sent.length });
    },
  );

  test('6. datagrams to two endpoints, interleaved, and a size change each start a new message', async () => {
    const counts = noUdpOffloadCounts();
    const udp = await transport({ offloadCounts: counts });
    const [left, right] = [await plainSocket('udp4', '127.0.0.1'), await plainSocket('udp4', '127.0.0.1')];
    const toLeft = { address: '127.0.0.1', port: left.address().port };
    const toRight = { address: '127.0.0.1', port: right.address().port };
    // left: [300, 300] [300, 300] | right: [300] [500, 500, 200]
    const plan = [
      [toLeft, 300],
      [toLeft, 300],
      [toRight, 300],
      [toLeft, 300],
      [toLeft, 300],
      [toRight, 500],
      [toRight, 500],
      [toRight, 200],
    ] as const;
    const leftArrived = collect(left, 4);
    const rightArrived = collect(right, 4);
    plan.forEach(([to, length], i) => udp.send(new Uint8Array(length).fill(i), to));
    expect((await leftArrived).map(({ bytes }) => bytes)).toEqual(
      [0, 1, 3, 4].map((i) => new Array(plan[i]![1]).fill(i)),
    );
    expect((await rightArrived).map(({ bytes }) => bytes)).toEqual(
      [2, 5, 6, 7].map((i) => new Array(plan[i]![1]).fill(i)),
    );
    expect(counts).toMatchObject({ gsoMessages: 3, gsoDatagrams: 7 });
  });

  test('7. a GRO socket gets a GSO message as one batch and hands out each datagram, exact', async () => {
    const [sendCounts, receiveCounts] = [noUdpOffloadCounts(), noUdpOffloadCounts()];
    const left = await transport({ offloadCounts: sendCounts });
    const right = await transport({ offloadCounts: receiveCounts });
    const sent = burst(30, 1000, 300);
    const received: Array<{ bytes: number[]; from: UdpEndpoint }> = [];
    const all = new Promise<void>((resolveAll) =>
      right.onDatagram((datagram, from) => {
        received.push({ bytes: [...datagram], from });
        if (received.length === sent.length) resolveAll();
      }),
    );
    for (const datagram of sent) left.send(datagram, { address: '127.0.0.1', port: right.port });
    await all;
    expect(received.map(({ bytes }) => bytes)).toEqual(sent.map((datagram) => [...datagram]));
    const from = { address: '127.0.0.1', port: left.port, local: '127.0.0.1' };
    for (const datagram of received) expect(datagram.from).toEqual(from);
    expect(sendCounts).toMatchObject({ gsoMessages: 1, gsoDatagrams: sent.length });
    expect(receiveCounts).toMatchObject({ groBatches: 1, groDatagrams: sent.length });
  });

  test('8. sticky source with GSO: replies to a datagram sent to 127.0.0.2 all leave from 127.0.0.2', async () => {
    const counts = noUdpOffloadCounts();
    const udp = await transport({ offloadCounts: counts });
    const peer = await plainSocket('udp4', '127.0.0.1');
    const asked = nextDatagram(udp);
    peer.send(Buffer.from('which address answers?'), udp.port, '127.0.0.2');
    const { from } = await asked;
    expect(from.local).toBe('127.0.0.2');
    const sent = burst(8, 500, 100);
    const arrived = collect(peer, sent.length);
    for (const datagram of sent) udp.send(datagram, from);
    const replies = await arrived;
    expect(replies).toEqual(sent.map((datagram) => ({ bytes: [...datagram], from: '127.0.0.2' })));
    expect(counts.gsoMessages).toBe(1);
  });

  test('9. offload off: the same burst goes as one datagram per message, no GSO, no GRO', async () => {
    const counts = noUdpOffloadCounts();
    const [left, right] = [
      await transport({ offload: false, offloadCounts: counts }),
      await transport({ offload: false, offloadCounts: counts }),
    ];
    const sent = burst(10, 1000, 10);
    const received: number[][] = [];
    const all = new Promise<void>((resolveAll) =>
      right.onDatagram((datagram) => {
        received.push([...datagram]);
        if (received.length === sent.length) resolveAll();
      }),
    );
    for (const datagram of sent) left.send(datagram, { address: '::1', port: right.port });
    await all;
    expect(received).toEqual(sent.map((datagram) => [...datagram]));
    expect(counts).toEqual(noUdpOffloadCounts());
  });

  test('10. what a full receive buffer lost is what receiveDrops counts, and still says after close', async () => {
    // The smallest buffer the kernel grants holds a few of these; the burst is sent in one turn, before
    // the socket reads any of it. Every datagram is then either received or counted as dropped.
    const udp = await transport({ host: '127.0.0.1', receiveBufferSize: 1 });
    let received = 0;
    udp.onDatagram(() => received++);
    const sender = await plainSocket('udp4', '127.0.0.1');
    const sent = 200;
    for (let i = 0; i < sent; i++) sender.send(new Uint8Array(1000), udp.port, '127.0.0.1');
    await eventually('every datagram received or dropped', () => received + udp.receiveDrops()! === sent);
    expect(udp.receiveDrops()).toBeGreaterThan(0);
    await udp.close();
    expect(udp.receiveDrops()).toBe(sent - received);
  });
});
