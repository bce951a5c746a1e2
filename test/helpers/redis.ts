// A real redis-server on a free loopback port, in a private temp dir, for one test file.
// Never a mock: broker tests talk to this process, and fault tests kill and restart it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

async function waitForReady(proc: ChildProcess, line = 'Ready to accept connections'): Promise<void> {
  await new Promise<void>((resolveReady, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes(line)) {
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

export interface SentinelServer {
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * A `redis-server --sentinel` watching the master at `masterPort` as `masterName` (quorum 2, down after
 * 1 s), with its own config file: Sentinel rewrites it as it learns the topology.
 */
export async function startSentinel(masterName: string, masterPort: number): Promise<SentinelServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tb-sentinel-'));
  const port = await freePort();
  const config = join(dir, 'sentinel.conf');
  writeFileSync(
    config,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} 2`,
      `sentinel down-after-milliseconds ${masterName} 1000`,
      `sentinel failover-timeout ${masterName} 5000`,
      '',
    ].join('\n'),
  );
  const proc = spawn('redis-server', [config, '--sentinel'], { stdio: ['ignore', 'pipe', 'pipe'] });
  await waitForReady(proc, '+monitor master');
  return {
    port,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGKILL');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const canListen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });

/** A free port whose cluster-bus twin (port + 10000) is free too. */
async function clusterPort(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port + 10000 <= 65535 && (await canListen(port + 10000))) return port;
  }
}

/** `redis-cli -p port args...`, its output (the tests read CLUSTER INFO/NODES and SENTINEL replies). */
export function redisCli(port: number, ...args: string[]): string {
  return spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', timeout: 10_000 }).stdout;
}

/**
 * A Redis Cluster of `masters` masters with `replicasPerMaster` replicas each (redis-server
 * --cluster-enabled, joined by redis-cli --cluster create), once every slot is served.
 */
export async function startCluster(
  masters: number,
  replicasPerMaster: number,
  extraArgs: string[] = [],
): Promise<RedisServer[]> {
  const servers: RedisServer[] = [];
  for (let i = 0; i < masters * (1 + replicasPerMaster); i++) {
    servers.push(await startRedis(['--cluster-enabled', 'yes', ...extraArgs], await clusterPort()));
  }
  const create = spawnSync(
    'redis-cli',
    [
      '--cluster',
      'create',
      ...servers.map((server) => `127.0.0.1:${server.port}`),
      '--cluster-replicas',
      String(replicasPerMaster),
      '--cluster-yes',
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  if (create.status !== 0) throw new Error(`cluster create failed: ${create.stdout} ${create.stderr}`);
  for (
    let i = 0;
    i < 300 &&
    !servers.every((server) => redisCli(server.port, 'cluster', 'info').includes('cluster_state:ok'));
    i++
  ) {
    await sleep(100);
  }
  return servers;
}
