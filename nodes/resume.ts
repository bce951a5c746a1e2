// What an exit node keeps of its peers across a restart: where each recent client was (its endpoint)
// and when it last completed a handshake, in `<state dir>/peers.json`. The broker knows the peer set,
// not where clients roam from; after a restart the node greets each client that handshook in the last
// REJECT_AFTER_TIME (3 minutes) with one initiation, a few per event-loop turn so serving goes on, and the
// client's tunnel works again without waiting out its own 15-second retry.
import { readFile, rename, writeFile } from 'node:fs/promises';

import { REJECT_AFTER_TIME_MS } from '../crypto/constants.js';
import { parseIpAddress } from '../crypto/ipaddr.js';
import type { Endpoint, PeerCounters } from '../crypto/tunnel.js';
import { keyFromBase64 } from '../src/lib/wgkey.js';

export const PEERS_FILE = 'peers.json';
// Initiations per event-loop turn: each costs a few X25519 operations (~1 ms in all).
const INITIATIONS_PER_TURN = 8;
// A file larger than this is not ours (10,000 peers take ~1 MB).
const MAX_FILE_BYTES = 64 * 1024 * 1024;

export interface RememberedPeer {
  publicKey: string;
  endpoint: { address: string; port: number };
  lastHandshakeUnixMs: number;
}

/** The peers worth greeting after a restart: a handshake and an endpoint (where to send it). */
export function rememberedPeers(table: { forEachPeer(visit: (peer: PeerCounters) => void): void }) {
  const peers: RememberedPeer[] = [];
  table.forEachPeer((peer) => {
    if (peer.lastHandshakeUnixMs === 0 || peer.endpoint === undefined) return;
    const { address, port } = peer.endpoint;
    peers.push({
      publicKey: peer.name,
      endpoint: { address, port },
      lastHandshakeUnixMs: peer.lastHandshakeUnixMs,
    });
  });
  return peers;
}

/** Writes the file whole or not at all (a temporary file renamed over it), readable by its owner only. */
export async function savePeers(file: string, peers: readonly RememberedPeer[]): Promise<void> {
  const temporary = `${file}.tmp`;
  await writeFile(temporary, JSON.stringify({ version: 1, peers }), { mode: 0o600 });
  await rename(temporary, file);
}

function checked(entry: unknown): RememberedPeer | undefined {
  if (typeof entry !== 'object' || entry === null) return undefined;
  const { publicKey, endpoint, lastHandshakeUnixMs } = entry as Record<string, unknown>;
  if (typeof publicKey !== 'string' || !keyFromBase64(publicKey)) return undefined;
  if (typeof lastHandshakeUnixMs !== 'number' || !Number.isFinite(lastHandshakeUnixMs)) return undefined;
  if (typeof endpoint !== 'object' || endpoint === null) return undefined;
  const { address, port } = endpoint as Record<string, unknown>;
  if (typeof address !== 'string' || !parseIpAddress(address).ok) return undefined;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { publicKey, endpoint: { address, port }, lastHandshakeUnixMs };
}

/**
 * The peers of the file that handshook within REJECT_AFTER_TIME of `nowMs`. A missing file is no
 * peers; a damaged one is no peers and a reason (the node serves regardless).
 */
export async function loadPeers(
  file: string,
  nowMs: number,
): Promise<{ peers: RememberedPeer[]; problem?: string }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? { peers: [] } : { peers: [], problem: `${file}: ${code ?? 'unreadable'}` };
  }
  let entries: unknown;
  try {
    entries = text.length > MAX_FILE_BYTES ? undefined : (JSON.parse(text) as { peers?: unknown }).peers;
  } catch {
    entries = undefined;
  }
  if (!Array.isArray(entries)) return { peers: [], problem: `${file}: not a peers file; ignored` };
  const valid = entries.map(checked).filter((peer): peer is RememberedPeer => peer !== undefined);
  return { peers: recentPeers(valid, nowMs) };
}

/** The peers whose last handshake is within REJECT_AFTER_TIME of `nowMs`: worth a greeting. */
export const recentPeers = (peers: readonly RememberedPeer[], nowMs: number) =>
  peers.filter((peer) => peer.lastHandshakeUnixMs >= nowMs - REJECT_AFTER_TIME_MS);

/**
 * Greets `peers` (Device.resumeHandshake), INITIATIONS_PER_TURN per event-loop turn so datagrams and
 * the feed are served in between. Resolves with how many were greeted, or early when `stop` aborts.
 */
export async function resumeHandshakes(
  device: { resumeHandshake(publicKey: Uint8Array, endpoint: Endpoint): void },
  peers: readonly RememberedPeer[],
  stop?: AbortSignal,
): Promise<number> {
  let greeted = 0;
  for (let from = 0; from < peers.length && !stop?.aborted; from += INITIATIONS_PER_TURN) {
    for (const peer of peers.slice(from, from + INITIATIONS_PER_TURN)) {
      device.resumeHandshake(keyFromBase64(peer.publicKey)!, peer.endpoint);
      greeted++;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  return greeted;
}
