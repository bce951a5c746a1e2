// The wg-quick(8) configuration file (docs/WIREGUARD.md §8.1): parse() for `tunnelbyte-node up --config`,
// format() for the configs the CLI and broker hand to clients. Reading follows the real tools: section
// names and keys are case-insensitive, '#' comments run to the end of the line, and whitespace is removed
// from every line as wg(8) does, except inside the Pre/Post Up/Down hooks, which wg-quick only trims
// (they are shell commands). parse() never throws: it returns the first error with its line number.

import {
  formatIpAddress,
  formatPrefix,
  maskPrefix,
  parseIpAddress,
  parsePrefix,
} from '../../crypto/ipaddr.js';
import { formatEndpoint, isHostName, parseEndpoint, type Endpoint } from './endpoint.js';
import { KEY_BYTES, keyFromBase64, keyToBase64 } from './wgkey.js';

export interface WgQuickInterface {
  privateKey: Uint8Array;
  listenPort?: number;
  /** 'ip/cidr' with the host bits kept (they are the interface's own address). */
  addresses: string[];
  /** Resolver addresses (canonical) and search domains, in file order. */
  dns: string[];
  mtu?: number;
  /** 'off', 'auto', or a routing table number or name. */
  table?: string;
  /** 0 means off. */
  fwMark?: number;
  preUp: string[];
  postUp: string[];
  preDown: string[];
  postDown: string[];
  saveConfig?: boolean;
}

export interface WgQuickPeer {
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  /** Canonical 'ip/cidr' with host bits cleared, as `wg show` prints them. */
  allowedIps: string[];
  endpoint?: Endpoint;
  /** Seconds; 0 means off. */
  persistentKeepalive?: number;
}

export interface WgQuickConfig {
  interface: WgQuickInterface;
  peers: WgQuickPeer[];
}

export interface WgQuickError {
  /** 1-based line of the problem; 0 when it concerns the whole file. */
  readonly line: number;
  readonly message: string;
}

export type WgQuickParse =
  | { readonly ok: true; readonly config: WgQuickConfig }
  | { readonly ok: false; readonly error: WgQuickError };

// ---------------------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------------------

type Value<T> = { ok: true; value: T } | { ok: false; message: string };
const ok = <T>(value: T): Value<T> => ({ ok: true, value });
const bad = (message: string): { ok: false; message: string } => ({ ok: false, message });

function parseKey(text: string): Value<Uint8Array> {
  const key = keyFromBase64(text);
  return key ? ok(key) : bad(`a key is ${KEY_BYTES} bytes in base64 (44 characters ending in '=')`);
}

function parseInteger(text: string, min: number, max: number, what: string): Value<number> {
  if (!/^[0-9]{1,10}$/.test(text) || Number(text) < min || Number(text) > max) {
    return bad(`${what} must be an integer from ${min} to ${max}`);
  }
  return ok(Number(text));
}

function parseOffOrInteger(text: string, max: number, what: string): Value<number> {
  return text.toLowerCase() === 'off' ? ok(0) : parseInteger(text, 0, max, what);
}

function parseFwMark(text: string): Value<number> {
  if (/^0x[0-9a-f]{1,8}$/i.test(text)) return ok(parseInt(text.slice(2), 16));
  return parseOffOrInteger(text, 0xffffffff, 'FwMark');
}

function commaList<T>(text: string, item: (part: string) => Value<T>): Value<T[]> {
  const values: T[] = [];
  for (const part of text.split(',')) {
    const parsed = item(part);
    if (!parsed.ok) return parsed;
    values.push(parsed.value);
  }
  return ok(values);
}

function parseAddress(text: string): Value<string> {
  const parsed = parsePrefix(text);
  return parsed.ok ? ok(formatPrefix(parsed.value)) : bad(parsed.error);
}

function parseAllowedIp(text: string): Value<string> {
  const parsed = parsePrefix(text);
  return parsed.ok ? ok(formatPrefix(maskPrefix(parsed.value))) : bad(parsed.error);
}

function parseDns(text: string): Value<string> {
  const ip = parseIpAddress(text);
  if (ip.ok) return ok(formatIpAddress(ip.value));
  return isHostName(text)
    ? ok(text)
    : bad(`DNS entry '${text}' is neither an IP address nor a search domain`);
}

function parseBoolean(text: string, what: string): Value<boolean> {
  const lower = text.toLowerCase();
  return lower === 'true' || lower === 'false' ? ok(lower === 'true') : bad(`${what} must be true or false`);
}

function parseTable(text: string): Value<string> {
  const lower = text.toLowerCase();
  if (lower === 'off' || lower === 'auto') return ok(lower);
  return /^[A-Za-z0-9_.-]{1,64}$/.test(text)
    ? ok(text)
    : bad(`Table must be off, auto, or a table number or name`);
}

// ---------------------------------------------------------------------------------------------------------
// Keys of each section: how to read a value and where it goes
// ---------------------------------------------------------------------------------------------------------

type Setter<S> = (section: S, value: string) => Value<void>;

// Parses a value and stores it; list keys append, so repeated lines accumulate as in wg-quick.
function field<S, T>(parse: (text: string) => Value<T>, store: (section: S, value: T) => void): Setter<S> {
  return (section, text) => {
    const parsed = parse(text);
    if (!parsed.ok) return parsed;
    store(section, parsed.value);
    return ok(undefined);
  };
}

const hook = (text: string): Value<string> => (text === '' ? bad('a hook needs a command') : ok(text));

const INTERFACE_KEYS: Record<string, Setter<WgQuickInterface>> = {
  privatekey: field(parseKey, (s, v) => (s.privateKey = v)),
  listenport: field(
    (t) => parseInteger(t, 0, 65535, 'ListenPort'),
    (s, v) => (s.listenPort = v),
  ),
  fwmark: field(parseFwMark, (s, v) => (s.fwMark = v)),
  address: field(
    (t) => commaList(t, parseAddress),
    (s, v) => s.addresses.push(...v),
  ),
  dns: field(
    (t) => commaList(t, parseDns),
    (s, v) => s.dns.push(...v),
  ),
  mtu: field(
    (t) => parseInteger(t, 68, 65535, 'MTU'),
    (s, v) => (s.mtu = v),
  ),
  table: field(parseTable, (s, v) => (s.table = v)),
  preup: field(hook, (s, v) => s.preUp.push(v)),
  postup: field(hook, (s, v) => s.postUp.push(v)),
  predown: field(hook, (s, v) => s.preDown.push(v)),
  postdown: field(hook, (s, v) => s.postDown.push(v)),
  saveconfig: field(
    (t) => parseBoolean(t, 'SaveConfig'),
    (s, v) => (s.saveConfig = v),
  ),
};

const HOOK_KEYS = new Set(['preup', 'postup', 'predown', 'postdown']);

const PEER_KEYS: Record<string, Setter<WgQuickPeer>> = {
  publickey: field(parseKey, (s, v) => (s.publicKey = v)),
  presharedkey: field(parseKey, (s, v) => (s.presharedKey = v)),
  // An empty AllowedIPs line is allowed (wg(8): no routes); items themselves may not be empty.
  allowedips: field(
    (t) => (t === '' ? ok([]) : commaList(t, parseAllowedIp)),
    (s, v) => s.allowedIps.push(...v),
  ),
  endpoint: field(parseEndpoint, (s, v) => (s.endpoint = v)),
  persistentkeepalive: field(
    (t) => parseOffOrInteger(t, 65535, 'PersistentKeepalive'),
    (s, v) => (s.persistentKeepalive = v),
  ),
};

// ---------------------------------------------------------------------------------------------------------
// parse / format
// ---------------------------------------------------------------------------------------------------------

const NO_KEY = new Uint8Array(0); // placeholder until the required key line is read

/** Parses wg-quick text; never throws. */
export function parseWgQuick(text: string): WgQuickParse {
  let iface: WgQuickInterface | undefined;
  const peers: WgQuickPeer[] = [];
  let current:
    { kind: 'interface'; line: number } | { kind: 'peer'; line: number; peer: WgQuickPeer } | undefined;
  const fail = (line: number, message: string): WgQuickParse => ({ ok: false, error: { line, message } });
  const lines = text.split('\n');

  const closePeer = (): WgQuickParse | undefined => {
    if (current?.kind === 'peer' && current.peer.publicKey === NO_KEY) {
      return fail(current.line, '[Peer] has no PublicKey');
    }
    return undefined;
  };

  for (let index = 0; index < lines.length; index++) {
    const line = index + 1;
    const content = lines[index]!.split('#', 1)[0]!.trim();
    if (content === '') continue;

    if (content.startsWith('[')) {
      const header = content.replace(/\s+/g, '').toLowerCase();
      const unfinished = closePeer();
      if (unfinished) return unfinished;
      if (header === '[interface]') {
        if (iface) return fail(line, 'a second [Interface] section');
        iface = emptyInterface();
        current = { kind: 'interface', line };
      } else if (header === '[peer]') {
        const peer: WgQuickPeer = { publicKey: NO_KEY, allowedIps: [] };
        peers.push(peer);
        current = { kind: 'peer', line, peer };
      } else {
        return fail(line, `unknown section ${content.slice(0, 40)}`);
      }
      continue;
    }

    const equals = content.indexOf('=');
    if (equals < 0) return fail(line, "expected 'Key = Value'");
    const key = content.slice(0, equals).replace(/\s+/g, '').toLowerCase();
    const raw = content.slice(equals + 1);
    const value = HOOK_KEYS.has(key) ? raw.trim() : raw.replace(/\s+/g, '');
    if (!current) return fail(line, 'a key outside of any [Interface] or [Peer] section');

    const result =
      current.kind === 'interface'
        ? Object.hasOwn(INTERFACE_KEYS, key)
          ? INTERFACE_KEYS[key]!(iface!, value)
          : bad(`unknown [Interface] key '${content.slice(0, equals).trim().slice(0, 40)}'`)
        : Object.hasOwn(PEER_KEYS, key)
          ? PEER_KEYS[key]!(current.peer, value)
          : bad(`unknown [Peer] key '${content.slice(0, equals).trim().slice(0, 40)}'`);
    if (!result.ok) return fail(line, result.message);
  }

  const unfinished = closePeer();
  if (unfinished) return unfinished;
  if (!iface) return fail(0, 'no [Interface] section');
  if (iface.privateKey === NO_KEY) return fail(0, '[Interface] has no PrivateKey');
  return { ok: true, config: { interface: iface, peers } };
}

function emptyInterface(): WgQuickInterface {
  return { privateKey: NO_KEY, addresses: [], dns: [], preUp: [], postUp: [], preDown: [], postDown: [] };
}

/**
 * Writes the canonical text of a configuration. Values must be in the canonical form parse() returns
 * (e.g. AllowedIPs with host bits cleared, hooks trimmed and free of '#' and line breaks); anything else is
 * a programmer mistake and throws, so that no value can rewrite the file's meaning (a line break in a DNS
 * entry must not smuggle in a PostUp) and parse(format(c)) always gives c back.
 */
export function formatWgQuick(config: WgQuickConfig): string {
  const text = render(config);
  const reparsed = parseWgQuick(text);
  if (!reparsed.ok || comparable(reparsed.config) !== comparable(config)) {
    // Names the line but never echoes a key.
    const where = reparsed.ok
      ? 'a value is not in canonical form'
      : `line ${reparsed.error.line}: ${reparsed.error.message}`;
    throw new RangeError(`formatWgQuick: the configuration cannot be written as given (${where})`);
  }
  return text;
}

// Key-order-independent JSON of a configuration, keys as base64, for the written-as-given check.
function comparable(config: WgQuickConfig): string {
  return JSON.stringify(config, (_key, value: unknown) => {
    if (value instanceof Uint8Array) return keyToBase64(value);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
    return Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : 1)));
  });
}

function render(config: WgQuickConfig): string {
  const lines: string[] = [];
  const put = (key: string, value: string | number | undefined) => {
    if (value !== undefined) lines.push(`${key} = ${value}`);
  };
  const list = (key: string, values: string[]) => put(key, values.length > 0 ? values.join(', ') : undefined);
  const each = (key: string, values: string[]) => values.forEach((v) => put(key, v));

  const i = config.interface;
  lines.push('[Interface]');
  put('PrivateKey', keyToBase64(i.privateKey));
  put('ListenPort', i.listenPort);
  list('Address', i.addresses);
  list('DNS', i.dns);
  put('MTU', i.mtu);
  put('Table', i.table);
  put('FwMark', i.fwMark === undefined ? undefined : i.fwMark === 0 ? 'off' : `0x${i.fwMark.toString(16)}`);
  each('PreUp', i.preUp);
  each('PostUp', i.postUp);
  each('PreDown', i.preDown);
  each('PostDown', i.postDown);
  put('SaveConfig', i.saveConfig === undefined ? undefined : String(i.saveConfig));

  for (const peer of config.peers) {
    lines.push('', '[Peer]');
    put('PublicKey', keyToBase64(peer.publicKey));
    put('PresharedKey', peer.presharedKey && keyToBase64(peer.presharedKey));
    list('AllowedIPs', peer.allowedIps);
    put('Endpoint', peer.endpoint && formatEndpoint(peer.endpoint));
    put('PersistentKeepalive', peer.persistentKeepalive);
  }
  return `${lines.join('\n')}\n`;
}
