// The UAPI socket at /var/run/wireguard/<NAME>.sock that the real `wg` tool talks to, served the way
// wireguard-go serves it: directory 0755, socket for root only, a stale socket replaced, a live one
// refused, and the daemon told to stop when somebody deletes the socket file (`rm` is how wg-quick and
// operators take a userspace interface down).
import { chmodSync, mkdirSync, statSync, unlinkSync, watch, type FSWatcher } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';

import {
  applySet,
  formatErrno,
  formatGet,
  UAPI_EIO,
  UapiRequestReader,
  type UapiDevice,
  type UapiRequest,
} from './uapi-protocol.js';

export const UAPI_DIRECTORY = '/var/run/wireguard';

/** How often the socket file is stat-ed for removal when inotify cannot watch it. */
export const REMOVAL_POLL_MS = 1000;

/** fs.watch's shape as used here (tests pass one that fails as inotify does when its limits are used up). */
export type WatchPath = (path: string, options: { persistent: boolean }, listener: () => void) => FSWatcher;

// inotify_init1 and inotify_add_watch's errors when the per-user instance or watch limit (or the system's
// file table) is used up: a shared machine's other containers can exhaust them, and the daemon must run on.
const WATCH_LIMIT_ERRORS = new Set(['EMFILE', 'ENFILE', 'ENOSPC']);

export interface UapiServerOptions {
  name: string;
  device: UapiDevice;
  /** Defaults to /var/run/wireguard; tests may pass their own directory. */
  directory?: string;
  /** Called once when the socket file disappears from under the daemon. */
  onSocketRemoved?: () => void;
  /** Defaults to fs.watch. */
  watch?: WatchPath;
}

export interface UapiServer {
  readonly path: string;
  /** Stops listening, ends open connections and removes the socket file. */
  close(): Promise<void>;
}

export const uapiSocketPath = (name: string, directory = UAPI_DIRECTORY): string =>
  join(directory, `${name}.sock`);

/** True if something accepts connections at `path` (a live daemon), false for a stale file or none. */
function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

async function answer(device: UapiDevice, request: UapiRequest): Promise<string> {
  switch (request.kind) {
    case 'get':
      return formatGet(device.status());
    case 'set':
      return formatErrno(await applySet(device, request.set).catch(() => UAPI_EIO));
    case 'error':
      return formatErrno(request.errno);
    case 'close':
      return '';
  }
}

/** Resolves once `socket` has sent what it buffered, or is gone. */
function drainedOrClosed(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

function serveConnection(socket: Socket, device: UapiDevice): void {
  const reader = new UapiRequestReader();
  // Operations are answered strictly in order, one at a time, like wireguard-go's loop; and as its blocking
  // write does, an answer the client has not taken yet stops the reading: a client that sends requests and
  // never reads the answers is held at what the socket buffers, not answered into the daemon's memory.
  const pending: UapiRequest[] = [];
  let answering = false;
  const answerPending = async () => {
    answering = true;
    socket.pause();
    for (let request = pending.shift(); request !== undefined; request = pending.shift()) {
      if (socket.destroyed) return;
      if (request.kind === 'close') {
        socket.end();
        return;
      }
      if (!socket.write(await answer(device, request))) await drainedOrClosed(socket);
    }
    answering = false;
    if (!socket.destroyed) socket.resume();
  };
  socket.on('data', (chunk) => {
    pending.push(...reader.push(chunk));
    if (!answering && pending.length > 0) answerPending().catch(() => socket.destroy());
  });
  socket.on('error', () => socket.destroy());
}

/**
 * Calls `onRemoved` once when the file at `path` stops being the inode `ino` (unlinked, or renamed away),
 * until the returned stop is called. Watched with inotify, as wireguard-go does, not polled: an idle node has
 * no timer to wake for. Unlinking or renaming the file changes its link count (an event here) while the bound
 * socket keeps the inode. Where inotify cannot watch (its limits used up, or the watcher failed: Node closes
 * it before the 'error'), the file is stat-ed every REMOVAL_POLL_MS instead.
 */
function watchRemoval(path: string, ino: number, onRemoved: () => void, watchPath: WatchPath): () => void {
  let watcher: FSWatcher | undefined;
  let poll: NodeJS.Timeout | undefined;
  let stopped = false;
  const stop = () => {
    stopped = true;
    watcher?.close();
    clearInterval(poll);
  };
  const check = () => {
    let current: number | undefined;
    try {
      current = statSync(path).ino;
    } catch {
      current = undefined;
    }
    if (current === ino || stopped) return;
    stop();
    onRemoved();
  };
  const startPolling = () => {
    if (stopped) return;
    watcher?.close();
    poll = setInterval(check, REMOVAL_POLL_MS).unref();
    check(); // a removal the failed watcher may have missed
  };
  try {
    watcher = watchPath(path, { persistent: false }, check);
  } catch (error) {
    if (!WATCH_LIMIT_ERRORS.has((error as NodeJS.ErrnoException).code ?? '')) throw error;
    startPolling();
    return stop;
  }
  watcher.on('error', startPolling);
  return stop;
}

export async function startUapiServer(options: UapiServerOptions): Promise<UapiServer> {
  const directory = options.directory ?? UAPI_DIRECTORY;
  const path = uapiSocketPath(options.name, directory);
  mkdirSync(directory, { recursive: true, mode: 0o755 });
  if (await socketInUse(path)) throw new Error(`${path} is in use by another process`);
  try {
    unlinkSync(path);
  } catch {
    // no stale socket
  }

  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    serveConnection(socket, options.device);
  });
  // The socket is created by bind() inside listen(): a tight umask keeps it root-only from the first moment.
  const previousUmask = process.umask(0o077);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(previousUmask);
  }
  let ino: number | undefined;
  let stopWatching: (() => void) | undefined;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    stopWatching?.();
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await stopped;
    // Remove the file only if it is still ours (a successor may already have bound the name).
    try {
      if (statSync(path).ino === ino) unlinkSync(path);
    } catch {
      // already gone
    }
  };
  try {
    ino = statSync(path).ino;
    chmodSync(path, 0o700);
    stopWatching = watchRemoval(path, ino, () => options.onSocketRemoved?.(), options.watch ?? watch);
  } catch (error) {
    await close(); // a failed start leaves nothing listening
    throw error;
  }
  return { path, close };
}
