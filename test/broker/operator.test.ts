// The operator's tools: the built `tunnelbyte-broker` failing with one line (Redis unreachable, a busy
// port, usage errors), `admin region list|update|remove` (remove refused while the region has live nodes, unless
// forced, and then closing its sessions), and the fleet gauges in /metrics, through a node that is lost.
// Runs the built binary (scripts/test builds first) against real redis-servers.
import { spawn } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import request from 'supertest';
import { freePort, startRedis, type RedisServer } from '../helpers/redis.js';
import { createNodeToken } from '../../src/broker/services/enrollment.js';
import { builtProgram } from '../helpers/repo.js';
import { keyPair, startPlane, type Plane } from './sessions-fixture.js';

const BROKER = builtProgram('src/broker/main.js');

function broker(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BROKER, ...args], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * A TCP server on a free loopback port. close() also destroys the connections it accepted: one nobody reads
 * never sees its peer's end, and would stay open in the test process after the file.
 */
async function tcpServer() {
  const accepted = new Set<Socket>();
  const server: Server = createServer((socket) => {
    accepted.add(socket);
    socket.on('close', () => accepted.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const close = () => {
    server.close();
    for (const socket of accepted) socket.destroy();
  };
  return { port: (server.address() as { port: number }).port, close };
}

describe('tunnelbyte-broker failures are one line and a non-zero exit', () => {
  test('1. admin with nothing listening at REDIS_URL → the cause and the setting', async () => {
    const port = await freePort();
    const res = await broker(['admin', 'region', 'list'], { REDIS_URL: `redis://:secret@127.0.0.1:${port}` });
    expect(res).toEqual({
      code: 1,
      stdout: '',
      stderr: `tunnelbyte-broker: cannot reach Redis at redis://127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port} (set REDIS_URL)\n`,
    });
  });

  test('2. admin against something that accepts and never answers → one line after the connect timeout', async () => {
    const silent = await tcpServer();
    try {
      const res = await broker(['admin', 'region', 'list'], {
        REDIS_URL: `redis://127.0.0.1:${silent.port}`,
      });
      expect(res).toEqual({
        code: 1,
        stdout: '',
        stderr: `tunnelbyte-broker: cannot reach Redis at redis://127.0.0.1:${silent.port}: no answer within 5 s (set REDIS_URL)\n`,
      });
    } finally {
      silent.close();
    }
  });

  test('3. serve on a port in use → the cause and the settings to change, no stack trace', async () => {
    const taken = await tcpServer();
    try {
      const res = await broker(['serve'], {
        REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
        HOST: '127.0.0.1',
        PORT: String(taken.port),
        LOG_LEVEL: 'silent',
      });
      expect(res.code).toBe(1);
      expect(res.stderr).toBe(
        `tunnelbyte-broker: cannot listen on 127.0.0.1:${taken.port}: the address is in use by another process; change PORT or HOST\n`,
      );
    } finally {
      taken.close();
    }
  });
});

describe("tunnelbyte-broker usage errors are one line and exit 2, as the CLI's are", () => {
  // Nothing is parsed far enough to reach Redis: REDIS_URL points nowhere.
  const cases: [string, string[], string][] = [
    [
      '1. missing required option',
      ['admin', 'region', 'add', 'x'],
      "required option '--name <name>' not specified",
    ],
    ['2. misspelt command', ['admin', 'regoin'], "unknown command 'regoin'; did you mean region?"],
    ['3. unknown option', ['--bogus'], "unknown option '--bogus'"],
    ['4. missing argument', ['admin', 'region', 'remove'], "missing required argument 'id'"],
    // Not taken for an argument of serve, the default command.
    ['4b. a word that is no command', ['bogus'], "unknown command 'bogus' (the commands: serve, admin)"],
  ];
  test.each(cases)('%s', async (_name, args, message) => {
    const res = await broker(args, { REDIS_URL: `redis://127.0.0.1:${await freePort()}` });
    expect(res).toEqual({ code: 2, stdout: '', stderr: `tunnelbyte-broker: ${message} (see --help)\n` });
  });

  test('4c. a number setting given a word: named with what was set, exit 1', async () => {
    const res = await broker(['serve'], { PORT: 'abc', REDIS_URL: `redis://127.0.0.1:${await freePort()}` });
    expect(res).toEqual({
      code: 1,
      stdout: '',
      stderr: "tunnelbyte-broker: invalid broker environment: PORT: 'abc' is not a number\n",
    });
  });

  test('5. --help of a subcommand is not an error', async () => {
    const res = await broker(['admin', 'region', 'add', '--help'], {});
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/--pool-v4 <CIDR>/);
  });
});

describe('admin region list | update | remove (the command line)', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => redis.stop());
  const admin = (...args: string[]) => broker(['admin', ...args], { REDIS_URL: redis.url });

  test('1. add, list, update, list --json, remove; an unknown region is one line', async () => {
    expect((await admin('region', 'add', 'eu-west', '--name', 'Frankfurt', '--country', 'DE')).stdout).toBe(
      'added region eu-west\n',
    );
    expect((await admin('region', 'list')).stdout).toMatch(
      /^ID +NAME +COUNTRY +TIERS +STATUS +NODES +LOAD\neu-west +Frankfurt +DE +free,pro,business +down +0 +0\n$/,
    );
    expect(
      (await admin('region', 'update', 'eu-west', '--tiers', 'pro,business', '--name', 'FRA')).stdout,
    ).toBe('updated region eu-west\n');
    const listed = JSON.parse((await admin('region', 'list', '--json')).stdout) as { regions: unknown[] };
    expect(listed.regions).toEqual([
      {
        id: 'eu-west',
        name: 'FRA',
        country: 'DE',
        tiers: ['pro', 'business'],
        pool: { v4: '10.64.0.0/10', v6: 'fd64::/64' },
        status: 'down',
        nodes: 0,
        load: 0,
      },
    ]);
    expect(await admin('region', 'update', 'eu-west')).toMatchObject({
      code: 1,
      stderr:
        'tunnelbyte-broker: nothing to change: give --name, --country, --tiers, --pool-v4 or --pool-v6\n',
    });
    expect((await admin('region', 'remove', 'eu-west')).stdout).toBe(
      'removed region eu-west (0 open session(s) closed)\n',
    );
    expect(await admin('region', 'remove', 'eu-west')).toMatchObject({
      code: 1,
      stderr: "tunnelbyte-broker: No region 'eu-west'.\n",
    });
  });

  // The rule the API applies to names (docs/API.md "Conventions"), here too: a region's name and a key's
  // are printed later. The message names the option without echoing what was refused.
  test.each([
    [1, ['region', 'add', 'eu-bad', '--name', 'Frank\u001b[2Jfurt', '--country', 'DE']],
    [2, ['region', 'update', 'eu-bad', '--name', 'line\nforged']],
    [3, ['key', 'create', '--scope', 'admin:read', '--name', 'ops\u202etxt']],
  ])('1b.%i: a name with a control character is one line, exit 1, nothing stored', async (_n, args) => {
    const res = await admin(...args);
    expect(res).toEqual({
      code: 1,
      stdout: '',
      stderr: expect.stringMatching(/^tunnelbyte-broker: --name: printable characters only[^\n]*\n$/),
    });
    expect(res.stderr.trimEnd()).not.toMatch(/[\p{Cc}\u202e]/u);
    expect((await admin('region', 'list', '--json')).stdout).not.toContain('eu-bad');
  });

  test('2. every admin subcommand has a description', async () => {
    for (const group of [[], ['region'], ['node-token'], ['key']]) {
      const help = await admin(...group, '--help');
      const commands = help.stdout.split('Commands:\n')[1] ?? '';
      const lines = commands.split('\n').filter((l) => /^ {2}\S/.test(l) && !l.startsWith('  help '));
      expect(lines.length).toBeGreaterThan(0);
      // "  name [options] <args>   description": a description follows the usage on every line.
      for (const line of lines)
        expect([group, line]).toEqual([group, expect.stringMatching(/^ {2}\S.*\S {2,}\S/)]);
    }
  });
});

describe('regions over HTTP and the fleet gauges', () => {
  let plane: Plane;
  beforeAll(async () => {
    plane = await startPlane();
  });
  afterAll(async () => plane.close());

  const admin = (method: 'get' | 'patch' | 'delete', path: string) =>
    request(plane.broker.app)[method](path).set('Authorization', `Bearer ${plane.fx.operator.token}`);
  const metrics = async () => (await request(plane.broker.app).get('/metrics')).text;
  const gauge = (text: string, name: string, labels: string) =>
    Number(new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, 'm').exec(text)?.[1]);

  test('1. a healthy node and a pending session show; the node lost shows as lost, its session node_lost', async () => {
    const node = await plane.node('eu-west');
    expect((await plane.heartbeat(node)).status).toBe(200);
    const user = await plane.principal('pro');
    expect((await plane.create(user, { region: 'eu-west', public_key: keyPair().publicKey })).status).toBe(
      201,
    );

    let text = await metrics();
    expect(gauge(text, 'tunnelbyte_nodes', 'region="eu-west",state="healthy"')).toBe(1);
    expect(gauge(text, 'tunnelbyte_nodes', 'region="eu-west",state="lost"')).toBe(0);
    expect(gauge(text, 'tunnelbyte_nodes', 'region="us-east",state="healthy"')).toBe(0);
    expect(gauge(text, 'tunnelbyte_sessions', 'region="eu-west",status="pending"')).toBe(1);
    expect(gauge(text, 'tunnelbyte_broker_redis_up', '')).toBeNaN(); // no labels: no braces
    expect(text).toMatch(/^tunnelbyte_broker_redis_up 1$/m);

    plane.advance(31_000); // three heartbeat intervals missed
    text = await metrics();
    expect(gauge(text, 'tunnelbyte_nodes', 'region="eu-west",state="healthy"')).toBe(0);
    expect(gauge(text, 'tunnelbyte_nodes', 'region="eu-west",state="lost"')).toBe(1);
    expect(gauge(text, 'tunnelbyte_sessions', 'region="eu-west",status="node_lost"')).toBe(1);
    expect(gauge(text, 'tunnelbyte_sessions', 'region="eu-west",status="pending"')).toBe(0);
  });

  test('2. list and update; remove is 409 while a node is live, forced it closes the sessions', async () => {
    const listed = await admin('get', '/v1/admin/regions');
    expect(listed.status).toBe(200);
    expect((listed.body as { regions: { id: string }[] }).regions.map((r) => r.id)).toEqual([
      'ap-south',
      'eu-west',
      'us-east',
    ]);
    const changed = await admin('patch', '/v1/admin/regions/us-east').send({ name: 'Virginia' });
    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject({
      id: 'us-east',
      name: 'Virginia',
      country: 'US',
      tiers: ['pro', 'business'],
    });
    expect((await admin('patch', '/v1/admin/regions/nowhere').send({ name: 'x' })).status).toBe(404);

    const node = await plane.node('us-east');
    await plane.heartbeat(node);
    const user = await plane.principal('pro');
    const made = await plane.create(user, { region: 'us-east', public_key: keyPair().publicKey });
    expect(made.status).toBe(201);

    const refused = await admin('delete', '/v1/admin/regions/us-east');
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ error: 'conflict', code: 4009 });
    expect((refused.body as { message: string }).message).toContain('1 live node(s)');

    const forced = await admin('delete', '/v1/admin/regions/us-east?force=true');
    expect(forced.status).toBe(200);
    expect(forced.body).toEqual({ id: 'us-east', closed_sessions: 1 });
    const session = await plane.as(user, 'get', `/v1/sessions/${made.body.id as string}`);
    expect(session.body).toMatchObject({ status: 'closed' });
    // The account's slot is free again, and the region is gone from both lists.
    expect((await plane.as(user, 'get', '/v1/usage')).body).toMatchObject({ sessions: { active: 0 } });
    expect(
      (await request(plane.broker.app).get('/v1/regions')).body.regions.map((r: { id: string }) => r.id),
    ).not.toContain('us-east');
    expect(await metrics()).not.toContain('region="us-east"');
  });

  test("3. the region's pool: handed to nodes at registration, the addresses of their sessions and feed", async () => {
    const changed = await admin('patch', '/v1/admin/regions/ap-south').send({
      pool: { v4: '172.16.8.0/22', v6: 'fd00:ab::/96' },
    });
    expect(changed.body.pool).toEqual({ v4: '172.16.8.0/22', v6: 'fd00:ab::/96' });
    const { token } = await createNodeToken(plane.broker.ctx, 'ap-south');
    const register = (publicKey: string) =>
      request(plane.broker.app).post('/v1/nodes/register').set('Authorization', `Bearer ${token}`).send({
        region: 'ap-south',
        endpoint: '198.51.100.77:51820',
        public_key: publicKey,
        egress_ips: [],
        capacity: 10,
        version: 'test',
      });
    const nodeKey = keyPair().publicKey;
    const registered = await register(nodeKey);
    expect(registered.body).toMatchObject({ pool: { v4: '172.16.8.0/22', v6: 'fd00:ab::/96' } });
    const node = { id: registered.body.node_id as string, token, region: 'ap-south', publicKey: nodeKey };
    await plane.heartbeat(node);

    const user = await plane.principal('business');
    const made = await plane.create(user, { region: 'ap-south', public_key: keyPair().publicKey });
    expect(made.body.interface.addresses).toEqual(['172.16.8.2/32', 'fd00:ab::2/128']);
    expect(made.body.config).toContain('Address = 172.16.8.2/32, fd00:ab::2/128');
    const feed = await request(plane.broker.app)
      .get(`/v1/nodes/${node.id}/peers?wait=0`)
      .set('Authorization', `Bearer ${token}`);
    expect(feed.body.peers).toEqual([
      expect.objectContaining({ allowed_ips: ['172.16.8.2/32', 'fd00:ab::2/128'] }),
    ]);

    // A new pool reaches nodes that register without sessions; one with sessions keeps its clients' pool.
    await admin('patch', '/v1/admin/regions/ap-south').send({ pool: { v4: '10.200.0.0/16' } });
    expect((await register(nodeKey)).body.pool).toEqual({ v4: '172.16.8.0/22', v6: 'fd00:ab::/96' });
    expect((await register(keyPair().publicKey)).body.pool).toEqual({
      v4: '10.200.0.0/16',
      v6: 'fd00:ab::/96',
    });
  });
});
