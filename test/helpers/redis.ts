// A real redis-server on a free loopback port, in a private temp dir, for one test file.
// Never a mock: broker tests talk to this process, and fault tests kill and restart it.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** Kills the server (SIGKILL: no final save; appendonly keeps what was acknowledged). */
  kill(): Promise<void>;
  /** Starts it again on the same port and data dir. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

async function waitForReady(proc: ChildProcess): Promise<void> {
  await new Promise<void>((resolveReady, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) {
        proc.stdout?.off('data', onData);
        resolveReady();
      }
    };
    proc.stdout?.on('data', onData);
    proc.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${output}`)));
  });
}

/**
 * Starts redis-server; `extraArgs` come last and so override the defaults (e.g. `--appendonly no`),
 * `port` is for callers that need a particular one (a cluster node's bus port must be free too).
 */
export async function startRedis(extraArgs: string[] = [], port?: number): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tb-redis-'));
  port ??= await freePort();
  let proc: ChildProcess | undefined;

  const launch = async () => {
    proc = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--save',
        '',
        ...extraArgs,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    await waitForReady(proc);
  };
  const kill = async () => {
    const current = proc;
    // A killed process has signalCode set and exitCode null: either means it is gone.
    if (!current || current.exitCode !== null || current.signalCode !== null) return;
    const exited = new Promise((r) => current.once('exit', r));
    current.kill('SIGKILL');
    await exited;
  };

  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    restart: launch,
    stop: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
