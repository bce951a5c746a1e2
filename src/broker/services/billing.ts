// Billing (docs/API.md "Usage and billing"). Checkout sends the user to the operator's Stripe Payment
// Link tagged with the account id and a nonce the broker made; an account without credentials keeps
// the email and password hash it gave as pending until a PAID checkout carrying that same nonce
// arrives. The webhook applies each Stripe event once. Signature checks use the stripe package on the
// raw body.
//
// What an attacker must not be able to do (issue 9): attach credentials to someone else's account
// (the nonce is only in the URL handed to the account's own key holder, and credentials are never
// overwritten by a webhook), get a plan without paying (only `paid` sessions count; a subscription
// that stops being paid ends at its period's end), or end someone's plan by paying for it and then
// cancelling (an account keeps every paid subscription; it is free only when none is active).
import Stripe from 'stripe';
import type { BrokerContext } from '../context.js';
import { ApiError, conflict, invalidRequest, unavailable } from '../errors.js';
import { hashPassword, verifyOrBurn } from '../password.js';
import { keys, TTL } from '../store/keys.js';
import { execAll } from '../store/redis.js';
import { randomBase62 } from '../tokens.js';
import { TIERS, type Tier } from '../config.js';
import { getAccount, keepAccount, normalizeEmail, type Account, type ApiKey } from './accounts.js';
import { takeLoginAttempt } from './backoff.js';
import { endOtherSignIns } from './signin.js';
import { PERIOD_MS } from './usage.js';

const PAID_PLANS: readonly Tier[] = ['pro', 'business'];
const DEFAULT_PAID_PLAN: Tier = 'pro';

/** client_reference_id = "<account id>-<nonce>" (Stripe allows letters, digits, '-' and '_'). */
const REFERENCE = /^(usr_[0-9A-Za-z]{1,64})(?:-([0-9A-Za-z]{1,64}))?$/;

export interface CheckoutInput {
  email: string;
  password: string;
  /** Required once the account has a password. */
  currentPassword: string | undefined;
  /** Rate-limit identity of the caller (current_password guesses count as login failures). */
  source: string;
  /** The token making the request: when the password changes, it is the one sign-in that stays. */
  caller: ApiKey;
}

/** Proves the caller knows the account's password; guesses go through the login back-off. */
async function checkCurrentPassword(
  ctx: BrokerContext,
  account: Account,
  input: CheckoutInput,
): Promise<void> {
  if (input.currentPassword === undefined) {
    throw invalidRequest('current_password', 'This account has a password: send current_password.');
  }
  const attempt = await takeLoginAttempt(ctx, input.source, account.email ?? account.id);
  if (!(await verifyOrBurn(input.currentPassword, account.passwordHash))) {
    throw invalidRequest('current_password', 'current_password is not the account’s password.');
  }
  await attempt.succeeded();
}

/** Moves the account to a new email and password; the old email's index is released. */
async function changeCredentials(
  ctx: BrokerContext,
  account: Account,
  email: string,
  passwordHash: string,
): Promise<void> {
  if (email !== account.email) {
    const claimed = await ctx.redis.set(keys.email(email), account.id, 'NX');
    if (!claimed && (await ctx.redis.get(keys.email(email))) !== account.id) {
      throw conflict('That email belongs to another account.');
    }
  }
  await ctx.redis.hset(keys.account(account.id), { email, password_hash: passwordHash });
  if (account.email && account.email !== email) await releaseEmail(ctx, account.email, account.id);
}

/** Deletes an email's index entry if it still names `accountId` (never someone else's). */
async function releaseEmail(ctx: BrokerContext, email: string, accountId: string): Promise<void> {
  if ((await ctx.redis.get(keys.email(email))) === accountId) await ctx.redis.del(keys.email(email));
}

export async function startCheckout(
  ctx: BrokerContext,
  account: Account,
  input: CheckoutInput,
): Promise<string> {
  const link = ctx.config.stripe.paymentLink;
  if (!link) throw unavailable('Billing is not configured on this broker.');
  const email = normalizeEmail(input.email);
  // No answer may tell whether the email has an account before the caller proved the account's
  // password: an account with one proves it first; one without learns nothing here, and a taken email
  // is refused when the payment is confirmed (attachPending).
  if (account.passwordHash) await checkCurrentPassword(ctx, account, input);
  const passwordHash = await hashPassword(input.password);
  const nonce = randomBase62(24);
  const pending = keys.pendingCheckout(account.id);
  if (account.passwordHash) {
    // The owner proved it: the change applies now, and nothing waits for the webhook.
    await changeCredentials(ctx, account, email, passwordHash);
    if (input.password !== input.currentPassword) await endOtherSignIns(ctx, input.caller);
    await execAll(
      ctx.redis.multi().del(pending).hset(pending, { nonce }).expire(pending, TTL.pendingCheckoutSeconds),
    );
  } else {
    await execAll(
      ctx.redis
        .multi()
        .del(pending)
        .hset(pending, { email, password_hash: passwordHash, nonce })
        .expire(pending, TTL.pendingCheckoutSeconds),
    );
  }
  const url = new URL(link);
  url.searchParams.set('client_reference_id', `${account.id}-${nonce}`);
  url.searchParams.set('prefilled_email', email);
  return url.toString();
}

/** The verified event, or invalid_request (bad signature, stale timestamp, malformed payload). */
export function verifyStripeEvent(
  ctx: BrokerContext,
  rawBody: Buffer | undefined,
  signature: unknown,
): Stripe.Event {
  const secret = ctx.config.stripe.webhookSecret;
  if (!secret) throw unavailable('Stripe webhooks are not configured on this broker.');
  if (typeof signature !== 'string' || signature.length === 0) {
    throw invalidRequest('stripe-signature', 'Missing Stripe-Signature header.');
  }
  if (!rawBody) throw invalidRequest('body', 'Missing event body.');
  const now = ctx.clock();
  const tolerance = ctx.config.stripe.toleranceSeconds;
  const rejected = () =>
    invalidRequest('stripe-signature', 'The Stripe signature does not verify (or is too old).');
  // stripe only refuses old timestamps; one from beyond the tolerance in the future is refused too.
  const signedAt = Number(/(?:^|,)t=(\d+)/.exec(signature)?.[1] ?? NaN);
  if (!(signedAt <= now / 1000 + tolerance)) throw rejected();
  let event: Stripe.Event;
  try {
    event = Stripe.webhooks.constructEvent(rawBody, signature, secret, tolerance, undefined, now);
  } catch {
    throw rejected();
  }
  const missing = missingEventPart(event);
  if (missing) throw invalidRequest(missing, `The payload is not a Stripe event (${missing}).`);
  return event;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The first part an event must have that this payload lacks: `id` (its idempotency mark), `type`, `data.object`. */
function missingEventPart(event: unknown): string | undefined {
  if (!isObject(event)) return 'body';
  if (typeof event.id !== 'string' || event.id === '') return 'id';
  if (typeof event.type !== 'string') return 'type';
  if (!isObject(event.data)) return 'data';
  return isObject(event.data.object) ? undefined : 'data.object';
}

const idOf = (value: unknown): string | null =>
  typeof value === 'string'
    ? value
    : typeof (value as { id?: unknown } | null)?.id === 'string'
      ? (value as { id: string }).id
      : null;

/** One way of being paid: a subscription (until 0 = while it lasts) or a one-time payment's period. */
interface Grant {
  plan: Tier;
  /** ms; 0 = open-ended. */
  until: number;
  /** The Stripe customer paying for it: only events about that customer may change it. */
  customer: string | null;
}

function grantFrom(json: string): Grant | null {
  try {
    const g = JSON.parse(json) as Partial<Grant>;
    return (TIERS as readonly string[]).includes(g.plan ?? '') && typeof g.until === 'number'
      ? { plan: g.plan!, until: g.until, customer: typeof g.customer === 'string' ? g.customer : null }
      : null;
  } catch {
    return null;
  }
}

/**
 * Sets the account's plan from its grants: the highest plan any current grant gives, paid until the
 * latest end among those (none while one is open-ended); free when no grant is current.
 */
async function settlePlan(ctx: BrokerContext, accountId: string): Promise<void> {
  const now = ctx.clock();
  const grants = Object.values(await ctx.redis.hgetall(keys.accountGrants(accountId)))
    .map(grantFrom)
    .filter((g): g is Grant => g !== null && (g.until === 0 || g.until > now));
  const rank = (t: Tier) => TIERS.indexOf(t);
  const plan = grants.reduce<Tier>((best, g) => (rank(g.plan) > rank(best) ? g.plan : best), 'free');
  const best = grants.filter((g) => g.plan === plan);
  const paidUntil =
    plan === 'free' || best.some((g) => g.until === 0) ? '' : Math.max(...best.map((g) => g.until));
  await ctx.redis.hset(keys.account(accountId), { plan, paid_until: paidUntil });
}

async function grant(ctx: BrokerContext, accountId: string, id: string, value: Grant): Promise<void> {
  await ctx.redis.hset(keys.accountGrants(accountId), id, JSON.stringify(value));
  await settlePlan(ctx, accountId);
}

/** Maps a Stripe customer to the account, unless the customer or the account is mapped already. */
async function linkCustomer(ctx: BrokerContext, accountId: string, customer: string): Promise<void> {
  await ctx.redis.set(keys.stripeCustomer(customer), accountId, 'NX');
  await ctx.redis.hsetnx(keys.account(accountId), 'stripe_customer', customer);
}

/** Attaches the pending credentials of the checkout with this nonce, only to an account without any. */
async function attachPending(ctx: BrokerContext, account: Account, nonce: string | undefined): Promise<void> {
  const pendingKey = keys.pendingCheckout(account.id);
  const pending = await ctx.redis.hgetall(pendingKey);
  if (!nonce || pending.nonce !== nonce) return;
  await ctx.redis.del(pendingKey);
  if (!pending.email || !pending.password_hash || account.email || account.passwordHash) return;
  // The email index is claimed first; if it belongs to someone else (checkout does not say so), the
  // payment still counts and the credentials are not attached.
  const claimed = await ctx.redis.set(keys.email(pending.email), account.id, 'NX');
  const owner = claimed ? account.id : await ctx.redis.get(keys.email(pending.email));
  if (owner !== account.id) {
    ctx.logger.warn({ account: account.id }, 'paid checkout: email belongs to another account, not attached');
    return;
  }
  // HSETNX: credentials written meanwhile (another checkout's webhook) are never overwritten.
  const set = (await execAll(
    ctx.redis
      .multi()
      .hsetnx(keys.account(account.id), 'email', pending.email)
      .hsetnx(keys.account(account.id), 'password_hash', pending.password_hash),
  )) as number[];
  if (set[0] === 0) await releaseEmail(ctx, pending.email, account.id);
}

async function checkoutPaid(ctx: BrokerContext, session: Stripe.Checkout.Session): Promise<EventOutcome> {
  if (session.payment_status !== 'paid') return 'ignored';
  const ref = REFERENCE.exec(session.client_reference_id ?? '');
  const account = ref ? await getAccount(ctx, ref[1]!) : null;
  if (!account) {
    ctx.logger.warn({ stripe_session: session.id }, 'checkout for an unknown account ignored');
    return 'ignored';
  }
  const metaPlan = session.metadata?.plan;
  const plan = PAID_PLANS.find((p) => p === metaPlan) ?? DEFAULT_PAID_PLAN;
  const subscription = idOf(session.subscription);
  const customer = idOf(session.customer);
  if (customer) await linkCustomer(ctx, account.id, customer);
  // A subscription belongs to the first account that paid with it, for good.
  if (subscription && !(await ctx.redis.set(keys.stripeSubscription(subscription), account.id, 'NX'))) {
    if ((await ctx.redis.get(keys.stripeSubscription(subscription))) !== account.id) return 'ignored';
  }
  await attachPending(ctx, account, ref![2]);
  // A subscription lasts until Stripe says otherwise; a one-time payment buys one period.
  await grant(ctx, account.id, subscription ?? `once:${session.id}`, {
    plan,
    until: subscription ? 0 : ctx.clock() + PERIOD_MS,
    customer,
  });
  await keepAccount(ctx, account.id);
  return 'applied';
}

async function checkoutFailed(ctx: BrokerContext, session: Stripe.Checkout.Session): Promise<EventOutcome> {
  const ref = REFERENCE.exec(session.client_reference_id ?? '');
  if (!ref?.[2]) return 'ignored';
  const pendingKey = keys.pendingCheckout(ref[1]!);
  if ((await ctx.redis.hget(pendingKey, 'nonce')) === ref[2]) await ctx.redis.del(pendingKey);
  return 'applied';
}

/** The account holding this subscription, paid by this customer, and its grant; or null. */
async function holderOf(
  ctx: BrokerContext,
  subscription: Stripe.Subscription,
): Promise<{ accountId: string; current: Grant } | null> {
  const customer = idOf(subscription.customer);
  const accountId = await ctx.redis.get(keys.stripeSubscription(subscription.id));
  if (!accountId || !customer) return null;
  const current = grantFrom((await ctx.redis.hget(keys.accountGrants(accountId), subscription.id)) ?? '');
  return current && current.customer === customer ? { accountId, current } : null;
}

const STILL_PAYING: ReadonlySet<string> = new Set(['active', 'trialing']);

/** The end of the subscription's current period (ms), wherever this API version keeps it. */
function periodEnd(subscription: Stripe.Subscription, nowMs: number): number {
  const raw = subscription as unknown as {
    current_period_end?: number;
    items?: { data?: { current_period_end?: number }[] };
  };
  const seconds = raw.current_period_end ?? raw.items?.data?.[0]?.current_period_end;
  return typeof seconds === 'number' ? seconds * 1000 : nowMs;
}

async function subscriptionUpdated(
  ctx: BrokerContext,
  subscription: Stripe.Subscription,
): Promise<EventOutcome> {
  const holder = await holderOf(ctx, subscription);
  if (!holder) return 'ignored';
  // past_due, unpaid, canceled, incomplete_expired, paused: paid up to the end of this period.
  const until = STILL_PAYING.has(subscription.status) ? 0 : periodEnd(subscription, ctx.clock());
  await grant(ctx, holder.accountId, subscription.id, { ...holder.current, until });
  return 'applied';
}

async function subscriptionDeleted(
  ctx: BrokerContext,
  subscription: Stripe.Subscription,
): Promise<EventOutcome> {
  const holder = await holderOf(ctx, subscription);
  if (!holder) return 'ignored';
  await ctx.redis.hdel(keys.accountGrants(holder.accountId), subscription.id);
  await settlePlan(ctx, holder.accountId);
  return 'applied';
}

export type EventOutcome = 'applied' | 'ignored' | 'duplicate';

async function apply(ctx: BrokerContext, event: Stripe.Event): Promise<EventOutcome> {
  switch (event.type) {
    case 'checkout.session.completed':
    case 'checkout.session.async_payment_succeeded':
      return checkoutPaid(ctx, event.data.object);
    case 'checkout.session.async_payment_failed':
      return checkoutFailed(ctx, event.data.object);
    case 'customer.subscription.updated':
      return subscriptionUpdated(ctx, event.data.object);
    case 'customer.subscription.deleted':
      return subscriptionDeleted(ctx, event.data.object);
    default:
      return 'ignored';
  }
}

/** Applies a verified event once: a SET NX claim, the change, then a durable "done" mark. */
export async function applyStripeEvent(ctx: BrokerContext, event: Stripe.Event): Promise<EventOutcome> {
  const marker = keys.stripeEvent(event.id);
  const claimed = await ctx.redis.set(marker, 'processing', 'EX', TTL.stripeEventClaimSeconds, 'NX');
  if (!claimed) {
    if ((await ctx.redis.get(marker)) === 'done') return 'duplicate';
    // Another broker is applying it right now; Stripe retries a non-2xx later.
    throw new ApiError('conflict', { message: 'This event is being applied.' });
  }
  try {
    const outcome = await apply(ctx, event);
    await ctx.redis.set(marker, 'done', 'EX', TTL.stripeEventSeconds);
    return outcome;
  } catch (err) {
    await ctx.redis.del(marker).catch(() => undefined);
    throw err;
  }
}
