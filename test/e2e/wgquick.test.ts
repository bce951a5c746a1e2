// The config files `tunnelbyte connect` writes, brought up by the real wg-quick (Debian wireguard-tools,
// with Debian wireguard-go as its userspace implementation) in a client namespace, against a broker and
// `tunnelbyte-node run` in an exit namespace:
//
//   client namespace (a)                              exit namespace (b)
//   `tunnelbyte` + wg-quick + wireguard-go ══ veth ══▶ broker (Redis on loopback), tunnelbyte-node (TUN)
//
// wg-quick hands a config's DNS line to `resolvconf`. Installing Debian's resolvconf here would rewrite
// this host's /etc/resolv.conf, so the client namespace gets its own /etc/netns/<ns>/resolv.conf (which
// `ip netns exec` mounts over /etc/resolv.conf) and a small resolvconf on PATH that writes to it.
// Runs the built tree (scripts/test builds first).
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { netnsHarness, type Namespace } from '../nodes/netns.js';
import { API, CLI, startExitSide } from './exit-side.js';

const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const HOST_RESOLV = 'nameserver 192.0.2.53\n';
const SETUP_MS = 60_000;
const STEP_MS = 60_000;

const harness = netnsHarness();
let client: Namespace;
let exit: Namespace;
let configDir: string;
let netnsEtc: string;
/** PATH with a working resolvconf first; with a failing one; with wg-quick alone. */
let withResolvconf: string;
let failingResolvconf: string;
let wgQuickOnly: string;
let gateway: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** A command in the client namespace with exactly this environment. */
function inClient(argv: readonly string[], env: Record<string, string>): Promise<Run> {
  const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  return new Promise((resolve) => {
    execFile(
      'ip',
      ['netns', 'exec', client.name, 'env', '-i', ...vars, ...argv],
      { timeout: STEP_MS },
      (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
    );
  });
}

/** `tunnelbyte ARGS` in the client namespace, as its root user runs it, with this PATH. */
const tunnelbyte = (args: readonly string[], path = SYSTEM_PATH) =>
  inClient([process.execPath, CLI, ...args], {
    PATH: path,
    TB_API: API,
    TB_CONFIG_DIR: configDir,
    TB_FINGERPRINT: 'c3'.repeat(32),
  });

const clientLinks = async () => (await client.exec('ip', ['-o', 'link', 'show'])).stdout;
const resolvConf = () => readFileSync(join(netnsEtc, 'resolv.conf'), 'utf8');
const ping = (address: string) => client.exec('ping', ['-c', '1', '-W', '5', address]);

async function openSessions(): Promise<string[]> {
  const listed = await tunnelbyte(['sessions', '--json']);
  const { sessions } = JSON.parse(listed.stdout) as { sessions: { id: string; status: string }[] };
  return sessions.filter((s) => s.status !== 'closed').map((s) => s.id);
}

/** A directory to put first on PATH holding `resolvconf` with this shell body. */
function resolvconfDir(body: string): string {
  const dir = harness.tempDir();
  writeFileSync(join(dir, 'resolvconf'), `#!/bin/sh\n${body}\n`);
  chmodSync(join(dir, 'resolvconf'), 0o755);
  return dir;
}

beforeAll(async () => {
  const pair = await harness.pair();
  client = pair.a;
  exit = pair.b;
  configDir = join(harness.tempDir(), 'tunnelbyte');
  netnsEtc = join('/etc/netns', client.name);
  mkdirSync(netnsEtc, { recursive: true });
  writeFileSync(join(netnsEtc, 'resolv.conf'), HOST_RESOLV);

  // resolvconf as wg-quick calls it: `-a IFACE -m 0 -x` with nameserver lines on stdin, `-d IFACE -f`.
  const saved = join(harness.tempDir(), 'resolv.conf.saved');
  withResolvconf = `${resolvconfDir(
    `case "$1" in\n-a) cp /etc/resolv.conf '${saved}' && cat > /etc/resolv.conf ;;\n-d) cat '${saved}' > /etc/resolv.conf ;;\nesac`,
  )}:${SYSTEM_PATH}`;
  failingResolvconf = `${resolvconfDir("echo 'resolvconf: /etc/resolv.conf is read-only' >&2; exit 1")}:${SYSTEM_PATH}`;
  const only = harness.tempDir();
  symlinkSync('/usr/bin/wg-quick', join(only, 'wg-quick'));
  wgQuickOnly = only;

  ({ gateway } = await startExitSide(harness, exit));
  expect((await tunnelbyte(['signup'])).code).toBe(0);
}, SETUP_MS);

afterAll(() => rmSync(netnsEtc, { recursive: true, force: true }));

describe('the files connect writes, under the real wg-quick', () => {
  test(
    '1. the printed `wg-quick up` command works as printed; plain disconnect takes the interface down',
    async () => {
      const made = await tunnelbyte(['connect', 'local']);
      expect(made.code).toBe(0);
      const printed = /^Bring it up with: sudo (wg-quick up (\S+))$/m.exec(made.stdout);
      expect(printed).not.toBeNull();
      const [, command, file] = printed!;
      const name = /([^/]+)\.conf$/.exec(file!)![1]!;
      expect(name).toMatch(/^[a-zA-Z0-9_=+.-]{1,15}$/);

      // As root already, the command runs as printed without its sudo.
      const up = await inClient(command!.split(' '), { PATH: withResolvconf });
      expect([up.code, up.stderr]).toEqual([
        0,
        expect.stringContaining(`[#] ip link add ${name} type wireguard`),
      ]);
      expect(await clientLinks()).toContain(`${name}:`);
      expect(resolvConf()).toMatch(/^nameserver 1\.1\.1\.1$/m);
      await ping(gateway); // through the tunnel: the gateway is the node's TUN address

      const down = await tunnelbyte(['disconnect'], withResolvconf);
      expect([down.code, down.stdout]).toEqual([0, expect.stringMatching(/^Disconnected ses_\w+\.\n$/)]);
      expect(await clientLinks()).not.toContain(`${name}:`);
      expect(resolvConf()).toBe(HOST_RESOLV);
      expect(existsSync(file!)).toBe(false);
      expect(await openSessions()).toEqual([]);
    },
    STEP_MS,
  );

  test(
    '2. connect --up with no resolvconf on PATH: refused before any session, naming the fix',
    async () => {
      const res = await tunnelbyte(['connect', 'local', '--up'], wgQuickOnly);
      expect(res.code).toBe(1);
      expect(res.stderr).toContain('wg-quick needs resolvconf');
      expect(res.stderr).toContain('--no-dns');
      expect(await openSessions()).toEqual([]);
    },
    STEP_MS,
  );

  test(
    '3. connect --up --no-dns without resolvconf: up, traffic flows, the host DNS untouched; disconnect takes it down',
    async () => {
      const res = await tunnelbyte(['connect', 'local', '--up', '--no-dns', '--json']);
      expect(res.code).toBe(0);
      const { config_path: file } = JSON.parse(res.stdout) as { config_path: string };
      expect(readFileSync(file, 'utf8')).not.toMatch(/^DNS/m);
      const name = /([^/]+)\.conf$/.exec(file)![1]!;
      expect(await clientLinks()).toContain(`${name}:`);
      await ping(gateway);
      expect(resolvConf()).toBe(HOST_RESOLV);

      expect((await tunnelbyte(['disconnect'])).code).toBe(0);
      expect(await clientLinks()).not.toContain(`${name}:`);
      expect(await openSessions()).toEqual([]);
    },
    STEP_MS,
  );

  test(
    '4. connect --up with resolvconf: the DNS servers applied; disconnect --down (the old spelling) still works',
    async () => {
      const res = await tunnelbyte(['connect', 'local', '--up', '--json'], withResolvconf);
      expect(res.code).toBe(0);
      const { config_path: file } = JSON.parse(res.stdout) as { config_path: string };
      const name = /([^/]+)\.conf$/.exec(file)![1]!;
      expect(resolvConf()).toMatch(/^nameserver 1\.1\.1\.1$/m);
      await ping(gateway);
      expect((await tunnelbyte(['disconnect', '--down'], withResolvconf)).code).toBe(0);
      expect(await clientLinks()).not.toContain(`${name}:`);
      expect(resolvConf()).toBe(HOST_RESOLV);
    },
    STEP_MS,
  );

  test(
    '5. a failed `wg-quick up` closes the session it was for (the free slot is not kept)',
    async () => {
      const res = await tunnelbyte(['connect', 'local', '--up'], failingResolvconf);
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(/^tunnelbyte: wg-quick up \S+ failed \(exit 1\); session ses_\w+ closed$/m);
      expect(await openSessions()).toEqual([]);
      expect(await clientLinks()).not.toMatch(/ tb-\w+:/);
    },
    STEP_MS,
  );
});
