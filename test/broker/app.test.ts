// The Express edge: request ids, JSON-only bodies, limits, 404, error shape, metrics, probes.
import { pino } from 'pino';
import request from 'supertest';
import { ERRORS } from '../../src/broker/errors.js';
import { createNodeToken } from '../../src/broker/services/enrollment.js';
import { upsertRegion } from '../../src/broker/services/regions.js';
import { keys } from '../../src/broker/store/keys.js';
import { readDoc } from '../helpers/repo.js';
import { ROUTES, startBroker, type TestBroker } from './helpers.js';
import { keyPair, registerNode } from './sessions-fixture.js';

/** An exit node enrolled and registered over HTTP, as a real node does: its id and tbn_ token. */
async function registeredNode(b: TestBroker): Promise<{ id: string; token: string }> {
  await upsertRegion(b.ctx, { id: 'eu-west', name: 'Frankfurt', country: 'DE', tiers: ['free'] });
  const { token } = await createNodeToken(b.ctx, 'eu-west');
  const res = await registerNode(b.app, token, {
    region: 'eu-west',
    endpoint: '198.51.100.1:51820',
    public_key: keyPair().publicKey,
    egress_ips: ['203.0.113.1'],
    capacity: 10,
  });
  expect(res.status).toBe(200);
  return { id: res.body.node_id, token };
}

let broker: TestBroker;
beforeAll(async () => {
  broker = await startBroker();
});
afterAll(async () => broker.close());

describe('edge', () => {
  test('every response carries X-Request-Id; a sane incoming one is echoed', async () => {
    const fresh = await request(broker.app).get('/v1/health');
    expect(fresh.status).toBe(200);
    expect(fresh.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const echoed = await request(broker.app).get('/v1/health').set('X-Request-Id', 'abc-123');
    expect(echoed.headers['x-request-id']).toBe('abc-123');
    const rejected = await request(broker.app).get('/v1/health').set('X-Request-Id', 'bad id with spaces');
    expect(rejected.headers['x-request-id']).not.toBe('bad id with spaces');
  });

  test('unknown route → 404 in the contract shape', async () => {
    const res = await request(broker.app).get('/v1/nope');
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: 'not_found', message: expect.any(String), code: 4004 });
    expect(res.headers['x-request-id']).toBeDefined();
  });

  test('bad JSON → 400 invalid_request with field body', async () => {
    const res = await request(broker.app)
      .post('/v1/nope')
      .set('Content-Type', 'application/json')
      .send('{"a":');
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_request', code: 4000, field: 'body' });
  });

  test('non-JSON body → 400', async () => {
    const res = await request(broker.app).post('/v1/nope').set('Content-Type', 'text/plain').send('hello');
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_request', field: 'body' });
  });

  test('body over 64 KiB → 413 payload_too_large', async () => {
    const big = JSON.stringify({ pad: 'x'.repeat(65 * 1024) });
    const res = await request(broker.app).post('/v1/nope').set('Content-Type', 'application/json').send(big);
    expect(res.status).toBe(413);
    expect(res.body).toEqual({
      error: 'payload_too_large',
      message: 'The request body is larger than 64 KiB.',
      code: 4013,
    });
  });

  // A compressed body that does not decompress is the client's fault on every kind of route: JSON,
  // the OAuth form endpoints, the Stripe webhook and a node's heartbeat (each reads its body its own way;
  // the heartbeat only after its node token checked out, so it is sent by a registered node).
  test.each([
    [1, 'gzip', '/v1/auth/signup', 'application/json'],
    [2, 'deflate', '/v1/sessions', 'application/json'],
    [3, 'br', '/v1/webhooks/stripe', 'application/json'],
    [4, 'gzip', '/v1/oauth/token', 'application/x-www-form-urlencoded'],
    [5, 'gzip', '/v1/nodes/{id}/heartbeat', 'application/json'],
  ])(
    '%i: a %s body that does not decompress → 400 on %s, no fault logged',
    async (_n, encoding, path, type) => {
      const lines: string[] = [];
      const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
      const logged = await startBroker({ logger, server: broker.server });
      try {
        const node = path.includes('{id}') ? await registeredNode(logged) : undefined;
        const sent = request(logged.app)
          .post(node ? path.replace('{id}', node.id) : path)
          .set('Content-Type', type)
          .set('Content-Encoding', encoding);
        const res = await (node ? sent.set('Authorization', `Bearer ${node.token}`) : sent).send(
          'not compressed at all',
        );
        expect(res.status).toBe(400);
        expect(res.headers['content-type']).toMatch(/^application\/json/);
        // RFC 6749's shape at the token endpoint, the contract's (naming the field) everywhere else.
        if (path === '/v1/oauth/token') expect(res.body.error).toBe('invalid_request');
        else expect(res.body).toMatchObject({ error: 'invalid_request', field: 'body' });
        expect(lines.map((l) => JSON.parse(l).msg)).not.toContain('unexpected fault');
      } finally {
        await logged.close();
      }
    },
  );

  // The forms (OAuth endpoints, pages) take at most 32 fields: more is the client's fault, not a fault.
  test.each([
    [1, '/v1/oauth/token', 'application/json'],
    [2, '/v1/oauth/revoke', 'application/json'],
    [3, '/login', 'text/html'],
  ])('%i: a form of 40 fields to %s → 400 (%s), no fault logged', async (_n, path, type) => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const logged = await startBroker({ logger, server: broker.server });
    try {
      const fields = Array.from({ length: 40 }, (_, i) => `f${i}=1`).join('&');
      const res = await request(logged.app).post(path).type('form').send(fields);
      expect([res.status, res.headers['content-type']]).toEqual([400, expect.stringContaining(type)]);
      if (path.startsWith('/v1/oauth/')) expect(res.body.error).toBe('invalid_request');
      expect(lines.map((l) => JSON.parse(l).msg)).not.toContain('unexpected fault');
    } finally {
      await logged.close();
    }
  });

  // A path parameter must be percent-encoded UTF-8: the router cannot decode one that is not.
  test.each([
    [1, 'get', '/v1/sessions/%ff%fe', 'application/json'],
    [2, 'delete', '/v1/admin/regions/%E0%A4%A', 'application/json'],
    [3, 'post', '/v1/nodes/%c0%af/heartbeat', 'application/json'],
    [4, 'post', '/account/keys/%ff/revoke', 'text/html'],
  ])('%i: %s %s → 400 (%s), no fault logged', async (_n, method, path, type) => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const logged = await startBroker({ logger, server: broker.server });
    try {
      const res = await request(logged.app)[method as 'get'](path);
      expect([res.status, res.headers['content-type']]).toEqual([400, expect.stringContaining(type)]);
      if (type === 'application/json')
        expect(res.body).toMatchObject({ error: 'invalid_request', field: 'path' });
      expect(lines.map((l) => JSON.parse(l).msg)).not.toContain('unexpected fault');
    } finally {
      await logged.close();
    }
  });

  test('a Content-Encoding the broker cannot read → 400 that says so', async () => {
    const res = await request(broker.app)
      .post('/v1/auth/signup')
      .set('Content-Type', 'application/json')
      .set('Content-Encoding', 'compress')
      .send('{}');
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_request', field: 'body' });
    expect(res.body.message).toMatch(/Content-Encoding/);
  });

  test('/v1/ready pings Redis; /v1/health answers', async () => {
    expect((await request(broker.app).get('/v1/ready')).body).toEqual({ status: 'ok' });
    expect((await request(broker.app).get('/v1/health')).body).toEqual({ status: 'ok' });
  });

  test('/metrics exposes request counters by route template', async () => {
    await request(broker.app).get('/v1/health');
    const res = await request(broker.app).get('/metrics');
    expect(res.status).toBe(200);
    expect(res.text).toContain(
      'tunnelbyte_broker_http_requests_total{method="GET",route="/v1/health",status="200"}',
    );
  });

  test('/v1/openapi.json is an OpenAPI 3.1 document listing the routes', async () => {
    const res = await request(broker.app).get('/v1/openapi.json');
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe('3.1.0');
    expect(Object.keys(res.body.paths)).toEqual(expect.arrayContaining([...ROUTES]));
    // Generated from the same zod schemas that validate: scopes, parameters and error bodies.
    expect(res.body.paths['/v1/auth/keys'].post.security).toEqual([{ bearer: ['keys:manage'] }]);
    expect(
      res.body.paths['/v1/auth/keys'].post.requestBody.content['application/json'].schema.required,
    ).toEqual(expect.arrayContaining(['name', 'permissions']));
    expect(res.body.paths['/v1/ip/{addr}'].get.parameters).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'addr', in: 'path', required: true })]),
    );
    expect(res.body.paths['/v1/auth/user'].get.responses['403'].content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/Error',
    });
    expect(res.body.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    // Every error of the registry, those answered before routing too (431 headers_too_large).
    expect(res.body.components.schemas.Error.properties.error.enum).toEqual(Object.keys(ERRORS));
    // The headers that come with errors: the bearer challenge, and Retry-After.
    const user = res.body.paths['/v1/auth/user'].get.responses;
    expect(Object.keys(user['401'].headers)).toEqual(['WWW-Authenticate']);
    expect(Object.keys(user['403'].headers)).toEqual(['WWW-Authenticate']);
    expect(Object.keys(user['429'].headers)).toEqual(['Retry-After']);
    expect(Object.keys(user['503'].headers)).toEqual(['Retry-After']);
    // Every operation has an operationId for code generators, one per method and path.
    const operations = Object.entries(
      res.body.paths as Record<string, Record<string, { operationId?: string }>>,
    ).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]) => [method, path, op.operationId]),
    );
    expect(operations.filter(([, , id]) => typeof id !== 'string')).toEqual([]);
    expect(new Set(operations.map(([, , id]) => id)).size).toBe(operations.length);
    expect(res.body.paths['/v1/sessions/{id}'].delete.operationId).toBe('deleteV1SessionsId');
    // A free token counts only with its machine's fingerprint: every bearer operation names the header.
    expect(res.body.paths['/v1/sessions'].post.parameters).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'X-Machine-Fingerprint', in: 'header', required: false }),
      ]),
    );
    // Node calls need the tbn_ enrollment token: documented as such, with its 401 and 429.
    expect(res.body.components.securitySchemes.node).toMatchObject({ type: 'http', scheme: 'bearer' });
    for (const [path, method] of [
      ['/v1/nodes/register', 'post'],
      ['/v1/nodes/{id}/heartbeat', 'post'],
      ['/v1/nodes/{id}/peers', 'get'],
    ] as const) {
      const operation = res.body.paths[path][method];
      expect([path, operation.security]).toEqual([path, [{ node: [] }]]);
      expect(Object.keys(operation.responses)).toEqual(expect.arrayContaining(['401', '429']));
    }
  });

  test('docs/API.md and the OpenAPI document list the same endpoints', async () => {
    const paths = (await request(broker.app).get('/v1/openapi.json')).body.paths as Record<string, object>;
    const served = Object.entries(paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`),
    );
    // Sections whose heading says "not served yet" describe endpoints still to come.
    const documented = readDoc('API.md')
      .split(/\n(?=## )/)
      .filter((part) => !/^## .*not served yet/.test(part))
      .flatMap((part) => [
        ...part.matchAll(
          /`(GET|POST|DELETE|PUT|PATCH) (\/(?:v1\/|\.well-known\/|login|logout|account)[^\s`?]*)/g,
        ),
      ])
      .map((m) => `${m[1]} ${m[2]}`);
    expect(documented.length).toBeGreaterThan(0);
    expect(new Set(documented)).toEqual(new Set(served));
  });
});

describe('logs and unexpected faults', () => {
  test('one JSON line per request with id, method, path, status, latency; never tokens or query strings', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const logged = await startBroker({ logger, server: broker.server });
    try {
      const secret = `tb_${'A'.repeat(32)}AAAAAA`;
      const res = await request(logged.app)
        .get('/v1/auth/key?token=querysecret')
        .set('Authorization', `Bearer ${secret}`)
        .set('X-Machine-Fingerprint', 'abcdef0123');
      expect(res.status).toBe(401);
      const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      const entry = entries.find((e) => e.msg === 'request');
      expect(entry).toMatchObject({
        req_id: res.headers['x-request-id'],
        method: 'GET',
        path: '/v1/auth/key',
        status: 401,
        latency_ms: expect.any(Number),
      });
      const all = lines.join('\n');
      for (const leaked of [secret, 'querysecret', 'abcdef0123', 'Bearer']) expect(all).not.toContain(leaked);
    } finally {
      await logged.close();
    }
  });

  test('a fault nobody expected → 500 {"error":"internal","code":5000}, logged with the request id', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const logged = await startBroker({ logger, server: broker.server });
    try {
      // A key of the wrong type makes Redis answer WRONGTYPE: a real, unexpected store fault.
      await logged.redis.set(keys.regions(), 'not a set');
      const res = await request(logged.app).get('/v1/regions');
      expect(res.status).toBe(500);
      expect(res.body).toEqual({ error: 'internal', message: 'Internal error.', code: 5000 });
      expect(JSON.stringify(res.body)).not.toMatch(/WRONGTYPE|at .*\.ts/);
      const fault = lines.map((l) => JSON.parse(l)).find((e) => e.msg === 'unexpected fault');
      expect(fault).toMatchObject({ req_id: res.headers['x-request-id'], level: 50 });
    } finally {
      await logged.redis.del(keys.regions());
      await logged.close();
    }
  });
});
