// The WireGuard tools the CLI runs on this machine: `wg-quick up|down FILE` for `connect --up` and
// `disconnect`, and `wg show|set` for following a session onto another node. They need root (or
// CAP_NET_ADMIN); their own messages are passed on, one line.
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, join } from 'node:path';
import type { Context } from './context.js';
import { CliError } from './exit.js';
import { writePrivateFile } from './store.js';
import { parseWgDump, type WgPeerDump } from '../lib/wgdump.js';

export const WG_QUICK_MISSING =
  'wg-quick not found: install wireguard-tools, or import the file into a WireGuard app';
export const WG_MISSING = 'wg not found: install wireguard-tools (it has wg and wg-quick)';

export function findOnPath(ctx: Context, program: string): string | undefined {
  for (const dir of (ctx.io.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, program);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** wg-quick names the interface after its file; it is up on this machine while the kernel lists it. */
export const interfaceOf = (file: string) => basename(file, '.conf');
export const isUp = (name: string) => existsSync(join('/sys/class/net', name));

/**
 * Runs `wg-quick up|down FILE`; its progress lines go to our stderr, keeping stdout for results. In a
 * session of its own: the userspace daemon it may start (wireguard-go) must not get the terminal's
 * Ctrl-C, which is ours to handle (taking the interface down in order, with its routes and DNS).
 */
export function wgQuick(ctx: Context, program: string, verb: 'up' | 'down', file: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, [verb, file], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: ctx.io.env,
      detached: true,
    });
    const relay = (chunk: Buffer) => ctx.io.stderr.write(chunk.toString());
    child.stdout.on('data', relay);
    child.stderr.on('data', relay);
    child.once('error', reject);
    child.once('close', (code) => resolve(code ?? 1));
  });
}

/** One peer of a local interface, as `wg show IF dump` lists it. */
export type InterfacePeer = WgPeerDump;

/** `wg ARGS`; resolves with stdout, or fails with wg's first line of complaint. */
function wg(ctx: Context, program: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'], env: ctx.io.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) return resolve(stdout);
      const why = stderr.trim().split('\n')[0] || `exit ${code}`;
      reject(new CliError(`wg ${args.slice(0, 2).join(' ')} failed: ${why}`));
    });
  });
}

/** The peers of interface `name` (its own line, with its private key, is dropped here). */
export async function interfacePeers(ctx: Context, program: string, name: string): Promise<InterfacePeer[]> {
  return parseWgDump(await wg(ctx, program, ['show', name, 'dump'])).peers;
}

/**
 * Runs `work` with `secret` in a file only we can read (wg(8) takes a preshared key from a file, never
 * from its command line, and /dev/stdin is not a file it can open when stdin is a socket).
 */
async function withSecretFile<T>(secret: string, work: (path: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'tunnelbyte-'));
  try {
    const path = join(dir, 'psk');
    writePrivateFile(path, `${secret}\n`);
    return await work(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Replaces peer `old` of interface `name` with the node at `publicKey`/`endpoint`, keeping the old peer's
 * allowed IPs, keepalive and preshared key (the session kept its addresses and key), in one `wg set`, so
 * the routes wg-quick made stay and the next packet (or the keepalive) starts a handshake with the new
 * node.
 */
export async function swapPeer(
  ctx: Context,
  program: string,
  name: string,
  old: InterfacePeer,
  next: { publicKey: string; endpoint: string },
): Promise<void> {
  const args = ['set', name, 'peer', old.publicKey, 'remove', 'peer', next.publicKey];
  args.push('endpoint', next.endpoint, 'allowed-ips', old.allowedIps.join(','));
  args.push('persistent-keepalive', old.persistentKeepalive === 0 ? 'off' : String(old.persistentKeepalive));
  if (!old.presharedKey) return void (await wg(ctx, program, args));
  await withSecretFile(old.presharedKey, (path) => wg(ctx, program, [...args, 'preshared-key', path]));
}

/** Points the peer at the node's new endpoint (same key: the node moved, not the session). */
export async function setEndpoint(
  ctx: Context,
  program: string,
  name: string,
  publicKey: string,
  endpoint: string,
): Promise<void> {
  await wg(ctx, program, ['set', name, 'peer', publicKey, 'endpoint', endpoint]);
}
