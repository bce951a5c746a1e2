// The tunnelbyte-node command line as operators meet it: usage errors are one line and exit 2. Runs the
// built binary (scripts/test builds first). Bringing an interface up is covered by interop.test.ts.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { builtProgram } from '../helpers/repo.js';

const DAEMON = builtProgram('nodes/main.js');
const dir = mkdtempSync(join(tmpdir(), 'tbt-main-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function daemon(...args: string[]) {
  return daemonWith({}, ...args);
}

function daemonWith(env: Record<string, string>, ...args: string[]) {
  const result = spawnSync('node', [DAEMON, ...args], {
    encoding: 'utf8',
    timeout: 20000,
    env: { ...process.env, TB_NODE_TOKEN: undefined, ...env },
  });
  return { status: result.status, stderr: result.stderr, stdout: result.stdout };
}

const goodConfig = join(dir, 'wg0.conf');
writeFileSync(goodConfig, `[Interface]\nPrivateKey = ${Buffer.alloc(32, 1).toString('base64')}\n`);
const badConfig = join(dir, 'bad.conf');
writeFileSync(badConfig, '[Interface]\nPrivateKey = nope\n');

describe('tunnelbyte-node command line', () => {
  const usage: Array<[number, string[], RegExp]> = [
    [1, ['up'], /^tunnelbyte-node: required option '--config <file>' not specified\n$/],
    [
      2,
      ['up', '--config', goodConfig, '--egress', 'netstack'],
      /^tunnelbyte-node: netstack egress is not available yet\n$/,
    ],
    [
      3,
      ['up', '--config', goodConfig, '--egress', 'kernel'],
      /^tunnelbyte-node: --egress must be one of tun, netstack/,
    ],
    [4, ['up', '--config', goodConfig, '--metrics', 'localhost'], /^tunnelbyte-node: --metrics: /],
    [
      5,
      ['up', '--config', goodConfig, '--interface', 'x'.repeat(16)],
      /^tunnelbyte-node: invalid interface name/,
    ],
    [6, ['up', '--config', goodConfig, '--bogus'], /^tunnelbyte-node: unknown option '--bogus'\n$/],
    [7, ['frobnicate'], /^tunnelbyte-node: unknown command 'frobnicate'\n$/],
    [
      8,
      ['up', '--config', goodConfig, '--batch', 'maybe'],
      /^tunnelbyte-node: option '--batch <on\|off>' argument 'maybe' is invalid\. Allowed choices are on, off\.\n$/,
    ],
    [
      9,
      ['up', '--config', goodConfig, '--offload', 'auto'],
      /^tunnelbyte-node: option '--offload <on\|off>' argument 'auto' is invalid\. Allowed choices are on, off\.\n$/,
    ],
    [
      10,
      ['up', '--config', goodConfig, '--threads', 'many'],
      /^tunnelbyte-node: --threads \(TB_THREADS\) must be a whole number from 1 to 64, not 'many'\n$/,
    ],
    [
      11,
      ['up', '--config', goodConfig, '--hand-over', 'sometimes'],
      /^tunnelbyte-node: option '--hand-over <auto\|bulk>' argument 'sometimes' is invalid\. Allowed choices are auto, bulk\.\n$/,
    ],
  ];
  test.each(usage)('usage error #%i exits 2 with one line', (_n, args, message) => {
    const { status, stderr } = daemon(...args);
    expect(status).toBe(2);
    expect(stderr).toMatch(message);
    expect(stderr.trim().split('\n')).toHaveLength(1);
  });

  const runBase = ['run', '--broker', 'http://127.0.0.1:1', '--token', 'tbn_x', '--region', 'eu-west'];
  const runFull = [...runBase, '--listen', '127.0.0.1:51820', '--endpoint', '192.0.2.1:51820'];
  const runUsage: Array<[number, string[], RegExp]> = [
    [1, runBase, /^tunnelbyte-node: required option '--listen <host:port>' not specified\n$/],
    [
      2,
      [...runFull.slice(0, 4), 'nope', ...runFull.slice(5)],
      /^tunnelbyte-node: --token must be a node token/,
    ],
    [3, [...runFull, '--broker', 'ftp://x'], /^tunnelbyte-node: --broker must be an http\(s\) URL/],
    [4, [...runFull, '--listen', 'localhost:1'], /^tunnelbyte-node: --listen: /],
    [5, [...runFull, '--endpoint', 'nope'], /^tunnelbyte-node: --endpoint must be PUBLIC_HOST:PORT/],
    [6, [...runFull, '--egress', 'netstack'], /^tunnelbyte-node: netstack egress is not available yet\n$/],
    [7, [...runFull, '--capacity', '0'], /^tunnelbyte-node: --capacity must be/],
    [8, [...runFull, '--egress-ip', '1.2.3'], /^tunnelbyte-node: --egress-ip '1.2.3' is not an IP address/],
    [
      9,
      [...runFull, '--batch', 'yes'],
      /^tunnelbyte-node: option '--batch <on\|off>' argument 'yes' is invalid/,
    ],
    [
      10,
      [...runFull, '--offload', 'yes'],
      /^tunnelbyte-node: option '--offload <on\|off>' argument 'yes' is invalid/,
    ],
    [
      11,
      [...runFull, '--threads', '0'],
      /^tunnelbyte-node: --threads \(TB_THREADS\) must be a whole number from 1 to 64, not '0'\n$/,
    ],
    [
      12,
      [...runFull, '--broker', 'https://node:hunter2@broker.example'],
      /^tunnelbyte-node: --broker must not hold a user or password: the node signs in with its token\n$/,
    ],
    [13, [...runFull, '--drain-timeout', '1e10'], /^tunnelbyte-node: --drain-timeout must be a number/],
    [14, [...runFull, '--capacity', 'lots'], /^tunnelbyte-node: --capacity must be a whole number/],
    [15, [...runFull, '--endpoint', '192.0.2.1:0'], /^tunnelbyte-node: --endpoint must be PUBLIC_HOST:PORT/],
  ];
  test.each(runUsage)('run usage error #%i exits 2 with one line', (_n, args, message) => {
    const { status, stderr } = daemon(...args);
    expect(status).toBe(2);
    expect(stderr).toMatch(message);
    expect(stderr.trim().split('\n')).toHaveLength(1);
  });

  // The token from exactly one place: --token-file (or TB_NODE_TOKEN) keeps it out of `ps`.
  const tokenFile = join(dir, 'node-token');
  writeFileSync(tokenFile, 'tbn_x\n', { mode: 0o600 });
  const withoutToken = [...runFull.slice(0, 3), ...runFull.slice(5)];
  const tokenUsage: Array<[number, Record<string, string>, string[], string]> = [
    [1, {}, withoutToken, 'give the node token with --token-file FILE or TB_NODE_TOKEN (or --token)'],
    [
      2,
      { TB_NODE_TOKEN: 'tbn_x' },
      runFull,
      'give the node token once: --token-file, TB_NODE_TOKEN or --token',
    ],
    [
      3,
      {},
      [...runFull, '--token-file', tokenFile],
      'give the node token once: --token-file, TB_NODE_TOKEN or --token',
    ],
    [
      4,
      {},
      [...withoutToken, '--token-file', join(dir, 'absent')],
      `cannot read --token-file ${join(dir, 'absent')}: ENOENT`,
    ],
    [5, {}, [...withoutToken, '--token-file', badConfig], '--token must be a node token (tbn_...)'],
    [6, { TB_NODE_TOKEN: 'nope' }, withoutToken, '--token must be a node token (tbn_...)'],
  ];
  test.each(tokenUsage)('run token source error #%i exits 2 with one line', (_n, env, args, line) => {
    expect(daemonWith(env, ...args)).toMatchObject({ status: 2, stderr: `tunnelbyte-node: ${line}\n` });
  });

  test('TB_BATCH and TB_OFFLOAD take the same choices as their flags', () => {
    for (const [variable, flag] of [
      ['TB_BATCH', '--batch'],
      ['TB_OFFLOAD', '--offload'],
    ] as const) {
      const { status, stderr } = daemonWith({ [variable]: 'auto' }, 'up', '--config', goodConfig);
      expect(status).toBe(2);
      expect(stderr).toMatch(
        new RegExp(
          `^tunnelbyte-node: option '${flag} <on\\|off>' value 'auto' from env '${variable}' is invalid`,
        ),
      );
    }
  });

  test('TB_HAND_OVER is checked as --hand-over is', () => {
    expect(daemonWith({ TB_HAND_OVER: 'never' }, 'up', '--config', goodConfig)).toMatchObject({
      status: 2,
      stderr:
        "tunnelbyte-node: option '--hand-over <auto|bulk>' value 'never' from env 'TB_HAND_OVER' is invalid. " +
        'Allowed choices are auto, bulk.\n',
    });
  });

  test('TB_THREADS is checked as --threads is', () => {
    expect(daemonWith({ TB_THREADS: '0' }, 'up', '--config', goodConfig)).toMatchObject({
      status: 2,
      stderr: "tunnelbyte-node: --threads (TB_THREADS) must be a whole number from 1 to 64, not '0'\n",
    });
  });

  test('a flag wins over its environment variable', () => {
    // netstack is refused after the data-path settings are checked: reaching it means they passed.
    const up = ['up', '--config', goodConfig, '--egress', 'netstack'];
    expect(
      daemonWith({ TB_THREADS: '0', TB_OFFLOAD: 'maybe' }, ...up, '--threads', '2', '--offload', 'off'),
    ).toMatchObject({
      status: 2,
      stderr: 'tunnelbyte-node: netstack egress is not available yet\n',
    });
    expect(daemonWith({ TB_THREADS: '2' }, ...up, '--threads', '0')).toMatchObject({
      status: 2,
      stderr: "tunnelbyte-node: --threads (TB_THREADS) must be a whole number from 1 to 64, not '0'\n",
    });
  });

  test('a broken config file names its line and exits 1; a missing one exits 1', () => {
    const broken = daemon('up', '--config', badConfig);
    expect(broken.status).toBe(1);
    expect(broken.stderr).toMatch(new RegExp(`^tunnelbyte-node: ${badConfig}:2: `));
    const missing = daemon('up', '--config', join(dir, 'absent.conf'));
    expect(missing).toMatchObject({
      status: 1,
      stderr: `tunnelbyte-node: cannot read ${join(dir, 'absent.conf')}: ENOENT\n`,
    });
  });

  test('run --help: each default once and as it is typed; the drain is on either stop signal', () => {
    const { status, stdout } = daemon('run', '--help');
    expect(status).toBe(0);
    const help = stdout.replace(/\n +/g, ' ');
    expect(help).not.toMatch(/\(default: (\[\]|"[^"]*")\)/);
    expect(help).toContain('(default: a numeric endpoint host)');
    expect(help).toContain('sessions this node takes at most, 1 to 4000000 (default: 1000)');
    expect(help).toContain(
      'on SIGTERM or SIGINT, longest wait for peers to move, 0 to 86400 seconds (default: 30)',
    );
  });
});
