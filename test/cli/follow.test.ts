// `tunnelbyte follow`: the compiled bin following a session of a real broker (a real redis-server, its
// clock in the test's hands so nodes can be lost and sessions expire) through a real interface: Debian
// wireguard-go in a namespace of its own, whose UAPI socket the bin's `wg` reaches from here. The node is
// registered over HTTP as tunnelbyte-node does it; its endpoint is a documentation address the namespace
// has no route to, so nothing is sent anywhere. (`connect --up --follow` and a real move between two real
// nodes: test/nodes/follow-netns.test.ts.)
import { symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createOperatorKey } from '../../src/broker/admin.js';
import { generateKeyPair } from '../../src/cli/wgkeys.js';
import { startBroker, type TestBroker } from '../broker/helpers.js';
import { netnsHarness, type ProcessHandle, type WireguardGo } from '../nodes/netns.js';
import { cli, cliProgram, listedSessions, listen, machine, type Listening, type Machine } from './harness.js';

const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const STEP_MS = 30_000;
/** Past 3 missed heartbeats at the default interval (10 s): the node is lost. */
const LOST_AFTER_MS = 40_000;

const harness = netnsHarness();
let broker: TestBroker;
let http: Listening;
let admin: string;
let now = Date.now();
let nodes = 0;

interface Node {
  id: string;
  token: string;
  publicKey: string;
  endpoint: string;
}

async function call(token: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${http.url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json().catch(() => ({}))) as Record<string, unknown> };
}

const heartbeat = async (node: Node) =>
  expect(
    (
      await call(node.token, 'POST', `/v1/nodes/${node.id}/heartbeat`, {
        load: 0,
        draining: false,
        peers: [],
      })
    ).status,
  ).toBe(200);

/** A node in region `follow`, registered and healthy at the broker's clock. */
async function registerNode(): Promise<Node> {
  const n = ++nodes;
  const enrolled = await call(admin, 'POST', '/v1/admin/node-tokens', { region: 'follow' });
  const token = enrolled.body.token as string;
  const publicKey = generateKeyPair().publicKey;
  const endpoint = `192.0.2.${n}:51820`;
  const registered = await call(token, 'POST', '/v1/nodes/register', {
    region: 'follow',
    endpoint,
    public_key: publicKey,
    egress_ips: [`198.51.100.${n}`],
    capacity: 100,
    version: 'test',
  });
  expect(registered.status).toBe(200);
  const node = { id: registered.body.node_id as string, token, publicKey, endpoint };
  await heartbeat(node);
  return node;
}

let node: Node;

beforeAll(async () => {
  broker = await startBroker({
    env: {
      PUBLIC_BURST: '100000',
      TB_TIERS: JSON.stringify({ free: { requestsPerMinute: 100000, concurrentSessions: 100 } }),
    },
    clock: () => now,
  });
  http = await listen(broker.app);
  admin = await createOperatorKey(broker.ctx, ['admin:read', 'admin:write'], 'follow-tests');
  expect(
    (
      await call(admin, 'POST', '/v1/admin/regions', {
        id: 'follow',
        name: 'Follow',
        country: 'DE',
        tiers: ['free'],
      })
    ).status,
  ).toBe(201);
  node = await registerNode();
}, STEP_MS);

afterAll(async () => {
  await http?.close();
  await broker?.close();
});

/** A signed-up machine that can run wg. */
async function signedUp(): Promise<Machine> {
  const m = machine(http.url, { PATH: SYSTEM_PATH });
  expect((await cli(['signup'], m.env)).code).toBe(0);
  return m;
}

interface Tunnel {
  id: string;
  wg: WireguardGo;
}

/**
 * A session made by `connect` and its config's peer on a wireguard-go interface, as `wg-quick up` would
 * set it (the peer's key and settings; no addresses, no routes: nothing is meant to cross it here).
 */
async function tunnel(m: Machine, args: string[] = [], peerKey?: string): Promise<Tunnel> {
  const made = await cli(['connect', 'follow', '--json', ...args], m.env);
  expect(made.code).toBe(0);
  const session = JSON.parse(made.stdout) as {
    id: string;
    node: { public_key: string };
    peer: { preshared_key?: string };
  };
  const ns = await harness.namespace('client');
  const wg = await harness.wireguardGo(ns, { logLevel: 'error' });
  const keys = generateKeyPair();
  await wg.setconf(
    [
      '[Interface]',
      `PrivateKey = ${keys.privateKey}`,
      '[Peer]',
      `PublicKey = ${peerKey ?? session.node.public_key}`,
      ...(session.peer.preshared_key ? [`PresharedKey = ${session.peer.preshared_key}`] : []),
      'AllowedIPs = 0.0.0.0/0, ::/0',
      'PersistentKeepalive = 25',
      '',
    ].join('\n'),
  );
  return { id: session.id, wg };
}

/** `tunnelbyte follow [ID] --interface IF --interval 1 ARGS` as a process (output streamed, signals real). */
function follow(m: Machine, id: string | undefined, wg: WireguardGo, args: string[] = []): ProcessHandle {
  const argv = [...(id ? [id] : []), '--interface', wg.interfaceName, '--interval', '1', ...args];
  return harness.spawn([process.execPath, cliProgram(), 'follow', ...argv], m.env);
}

/** The owner closes the session from elsewhere: the follower says so and exits 0. */
async function disconnectedElsewhere(m: Machine, id: string, run: ProcessHandle): Promise<void> {
  expect((await cli(['disconnect', id], m.env)).code).toBe(0);
  expect(await run.exited).toBe(0);
}

const status = async (m: Machine, id: string) =>
  (JSON.parse((await cli(['status', id, '--json'], m.env)).stdout) as { status: string }).status;

/**
 * A proxy in front of the broker: `intercept` answers a request itself (true) or lets it through (false).
 */
function brokerProxy(intercept: (req: IncomingMessage, res: ServerResponse) => boolean): Promise<Listening> {
  return listen(async (req, res) => {
    if (intercept(req, res)) return;
    const headers = ['authorization', 'x-machine-fingerprint'].flatMap((h) =>
      typeof req.headers[h] === 'string' ? [[h, req.headers[h]] as [string, string]] : [],
    );
    const upstream = await fetch(`${http.url}${req.url}`, { method: req.method, headers });
    res.writeHead(upstream.status, { 'content-type': 'application/json' });
    res.end(Buffer.from(await upstream.arrayBuffer()));
  });
}

describe('follow', () => {
  test(
    '1. follows the session through the interface; closed by its owner elsewhere → says so, exit 0, the interface left as it is',
    async () => {
      const m = await signedUp();
      const { id, wg } = await tunnel(m);
      const run = follow(m, id, wg);
      await run.waitFor(
        new RegExp(
          `Z following session ${id} through ${wg.interfaceName}, node ${node.id} \\(${node.endpoint}\\); Ctrl-C stops following`,
        ),
      );
      await run.waitFor('session pending: waiting for the first handshake');
      await disconnectedElsewhere(m, id, run);
      expect(run.output()).toMatch(new RegExp(`\\dZ session ${id} closed\n$`));
      // Not ours to take down: the peer is still there.
      expect((await wg.dump()).peers.map((p) => p.publicKey)).toEqual([node.publicKey]);
    },
    STEP_MS,
  );

  test(
    '2. --json: one JSON object per event; the session read from state when no id is given',
    async () => {
      const m = await signedUp();
      const { id, wg } = await tunnel(m);
      const run = follow(m, undefined, wg, ['--json']);
      await run.waitFor('"event":"status"');
      await disconnectedElsewhere(m, id, run);
      const events = run
        .output()
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(events.map((e) => e.event)).toEqual(['following', 'status', 'ended']);
      expect(events[0]).toMatchObject({ session: id, interface: wg.interfaceName, node: { id: node.id } });
      expect(events[1]).toMatchObject({ session: id, status: 'pending' });
      expect(events[2]).toMatchObject({ session: id, message: `session ${id} closed` });
    },
    STEP_MS,
  );

  test(
    '3. its node lost: says what the broker does and what to do; still node_lost 12 reads later, no node had room → exit 5',
    async () => {
      const m = await signedUp();
      const { id, wg } = await tunnel(m);
      const run = follow(m, id, wg);
      await run.waitFor('session pending');
      now += LOST_AFTER_MS;
      await run.waitFor(
        `node ${node.id} is lost: the broker moves the session to another node of follow with room; ` +
          'if none has, it stays node_lost: then run `tunnelbyte connect` again',
      );
      expect(await status(m, id)).toBe('node_lost');
      expect(await run.exited).toBe(5);
      expect(run.output()).toMatch(
        new RegExp(
          `tunnelbyte: session ${id} is still node_lost: no other node in follow had room for it; run \`tunnelbyte connect\` again\n$`,
        ),
      );
      expect((await wg.dump()).peers.map((p) => p.publicKey)).toEqual([node.publicKey]);
      expect((await cli(['disconnect', id], m.env)).code).toBe(0);
      await heartbeat(node); // healthy again for the next tests
    },
    STEP_MS,
  );

  test(
    '4. the session expires → says so, exit 1',
    async () => {
      const m = await signedUp();
      const { id, wg } = await tunnel(m, ['--ttl', '60']);
      const run = follow(m, id, wg);
      await run.waitFor('session pending');
      now += 61_000;
      await heartbeat(node);
      expect(await run.exited).toBe(1);
      expect(run.output()).toMatch(
        new RegExp(`tunnelbyte: session ${id} expired at \\S+; run \`tunnelbyte connect\` for a new one\\n$`),
      );
    },
    STEP_MS,
  );

  test(
    '5. an interface whose peer is another node (the session moved while nobody followed): swapped at once, allowed IPs, keepalive and preshared key kept',
    async () => {
      const m = await signedUp();
      const stale = generateKeyPair().publicKey;
      const { id, wg } = await tunnel(m, ['--psk'], stale);
      const before = (await wg.dump()).peers[0]!;
      expect(before.presharedKey).not.toBeNull();
      const run = follow(m, id, wg);
      await run.waitFor(
        `session moved to node ${node.id} (${node.endpoint}); ${wg.interfaceName} now goes through it`,
      );
      const [after, ...others] = (await wg.dump()).peers;
      expect(others).toEqual([]);
      expect(after).toMatchObject({
        publicKey: node.publicKey,
        endpoint: node.endpoint,
        presharedKey: before.presharedKey,
        allowedIps: before.allowedIps,
        persistentKeepalive: 25,
      });
      expect(run.output()).not.toContain(before.presharedKey!);
      await disconnectedElsewhere(m, id, run);
    },
    STEP_MS,
  );

  test(
    '6. Ctrl-C stops following and leaves the tunnel and the session (exit 130); SIGTERM the same (exit 143)',
    async () => {
      const m = await signedUp();
      const { id, wg } = await tunnel(m);
      for (const [signal, code, word] of [
        ['SIGINT', 130, 'interrupted'],
        ['SIGTERM', 143, 'terminated'],
      ] as const) {
        const run = follow(m, id, wg);
        await run.waitFor('session pending');
        process.kill(run.pid, signal);
        expect(await run.exited).toBe(code);
        expect(run.output()).toMatch(
          new RegExp(
            `tunnelbyte: ${word}; stopped following; ${wg.interfaceName} and session ${id} are left as they are\\n$`,
          ),
        );
        expect(await status(m, id)).toBe('pending');
        expect((await wg.dump()).peers.map((p) => p.publicKey)).toEqual([node.publicKey]);
      }
      expect((await cli(['disconnect', id], m.env)).code).toBe(0);
    },
    STEP_MS,
  );

  test(
    '7. broker errors are retried with backoff and said once each; it goes on when the broker answers again',
    async () => {
      const m = await signedUp();
      const { id, wg } = await tunnel(m);
      // A proxy in front of the broker that answers 503 to the session reads after the first two.
      let reads = 0;
      const proxy = await brokerProxy((req, res) => {
        if (req.method !== 'GET' || req.url !== `/v1/sessions/${id}` || ++reads < 3 || reads > 4)
          return false;
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
        res.end(JSON.stringify({ error: 'unavailable', message: 'The store is unavailable.', code: 503 }));
        return true;
      });
      try {
        const run = follow({ ...m, env: { ...m.env, TB_API: proxy.url } }, id, wg);
        await run.waitFor('the broker answers again', STEP_MS);
        const output = run.output();
        expect(output).toContain(
          'tunnelbyte: reading the session failed: unavailable: The store is unavailable; retrying in 2 s\n',
        );
        expect(output).toContain('retrying in 4 s\n');
        expect(output).not.toMatch(/\n\s+at /); // no stack trace
        await disconnectedElsewhere(m, id, run);
      } finally {
        await proxy.close();
      }
    },
    STEP_MS,
  );
  test(
    '8. the first read fails (the connection dropped, as when wg-quick up just changed the routes) → retried, then followed',
    async () => {
      const m = await signedUp();
      const { id, wg } = await tunnel(m);
      let reads = 0;
      const proxy = await brokerProxy((req) => {
        if (req.method !== 'GET' || req.url !== `/v1/sessions/${id}` || ++reads > 1) return false;
        req.socket.destroy();
        return true;
      });
      try {
        const run = follow({ ...m, env: { ...m.env, TB_API: proxy.url } }, id, wg);
        await run.waitFor(`following session ${id} through ${wg.interfaceName}`, STEP_MS);
        const output = run.output();
        expect(output).toMatch(
          /^tunnelbyte: reading the session failed: cannot reach the broker at http:\/\/127\.0\.0\.1:\d+: [^\n]+; retrying in 2 s\n/,
        );
        expect(output).not.toMatch(/\n\s+at /); // no stack trace
        await disconnectedElsewhere(m, id, run);
      } finally {
        await proxy.close();
      }
    },
    STEP_MS,
  );
});

describe('follow: refused with one line', () => {
  test('1. an unknown session → exit 1, not found', async () => {
    const m = await signedUp();
    const res = await cli(['follow', 'ses_doesnotexist', '--interface', 'wg0'], m.env);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/^tunnelbyte: session ses_doesnotexist not found/);
  });

  test('2. no interface given and none of the session up here → exit 2; no wg on PATH → exit 1', async () => {
    const m = await signedUp();
    const { id } = await tunnel(m);
    const none = await cli(['follow', id], m.env);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(
      /^tunnelbyte: no interface of session ses_\w+ is up here: give --interface NAME/,
    );
    const noWg = await cli(['follow', id, '--interface', 'wg0'], { ...m.env, PATH: '' });
    expect([noWg.code, noWg.stderr]).toEqual([
      1,
      'tunnelbyte: wg not found: install wireguard-tools (it has wg and wg-quick)\n',
    ]);
    expect((await cli(['disconnect', id], m.env)).code).toBe(0);
  });

  test('3. an interface that is not there, or has no peer for the session → exit 1 naming it', async () => {
    const m = await signedUp();
    const { id, wg } = await tunnel(m);
    const missing = await cli(['follow', id, '--interface', 'tbnosuchif'], m.env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^tunnelbyte: wg show tbnosuchif failed: .+\n$/);
    // Two peers, neither of them the session's node: which one to swap cannot be told.
    const others = [generateKeyPair().publicKey, generateKeyPair().publicKey];
    await wg.set([
      ...['peer', node.publicKey, 'remove'],
      ...['peer', others[0]!, 'allowed-ips', '10.9.9.8/32', 'peer', others[1]!, 'allowed-ips', '10.9.9.9/32'],
    ]);
    const two = await cli(['follow', id, '--interface', wg.interfaceName], m.env);
    expect(two.code).toBe(1);
    expect(two.stderr).toContain(`interface ${wg.interfaceName} has no peer for the session's node`);
    expect((await cli(['disconnect', id], m.env)).code).toBe(0);
  });

  test('4. connect --follow without --up, or --interval without --follow → exit 2; --up --follow without wg → exit 1, no session made', async () => {
    const m = await signedUp();
    const res = await cli(['connect', 'follow', '--follow'], m.env);
    expect([res.code, res.stderr]).toEqual([
      2,
      'tunnelbyte: --follow needs --up (a tunnel you brought up yourself: `tunnelbyte follow`)\n',
    ]);
    const interval = await cli(['connect', 'follow', '--interval', '5'], m.env);
    expect([interval.code, interval.stderr]).toEqual([
      2,
      'tunnelbyte: --interval needs --follow (it is the pace of the following)\n',
    ]);
    const dir = harness.tempDir();
    symlinkSync('/usr/bin/wg-quick', `${dir}/wg-quick`);
    const noWg = await cli(['connect', 'follow', '--up', '--follow', '--no-dns'], { ...m.env, PATH: dir });
    expect([noWg.code, noWg.stderr]).toEqual([
      1,
      'tunnelbyte: wg not found: install wireguard-tools (it has wg and wg-quick)\n',
    ]);
    expect(await listedSessions(m)).toEqual([]);
  });
});

describe('disconnect of a tunnel brought up here', () => {
  test('its interface still up but the file that brought it up gone: nothing closed, exit 1 saying what to do (closing would leave a catch-all tunnel to nowhere)', async () => {
    const m = await signedUp();
    const made = await cli(['connect', 'follow', '--json'], m.env);
    const { id } = JSON.parse(made.stdout) as { id: string };
    // As `connect --up --out FILE` records it, then the file is deleted; the interface stays up.
    const ns = await harness.namespace('gone');
    const name = harness.interfaceName();
    const file = `${harness.tempDir()}/${name}.conf`;
    writeFileSync(join(m.configDir, 'state.json'), JSON.stringify({ last_session: id, up: { [id]: file } }));
    await ns.exec('ip', ['link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`]);
    // The bin in the namespace, where the interface is (the broker is out of its reach: nothing may be sent).
    const res = await ns.exec('sh', [
      '-c',
      `env ${Object.entries(m.env)
        .map(([k, v]) => `${k}='${v}'`)
        .join(' ')} ${process.execPath} ${cliProgram()} disconnect; echo "exit $?"`,
    ]);
    expect(res.stdout.trim()).toBe('exit 1');
    expect(res.stderr).toBe(
      `tunnelbyte: ${name} is up, but ${file}, which brought it up, is gone: put it back and run disconnect again, or take ${name} down yourself; the session is still open\n`,
    );
    expect(await status(m, id)).not.toBe('closed');
    expect((await cli(['disconnect', id], m.env)).code).toBe(0);
  });
});
