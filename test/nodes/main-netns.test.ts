// tunnelbyte-node's start-up failures as operators meet them, each in a namespace of its own: one line on
// stderr naming what failed, exit 1, never a retry loop or a stack trace, and the interface gone again.
// Usage errors (bad flag values, caught before anything starts) are test/nodes/main.test.ts.
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';

import { uapiSocketPath } from '../../nodes/uapi.js';
import { builtProgram } from '../helpers/repo.js';
import { netnsHarness, waitUntil, type Namespace, type ProcessHandle } from './netns.js';

const DAEMON = builtProgram('nodes/main.js');
const harness = netnsHarness();
const LISTEN_PORT = 51820;
const METRICS_PORT = 9586;

/** Holds UDP LISTEN_PORT and TCP METRICS_PORT on 127.0.0.1 and every address, until the namespace goes. */
const HOLDER = `
const dgram = require('node:dgram'), net = require('node:net');
const udp = dgram.createSocket('udp6');
udp.bind(${LISTEN_PORT}, '::', () =>
  net.createServer().listen(${METRICS_PORT}, '127.0.0.1', () => console.log('holding')));`;

let ns: Namespace;
let config: string;
beforeAll(async () => {
  ns = await harness.namespace('main');
  config = join(harness.tempDir(), 'tbm0.conf');
  const privateKey = Buffer.alloc(32, 7).toString('base64');
  writeFileSync(config, `[Interface]\nPrivateKey = ${privateKey}\nListenPort = ${LISTEN_PORT}\n`, {
    mode: 0o600,
  });
  await ns.spawn('node', ['-e', HOLDER]).waitFor('holding');
});

const PEER = Buffer.alloc(32, 5).toString('base64');

/** A wg-quick file named NAME.conf with a private key, then `rest`. */
function file(name: string, rest: string): string {
  const path = join(harness.tempDir(), `${name}.conf`);
  writeFileSync(path, `[Interface]\nPrivateKey = ${Buffer.alloc(32, 6).toString('base64')}\n${rest}`, {
    mode: 0o600,
  });
  return path;
}

function node(args: readonly string[]) {
  const result = spawnSync('ip', ['netns', 'exec', ns.name, 'node', DAEMON, ...args], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, TB_NODE_TOKEN: undefined },
  });
  return { status: result.status, stderr: result.stderr, stdout: result.stdout };
}

const up = (...extra: string[]) => ['up', '--config', config, '--threads', '1', ...extra];
const run = (broker: string, listen = '127.0.0.2:51821') => [
  'run',
  ...['--broker', broker, '--token', 'tbn_x', '--region', 'eu-west', '--threads', '1'],
  ...['--listen', listen, '--endpoint', '192.0.2.1:51820', '--state-dir', join(harness.tempDir(), 'state')],
];

/** The links left in the namespace: loopback alone once a daemon has gone. */
const links = async () =>
  (await ns.exec('ip', ['-o', 'link', 'show'])).stdout
    .trim()
    .split('\n')
    .map((link) => link.split(': ')[1]);

describe('tunnelbyte-node start-up failures', () => {
  // [n, arguments, the one line]
  const failures: Array<[number, () => string[], string]> = [
    [
      1,
      () => run('http://127.0.0.1:1'),
      'tunnelbyte-node: --broker http://127.0.0.1:1: fetch refuses this URL (bad port)',
    ],
    [
      2,
      () => run('http://127.0.0.1:10080/api'),
      'tunnelbyte-node: --broker http://127.0.0.1:10080/api: fetch refuses this URL (bad port)',
    ],
    [
      3,
      () => run('http://127.0.0.1:8080', `127.0.0.1:${LISTEN_PORT}`),
      `tunnelbyte-node: UDP 127.0.0.1:${LISTEN_PORT}: bind EADDRINUSE: Address already in use`,
    ],
    [
      4,
      () => up('--interface', 'tbm1'),
      `tunnelbyte-node: UDP port ${LISTEN_PORT}: bind EADDRINUSE: Address already in use`,
    ],
    [5, () => up('--interface', 'lo'), 'tunnelbyte-node: TUN lo: ioctl TUNSETIFF: Invalid argument'],
    [
      6,
      () => ['up', '--threads', '1', '--config', file('tbm6', 'Address = 10.66.0.1/24, 10.66.0.1/24\n')],
      'tunnelbyte-node: ip -4 address add 10.66.0.1/24 dev tbm6: Error: ipv4: Address already assigned.',
    ],
    [
      7,
      () => [
        'up',
        ...['--threads', '1', '--config'],
        file(
          'tbm7',
          `[Peer]\nPublicKey = ${PEER}\nAllowedIPs = 10.67.0.0/24\nEndpoint = nosuchhost.invalid:51820\n`,
        ),
      ],
      // No resolver answers inside the namespace (it has loopback alone): the failure is the resolver's.
      `tunnelbyte-node: Endpoint nosuchhost.invalid:51820 of peer ${PEER}: cannot resolve nosuchhost.invalid (EAI_AGAIN)`,
    ],
  ];
  test.each(failures)('#%i exits 1 with one line and leaves no interface', async (_n, args, line) => {
    const { status, stderr, stdout } = node(args());
    expect({ status, stderr, stdout }).toEqual({ status: 1, stderr: `${line}\n`, stdout: '' });
    expect(await links()).toEqual(['lo']);
  });

  test('metrics on a port in use: one line, exit 1', async () => {
    const free = join(harness.tempDir(), 'tbm2.conf');
    writeFileSync(free, `[Interface]\nPrivateKey = ${Buffer.alloc(32, 8).toString('base64')}\n`, {
      mode: 0o600,
    });
    const { status, stderr } = node([
      'up',
      '--config',
      free,
      '--threads',
      '1',
      '--metrics',
      `127.0.0.1:${METRICS_PORT}`,
    ]);
    expect(status).toBe(1);
    expect(stderr).toBe(
      `tunnelbyte-node: metrics 127.0.0.1:${METRICS_PORT}: listen EADDRINUSE: address already in use 127.0.0.1:${METRICS_PORT}\n`,
    );
  });

  test('more threads than cores: one warning naming both, then the node starts', async () => {
    const free = join(harness.tempDir(), 'tbm3.conf');
    writeFileSync(free, `[Interface]\nPrivateKey = ${Buffer.alloc(32, 9).toString('base64')}\n`, {
      mode: 0o600,
    });
    const threads = availableParallelism() + 1;
    const proc = ns.spawn('node', [DAEMON, 'up', '--config', free, '--threads', String(threads)]);
    await proc.waitFor(/tbm3 up, /);
    await proc.stop();
    const [warning, ready] = proc.output().trim().split('\n');
    expect(warning).toBe(
      `tunnelbyte-node: warning: --threads (TB_THREADS) ${threads} is more than this machine's ` +
        `${availableParallelism()} cores: threads beyond the cores add no speed, only start-up time and ` +
        'memory (about 0.3 CPU-seconds and 33 MB each)',
    );
    expect(ready).toMatch(new RegExp(`, threads ${threads} \\(hand-over auto\\)$`));
  });

  test('a world-readable file and the wg-quick keys up does not carry out are each said in a warning; Table N puts every peer route in that table', async () => {
    const config = file(
      'tbm8',
      'Address = 10.68.0.1/24\nFwMark = 0x1234\nTable = 1234\nSaveConfig = true\nDNS = 192.0.2.53\n' +
        `[Peer]\nPublicKey = ${PEER}\nAllowedIPs = 10.69.0.0/24, 10.68.0.0/24, 0.0.0.0/0\n`,
    );
    chmodSync(config, 0o644); // as a default umask leaves it: wg-quick warns about such a file, and so does up
    const proc = ns.spawn('node', [DAEMON, 'up', '--threads', '1', '--config', config]);
    await proc.waitFor(/tbm8 up, /);
    const table = (await ns.exec('ip', ['-4', 'route', 'show', 'table', '1234'])).stdout;
    const main = (await ns.exec('ip', ['-4', 'route', 'show', 'table', 'main'])).stdout;
    await proc.stop();
    expect(proc.output().trim().split('\n').slice(0, -1)).toEqual([
      `tunnelbyte-node: warning: ${config} is world accessible: anyone on this machine can read its PrivateKey (chmod 600 it)`,
      'tunnelbyte-node: warning: DNS is ignored: an exit node does not change its own resolvers',
      'tunnelbyte-node: warning: FwMark is ignored: tunnelbyte-node cannot mark its UDP socket',
      'tunnelbyte-node: warning: SaveConfig is ignored: tunnelbyte-node never writes the file back',
    ]);
    expect(
      table
        .trim()
        .split('\n')
        .map((line) => line.trim())
        .sort(),
    ).toEqual(
      [
        'default dev tbm8 scope link',
        '10.68.0.0/24 dev tbm8 scope link',
        '10.69.0.0/24 dev tbm8 scope link',
      ].sort(),
    );
    expect(main).not.toContain('10.69.0.0');
  });

  test('a world-readable --token-file is warned about, once the arguments are good', () => {
    const tokenFile = join(harness.tempDir(), 'token');
    writeFileSync(tokenFile, 'tbn_x\n', { mode: 0o644 });
    chmodSync(tokenFile, 0o644);
    const args = run('http://127.0.0.1:1').map((arg) => (arg === 'tbn_x' ? tokenFile : arg));
    args[args.indexOf('--token')] = '--token-file';
    const { status, stderr } = node(args);
    expect({ status, stderr }).toEqual({
      status: 1,
      stderr:
        `tunnelbyte-node: warning: ${tokenFile} is world accessible: anyone on this machine can read the node token (chmod 600 it)\n` +
        'tunnelbyte-node: --broker http://127.0.0.1:1: fetch refuses this URL (bad port)\n',
    });
  });

  test('run stopped (SIGINT) while the broker is still out of reach: exit 0, one line saying it never registered, no interface', async () => {
    // A closed port on the namespace's loopback: connection refused, retried with backoff.
    const proc = ns.spawn('node', [DAEMON, ...run('http://127.0.0.1:18099', '127.0.0.2:51822')]);
    await proc.waitFor('retrying with backoff');
    process.kill(proc.pid, 'SIGINT');
    expect(await proc.exited).toBe(0);
    expect(proc.output().trim().split('\n').at(-1)).toBe(
      'tunnelbyte-node: stopped before the broker answered: the node never registered',
    );
    expect(await links()).toEqual(['lo']);
  });
});

describe('tunnelbyte-node stopped while it starts', () => {
  /**
   * Sends `signal` to `proc` the moment its UAPI socket for `name` exists: the daemon is part-way up, or just up
   * with its ready line on the way. Checked every event-loop turn, not every few milliseconds: the daemon's
   * last steps take about that long.
   */
  async function signalWhenServing(proc: ProcessHandle, name: string, signal: NodeJS.Signals): Promise<void> {
    await waitUntil(() => existsSync(uapiSocketPath(name)), proc, `its UAPI socket ${name}`, 0);
    process.kill(proc.pid, signal);
  }

  /** Its exit code, with what it printed: a process that died of a signal (code null) says how far it got. */
  const exitOf = async (proc: ProcessHandle) => ({ code: await proc.exited, output: proc.output() });

  test.each([
    [1, 'SIGTERM'],
    [2, 'SIGINT'],
  ] as const)(
    '%i. up, %s as its UAPI socket appears: exit 0, the socket and the interface removed',
    async (_n, signal) => {
      const name = harness.interfaceName();
      const proc = ns.spawn('node', [DAEMON, 'up', '--config', file(name, ''), '--threads', '1']);
      await signalWhenServing(proc, name, signal);
      expect(await exitOf(proc)).toMatchObject({ code: 0 });
      expect(existsSync(uapiSocketPath(name))).toBe(false);
      expect(await links()).toEqual(['lo']);
    },
  );

  test('3. run, SIGTERM as its UAPI socket appears (the broker out of reach): exit 0, never registered, nothing left', async () => {
    const name = harness.interfaceName();
    const args = [...run('http://127.0.0.1:18099', '127.0.0.2:51823'), '--interface', name];
    const proc = ns.spawn('node', [DAEMON, ...args]);
    await signalWhenServing(proc, name, 'SIGTERM');
    expect(await exitOf(proc)).toMatchObject({ code: 0 });
    expect(proc.output().trim().split('\n').at(-1)).toBe(
      'tunnelbyte-node: stopped before the broker answered: the node never registered',
    );
    expect(existsSync(uapiSocketPath(name))).toBe(false);
    expect(await links()).toEqual(['lo']);
  });
});
