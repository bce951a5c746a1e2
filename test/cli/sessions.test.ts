// connect, sessions, status, disconnect, usage against a real broker. Nodes are registered over HTTP
// the way tunnelbyte-node does it (admin region → node token → register → heartbeat).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createOperatorKey } from '../../src/broker/admin.js';
import { parseWgQuick } from '../../src/lib/wgquick.js';
import { generateKeyPair } from '../../src/cli/wgkeys.js';
import {
  cli,
  cliBin,
  cliProgram,
  listedSessions,
  listen,
  machine,
  startCliBroker,
  type CliBroker,
  type Machine,
} from './harness.js';
import { decodeTextQr } from '../helpers/qr.js';

let b: CliBroker;
let node: { id: string; token: string; publicKey: string };

/** An admin-authenticated or node-authenticated JSON call, as the operator and tunnelbyte-node make it. */
async function call(token: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${b.url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  b = await startCliBroker({ TB_TIERS: JSON.stringify({ free: { requestsPerMinute: 100000 } }) });
  const admin = await createOperatorKey(b.broker.ctx, ['admin:read', 'admin:write'], 'cli-tests');
  const region = (id: string, tiers: string[]) =>
    call(admin, 'POST', '/v1/admin/regions', { id, name: id, country: 'DE', tiers });
  expect((await region('eu-west', ['free', 'pro', 'business'])).status).toBe(201);
  expect((await region('us-east', ['pro', 'business'])).status).toBe(201);
  expect((await region('sa-east', ['free', 'pro', 'business'])).status).toBe(201);
  const enrolled = await call(admin, 'POST', '/v1/admin/node-tokens', { region: 'eu-west' });
  const token = enrolled.body.token as string;
  const publicKey = generateKeyPair().publicKey;
  const registered = await call(token, 'POST', '/v1/nodes/register', {
    region: 'eu-west',
    endpoint: '192.0.2.10:51820',
    public_key: publicKey,
    egress_ips: ['198.51.100.10'],
    capacity: 100,
    version: 'test',
  });
  expect(registered.status).toBe(200);
  node = { id: registered.body.node_id as string, token, publicKey };
  expect(
    (await call(token, 'POST', `/v1/nodes/${node.id}/heartbeat`, { load: 0.1, draining: false, peers: [] }))
      .status,
  ).toBe(200);
});
afterAll(async () => b.close());

/** The public keys the node is told to serve (its peer feed, full set). */
async function nodePeers(): Promise<string[]> {
  const feed = await call(node.token, 'GET', `/v1/nodes/${node.id}/peers?wait=0`);
  return (feed.body.peers as { public_key: string }[]).map((p) => p.public_key);
}

const wgPubkey = (privateKey: string) =>
  execFileSync('wg', ['pubkey'], { input: `${privateKey}\n` })
    .toString()
    .trim();

async function signedUp(): Promise<Machine> {
  const m = machine(b.url);
  expect((await cli(['signup'], m.env)).code).toBe(0);
  return m;
}

describe('local checks before any session is spent', () => {
  test('1. --up without wg-quick on PATH → exit 1, one line saying what to install', async () => {
    const m = await signedUp();
    const res = await cli(['connect', 'eu-west', '--up'], {
      ...m.env,
      PATH: mkdtempSync(join(tmpdir(), 'tb-nopath-')),
    });
    expect(res.code).toBe(1);
    expect(res.stderr).toBe(
      'tunnelbyte: wg-quick not found: install wireguard-tools, or import the file into a WireGuard app\n',
    );
  });

  test('2. --up with --out - or an --out name wg-quick cannot use → exit 2', async () => {
    const m = await signedUp();
    const env = { ...m.env, PATH: process.env.PATH ?? '' };
    expect((await cli(['connect', 'eu-west', '--up', '--out', '-'], env)).code).toBe(2);
    const long = await cli(
      ['connect', 'eu-west', '--up', '--out', join(m.configDir, 'much-too-long-a-name.conf')],
      env,
    );
    expect(long.code).toBe(2);
    expect(long.stderr).toContain('≤ 15');
  });

  test('2b. --up with wg-quick but no resolvconf on PATH → exit 1 naming what to install or --no-dns; no session made', async () => {
    const m = await signedUp();
    const bin = mkdtempSync(join(tmpdir(), 'tb-path-'));
    symlinkSync(execFileSync('sh', ['-c', 'command -v wg-quick']).toString().trim(), join(bin, 'wg-quick'));
    const res = await cli(['connect', 'eu-west', '--up'], { ...m.env, PATH: bin });
    expect(res.code).toBe(1);
    expect(res.stderr).toBe(
      "tunnelbyte: wg-quick needs resolvconf to apply the config's DNS servers and none is on PATH: " +
        "install one (Debian: openresolv), or add --no-dns to keep this machine's DNS\n",
    );
    expect(await listedSessions(m)).toEqual([]);
  });

  test('2c. --out that cannot be written or that wg-quick cannot take → exit 2, one line; nothing created, no session made', async () => {
    const m = await signedUp();
    const dir = mkdtempSync(join(tmpdir(), 'tb-out-'));
    const rows: [string, string][] = [
      [
        join(dir, 'missing', 'deeper', 'tb0.conf'),
        `--out ${join(dir, 'missing', 'deeper', 'tb0.conf')}: cannot write in ${join(dir, 'missing', 'deeper')}: no such file or directory`,
      ],
      [
        '/etc/hostname/tb0.conf',
        '--out /etc/hostname/tb0.conf: cannot write in /etc/hostname: not a directory',
      ],
      [
        '/proc/nope/tb0.conf',
        '--out /proc/nope/tb0.conf: cannot write in /proc/nope: no such file or directory',
      ],
      [dir + '.conf', ''], // a directory itself (made below)
      [join(dir, 'bad name with spaces.conf'), 'wg-quick names the interface after the file'],
      [join(dir, 'tb0.txt'), 'wg-quick names the interface after the file'],
    ];
    mkdirSync(dir + '.conf');
    for (const [out, said] of rows) {
      const res = await cli(['connect', 'eu-west', '--no-dns', '--out', out], m.env);
      expect([out, res.code]).toEqual([out, 2]);
      expect(res.stderr).toMatch(/^tunnelbyte: [^\n]+\n$/);
      expect(res.stderr).toContain(said || `--out ${out}: is a directory`);
    }
    expect(existsSync(join(dir, 'missing'))).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
    expect(await listedSessions(m)).toEqual([]);
  });

  test('2d. --out whose write still fails after the session is made (root passes the check on /proc) → exit 1, the session closed, no file left', async () => {
    const m = await signedUp();
    const res = await cli(['connect', 'eu-west', '--no-dns', '--out', '/proc/tb0.conf'], m.env);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(
      /^tunnelbyte: cannot write \/proc\/tb0\.conf: no such file or directory; session ses_\S+ closed\n$/,
    );
    expect((await listedSessions(m)).map((s) => s.status)).toEqual(['closed']);
    expect(readdirSync('/proc').filter((f) => f.startsWith('tb0.conf'))).toEqual([]);
  });

  test('2e. a config dir that cannot be made (TB_CONFIG_DIR under a file) → exit 2, one line naming it; no session made, with or without --out', async () => {
    const m = await signedUp();
    const token = readFileSync(join(m.configDir, 'token'), 'utf8').trim();
    const env = { ...m.env, TB_KEY: token, TB_CONFIG_DIR: '/etc/hostname/tunnelbyte' };
    const dir = mkdtempSync(join(tmpdir(), 'tb-out-'));
    for (const args of [[], ['--out', join(dir, 'tb0.conf')]]) {
      const res = await cli(['connect', 'eu-west', '--no-dns', ...args], env);
      expect([args, res.code, res.stderr]).toEqual([
        args,
        2,
        'tunnelbyte: cannot write in the config dir /etc/hostname/tunnelbyte (TB_CONFIG_DIR): /etc/hostname: not a directory\n',
      ]);
    }
    expect(readdirSync(dir)).toEqual([]);
    expect(await listedSessions(m)).toEqual([]);
  });

  test('2f. a config dir whose files still cannot be written once the session is made (root passes the check on /proc) → exit 1, the session closed', async () => {
    const m = await signedUp();
    const token = readFileSync(join(m.configDir, 'token'), 'utf8').trim();
    const dir = mkdtempSync(join(tmpdir(), 'tb-out-'));
    const env = { ...m.env, TB_KEY: token, TB_CONFIG_DIR: '/proc' };
    const res = await cli(['connect', 'eu-west', '--no-dns', '--out', join(dir, 'tb0.conf')], env);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(
      /^tunnelbyte: cannot write \/proc\/state\.json: no such file or directory; session ses_\S+ closed\n$/,
    );
    expect(readdirSync(dir)).toEqual([]);
    expect((await listedSessions(m)).map((s) => s.status)).toEqual(['closed']);
  });

  test('2g. --up with an --out file named after an interface this machine already has → exit 2 before a session is made (wg-quick would refuse it)', async () => {
    const m = await signedUp();
    const bin = mkdtempSync(join(tmpdir(), 'tb-path-'));
    symlinkSync(execFileSync('sh', ['-c', 'command -v wg-quick']).toString().trim(), join(bin, 'wg-quick'));
    const dir = mkdtempSync(join(tmpdir(), 'tb-out-'));
    const res = await cli(['connect', 'eu-west', '--up', '--no-dns', '--out', join(dir, 'lo.conf')], {
      ...m.env,
      PATH: bin,
    });
    expect([res.code, res.stderr]).toEqual([
      2,
      'tunnelbyte: --out names the interface lo, which this machine already has: give the file another name\n',
    ]);
    expect(readdirSync(dir)).toEqual([]);
    expect(await listedSessions(m)).toEqual([]);
  });

  test('3. status and disconnect with no id and none recorded → exit 2', async () => {
    const m = await signedUp();
    for (const verb of ['status', 'disconnect']) {
      const res = await cli([verb], m.env);
      expect(res.code).toBe(2);
      expect(res.stderr).toBe(
        'tunnelbyte: no session id given and none recorded here; see `tunnelbyte sessions`\n',
      );
    }
  });

  test('4. connect with no region and none usable → exit 5, pointing at `tunnelbyte regions`', async () => {
    const empty = await startCliBroker();
    try {
      const m = machine(empty.url);
      expect((await cli(['signup'], m.env)).code).toBe(0);
      const res = await cli(['connect'], m.env);
      expect(res.code).toBe(5);
      expect(res.stderr).toBe(
        'tunnelbyte: no region has capacity for the free tier now; see `tunnelbyte regions`\n',
      );
      expect(existsSync(join(m.configDir, 'state.json'))).toBe(false);
    } finally {
      await empty.close();
    }
  });
});

describe('connect, sessions, status, disconnect, usage', () => {
  test('1. connect writes a complete wg-quick file (0600) whose key pair was made here', async () => {
    const m = await signedUp();
    const res = await cli(['connect', 'eu-west'], m.env);
    expect(res.code).toBe(0);
    const id = /^Session (ses_\S+) in eu-west: node (\S+) at 192\.0\.2\.10:51820, address (\S+), /.exec(
      res.stdout,
    );
    expect(id?.[2]).toBe(node.id);
    // The default name is one wg-quick accepts as an interface name (test/e2e/wgquick runs it for real).
    const path = join(m.configDir, `tb-${id?.[1]?.slice(-8)}.conf`);
    expect(res.stdout).toContain(
      `Config written to ${path} (mode 0600).\nBring it up with: sudo wg-quick up ${path}\n` +
        "(its DNS line needs resolvconf; `connect --no-dns` leaves this machine's DNS alone)\n",
    );
    expect(readFileSync(path, 'utf8')).toMatch(/^DNS = /m);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const text = readFileSync(path, 'utf8');
    const parsed = parseWgQuick(text);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.config.peers[0]?.publicKey).toEqual(new Uint8Array(Buffer.from(node.publicKey, 'base64')));
    expect(parsed.config.peers[0]?.endpoint).toEqual({ host: '192.0.2.10', port: 51820 });
    const privateKey = /^PrivateKey = (\S+)$/m.exec(text)?.[1] as string;
    // The node serves exactly the public key of the private key in our file: it was derived, not sent.
    expect(await nodePeers()).toContain(wgPubkey(privateKey));
    expect(res.stdout).not.toContain(privateKey);
    expect(JSON.parse(readFileSync(join(m.configDir, 'state.json'), 'utf8'))).toEqual({
      last_session: id?.[1],
    });
    await cli(['disconnect'], m.env);
  });

  test('2. --json: the session and config_path, no private key; --out - puts only the file on stdout', async () => {
    const m = await signedUp();
    const res = await cli(['connect', 'eu-west', '--json', '--ttl', '600'], m.env);
    expect(res.code).toBe(0);
    const body = JSON.parse(res.stdout) as {
      id: string;
      config_path: string;
      interface: object;
      created_at: string;
      expires_at: string;
    };
    expect(Date.parse(body.expires_at) - Date.parse(body.created_at)).toBe(600_000);
    expect(body.id).toMatch(/^ses_/);
    expect(body.config_path).toBe(join(m.configDir, `tb-${body.id.slice(-8)}.conf`));
    expect(body).not.toHaveProperty('config');
    expect(body.interface).not.toHaveProperty('private_key');
    const privateKey = /^PrivateKey = (\S+)$/m.exec(readFileSync(body.config_path, 'utf8'))?.[1] as string;
    expect(res.stdout).not.toContain(privateKey);
    expect((await cli(['disconnect', body.id], m.env)).code).toBe(0);

    const toStdout = await cli(['connect', 'eu-west', '--out', '-'], m.env);
    expect(toStdout.code).toBe(0);
    expect(toStdout.stdout.startsWith('[Interface]\n')).toBe(true);
    expect(parseWgQuick(toStdout.stdout).ok).toBe(true);
    expect(toStdout.stderr).toMatch(/^Session ses_\S+ in eu-west/);
    expect((await cli(['disconnect'], m.env)).code).toBe(0);
  });

  test('3. --out FILE and --qr: the file where asked, and on stdout a QR code of it, without colour codes off a terminal', async () => {
    const m = await signedUp();
    const out = join(mkdtempSync(join(tmpdir(), 'tb-out-')), 'tb0.conf');
    const res = await cli(['connect', 'eu-west', '--out', out, '--qr'], m.env);
    expect(res.code).toBe(0);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(res.stdout).toContain(`Config written to ${out}`);
    expect(res.stdout).not.toContain('\x1b');
    // A phone app scanning it gets exactly the file.
    expect(decodeTextQr(res.stdout)).toBe(readFileSync(out, 'utf8'));
    expect((await cli(['disconnect'], m.env)).code).toBe(0);
  });

  test('3a. --out NAME.conf, relative: written and printed by its absolute path, which real wg-quick reads as the file (a bare NAME.conf it takes for /etc/wireguard/NAME.conf.conf)', async () => {
    const m = await signedUp();
    const dir = mkdtempSync(join(tmpdir(), 'tb-cwd-'));
    const out = join(dir, 'tb0.conf');
    const res = await cliBin(['connect', 'eu-west', '--out', 'tb0.conf'], m.env, '', dir);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain(
      `Config written to ${out} (mode 0600).\nBring it up with: sudo wg-quick up ${out}\n`,
    );
    const strip = (file: string) =>
      spawnSync('wg-quick', ['strip', file], { cwd: dir, env: { PATH: process.env.PATH ?? '' } });
    const stripped = strip(out);
    expect(stripped.status).toBe(0);
    expect(stripped.stdout.toString()).toContain(`[Peer]\nPublicKey = ${node.publicKey}\n`);
    expect(strip('tb0.conf').stderr.toString()).toContain('/etc/wireguard/tb0.conf.conf');
    // disconnect runs from anywhere; the file placed with --out stays the user's.
    expect((await cli(['disconnect'], m.env)).code).toBe(0);
    expect(existsSync(out)).toBe(true);
  });

  test('3b. --no-dns: the file has no DNS line (wg-quick then needs no resolvconf), the rest as before', async () => {
    const m = await signedUp();
    const res = await cli(['connect', 'eu-west', '--no-dns', '--out', '-'], m.env);
    expect(res.code).toBe(0);
    expect(res.stdout).not.toMatch(/^DNS/im);
    expect(res.stdout).toMatch(/^Address = /m);
    expect(parseWgQuick(res.stdout).ok).toBe(true);
    expect(res.stderr).not.toContain('resolvconf');
    expect((await cli(['disconnect'], m.env)).code).toBe(0);
  });

  test('4. --psk: the file carries the preshared key the node was given', async () => {
    const m = await signedUp();
    const res = await cli(['connect', 'eu-west', '--psk', '--out', '-'], m.env);
    expect(res.code).toBe(0);
    const psk = /^PresharedKey = (\S+)$/m.exec(res.stdout)?.[1];
    expect(psk).toBeDefined();
    const feed = await call(node.token, 'GET', `/v1/nodes/${node.id}/peers?wait=0`);
    const peers = feed.body.peers as { preshared_key?: string }[];
    expect(peers.some((p) => p.preshared_key === psk)).toBe(true);
    expect((await cli(['disconnect'], m.env)).code).toBe(0);
  });

  test('5. without a region, the least-loaded region open to the tier is chosen', async () => {
    const m = await signedUp();
    const res = await cli(['connect', '--json'], m.env);
    expect(res.code).toBe(0);
    expect((JSON.parse(res.stdout) as { region: string }).region).toBe('eu-west');
    expect((await cli(['disconnect'], m.env)).code).toBe(0);
  });

  test('6. sessions, status (default: last), usage: tables and --json', async () => {
    const m = await signedUp();
    const created = JSON.parse((await cli(['connect', 'eu-west', '--json'], m.env)).stdout) as { id: string };
    const list = await cli(['sessions'], m.env);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^ID\s+REGION\s+STATUS\s+NODE\s+CREATED\s+EXPIRES\s+RX\s+TX\n/);
    expect(list.stdout).toMatch(new RegExp(`^${created.id}\\s+eu-west\\s+\\S+\\s+${node.id}\\s`, 'm'));
    expect((await listedSessions(m)).map((s) => s.id)).toEqual([created.id]);

    const status = await cli(['status'], m.env);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`^session:\\s+${created.id}\n`));
    expect(status.stdout).toMatch(/^region:\s+eu-west$/m);
    const statusJson = JSON.parse((await cli(['status', created.id, '--json'], m.env)).stdout) as Record<
      string,
      unknown
    >;
    expect(statusJson).toMatchObject({ id: created.id, region: 'eu-west' });
    expect(['pending', 'active', 'idle']).toContain(statusJson.status);

    const usage = await cli(['usage'], m.env);
    expect(usage.code).toBe(0);
    expect(usage.stdout).toMatch(/^tier:\s+free$/m);
    expect(usage.stdout).toMatch(/^bytes:\s+0 B of 10\.0 GiB$/m);
    expect(usage.stdout).toMatch(/^sessions:\s+1 active of 1, 1 created$/m);
    expect(usage.stdout).toMatch(/^requests:\s+100000 per minute$/m);
    const usageJson = JSON.parse((await cli(['usage', '--json'], m.env)).stdout) as {
      tier: string;
      sessions: object;
    };
    expect(usageJson).toMatchObject({ tier: 'free', sessions: { active: 1, limit: 1 } });

    const gone = await cli(['disconnect'], m.env);
    expect(gone).toMatchObject({ code: 0, stdout: `Disconnected ${created.id}.\n` });
    expect(existsSync(join(m.configDir, `${created.id}.conf`))).toBe(false);
    expect(JSON.parse((await cli(['status', created.id, '--json'], m.env)).stdout)).toMatchObject({
      status: 'closed',
    });
    expect((await cli(['status'], m.env)).code).toBe(2);
  });

  test('7. status and sessions count bytes from this machine, as wg here does: what the node received is what we sent', async () => {
    const m = await signedUp();
    const created = JSON.parse((await cli(['connect', 'eu-west', '--json'], m.env)).stdout) as {
      id: string;
      config_path: string;
    };
    const privateKey = /^PrivateKey = (\S+)$/m.exec(readFileSync(created.config_path, 'utf8'))?.[1] as string;
    const peer = { public_key: wgPubkey(privateKey), rx_bytes: 1000, tx_bytes: 5120 };
    const beat = {
      load: 0.1,
      draining: false,
      peers: [{ ...peer, last_handshake_at: new Date().toISOString() }],
    };
    expect((await call(node.token, 'POST', `/v1/nodes/${node.id}/heartbeat`, beat)).status).toBe(200);
    const status = await cli(['status'], m.env);
    expect(status.stdout).toMatch(/^received:\s+5\.00 KiB\nsent:\s+1000 B\n$/m);
    const list = await cli(['sessions'], m.env);
    expect(list.stdout).toMatch(new RegExp(`^${created.id}\\s.*\\s5\\.00 KiB\\s+1000 B$`, 'm'));
    expect((await cli(['disconnect'], m.env)).code).toBe(0);
  });
});

describe('connect and session errors, from the broker', () => {
  test('1. a second session on the free tier → 429 quota_exhausted → exit 4 with the way out', async () => {
    const m = await signedUp();
    expect((await cli(['connect', 'eu-west'], m.env)).code).toBe(0);
    const second = await cli(['connect', 'eu-west', '--json'], m.env);
    expect(second.code).toBe(4);
    expect(second.stderr).toMatch(
      /^tunnelbyte: quota exhausted: At most 1 concurrent session on the free tier; closing one \(`tunnelbyte disconnect`, DELETE \/v1\/sessions\/\{id\}\) frees its slot at once; retry in \d+ s; see `tunnelbyte usage` or `tunnelbyte upgrade`\n$/,
    );
    expect(JSON.parse(second.stdout)).toMatchObject({ status: 429, error: 'quota_exhausted', code: 4290 });
    expect((await cli(['disconnect'], m.env)).code).toBe(0);
  });

  test('2. a paid-only region → 403 tier_required → exit 3 pointing at upgrade', async () => {
    const m = await signedUp();
    const res = await cli(['connect', 'us-east'], m.env);
    expect(res.code).toBe(3);
    expect(res.stderr).toMatch(/It needs the pro tier: run `tunnelbyte upgrade`\.\n$/);
  });

  test('3. a region without a healthy node → 503 no_capacity → exit 5, try another region', async () => {
    const m = await signedUp();
    const res = await cli(['connect', 'sa-east', '--json'], m.env);
    expect(res.code).toBe(5);
    expect(res.stderr).toMatch(/^tunnelbyte: no capacity: .* Try another region: `tunnelbyte regions`\.\n$/);
    expect(JSON.parse(res.stdout)).toMatchObject({ status: 503, error: 'no_capacity', code: 5003 });
    expect(existsSync(join(m.configDir, 'state.json'))).toBe(false);
  });

  test('4. an unknown region → 400 → exit 1; an unknown or foreign session → 404 → exit 1', async () => {
    const m = await signedUp();
    const unknown = await cli(['connect', 'mars-1'], m.env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(
      "tunnelbyte: unknown region 'mars-1'; the regions are: eu-west, sa-east, us-east (see `tunnelbyte regions`)\n",
    );
    expect((await cli(['status', 'ses_doesnotexist'], m.env)).code).toBe(1);
    // A path in place of an id goes to the broker as one path segment, refused there, named once.
    for (const verb of ['status', 'disconnect']) {
      const res = await cli([verb, '../regions'], m.env);
      expect([verb, res.code, res.stderr]).toEqual([
        verb,
        1,
        'tunnelbyte: invalid request (id): a session id\n',
      ]);
    }

    const owner = await signedUp();
    const theirs = JSON.parse((await cli(['connect', 'eu-west', '--json'], owner.env)).stdout) as {
      id: string;
    };
    for (const verb of ['status', 'disconnect']) {
      const res = await cli([verb, theirs.id], m.env);
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(/^tunnelbyte: not found: /);
    }
    expect((await cli(['status', theirs.id, '--json'], owner.env)).stdout).not.toContain('"closed"');
    expect((await cli(['disconnect', theirs.id], owner.env)).code).toBe(0);
  });

  test('5. a key without tunnels:write cannot connect (403 → exit 3 naming the scope)', async () => {
    const m = await signedUp();
    const created = await cli(
      ['auth', 'keys', 'create', '--name', 'ro', '--permission', 'tunnels:read', '--json'],
      m.env,
    );
    const readOnly = (JSON.parse(created.stdout) as { key: string }).key;
    const res = await cli(['connect', 'eu-west'], { ...m.env, TB_KEY: readOnly });
    expect(res.code).toBe(3);
    expect(res.stderr).toContain('lacks the scope tunnels:write');
    expect((await cli(['sessions'], { ...m.env, TB_KEY: readOnly })).code).toBe(0);
  });
});

describe('Ctrl-C (the compiled bin, a real SIGINT)', () => {
  /** The bin running `argv`; resolves with its exit code and output. */
  function bin(argv: string[], env: Record<string, string>) {
    const child = spawn(process.execPath, [cliProgram(), ...argv], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<{ code: number | null; stderr: string }>((resolve) =>
      child.once('close', (code) => resolve({ code, stderr })),
    );
    return { child, exited };
  }

  test('1. during connect: the session the broker made anyway is closed, "interrupted", exit 130', async () => {
    const m = await signedUp();
    // A proxy in front of the broker that holds POST /v1/sessions until the CLI has been interrupted.
    let arrived!: () => void;
    const held = new Promise<void>((resolve) => (arrived = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const proxy = await listen((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        if (req.method === 'POST' && req.url === '/v1/sessions') {
          arrived();
          await released;
        }
        const forwarded = ['authorization', 'content-type', 'x-machine-fingerprint'].flatMap((h) =>
          typeof req.headers[h] === 'string' ? [[h, req.headers[h]] as [string, string]] : [],
        );
        const upstream = await fetch(`${b.url}${req.url}`, {
          method: req.method,
          headers: forwarded,
          body: chunks.length ? Buffer.concat(chunks) : undefined,
        });
        res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? '' });
        res.end(Buffer.from(await upstream.arrayBuffer()));
      });
    });
    try {
      const run = bin(['connect', 'eu-west'], { ...m.env, TB_API: proxy.url });
      await held;
      run.child.kill('SIGINT');
      // Let the SIGINT land before the broker answers, as when the user presses Ctrl-C mid-request.
      await new Promise((resolve) => setTimeout(resolve, 200));
      release();
      const { code, stderr } = await run.exited;
      expect(code).toBe(130);
      expect(stderr).toMatch(/^tunnelbyte: interrupted; session ses_\w+ closed\n$/);
      const id = /session (ses_\w+) closed/.exec(stderr)![1]!;
      const status = JSON.parse((await cli(['status', id, '--json'], m.env)).stdout) as { status: string };
      expect(status.status).toBe('closed');
      expect(existsSync(join(m.configDir, `tb-${id.slice(-8)}.conf`))).toBe(false);
    } finally {
      await proxy.close();
    }
  });

  test('2. while waiting for a broker that does not answer: "interrupted", exit 130', async () => {
    let arrived!: () => void;
    const asked = new Promise<void>((resolve) => (arrived = resolve));
    const silent = await listen(() => arrived());
    try {
      const run = bin(['regions'], machine(silent.url).env);
      await asked;
      run.child.kill('SIGINT');
      expect(await run.exited).toEqual({ code: 130, stderr: 'tunnelbyte: interrupted\n' });
    } finally {
      await silent.close();
    }
  });
});
