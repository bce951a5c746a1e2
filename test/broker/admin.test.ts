// Admin routes and the admin CLI's functions (which act on Redis directly).
import type { Command } from 'commander';
import request from 'supertest';
import {
  addRegion,
  adminCommand,
  createNodeTokenFor,
  createOperatorKey,
  listNodesText,
  OPERATOR_ACCOUNT_ID,
} from '../../src/broker/admin.js';
import { verifyNodeToken } from '../../src/broker/services/enrollment.js';
import { keys } from '../../src/broker/store/keys.js';
import { hashToken, isWellFormedToken } from '../../src/broker/tokens.js';
import { redisContents, startBroker, type TestBroker } from './helpers.js';

const now = Date.parse('2026-05-01T00:00:00Z');
let broker: TestBroker;
let adminToken: string;

beforeAll(async () => {
  broker = await startBroker({ clock: () => now, env: { PUBLIC_BURST: '100000' } });
  adminToken = await createOperatorKey(broker.ctx, ['admin:read', 'admin:write'], 'ops');
});
afterAll(async () => broker.close());

const admin = () => ({ Authorization: `Bearer ${adminToken}` });

describe('admin CLI functions', () => {
  test('region add, node-token create, key create', async () => {
    expect(
      await addRegion(broker.ctx, { id: 'ap-south', name: 'Mumbai', country: 'IN', tiers: ['pro'] }),
    ).toBe('added region ap-south');
    expect(
      await addRegion(broker.ctx, { id: 'ap-south', name: 'Mumbai 2', country: 'IN', tiers: ['pro'] }),
    ).toBe('updated region ap-south');
    const { token } = await createNodeTokenFor(broker.ctx, 'ap-south');
    expect(isWellFormedToken('tbn_', token)).toBe(true);
    expect(await verifyNodeToken(broker.ctx, token)).toMatchObject({ region: 'ap-south' });
    await expect(createNodeTokenFor(broker.ctx, 'nowhere')).rejects.toThrow('unknown region');
    await expect(createOperatorKey(broker.ctx, ['admin:fly'], 'x')).rejects.toThrow('unknown scope');
    await expect(
      addRegion(broker.ctx, { id: 'Bad Id', name: 'x', country: 'DE', tiers: ['pro'] }),
    ).rejects.toThrow();
    expect(await broker.redis.hget(keys.account(OPERATOR_ACCOUNT_ID), 'plan')).toBe('business');
  });

  test('verifyNodeToken refuses anything but a live tbn_ token', async () => {
    const { token } = await createNodeTokenFor(broker.ctx, 'ap-south');
    for (const bad of [
      undefined,
      '',
      'tbn_x',
      token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A'),
      adminToken,
    ]) {
      expect(await verifyNodeToken(broker.ctx, bad)).toBeNull();
    }
    await broker.redis.del(keys.nodeTokenHash(hashToken(token)));
    expect(await verifyNodeToken(broker.ctx, token)).toBeNull();
  });
});

describe('POST /v1/admin/regions', () => {
  test('201 on create, 200 on replace; listed publicly', async () => {
    const body = { id: 'eu-north', name: 'Stockholm', country: 'SE' };
    const created = await request(broker.app).post('/v1/admin/regions').set(admin()).send(body);
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      ...body,
      tiers: ['free', 'pro', 'business'],
      pool: { v4: '10.64.0.0/10', v6: 'fd64::/64' },
      created_at: new Date(now).toISOString(),
    });
    const replaced = await request(broker.app)
      .post('/v1/admin/regions')
      .set(admin())
      .send({ ...body, tiers: ['business'], pool: { v4: '172.16.0.0/16' } });
    expect(replaced.status).toBe(200);
    expect(replaced.body.pool).toEqual({ v4: '172.16.0.0/16', v6: 'fd64::/64' });
    const regions = await request(broker.app).get('/v1/regions');
    expect(regions.body.regions).toContainEqual({
      ...body,
      status: 'down',
      nodes: 0,
      load: 0,
      tiers: ['business'],
    });
  });

  test.each([
    [{ id: 'EU', name: 'x', country: 'DE' }, 'id'],
    [{ id: 'eu', name: '', country: 'DE' }, 'name'],
    [{ id: 'eu', name: 'x', country: 'de' }, 'country'],
    [{ id: 'eu', name: 'x', country: 'DE', tiers: ['gold'] }, 'tiers.0'],
    [{ id: 'eu', name: 'x', country: 'DE', tiers: [] }, 'tiers'],
    [{ id: 'eu', name: 'x', country: 'DE', pool: { v4: '10.64.0.1/10' } }, 'pool.v4'],
    [{ id: 'eu', name: 'x', country: 'DE', pool: { v6: '10.0.0.0/8' } }, 'pool.v6'],
  ])('bad region %j → 400 field %s', async (body, field) => {
    const res = await request(broker.app).post('/v1/admin/regions').set(admin()).send(body);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_request', field });
  });
});

describe('POST /v1/admin/node-tokens', () => {
  test('201 with a tbn_ token shown once, stored hashed', async () => {
    const res = await request(broker.app)
      .post('/v1/admin/node-tokens')
      .set(admin())
      .send({ region: 'ap-south' });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      id: expect.stringMatching(/^ntk_/),
      token: expect.stringMatching(/^tbn_[0-9A-Za-z]{38}$/),
      region: 'ap-south',
      created_at: new Date(now).toISOString(),
      expires_at: null,
      max_nodes: 10,
    });
    expect(res.headers['cache-control']).toBe('no-store');
    expect(await broker.redis.exists(keys.nodeTokenHash(hashToken(res.body.token)))).toBe(1);
    expect(JSON.stringify(await redisContents(broker.redis))).not.toContain(res.body.token);
  });

  test('unknown region → 400 field region', async () => {
    const res = await request(broker.app)
      .post('/v1/admin/node-tokens')
      .set(admin())
      .send({ region: 'nowhere' });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_request', field: 'region' });
  });
});

describe('GET /v1/admin/nodes', () => {
  test('empty, then the nodes the node service recorded, with health', async () => {
    expect((await request(broker.app).get('/v1/admin/nodes').set(admin())).body).toEqual({ nodes: [] });
    await broker.redis.sadd(keys.nodes(), 'node_1', 'node_2', 'node_3');
    await broker.redis.hset(keys.node('node_1'), {
      id: 'node_1',
      region: 'ap-south',
      endpoint: '198.51.100.7:51820',
      public_key: 'k'.repeat(43) + '=',
      version: '0.1.0',
      capacity: 100,
      load: 0.25,
      draining: '0',
      heartbeat_ms: 10_000,
      last_heartbeat: now - 5000,
      egress_ips: JSON.stringify(['198.51.100.7']),
    });
    await broker.redis.hset(keys.node('node_2'), {
      id: 'node_2',
      region: 'ap-south',
      heartbeat_ms: 10_000,
      last_heartbeat: now - 60_000,
    });
    // Drained, then stopped heartbeating: left on purpose.
    await broker.redis.hset(keys.node('node_3'), {
      id: 'node_3',
      region: 'ap-south',
      draining: '1',
      heartbeat_ms: 10_000,
      last_heartbeat: now - 60_000,
    });
    const res = await request(broker.app).get('/v1/admin/nodes').set(admin());
    expect(res.body.nodes).toEqual([
      {
        id: 'node_1',
        region: 'ap-south',
        endpoint: '198.51.100.7:51820',
        public_key: 'k'.repeat(43) + '=',
        version: '0.1.0',
        capacity: 100,
        load: 0.25,
        draining: false,
        healthy: true,
        state: 'healthy',
        last_heartbeat: new Date(now - 5000).toISOString(),
        egress_ips: ['198.51.100.7'],
      },
      expect.objectContaining({
        id: 'node_2',
        healthy: false,
        state: 'lost',
        endpoint: null,
        egress_ips: [],
      }),
      expect.objectContaining({ id: 'node_3', healthy: false, state: 'stopped', draining: true }),
    ]);
    // The command line says the same.
    const listed = await listNodesText(broker.ctx, 'ap-south', false);
    expect(listed.split('\n').map((line) => line.split(/\s+/)[3])).toEqual([
      'STATE',
      'healthy',
      'lost',
      'stopped',
    ]);
  });
});

describe('tunnelbyte-broker admin (commander, on REDIS_URL)', () => {
  let informed: string[] = [];
  const run = async (...args: string[]) => {
    const printed: string[] = [];
    informed = [];
    const saved = process.env.REDIS_URL;
    process.env.REDIS_URL = broker.server.url;
    try {
      const program = adminCommand(
        (line) => printed.push(line),
        (line) => informed.push(line),
      );
      // Throw instead of exiting, and keep commander's own error text out of the test output.
      const quiet = (cmd: Command): void => {
        cmd.exitOverride().configureOutput({ writeErr: () => undefined });
        cmd.commands.forEach(quiet);
      };
      quiet(program);
      await program.parseAsync(args, { from: 'user' });
    } finally {
      process.env.REDIS_URL = saved;
    }
    return printed.map((line) => `${line}\n`).join('');
  };

  test('region add, node-token create, key create print what they made', async () => {
    expect(
      await run(
        'region',
        'add',
        'sa-east',
        '--name',
        'São Paulo',
        '--country',
        'BR',
        '--tiers',
        'pro,business',
      ),
    ).toBe('added region sa-east\n');
    const regions = await request(broker.app).get('/v1/regions');
    expect(regions.body.regions).toContainEqual(
      expect.objectContaining({ id: 'sa-east', tiers: ['pro', 'business'] }),
    );
    expect(await run('node-token', 'create', '--region', 'sa-east')).toMatch(/^tbn_[0-9A-Za-z]{38}\n$/);
    const key = (await run('key', 'create', '--scope', 'admin:read')).trim();
    const nodes = await request(broker.app)
      .get('/v1/admin/nodes')
      .set({ Authorization: `Bearer ${key}` });
    expect(nodes.status).toBe(200);
    const denied = await request(broker.app)
      .post('/v1/admin/regions')
      .set({ Authorization: `Bearer ${key}` })
      .send({ id: 'x', name: 'x', country: 'DE' });
    expect(denied.body).toMatchObject({ error: 'forbidden', required_scope: 'admin:write' });
  });

  test('node-token create|list|revoke and node list|remove: the containment of a leaked token', async () => {
    await run('region', 'add', 'af-south', '--name', 'Cape Town', '--country', 'ZA');
    const token = (
      await run('node-token', 'create', '--region', 'af-south', '--expires-in', '30d', '--max-nodes', '2')
    ).trim();
    expect(token).toMatch(/^tbn_[0-9A-Za-z]{38}$/);
    const id = /(ntk_[0-9A-Za-z]+)/.exec(informed.join('\n'))?.[1];
    expect(id).toBeDefined();
    const listed = JSON.parse(await run('node-token', 'list', '--json')) as {
      node_tokens: Record<string, unknown>[];
    };
    const made = listed.node_tokens.find((t) => t.id === id);
    expect(made).toMatchObject({ region: 'af-south', max_nodes: 2, nodes: 0, revoked_at: null });
    // The admin command runs on the wall clock: 30 days after its creation, to the second.
    const lifetime = Date.parse(made!.expires_at as string) - Date.parse(made!.created_at as string);
    expect(Math.abs(lifetime - 30 * 86_400_000)).toBeLessThan(1000);
    expect(JSON.stringify(listed)).not.toContain(token);
    const text = await run('node-token', 'list');
    expect(text).toMatch(/^ID\s+REGION\s+NODES\s+CREATED\s+EXPIRES\s+REVOKED\n/);
    expect(text).toMatch(new RegExp(`^${id}\\s+af-south\\s+0/2\\s`, 'm'));

    const register = (publicKeyByte: number) =>
      request(broker.app)
        .post('/v1/nodes/register')
        .set('Authorization', `Bearer ${token}`)
        .send({
          region: 'af-south',
          endpoint: `198.51.100.${publicKeyByte}:51820`,
          public_key: Buffer.alloc(32, publicKeyByte).toString('base64'),
          egress_ips: [],
          capacity: 10,
          version: 'test',
        });
    const first = await register(11);
    const second = await register(12);
    expect([first.status, second.status]).toEqual([200, 200]);
    const nodes = JSON.parse(await run('node', 'list', '--region', 'af-south', '--json')) as {
      nodes: { id: string }[];
    };
    expect(nodes.nodes.map((n) => n.id).sort()).toEqual([first.body.node_id, second.body.node_id].sort());
    expect(JSON.parse(await run('node', 'list', '--region', 'nowhere', '--json'))).toEqual({ nodes: [] });
    expect(await run('node', 'list', '--region', 'af-south')).toContain(first.body.node_id);

    expect(await run('node', 'remove', first.body.node_id)).toBe(
      `removed node ${first.body.node_id}; its sessions move to other nodes of the region (node_lost where none has room)\n`,
    );
    expect((await register(11)).status).toBe(401);
    await expect(run('node', 'remove', 'node_nope')).rejects.toThrow('no such node: node_nope');

    expect(await run('node-token', 'revoke', id!)).toBe(`revoked node token ${id}; its nodes are removed\n`);
    expect((await register(13)).status).toBe(401);
    const revoked = JSON.parse(await run('node-token', 'list', '--json')) as {
      node_tokens: Record<string, unknown>[];
    };
    expect(revoked.node_tokens.find((t) => t.id === id)).toMatchObject({ revoked_at: expect.any(String) });
    await expect(run('node-token', 'revoke', 'ntk_nope')).rejects.toThrow('no such node token: ntk_nope');
    for (const bad of [
      ['--expires-in', '30s'],
      ['--expires-in', '3w'],
      ['--max-nodes', '0'],
      ['--max-nodes', 'x'],
    ]) {
      await expect(run('node-token', 'create', '--region', 'af-south', ...bad)).rejects.toThrow();
    }
  });

  test('bad arguments are refused', async () => {
    await expect(
      run('region', 'add', 'x', '--name', 'X', '--country', 'DE', '--tiers', 'gold'),
    ).rejects.toThrow(/gold/);
    await expect(run('node-token', 'create', '--region', 'nowhere')).rejects.toThrow(/unknown region/);
  });
});
