// Scale benchmark (not a test), broker rows, appended to bench-results/scale.md by scripts/bench-scale:
// sessions created through POST /v1/sessions until a region holds BENCH_SESSIONS (100,000) on nodes of
// 10,000 each (sessions/s, Redis memory per session), then a node's heartbeat of 1, 1,000 and 10,000
// moved peers as tunnelbyte-node sends it (bytes on the wire, CPU of the broker and of Redis per beat),
// beside today's single-body report of the same peers. The broker runs in this process on a private
// redis-server, served on loopback.
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { Agent, request } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

import { BrokerClient, type PeerReport } from '../nodes/broker-client.js';
import { PEERS_PER_HEARTBEAT } from '../nodes/agent.js';
import { createNodeToken } from '../src/broker/services/enrollment.js';
import { upsertRegion } from '../src/broker/services/regions.js';
import type { Redis } from '../src/broker/store/redis.js';
import { businessToken, startBroker } from '../test/broker/helpers.js';

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 100_000);
const PER_NODE = 10_000;
const IN_FLIGHT = 32;
const BEAT_SIZES = [1, 1_000, 10_000];
const REGION = 'bench';

const broker = await startBroker({
  env: {
    TB_TIERS: JSON.stringify({
      business: { concurrentSessions: 1_000_000_000, requestsPerMinute: 1_000_000_000 },
    }),
    TB_NODE_REQUESTS_PER_MINUTE: '1000000',
    // The nodes beat only when measured: the longest interval keeps them healthy for the whole run.
    TB_HEARTBEAT_MS: '600000',
  },
});
const { app, ctx, redis } = broker;
let wireBytes = 0;
const server = app.listen(0, '127.0.0.1');
server.on('connection', (socket: Socket) =>
  socket.on('data', (chunk: Buffer) => (wireBytes += chunk.length)),
);
await new Promise((resolve) => server.once('listening', resolve));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT });

function post(path: string, token: string, body: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = request(
      `${base}${path}`,
      {
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
        },
      },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, text }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

const usedMemory = async (r: Redis) => Number(/used_memory:(\d+)/.exec(await r.info('memory'))![1]);
const redisCpuSeconds = async (r: Redis) => {
  const info = await r.info('cpu');
  return Number(/used_cpu_user:([\d.]+)/.exec(info)![1]) + Number(/used_cpu_sys:([\d.]+)/.exec(info)![1]);
};

// ── sessions through the API ────────────────────────────────────────────────────────────────────
await upsertRegion(ctx, { id: REGION, name: 'Bench', country: 'DE', tiers: ['business'] });
const nodes: { id: string; token: string }[] = [];
for (let n = 0; n < Math.ceil(SESSIONS / PER_NODE); n++) {
  const { token } = await createNodeToken(ctx, REGION);
  const answer = await post('/v1/nodes/register', token, {
    region: REGION,
    endpoint: `198.51.100.${n + 1}:51820`,
    public_key: randomBytes(32).toString('base64'),
    egress_ips: [`198.51.100.${n + 1}`],
    capacity: PER_NODE,
    version: 'bench',
  });
  nodes.push({ id: (JSON.parse(answer.text) as { node_id: string }).node_id, token });
}
const token = await businessToken(ctx, 'bench');
const keysByNode = new Map<string, string[]>();
const memoryBefore = await usedMemory(redis);
let next = 0;
let failed = 0;
const createStart = performance.now();
await Promise.all(
  Array.from({ length: IN_FLIGHT }, async () => {
    while (next < SESSIONS) {
      next++;
      const publicKey = randomBytes(32).toString('base64');
      const res = await post('/v1/sessions', token, { region: REGION, public_key: publicKey });
      if (res.status !== 201) {
        if (failed++ === 0) process.stderr.write(`bench-scale-broker: ${res.status} ${res.text}\n`);
        continue;
      }
      const nodeId = (JSON.parse(res.text) as { node: { id: string } }).node.id;
      const onNode = keysByNode.get(nodeId) ?? [];
      onNode.push(publicKey);
      keysByNode.set(nodeId, onNode);
    }
  }),
);
const createSeconds = (performance.now() - createStart) / 1000;
const created = SESSIONS - failed;
const memoryPerSession = ((await usedMemory(redis)) - memoryBefore) / created;

// ── heartbeats ──────────────────────────────────────────────────────────────────────────────────
const [fullest] = [...keysByNode.entries()].sort((a, b) => b[1].length - a[1].length);
const node = nodes.find((n) => n.id === fullest![0])!;
const client = new BrokerClient(base, node.token);
let counter = 1;

/** One heartbeat as the agent sends it (or in one body): bytes in, CPU of this process and of Redis. */
async function beat(moved: number, perBody: number) {
  counter++;
  const peers: PeerReport[] = fullest![1].slice(0, moved).map((publicKey) => ({
    publicKey,
    rxBytes: counter * 1000,
    txBytes: counter * 500,
    lastHandshakeUnixMs: Date.now(),
  }));
  const bytes = wireBytes;
  const redisCpu = await redisCpuSeconds(redis);
  const cpu = process.cpuUsage();
  const start = performance.now();
  for (let from = 0; from === 0 || from < peers.length; from += perBody) {
    const result = await client.heartbeat(node.id, {
      load: 0.5,
      draining: false,
      peers: peers.slice(from, from + perBody),
    });
    if (!result.ok) throw new Error(`heartbeat: ${result.message}`);
  }
  const used = process.cpuUsage(cpu);
  return {
    moved,
    bodies: Math.max(1, Math.ceil(moved / perBody)),
    bytes: wireBytes - bytes,
    ms: performance.now() - start,
    cpuMs: (used.user + used.system) / 1000,
    redisCpuMs: ((await redisCpuSeconds(redis)) - redisCpu) * 1000,
  };
}

const best = async (moved: number, perBody: number) => {
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(await beat(moved, perBody));
  return runs.reduce((a, b) => (b.cpuMs < a.cpuMs ? b : a));
};
const beats = [];
for (const moved of BEAT_SIZES.filter((size) => size <= fullest![1].length)) {
  beats.push({
    kind: `agent (bodies of ${PEERS_PER_HEARTBEAT.toLocaleString('en')})`,
    ...(await best(moved, PEERS_PER_HEARTBEAT)),
  });
  beats.push({ kind: 'one body (nodes before batching)', ...(await best(moved, Number.MAX_SAFE_INTEGER)) });
}

const fmt = (n: number, digits = 1) => n.toFixed(digits);
const lines = [
  '',
  '## Broker, one process on its own redis-server (loopback HTTP)',
  '',
  `- date: ${new Date().toISOString()}; load average at the end (1/5/15 min): ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ')}`,
  '',
  `Sessions created through \`POST /v1/sessions\` (client keys, ${IN_FLIGHT} in flight, one business account with its cap lifted) into one region of ${nodes.length} nodes of ${PER_NODE.toLocaleString('en')}:`,
  '',
  '| sessions | failed | sessions/s | Redis used_memory per session |',
  '| ---: | ---: | ---: | ---: |',
  `| ${created.toLocaleString('en')} | ${failed} | ${fmt(created / createSeconds, 0)} | ${fmt(memoryPerSession, 0)} B |`,
  '',
  `A heartbeat of one node carrying ${fullest![1].length.toLocaleString('en')} sessions, with that many peers' counters moved (best of 3 by CPU). CPU: this process (the broker and the node client making the bodies) and redis-server (INFO cpu).`,
  '',
  '| peers moved | sent as | bodies | bytes on the wire | ms | broker process CPU ms | Redis CPU ms |',
  '| ---: | --- | ---: | ---: | ---: | ---: | ---: |',
  ...beats.map(
    (b) =>
      `| ${b.moved.toLocaleString('en')} | ${b.kind} | ${b.bodies} | ${b.bytes.toLocaleString('en')} | ${fmt(b.ms)} | ${fmt(b.cpuMs)} | ${fmt(b.redisCpuMs)} |`,
  ),
  '',
  '- Each interval a node sends only the peers whose counters moved (all of them once after registering);',
  '  the broker applies 500 peers per script, so Redis is never held long by one beat.',
];
process.stdout.write(`${lines.join('\n')}\n`);
agent.destroy();
server.close();
await broker.close();
