// Random paths, methods, bodies, headers and source addresses never produce a 5xx while Redis is
// up, and every error answer has the contract's shape.
import fc from 'fast-check';
import request from 'supertest';
import { ERRORS } from '../../src/broker/errors.js';
import { USER_SCOPES } from '../../src/broker/scopes.js';
import { issueKey } from '../../src/broker/services/accounts.js';
import { routedPath } from '../../src/broker/routes/index.js';
import { ROUTES, startBroker, type TestBroker } from './helpers.js';

let broker: TestBroker;
let accountId: string;
const FP = '00112233445566778899';

/** A fresh key per run, so a fuzzed logout or key deletion cannot starve later runs. */
const freshToken = async () =>
  (
    await issueKey(broker.ctx, accountId, {
      name: 'fuzz',
      permissions: [...USER_SCOPES],
      fingerprint: FP,
      expiresAt: null,
    })
  ).token;

beforeAll(async () => {
  broker = await startBroker({
    env: {
      PUBLIC_BURST: '1000000',
      TRUSTED_PROXIES: 'loopback',
      TB_TIERS: JSON.stringify({ free: { requestsPerMinute: 1000000 } }),
      STRIPE_WEBHOOK_SECRET: 'whsec_fuzz',
      STRIPE_PAYMENT_LINK: 'https://buy.stripe.com/test_fuzz',
      // One key per run, hundreds of runs on one account.
      TB_MAX_KEYS_PER_ACCOUNT: '1000000',
    },
  });
  accountId = (await request(broker.app).post('/v1/auth/signup').send({ fingerprint: FP })).body.user.id;
});
afterAll(async () => broker.close());

const KNOWN_PATHS = ROUTES.map((route) =>
  route.replace('{addr}', '1.2.3.4').replace('{id}', 'key_x').replace('{client_id}', 'app_x'),
);
/** RFC 6749 §5.2 answers these (docs/API.md "OAuth 2.0"); the pages answer in HTML. */
const OAUTH_FORM_ENDPOINTS = ['/v1/oauth/token', '/v1/oauth/revoke'];

const path = fc.oneof(
  fc.constantFrom(...KNOWN_PATHS),
  fc.tuple(fc.constantFrom(...KNOWN_PATHS), fc.webSegment()).map(([p, s]) => `${p}/${s}`),
  fc
    .tuple(fc.constantFrom('/v1/ip/', '/v1/auth/keys/'), fc.string())
    .map(([p, s]) => p + encodeURIComponent(s)),
  fc.tuple(fc.constantFrom(...KNOWN_PATHS), fc.webQueryParameters()).map(([p, q]) => `${p}?${q}`),
  fc.webPath().map((p) => `/${p.replace(/^\/+/, '')}`),
);

const authorization = fc.oneof(
  fc.constant(undefined),
  fc.constant('TOKEN'),
  fc.string().map((s) => `Bearer ${s}`),
  fc
    .string({ unit: fc.constantFrom(...'abcXYZ019'.split('')), minLength: 38, maxLength: 38 })
    .map((s) => `Bearer tb_${s}`),
);

const headerValue = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
});

const body = fc.oneof(
  fc.constant(undefined),
  fc.json().map((text) => ({ text, type: 'application/json' })),
  fc.jsonValue().map((v) => ({ text: JSON.stringify(v), type: 'application/json' })),
  fc.record({
    text: fc.string(),
    type: fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded'),
  }),
  fc
    .record(
      {
        fingerprint: fc.string(),
        email: fc.string(),
        password: fc.string(),
        name: fc.string(),
        permissions: fc.array(fc.string()),
      },
      { requiredKeys: [] },
    )
    .map((v) => ({ text: JSON.stringify(v), type: 'application/json' })),
);

test('no input gives a 5xx; errors have the contract shape', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom('get', 'post', 'delete', 'put', 'patch'),
      path,
      authorization,
      fc.boolean(),
      fc.option(headerValue),
      fc.option(fc.oneof(fc.ipV4(), fc.ipV6(), headerValue)),
      body,
      async (method, target, auth, useRealToken, fingerprint, forwardedFor, payload) => {
        let req = request(broker.app)[method as 'get'](target);
        const presented = useRealToken ? `Bearer ${await freshToken()}` : auth;
        if (presented !== undefined) req = req.set('Authorization', presented);
        if (fingerprint !== null) req = req.set('X-Machine-Fingerprint', useRealToken ? FP : fingerprint);
        if (forwardedFor !== null) req = req.set('X-Forwarded-For', forwardedFor);
        if (payload) req = req.set('Content-Type', payload.type).send(payload.text);
        const res = await req;
        expect(res.status).toBeLessThan(500);
        expect(res.headers['x-request-id']).toBeDefined();
        const oauthForm =
          method === 'post' &&
          OAUTH_FORM_ENDPOINTS.includes(routedPath(new URL(target, 'http://x').pathname));
        if (res.status >= 400 && oauthForm) {
          expect(res.body).toEqual({ error: expect.any(String), error_description: expect.any(String) });
        } else if (res.status >= 400 && res.type === 'text/html') {
          expect(res.text).toMatch(/^<!doctype html>/);
        } else if (res.status >= 400) {
          const spec = ERRORS[res.body.error as keyof typeof ERRORS];
          expect(spec).toBeDefined();
          expect(res.body).toMatchObject({ code: spec.code, message: expect.any(String) });
          expect(res.status).toBe(spec.status);
        }
      },
    ),
    { numRuns: 400 },
  );
});
