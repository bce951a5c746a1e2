// Properties (fast-check) of the session and node surface: random and mutated bodies for register,
// heartbeat and session creation, and random feed cursors, never produce a 5xx and always answer in
// the contract's error shape; the address plan is injective and stays inside 10.64.0.0/10 and fd64::/64.
import fc from 'fast-check';
import request from 'supertest';
import { canonicalIp } from '../../src/broker/ip.js';
import { MAX_ADDRESS_INDEX, tunnelAddresses } from '../../src/lib/addresses.js';
import { checkPlane, keyPair, startPlane, type Plane, type TestNode } from './sessions-fixture.js';
import type { Principal } from './authz.js';

let plane: Plane;
let node: TestNode;
let biz: Principal;
beforeAll(async () => {
  plane = await startPlane();
  node = await plane.node('eu-west');
  biz = await plane.principal('business');
});
afterAll(async () => plane.close());

const ERROR_SHAPE = expect.objectContaining({
  error: expect.any(String),
  code: expect.any(Number),
  message: expect.any(String),
});

/** Any JSON value as the body text (supertest itself only sends objects). */
const json = (value: unknown) => JSON.stringify(value) ?? 'null';

function expectAnswer(res: request.Response, allowed: number[]) {
  expect(allowed).toContain(res.status);
  if (res.status >= 400) expect(res.body).toEqual(ERROR_SHAPE);
}

const key = fc.oneof(
  fc.constant(keyPair().publicKey),
  fc.string(),
  fc.uint8Array({ minLength: 0, maxLength: 40 }).map((b) => Buffer.from(b).toString('base64')),
);
const count = fc.oneof(fc.nat(), fc.double(), fc.bigInt().map(String), fc.constant(-1), fc.constant(2 ** 60));
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.oneof(arb, fc.anything());

test('1. heartbeat bodies never produce a 5xx', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.record(
          {
            load: maybe(fc.double({ min: -1, max: 2 })),
            draining: maybe(fc.boolean()),
            peers: maybe(
              fc.array(
                fc.record(
                  {
                    public_key: key,
                    rx_bytes: count,
                    tx_bytes: count,
                    last_handshake_at: fc.oneof(
                      fc.constant(null),
                      fc.date().map((d) => (Number.isNaN(d.getTime()) ? 'x' : d.toISOString())),
                      fc.string(),
                    ),
                  },
                  { requiredKeys: [] },
                ),
                { maxLength: 5 },
              ),
            ),
          },
          { requiredKeys: [] },
        ),
        fc.anything(),
      ),
      async (body) => {
        const res = await request(plane.broker.app)
          .post(`/v1/nodes/${node.id}/heartbeat`)
          .set('Authorization', `Bearer ${node.token}`)
          .set('Content-Type', 'application/json')
          .send(json(body));
        expectAnswer(res, [200, 400]);
      },
    ),
    { numRuns: 150 },
  );
});

test('2. session-creation bodies never produce a 5xx other than no_capacity, and leak nothing', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.record(
          {
            region: maybe(fc.constantFrom('eu-west', 'us-east', 'ap-south', 'nowhere', '', 'EU-WEST')),
            public_key: maybe(key),
            ttl_seconds: maybe(fc.oneof(fc.integer({ min: -10, max: 40 * 24 * 3600 }), fc.double())),
            preshared_key: maybe(fc.boolean()),
          },
          { requiredKeys: [] },
        ),
        fc.anything(),
      ),
      async (body) => {
        const res = await plane
          .as(biz, 'post', '/v1/sessions')
          .set('Content-Type', 'application/json')
          .send(json(body));
        expectAnswer(res, [201, 400, 403, 409, 429, 503]);
        if (res.status === 503) expect(res.body.error).toBe('no_capacity');
      },
    ),
    { numRuns: 150 },
  );
  await checkPlane(plane.broker.redis, 'eu-west');
});

test('3. register bodies never produce a 5xx', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.record(
        {
          region: maybe(fc.constantFrom('eu-west', 'us-east')),
          endpoint: maybe(
            fc.oneof(fc.string(), fc.constant('[2001:db8::1]:51820'), fc.constant('vpn.example.com:1')),
          ),
          public_key: maybe(key),
          egress_ips: maybe(fc.array(fc.oneof(fc.ipV4(), fc.ipV6(), fc.string()), { maxLength: 4 })),
          capacity: maybe(fc.integer({ min: -1, max: 2 ** 23 })),
          version: maybe(fc.string()),
        },
        { requiredKeys: [] },
      ),
      async (body) => {
        const res = await request(plane.broker.app)
          .post('/v1/nodes/register')
          .set('Authorization', `Bearer ${node.token}`)
          .send(body);
        expectAnswer(res, [200, 400]);
      },
    ),
    { numRuns: 150 },
  );
});

test('4. feed cursors and waits never produce a 5xx', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.string(),
        fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => `${a}-${b}`),
        fc.constant('18446744073709551615-18446744073709551615'),
      ),
      fc.oneof(fc.constant('0'), fc.string()),
      async (cursor, wait) => {
        const res = await request(plane.broker.app)
          .get(`/v1/nodes/${node.id}/peers`)
          .query({ cursor, wait })
          .set('Authorization', `Bearer ${node.token}`);
        expectAnswer(res, [200, 400]);
      },
    ),
    { numRuns: 150 },
  );
});

test('5. the address plan is injective and inside 10.64.0.0/10 and fd64::/64', () => {
  const seen = new Map<string, number>();
  fc.assert(
    fc.property(fc.integer({ min: 2, max: MAX_ADDRESS_INDEX }), (index) => {
      const { v4, v6 } = tunnelAddresses(index);
      expect(canonicalIp(v4)).toBe(v4);
      expect(canonicalIp(v6)).toBe(v6);
      const [a, b, c, d] = v4.split('.').map(Number) as [number, number, number, number];
      expect(a).toBe(10);
      expect(((b << 16) | (c << 8) | d) - (64 << 16)).toBe(index);
      expect(v6.startsWith('fd64::')).toBe(true);
      const previous = seen.get(v4);
      expect(previous === undefined || previous === index).toBe(true);
      seen.set(v4, index);
    }),
    { numRuns: 2000 },
  );
});
