// The UAPI server against the real `wg` tool. The device behind it here is the in-memory one; the
// interop tests drive the same server backed by the real engine.
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, renameSync, statSync, unlinkSync, watch, type FSWatcher } from 'node:fs';
import { connect } from 'node:net';
import { promisify } from 'node:util';

import {
  REMOVAL_POLL_MS,
  startUapiServer,
  uapiSocketPath,
  type UapiServer,
  type WatchPath,
} from '../../nodes/uapi.js';
import { formatGet } from '../../nodes/uapi-protocol.js';
import { eventually } from '../helpers/eventually.js';
import { descriptorsOpenedSince, openDescriptors } from '../helpers/fds.js';
import { MemoryDevice } from './memory-device.js';

const run = promisify(execFile);
const wg = async (...args: string[]) => (await run('wg', args)).stdout;
const b64 = (k: Uint8Array) => Buffer.from(k).toString('base64');
const key = (byte: number) => new Uint8Array(32).fill(byte);

let counter = 0;
const uniqueName = () => `tbt${process.pid % 100000}u${counter++}`;

function converse(path: string, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    let received = '';
    socket.on('data', (chunk) => (received += chunk.toString()));
    socket.on('end', () => resolve(received));
    socket.on('error', reject);
    socket.write(text);
    setTimeout(() => socket.end(), 200);
  });
}

describe('UAPI server with the real wg tool', () => {
  let server: UapiServer;
  let device: MemoryDevice;
  let name: string;
  let removedCalls: number;

  beforeEach(async () => {
    name = uniqueName();
    device = new MemoryDevice();
    device.setPrivateKey(key(0x41));
    device.listenPort = 51999;
    removedCalls = 0;
    server = await startUapiServer({ name, device, onSocketRemoved: () => removedCalls++ });
  });
  afterEach(() => server.close());

  test('socket is root-only in a 0755 directory', () => {
    expect(statSync(server.path).mode & 0o777).toBe(0o700);
    expect(statSync('/var/run/wireguard').mode & 0o777).toBe(0o755);
  });

  test('wg set, wg show, wg showconf, peer remove', async () => {
    const peer = b64(key(0x11));
    await wg(
      'set',
      name,
      'peer',
      peer,
      'allowed-ips',
      '10.7.0.2/32,fd07::2/128',
      'endpoint',
      '[::1]:4000',
      'persistent-keepalive',
      '25',
    );
    const show = await wg('show', name);
    expect(show).toContain(`interface: ${name}`);
    expect(show).toContain('listening port: 51999');
    expect(show).toContain(`peer: ${peer}`);
    expect(show).toContain('endpoint: [::1]:4000');
    expect(show).toContain('allowed ips: 10.7.0.2/32, fd07::2/128');
    expect(show).toContain('persistent keepalive: every 25 seconds');

    const conf = await wg('showconf', name);
    expect(conf).toContain(`PrivateKey = ${b64(key(0x41))}`);
    expect(conf).toContain('AllowedIPs = 10.7.0.2/32, fd07::2/128');

    await wg('set', name, 'peer', peer, 'allowed-ips', '10.8.0.0/16');
    expect(await wg('show', name, 'allowed-ips')).toBe(`${peer}\t10.8.0.0/16\n`);

    await wg('set', name, 'peer', peer, 'remove');
    expect(await wg('show', name, 'peers')).toBe('');
  });

  test('wg show dump carries counters and the handshake time', async () => {
    device.upsertPeer(key(0x22), { allowedIps: ['10.0.0.2/32'] });
    Object.assign(device.peerMap.values().next().value!, {
      rxBytes: 1372,
      txBytes: 1460,
      lastHandshakeUnixMs: 1_700_000_000_000,
    });
    const [, peerLine] = (await wg('show', name, 'dump')).trim().split('\n');
    expect(peerLine!.split('\t')).toEqual([
      b64(key(0x22)),
      '(none)',
      '(none)',
      '10.0.0.2/32',
      '1700000000',
      '1372',
      '1460',
      'off',
    ]);
  });

  test('a bad wg set is refused with the error wg prints', async () => {
    device.takenPorts.add(4444);
    await expect(wg('set', name, 'listen-port', '4444')).rejects.toThrow(/Address already in use/);
  });

  test('several operations on one connection; an unknown operation hangs up', async () => {
    const reply = await converse(server.path, 'get=1\n\nset=1\nbogus=1\n\nget=1\n\nnonsense\nget=1\n\n');
    const parts = reply.split('\n\n');
    expect(parts.filter((p) => p.endsWith('errno=0')).length).toBe(2);
    expect(reply).toContain('errno=-22\n\n');
    expect(reply.match(/errno=/g)!.length).toBe(3);
  });

  test('a client that sends requests faster than it reads the answers is answered at its own pace: the server reads no more while its answers wait', async () => {
    // A large answer each (64 peers, ~19 KB), so the socket's buffers hold only a few dozen of them.
    for (let i = 1; i <= 64; i++) device.upsertPeer(key(i), { allowedIps: [`10.0.${i}.0/24`] });
    const answered = { count: 0 };
    const status = device.status.bind(device);
    device.status = () => {
      answered.count++;
      return status();
    };
    const requests = 2000;
    const answerLength = formatGet(status()).length;
    const socket = connect(server.path);
    socket.write('get=1\n\n'.repeat(requests));
    // Read one chunk per event-loop turn, noting how far the server's answers ran ahead of what was read.
    let received = 0;
    let furthestAhead = 0;
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      furthestAhead = Math.max(furthestAhead, answered.count - Math.floor(received / answerLength));
      socket.pause();
      setImmediate(() => socket.resume());
    });
    await eventually('every answer read', () => received === requests * answerLength, { timeoutMs: 60_000 });
    socket.destroy();
    expect(answered.count).toBe(requests);
    // What the socket buffers can hold (a few MB at most), far below the whole backlog of 2000 (38 MB).
    expect(furthestAhead).toBeLessThan(requests / 4);
  }, 90_000);

  test('a live socket is refused; a stale one is replaced', async () => {
    await expect(startUapiServer({ name, device })).rejects.toThrow(/in use/);
    await server.close();
    // A socket file nobody listens on, as a killed daemon leaves behind.
    await run('python3', [
      '-c',
      'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])',
      server.path,
    ]);
    expect(existsSync(server.path)).toBe(true);
    server = await startUapiServer({ name, device });
    expect(await wg('show', name, 'listen-port')).toBe('51999\n');
  });

  test('removing the socket file tells the daemon to stop', async () => {
    unlinkSync(server.path);
    await eventually('the removal noticed', () => removedCalls > 0);
    expect(removedCalls).toBe(1);
  });

  test('renaming the socket file away tells the daemon to stop too; a change of its mode does not', async () => {
    chmodSync(server.path, 0o700); // an event on the watched file, the socket still there
    expect(await wg('show', name, 'listen-port')).toBe('51999\n');
    expect(removedCalls).toBe(0);
    const moved = `${server.path}.moved`;
    renameSync(server.path, moved);
    try {
      await eventually('the rename noticed', () => removedCalls > 0);
      expect(removedCalls).toBe(1);
    } finally {
      unlinkSync(moved);
    }
  });

  test('close removes the socket', async () => {
    await server.close();
    expect(existsSync(server.path)).toBe(false);
    await expect(wg('show', name)).rejects.toThrow();
  });
});

// fs.watch failing as it does when inotify's limits are used up (instances or watches per user, shared by
// every container of the machine's root): the removal is then noticed by stat-ing the file.
const failingWatch =
  (code: string): WatchPath =>
  () => {
    throw Object.assign(new Error(`${code}: inotify failed, watch`), { code, syscall: 'watch' });
  };

describe('UAPI server where inotify cannot watch the socket', () => {
  const device = new MemoryDevice();
  let removedCalls: number;
  beforeEach(() => (removedCalls = 0));
  const start = (name: string, watchPath: WatchPath) =>
    startUapiServer({ name, device, watch: watchPath, onSocketRemoved: () => removedCalls++ });
  /** Removes the socket file as `rm` does, and waits for the poll to report it (once). */
  async function removeAndClose(server: UapiServer): Promise<void> {
    try {
      unlinkSync(server.path);
      await eventually('the removal noticed by the poll', () => removedCalls > 0);
      expect(removedCalls).toBe(1);
    } finally {
      await server.close();
    }
  }

  test.each([['EMFILE'], ['ENOSPC']])(
    '1. watch() failing with %s (a limit used up): the node starts, and removing the socket still stops it',
    async (code) => {
      const name = uniqueName();
      const server = await start(name, failingWatch(code));
      expect(await wg('show', name, 'listen-port')).toBe(`${device.listenPort}\n`);
      await removeAndClose(server);
    },
  );

  test('2. a watcher that fails later (Node closes it, then emits the error): the removal is still noticed', async () => {
    let watcher: FSWatcher | undefined;
    const server = await start(uniqueName(), (path, options, listener) => {
      watcher = watch(path, options, listener);
      return watcher;
    });
    watcher!.close();
    watcher!.emit('error', Object.assign(new Error('ENOSPC: inotify failed'), { code: 'ENOSPC' }));
    expect(removedCalls).toBe(0); // the socket is still there
    await removeAndClose(server);
  });

  test('3. close stops the poll: nothing is reported after it, and no descriptor is left', async () => {
    const before = openDescriptors();
    const server = await start(uniqueName(), failingWatch('EMFILE'));
    await server.close(); // removes the socket file, which a poll still running would report
    await new Promise((resolve) => setTimeout(resolve, 2.5 * REMOVAL_POLL_MS));
    expect(removedCalls).toBe(0);
    expect(descriptorsOpenedSince(before)).toEqual([]);
  });

  test('4. any other watch() failure fails the start, and leaves nothing listening and no socket file', async () => {
    const before = openDescriptors();
    const name = uniqueName();
    await expect(start(name, failingWatch('EACCES'))).rejects.toThrow(/EACCES/);
    expect(existsSync(uapiSocketPath(name))).toBe(false);
    expect(descriptorsOpenedSince(before)).toEqual([]);
    // The name is free: a new start binds it.
    const server = await start(name, watch);
    await server.close();
  });
});
