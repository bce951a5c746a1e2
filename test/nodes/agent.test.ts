// The broker agent in-process against a real broker (createApp on a real redis-server, served over HTTP on
// loopback), driving a real engine (Tunnel) with no I/O: registration, heartbeats, the peer feed applied
// to the engine, restarts, broker and Redis outages, a bad token, and draining. The daemon with a TUN and
// a real WireGuard client is test/nodes/agent-netns.test.ts.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import fc from 'fast-check';
import request from 'supertest';

import { Tunnel } from '../../crypto/tunnel.js';
import { Agent, applyFeedPage, backoffDelay, type PeerTable } from '../../nodes/agent.js';
import { BrokerClient, type FeedPage } from '../../nodes/broker-client.js';
import { FetchThread } from '../../nodes/fetch-thread.js';
import { checkRunArguments, loadOrCreateKey } from '../../nodes/run.js';
import { createNodeToken } from '../../src/broker/services/enrollment.js';
import { upsertRegion } from '../../src/broker/services/regions.js';
import {
  NODE_ADDRESS_INDEX,
  NODE_INTERFACE_ADDRESSES,
  POOL_PREFIXES,
  tunnelAddresses,
} from '../../src/lib/addresses.js';
import { keys } from '../../src/broker/store/keys.js';
import { keyPair, startPlane, type Plane } from '../broker/sessions-fixture.js';
import type { Principal } from '../broker/authz.js';
import { freePort } from '../helpers/redis.js';
import { eventually } from '../helpers/eventually.js';

const FAST_BACKOFF = { baseMs: 20, capMs: 200 };

const bytes = (b64: string) => new Uint8Array(Buffer.from(b64, 'base64'));
const b64 = (key: Uint8Array) => Buffer.from(key).toString('base64');
const seeded = (seed: number) => (length: number) => {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
  return out;
};

function engine(privateKey: Uint8Array = bytes(keyPair().privateKey)): { tunnel: Tunnel; table: PeerTable } {
  const tunnel = new Tunnel({ privateKey, randomBytes: seeded(7), wallClockMs: Date.now });
  return {
    tunnel,
    table: {
      get peerCount() {
        return tunnel.peerCount;
      },
      hasPeer: (key) => tunnel.hasPeer(key),
      forEachPeer: (visit) => tunnel.forEachPeer(visit),
      upsertPeer: (key, settings) => void tunnel.upsertPeer(key, settings, 0),
      removePeer: (key) => void tunnel.removePeer(key),
    },
  };
}

/** A warn callback that records its lines. */
const recorder = () => {
  const lines: string[] = [];
  return Object.assign((line: string) => void lines.push(line), { lines });
};

const peerKeys = (tunnel: Tunnel) =>
  tunnel
    .peers()
    .map((p) => b64(p.publicKey))
    .sort();

describe('address plan', () => {
  test('the node interface holds index 1 of the broker pool, with the pool prefixes', () => {
    const { v4, v6 } = tunnelAddresses(NODE_ADDRESS_INDEX);
    expect(NODE_INTERFACE_ADDRESSES).toEqual([`${v4}/10`, `${v6}/64`]);
    expect(POOL_PREFIXES).toEqual({ v4: '10.64.0.0/10', v6: 'fd64::/64' });
  });
});

describe('backoffDelay', () => {
  const table: Array<[number, number, number, number]> = [
    // [#, attempt, delay with random()=0, delay with random()→1]
    [1, 0, 125, 250],
    [2, 1, 250, 500],
    [3, 3, 1000, 2000],
    [4, 4, 2000, 4000],
    [5, 5, 2500, 5000], // capped at 5 s
    [6, 60, 2500, 5000], // no overflow far out
  ];
  test.each(table)('#%i attempt %i: %i..%i ms', (_n, attempt, low, high) => {
    expect(backoffDelay(attempt, () => 0)).toBe(low);
    expect(backoffDelay(attempt, () => 1)).toBe(high);
  });
});

describe('applyFeedPage', () => {
  const [a, b, c] = [keyPair().publicKey, keyPair().publicKey, keyPair().publicKey];
  const psk = keyPair().publicKey;
  const peer = (key: string, index: number, presharedKey?: string) => ({
    public_key: key,
    ...(presharedKey && { preshared_key: presharedKey }),
    allowed_ips: [`10.64.0.${index}/32`, `fd64::${index}/128`],
  });
  const page = (full: boolean, peers: FeedPage['peers'], removed: string[] = []): FeedPage => ({
    cursor: '1-0',
    full,
    peers,
    removed,
  });

  test('#1 a full page replaces the set; applying it again changes nothing', () => {
    const { tunnel, table } = engine();
    const applied = new Map<string, string>();
    table.upsertPeer(bytes(c), { allowedIps: ['10.64.0.9/32'] }); // a stray (e.g. set over UAPI)
    const warn = recorder();
    expect(applyFeedPage(table, applied, page(true, [peer(a, 2, psk), peer(b, 3)]), warn)).toEqual({
      upserted: 2,
      removed: 1,
      skipped: 0,
    });
    expect(peerKeys(tunnel)).toEqual([a, b].sort());
    const first = tunnel.peers().find((p) => b64(p.publicKey) === a)!;
    expect(first.allowedIps.sort()).toEqual(['10.64.0.2/32', 'fd64::2/128']);
    expect(b64(first.presharedKey!)).toBe(psk);
    expect(applyFeedPage(table, applied, page(true, [peer(a, 2, psk), peer(b, 3)]), warn)).toEqual({
      upserted: 0,
      removed: 0,
      skipped: 0,
    });
    expect(warn.lines).toEqual([]);
  });

  test('#2 an incremental page removes, then adds and updates', () => {
    const { tunnel, table } = engine();
    const applied = new Map<string, string>();
    applyFeedPage(table, applied, page(true, [peer(a, 2), peer(b, 3)]), recorder());
    applyFeedPage(table, applied, page(false, [peer(c, 4), peer(b, 5)], [a]), recorder());
    expect(peerKeys(tunnel)).toEqual([b, c].sort());
    expect(
      tunnel
        .peers()
        .find((p) => b64(p.publicKey) === b)!
        .allowedIps.sort(),
    ).toEqual(['10.64.0.5/32', 'fd64::5/128']);
  });

  test('#3 removing a peer that is not there, or a malformed key, is a no-op', () => {
    const { tunnel, table } = engine();
    const applied = new Map<string, string>();
    applyFeedPage(table, applied, page(true, [peer(a, 2)]), recorder());
    expect(applyFeedPage(table, applied, page(false, [], [b, 'not a key', '']), recorder()).removed).toBe(0);
    expect(peerKeys(tunnel)).toEqual([a]);
  });

  const badEntries: Array<[number, FeedPage['peers'][number], RegExp]> = [
    [4, { public_key: 'short', allowed_ips: [] }, /public key/],
    [5, { public_key: a, preshared_key: 'x', allowed_ips: [] }, /pre-shared key/],
    [6, { public_key: a, allowed_ips: ['10.64.0.2/33'] }, /allowed IP/],
    [7, { public_key: a, allowed_ips: ['example.com/32'] }, /allowed IP/],
    [8, { public_key: a, allowed_ips: Array.from({ length: 65 }, (_, i) => `10.64.1.${i}/32`) }, /too many/],
  ];
  test.each(badEntries)(
    '#%i a bad entry is skipped with a warning, the rest applied',
    (_n, entry, reason) => {
      const { tunnel, table } = engine();
      const warn = recorder();
      const changes = applyFeedPage(table, new Map(), page(true, [entry, peer(b, 3)]), warn);
      expect(changes).toEqual({ upserted: 1, removed: 0, skipped: 1 });
      expect(peerKeys(tunnel)).toEqual([b]);
      expect(warn.lines[0]).toMatch(reason);
    },
  );

  test('#9 random pages never throw, and a full page always leaves exactly its valid peers', () => {
    const keyArb = fc.oneof(
      fc.constantFrom(a, b, c),
      fc.uint8Array({ minLength: 32, maxLength: 32 }).map(b64),
      fc.string(),
    );
    const entryArb = fc.record(
      {
        public_key: keyArb,
        preshared_key: fc.oneof(fc.constant(psk), fc.string()),
        allowed_ips: fc.array(
          fc.oneof(fc.constant('10.64.0.7/32'), fc.constant('fd64::7/128'), fc.string()),
          {
            maxLength: 4,
          },
        ),
      },
      { requiredKeys: ['public_key', 'allowed_ips'] },
    );
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            full: fc.boolean(),
            peers: fc.array(entryArb, { maxLength: 6 }),
            removed: fc.array(keyArb, { maxLength: 4 }),
          }),
          {
            minLength: 1,
            maxLength: 5,
          },
        ),
        (pages) => {
          const { tunnel, table } = engine();
          const applied = new Map<string, string>();
          for (const p of pages) applyFeedPage(table, applied, { cursor: '1-0', ...p }, () => undefined);
          const last = pages[pages.length - 1]!;
          if (last.full) {
            const valid = new Set(
              last.peers
                .filter((e) => /^[A-Za-z0-9+/]{43}=$/.test(e.public_key))
                .filter((e) => e.preshared_key === undefined || e.preshared_key === psk)
                .filter((e) => e.allowed_ips.every((ip) => ip === '10.64.0.7/32' || ip === 'fd64::7/128'))
                .map((e) => e.public_key),
            );
            expect(peerKeys(tunnel)).toEqual([...valid].sort());
          }
          expect([...applied.keys()].sort()).toEqual(peerKeys(tunnel));
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('agent against a real broker', () => {
  let plane: Plane;
  let server: Server;
  let brokerUrl: string;
  let user: Principal;
  const agents: Agent[] = [];

  const listen = (app: Plane['broker']['app'], port = 0) =>
    new Promise<Server>((resolve) => {
      const s = createServer(app);
      s.listen(port, '127.0.0.1', () => resolve(s));
    });
  const closeServer = (s: Server) =>
    new Promise<void>((resolve) => {
      s.closeAllConnections();
      s.close(() => resolve());
    });

  beforeAll(async () => {
    plane = await startPlane();
    server = await listen(plane.broker.app);
    brokerUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    user = await plane.principal('business');
  });
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((agent) => agent.stop()));
  });
  afterAll(async () => {
    await closeServer(server);
    await plane.close();
  });

  let egressCount = 0;
  async function startAgent(
    options: {
      token?: string;
      region?: string;
      privateKey?: Uint8Array;
      url?: string;
      log?: string[];
      client?: (url: string, token: string) => BrokerClient;
      peersPerHeartbeat?: number;
    } = {},
  ) {
    const token =
      options.token ?? (await createNodeToken(plane.broker.ctx, options.region ?? 'eu-west')).token;
    const privateKey = options.privateKey ?? bytes(keyPair().privateKey);
    const { tunnel, table } = engine(privateKey);
    const log = options.log ?? [];
    const agent = new Agent({
      client: (options.client ?? ((url, t) => new BrokerClient(url, t)))(options.url ?? brokerUrl, token),
      registration: {
        region: options.region ?? 'eu-west',
        endpoint: '192.0.2.10:51820',
        publicKey: b64(tunnel.publicKey),
        // Its own egress IP per agent: the broker refuses one a live node holds.
        egressIps: [`192.0.2.${++egressCount}`],
        capacity: 50,
        version: 'test',
      },
      peers: table,
      log: (line) => log.push(line),
      backoff: FAST_BACKOFF,
      feedWaitSeconds: 2,
      ...(options.peersPerHeartbeat !== undefined && { peersPerHeartbeat: options.peersPerHeartbeat }),
    });
    agents.push(agent);
    return { agent, tunnel, token, privateKey, log, started: await agent.start() };
  }

  // A region per test: with the fixture's frozen clock, nodes of earlier tests never turn unhealthy.
  let regions = 0;
  const newRegion = async () => {
    const id = `agent-${++regions}`;
    await upsertRegion(plane.broker.ctx, { id, name: id, country: 'DE', tiers: ['free', 'pro', 'business'] });
    return id;
  };

  const createSession = async (region: string) => {
    const client = keyPair();
    const res = await plane.create(user, { region, public_key: client.publicKey });
    expect(res.status).toBe(201);
    return { id: res.body.id as string, publicKey: client.publicKey, body: res.body };
  };
  const regionRow = async (id: string) =>
    (await request(plane.broker.app).get('/v1/regions')).body.regions.find(
      (r: { id: string }) => r.id === id,
    );

  test('register and heartbeat make the region active', async () => {
    const region = await newRegion();
    expect((await regionRow(region)).status).toBe('down');
    const { agent, started } = await startAgent({ region });
    expect(started.ok).toBe(true);
    expect(agent.nodeId).toMatch(/^node_/);
    await eventually(
      'a heartbeat',
      async () => (await plane.broker.redis.hget(keys.node(agent.nodeId!), 'load')) !== null,
    );
    expect(await regionRow(region)).toMatchObject({ status: 'active', nodes: 1 });
    const node = await plane.broker.redis.hgetall(keys.node(agent.nodeId!));
    expect(node).toMatchObject({
      region,
      endpoint: '192.0.2.10:51820',
      version: 'test',
      draining: '0',
    });
  });

  test('sessions created and deleted through the API come and go as engine peers', async () => {
    const region = await newRegion();
    const { tunnel, started } = await startAgent({ region });
    expect(started.ok).toBe(true);
    const first = await createSession(region);
    const t0 = Date.now();
    await eventually('the new peer', () => peerKeys(tunnel).includes(first.publicKey));
    const addedMs = Date.now() - t0;
    const peer = tunnel.peers().find((p) => b64(p.publicKey) === first.publicKey)!;
    expect(peer.allowedIps.sort()).toEqual([...first.body.interface.addresses].sort());
    expect(peer.presharedKey && b64(peer.presharedKey)).toBe(first.body.peer.preshared_key);

    const t1 = Date.now();
    expect((await plane.as(user, 'delete', `/v1/sessions/${first.id}`)).status).toBe(204);
    await eventually('the peer removed', () => !peerKeys(tunnel).includes(first.publicKey));
    process.stderr.write(`agent.test: feed latency add ${addedMs} ms, remove ${Date.now() - t1} ms\n`);
  });

  test('a restarted agent (same key, empty engine) rebuilds its peer set from the feed', async () => {
    const region = await newRegion();
    const first = await startAgent({ region });
    const sessions = [await createSession(region), await createSession(region)];
    await eventually('both peers', () => sessions.every((s) => peerKeys(first.tunnel).includes(s.publicKey)));
    await first.agent.stop();

    const again = await startAgent({
      region,
      token: first.token,
      privateKey: first.privateKey,
    });
    expect(again.agent.nodeId).toBe(first.agent.nodeId);
    await eventually('the rebuilt set', () =>
      sessions.every((s) => peerKeys(again.tunnel).includes(s.publicKey)),
    );
    expect(peerKeys(again.tunnel)).toEqual(peerKeys(first.tunnel));
  });

  test('Redis killed and restarted: peers are kept meanwhile, then the feed resumes', async () => {
    const region = await newRegion();
    const { tunnel, log } = await startAgent({ region });
    const before = await createSession(region);
    await eventually('the peer', () => peerKeys(tunnel).includes(before.publicKey));
    await plane.broker.server.kill();
    await eventually('the outage noticed', () => log.some((line) => /retrying with backoff/.test(line)));
    expect(peerKeys(tunnel)).toContain(before.publicKey);
    await plane.broker.server.restart();
    await eventually(
      'broker ready',
      async () => (await request(plane.broker.app).get('/v1/ready')).status === 200,
    );
    const after = await createSession(region);
    await eventually('the new peer after the outage', () => peerKeys(tunnel).includes(after.publicKey));
    expect(peerKeys(tunnel)).toContain(before.publicKey);
    await eventually('recovery logged', () => log.some((line) => /reachable again/.test(line)));
  });

  test('the broker restarted on the same port: the agent reconnects and follows the feed again', async () => {
    const port = (server.address() as AddressInfo).port;
    const region = await newRegion();
    const { tunnel, log } = await startAgent({ region });
    await closeServer(server);
    await eventually('the outage noticed', () => log.some((line) => /retrying with backoff/.test(line)));
    server = await listen(await plane.broker.another(), port);
    const session = await createSession(region);
    await eventually('the peer after the broker restart', () => peerKeys(tunnel).includes(session.publicKey));
  });

  test('a broker that forgot the node (404) gets it registered again, and the full set re-read', async () => {
    const region = await newRegion();
    const { agent, tunnel, log } = await startAgent({ region });
    const session = await createSession(region);
    await eventually('the peer', () => peerKeys(tunnel).includes(session.publicKey));
    await plane.broker.redis.del(keys.node(agent.nodeId!));
    await eventually(
      'registered again',
      async () => (await plane.broker.redis.hget(keys.node(agent.nodeId!), 'id')) !== null,
    );
    expect(log.some((line) => /→ 404.*registering again$/.test(line))).toBe(true);
    const next = await createSession(region);
    await eventually('the feed followed after re-registering', () =>
      peerKeys(tunnel).includes(next.publicKey),
    );
    expect(peerKeys(tunnel)).toContain(session.publicKey);
  });

  test('heartbeats report every peer after a registration, then only those that moved, in several bodies', async () => {
    const region = await newRegion();
    const bodies: string[][] = [];
    const recording = (url: string, token: string) =>
      Object.assign(new BrokerClient(url, token), {
        heartbeat(this: BrokerClient, ...args: Parameters<BrokerClient['heartbeat']>) {
          bodies.push(args[1].peers.map((peer) => peer.publicKey));
          return BrokerClient.prototype.heartbeat.apply(this, args);
        },
      });
    const { agent, tunnel } = await startAgent({ region, client: recording, peersPerHeartbeat: 2 });
    const sessions = await Promise.all([1, 2, 3, 4, 5].map(() => createSession(region)));
    await eventually('five peers', () => tunnel.peerCount === 5);
    // The broker forgets the node: the beat after registering again carries all five, two per body.
    await plane.broker.redis.del(keys.node(agent.nodeId!));
    bodies.length = 0;
    await agent.drain();
    await eventually('every peer reported', () => bodies.flat().length >= 5);
    expect(bodies.filter((body) => body.length > 0).map((body) => body.length)).toEqual([2, 2, 1]);
    expect(bodies.flat().sort()).toEqual(sessions.map((s) => s.publicKey).sort());
    // Nothing moved since: the next beat is health alone.
    bodies.length = 0;
    await agent.drain();
    expect(bodies).toEqual([[]]);
  });

  test('a bad token is fatal at once, with the broker’s one-line reason', async () => {
    const log: string[] = [];
    const { started } = await startAgent({ token: 'tbn_' + 'x'.repeat(38), log });
    expect(started).toEqual({ ok: false, failure: expect.objectContaining({ kind: 'unauthorized' }) });
    expect(log).toHaveLength(1);
    expect(log[0]).toMatch(/^POST \/v1\/nodes\/register → 401/);
    expect(log[0]).not.toMatch(/\n/);
  });

  test('a token for another region is refused (400) and fatal', async () => {
    const token = (await createNodeToken(plane.broker.ctx, 'eu-west')).token;
    const { started } = await startAgent({ token, region: 'us-east' });
    expect(started).toEqual({ ok: false, failure: expect.objectContaining({ kind: 'rejected' }) });
  });

  test('a broker URL fetch refuses outright (a blocked port) is fatal at once, in one line', async () => {
    const log: string[] = [];
    const { started } = await startAgent({ url: 'http://127.0.0.1:1', log });
    expect(started).toEqual({ ok: false, failure: expect.objectContaining({ kind: 'refused_url' }) });
    expect(log).toEqual(['--broker http://127.0.0.1:1: fetch refuses this URL (bad port)']);
  });

  test('a broker that cannot be reached is retried until it comes', async () => {
    const port = (server.address() as AddressInfo).port;
    await closeServer(server);
    const log: string[] = [];
    const starting = startAgent({ region: await newRegion(), log });
    await eventually('retries', () => log.some((line) => /register: .*retrying with backoff/.test(line)));
    server = await listen(plane.broker.app, port);
    expect((await starting).started.ok).toBe(true);
  });

  test('draining: heartbeat says so, the broker places no new session here, existing peers stay', async () => {
    const region = await newRegion();
    const { agent, tunnel } = await startAgent({ region });
    const user2 = await plane.principal('business');
    const res = await plane.create(user2, { region, public_key: keyPair().publicKey });
    expect(res.status).toBe(201);
    await eventually('the peer', () => tunnel.peers().length === 1);
    await agent.drain();
    expect(await plane.broker.redis.hget(keys.node(agent.nodeId!), 'draining')).toBe('1');
    const refused = await plane.create(user2, { region, public_key: keyPair().publicKey });
    expect(refused.status).toBe(503);
    expect(refused.body.error).toBe('no_capacity');
    expect(tunnel.peers()).toHaveLength(1);
  });
});

// `run` makes its requests on the fetch thread: every case holds there as on the calling thread.
describe.each([
  ['on the calling thread', false],
  ['on the fetch thread', true],
])('BrokerClient %s: every answer is a typed outcome', (_where, threaded) => {
  let thread: FetchThread | undefined;
  beforeAll(() => {
    thread = threaded ? new FetchThread() : undefined;
  });
  afterAll(() => thread?.close());
  const brokerClient = (base: string) => new BrokerClient(base, 'tbn_x', thread?.exchange);

  let server: Server;
  let url: string;
  let answer: { status: number; body: string; headers?: Record<string, string> } = {
    status: 200,
    body: '{}',
  };
  beforeAll(async () => {
    server = createServer((_req, res) => res.writeHead(answer.status, answer.headers ?? {}).end(answer.body));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const register = () =>
    brokerClient(url).register({
      region: 'r',
      endpoint: '192.0.2.1:1',
      publicKey: keyPair().publicKey,
      egressIps: [],
      capacity: 1,
      version: '',
    });

  const table: Array<[number, typeof answer, object]> = [
    [1, { status: 200, body: '{"node_id":"node_a","heartbeat_ms":10000}' }, { ok: true }],
    [2, { status: 200, body: 'not json' }, { ok: false, kind: 'unavailable' }],
    [3, { status: 200, body: '{"node_id":7}' }, { ok: false, kind: 'unavailable' }],
    [
      4,
      { status: 401, body: '{"error":"unauthorized","message":"Invalid\\n token."}' },
      { kind: 'unauthorized' },
    ],
    [5, { status: 404, body: '' }, { ok: false, kind: 'unknown_node' }],
    [6, { status: 400, body: '{"message":"Unknown region."}' }, { kind: 'rejected' }],
    [
      7,
      { status: 503, body: '', headers: { 'retry-after': '3' } },
      { kind: 'unavailable', retryAfterMs: 3000 },
    ],
    [8, { status: 429, body: '{}' }, { ok: false, kind: 'unavailable' }],
    [9, { status: 500, body: '<html>' }, { ok: false, kind: 'unavailable' }],
  ];
  test.each(table)('#%i', async (_n, given, expected) => {
    answer = given;
    expect(await register()).toMatchObject(expected);
  });

  test('#10 the broker’s message is echoed on one line', async () => {
    answer = table[3]![1];
    const result = await register();
    expect(!result.ok && result.message).toBe('POST /v1/nodes/register → 401: Invalid token.');
  });

  test('#11 an unreachable broker is unavailable, not an exception', async () => {
    const port = await freePort();
    const result = await brokerClient(`http://127.0.0.1:${port}`).peers('node_a', '');
    expect(result).toMatchObject({
      ok: false,
      kind: 'unavailable',
      message: expect.stringMatching(/ECONNREFUSED/),
    });
  });

  // A URL fetch will never request is the operator's to fix; anything the network may yet change (a
  // refused connection, a name that does not resolve now) is retried.
  const urls: Array<[number, string, object]> = [
    [
      1,
      'http://127.0.0.1:1',
      { kind: 'refused_url', message: '--broker http://127.0.0.1:1: fetch refuses this URL (bad port)' },
    ],
    [
      2,
      'https://127.0.0.1:6000/api',
      { kind: 'refused_url', message: expect.stringMatching(/\(bad port\)$/) },
    ],
    [3, 'ftp://127.0.0.1', { kind: 'refused_url', message: expect.stringMatching(/\(unknown scheme\)$/) }],
    [
      4,
      'http://user:secret@127.0.0.1:8080',
      { kind: 'refused_url', message: expect.not.stringContaining('secret') },
    ],
    [
      5,
      'http://127.0.0.1:99999',
      { kind: 'refused_url', message: expect.stringMatching(/not a URL fetch can request$/) },
    ],
    [6, 'http://127.0.0.1:2', { kind: 'unavailable' }], // nobody listens: an outage, retried
  ];
  test.each(urls)('#%i %s', async (_n, base, expected) => {
    const client = brokerClient(base);
    expect(await client.peers('node_a', '', AbortSignal.timeout(5000))).toMatchObject({
      ok: false,
      ...expected,
    });
  });

  test('#12 random statuses and bodies never throw', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 200, max: 599 }),
        fc.oneof(
          fc.string(),
          fc.json(),
          fc.constant('{"cursor":"1-0","full":true,"peers":[{}],"removed":[]}'),
        ),
        async (status, body) => {
          answer = { status: status === 204 || status === 205 || status === 304 ? 200 : status, body };
          const result = await brokerClient(url).peers('node_a', '', undefined, 0);
          expect(typeof result.ok).toBe('boolean');
        },
      ),
      { numRuns: 100 },
    );
  });

  test('#13 a kept-alive connection the broker closes as the next heartbeat goes out: tried once more, on a new one', async () => {
    // Each connection answers its first request (keep-alive) and is closed, unanswered, at its second:
    // what a broker's idle timeout does to a node whose event loop stalled past it.
    let requests = 0;
    const sockets: Socket[] = [];
    const broker = createNetServer((socket) => {
      sockets.push(socket);
      let answered = 0;
      let received = '';
      socket.on('data', (chunk) => {
        // Answer only a whole request (headers and body): an early answer makes undici drop the connection.
        received += chunk.toString();
        const headerEnd = received.indexOf('\r\n\r\n');
        const length = Number(/content-length: *(\d+)/i.exec(received)?.[1] ?? 0);
        if (headerEnd < 0 || received.length < headerEnd + 4 + length) return;
        received = '';
        requests++;
        if (answered++ > 0) return void socket.destroy();
        const body = '{"heartbeat_ms":1000}';
        socket.write(
          'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n' +
            `Keep-Alive: timeout=60\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
        );
      });
    });
    await new Promise<void>((resolve) => broker.listen(0, '127.0.0.1', resolve));
    try {
      const client = brokerClient(`http://127.0.0.1:${(broker.address() as AddressInfo).port}`);
      const report = { load: 0, draining: false, peers: [] };
      expect(await client.heartbeat('node_a', report)).toEqual({ ok: true, value: { heartbeat_ms: 1000 } });
      // As between real heartbeats, the connection is back in fetch's pool before the next one.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await client.heartbeat('node_a', report)).toEqual({ ok: true, value: { heartbeat_ms: 1000 } });
      // The second heartbeat went out twice: on the old connection (dropped), then on a new one.
      expect([requests, sockets.length]).toEqual([3, 2]);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    }
  });
});

describe('node key state file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tbt-agent-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('#1 made on first start (0600 in a 0700 dir), the same key ever after', async () => {
    const file = join(dir, 'state', 'private.key');
    const key = await loadOrCreateKey(file);
    expect(key).toHaveLength(32);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'state')).mode & 0o777).toBe(0o700);
    expect(await loadOrCreateKey(file)).toEqual(key);
  });

  test('#2 two starts at once agree on one key', async () => {
    const file = join(dir, 'race', 'private.key');
    const [a, b] = await Promise.all([loadOrCreateKey(file), loadOrCreateKey(file)]);
    expect(a).toEqual(b);
  });

  test('#3 a file that is not a key is refused, not replaced', async () => {
    const file = join(dir, 'bad.key');
    writeFileSync(file, 'hello\n');
    await expect(loadOrCreateKey(file)).rejects.toThrow(/does not hold a base64 WireGuard private key/);
    expect(readFileSync(file, 'utf8')).toBe('hello\n');
  });
});

describe('checkRunArguments', () => {
  const base = {
    broker: 'https://broker.example/',
    token: 'tbn_abc',
    region: 'eu-west',
    listen: '[::]:51820',
    endpoint: '203.0.113.7:51820',
  };
  test('#1 defaults: interface tbn0, key under /var/lib/tunnelbyte-node/tbn0, egress IP from the endpoint', () => {
    expect(checkRunArguments(base)).toEqual({
      ok: true,
      value: expect.objectContaining({
        interfaceName: 'tbn0',
        privateKeyFile: '/var/lib/tunnelbyte-node/tbn0/private.key',
        egressIps: ['203.0.113.7'],
        capacity: 1000,
        nat: false,
        drainTimeoutMs: 30_000,
        listen: { host: '::', port: 51820 },
        batchedUdp: true,
      }),
    });
  });
  test('#2 --state-dir, --private-key-file, --egress-ip lists, a host-name endpoint', () => {
    const value = (args: Partial<typeof base> & Record<string, unknown>) => {
      const checked = checkRunArguments({ ...base, ...args });
      if (!checked.ok) throw new Error(checked.message);
      return checked.value;
    };
    expect(value({ stateDir: '/tmp/s', interface: 'wg1' }).privateKeyFile).toBe('/tmp/s/private.key');
    expect(value({ privateKeyFile: '/k' }).privateKeyFile).toBe('/k');
    expect(value({ egressIp: ['198.51.100.1,2001:db8::1', '198.51.100.2'] }).egressIps).toEqual([
      '198.51.100.1',
      '2001:db8::1',
      '198.51.100.2',
    ]);
    expect(value({ endpoint: 'exit1.example.com:51820' }).egressIps).toEqual([]);
  });
  // [n, arguments, message]: each bad value one line, checked before anything starts.
  const refusals: Array<[number, Record<string, unknown>, string | RegExp]> = [
    [1, { broker: 'ftp://x' }, /^--broker must be an http\(s\) URL/],
    [2, { broker: 'not a url' }, /^--broker must be an http\(s\) URL/],
    [
      3,
      { broker: 'https://u:pw@broker.example' },
      '--broker must not hold a user or password: the node signs in with its token',
    ],
    [
      4,
      { broker: 'https://broker.example/?a=1' },
      "--broker must be the broker's base URL, without ?query or #fragment",
    ],
    [
      5,
      { broker: 'https://broker.example/#x' },
      "--broker must be the broker's base URL, without ?query or #fragment",
    ],
    [6, { region: 'EU West' }, "--region 'EU West' is not a region id"],
    [7, { listen: '0.0.0.0:65536' }, /^--listen: /],
    [8, { endpoint: '203.0.113.7:0' }, /^--endpoint must be PUBLIC_HOST:PORT/],
    [9, { endpoint: '203.0.113.7:65536' }, /^--endpoint must be PUBLIC_HOST:PORT/],
    [10, { capacity: '1e3' }, '--capacity must be a whole number of sessions from 1 to 4000000'],
    [11, { capacity: '' }, '--capacity must be a whole number of sessions from 1 to 4000000'],
    [12, { capacity: '4000001' }, '--capacity must be a whole number of sessions from 1 to 4000000'],
    [13, { drainTimeout: '' }, '--drain-timeout must be a number of seconds from 0 to 86400'],
    [14, { drainTimeout: '-1' }, '--drain-timeout must be a number of seconds from 0 to 86400'],
    [15, { drainTimeout: '1e10' }, '--drain-timeout must be a number of seconds from 0 to 86400'],
    [16, { drainTimeout: '86401' }, '--drain-timeout must be a number of seconds from 0 to 86400'],
    [17, { egress: 'kernel' }, /^--egress must be one of tun, netstack/],
    [18, { interface: 'a/b' }, /^invalid interface name 'a\/b'/],
    [19, { metrics: '[::1]:x' }, /^--metrics: /],
    [20, { threads: '65' }, "--threads (TB_THREADS) must be a whole number from 1 to 64, not '65'"],
    [21, { threads: '2.5' }, "--threads (TB_THREADS) must be a whole number from 1 to 64, not '2.5'"],
    // A password in a URL that fails an earlier check is not echoed either.
    [
      22,
      { broker: 'http://u:hunter2@127.0.0.1:99999/' },
      '--broker must be an http(s) URL (http[s]://host[:port])',
    ],
    [23, { broker: 'ftp://u:hunter2@127.0.0.1/' }, '--broker must be an http(s) URL, not ftp:'],
  ];
  test.each(refusals)('#%i refused: %j', (_n, args, message) => {
    const checked = checkRunArguments({ ...base, ...args });
    expect(checked.ok).toBe(false);
    if (!checked.ok) expect(checked.message).toMatch(message);
  });
  test('a drain timeout of 0 or a fraction of a second is taken', () => {
    expect(checkRunArguments({ ...base, drainTimeout: '0' })).toMatchObject({ value: { drainTimeoutMs: 0 } });
    expect(checkRunArguments({ ...base, drainTimeout: '2.5' })).toMatchObject({
      value: { drainTimeoutMs: 2500 },
    });
  });
  test('#3 the token is never echoed in a message', () => {
    const checked = checkRunArguments({ ...base, token: 'tb_secretsecret' });
    expect(checked).toEqual({ ok: false, message: expect.not.stringContaining('secret') });
  });
});
