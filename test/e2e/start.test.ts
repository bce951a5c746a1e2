// `bash scripts/start`, the README's first command, as a user runs it: inside a throwaway namespace (it
// creates a TUN), with REDIS_URL unset so it starts its own Redis, and a temporary data dir. Its ports
// are the namespace's own loopback and UDP, so nothing on the host or in another run can hold them; fixed
// ones away from the defaults also check that PORT, TB_REDIS_PORT and TB_NODE_PORT are honoured. Ready
// line, the `local` region served with its exit node, the URL other machines must use; SIGINT (Ctrl-C),
// SIGTERM and SIGHUP each stop every child and remove the interface, also when started with `&` from a
// non-interactive shell (which starts it with SIGINT ignored); a second start on the same data dir is the
// same node again.
// Runs the built tree (scripts/test builds first), so TB_SKIP_SETUP skips the install and build steps.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { builtProgram } from '../helpers/repo.js';
import { netnsHarness, type Namespace, type ProcessHandle } from '../nodes/netns.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const START = join(ROOT, 'scripts/start');
const PORT = 18080;
const REDIS_PORT = 16380;
const NODE_PORT = 51999;
const READY_MS = 45_000;
/** Each test's bound: a start, its checks, and a stop. */
const TEST_MS = 90_000;

const harness = netnsHarness();
let ns: Namespace;
let dataDir: string;
let interfaceName: string;

interface Region {
  id: string;
  status: string;
  nodes: number;
  tiers: string[];
}

beforeAll(async () => {
  ns = await harness.namespace('start');
  dataDir = harness.tempDir();
  interfaceName = harness.interfaceName();
});

/** TEST-NET-1 (RFC 5737): never routed beyond the namespace. */
const OUTBOUND = '192.0.2.10';

const READY = /To stop everything started here: Ctrl-C, or kill (\d+) /;

function start(env: NodeJS.ProcessEnv = {}, argv: string[] = [START]): ProcessHandle {
  return ns.spawn('bash', argv, {
    REDIS_URL: undefined,
    HOST: undefined,
    TB_SKIP_SETUP: '1',
    TB_DATA_DIR: dataDir,
    PORT: String(PORT),
    TB_REDIS_PORT: String(REDIS_PORT),
    TB_NODE_PORT: String(NODE_PORT),
    TB_INTERFACE: interfaceName,
    ...env,
  });
}

/** Waits for the ready text and returns the pid it says to signal. */
async function ready(proc: ProcessHandle): Promise<number> {
  await proc.waitFor(READY, READY_MS);
  return Number(READY.exec(proc.output())![1]);
}

/** GET of a broker path from inside the namespace, as JSON. */
async function brokerJson<T>(path: string): Promise<T> {
  const script = `fetch(process.argv[1]).then((r) => r.text()).then((t) => process.stdout.write(t))`;
  const { stdout } = await ns.exec('node', ['-e', script, `http://127.0.0.1:${PORT}${path}`]);
  return JSON.parse(stdout) as T;
}

const regions = async () => (await brokerJson<{ regions: Region[] }>('/v1/regions')).regions;

const links = async () => (await ns.exec('ip', ['-o', 'link', 'show'])).stdout;

/** Processes still inside the namespace: the script ran only there, so all of its children did too. */
function survivors(): string[] {
  const pids = execFileSync('ip', ['netns', 'pids', ns.name], { encoding: 'utf8' });
  return pids.split('\n').filter((line) => line.trim() !== '');
}

/** Sends `signal` to the script and checks that it stopped everything it started, with `code`. */
async function stopAndCheckClean(
  proc: ProcessHandle,
  pid: number,
  signal: NodeJS.Signals,
  code: number,
): Promise<void> {
  process.kill(pid, signal);
  expect(await proc.exited).toBe(code);
  const output = proc.output();
  for (const child of ['node', 'broker', 'redis']) expect(output).toContain(`tunnelbyte: stopped ${child}`);
  expect(survivors()).toEqual([]);
  expect(await links()).not.toContain(interfaceName);
  expect(existsSync(`/var/run/wireguard/${interfaceName}.sock`)).toBe(false);
}

describe('scripts/start', () => {
  // The node's ready line: on a loaded machine a warm-up note can come before it.
  const upLine = () =>
    readFileSync(join(dataDir, 'logs/node.log'), 'utf8')
      .split('\n')
      .find((line) => / up, node node_/.test(line)) ?? '';
  let firstNodeLine: string;
  let token: string;

  test(
    '1. starts Redis, the broker and an exit node, and says ready with the next commands',
    async () => {
      const proc = start();
      expect(await ready(proc)).toBe(proc.pid);
      const output = proc.output();
      expect(output).toContain(
        `tunnelbyte: Redis on redis://127.0.0.1:${REDIS_PORT} (data in ${dataDir}/redis)`,
      );
      expect(output).toContain(
        `broker http://127.0.0.1:${PORT}, region local, exit node ${interfaceName} on UDP ${NODE_PORT}`,
      );
      // The default HOST serves this machine only, and the script says so with the way out.
      expect(output).toContain(
        'tunnelbyte: the broker listens on 127.0.0.1 only: other machines cannot reach it; ' +
          `for them, start with HOST=0.0.0.0 and use http://`,
      );
      expect(output).toContain(`export TB_API=http://127.0.0.1:${PORT}`);
      expect(output).toContain(`alias tunnelbyte='node ${ROOT}dist/src/cli/main.js'`);
      expect(output).toContain('tunnelbyte connect local');

      const local = (await regions()).filter((r) => r.id === 'local');
      expect(local).toEqual([
        expect.objectContaining({
          id: 'local',
          status: 'active',
          nodes: 1,
          tiers: ['free', 'pro', 'business'],
        }),
      ]);
      expect(await links()).toContain(`${interfaceName}:`);

      const tokenFiles = readdirSync(dataDir).filter((f) => f.startsWith('node-token-'));
      expect(tokenFiles).toHaveLength(1);
      token = readFileSync(join(dataDir, tokenFiles[0]!), 'utf8');
      expect(token).toMatch(/^tbn_[0-9A-Za-z]+\n$/);
      firstNodeLine = upLine();
      expect(firstNodeLine).toMatch(/node node_\w+/);

      await stopAndCheckClean(proc, proc.pid, 'SIGINT', 130);
    },
    TEST_MS,
  );

  test(
    '2. a second start on the same data dir reuses the token, the key and the Redis data; SIGTERM stops it',
    async () => {
      // An outbound address of the namespace's own (a route lookup finds it; nothing leaves), so the URL
      // for other machines differs from the loopback one this machine uses.
      await ns.exec('ip', ['address', 'add', `${OUTBOUND}/24`, 'dev', 'lo']);
      const proc = start({ HOST: '0.0.0.0', TB_ENDPOINT: '127.0.0.1' });
      await ready(proc);
      const remote = new RegExp(
        `tunnelbyte: other machines reach the broker at (http://[^ ]+:${PORT}) `,
      ).exec(proc.output());
      expect(remote?.[1]).toBe(`http://${OUTBOUND}:${PORT}`);
      // Sign-in links and the OAuth issuer name that URL too, not a loopback one.
      const metadata = await brokerJson<{ issuer: string }>('/.well-known/oauth-authorization-server');
      expect(metadata.issuer).toBe(remote![1]);
      const tokenFiles = readdirSync(dataDir).filter((f) => f.startsWith('node-token-'));
      expect(tokenFiles).toHaveLength(1);
      expect(readFileSync(join(dataDir, tokenFiles[0]!), 'utf8')).toBe(token);
      // Same key → same node id; a new id would also show as a second healthy node for 30 s.
      const nodeLine = upLine();
      expect(/node node_\w+/.exec(nodeLine)![0]).toBe(/node node_\w+/.exec(firstNodeLine)![0]);
      expect((await regions()).filter((r) => r.id === 'local')).toEqual([
        expect.objectContaining({ id: 'local', nodes: 1 }),
      ]);
      await stopAndCheckClean(proc, proc.pid, 'SIGTERM', 143);
    },
    TEST_MS,
  );

  test(
    '3. started with & from a non-interactive shell (SIGINT ignored on entry), SIGINT still stops it',
    async () => {
      const proc = start({}, ['-c', `bash ${START} & wait $!`]);
      const pid = await ready(proc);
      expect(pid).not.toBe(proc.pid);
      await stopAndCheckClean(proc, pid, 'SIGINT', 130);
    },
    TEST_MS,
  );

  test(
    '4. SIGHUP (its terminal closed) stops it',
    async () => {
      const proc = start();
      await stopAndCheckClean(proc, await ready(proc), 'SIGHUP', 129);
    },
    TEST_MS,
  );

  test(
    "5. a child that cannot start: the script says why in its own words (the log's last line) and stops the rest",
    async () => {
      // Something else holds the broker's port.
      const squatter = ns.spawn('node', [
        '-e',
        `require('node:net').createServer().listen(${PORT}, '127.0.0.1', () => console.log('listening'))`,
      ]);
      try {
        await squatter.waitFor('listening');
        const proc = start();
        expect(await proc.exited).toBe(1);
        expect(proc.output()).toContain(
          `tunnelbyte: broker exited before the broker was ready: tunnelbyte-broker: cannot listen on 127.0.0.1:${PORT}: ` +
            `the address is in use by another process; change PORT or HOST (log: ${dataDir}/logs/broker.log)\n`,
        );
        expect(proc.output()).toContain('tunnelbyte: stopped redis');
      } finally {
        await squatter.stop();
      }
      expect(survivors()).toEqual([]);
    },
    TEST_MS,
  );

  test(
    '6. the kept node token revoked (as its "revoke with:" line says): the next start mints a new one, says so in one line, and the node runs',
    async () => {
      const first = start();
      await ready(first);
      const admin = (args: string[]) =>
        ns.exec('env', [
          `REDIS_URL=redis://127.0.0.1:${REDIS_PORT}`,
          'node',
          builtProgram('src/broker/main.js'),
          ...['admin', 'node-token', ...args],
        ]);
      const { node_tokens: tokens } = JSON.parse((await admin(['list', '--json'])).stdout) as {
        node_tokens: { id: string; revoked_at: string | null }[];
      };
      const live = tokens.filter((t) => t.revoked_at === null);
      expect(live).toHaveLength(1);
      await admin(['revoke', live[0]!.id]);
      process.kill(first.pid, 'SIGINT');
      await first.exited;

      // At once, with the same endpoint: the revoked node's egress IP is free.
      const proc = start();
      await ready(proc);
      const tokenFile = join(
        dataDir,
        readdirSync(dataDir).find((f) => f.startsWith('node-token-'))!,
      );
      expect(proc.output()).toContain(
        `tunnelbyte: the broker refused the kept node token (${tokenFile}): revoked or expired; minting a new one\n`,
      );
      expect(readFileSync(tokenFile, 'utf8')).toMatch(/^tbn_[0-9A-Za-z]+\n$/);
      expect(readFileSync(tokenFile, 'utf8')).not.toBe(token);
      expect((await regions()).filter((r) => r.id === 'local')).toEqual([
        expect.objectContaining({ id: 'local', nodes: 1 }),
      ]);
      await stopAndCheckClean(proc, proc.pid, 'SIGINT', 130);
    },
    TEST_MS,
  );
});
