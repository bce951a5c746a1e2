// Sticky source address (IP_PKTINFO / IPV6_RECVPKTINFO): in a namespace whose node side holds two
// addresses per family, a peer that targets the second one gets its replies from that address, as from
// the kernel's WireGuard and wireguard-go, also when the replies leave as one UDP GSO message. Dgram mode
// shows what happens without it: the kernel picks the first address. A route whose MTU is below the
// datagrams makes the kernel refuse GSO: the socket says so once and sends them one by one. A route that
// prohibits a destination makes the kernel refuse every send to it: each refused datagram sent for a peer
// is named back with its bytes (txBytes counts only what the socket took). Runs dist/nodes/udp.js inside
// the namespace (scripts/test builds first).
import { builtProgram } from '../helpers/repo.js';
import { netnsHarness, PAIR_ADDRESSES, type Pair } from './netns.js';

const UDP_MODULE = builtProgram('nodes/udp.js');
const harness = netnsHarness();
const PORT = 7100;
const SECOND = { v4: '192.168.241.3', v6: 'fd00:241::3' } as const;

// Answers every datagram with `copies` copies of it through openUdp (ESM under `node --input-type=module
// -e`), then prints how many GSO messages the socket has sent and any notice it gave.
const ECHO = `
const { openUdp, noUdpOffloadCounts } = await import(process.argv[1]);
const copies = Number(process.argv[3]);
const offloadCounts = noUdpOffloadCounts();
const udp = await openUdp({
  port: ${PORT},
  batched: process.argv[2] === 'batched',
  offloadCounts,
  onNotice: (line) => console.log('notice: ' + line),
});
udp.onDatagram((datagram, from) => {
  for (let i = 0; i < copies; i++) udp.send(datagram.slice(), from);
  setTimeout(() => console.log('gso messages ' + offloadCounts.gsoMessages), 10);
});
console.log('listening');`;

// Sends `asks` datagrams of `size` bytes to host:port and prints the source of each of the `replies`.
const ASK = `
const dgram = require('dgram');
const [host, port, size, asks, replies] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
let seen = 0;
s.on('message', (m, r) => {
  console.log('reply from ' + r.address + ', ' + m.length + ' bytes');
  if (++seen === replies) s.close();
});
for (let i = 0; i < asks; i++) s.send(Buffer.alloc(size, 7), port, host);
setTimeout(() => { console.log('no more replies'); process.exit(0); }, 3000).unref();`;

let pair: Pair;
beforeAll(async () => {
  pair = await harness.pair();
  await pair.b.exec('ip', ['address', 'add', `${SECOND.v4}/24`, 'dev', 'veth0']);
  await pair.b.exec('ip', ['-6', 'address', 'add', `${SECOND.v6}/64`, 'dev', 'veth0', 'nodad']);
});

interface Exchange {
  mode: 'batched' | 'dgram';
  target: string;
  copies?: number;
  size?: number;
  asks?: number;
}

/** The ask's output lines, and the echo's. */
async function exchange({ mode, target, copies = 1, size = 22, asks = 1 }: Exchange) {
  const echo = pair.b.spawn('node', ['--input-type=module', '-e', ECHO, UDP_MODULE, mode, String(copies)]);
  try {
    await echo.waitFor('listening');
    const replies = asks * copies;
    const args = [target, PORT, size, asks, replies].map(String);
    const asked = (await pair.a.exec('node', ['-e', ASK, ...args])).stdout.trim().split('\n');
    await echo.waitFor(/gso messages \d+\n(.|\n)*$/);
    return { asked, echoed: echo.output().trim().split('\n') };
  } finally {
    await echo.stop();
  }
}

const lastGsoCount = (lines: string[]) =>
  Number(
    lines
      .filter((line) => line.startsWith('gso messages '))
      .at(-1)
      ?.slice('gso messages '.length),
  );

describe('sticky source address', () => {
  test.each([
    [1, 'v4', SECOND.v4],
    [2, 'v6', SECOND.v6],
    [3, 'v4', PAIR_ADDRESSES.b.v4],
    [4, 'v6', PAIR_ADDRESSES.b.v6],
  ] as const)(
    '%i. batched, outer %s: a datagram to %s is answered from that address',
    async (_n, _f, target) => {
      const { asked } = await exchange({ mode: 'batched', target });
      expect(asked).toEqual([`reply from ${target}, 22 bytes`]);
    },
  );

  test('5. dgram (no pktinfo) answers a datagram to the second IPv4 address from the first', async () => {
    const { asked } = await exchange({ mode: 'dgram', target: SECOND.v4 });
    expect(asked).toEqual([`reply from ${PAIR_ADDRESSES.b.v4}, 22 bytes`]);
  });

  test.each([
    [6, 'v4', SECOND.v4],
    [7, 'v6', SECOND.v6],
  ] as const)(
    '%i. batched, outer %s: 8 replies to %s leave as one GSO message, each from that address',
    async (_n, _f, target) => {
      const { asked, echoed } = await exchange({ mode: 'batched', target, copies: 8, size: 1000 });
      expect(asked).toEqual(new Array(8).fill(`reply from ${target}, 1000 bytes`));
      expect(lastGsoCount(echoed)).toBe(1);
    },
  );
});

describe('GSO refused', () => {
  test('1. a route MTU below the segments: GSO off once, noticed once, every datagram still arrives', async () => {
    const route = [`${PAIR_ADDRESSES.a.v4}/32`, 'dev', 'veth0', 'mtu', 'lock', '1280'];
    await pair.b.exec('ip', ['route', 'add', ...route]);
    try {
      const { asked, echoed } = await exchange({
        mode: 'batched',
        target: SECOND.v4,
        copies: 4,
        size: 1400,
        asks: 2,
      });
      expect(asked).toEqual(new Array(8).fill(`reply from ${SECOND.v4}, 1400 bytes`));
      expect(echoed.filter((line) => line.startsWith('notice: '))).toEqual([
        'notice: UDP GSO refused by the kernel (EMSGSIZE): sending one datagram per message',
      ]);
      expect(lastGsoCount(echoed)).toBe(0);
    } finally {
      await pair.b.exec('ip', ['route', 'del', ...route]);
    }
  });
});

// Sends each "peer bytes address" of argv[4...] to port 9 ("-" waits for the next turn), then prints what the
// socket named back as refused, a line each, once it named argv[3] of them (or after 5 s), and a turn later
// its send counts.
const SENDS = `
const { openUdp, noUdpSendCounts } = await import(process.argv[1]);
const sendCounts = noUdpSendCounts();
const udp = await openUdp({ port: ${PORT}, batched: process.argv[2] === 'batched', sendCounts });
const refused = [];
const done = () => setImmediate(() => {
  console.log(refused.join('\\n'));
  console.log(\`sent \${sendCounts.datagrams} (\${sendCounts.bytes} bytes), refused \${sendCounts.refused}\`);
  udp.close();
});
const late = setTimeout(done, 5000);
udp.onRefused((peer, bytes) => {
  refused.push(peer + ': ' + bytes);
  if (refused.length === Number(process.argv[3])) { clearTimeout(late); done(); }
});
for (const send of process.argv.slice(4)) {
  if (send === '-') {
    await new Promise((resolve) => setImmediate(resolve));
    continue;
  }
  const [peer, bytes, address] = send.split(' ');
  udp.send(new Uint8Array(Number(bytes)), { address, port: 9 }, peer);
}`;

/**
 * The refusals the socket named back (`refusals` of them are awaited) for `sends` ("peer bytes address"), and
 * its send counts.
 */
async function namedBack(mode: 'batched' | 'dgram', refusals: number, sends: string[]) {
  const args = ['--input-type=module', '-e', SENDS, UDP_MODULE, mode, String(refusals), ...sends];
  const lines = (await pair.b.exec('node', args)).stdout.trim().split('\n');
  return { named: lines.slice(0, -1), counts: lines.at(-1) };
}

describe('sends the kernel refuses', () => {
  const PROHIBITED = '10.241.99.0/24';
  const PROHIBITED_HOST = '10.241.99.1';
  beforeAll(() => pair.b.exec('ip', ['route', 'add', 'prohibit', PROHIBITED]));
  afterAll(() => pair.b.exec('ip', ['route', 'del', 'prohibit', PROHIBITED]));

  test.each([
    [1, 'batched', 'one GSO message of 4,010 bytes, refused whole', ['p: 4010']],
    [2, 'dgram', 'five datagrams, each refused', ['p: 1000', 'p: 1000', 'p: 1000', 'p: 1000', 'p: 10']],
  ] as const)(
    '%i. %s, to a prohibited route: %s, named back with the bytes and counted as 5 refused',
    async (_n, mode, _what, expected) => {
      const sends = [1000, 1000, 1000, 1000, 10].map((bytes) => `p ${bytes} ${PROHIBITED_HOST}`);
      expect(await namedBack(mode, expected.length, sends)).toEqual({
        named: expected,
        counts: 'sent 0 (0 bytes), refused 5',
      });
    },
  );

  test.each([
    [3, 'batched'],
    [4, 'dgram'],
  ] as const)(
    '%i. %s, 40 then 110 sends taking turns to a prohibited route and a reachable address: each refused one is named back with its own peer and bytes; only the others count as sent',
    async (_n, mode) => {
      const sends = Array.from(
        { length: 150 },
        (_, i) => `p${i} ${100 + i} ${i % 2 === 0 ? PROHIBITED_HOST : PAIR_ADDRESSES.a.v4}`,
      );
      sends.splice(40, 0, '-'); // dgram's 110 sends in flight then start mid-way through its first 64 places
      const expected = Array.from({ length: 75 }, (_, k) => `p${2 * k}: ${100 + 2 * k}`);
      const sentBytes = Array.from({ length: 75 }, (_, k) => 101 + 2 * k).reduce((a, b) => a + b);
      expect(await namedBack(mode, expected.length, sends)).toEqual({
        named: expected,
        counts: `sent 75 (${sentBytes} bytes), refused 75`,
      });
    },
  );
});
