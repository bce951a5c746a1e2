// The cross-platform userspace API (docs/WIREGUARD.md §8.2) without any I/O: an incremental reader that turns
// the bytes of one connection into requests, the application of a `set` to an abstract device, and the
// `get` response in wireguard-go's order. Malformed requests never throw: they become errno answers
// (negative for `set`, as wireguard-go sends them) or, for an unknown operation, a hang-up.
import { StringDecoder } from 'node:string_decoder';

import { KEY_LENGTH } from '../crypto/constants.js';
import { formatIpAddress, formatPrefix, maskPrefix, parseIpAddress, parsePrefix } from '../crypto/ipaddr.js';

// errno values as wireguard-go's ipc package sends them.
export const UAPI_OK = 0;
export const UAPI_EIO = -5;
export const UAPI_EINVAL = -22;
export const UAPI_EPROTO = -71;
export const UAPI_EADDRINUSE = -98;

const KEY_HEX = /^[0-9a-fA-F]{64}$/;
const UNSIGNED = /^[0-9]{1,20}$/;
// No legitimate line comes near this (the longest is a 64-hex-digit key); a longer one is garbage or abuse.
const MAX_LINE_LENGTH = 4096;

export interface UapiEndpoint {
  readonly address: string;
  readonly port: number;
}

/** A peer as `get` reports it (the shape of the engine's PeerStatus). */
export interface UapiPeerStatus {
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  endpoint?: UapiEndpoint;
  allowedIps: string[];
  persistentKeepaliveSeconds: number;
  rxBytes: number;
  txBytes: number;
  lastHandshakeUnixMs: number;
}

export interface UapiDeviceStatus {
  privateKey?: Uint8Array;
  listenPort: number;
  fwmark: number;
  peers: UapiPeerStatus[];
}

/** The settings one `set` peer section resolves to; absent fields are left as they are. */
export interface UapiPeerSettings {
  presharedKey?: Uint8Array | null;
  allowedIps?: string[];
  endpoint?: UapiEndpoint;
  persistentKeepaliveSeconds?: number;
}

/** What a `set` needs from the device it configures. */
export interface UapiDevice {
  status(): UapiDeviceStatus;
  /** The device's own public key, or undefined while it has no private key. */
  publicKey(): Uint8Array | undefined;
  /** undefined clears the key (an all-zero `private_key`). */
  setPrivateKey(privateKey: Uint8Array | undefined): void;
  /** Rebinds the UDP socket; rejects when the port cannot be bound. 0 picks a free port. */
  setListenPort(port: number): Promise<void> | void;
  setFwmark(mark: number): Promise<void> | void;
  removeAllPeers(): void;
  upsertPeer(publicKey: Uint8Array, settings: UapiPeerSettings): void;
  /** Removing a peer that does not exist is not an error. */
  removePeer(publicKey: Uint8Array): void;
}

export interface AllowedIpEdit {
  /** Canonical 'ip/cidr' with host bits cleared. */
  readonly prefix: string;
  readonly remove: boolean;
}

export interface PeerChange {
  publicKey: Uint8Array;
  /** `update_only=true`: change the peer only if it exists. */
  updateOnly: boolean;
  /** `remove=true`: later lines of the section are checked but have no effect. */
  remove: boolean;
  presharedKey?: Uint8Array | null;
  endpoint?: UapiEndpoint;
  persistentKeepaliveSeconds?: number;
  replaceAllowedIps: boolean;
  allowedIpEdits: AllowedIpEdit[];
}

export interface SetRequest {
  /** null clears the private key. */
  privateKey?: Uint8Array | null;
  listenPort?: number;
  fwmark?: number;
  replacePeers: boolean;
  peers: PeerChange[];
}

export type UapiRequest =
  | { readonly kind: 'get' }
  | { readonly kind: 'set'; readonly set: SetRequest }
  /** Answer `errno=N` and carry on reading the connection. */
  | { readonly kind: 'error'; readonly errno: number }
  /** Not an operation at all: wireguard-go closes the connection without an answer. */
  | { readonly kind: 'close' };

// ---------------------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------------------

function hexKey(text: string): Uint8Array | undefined {
  return KEY_HEX.test(text) ? new Uint8Array(Buffer.from(text, 'hex')) : undefined;
}

/** A key that may be cleared: all zeros is how wg(8) writes "none" (null); undefined if malformed. */
function hexKeyOrNone(text: string): Uint8Array | null | undefined {
  const key = hexKey(text);
  return key && (key.every((byte) => byte === 0) ? null : key);
}

function unsigned(text: string, max: number): number | undefined {
  if (!UNSIGNED.test(text)) return undefined;
  const value = Number(text);
  return value <= max ? value : undefined;
}

/** Numeric `ip:port` or `[ip6]:port`, as Go's netip.ParseAddrPort reads it (no host names, no zones). */
export function parseUapiEndpoint(text: string): UapiEndpoint | undefined {
  const colon = text.lastIndexOf(':');
  if (colon < 0) return undefined;
  let host = text.slice(0, colon);
  const port = unsigned(text.slice(colon + 1), 0xffff);
  if (port === undefined) return undefined;
  if (host.startsWith('[') && host.endsWith(']')) {
    host = host.slice(1, -1);
    if (!host.includes(':')) return undefined;
  } else if (host.includes(':')) {
    return undefined;
  }
  const address = parseIpAddress(host);
  return address.ok ? { address: formatIpAddress(address.value), port } : undefined;
}

export function formatUapiEndpoint(endpoint: UapiEndpoint): string {
  return endpoint.address.includes(':')
    ? `[${endpoint.address}]:${endpoint.port}`
    : `${endpoint.address}:${endpoint.port}`;
}

/** 'ip/cidr' (the slash is required, as in netip.ParsePrefix), canonicalised with host bits cleared. */
function allowedIp(text: string): string | undefined {
  if (!text.includes('/')) return undefined;
  const prefix = parsePrefix(text);
  return prefix.ok ? formatPrefix(maskPrefix(prefix.value)) : undefined;
}

// ---------------------------------------------------------------------------------------------------------
// `set` lines
// ---------------------------------------------------------------------------------------------------------

/** Accumulates the lines of one `set` operation; the first error wins and the rest is only skipped. */
class SetBuilder {
  private readonly request: SetRequest = { replacePeers: false, peers: [] };
  private peer: PeerChange | undefined;
  private errno = UAPI_OK;

  line(line: string): void {
    if (this.errno !== UAPI_OK) return;
    const equals = line.indexOf('=');
    if (equals < 0) {
      this.errno = UAPI_EPROTO;
      return;
    }
    const key = line.slice(0, equals);
    const value = line.slice(equals + 1);
    const ok =
      key === 'public_key'
        ? this.startPeer(value)
        : this.peer
          ? this.peerLine(this.peer, key, value)
          : this.deviceLine(key, value);
    if (!ok) this.errno = UAPI_EINVAL;
  }

  finish(): UapiRequest {
    return this.errno === UAPI_OK ? { kind: 'set', set: this.request } : { kind: 'error', errno: this.errno };
  }

  private startPeer(value: string): boolean {
    const publicKey = hexKey(value);
    if (!publicKey) return false;
    this.peer = { publicKey, updateOnly: false, remove: false, replaceAllowedIps: false, allowedIpEdits: [] };
    this.request.peers.push(this.peer);
    return true;
  }

  private deviceLine(key: string, value: string): boolean {
    const request = this.request;
    switch (key) {
      case 'private_key':
        request.privateKey = hexKeyOrNone(value);
        return request.privateKey !== undefined;
      case 'listen_port':
        request.listenPort = unsigned(value, 0xffff);
        return request.listenPort !== undefined;
      case 'fwmark':
        request.fwmark = unsigned(value, 0xffffffff);
        return request.fwmark !== undefined;
      case 'replace_peers':
        request.replacePeers = true;
        return value === 'true';
      default:
        return false;
    }
  }

  private peerLine(peer: PeerChange, key: string, value: string): boolean {
    switch (key) {
      case 'update_only':
        peer.updateOnly = true;
        return value === 'true';
      case 'remove':
        peer.remove = true;
        return value === 'true';
      case 'preshared_key':
        peer.presharedKey = hexKeyOrNone(value);
        return peer.presharedKey !== undefined;
      case 'endpoint':
        peer.endpoint = parseUapiEndpoint(value);
        return peer.endpoint !== undefined;
      case 'persistent_keepalive_interval':
        peer.persistentKeepaliveSeconds = unsigned(value, 0xffff);
        return peer.persistentKeepaliveSeconds !== undefined;
      case 'replace_allowed_ips':
        peer.replaceAllowedIps = true;
        peer.allowedIpEdits = [];
        return value === 'true';
      case 'allowed_ip': {
        // Newer wg(8) removes a single prefix with a leading '-'.
        const remove = value.startsWith('-');
        const prefix = allowedIp(remove ? value.slice(1) : value);
        if (prefix === undefined) return false;
        peer.allowedIpEdits.push({ prefix, remove });
        return true;
      }
      case 'protocol_version':
        return value === '1';
      default:
        return false;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// The connection reader
// ---------------------------------------------------------------------------------------------------------

type ReaderState =
  { kind: 'operation' } | { kind: 'get' } | { kind: 'set'; builder: SetBuilder } | { kind: 'closed' };

/** Splits one connection's byte stream into requests; feed it chunks as they arrive. */
export class UapiRequestReader {
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';
  private state: ReaderState = { kind: 'operation' };

  get closed(): boolean {
    return this.state.kind === 'closed';
  }

  push(chunk: Uint8Array | string): UapiRequest[] {
    if (this.closed) return [];
    const text = this.pending + (typeof chunk === 'string' ? chunk : this.decoder.write(Buffer.from(chunk)));
    const requests: UapiRequest[] = [];
    let start = 0;
    for (
      let newline = text.indexOf('\n');
      newline >= 0 && !this.closed;
      newline = text.indexOf('\n', start)
    ) {
      const request = this.line(text.slice(start, newline));
      start = newline + 1;
      if (request) requests.push(request);
    }
    this.pending = this.closed ? '' : text.slice(start);
    if (this.pending.length > MAX_LINE_LENGTH) {
      this.state = { kind: 'closed' };
      this.pending = '';
      requests.push({ kind: 'close' });
    }
    return requests;
  }

  private line(line: string): UapiRequest | undefined {
    const state = this.state;
    switch (state.kind) {
      case 'operation':
        if (line === 'get=1') this.state = { kind: 'get' };
        else if (line === 'set=1') this.state = { kind: 'set', builder: new SetBuilder() };
        else {
          this.state = { kind: 'closed' };
          return { kind: 'close' };
        }
        return undefined;
      case 'get':
        this.state = { kind: 'operation' };
        return line === '' ? { kind: 'get' } : { kind: 'error', errno: UAPI_EINVAL };
      case 'set':
        if (line !== '') {
          state.builder.line(line);
          return undefined;
        }
        this.state = { kind: 'operation' };
        return state.builder.finish();
      case 'closed':
        return undefined;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Applying a set, formatting a get
// ---------------------------------------------------------------------------------------------------------

const sameKey = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === b.length && a.every((byte, i) => byte === b[i]);

function resolveAllowedIps(current: readonly string[], change: PeerChange): string[] | undefined {
  if (!change.replaceAllowedIps && change.allowedIpEdits.length === 0) return undefined;
  const result = new Set(change.replaceAllowedIps ? [] : current);
  for (const edit of change.allowedIpEdits) {
    if (edit.remove) result.delete(edit.prefix);
    else result.add(edit.prefix);
  }
  return [...result];
}

/** Applies a parsed `set` in wireguard-go's order; resolves to the errno to answer. */
export async function applySet(device: UapiDevice, request: SetRequest): Promise<number> {
  if (request.privateKey !== undefined) device.setPrivateKey(request.privateKey ?? undefined);
  try {
    if (request.listenPort !== undefined) await device.setListenPort(request.listenPort);
    if (request.fwmark !== undefined) await device.setFwmark(request.fwmark);
  } catch {
    return UAPI_EADDRINUSE;
  }
  if (request.replacePeers) device.removeAllPeers();

  for (const change of request.peers) {
    const own = device.publicKey();
    if (own && sameKey(own, change.publicKey)) continue; // a device is never its own peer
    if (change.remove) {
      device.removePeer(change.publicKey);
      continue;
    }
    // The peer list is only read when a section depends on what is already there (wg set and setconf
    // always replace allowed IPs, so a large setconf never reads it).
    const needsExisting =
      change.updateOnly || (!change.replaceAllowedIps && change.allowedIpEdits.length > 0);
    const existing = needsExisting
      ? device.status().peers.find((peer) => sameKey(peer.publicKey, change.publicKey))
      : undefined;
    if (change.updateOnly && !existing) continue;
    const settings: UapiPeerSettings = {};
    if (change.presharedKey !== undefined) settings.presharedKey = change.presharedKey;
    if (change.endpoint !== undefined) settings.endpoint = change.endpoint;
    if (change.persistentKeepaliveSeconds !== undefined) {
      settings.persistentKeepaliveSeconds = change.persistentKeepaliveSeconds;
    }
    const allowedIps = resolveAllowedIps(existing?.allowedIps ?? [], change);
    if (allowedIps !== undefined) settings.allowedIps = allowedIps;
    device.upsertPeer(change.publicKey, settings);
  }
  return UAPI_OK;
}

const hex = (key: Uint8Array): string =>
  Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('hex');
const ZERO_KEY = new Uint8Array(KEY_LENGTH);

/** The `get` response body, `errno=0` and the terminating empty line included. */
export function formatGet(status: UapiDeviceStatus): string {
  const lines: string[] = [];
  if (status.privateKey) lines.push(`private_key=${hex(status.privateKey)}`);
  if (status.listenPort !== 0) lines.push(`listen_port=${status.listenPort}`);
  if (status.fwmark !== 0) lines.push(`fwmark=${status.fwmark}`);
  for (const peer of status.peers) {
    lines.push(`public_key=${hex(peer.publicKey)}`, `preshared_key=${hex(peer.presharedKey ?? ZERO_KEY)}`);
    lines.push('protocol_version=1');
    if (peer.endpoint) lines.push(`endpoint=${formatUapiEndpoint(peer.endpoint)}`);
    const seconds = Math.floor(peer.lastHandshakeUnixMs / 1000);
    const nanoseconds = Math.min(999_999_999, Math.floor((peer.lastHandshakeUnixMs - seconds * 1000) * 1e6));
    lines.push(`last_handshake_time_sec=${seconds}`, `last_handshake_time_nsec=${nanoseconds}`);
    lines.push(`tx_bytes=${peer.txBytes}`, `rx_bytes=${peer.rxBytes}`);
    lines.push(`persistent_keepalive_interval=${peer.persistentKeepaliveSeconds}`);
    for (const prefix of peer.allowedIps) lines.push(`allowed_ip=${prefix}`);
  }
  lines.push(`errno=${UAPI_OK}`, '', '');
  return lines.join('\n');
}

export const formatErrno = (errno: number): string => `errno=${errno}\n\n`;
