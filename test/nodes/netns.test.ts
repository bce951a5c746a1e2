// Proves the harness with wireguard-go on both ends (the kernel netns.sh topology) and records the
// reference numbers our daemon is compared against: inner IPv4/IPv6 ping and §7.5's exact counters.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import {
  expectPingCounters,
  NetnsHarness,
  PINGS,
  netnsHarness,
  PAIR_ADDRESSES,
  parseWgDump,
  sweepStale,
  TUNNEL_ADDRESSES,
  TUNNEL_PREFIX,
  wgConfig,
  endpointString,
  type Pair,
  type WireguardGo,
} from './netns.js';

const harness = netnsHarness();

const INNER = TUNNEL_ADDRESSES;
const LISTEN_PORT = { a: 51820, b: 51821 } as const;

interface WgPair extends Pair {
  wgA: WireguardGo;
  wgB: WireguardGo;
  publicKeyA: string;
  publicKeyB: string;
}

async function wireguardPair(): Promise<WgPair> {
  const pair = await harness.pair();
  const [keysA, keysB] = [await harness.generateKeys(), await harness.generateKeys()];
  const wgA = await harness.wireguardGo(pair.a);
  const wgB = await harness.wireguardGo(pair.b);
  const config = (privateKey: string, listenPort: number, peerKey: string, peer: 'a' | 'b') =>
    wgConfig({
      privateKey,
      listenPort,
      peer: {
        publicKey: peerKey,
        allowedIps: [`${INNER[peer].v4}/32`, `${INNER[peer].v6}/128`],
        endpoint: endpointString(PAIR_ADDRESSES[peer].v4, LISTEN_PORT[peer]),
      },
    });
  await wgA.setconf(config(keysA.privateKey, LISTEN_PORT.a, keysB.publicKey, 'b'));
  await wgB.setconf(config(keysB.privateKey, LISTEN_PORT.b, keysA.publicKey, 'a'));
  const addresses = (inner: { v4: string; v6: string }) => [
    `${inner.v4}/${TUNNEL_PREFIX.v4}`,
    `${inner.v6}/${TUNNEL_PREFIX.v6}`,
  ];
  await harness.configureInterface(pair.a, wgA.interfaceName, addresses(INNER.a));
  await harness.configureInterface(pair.b, wgB.interfaceName, addresses(INNER.b));
  return { ...pair, wgA, wgB, publicKeyA: keysA.publicKey, publicKeyB: keysB.publicKey };
}

describe('netns harness', () => {
  test('1. a veth pair carries IPv4 and IPv6 between two fresh namespaces', async () => {
    const { a } = await harness.pair();
    const v4 = await a.exec('ping', ['-c', '1', '-W', '2', PAIR_ADDRESSES.b.v4]);
    const v6 = await a.exec('ping', ['-6', '-c', '1', '-W', '2', PAIR_ADDRESSES.b.v6]);
    expect(v4.stdout).toContain('1 received');
    expect(v6.stdout).toContain('1 received');
  });

  test('2. the namespaces are isolated from each other except through the veth pair', async () => {
    const { a } = await harness.pair();
    const links = (await a.exec('ip', ['-o', 'link', 'show'])).stdout;
    expect(
      links
        .split('\n')
        .filter(Boolean)
        .map((line) => line.split(':')[1]?.trim().split('@')[0]),
    ).toEqual(['lo', 'veth0']);
  });

  test('3. stopping a spawned process kills its whole process group', async () => {
    const ns = await harness.namespace('spawn');
    const proc = ns.spawn('sh', ['-c', 'sleep 300 & echo started; wait']);
    await proc.waitFor('started');
    expect(pidsIn(ns.name)).toHaveLength(2); // sh and its background sleep
    await proc.stop();
    expect(pidsIn(ns.name)).toEqual([]);
  });

  test('4. parseWgDump reads the interface line and peer lines', () => {
    const dump = parseWgDump(
      'cHJpdg==\tcHVi\t51820\toff\n' +
        'cGVlcg==\t(none)\t192.168.241.2:51821\t10.241.0.2/32,fd10:241::2/128\t1700000000\t1372\t1428\t25\n' +
        'cGVlcjI=\tcHNr\t(none)\t(none)\t0\t0\t0\toff\n',
    );
    expect(dump).toEqual({
      privateKey: 'cHJpdg==',
      publicKey: 'cHVi',
      listenPort: 51820,
      peers: [
        {
          publicKey: 'cGVlcg==',
          presharedKey: null,
          endpoint: '192.168.241.2:51821',
          allowedIps: ['10.241.0.2/32', 'fd10:241::2/128'],
          latestHandshake: 1700000000,
          rxBytes: 1372,
          txBytes: 1428,
          persistentKeepalive: 25,
        },
        {
          publicKey: 'cGVlcjI=',
          presharedKey: 'cHNr',
          endpoint: null,
          allowedIps: [],
          latestHandshake: 0,
          rxBytes: 0,
          txBytes: 0,
          persistentKeepalive: 0,
        },
      ],
    });
  });
});

describe('wgConfig / endpointString', () => {
  test('1. a wg-quick config with Address, an IPv6 endpoint and keepalive', () => {
    expect(
      wgConfig({
        privateKey: 'cHJpdg==',
        listenPort: 51820,
        addresses: ['10.241.0.1/24', 'fd10:241::1/64'],
        peer: {
          publicKey: 'cHVi',
          allowedIps: ['10.241.0.2/32'],
          endpoint: endpointString('fd00:241::2', 51821),
          persistentKeepalive: 25,
        },
      }),
    ).toBe(
      '[Interface]\nPrivateKey = cHJpdg==\nListenPort = 51820\nAddress = 10.241.0.1/24, fd10:241::1/64\n\n' +
        '[Peer]\nPublicKey = cHVi\nAllowedIPs = 10.241.0.2/32\nEndpoint = [fd00:241::2]:51821\nPersistentKeepalive = 25\n',
    );
  });

  test('2. optional keys are omitted', () => {
    expect(wgConfig({ privateKey: 'k', peer: { publicKey: 'p', allowedIps: [] } })).toBe(
      '[Interface]\nPrivateKey = k\n\n[Peer]\nPublicKey = p\nAllowedIPs = \n',
    );
    expect(endpointString('192.168.241.1', 1)).toBe('192.168.241.1:1');
  });
});

describe('wireguard-go ↔ wireguard-go (reference behaviour)', () => {
  let wg: WgPair;
  beforeAll(async () => {
    wg = await wireguardPair();
  });

  test('1. after ping -c 10 of 84-byte packets the counters follow §7.5 exactly', async () => {
    const ping = await wg.b.exec('ping', ['-c', String(PINGS), '-i', '0.2', '-W', '2', INNER.a.v4]);
    expect(ping.stdout).toContain(`${PINGS} received`);
    const [peerOfB] = (await wg.wgB.dump()).peers;
    const [peerOfA] = (await wg.wgA.dump()).peers;
    expectPingCounters(peerOfB!, peerOfA!); // b initiated
    expect(peerOfA?.publicKey).toBe(wg.publicKeyB);
    expect(peerOfA?.endpoint).toBe(`${PAIR_ADDRESSES.b.v4}:${LISTEN_PORT.b}`);
    expect(peerOfA?.latestHandshake).toBeGreaterThan(0);
  });

  test('2. inner IPv6 ping works in both directions', async () => {
    const fromB = await wg.b.exec('ping', ['-6', '-c', '3', '-i', '0.2', '-W', '2', INNER.a.v6]);
    const fromA = await wg.a.exec('ping', ['-6', '-c', '3', '-i', '0.2', '-W', '2', INNER.b.v6]);
    expect(fromB.stdout).toContain('3 received');
    expect(fromA.stdout).toContain('3 received');
  });

  test('3. inner IPv4 ping from the responder side works over the established session', async () => {
    const fromA = await wg.a.exec('ping', ['-c', '3', '-i', '0.2', '-W', '2', INNER.b.v4]);
    expect(fromA.stdout).toContain('3 received');
  });

  test('4. wg set changes are visible in the dump', async () => {
    await wg.wgA.set(['peer', wg.publicKeyB, 'persistent-keepalive', '25']);
    const [peer] = (await wg.wgA.dump()).peers;
    expect(peer?.persistentKeepalive).toBe(25);
  });

  test('5. stopping wireguard-go removes its UAPI socket', async () => {
    const socket = `/var/run/wireguard/${wg.wgB.interfaceName}.sock`;
    expect(existsSync(socket)).toBe(true);
    await wg.wgB.stop();
    expect(existsSync(socket)).toBe(false);
  });
});

describe('cleanup', () => {
  test('1. cleanup removes every namespace the harness made; sweepStale leaves live runs alone', async () => {
    const own = new NetnsHarness();
    const { a, b } = await own.pair();
    const busy = await own.namespace('busy');
    const sleeper = busy.spawn('sleep', ['300']);
    const made = [a.name, b.name, busy.name];
    expect(namespaces()).toEqual(expect.arrayContaining(made));
    sweepStale(); // this process is alive: its namespaces must survive the sweep
    expect(namespaces()).toEqual(expect.arrayContaining(made));
    await own.cleanup();
    expect(await sleeper.exited).toBeNull(); // killed by a signal
    expect(namespaces().filter((name) => made.includes(name))).toEqual([]);
  });

  test('2. sweepStale removes namespaces of a dead run of the same prefix family', () => {
    const stale = `tbt-${PID_MAX_LIMIT + 1}-0-stale`; // above the kernel's pid limit: never alive
    execFileSync('ip', ['netns', 'add', stale]);
    sweepStale();
    expect(namespaces()).not.toContain(stale);
  });
});

const PID_MAX_LIMIT = 4194304;

function namespaces(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter(Boolean);
}

function pidsIn(namespace: string): number[] {
  return execFileSync('ip', ['netns', 'pids', namespace], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map(Number);
}
