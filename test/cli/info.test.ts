// regions, ip, and the error paths every command shares: 429, 503, unreachable broker, bad arguments.
import { recordEgressIps } from '../../src/broker/services/egress.js';
import { upsertRegion } from '../../src/broker/services/regions.js';
import { keys } from '../../src/broker/store/keys.js';
import { waitForReady } from '../../src/broker/store/redis.js';
import { freePort } from '../helpers/redis.js';
import { cli, cliBin, listen, machine, startCliBroker, type CliBroker } from './harness.js';

let b: CliBroker;
beforeAll(async () => {
  b = await startCliBroker();
});
afterAll(async () => b.close());

/** Node health as the node service writes it (store/keys.ts), so a region reads active. */
async function healthyNode(id: string, region: string, load: number) {
  const now = Date.now();
  await b.broker.redis.hset(keys.node(id), {
    id,
    region,
    load,
    draining: '0',
    heartbeat_ms: 10_000,
    last_heartbeat: now,
  });
  await b.broker.redis.zadd(keys.regionNodes(region), now, id);
}

describe('regions', () => {
  test('1. none yet: a sentence for humans, an empty list for scripts', async () => {
    const m = machine(b.url);
    expect(await cli(['regions'], m.env)).toEqual({ code: 0, stdout: 'No regions yet.\n', stderr: '' });
    expect(JSON.parse((await cli(['regions', '--json'], m.env)).stdout)).toEqual({ regions: [] });
  });

  test('2. a table with id, name, country, status, nodes, load %, tiers; --json is the API body', async () => {
    await upsertRegion(b.broker.ctx, {
      id: 'eu-west',
      name: 'Frankfurt',
      country: 'DE',
      tiers: ['free', 'pro', 'business'],
    });
    await upsertRegion(b.broker.ctx, {
      id: 'us-east',
      name: 'Virginia',
      country: 'US',
      tiers: ['pro', 'business'],
    });
    await healthyNode('node_cli_a', 'eu-west', 0.42);
    const m = machine(b.url);
    const res = await cli(['regions'], m.env);
    expect(res.code).toBe(0);
    const lines = res.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+NAME\s+COUNTRY\s+STATUS\s+NODES\s+LOAD\s+TIERS$/);
    expect(lines).toContainEqual(
      expect.stringMatching(/^eu-west\s+Frankfurt\s+DE\s+active\s+1\s+42%\s+free,pro,business$/),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(/^us-east\s+Virginia\s+US\s+down\s+0\s+0%\s+pro,business$/),
    );
    const json = JSON.parse((await cli(['--json', 'regions'], m.env)).stdout) as {
      regions: { id: string }[];
    };
    expect(json.regions.map((r) => r.id).sort()).toEqual(['eu-west', 'us-east']);
  });
});

describe('ip', () => {
  test('1. an address that never was an exit', async () => {
    const m = machine(b.url);
    const res = await cli(['ip', '198.51.100.9'], m.env);
    expect(res).toEqual({ code: 0, stdout: '198.51.100.9 is not a tunnelbyte exit address\n', stderr: '' });
    expect(JSON.parse((await cli(['ip', '198.51.100.9', '--json'], m.env)).stdout)).toEqual({
      ip: '198.51.100.9',
      exit: false,
    });
  });

  test('2. an exit address names region and node, never a user', async () => {
    await recordEgressIps(
      b.broker.ctx,
      'node_cli_a',
      'eu-west',
      ['203.0.113.7', '2001:db8::7'],
      Date.now(),
      Date.now() - 30_000,
    );
    const m = machine(b.url);
    const res = await cli(['ip', '203.0.113.7'], m.env);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(
      /^203\.0\.113\.7 is a tunnelbyte exit: region eu-west, node node_cli_a, first seen \S+, last seen \S+\n$/,
    );
    const v6 = JSON.parse((await cli(['ip', '2001:db8::7', '--json'], m.env)).stdout) as Record<
      string,
      unknown
    >;
    expect(v6).toMatchObject({ exit: true, region: 'eu-west', node: 'node_cli_a' });
    const past = await cli(['ip', '203.0.113.7', '--at', '2001-01-01T00:00:00Z'], m.env);
    expect(past.stdout).toBe('203.0.113.7 was not a tunnelbyte exit address at 2001-01-01T00:00:00Z\n');
  });

  test('3. a malformed address is the broker’s 400 → exit 1, one line naming the problem', async () => {
    const m = machine(b.url);
    const res = await cli(['ip', 'not-an-ip'], m.env);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/^tunnelbyte: invalid request/);
    expect(res.stderr.split('\n')).toHaveLength(2);
  });
});

describe('errors shared by every command', () => {
  test('1. public rate limit (429) → exit 4 and "retry in N s"', async () => {
    const strict = await listen(
      await b.broker.another({ env: { PUBLIC_BURST: '1', PUBLIC_REFILL_PER_SECOND: '0.01' } }),
    );
    try {
      const m = machine(strict.url);
      expect((await cli(['regions'], m.env)).code).toBe(0);
      const limited = await cli(['regions', '--json'], m.env);
      expect(limited.code).toBe(4);
      expect(limited.stderr).toMatch(/^tunnelbyte: rate limited: .*; retry in \d+ s\n$/);
      expect(JSON.parse(limited.stdout)).toMatchObject({ status: 429, error: 'rate_limited', code: 4029 });
    } finally {
      await strict.close();
    }
  });

  test('2. per-token tier cap (429) on a bearer command → exit 4', async () => {
    const capped = await listen(
      await b.broker.another({ env: { TB_TIERS: '{"free":{"requestsPerMinute":2}}' } }),
    );
    try {
      const m = machine(capped.url);
      expect((await cli(['signup'], m.env)).code).toBe(0);
      const codes: number[] = [];
      for (let i = 0; i < 4; i++) codes.push((await cli(['auth', 'test'], m.env)).code);
      expect(codes).toContain(4);
      expect(codes[0]).toBe(0);
    } finally {
      await capped.close();
    }
  });

  test('3. nothing listening → exit 5, "cannot reach the broker at URL"', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const m = machine(url);
    const res = await cli(['regions'], m.env);
    expect(res.code).toBe(5);
    expect(res.stderr).toBe(
      `tunnelbyte: cannot reach the broker at ${url}: check --api / TB_API and your connection\n`,
    );
  });

  test('3b. a broker that accepts and never answers → "timed out" after --timeout / TB_TIMEOUT, exit 5', async () => {
    const silent = await listen(() => undefined);
    try {
      const m = machine(silent.url);
      const line = `tunnelbyte: timed out: the broker at ${silent.url} did not answer within 1 s (--timeout / TB_TIMEOUT)\n`;
      for (const [argv, env] of [
        [['regions', '--timeout', '1'], m.env],
        [['regions'], { ...m.env, TB_TIMEOUT: '1' }],
      ] as const) {
        const res = await cli([...argv], env);
        expect([argv, res.code, res.stderr]).toEqual([argv, 5, line]);
      }
      const bad = await cli(['regions'], { ...m.env, TB_TIMEOUT: 'soon' });
      expect([bad.code, bad.stderr]).toEqual([
        2,
        'tunnelbyte: TB_TIMEOUT must be whole seconds from 1 to 86400, not soon\n',
      ]);
    } finally {
      await silent.close();
    }
  });

  test('4. usage errors exit 2 with one line: unknown command/option, missing argument, bad --api', async () => {
    const m = machine(b.url);
    for (const argv of [
      ['frobnicate'],
      ['regions', '--frob'],
      ['ip'],
      ['connect', '--ttl', '0'],
      ['regions', '--api', 'ftp://x'],
      ['regions', '--api', 'nope'],
    ]) {
      const res = await cli(argv, m.env);
      expect([argv, res.code]).toEqual([argv, 2]);
      expect(res.stderr).toMatch(/^tunnelbyte: /);
      expect(res.stderr.split('\n')).toHaveLength(2);
      expect(res.stdout).toBe('');
    }
    // An unknown command names the nearest one, still on one line.
    const typo = await cli(['conect', 'eu-west'], m.env);
    expect([typo.code, typo.stderr]).toEqual([
      2,
      "tunnelbyte: unknown command 'conect'; did you mean connect? (see --help)\n",
    ]);
    const help = await cli(['--help'], m.env);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Exit codes: 0 ok');
  });

  // [n, argv, environment, the one line]: values no request can fix, refused before or without one.
  const badValues: Array<[number, string[], Record<string, string>, string]> = [
    [
      1,
      ['regions', '--api', 'http://127.0.0.1:1'],
      {},
      '--api / TB_API http://127.0.0.1:1: fetch refuses this URL (bad port)',
    ],
    [
      2,
      ['regions'],
      { TB_API: 'https://127.0.0.1:6000' },
      '--api / TB_API https://127.0.0.1:6000: fetch refuses this URL (bad port)',
    ],
    [
      3,
      ['regions', '--api', 'http://me:hunter2@127.0.0.1:8080'],
      {},
      '--api / TB_API must not hold a user or password: sign in with `tunnelbyte login`',
    ],
    [
      4,
      ['regions', '--timeout', '86401'],
      {},
      "option '--timeout <seconds>' argument '86401' is invalid. whole seconds from 1 to 86400 (see --help)",
    ],
    [
      5,
      ['regions'],
      { TB_TIMEOUT: '99999999999' },
      'TB_TIMEOUT must be whole seconds from 1 to 86400, not 99999999999',
    ],
    [
      6,
      ['follow', '--interval', '1e3'],
      {},
      "option '--interval <seconds>' argument '1e3' is invalid. whole seconds from 1 to 86400 (see --help)",
    ],
    [
      7,
      ['connect', '--ttl', 'soon'],
      {},
      "option '--ttl <seconds>' argument 'soon' is invalid. whole seconds from 60 (a minute) to 2592000 (30 days) (see --help)",
    ],
    // Below the broker's minimum or above every tier's maximum: refused here, in the same words.
    [
      11,
      ['connect', '--ttl', '59'],
      {},
      "option '--ttl <seconds>' argument '59' is invalid. whole seconds from 60 (a minute) to 2592000 (30 days) (see --help)",
    ],
    [
      12,
      ['connect', '--ttl', '2592001'],
      {},
      "option '--ttl <seconds>' argument '2592001' is invalid. whole seconds from 60 (a minute) to 2592000 (30 days) (see --help)",
    ],
    [8, ['regions'], { TB_FINGERPRINT: 'xyz' }, 'TB_FINGERPRINT must be 16 to 128 hex digits'],
    // A password or a query in a URL that fails a check is never echoed.
    [
      9,
      ['regions', '--api', 'http://me:hunter2@127.0.0.1:99999'],
      {},
      '--api / TB_API is not a URL (give it as http(s)://host[:port])',
    ],
    [
      10,
      ['regions', '--api', 'http://127.0.0.1:1/?key=hunter2'],
      {},
      '--api / TB_API http://127.0.0.1:1/: fetch refuses this URL (bad port)',
    ],
  ];
  test.each(badValues)('4b.%i a bad value exits 2 with one line', async (_n, argv, env, line) => {
    const m = machine(b.url);
    const res = await cli(argv, { ...m.env, ...env });
    expect([res.code, res.stderr, res.stdout]).toEqual([2, `tunnelbyte: ${line}\n`, '']);
  });

  test('5. a spinner is drawn on stderr only when it is a terminal, and erased', async () => {
    const m = machine(b.url);
    const tty = await cli(['regions'], m.env, { stderrTTY: true });
    expect(tty.stderr).toContain('Fetching regions');
    expect(tty.stderr.endsWith('\r\x1b[2K')).toBe(true);
    const pipe = await cli(['regions'], m.env);
    expect(pipe.stderr).toBe('');
    expect(pipe.stdout).toBe(tty.stdout);
  });

  test('6. the compiled bin: same output, exit codes through the process', async () => {
    const m = machine(b.url);
    const regions = await cliBin(['regions', '--json'], m.env);
    expect(regions.code).toBe(0);
    expect(JSON.parse(regions.stdout)).toHaveProperty('regions');
    const noToken = await cliBin(['usage'], m.env);
    expect(noToken.code).toBe(3);
    const usage = await cliBin(['nope'], m.env);
    expect(usage.code).toBe(2);
    const signup = await cliBin(['signup', '--json'], m.env);
    expect(signup.code).toBe(0);
    const token = await cliBin(['token'], m.env);
    expect(token.stdout).toBe(`${(JSON.parse(signup.stdout) as { api_key: string }).api_key}\n`);
  });
});

test('Redis down → the broker answers 503 unavailable → exit 5 with "retry in N s"', async () => {
  const own = await startCliBroker();
  try {
    const m = machine(own.url);
    expect((await cli(['signup'], m.env)).code).toBe(0);
    await own.broker.server.kill();
    const res = await cli(['auth', 'test', '--json'], m.env);
    expect(res.code).toBe(5);
    expect(res.stderr).toMatch(/^tunnelbyte: unavailable: .*retry in \d+ s\n$/);
    expect(JSON.parse(res.stdout)).toMatchObject({ status: 503, error: 'unavailable', code: 5030 });
  } finally {
    await own.broker.server.restart();
    // Closing while ioredis sits in a reconnect back-off leaves a timer behind; let it reconnect first.
    await waitForReady(own.broker.redis);
    await own.close();
  }
});
