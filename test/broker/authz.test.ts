// The authorization matrix over the account, key, billing and admin endpoints.
import { startBroker, type TestBroker } from './helpers.js';
import { authorizationMatrix, createAuthFixture, type AuthFixture, type EndpointRow } from './authz.js';
import { issueKey } from '../../src/broker/services/accounts.js';
import { createNodeToken } from '../../src/broker/services/enrollment.js';
import { registerNode } from '../../src/broker/services/nodes.js';
import { keyPair } from './sessions-fixture.js';
import { upsertRegion } from '../../src/broker/services/regions.js';

let now = Date.parse('2026-02-01T00:00:00Z');
let broker: TestBroker;
let fx: AuthFixture;

beforeAll(async () => {
  broker = await startBroker({
    clock: () => now,
    env: {
      PUBLIC_BURST: '100000',
      TB_TIERS: JSON.stringify({ free: { requestsPerMinute: 100000 } }),
      STRIPE_PAYMENT_LINK: 'https://buy.stripe.com/test_abc',
    },
  });
  fx = await createAuthFixture(broker.app, (ms) => {
    now += ms;
  });
  await upsertRegion(broker.ctx, { id: 'eu-west', name: 'Frankfurt', country: 'DE', tiers: ['free'] });
});
afterAll(async () => broker.close());

const at = (path: string, body?: unknown) => async () => ({ path, body });

const ACCOUNT_ROWS: EndpointRow[] = [
  { name: 'POST /v1/auth/logout', method: 'post', as: 'user', ok: 204, prepare: at('/v1/auth/logout') },
  {
    name: 'GET /v1/auth/user',
    method: 'get',
    as: 'user',
    scope: 'account:read',
    ok: 200,
    prepare: at('/v1/auth/user'),
  },
  { name: 'GET /v1/auth/key', method: 'get', as: 'user', ok: 200, prepare: at('/v1/auth/key') },
  { name: 'GET /v1/auth/test', method: 'get', as: 'user', ok: 200, prepare: at('/v1/auth/test') },
  {
    name: 'GET /v1/auth/keys',
    method: 'get',
    as: 'user',
    scope: 'keys:manage',
    ok: 200,
    prepare: at('/v1/auth/keys'),
  },
  {
    name: 'POST /v1/auth/keys',
    method: 'post',
    as: 'user',
    scope: 'keys:manage',
    ok: 201,
    prepare: at('/v1/auth/keys', { name: 'ci', permissions: ['tunnels:read'] }),
  },
  {
    name: 'DELETE /v1/auth/keys/{id}',
    method: 'delete',
    as: 'user',
    scope: 'keys:manage',
    ok: 204,
    ownsObject: true,
    prepare: async (f, owner) => {
      const { key } = await issueKey(f.ctx, owner.account.id, {
        name: 'victim',
        permissions: ['tunnels:read'],
        fingerprint: owner.fingerprint ?? null,
        expiresAt: null,
      });
      return { path: `/v1/auth/keys/${key.id}` };
    },
  },
  {
    name: 'POST /v1/billing/checkout',
    method: 'post',
    as: 'user',
    scope: 'account:write',
    ok: 200,
    prepare: async () => ({
      path: '/v1/billing/checkout',
      body: { email: `u${now}@example.com`, password: 'correct horse' },
    }),
  },
  {
    name: 'POST /v1/admin/regions',
    method: 'post',
    as: 'operator',
    scope: 'admin:write',
    ok: 201,
    prepare: async () => ({
      path: '/v1/admin/regions',
      body: { id: `r-${++regionCounter}`, name: 'R', country: 'FR' },
    }),
  },
  {
    name: 'GET /v1/admin/regions',
    method: 'get',
    as: 'operator',
    scope: 'admin:read',
    ok: 200,
    prepare: at('/v1/admin/regions'),
  },
  {
    name: 'PATCH /v1/admin/regions/{id}',
    method: 'patch',
    as: 'operator',
    scope: 'admin:write',
    ok: 200,
    prepare: at('/v1/admin/regions/eu-west', { name: 'Frankfurt am Main' }),
  },
  {
    name: 'DELETE /v1/admin/regions/{id}',
    method: 'delete',
    as: 'operator',
    scope: 'admin:write',
    ok: 200,
    prepare: async (f) => {
      const id = `r-${++regionCounter}`;
      await upsertRegion(f.ctx, { id, name: 'R', country: 'FR', tiers: ['free'] });
      return { path: `/v1/admin/regions/${id}` };
    },
  },
  {
    name: 'POST /v1/admin/node-tokens',
    method: 'post',
    as: 'operator',
    scope: 'admin:write',
    ok: 201,
    prepare: at('/v1/admin/node-tokens', { region: 'eu-west' }),
  },
  {
    name: 'GET /v1/admin/node-tokens',
    method: 'get',
    as: 'operator',
    scope: 'admin:read',
    ok: 200,
    prepare: at('/v1/admin/node-tokens'),
  },
  {
    name: 'DELETE /v1/admin/node-tokens/{id}',
    method: 'delete',
    as: 'operator',
    scope: 'admin:write',
    ok: 204,
    prepare: async (f) => ({
      path: `/v1/admin/node-tokens/${(await createNodeToken(f.ctx, 'eu-west')).tokenId}`,
    }),
  },
  {
    name: 'DELETE /v1/admin/nodes/{id}',
    method: 'delete',
    as: 'operator',
    scope: 'admin:write',
    ok: 204,
    prepare: async (f) => {
      const enrolled = await createNodeToken(f.ctx, 'eu-west');
      const { nodeId } = await registerNode(f.ctx, enrolled, {
        region: 'eu-west',
        endpoint: '198.51.100.9:51820',
        publicKey: keyPair().publicKey,
        egressIps: [],
        capacity: 10,
        version: 'authz',
      });
      return { path: `/v1/admin/nodes/${nodeId}` };
    },
  },
  {
    name: 'GET /v1/admin/nodes',
    method: 'get',
    as: 'operator',
    scope: 'admin:read',
    ok: 200,
    prepare: at('/v1/admin/nodes'),
  },
];
let regionCounter = 0;

authorizationMatrix('accounts, keys, billing, admin', () => fx, ACCOUNT_ROWS);
