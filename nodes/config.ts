// Command-line values of `tunnelbyte-node`, checked once at start into typed settings. Each check
// returns a one-line message instead of throwing, so main.ts can print it and exit with a usage error.
import { availableParallelism } from 'node:os';
import { basename } from 'node:path';

import { formatPrefix, maskPrefix, parseIpAddress, parsePrefix, type IpPrefix } from '../crypto/ipaddr.js';
import type { HandOver } from './threads/load.js';

export type Egress = 'tun' | 'netstack';
export const EGRESS_KINDS: readonly Egress[] = ['tun', 'netstack'];

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface UpSettings extends DataPathSettings {
  configFile: string;
  interfaceName: string;
  egress: Egress;
  metrics?: HostPort;
}

/**
 * How the data path runs; `up` and `run` both take it (`--batch on|off`, env TB_BATCH; `--offload on|off`,
 * env TB_OFFLOAD; `--threads N`, env TB_THREADS; `--hand-over auto|bulk`, env TB_HAND_OVER).
 */
export interface DataPathSettings {
  /** UDP through the addon (recvmmsg/sendmmsg, sticky source address), or Node's dgram. */
  batchedUdp: boolean;
  /**
   * Ask the TUN for TSO and checksum offloads (a vnet header; GSO split and GRO in nodes/offload.ts), and
   * the batched UDP socket for UDP GSO and GRO (nodes/udp.ts).
   */
  offload: boolean;
  /** Threads of the data path: 1 seals and opens on the main thread, N adds N crypto threads (nodes/threads). */
  threads: number;
  /** With crypto threads: when bulk traffic goes to them (nodes/threads/load.ts). */
  handOver: HandOver;
}

export const MAX_THREADS = 64;

export const ON_OFF = ['on', 'off'] as const;

/** The data-path flags as commander parsed them (choices already checked). */
export interface DataPathArguments {
  batch?: string;
  offload?: string;
  threads?: string;
  handOver?: HandOver;
}

export type Checked<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly message: string };
const ok = <T>(value: T): Checked<T> => ({ ok: true, value });
const bad = (message: string): { ok: false; message: string } => ({ ok: false, message });

/** Threads when none are asked for: the machine's cores, at most MAX_THREADS. */
export const defaultThreads = (): number => Math.min(availableParallelism(), MAX_THREADS);

/**
 * One line for an operator who asked for more threads than the machine has cores (1 to MAX_THREADS stay
 * valid). Each thread is a crypto thread and a handshake worker, each its own V8 isolate: measured on a
 * 2-core host (resident memory, idle, a few seconds after start), 95 MB with 1 (no crypto thread: the
 * main thread does it all), 163 MB with 2, then about 33 MB and 0.3 CPU-seconds of start-up per thread;
 * those beyond the cores add no speed.
 */
export function threadsWarning(threads: number, cores = availableParallelism()): string | undefined {
  if (threads <= cores) return undefined;
  return (
    `--threads (TB_THREADS) ${threads} is more than this machine's ${cores} cores: threads beyond the ` +
    'cores add no speed, only start-up time and memory (about 0.3 CPU-seconds and 33 MB each)'
  );
}

/** Every mode defaults on; threads default to defaultThreads(). */
export function dataPathSettings(args: DataPathArguments): Checked<DataPathSettings> {
  const threads = args.threads === undefined ? defaultThreads() : Number(args.threads);
  if (!/^[0-9]+$/.test(args.threads ?? '1') || threads < 1 || threads > MAX_THREADS)
    return bad(
      `--threads (TB_THREADS) must be a whole number from 1 to ${MAX_THREADS}, not '${args.threads?.slice(0, 32)}'`,
    );
  const handOver = args.handOver ?? 'auto';
  return ok({ batchedUdp: args.batch !== 'off', offload: args.offload !== 'off', threads, handOver });
}

// Linux IFNAMSIZ is 16 with the NUL; wg-quick allows this character set.
const INTERFACE_NAME = /^[a-zA-Z0-9_=+.-]{1,15}$/;

export function checkInterfaceName(name: string): Checked<string> {
  return INTERFACE_NAME.test(name) && name !== '.' && name !== '..'
    ? ok(name)
    : bad(`invalid interface name '${name.slice(0, 32)}' (1-15 characters of a-z A-Z 0-9 _ = + . -)`);
}

/** wg-quick names the interface after the file: /etc/wireguard/wg0.conf → wg0. */
export function interfaceNameFromFile(file: string): Checked<string> {
  const name = basename(file).replace(/\.conf$/, '');
  const checked = checkInterfaceName(name);
  return checked.ok
    ? checked
    : bad(`cannot name the interface after '${basename(file)}': pass --interface NAME`);
}

/** 'host:port' with a numeric IPv4 host or '[ipv6]:port'. */
export function parseHostPort(text: string): Checked<HostPort> {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(text);
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (host === undefined || !parseIpAddress(host).ok || port > 65535) {
    return bad(
      `'${text.slice(0, 64)}' is not HOST:PORT with a numeric host (e.g. 127.0.0.1:9586 or [::1]:9586)`,
    );
  }
  return ok({ host, port });
}

export interface UpArguments extends DataPathArguments {
  config: string;
  egress?: string;
  interface?: string;
  metrics?: string;
}

export function checkUpArguments(args: UpArguments): Checked<UpSettings> {
  const egress = args.egress ?? 'tun';
  if (!(EGRESS_KINDS as readonly string[]).includes(egress)) {
    return bad(`--egress must be one of ${EGRESS_KINDS.join(', ')}, not '${egress.slice(0, 32)}'`);
  }
  const name =
    args.interface === undefined ? interfaceNameFromFile(args.config) : checkInterfaceName(args.interface);
  if (!name.ok) return name;
  const dataPath = dataPathSettings(args);
  if (!dataPath.ok) return dataPath;
  const settings: UpSettings = {
    configFile: args.config,
    interfaceName: name.value,
    egress: egress as Egress,
    ...dataPath.value,
  };
  if (args.metrics !== undefined) {
    const metrics = parseHostPort(args.metrics);
    if (!metrics.ok) return bad(`--metrics: ${metrics.message}`);
    settings.metrics = metrics.value;
  }
  return ok(settings);
}

function within(inner: IpPrefix, outer: IpPrefix): boolean {
  if (inner.address.length !== outer.address.length || inner.cidr < outer.cidr) return false;
  const a = maskPrefix({ address: inner.address, cidr: outer.cidr }).address;
  const b = maskPrefix(outer).address;
  return a.every((byte, i) => byte === b[i]);
}

/**
 * The routes wg-quick would add: every peer prefix not already covered by the subnet of one of the
 * interface's own addresses (the kernel adds those). Catch-all prefixes are returned apart: wg-quick
 * steers them with a fwmark and a policy table, which a Node socket cannot mark, so the caller warns.
 */
export function routesFor(
  addresses: readonly string[],
  allowedIps: readonly string[],
): { routes: string[]; defaults: string[] } {
  const subnets = addresses.flatMap((text) => {
    const parsed = parsePrefix(text);
    return parsed.ok ? [parsed.value] : [];
  });
  const routes = new Set<string>();
  const defaults = new Set<string>();
  for (const text of allowedIps) {
    const parsed = parsePrefix(text);
    if (!parsed.ok) continue;
    const prefix = maskPrefix(parsed.value);
    if (subnets.some((subnet) => within(prefix, subnet))) continue;
    (prefix.cidr === 0 ? defaults : routes).add(formatPrefix(prefix));
  }
  return { routes: [...routes], defaults: [...defaults] };
}
