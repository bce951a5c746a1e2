// Checkout link and the Stripe webhook: signed with the stripe package's own test signer.
import request from 'supertest';
import Stripe from 'stripe';
import { keys } from '../../src/broker/store/keys.js';
import { startBroker, type TestBroker } from './helpers.js';

const SECRET = 'whsec_test_secret_for_tunnelbyte';
const LINK = 'https://buy.stripe.com/test_14k5nQ';
const now = Date.parse('2026-04-01T00:00:00Z');
let broker: TestBroker;
const FP = '0123456789abcdef';

beforeAll(async () => {
  broker = await startBroker({
    clock: () => now,
    env: {
      PUBLIC_BURST: '100000',
      STRIPE_PAYMENT_LINK: LINK,
      STRIPE_WEBHOOK_SECRET: SECRET,
      TB_TIERS: JSON.stringify({ free: { requestsPerMinute: 100000 } }),
    },
  });
});
afterAll(async () => broker.close());

const api = () => request(broker.app);
const as = (token: string, fingerprint: string | undefined = FP) =>
  fingerprint
    ? { Authorization: `Bearer ${token}`, 'X-Machine-Fingerprint': fingerprint }
    : { Authorization: `Bearer ${token}` };

let eventCounter = 0;
function event(type: string, object: Record<string, unknown>) {
  return JSON.stringify({ id: `evt_${++eventCounter}_${now}`, object: 'event', type, data: { object } });
}

function deliver(payload: string, options: { secret?: string; timestamp?: number } = {}) {
  const header = Stripe.webhooks.generateTestHeaderString({
    payload,
    secret: options.secret ?? SECRET,
    timestamp: options.timestamp ?? Math.floor(now / 1000),
  });
  return api()
    .post('/v1/webhooks/stripe')
    .set('Content-Type', 'application/json')
    .set('Stripe-Signature', header)
    .send(payload);
}

async function freeAccount() {
  const res = await api().post('/v1/auth/signup').send({ fingerprint: FP });
  return { token: res.body.api_key as string, id: res.body.user.id as string };
}

async function plan(id: string) {
  return broker.redis.hget(keys.account(id), 'plan');
}

describe('POST /v1/billing/checkout', () => {
  test('the payment link tagged with the account id; credentials held pending, password hashed', async () => {
    const { token, id } = await freeAccount();
    const res = await api()
      .post('/v1/billing/checkout')
      .set(as(token))
      .send({ email: 'Buyer@Example.com', password: 'hunter2hunter2' });
    expect(res.status).toBe(200);
    const url = new URL(res.body.url);
    expect(`${url.origin}${url.pathname}`).toBe(LINK);
    // The account id and the nonce of this checkout: only a paid checkout carrying it attaches them.
    const [refAccount, nonce] = url.searchParams.get('client_reference_id')!.split('-');
    expect(refAccount).toBe(id);
    expect(nonce).toMatch(/^[0-9A-Za-z]{24}$/);
    expect(url.searchParams.get('prefilled_email')).toBe('buyer@example.com');
    const pending = await broker.redis.hgetall(keys.pendingCheckout(id));
    expect(pending.email).toBe('buyer@example.com');
    expect(pending.password_hash).toMatch(/^scrypt\$/);
    expect(pending.nonce).toBe(nonce);
    expect(JSON.stringify(pending)).not.toContain('hunter2');
  });

  test.each([
    [{ email: 'not-an-email', password: 'longenough' }, 'email'],
    [{ email: 'a@example.com', password: 'short' }, 'password'],
    [{}, 'email'],
  ])('bad body %j → 400 field %s', async (body, field) => {
    const { token } = await freeAccount();
    const res = await api().post('/v1/billing/checkout').set(as(token)).send(body);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_request', field });
  });

  test('an email owned by another account: the same 200 as any other (checkout enumerates no email)', async () => {
    const { token, id } = await freeAccount();
    await broker.redis.set(keys.email('taken@example.com'), 'usr_someoneelse');
    const res = await api()
      .post('/v1/billing/checkout')
      .set(as(token))
      .send({ email: 'taken@example.com', password: 'longenough' });
    expect(res.status).toBe(200);
    expect(Object.keys(res.body)).toEqual(['url']);
    // Held pending like any other; the paid checkout's webhook refuses it (security-billing tests).
    expect((await broker.redis.hgetall(keys.pendingCheckout(id))).email).toBe('taken@example.com');
    expect(await broker.redis.get(keys.email('taken@example.com'))).toBe('usr_someoneelse');
  });

  test('billing not configured → 503 unavailable with Retry-After', async () => {
    const bare = await broker.another({ env: { STRIPE_PAYMENT_LINK: '' } });
    const { token } = await freeAccount();
    const res = await request(bare)
      .post('/v1/billing/checkout')
      .set(as(token))
      .send({ email: 'x@example.com', password: 'longenough' });
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ error: 'unavailable', code: 5030 });
    expect(res.headers['retry-after']).toBeDefined();
  });
});

describe('POST /v1/webhooks/stripe', () => {
  test('checkout.session.completed upgrades once: portable token, credentials attached, login works', async () => {
    const { token, id } = await freeAccount();
    const checkout = await api()
      .post('/v1/billing/checkout')
      .set(as(token))
      .send({ email: 'payer@example.com', password: 'paid-password' });
    const payload = event('checkout.session.completed', {
      id: 'cs_test_1',
      object: 'checkout.session',
      payment_status: 'paid',
      client_reference_id: new URL(checkout.body.url).searchParams.get('client_reference_id'),
      customer: 'cus_123',
      subscription: 'sub_123',
      metadata: {},
    });
    const res = await deliver(payload);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ received: true, outcome: 'applied' });
    expect(await plan(id)).toBe('pro');
    // Paid tokens ignore the machine fingerprint.
    expect((await api().get('/v1/auth/key').set(as(token, undefined))).status).toBe(200);
    expect((await api().get('/v1/auth/key').set(as(token, 'ffffffffffffffff'))).status).toBe(200);
    const login = await api()
      .post('/v1/auth/login')
      .send({ email: 'payer@example.com', password: 'paid-password' });
    expect(login.status).toBe(200);
    expect(login.body.user).toMatchObject({ id, email: 'payer@example.com', plan: 'pro' });
    expect(await broker.redis.exists(keys.pendingCheckout(id))).toBe(0);

    // Replay of the same event id: nothing changes, even after the account moved on.
    await broker.redis.hset(keys.account(id), 'plan', 'business');
    const replay = await deliver(payload);
    expect(replay.body).toEqual({ received: true, outcome: 'duplicate' });
    expect(await plan(id)).toBe('business');
  });

  test('metadata.plan chooses the paid plan; customer.subscription.deleted returns to free and rebinds', async () => {
    const { token, id } = await freeAccount();
    await deliver(
      event('checkout.session.completed', {
        id: 'cs_test_2',
        payment_status: 'paid',
        client_reference_id: id,
        customer: 'cus_biz',
        subscription: 'sub_biz',
        metadata: { plan: 'business' },
      }),
    );
    expect(await plan(id)).toBe('business');
    // Deleting some other subscription of the customer changes nothing.
    await deliver(
      event('customer.subscription.deleted', {
        id: 'sub_other',
        object: 'subscription',
        customer: 'cus_biz',
      }),
    );
    expect(await plan(id)).toBe('business');
    const res = await deliver(
      event('customer.subscription.deleted', { id: 'sub_biz', object: 'subscription', customer: 'cus_biz' }),
    );
    expect(res.body.outcome).toBe('applied');
    expect(await plan(id)).toBe('free');
    expect((await api().get('/v1/auth/key').set(as(token, 'ffffffffffffffff'))).status).toBe(401);
    expect((await api().get('/v1/auth/key').set(as(token))).status).toBe(200);
  });

  test('other event types are acknowledged and ignored; unknown accounts are ignored', async () => {
    expect((await deliver(event('invoice.paid', { id: 'in_1' }))).body.outcome).toBe('ignored');
    const res = await deliver(
      event('checkout.session.completed', {
        id: 'cs_x',
        payment_status: 'paid',
        client_reference_id: 'usr_ghost',
      }),
    );
    expect(res.body.outcome).toBe('ignored');
    expect(await broker.redis.exists(keys.account('usr_ghost'))).toBe(0);
  });

  test.each([
    ['wrong secret', { secret: 'whsec_wrong' }],
    ['stale timestamp (301 s)', { timestamp: Math.floor(now / 1000) - 301 }],
    ['future timestamp (301 s)', { timestamp: Math.floor(now / 1000) + 301 }],
  ])('%s → 400, no state change', async (_label, options) => {
    const { id } = await freeAccount();
    const payload = event('checkout.session.completed', {
      id: 'cs_bad',
      payment_status: 'paid',
      client_reference_id: id,
    });
    const res = await deliver(payload, options);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_request', code: 4000, field: 'stripe-signature' });
    expect(await plan(id)).toBe('free');
    // The event was not consumed: a correctly signed delivery still applies.
    expect((await deliver(payload)).body.outcome).toBe('applied');
    expect(await plan(id)).toBe('pro');
  });

  // Correctly signed, but not an event the broker can apply: 400 naming the part, never a 500 (which
  // Stripe would retry for days) and never one idempotency mark shared by every event without an id.
  test.each([
    [1, '[1,2]', 'body'],
    [2, '{"object":"event","type":"invoice.paid","data":{"object":{}}}', 'id'],
    [3, '{"id":"evt_shape_3","object":"event","data":{"object":{}}}', 'type'],
    [4, '{"id":"evt_shape_4","object":"event","type":"checkout.session.completed"}', 'data'],
    [
      5,
      '{"id":"evt_shape_5","object":"event","type":"customer.subscription.updated","data":{"object":null}}',
      'data.object',
    ],
    [6, '{"id":7,"object":"event","type":"invoice.paid","data":{"object":{}}}', 'id'],
  ])('%i: a signed payload that is no event (%s) → 400 on %s', async (_n, payload, field) => {
    const res = await deliver(payload);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_request', code: 4000, field });
    // Each is refused on its own: none is marked as applied for the next.
    expect((await deliver(payload)).status).toBe(400);
  });

  test('a body altered after signing → 400', async () => {
    const { id } = await freeAccount();
    const payload = event('checkout.session.completed', {
      id: 'cs_t',
      payment_status: 'paid',
      client_reference_id: id,
    });
    const header = Stripe.webhooks.generateTestHeaderString({
      payload,
      secret: SECRET,
      timestamp: Math.floor(now / 1000),
    });
    const tampered = payload.replace('"cs_t"', '"cs_u"');
    const res = await api()
      .post('/v1/webhooks/stripe')
      .set('Content-Type', 'application/json')
      .set('Stripe-Signature', header)
      .send(tampered);
    expect(res.status).toBe(400);
    expect(await plan(id)).toBe('free');
  });

  test('missing signature header → 400; webhooks unconfigured → 503', async () => {
    const res = await api().post('/v1/webhooks/stripe').set('Content-Type', 'application/json').send('{}');
    expect(res.body).toMatchObject({ error: 'invalid_request', field: 'stripe-signature' });
    const bare = await broker.another({ env: { STRIPE_WEBHOOK_SECRET: '' } });
    const off = await request(bare).post('/v1/webhooks/stripe').set('Stripe-Signature', 't=1,v1=00').send({});
    expect(off.status).toBe(503);
  });
});
