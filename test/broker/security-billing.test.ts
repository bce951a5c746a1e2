// Issue 9, findings 1 to 3, as attacks over HTTP on a broker with a real Redis and Stripe events signed
// by the stripe package: taking an account over with a narrow key or someone else's payment, a paid
// plan without payment, and ending someone's plan by paying for it and cancelling.
import request from 'supertest';
import Stripe from 'stripe';
import { keys } from '../../src/broker/store/keys.js';
import { startBroker, type TestBroker } from './helpers.js';

const SECRET = 'whsec_security_suite';
const LINK = 'https://buy.stripe.com/test_security';
const DAY = 24 * 3600 * 1000;
let now = Date.parse('2026-06-01T00:00:00Z');
let broker: TestBroker;
const FP = 'feedfacefeedface';

beforeAll(async () => {
  broker = await startBroker({
    clock: () => now,
    env: {
      PUBLIC_BURST: '100000',
      TRUSTED_PROXIES: 'loopback',
      STRIPE_PAYMENT_LINK: LINK,
      STRIPE_WEBHOOK_SECRET: SECRET,
      TB_TIERS: JSON.stringify({ free: { requestsPerMinute: 100000 }, pro: { requestsPerMinute: 100000 } }),
    },
  });
});
afterAll(async () => broker.close());

const api = () => request(broker.app);
const auth = (token: string) => ({ Authorization: `Bearer ${token}`, 'X-Machine-Fingerprint': FP });

let counter = 0;
const unique = (label: string) => `${label}${++counter}`;

function deliver(type: string, object: Record<string, unknown>) {
  const payload = JSON.stringify({ id: unique('evt_sec_'), object: 'event', type, data: { object } });
  const header = Stripe.webhooks.generateTestHeaderString({
    payload,
    secret: SECRET,
    timestamp: Math.floor(now / 1000),
  });
  return api()
    .post('/v1/webhooks/stripe')
    .set('Content-Type', 'application/json')
    .set('Stripe-Signature', header)
    .send(payload);
}

const paid = (reference: string, extra: Record<string, unknown> = {}) =>
  deliver('checkout.session.completed', {
    id: unique('cs_sec_'),
    object: 'checkout.session',
    payment_status: 'paid',
    client_reference_id: reference,
    customer: unique('cus_sec_'),
    subscription: unique('sub_sec_'),
    metadata: {},
    ...extra,
  });

async function signup() {
  const res = await api().post('/v1/auth/signup').send({ fingerprint: FP });
  return { token: res.body.api_key as string, id: res.body.user.id as string };
}

async function checkout(token: string, body: Record<string, unknown>) {
  return api().post('/v1/billing/checkout').set(auth(token)).send(body);
}

const referenceOf = (res: request.Response) =>
  new URL(res.body.url as string).searchParams.get('client_reference_id')!;

/** A paid account with credentials, the way a real user gets one: checkout, then Stripe's webhook. */
async function owner(email: string, password: string) {
  const { token, id } = await signup();
  const started = await checkout(token, { email, password });
  expect(started.status).toBe(200);
  const customer = unique('cus_owner_');
  const subscription = unique('sub_owner_');
  expect((await paid(referenceOf(started), { customer, subscription })).body.outcome).toBe('applied');
  return { token, id, customer, subscription };
}

const login = (email: string, password: string) =>
  api()
    .post('/v1/auth/login')
    .set('X-Forwarded-For', `192.0.2.${++counter % 250}`)
    .send({ email, password });

const planOf = async (token: string) =>
  (await api().get('/v1/auth/user').set(auth(token))).body.plan as string;

async function narrowKey(token: string, permissions: string[]) {
  const res = await api().post('/v1/auth/keys').set(auth(token)).send({ name: 'narrow', permissions });
  expect(res.status).toBe(201);
  return res.body.key as string;
}

describe('finding 1: account takeover through checkout', () => {
  test('a billing:read key cannot change credentials; the original password still logs in after checkout and webhook', async () => {
    const victim = await owner('victim1@example.com', 'victims-password');
    const narrow = await narrowKey(victim.token, ['billing:read']);
    const attempt = await checkout(narrow, {
      email: 'attacker1@example.com',
      password: 'attackers-password',
    });
    expect(attempt.status).toBe(403);
    expect(attempt.body).toMatchObject({ error: 'forbidden', required_scope: 'account:write' });
    // Whoever pays with the victim's (visible) id changes nothing about its credentials either.
    expect((await paid(victim.id)).body.outcome).toBe('applied');
    expect((await login('victim1@example.com', 'victims-password')).status).toBe(200);
    expect((await login('attacker1@example.com', 'attackers-password')).status).toBe(401);
  });

  test('account:write without the current password cannot replace the credentials', async () => {
    const victim = await owner('victim2@example.com', 'victims-password');
    const key = await narrowKey(victim.token, ['account:write']);
    const missing = await checkout(key, { email: 'attacker2@example.com', password: 'attackers-password' });
    expect(missing.status).toBe(400);
    expect(missing.body).toMatchObject({ error: 'invalid_request', field: 'current_password' });
    const wrong = await checkout(key, {
      email: 'attacker2@example.com',
      password: 'attackers-password',
      current_password: 'a-guess',
    });
    expect(wrong.status).toBe(400);
    expect(wrong.body).toMatchObject({ error: 'invalid_request', field: 'current_password' });
    expect((await login('victim2@example.com', 'victims-password')).status).toBe(200);
    expect((await login('attacker2@example.com', 'attackers-password')).status).toBe(401);
  });

  test('pending credentials attach only through the checkout the broker started (its nonce), never over existing ones', async () => {
    const { token, id } = await signup();
    const started = await checkout(token, { email: 'buyer3@example.com', password: 'buyers-password' });
    // A payment tagged with the bare account id, or with a made-up nonce, attaches nothing.
    expect((await paid(id)).body.outcome).toBe('applied');
    expect((await paid(`${id}-madeUpNonce123`)).body.outcome).toBe('applied');
    expect((await login('buyer3@example.com', 'buyers-password')).status).toBe(401);
    // The broker's own checkout does.
    expect((await paid(referenceOf(started))).body.outcome).toBe('applied');
    expect((await login('buyer3@example.com', 'buyers-password')).status).toBe(200);
    // The same checkout delivered again (a new event id) cannot attach anything else.
    await broker.redis.hset(keys.pendingCheckout(id), {
      email: 'late@example.com',
      password_hash: 'scrypt$1$1$1$AA==$AA==',
      nonce: referenceOf(started).split('-')[1]!,
    });
    expect((await paid(referenceOf(started))).body.outcome).toBe('applied');
    expect((await login('buyer3@example.com', 'buyers-password')).status).toBe(200);
    expect(await broker.redis.get(keys.email('late@example.com'))).toBeNull();
  });

  test('the owner changes email with current_password; the old email is released', async () => {
    const me = await owner('old4@example.com', 'first-password');
    const changed = await checkout(me.token, {
      email: 'new4@example.com',
      password: 'second-password',
      current_password: 'first-password',
    });
    expect(changed.status).toBe(200);
    expect((await login('new4@example.com', 'second-password')).status).toBe(200);
    expect((await login('old4@example.com', 'first-password')).status).toBe(401);
    // Another account may now use the old email.
    const other = await signup();
    expect(
      (await checkout(other.token, { email: 'old4@example.com', password: 'someone-else' })).status,
    ).toBe(200);
  });
});

describe('finding 2: a paid plan needs a payment', () => {
  test('an unpaid checkout changes nothing; the asynchronous payment succeeding makes it paid', async () => {
    const { token } = await signup();
    const started = await checkout(token, { email: 'async@example.com', password: 'async-password' });
    const session = {
      id: unique('cs_async_'),
      object: 'checkout.session',
      payment_status: 'unpaid',
      client_reference_id: referenceOf(started),
      customer: unique('cus_async_'),
      subscription: unique('sub_async_'),
      metadata: {},
    };
    expect((await deliver('checkout.session.completed', session)).body.outcome).toBe('ignored');
    expect(await planOf(token)).toBe('free');
    expect((await login('async@example.com', 'async-password')).status).toBe(401);
    const succeeded = await deliver('checkout.session.async_payment_succeeded', {
      ...session,
      payment_status: 'paid',
    });
    expect(succeeded.body.outcome).toBe('applied');
    expect(await planOf(token)).toBe('pro');
    expect((await login('async@example.com', 'async-password')).status).toBe(200);
  });

  test('a failed asynchronous payment leaves the account free and drops its pending credentials', async () => {
    const { token, id } = await signup();
    const started = await checkout(token, { email: 'failed@example.com', password: 'failed-password' });
    const failed = await deliver('checkout.session.async_payment_failed', {
      id: unique('cs_failed_'),
      payment_status: 'unpaid',
      client_reference_id: referenceOf(started),
    });
    expect(failed.body.outcome).toBe('applied');
    expect(await planOf(token)).toBe('free');
    expect(await broker.redis.exists(keys.pendingCheckout(id))).toBe(0);
  });

  test('a one-time payment buys one 30-day period, not a plan forever', async () => {
    const { token, id } = await signup();
    expect((await paid(id, { subscription: null })).body.outcome).toBe('applied');
    expect(await planOf(token)).toBe('pro');
    now += 29 * DAY;
    expect(await planOf(token)).toBe('pro');
    now += 2 * DAY;
    expect(await planOf(token)).toBe('free');
  });

  test('customer.subscription.updated: past_due, unpaid or canceled end the plan at the period end; active restores it', async () => {
    const me = await owner(unique('dunning') + '@example.com', 'dunning-password');
    const update = (status: string, periodEnd: number) =>
      deliver('customer.subscription.updated', {
        id: me.subscription,
        object: 'subscription',
        customer: me.customer,
        status,
        current_period_end: Math.floor(periodEnd / 1000),
      });
    expect((await update('past_due', now + 10 * DAY)).body.outcome).toBe('applied');
    expect(await planOf(me.token)).toBe('pro');
    now += 11 * DAY;
    expect(await planOf(me.token)).toBe('free');
    expect((await update('active', now + 30 * DAY)).body.outcome).toBe('applied');
    expect(await planOf(me.token)).toBe('pro');
    await update('canceled', now + DAY);
    now += 2 * DAY;
    expect(await planOf(me.token)).toBe('free');
  });
});

describe('finding 3: nobody can cancel someone else’s plan', () => {
  test('paying with the victim’s id and cancelling leaves the victim’s own subscription in force', async () => {
    const victim = await owner(unique('subvictim') + '@example.com', 'victim-password');
    const attackerCustomer = unique('cus_attacker_');
    const attackerSub = unique('sub_attacker_');
    await paid(victim.id, { customer: attackerCustomer, subscription: attackerSub });
    expect(await broker.redis.hget(keys.account(victim.id), 'stripe_customer')).toBe(victim.customer);
    const cancelled = await deliver('customer.subscription.deleted', {
      id: attackerSub,
      object: 'subscription',
      customer: attackerCustomer,
    });
    expect(cancelled.body.outcome).toBe('applied');
    expect(await planOf(victim.token)).toBe('pro');
    // Deleting the victim's subscription through the attacker's customer does nothing either.
    await deliver('customer.subscription.deleted', {
      id: victim.subscription,
      object: 'subscription',
      customer: attackerCustomer,
    });
    expect(await planOf(victim.token)).toBe('pro');
    // The victim's own cancellation still ends it.
    await deliver('customer.subscription.deleted', {
      id: victim.subscription,
      object: 'subscription',
      customer: victim.customer,
    });
    expect(await planOf(victim.token)).toBe('free');
  });

  test('a checkout never moves an existing customer to another account', async () => {
    const first = await owner(unique('cust') + '@example.com', 'first-password');
    const second = await signup();
    await paid(second.id, { customer: first.customer, subscription: unique('sub_other_') });
    expect(await broker.redis.get(keys.stripeCustomer(first.customer))).toBe(first.id);
    // The first account's subscription is still its own to cancel.
    await deliver('customer.subscription.deleted', {
      id: first.subscription,
      object: 'subscription',
      customer: first.customer,
    });
    expect(await planOf(first.token)).toBe('free');
    expect(await planOf(second.token)).toBe('pro');
  });
});

// Checkout must not tell anyone whether an email has an account (login already answers every wrong
// pair alike). An account without a password has nothing to prove, so its checkout answers the same
// for every email, and a taken one is refused only when the payment is confirmed, between Stripe and
// the broker. An account with a password proves it first; only then may it learn the email is taken.
describe('checkout enumerates no email', () => {
  const shape = (res: request.Response) => ({
    status: res.status,
    keys: Object.keys(res.body as object).sort(),
    field: (res.body as { field?: string }).field,
  });

  test('1. without a password: a taken email and a free one answer alike; the taken one is not attached when paid', async () => {
    const taken = await owner('taken5@example.com', 'owners-password');
    const prober = await signup();
    const onTaken = await checkout(prober.token, {
      email: 'taken5@example.com',
      password: 'probers-password',
    });
    const other = await signup();
    const onFree = await checkout(other.token, { email: 'free5@example.com', password: 'probers-password' });
    expect(shape(onTaken)).toEqual({ status: 200, keys: ['url'], field: undefined });
    expect(shape(onFree)).toEqual(shape(onTaken));
    // Paying does not hand the prober the owner's email: the account is paid, its email stays unset.
    expect((await paid(referenceOf(onTaken))).body.outcome).toBe('applied');
    const user = await api().get('/v1/auth/user').set(auth(prober.token));
    expect([user.body.plan, user.body.email]).toEqual(['pro', null]);
    expect(await broker.redis.get(keys.email('taken5@example.com'))).toBe(taken.id);
    expect((await login('taken5@example.com', 'owners-password')).status).toBe(200);
    expect((await login('taken5@example.com', 'probers-password')).status).toBe(401);
  });

  test.each([
    [2, 'no current_password', undefined],
    [3, 'a wrong current_password', 'a-wrong-guess'],
  ])('%i. with a password and %s: a taken email and a free one answer alike', async (n, _why, current) => {
    const takenEmail = `taken6-${n}@example.com`;
    await owner(takenEmail, 'owners-password');
    const me = await owner(unique('me') + '@example.com', 'my-password');
    const body = (email: string) => ({
      email,
      password: 'new-password',
      ...(current === undefined ? {} : { current_password: current }),
    });
    const onTaken = await checkout(me.token, body(takenEmail));
    const onFree = await checkout(me.token, body(unique('free6-') + '@example.com'));
    expect(shape(onTaken)).toEqual({
      status: 400,
      keys: ['code', 'error', 'field', 'message'],
      field: 'current_password',
    });
    expect(shape(onFree)).toEqual(shape(onTaken));
    expect(onTaken.body.message).toBe(onFree.body.message);
  });

  test('4. with the right current_password the owner learns the email is taken: 409, nothing changes', async () => {
    const taken = await owner('taken7@example.com', 'owners-password');
    const me = await owner('me7@example.com', 'my-password');
    const res = await checkout(me.token, {
      email: 'taken7@example.com',
      password: 'new-password',
      current_password: 'my-password',
    });
    expect(res.status).toBe(409);
    expect(res.body).toEqual({ error: 'conflict', code: 4009, message: expect.any(String) });
    expect(await broker.redis.get(keys.email('taken7@example.com'))).toBe(taken.id);
    expect((await login('me7@example.com', 'my-password')).status).toBe(200);
  });
});
