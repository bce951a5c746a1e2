// Network-namespace harness in the style of the kernel's tests/netns.sh: throwaway namespaces joined
// by a veth pair, processes started inside them, Debian wireguard-go configured with wg(8), and a
// cleanup that always runs (afterAll, process 'exit', and a sweep of namespaces left by crashed runs).
//
// Every name is derived from this process's pid, so parallel jest workers never collide:
//   namespaces  tbt-<pid>-<n>-<label>    (a private network stack each: addresses inside may repeat)
//   interfaces  tb<pid>w<n>              (wireguard-go's UAPI socket /run/wireguard/<if>.sock is NOT
//                                         per-namespace, so these names must be globally unique)
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  AEAD_TAG_LENGTH,
  INITIATION_SIZE,
  KEEPALIVE_SIZE,
  RESPONSE_SIZE,
  TRANSPORT_HEADER_SIZE,
} from '../../crypto/constants.js';
import { parseWgDump, type WgDump, type WgPeerDump } from '../../src/lib/wgdump.js';

// The suites take the dump's parser and types from here, beside the harness that runs wg.
export { parseWgDump, type WgDump, type WgPeerDump };

const NAMESPACE_PREFIX = 'tbt-';
const INTERFACE_PREFIX = 'tb';
const WG_SOCKET_DIR = '/var/run/wireguard';
const STOP_GRACE_MS = 2000;
const READY_TIMEOUT_MS = 10000;

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
}

function run(command: string, args: readonly string[], input?: string): Promise<CommandResult> {
  return new Promise((resolveRun, reject) => {
    const child = execFile(command, args, { maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')}: ${error.message}\n${stderr}`));
      else resolveRun({ stdout, stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function listNamespaces(): string[] {
  const output = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return output
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.length > 0);
}

function deleteNamespaceSync(name: string): void {
  // Processes inside keep a namespace's interfaces alive; kill them first.
  try {
    const pids = execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).split('\n');
    for (const pid of pids.map(Number).filter((pid) => pid > 0)) process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
  try {
    execFileSync('ip', ['netns', 'delete', name], { stdio: 'ignore' });
  } catch {
    // already gone
  }
}

/** Removes namespaces and wireguard-go sockets left behind by earlier harness runs whose process died. */
export function sweepStale(): void {
  for (const name of listNamespaces()) {
    const match = /^tbt-(\d+)-/.exec(name);
    if (match && Number(match[1]) !== process.pid && !isAlive(Number(match[1]))) deleteNamespaceSync(name);
  }
  if (!existsSync(WG_SOCKET_DIR)) return;
  for (const file of readdirSync(WG_SOCKET_DIR)) {
    const match = /^tb(\d+)w\d+\.sock$/.exec(file);
    if (match && Number(match[1]) !== process.pid && !isAlive(Number(match[1])))
      rmSync(join(WG_SOCKET_DIR, file), { force: true });
  }
}

// Members of process group `pgid` that still run. Zombies do not count: an orphan is reaped by pid 1,
// which in some containers takes seconds, but it holds no sockets, interfaces or namespaces.
function liveGroupMembers(pgid: number): number {
  let live = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) === pgid && state !== 'Z' && state !== 'X') live++;
    } catch {
      // exited while we looked
    }
  }
  return live;
}

async function waitForGroupExit(pgid: number): Promise<void> {
  const deadline = Date.now() + STOP_GRACE_MS;
  while (liveGroupMembers(pgid) > 0 && Date.now() < deadline)
    await new Promise((resolveSleep) => setTimeout(resolveSleep, 10));
}

export interface ProcessHandle {
  readonly pid: number;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves when `text` appears in the output (rejects if the process exits first). */
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<void>;
  readonly exited: Promise<number | null>;
  /** SIGTERM to the whole process group, SIGKILL after a grace period. */
  stop(): Promise<void>;
}

function handleFor(child: ChildProcess, forget: () => void): ProcessHandle {
  let output = '';
  const listeners = new Set<() => void>();
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
    for (const listener of listeners) listener();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<number | null>((resolveExit) => {
    child.once('exit', (code) => {
      forget();
      for (const listener of listeners) listener();
      resolveExit(code);
    });
    child.once('error', (error) => {
      output += String(error);
      forget();
      resolveExit(null);
    });
  });
  const pid = child.pid ?? -1;
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-pid, signal);
    } catch {
      // group already gone
    }
  };
  return {
    pid,
    output: () => output,
    exited,
    waitFor(text, timeoutMs = READY_TIMEOUT_MS) {
      return new Promise((resolveWait, reject) => {
        const found = () => (typeof text === 'string' ? output.includes(text) : text.test(output));
        const check = () => {
          if (found()) done(resolveWait);
          else if (child.exitCode !== null || child.signalCode !== null)
            done(() => reject(new Error(`process ${pid} exited before printing ${text}:\n${output}`)));
        };
        const timer = setTimeout(
          () => done(() => reject(new Error(`timed out waiting for ${text}:\n${output}`))),
          timeoutMs,
        );
        const done = (finish: () => void) => {
          clearTimeout(timer);
          listeners.delete(check);
          finish();
        };
        listeners.add(check);
        check();
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        signalGroup('SIGTERM');
        const timer = setTimeout(() => signalGroup('SIGKILL'), STOP_GRACE_MS);
        await exited;
        clearTimeout(timer);
      }
      // The leader's exit says nothing about its children: finish them and wait until they are reaped.
      signalGroup('SIGKILL');
      await waitForGroupExit(pid);
    },
  };
}

/**
 * Polls `condition` every `everyMs` (0: every event-loop turn) until true; fails early if `proc` exits, or
 * after READY_TIMEOUT_MS.
 */
export async function waitUntil(
  condition: () => boolean,
  proc: ProcessHandle,
  what: string,
  everyMs = 20,
): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let exited = false;
  void proc.exited.then(() => (exited = true));
  while (!condition()) {
    if (exited) throw new Error(`process ${proc.pid} exited before ${what}:\n${proc.output()}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${proc.output()}`);
    await new Promise((resolveSleep) =>
      everyMs === 0 ? setImmediate(resolveSleep) : setTimeout(resolveSleep, everyMs),
    );
  }
}

export interface Namespace {
  readonly name: string;
  /** Runs a command inside the namespace; rejects on a non-zero exit. */
  exec(command: string, args?: readonly string[], input?: string): Promise<CommandResult>;
  /** Starts a long-running process inside the namespace in its own process group. */
  spawn(command: string, args?: readonly string[], env?: NodeJS.ProcessEnv): ProcessHandle;
}

export interface WireguardKeys {
  readonly privateKey: string;
  readonly publicKey: string;
}

/** The ping count whose byte counters docs/WIREGUARD.md §7.5 gives exactly. */
export const PINGS = 10;
// §7.5: an 84-byte ICMP echo is padded to 96: 16 header + 96 + 16 tag = 128 bytes on the wire.
const PING_84_ON_WIRE = TRANSPORT_HEADER_SIZE + 96 + AEAD_TAG_LENGTH;

/**
 * §7.5 after `ping -c PINGS` of 84-byte packets from the initiator's side: the initiator sent the
 * initiation and received the response (a passive keepalive may follow); the responder mirrors it.
 */
export function expectPingCounters(initiator: WgPeerDump, responder: WgPeerDump): void {
  const pings = PINGS * PING_84_ON_WIRE;
  expect(initiator.rxBytes).toBe(RESPONSE_SIZE + pings);
  expect([INITIATION_SIZE + pings, INITIATION_SIZE + pings + KEEPALIVE_SIZE]).toContain(initiator.txBytes);
  expect(responder.txBytes).toBe(RESPONSE_SIZE + pings);
  expect(responder.rxBytes).toBe(initiator.txBytes);
}

export interface WireguardGo {
  readonly interfaceName: string;
  readonly namespace: Namespace;
  readonly process: ProcessHandle;
  /** `wg set <if> ...args` inside the namespace (key files are handled by setconf). */
  set(args: readonly string[]): Promise<void>;
  /** `wg setconf <if>` with a wg(8)-format configuration text. */
  setconf(config: string): Promise<void>;
  dump(): Promise<WgDump>;
  stop(): Promise<void>;
}

/** The two-namespace topology: `a` and `b` joined by veth `veth0` on both sides. */
export interface Pair {
  readonly a: Namespace;
  readonly b: Namespace;
}

/** Outer (veth) addresses of a Pair; each namespace has its own stack, so these are fixed. */
export const PAIR_ADDRESSES = {
  a: { v4: '192.168.241.1', v6: 'fd00:241::1' },
  b: { v4: '192.168.241.2', v6: 'fd00:241::2' },
} as const;
const PAIR_PREFIX = { v4: 24, v6: 64 } as const;

/** Inner (tunnel) addresses used by the two-namespace WireGuard topology: `a` is the exit side. */
export const TUNNEL_ADDRESSES = {
  a: { v4: '10.241.0.1', v6: 'fd10:241::1' },
  b: { v4: '10.241.0.2', v6: 'fd10:241::2' },
} as const;
export const TUNNEL_PREFIX = { v4: 24, v6: 64 } as const;

export interface WgConfigOptions {
  privateKey: string;
  listenPort?: number;
  /** wg-quick's Address key (for tunnelbyte-node up); omit for `wg setconf`, which rejects it. */
  addresses?: readonly string[];
  peer: { publicKey: string; allowedIps: readonly string[]; endpoint?: string; persistentKeepalive?: number };
}

/** A one-peer configuration in wg(8) / wg-quick(8) format (§8.1). */
export function wgConfig({ privateKey, listenPort, addresses, peer }: WgConfigOptions): string {
  const lines = ['[Interface]', `PrivateKey = ${privateKey}`];
  if (listenPort !== undefined) lines.push(`ListenPort = ${listenPort}`);
  if (addresses?.length) lines.push(`Address = ${addresses.join(', ')}`);
  lines.push('', '[Peer]', `PublicKey = ${peer.publicKey}`, `AllowedIPs = ${peer.allowedIps.join(', ')}`);
  if (peer.endpoint) lines.push(`Endpoint = ${peer.endpoint}`);
  if (peer.persistentKeepalive) lines.push(`PersistentKeepalive = ${peer.persistentKeepalive}`);
  return lines.join('\n') + '\n';
}

/** "host:port" with IPv6 hosts bracketed, as wg(8) and UAPI expect. */
export function endpointString(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

// Shared by every harness in this process, so two harnesses never pick the same name.
let nameCounter = 0;

export interface VethEnd {
  ns: Namespace;
  link: string;
  addresses: readonly string[];
}

const addressesOf = (address: { v4: string; v6: string }) => [
  `${address.v4}/${PAIR_PREFIX.v4}`,
  `${address.v6}/${PAIR_PREFIX.v6}`,
];

export class NetnsHarness {
  private readonly namespaces = new Set<string>();
  private readonly processes = new Map<number, ProcessHandle>();
  private readonly tempDirs: string[] = [];
  private exitHooked = false;
  private readonly onExit = () => this.cleanupSync();

  constructor() {
    sweepStale();
    this.hookExit();
  }

  // Registered while the harness owns anything, so even a crashing test leaves nothing behind.
  private hookExit(): void {
    if (this.exitHooked) return;
    this.exitHooked = true;
    process.on('exit', this.onExit);
  }

  /** A globally unique interface name (≤ 15 bytes), for TUNs and wireguard-go interfaces. */
  interfaceName(): string {
    return `${INTERFACE_PREFIX}${process.pid}w${nameCounter++}`;
  }

  async namespace(label: string): Promise<Namespace> {
    const name = `${NAMESPACE_PREFIX}${process.pid}-${nameCounter++}-${label}`;
    this.hookExit();
    this.namespaces.add(name);
    await run('ip', ['netns', 'add', name]);
    await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return {
      name,
      exec: (command, args = [], input) => run('ip', ['netns', 'exec', name, command, ...args], input),
      spawn: (command, args = [], env = {}) =>
        this.spawn(['ip', 'netns', 'exec', name, command, ...args], env),
    };
  }

  /** Two namespaces joined by a veth pair with PAIR_ADDRESSES (IPv6 without DAD: usable at once). */
  async pair(): Promise<Pair> {
    const a = await this.namespace('a');
    const b = await this.namespace('b');
    await this.veth(
      { ns: a, link: 'veth0', addresses: addressesOf(PAIR_ADDRESSES.a) },
      { ns: b, link: 'veth0', addresses: addressesOf(PAIR_ADDRESSES.b) },
    );
    return { a, b };
  }

  /** A veth pair joining two namespaces, each end with its addresses ('ip/prefix') and up. */
  async veth(...ends: [VethEnd, VethEnd]): Promise<void> {
    const [a, b] = ends;
    await a.ns.exec('ip', [
      'link',
      'add',
      a.link,
      'type',
      'veth',
      'peer',
      'name',
      b.link,
      'netns',
      b.ns.name,
    ]);
    for (const end of ends) await this.configureInterface(end.ns, end.link, end.addresses);
  }

  /** Spawns argv in its own process group; cleanup kills the group. */
  spawn(argv: readonly string[], env: NodeJS.ProcessEnv = {}): ProcessHandle {
    const [command, ...args] = argv;
    if (!command) throw new Error('spawn: empty argv');
    const child = spawn(command, args, { detached: true, env: { ...process.env, ...env }, stdio: 'pipe' });
    child.stdin?.end();
    const handle = handleFor(child, () => this.processes.delete(child.pid ?? -1));
    if (child.pid !== undefined) this.processes.set(child.pid, handle);
    this.hookExit();
    return handle;
  }

  /** A temporary directory removed by cleanup. */
  tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'tbt-'));
    this.tempDirs.push(dir);
    return dir;
  }

  async generateKeys(): Promise<WireguardKeys> {
    const privateKey = (await run('wg', ['genkey'])).stdout.trim();
    const publicKey = (await run('wg', ['pubkey'], privateKey)).stdout.trim();
    return { privateKey, publicKey };
  }

  /**
   * Starts Debian wireguard-go in `ns` (foreground, so the harness owns it) and waits for its UAPI socket.
   * logLevel 'error' keeps benchmarks quiet; 'debug' logs handshakes.
   */
  async wireguardGo(
    ns: Namespace,
    {
      interfaceName = this.interfaceName(),
      logLevel = 'debug',
    }: { interfaceName?: string; logLevel?: 'debug' | 'error' } = {},
  ): Promise<WireguardGo> {
    const proc = ns.spawn('wireguard-go', ['-f', interfaceName], {
      WG_PROCESS_FOREGROUND: '1',
      LOG_LEVEL: logLevel,
    });
    await waitUntil(
      () => existsSync(join(WG_SOCKET_DIR, `${interfaceName}.sock`)),
      proc,
      'wireguard-go UAPI socket',
    );
    const wg = (args: readonly string[], input?: string) => ns.exec('wg', args, input);
    return {
      interfaceName,
      namespace: ns,
      process: proc,
      set: async (args) => void (await wg(['set', interfaceName, ...args])),
      setconf: async (config) => {
        const file = join(this.tempDir(), 'wg.conf');
        writeFileSync(file, config, { mode: 0o600 });
        await wg(['setconf', interfaceName, file]);
      },
      dump: async () => parseWgDump((await wg(['show', interfaceName, 'dump'])).stdout),
      stop: () => proc.stop(),
    };
  }

  /** Assigns addresses ('ip/prefix', IPv6 with nodad) and brings `interfaceName` up inside `ns`. */
  async configureInterface(
    ns: Namespace,
    interfaceName: string,
    addresses: readonly string[],
  ): Promise<void> {
    for (const address of addresses) {
      const v6 = address.includes(':');
      await ns.exec('ip', [
        v6 ? '-6' : '-4',
        'address',
        'add',
        address,
        'dev',
        interfaceName,
        ...(v6 ? ['nodad'] : []),
      ]);
    }
    await ns.exec('ip', ['link', 'set', 'dev', interfaceName, 'up']);
  }

  /** Stops every process and removes every namespace and temp dir this harness made. Idempotent. */
  async cleanup(): Promise<void> {
    await Promise.all([...this.processes.values()].map((handle) => handle.stop()));
    this.cleanupSync();
  }

  private cleanupSync(): void {
    for (const pid of this.processes.keys()) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    this.processes.clear();
    for (const name of this.namespaces) deleteNamespaceSync(name);
    this.namespaces.clear();
    for (const dir of this.tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
    process.off('exit', this.onExit);
    this.exitHooked = false;
  }
}

/** A harness whose cleanup runs in jest's afterAll (and at process exit regardless). */
export function netnsHarness(): NetnsHarness {
  const harness = new NetnsHarness();
  afterAll(() => harness.cleanup());
  return harness;
}
