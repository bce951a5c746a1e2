// Broker benchmark (not a test): each scenario's req/s next to a bare Express hello-world baseline
// measured in the same run, printed as a ratio. Servers run in child processes (this file with
// --serve) so the load generator (autocannon) does not share their event loop. Prints a markdown
// report; scripts/bench-broker writes it to bench-results/broker.md.
// To add a scenario: append to SCENARIOS (seed() prepares Redis through the broker's own services).
import { fork, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import express from 'express';
import { pino } from 'pino';
import { createApp } from '../src/broker/app.js';
import { loadConfig } from '../src/broker/config.js';
import { createContext, type BrokerContext } from '../src/broker/context.js';
import nacl from 'tweetnacl';
import { createAccount, issueKey } from '../src/broker/services/accounts.js';
import { createNodeToken } from '../src/broker/services/enrollment.js';
import { registerNode } from '../src/broker/services/nodes.js';
import { MAX_ADDRESS_INDEX } from '../src/lib/addresses.js';
import { upsertRegion } from '../src/broker/services/regions.js';
import { keys } from '../src/broker/store/keys.js';
import { createRedis, waitForReady } from '../src/broker/store/redis.js';
import { startRedis } from '../test/helpers/redis.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

interface AutocannonResult {
  requests: { average: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

export interface Scenario {
  name: string;
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /** Prepares Redis once before the scenario runs. */
  seed(ctx: BrokerContext): Promise<void>;
}

/**
 * POST /v1/sessions: the whole creation path (bearer auth, reserve, the region script, confirm, an
 * X25519 key pair and the wg-quick text) on 3 nodes of one region. The tier caps are lifted in serve()
 * so every create succeeds; the sessions pile up (one address each) for the whole run.
 */
const SESSION_CREATES: Scenario = {
  name: 'POST /v1/sessions (creates/s; broker-made keys, 3 nodes)',
  method: 'POST',
  path: '/v1/sessions',
  body: JSON.stringify({ region: 'eu-west' }),
  seed: async (ctx) => {
    await upsertRegion(ctx, {
      id: 'eu-west',
      name: 'Frankfurt',
      country: 'DE',
      tiers: ['free', 'pro', 'business'],
    });
    for (let n = 0; n < 3; n++) {
      const token = await createNodeToken(ctx, 'eu-west');
      const publicKey = Buffer.from(nacl.box.keyPair().publicKey).toString('base64');
      const { nodeId } = await registerNode(ctx, token, {
        region: 'eu-west',
        endpoint: `198.51.100.${n + 1}:51820`,
        publicKey,
        egressIps: [],
        capacity: MAX_ADDRESS_INDEX - 1,
        version: 'bench',
      });
      // A far-future heartbeat keeps the node healthy for the whole run.
      await ctx.redis.zadd(keys.regionNodes('eu-west'), Date.now() + 3_600_000, nodeId);
    }
    const account = await createAccount(ctx, { plan: 'business' });
    const { token } = await issueKey(ctx, account.id, {
      name: 'bench',
      permissions: ['tunnels:write'],
      fingerprint: null,
      expiresAt: null,
    });
    SESSION_CREATES.headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  },
};

const SCENARIOS: Scenario[] = [
  {
    name: 'GET /v1/regions (4 regions × 3 nodes)',
    method: 'GET',
    path: '/v1/regions',
    seed: async (ctx) => {
      const now = Date.now();
      for (const [id, name, country] of [
        ['eu-west', 'Frankfurt', 'DE'],
        ['eu-north', 'Stockholm', 'SE'],
        ['us-east', 'Virginia', 'US'],
        ['ap-south', 'Mumbai', 'IN'],
      ] as const) {
        await upsertRegion(ctx, { id, name, country, tiers: ['free', 'pro', 'business'] });
        for (let n = 0; n < 3; n++) {
          const node = `node_${id}_${n}`;
          // A far-future heartbeat keeps the nodes healthy for the whole run.
          await ctx.redis.hset(keys.node(node), {
            id: node,
            region: id,
            load: 0.3,
            draining: '0',
            heartbeat_ms: 10_000,
            last_heartbeat: now + 3_600_000,
          });
          await ctx.redis.zadd(keys.regionNodes(id), now, node);
        }
      }
    },
  },
  SESSION_CREATES,
];

// ── child process: one server ───────────────────────────────────────────────────────────────────
async function serve(kind: string, redisUrl: string): Promise<void> {
  let app: express.Express;
  if (kind === 'baseline') {
    app = express();
    app.get('/', (_req, res) => {
      res.json({ hello: 'world' });
    });
  } else {
    const config = loadConfig({
      REDIS_URL: redisUrl,
      PUBLIC_BURST: '1000000000',
      PUBLIC_REFILL_PER_SECOND: '1000000',
      // The session scenario measures the creation path, not the tier caps.
      TB_TIERS: JSON.stringify({
        business: { concurrentSessions: 1_000_000_000, requestsPerMinute: 1_000_000_000 },
      }),
    });
    const redis = createRedis(config.redisUrl);
    await waitForReady(redis);
    app = createApp({ config, redis, logger: pino({ level: 'silent' }) });
  }
  const server = app.listen(0, '127.0.0.1', () => {
    const address = server.address();
    process.send?.({ port: typeof address === 'object' && address ? address.port : 0 });
  });
}

function startServer(kind: string, redisUrl: string): Promise<{ child: ChildProcess; url: string }> {
  const child = fork(fileURLToPath(import.meta.url), ['--serve', kind, redisUrl]);
  return new Promise((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve({ child, url: `http://127.0.0.1:${m.port}` }));
    child.once('exit', (code) => reject(new Error(`${kind} server exited (${code})`)));
  });
}

async function load(
  url: string,
  s: Pick<Scenario, 'method' | 'path' | 'headers' | 'body'>,
): Promise<AutocannonResult> {
  const run = (duration: number) =>
    autocannon({
      url: url + s.path,
      method: s.method,
      headers: s.headers,
      body: s.body,
      connections: CONNECTIONS,
      duration,
    });
  // A short warm-up so JIT and connection pools settle before the measured run.
  await run(1);
  return run(SECONDS);
}

async function main(): Promise<void> {
  const redisServer = await startRedis();
  const redis = createRedis(redisServer.url);
  await waitForReady(redis);
  const ctx = createContext({
    config: loadConfig({ REDIS_URL: redisServer.url }),
    redis,
    logger: pino({ level: 'silent' }),
  });
  const baseline = await startServer('baseline', redisServer.url);
  const broker = await startServer('broker', redisServer.url);
  try {
    const BASELINE = { method: 'GET', path: '/' } as const;
    const rows: string[] = [];
    for (const scenario of SCENARIOS) {
      await scenario.seed(ctx);
      // Baseline and scenario alternate ROUNDS times and the median ratio is reported, so a load
      // change on the machine between two measurements does not decide the ratio.
      const rounds: { base: AutocannonResult; run: AutocannonResult }[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        rounds.push({ base: await load(baseline.url, BASELINE), run: await load(broker.url, scenario) });
      }
      rounds.sort(
        (x, y) =>
          x.run.requests.average / x.base.requests.average - y.run.requests.average / y.base.requests.average,
      );
      const { base, run } = rounds[Math.floor(ROUNDS / 2)]!;
      const line = (name: string, r: AutocannonResult, ratio: number) =>
        `| ${name} | ${Math.round(r.requests.average)} | ${r.latency.p50} | ${r.latency.p99} | ${r.non2xx + r.errors} | ${ratio.toFixed(3)} |`;
      rows.push(line('baseline: bare Express 5 hello-world (GET /)', base, 1));
      rows.push(line(scenario.name, run, run.requests.average / base.requests.average));
    }
    const cpu = cpus()[0]?.model ?? 'unknown CPU';
    console.log(`# Broker benchmark

${new Date().toISOString()}, ${cpu}, ${cpus().length} cores, load average ${loadavg()[0]!.toFixed(1)} at the end, Node ${process.version}.
autocannon, ${CONNECTIONS} connections, ${SECONDS} s per measurement after a 1 s warm-up; each server in its own
process on loopback; redis-server local (appendfsync always). Each scenario alternates with the baseline
${ROUNDS} times; the round with the median ratio (scenario req/s ÷ baseline req/s) is shown.

| scenario | req/s | p50 ms | p99 ms | non-2xx + errors | ratio to baseline |
|---|---|---|---|---|---|
${rows.join('\n')}
`);
  } finally {
    baseline.child.kill();
    broker.child.kill();
    redis.disconnect();
    await redisServer.stop();
  }
}

if (process.argv[2] === '--serve') await serve(process.argv[3]!, process.argv[4]!);
else await main();
