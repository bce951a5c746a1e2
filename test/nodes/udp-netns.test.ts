// Sticky source address (IP_PKTINFO / IPV6_RECVPKTINFO): in a namespace whose node side holds two
// addresses per family, a peer that targets the second one gets its replies from that address, as from
// the kernel's WireGuard and wireguard-go. Dgram mode shows what happens without it: the kernel picks
// the first address. Runs dist/nodes/udp.js inside the namespace (scripts/test builds first).
import { builtProgram } from '../helpers/repo.js';
import { netnsHarness, PAIR_ADDRESSES, type Pair } from './netns.js';

const UDP_MODULE = builtProgram('nodes/udp.js');
const harness = netnsHarness();
const PORT = 7100;
const SECOND = { v4: '192.168.241.3', v6: 'fd00:241::3' } as const;

// Echoes every datagram back to its sender through openUdp (ESM under `node --input-type=module -e`).
const ECHO = `
const { openUdp } = await import(process.argv[1]);
const udp = await openUdp({ port: ${PORT}, batched: process.argv[2] === 'batched' });
udp.onDatagram((datagram, from) => udp.send(datagram.slice(), from));
console.log('listening');`;

// Sends one datagram to host:port and prints the address the reply came from.
const ASK = `
const dgram = require('dgram');
const [host, port] = process.argv.slice(1);
const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
s.on('message', (m, r) => { console.log('reply from ' + r.address); s.close(); });
s.send(Buffer.from('which address answers?'), Number(port), host);
setTimeout(() => { console.log('no reply'); process.exit(0); }, 3000).unref();`;

let pair: Pair;
beforeAll(async () => {
  pair = await harness.pair();
  await pair.b.exec('ip', ['address', 'add', `${SECOND.v4}/24`, 'dev', 'veth0']);
  await pair.b.exec('ip', ['-6', 'address', 'add', `${SECOND.v6}/64`, 'dev', 'veth0', 'nodad']);
});

async function replySource(mode: 'batched' | 'dgram', target: string): Promise<string> {
  const echo = pair.b.spawn('node', ['--input-type=module', '-e', ECHO, UDP_MODULE, mode]);
  try {
    await echo.waitFor('listening');
    return (await pair.a.exec('node', ['-e', ASK, target, String(PORT)])).stdout.trim();
  } finally {
    await echo.stop();
  }
}

describe('sticky source address', () => {
  test.each([
    [1, 'v4', SECOND.v4],
    [2, 'v6', SECOND.v6],
    [3, 'v4', PAIR_ADDRESSES.b.v4],
    [4, 'v6', PAIR_ADDRESSES.b.v6],
  ] as const)(
    '%i. batched, outer %s: a datagram to %s is answered from that address',
    async (_n, _f, target) => {
      expect(await replySource('batched', target)).toBe(`reply from ${target}`);
    },
  );

  test('5. dgram (no pktinfo) answers a datagram to the second IPv4 address from the first', async () => {
    expect(await replySource('dgram', SECOND.v4)).toBe(`reply from ${PAIR_ADDRESSES.b.v4}`);
  });
});
