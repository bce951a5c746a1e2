// The whole story a user lives, with real parts only, in two namespaces this test makes:
//
//   client namespace (a)                              exit namespace (b)
//   `tunnelbyte` CLI ──HTTP── veth 192.168.241.0/24 ──▶ broker on 192.168.241.2:8080 ── Redis (loopback)
//   Debian wireguard-go ═══ WireGuard over UDP ═══════▶ `tunnelbyte-node run` (TUN, 10.64.0.1)
//                                                        a small TCP server on the node's gateway address
//
// signup → regions → connect (wg-quick file) → wireguard-go + `wg setconf` bring it up → a TCP download
// through the tunnel → status shows it active with bytes → usage counts them → the exit IP is attributed
// → another machine cannot use the free token → the node, killed and restarted, rebuilds its peers from
// the broker → disconnect: the peer leaves the node and traffic stops. Runs the built tree (scripts/test
// builds first). Everything lives in the harness's namespaces and temp dirs, removed in afterAll.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import {
  netnsHarness,
  PAIR_ADDRESSES,
  type Namespace,
  type ProcessHandle,
  type WireguardGo,
} from '../nodes/netns.js';
import { API, BROKER_HOST, CLI, NODE_PORT, startExitSide } from './exit-side.js';
import { settled } from '../helpers/eventually.js';

const DOWNLOAD_PORT = 5201;
const DOWNLOAD_BYTES = 4 * 1024 * 1024;
// Two machines, as the CLI's TB_FINGERPRINT lets one host play them.
const FINGERPRINT = 'a1'.repeat(32);
const OTHER_FINGERPRINT = 'b2'.repeat(32);

/** Bounds: the setup, each step, and a wait for something the node reports in its next heartbeat (10 s). */
const SETUP_MS = 60_000;
const STEP_MS = 60_000;
const HEARTBEAT_WAIT_MS = 30_000;

const harness = netnsHarness();

let client: Namespace;
let exit: Namespace;
let node: ProcessHandle;
let nodeInterface: string;
let nodeId: string;
let configDir: string;

// ── helpers ─────────────────────────────────────────────────────────────────────────────────────

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `tunnelbyte ARGS` in the client namespace, as the user on machine FINGERPRINT runs it. */
function tunnelbyte(args: readonly string[], fingerprint = FINGERPRINT): Promise<CliResult> {
  const env = [`TB_API=${API}`, `TB_CONFIG_DIR=${configDir}`, `TB_FINGERPRINT=${fingerprint}`];
  const argv = ['netns', 'exec', client.name, 'env', '-u', 'TB_KEY', ...env, 'node', CLI, ...args];
  return new Promise((resolve) => {
    execFile('ip', argv, { timeout: STEP_MS }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function tunnelbyteJson<T>(args: readonly string[]): Promise<T> {
  const result = await tunnelbyte([...args, '--json']);
  if (result.code !== 0)
    throw new Error(`tunnelbyte ${args.join(' ')}: exit ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

const nodePeers = async () => (await exit.exec('wg', ['show', nodeInterface, 'peers'])).stdout;

// wg(8) reads [Interface] PrivateKey/ListenPort/FwMark and [Peer] keys; the rest of a wg-quick file is
// for wg-quick itself, which this test does without (as `wg-quick strip` would, then `ip` for Address).
const WG_QUICK_ONLY = new Set([
  'address',
  'dns',
  'mtu',
  'table',
  'preup',
  'postup',
  'predown',
  'postdown',
  'saveconfig',
]);

function stripWgQuick(text: string): { config: string; addresses: string[] } {
  const addresses: string[] = [];
  const kept: string[] = [];
  for (const line of text.split('\n')) {
    const match = /^\s*([A-Za-z]+)\s*=\s*(.*?)\s*$/.exec(line);
    const key = match?.[1]?.toLowerCase();
    if (key === undefined || !WG_QUICK_ONLY.has(key)) kept.push(line);
    if (key === 'address') addresses.push(...match![2]!.split(',').map((a) => a.trim()));
  }
  return { config: kept.join('\n'), addresses };
}

// A server that sends DOWNLOAD_BYTES random bytes to each connection, and a client that reports what it
// got (or that nothing came within its idle timeout). CommonJS under `node -e`.
const DOWNLOAD_SERVER = `
const net = require('net'), crypto = require('crypto');
const [host, port, size] = process.argv.slice(1);
const data = crypto.randomBytes(Number(size));
net.createServer((c) => { c.on('error', () => {}); c.end(data); })
  .listen(Number(port), host, () => console.log('serving ' + crypto.createHash('sha256').update(data).digest('hex')));`;

const DOWNLOAD_CLIENT = `
const net = require('net'), crypto = require('crypto');
const [host, port, idleMs] = process.argv.slice(1);
const hash = crypto.createHash('sha256'); let n = 0;
const c = net.connect({ host, port: Number(port), timeout: Number(idleMs) });
c.on('data', (d) => { hash.update(d); n += d.length; });
c.on('end', () => console.log('received ' + n + ' ' + hash.digest('hex')));
c.on('timeout', () => { console.log('idle after ' + n); process.exit(0); });
c.on('error', (e) => { console.log('error ' + e.code); process.exit(0); });`;

async function download(host: string, idleMs: number): Promise<string> {
  return (
    await client.exec('node', ['-e', DOWNLOAD_CLIENT, host, String(DOWNLOAD_PORT), String(idleMs)])
  ).stdout.trim();
}

// ── the system ──────────────────────────────────────────────────────────────────────────────────

let gateway: string;
let servedHash: string;
let restartNode: () => Promise<ProcessHandle>;

beforeAll(async () => {
  const pair = await harness.pair();
  client = pair.a;
  exit = pair.b;
  configDir = join(harness.tempDir(), 'tunnelbyte');
  const side = await startExitSide(harness, exit);
  ({ node, nodeInterface, nodeId, gateway } = side);
  restartNode = side.restartNode;
  // The download server listens on the node's gateway address.
  const server = exit.spawn('node', [
    '-e',
    DOWNLOAD_SERVER,
    gateway,
    String(DOWNLOAD_PORT),
    String(DOWNLOAD_BYTES),
  ]);
  await server.waitFor('serving');
  servedHash = /serving ([0-9a-f]{64})/.exec(server.output())![1]!;
}, SETUP_MS);

// ── the story ───────────────────────────────────────────────────────────────────────────────────

interface Region {
  id: string;
  status: string;
  nodes: number;
  tiers: string[];
}
interface SessionView {
  id: string;
  status: string;
  region: string;
  rx_bytes: number;
  tx_bytes: number;
}

describe('the user story, end to end', () => {
  let sessionId: string;
  let configFile: string;
  let wg: WireguardGo;
  let clientKey: string;
  let clientConfig: string;

  test(
    '1. signup: a free token, cached 0600, bound to this machine',
    async () => {
      const result = await tunnelbyte(['signup']);
      expect(result.code).toBe(0);
      const tokenFile = join(configDir, 'token');
      expect(readFileSync(tokenFile, 'utf8').trim()).toMatch(/^tb_[0-9A-Za-z]{38}$/);
      expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    },
    STEP_MS,
  );

  test(
    '2. regions: local is active with the one node, open to the free tier',
    async () => {
      const human = await tunnelbyte(['regions']);
      expect(human.code).toBe(0);
      expect(human.stdout).toMatch(/^local\s+Local\s+ZZ\s+active\s+1\s/m);
      const { regions } = await tunnelbyteJson<{ regions: Region[] }>(['regions']);
      expect(regions).toEqual([
        expect.objectContaining({
          id: 'local',
          status: 'active',
          nodes: 1,
          tiers: ['free', 'pro', 'business'],
        }),
      ]);
    },
    STEP_MS,
  );

  test(
    '3. connect local --out F: a wg-quick file for this session on the node',
    async () => {
      configFile = join(configDir, 'local.conf');
      const session = await tunnelbyteJson<{ id: string; node: { id: string }; config_path: string }>([
        'connect',
        'local',
        '--out',
        configFile,
      ]);
      sessionId = session.id;
      expect(session.node.id).toBe(nodeId);
      expect(session.config_path).toBe(configFile);
      expect(statSync(configFile).mode & 0o777).toBe(0o600);
      const text = readFileSync(configFile, 'utf8');
      expect(text).toContain(`Endpoint = ${BROKER_HOST}:${NODE_PORT}`);
      expect(text).toMatch(/^PrivateKey = [A-Za-z0-9+/]{43}=$/m);
      // The broker said the peer is live on the node within a second of the 201.
      clientKey = (await client.exec('wg', ['pubkey'], /^PrivateKey = (.*)$/m.exec(text)![1]!)).stdout.trim();
      await settled('the peer on the node', nodePeers, (peers) => peers.includes(clientKey), {
        timeoutMs: 1000,
        everyMs: 20,
      });
    },
    STEP_MS,
  );

  test(
    '4. wireguard-go + wg setconf bring F up; a TCP download through the tunnel arrives intact',
    async () => {
      const { config, addresses } = stripWgQuick(readFileSync(configFile, 'utf8'));
      expect(addresses).toEqual([
        expect.stringMatching(/^10\.64\.\d+\.\d+\/32$/),
        expect.stringMatching(/^fd64::/),
      ]);
      clientConfig = config;
      wg = await harness.wireguardGo(client);
      await wg.setconf(config);
      await harness.configureInterface(client, wg.interfaceName, addresses);
      // wg-quick would route everything into the tunnel; the API stays on the veth here, the pool goes in.
      await client.exec('ip', ['route', 'add', `${gateway}/32`, 'dev', wg.interfaceName]);

      expect(await download(gateway, 10_000)).toBe(`received ${DOWNLOAD_BYTES} ${servedHash}`);
      const [peer] = (await wg.dump()).peers;
      expect(peer!.rxBytes).toBeGreaterThan(DOWNLOAD_BYTES);
    },
    STEP_MS,
  );

  test(
    '5. status: active, with the bytes the node reported',
    async () => {
      const session = await settled(
        'a heartbeat with the download',
        () => tunnelbyteJson<SessionView>(['status']),
        (s) => s.status === 'active' && s.tx_bytes > DOWNLOAD_BYTES,
        { timeoutMs: HEARTBEAT_WAIT_MS, everyMs: 1500 }, // the free tier allows 60 requests a minute
      );
      expect(session).toEqual(expect.objectContaining({ id: sessionId, region: 'local', status: 'active' }));
      expect(session.rx_bytes).toBeGreaterThan(0);
      const human = await tunnelbyte(['status']);
      expect(human.stdout).toContain('active');
    },
    STEP_MS,
  );

  test(
    '6. usage counts those bytes against the free tier',
    async () => {
      const usage = await tunnelbyteJson<{
        tier: string;
        bytes: { used: number; limit: number };
        sessions: { active: number; limit: number; created: number };
      }>(['usage']);
      expect(usage.tier).toBe('free');
      expect(usage.bytes.used).toBeGreaterThan(DOWNLOAD_BYTES);
      expect(usage.bytes.limit).toBe(10 * 1024 ** 3);
      expect(usage.sessions).toEqual({ active: 1, limit: 1, created: 1 });
    },
    STEP_MS,
  );

  test(
    '7. ip <exit ip>: the node’s registered egress address is attributed; another is not',
    async () => {
      const held = await tunnelbyteJson<{ ip: string; exit: boolean; region: string; node: string }>([
        'ip',
        BROKER_HOST,
      ]);
      expect(held).toEqual(
        expect.objectContaining({ ip: BROKER_HOST, exit: true, region: 'local', node: nodeId }),
      );
      const other = await tunnelbyteJson<{ exit: boolean }>(['ip', PAIR_ADDRESSES.a.v4]);
      expect(other.exit).toBe(false);
    },
    STEP_MS,
  );

  test(
    '8. a second machine cannot use the free token (401, exit 3), and makes no session',
    async () => {
      const usage = await tunnelbyte(['usage'], OTHER_FINGERPRINT);
      expect(usage.code).toBe(3);
      const stolen = join(configDir, 'stolen.conf');
      const connect = await tunnelbyte(['connect', 'local', '--out', stolen], OTHER_FINGERPRINT);
      expect(connect.code).toBe(3);
      expect(existsSync(stolen)).toBe(false);
      expect(await nodePeers()).toBe(`${clientKey}\n`);
    },
    STEP_MS,
  );

  test(
    '9. the node killed and restarted rebuilds its peers from the broker; traffic flows again',
    async () => {
      process.kill(-node.pid, 'SIGKILL');
      await node.exited;
      await node.stop();
      expect((await exit.exec('ip', ['-o', 'link', 'show'])).stdout).not.toContain(nodeInterface);

      node = await restartNode();
      expect(node.output()).toContain(`node ${nodeId} `);
      await settled('the peer rebuilt', nodePeers, (peers) => peers === `${clientKey}\n`, {
        timeoutMs: 10_000,
        everyMs: 50,
      });
      // The client's session died with the node's memory. WireGuard would start a new handshake by itself
      // after 15 s of unanswered data; re-applying the config (as wg-quick down/up would) does it now.
      await wg.setconf(clientConfig);
      expect(await download(gateway, 10_000)).toBe(`received ${DOWNLOAD_BYTES} ${servedHash}`);
    },
    STEP_MS,
  );

  test(
    '10. disconnect: the peer is gone from the node a second later, and traffic stops',
    async () => {
      const result = await tunnelbyte(['disconnect']);
      expect(result.code).toBe(0);
      // docs/API.md: a closed session's peer leaves the node (the feed is a long poll, so this is prompt).
      await settled('the peer gone from the node', nodePeers, (peers) => peers === '', {
        timeoutMs: 1000,
        everyMs: 20,
      });
      expect(await download(gateway, 3000)).toBe('idle after 0');
      const closed = await tunnelbyteJson<SessionView>(['status', sessionId]);
      expect(closed.status).toBe('closed');
    },
    STEP_MS,
  );
});
