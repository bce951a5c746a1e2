// The Express edge: request ids, JSON-only bodies, limits, 404, error shape, metrics, probes.
import request from 'supertest';
import { startBroker, type TestBroker } from './helpers.js';

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
    expect(res.body).toEqual({ error: 'payload_too_large', message: expect.any(String), code: 4013 });
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
    expect(Object.keys(res.body.paths)).toEqual(expect.arrayContaining(['/v1/health', '/v1/ready']));
  });
});
