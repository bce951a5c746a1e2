// `tunnelbyte-node run`: an exit node under a broker. Brings up the TUN interface with the node's
// gateway addresses from the broker's address plan, serves UAPI (so `wg show NAME` works), and hands the
// peer set to the Agent (nodes/agent.ts).
//
// For operators:
// - Key: kept in `<state dir>/private.key` (base64, mode 0600; the dir 0700), state dir
//   `/var/lib/tunnelbyte-node/<interface>` unless `--state-dir`; `--private-key-file` names the file
//   itself. Made on first start. The broker derives the node id from token + public key, so keeping the
//   file keeps the node's id, sessions and feed across restarts; deleting it makes a new node.
// - Peers' endpoints: `<state dir>/peers.json` (the key file's dir), kept for the greeting after a restart
//   (nodes/resume.ts); deleting it only means clients resume by their own retry.
// - Egress IPs (for /v1/ip attribution): `--egress-ip`, else the endpoint's host when it is numeric.
// - NAT is opt-in (`--nat`): IPv4/IPv6 forwarding on, and an nftables table `inet tunnelbyte_<interface>`
//   that masquerades the pool out of every other interface (removed at exit). Without it the node only
//   terminates tunnels; do NAT yourself or pass --nat on a dedicated exit host.
// - Signals: the first SIGTERM/SIGINT drains (heartbeat `draining`, no new sessions, existing peers keep
//   forwarding); the node exits 0 when its last peer is gone, after `--drain-timeout` seconds (30), or
//   on a second signal. One during start-up is kept (nodes/stop-signals.ts): before the node has registered
//   it stops the start, after it drains. A bad token exits 1 with one line.
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { KEY_LENGTH } from '../crypto/constants.js';
import { parseIpAddress } from '../crypto/ipaddr.js';
import { keyFromBase64 } from '../src/lib/wgkey.js';
import { Agent } from './agent.js';
import { BrokerClient } from './broker-client.js';
import {
  loadPeers,
  PEERS_FILE,
  recentPeers,
  rememberedPeers,
  resumeHandshakes,
  savePeers,
} from './resume.js';
import {
  checkInterfaceName,
  EGRESS_KINDS,
  parseHostPort,
  type Checked,
  type Egress,
  type HostPort,
  dataPathSettings,
  type DataPathArguments,
  type DataPathSettings,
} from './config.js';
import { readyLine, startDaemon, type Daemon } from './daemon.js';
import { FetchThread } from './fetch-thread.js';
import { ip, runTool } from './ip.js';
import { secureRandomBytes } from './random.js';
import { StopSignals } from './stop-signals.js';
import { configureInterface } from './tun/index.js';
import { nodeInterfaceAddresses, prefixesOverlap, type Pool } from '../src/lib/addresses.js';

export const DEFAULT_INTERFACE = 'tbn0';
export const DEFAULT_STATE_ROOT = '/var/lib/tunnelbyte-node';
export const DEFAULT_CAPACITY = 1000;
export const DEFAULT_DRAIN_TIMEOUT_SECONDS = 30;
export const MAX_CAPACITY = 4_000_000;
// A day: a drain never outlasts a maintenance window (and setTimeout takes at most 24.8 days).
export const MAX_DRAIN_TIMEOUT_SECONDS = 86_400;

export interface RunArguments extends DataPathArguments {
  broker: string;
  token: string;
  region: string;
  listen: string;
  endpoint: string;
  egress?: string;
  interface?: string;
  metrics?: string;
  privateKeyFile?: string;
  stateDir?: string;
  capacity?: string;
  egressIp?: string[];
  nat?: boolean;
  drainTimeout?: string;
}

export interface RunSettings extends DataPathSettings {
  broker: string;
  token: string;
  region: string;
  listen: HostPort;
  endpoint: string;
  egress: Egress;
  interfaceName: string;
  metrics?: HostPort;
  privateKeyFile: string;
  capacity: number;
  egressIps: string[];
  nat: boolean;
  drainTimeoutMs: number;
}

const bad = (message: string): { ok: false; message: string } => ({ ok: false, message });
const TOKEN = /^tbn_[0-9A-Za-z]{1,128}$/;
// What the broker accepts (it checks again): a host name or numeric address, and a port.
const ENDPOINT = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/;

export function checkRunArguments(args: RunArguments): Checked<RunSettings> {
  let broker: URL;
  try {
    broker = new URL(args.broker);
  } catch {
    // Never echoed, here or below: a password may be in it.
    return bad('--broker must be an http(s) URL (http[s]://host[:port])');
  }
  if (broker.protocol !== 'http:' && broker.protocol !== 'https:')
    return bad(`--broker must be an http(s) URL, not ${broker.protocol}`);
  if (broker.username !== '' || broker.password !== '')
    return bad('--broker must not hold a user or password: the node signs in with its token');
  if (broker.search !== '' || broker.hash !== '')
    return bad(`--broker must be the broker's base URL, without ?query or #fragment`);
  if (!TOKEN.test(args.token)) return bad('--token must be a node token (tbn_...)'); // never echo a secret
  if (!/^[a-z0-9-]{1,64}$/.test(args.region))
    return bad(`--region '${args.region.slice(0, 64)}' is not a region id`);
  const listen = parseHostPort(args.listen);
  if (!listen.ok) return bad(`--listen: ${listen.message}`);
  const endpointPort = Number(args.endpoint.split(':').pop());
  if (!ENDPOINT.test(args.endpoint) || endpointPort < 1 || endpointPort > 65535)
    return bad(`--endpoint must be PUBLIC_HOST:PORT, not '${args.endpoint.slice(0, 64)}'`);
  const egress = args.egress ?? 'tun';
  if (!(EGRESS_KINDS as readonly string[]).includes(egress))
    return bad(`--egress must be one of ${EGRESS_KINDS.join(', ')}, not '${egress.slice(0, 32)}'`);
  if (egress === 'netstack') return bad('netstack egress is not available yet');
  const name = checkInterfaceName(args.interface ?? DEFAULT_INTERFACE);
  if (!name.ok) return name;
  const capacity = Number(args.capacity ?? DEFAULT_CAPACITY);
  if (!/^[0-9]{1,7}$/.test(args.capacity ?? '1') || capacity < 1 || capacity > MAX_CAPACITY)
    return bad(`--capacity must be a whole number of sessions from 1 to ${MAX_CAPACITY}`);
  const drain = Number(args.drainTimeout ?? DEFAULT_DRAIN_TIMEOUT_SECONDS);
  if (!/^[0-9]{1,5}(\.[0-9]+)?$/.test(args.drainTimeout ?? '0') || drain > MAX_DRAIN_TIMEOUT_SECONDS)
    return bad(`--drain-timeout must be a number of seconds from 0 to ${MAX_DRAIN_TIMEOUT_SECONDS}`);
  const endpointHost = args.endpoint.slice(0, args.endpoint.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  const egressIps = args.egressIp?.flatMap((list) => list.split(',')).filter((ip) => ip.length > 0) ?? [];
  for (const ip of egressIps)
    if (!parseIpAddress(ip).ok) return bad(`--egress-ip '${ip.slice(0, 64)}' is not an IP address`);
  // Without --egress-ip, a numeric endpoint is the best guess of where this node's traffic leaves from.
  if (egressIps.length === 0 && parseIpAddress(endpointHost).ok) egressIps.push(endpointHost);
  const dataPath = dataPathSettings(args);
  if (!dataPath.ok) return dataPath;

  const settings: RunSettings = {
    broker: broker.toString(),
    token: args.token,
    region: args.region,
    listen: listen.value,
    endpoint: args.endpoint,
    egress: 'tun',
    interfaceName: name.value,
    privateKeyFile:
      args.privateKeyFile ?? join(args.stateDir ?? join(DEFAULT_STATE_ROOT, name.value), 'private.key'),
    capacity,
    egressIps,
    nat: args.nat === true,
    drainTimeoutMs: drain * 1000,
    ...dataPath.value,
  };
  if (args.metrics !== undefined) {
    const metrics = parseHostPort(args.metrics);
    if (!metrics.ok) return bad(`--metrics: ${metrics.message}`);
    settings.metrics = metrics.value;
  }
  return { ok: true, value: settings };
}

// ── the node's key pair ─────────────────────────────────────────────────────────────────────────

/**
 * The private key in `file` (base64, as `wg genkey` writes it), made on first start with mode 0600 in a
 * 0700 directory. `wx` makes two nodes started at once on one state dir agree on a single key.
 */
export async function loadOrCreateKey(file: string): Promise<Uint8Array> {
  const read = async () => {
    const key = keyFromBase64((await readFile(file, 'utf8')).trimEnd());
    if (!key) throw new Error(`${file} does not hold a base64 WireGuard private key`);
    return key;
  };
  try {
    return await read();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  try {
    await writeFile(file, Buffer.from(secureRandomBytes(KEY_LENGTH)).toString('base64') + '\n', {
      mode: 0o600,
      flag: 'wx',
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  return read();
}

function packageVersion(): string {
  for (const candidate of ['../package.json', '../../package.json']) {
    const path = fileURLToPath(new URL(candidate, import.meta.url));
    if (!existsSync(path)) continue;
    const version = (JSON.parse(readFileSync(path, 'utf8')) as { version?: unknown }).version;
    if (typeof version === 'string') return version;
  }
  return '';
}

// ── NAT (opt-in) ────────────────────────────────────────────────────────────────────────────────

/**
 * What a real exit needs and a test must never do to its host: forwarding on, and the pool masqueraded
 * out of every other interface, in an nftables table of our own (deleted on shutdown). Forwarding sysctls
 * are left on at exit, as wg-quick leaves them.
 */
async function enableNat(interfaceName: string, pool: Pool): Promise<() => Promise<void>> {
  for (const sysctl of ['/proc/sys/net/ipv4/ip_forward', '/proc/sys/net/ipv6/conf/all/forwarding']) {
    // Only root may switch it on; a node run with CAP_NET_ADMIN alone finds it on already (the systemd
    // unit's ExecStartPre=+sysctl), or says what to do.
    if ((await readFile(sysctl, 'utf8')).trim() === '1') continue;
    await writeFile(sysctl, '1').catch((error: NodeJS.ErrnoException) => {
      throw new Error(
        `--nat: cannot turn on forwarding (${error.code ?? error.message}): run as root, or set ${sysctl} to 1 first`,
      );
    });
  }
  const table = `tunnelbyte_${interfaceName.replace(/[^A-Za-z0-9_]/g, '_')}`;
  const ruleset = [
    `table inet ${table} {`,
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    `    ip saddr ${pool.v4} oifname != "${interfaceName}" masquerade`,
    `    ip6 saddr ${pool.v6} oifname != "${interfaceName}" masquerade`,
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    `    iifname "${interfaceName}" accept`,
    `    oifname "${interfaceName}" ct state established,related accept`,
    '  }',
    '}',
  ].join('\n');
  const nft = (args: string[], input?: string) => runTool('nft', args, input);
  await nft(['delete', 'table', 'inet', table]).catch(() => undefined); // left by a crashed run
  await nft(['-f', '-'], ruleset);
  return async () => void (await nft(['delete', 'table', 'inet', table]).catch(() => undefined));
}

// ── the pool against the host's routes ─────────────────────────────────────────────────────────────

const ROUTE_TYPES = new Set(['unicast', 'unreachable', 'blackhole', 'prohibit', 'throw']);

/**
 * One line naming a route of this host (main table, other than the default and this node's interface)
 * that overlaps the pool, or null. With such a route the node's own pool route would capture replies to
 * hosts there (a client subnet inside 10.64.0.0/10, say) and their handshakes would never complete.
 */
async function routeOverlappingPool(pool: Pool, interfaceName: string): Promise<string | null> {
  for (const [family, prefix] of [
    ['-4', pool.v4],
    ['-6', pool.v6],
  ] as const) {
    const stdout = await ip([family, '-o', 'route', 'show', 'table', 'main']);
    for (const line of stdout.split('\n')) {
      const words = line.trim().split(/\s+/);
      const destination = ROUTE_TYPES.has(words[0] ?? '') ? words[1] : words[0];
      const dev = words[words.indexOf('dev') + 1];
      if (!destination || destination === 'default' || (words.includes('dev') && dev === interfaceName))
        continue;
      const host = destination.includes('/') ? destination : `${destination}/${family === '-4' ? 32 : 128}`;
      if (prefixesOverlap(prefix, host)) {
        return (
          `the address pool ${prefix} overlaps this host's route ${line.trim()}: replies to it would go into ` +
          `the tunnel; give the region another pool (tunnelbyte-broker admin region update REGION --pool-${family === '-4' ? 'v4' : 'v6'} CIDR) or move the route`
        );
      }
    }
  }
  return null;
}

// ── the node under a broker ─────────────────────────────────────────────────────────────────────

/** A daemon registered with the broker; `stopped` also resolves when it has drained, timed out or failed. */
export interface RunningAgentNode extends Omit<Daemon, 'publicKey'> {
  readonly nodeId: string;
  /** The node's public key in base64, as registered. */
  readonly publicKey: string;
  /** First call: drain (heartbeat draining, wait for the peers to go or the timeout). Second: stop now. */
  signal(): void;
}

/**
 * Brings the node up and registers it. Resolves an exit code instead if it ends first: 1 on a fatal error
 * (said in one line), 0 when one of `signals` arrives before the broker could be reached.
 */
async function startAgentNode(
  settings: RunSettings,
  say: (line: string) => void,
  signals: StopSignals,
): Promise<RunningAgentNode | number> {
  let privateKey: Uint8Array;
  try {
    privateKey = await loadOrCreateKey(settings.privateKeyFile);
  } catch (error) {
    say(`node key: ${(error as Error).message.split('\n')[0]}`);
    return 1;
  }
  // The interface gets its addresses once the broker has said which pool they come from.
  const daemon = await startDaemon({
    interfaceName: settings.interfaceName,
    addresses: [],
    privateKey,
    listen: settings.listen,
    metrics: settings.metrics,
    batchedUdp: settings.batchedUdp,
    offload: settings.offload,
    threads: settings.threads,
    handOver: settings.handOver,
    log: say,
  });
  try {
    const publicKey = Buffer.from(daemon.publicKey).toString('base64');
    const fetchThread = new FetchThread();
    daemon.onClose(() => fetchThread.close());
    const agent = new Agent({
      client: new BrokerClient(settings.broker, settings.token, fetchThread.exchange),
      registration: {
        region: settings.region,
        endpoint: settings.endpoint,
        publicKey,
        egressIps: settings.egressIps,
        capacity: settings.capacity,
        version: packageVersion(),
      },
      peers: daemon.device,
      log: say,
    });
    daemon.onClose(() => agent.stop());
    daemon.onClose(
      await keepPeers(daemon.device, agent, join(dirname(settings.privateKeyFile), PEERS_FILE), say),
    );
    // A signal while the broker is still out of reach ends the retries (and cleans up, NAT included), as does
    // one that came while the daemon was starting.
    const abandon = () => void agent.stop();
    signals.listen(abandon);
    if (signals.count > 0) abandon();
    const started = await agent.start();
    signals.listen(undefined);
    if (!started.ok) {
      // A fatal refusal was said where it happened; a signal is the operator's own stop, said here.
      if (started.failure === undefined) say('stopped before the broker answered: the node never registered');
      await daemon.close();
      return started.failure ? 1 : 0;
    }
    const clash = await routeOverlappingPool(started.pool, daemon.interfaceName);
    if (clash) {
      say(clash);
      // Told draining, the broker places nothing here and does not count the node as lost once it is gone.
      await agent.drain();
      await daemon.close();
      return 1;
    }
    await configureInterface(daemon.interfaceName, { addresses: nodeInterfaceAddresses(started.pool) });
    if (settings.nat) daemon.onClose(await enableNat(daemon.interfaceName, started.pool));
    void agent.fatal.then(() => daemon.stop(1));

    let drainTimer: NodeJS.Timeout | undefined;
    daemon.onClose(() => clearTimeout(drainTimer));
    const signal = () => {
      if (agent.isDraining) return daemon.stop(0);
      say(
        `draining: no new sessions; stopping when the peers are gone or in ${settings.drainTimeoutMs / 1000} s`,
      );
      drainTimer = setTimeout(() => daemon.stop(0), settings.drainTimeoutMs);
      agent.onPeersChanged((count) => count === 0 && daemon.stop(0));
      void agent.drain().then(() => daemon.device.peers().length === 0 && daemon.stop(0));
    };

    return { ...daemon, nodeId: started.nodeId, publicKey, signal };
  } catch (error) {
    await daemon.close();
    throw error;
  }
}

/**
 * The peers' endpoints kept with the node's state (nodes/resume.ts): read at start, greeted once the
 * feed has rebuilt the peer set, written every heartbeat interval and at exit. Answers the exit step.
 */
async function keepPeers(
  device: Daemon['device'],
  agent: Agent,
  file: string,
  say: (line: string) => void,
): Promise<() => Promise<void>> {
  const loaded = await loadPeers(file, Date.now());
  if (loaded.problem) say(`peer endpoints: ${loaded.problem}`);
  let remembered = loaded.peers;
  const greeting = new AbortController();
  let greeted = false;
  agent.onPeersChanged(() => {
    if (greeted || remembered.length === 0) return;
    greeted = true;
    void resumeHandshakes(device, remembered, greeting.signal).then((count) =>
      say(`greeted ${count} peers that had a handshake in the last 3 minutes`),
    );
  });
  let warned = false;
  const save = async () => {
    // Peers not heard from since the restart keep their entry until it is too old to be worth a greeting.
    const current = rememberedPeers(device);
    const known = new Set(current.map((peer) => peer.publicKey));
    remembered = recentPeers(remembered, Date.now()).filter((peer) => !known.has(peer.publicKey));
    try {
      await savePeers(file, [...current, ...remembered]);
      warned = false;
    } catch (error) {
      if (!warned) say(`peer endpoints: ${file}: ${(error as NodeJS.ErrnoException).code ?? 'not written'}`);
      warned = true;
    }
  };
  let timer: NodeJS.Timeout | undefined;
  const every = () => {
    timer = setTimeout(() => void save().finally(every), agent.heartbeatMs);
    timer.unref();
  };
  every();
  return async () => {
    greeting.abort();
    clearTimeout(timer);
    await save();
  };
}

/** The whole `run` command: start, print one ready line, drain on signals, exit code. */
export async function runAgentCommand(settings: RunSettings, say: (line: string) => void): Promise<number> {
  const signals = new StopSignals();
  try {
    const node = await startAgentNode(settings, say, signals);
    if (typeof node === 'number') return node;
    process.stdout.write(readyLine(node, `node ${node.nodeId} (${node.publicKey})`));
    // Signals in the start's last steps (registered, the interface being configured) drain the node now.
    const pending = signals.count;
    signals.listen(node.signal);
    if (pending > 0) node.signal();
    const code = await node.stopped;
    await node.close();
    return code;
  } finally {
    signals.close();
  }
}
