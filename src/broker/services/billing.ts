// Billing (docs/API.md "Usage and billing"): checkout sends the user to the operator's Stripe Payment
// Link tagged with the account id, keeping the email and password hash until Stripe confirms; the
// webhook applies each Stripe event once. Signature checks use the stripe package on the raw body.
import Stripe from 'stripe';
import type { BrokerContext } from '../context.js';
import { ApiError, conflict, invalidRequest, unavailable } from '../errors.js';
import { hashPassword } from '../password.js';
import { keys, TTL } from '../store/keys.js';
import { execAll } from '../store/redis.js';
import type { Tier } from '../config.js';
import { getAccount, normalizeEmail, type Account } from './accounts.js';

const PAID_PLANS: readonly Tier[] = ['pro', 'business'];
const DEFAULT_PAID_PLAN: Tier = 'pro';

export async function startCheckout(
  ctx: BrokerContext,
  account: Account,
  input: { email: string; password: string },
): Promise<string> {
  const link = ctx.config.stripe.paymentLink;
  if (!link) throw unavailable('Billing is not configured on this broker.');
  const email = normalizeEmail(input.email);
  const owner = await ctx.redis.get(keys.email(email));
  if (owner && owner !== account.id) throw conflict('That email belongs to another account.');
  const passwordHash = await hashPassword(input.password);
  await execAll(
    ctx.redis
      .multi()
      .hset(keys.pendingCheckout(account.id), { email, password_hash: passwordHash })
      .expire(keys.pendingCheckout(account.id), TTL.pendingCheckoutSeconds),
  );
  const url = new URL(link);
  url.searchParams.set('client_reference_id', account.id);
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
  try {
    return Stripe.webhooks.constructEvent(rawBody, signature, secret, tolerance, undefined, now);
  } catch {
    throw rejected();
  }
}

const idOf = (value: unknown): string | null =>
  typeof value === 'string'
    ? value
    : typeof (value as { id?: unknown } | null)?.id === 'string'
      ? (value as { id: string }).id
      : null;

async function checkoutCompleted(ctx: BrokerContext, session: Stripe.Checkout.Session): Promise<void> {
  const accountId = session.client_reference_id;
  const account = accountId ? await getAccount(ctx.redis, accountId) : null;
  if (!account) {
    ctx.logger.warn({ stripe_session: session.id }, 'checkout for an unknown account ignored');
    return;
  }
  const metaPlan = session.metadata?.plan;
  const plan = PAID_PLANS.find((p) => p === metaPlan) ?? DEFAULT_PAID_PLAN;
  const fields: Record<string, string> = { plan };
  const customer = idOf(session.customer);
  const subscription = idOf(session.subscription);
  if (customer) fields.stripe_customer = customer;
  if (subscription) fields.stripe_subscription = subscription;

  const pending = await ctx.redis.hgetall(keys.pendingCheckout(account.id));
  if (pending.email && pending.password_hash) {
    // The email index is claimed first; if someone else took it meanwhile, the payment still counts.
    const claimed = await ctx.redis.set(keys.email(pending.email), account.id, 'NX');
    const owner = claimed ? account.id : await ctx.redis.get(keys.email(pending.email));
    if (owner === account.id) {
      fields.email = pending.email;
      fields.password_hash = pending.password_hash;
    } else {
      ctx.logger.warn({ account: account.id }, 'paid checkout: email taken meanwhile, not attached');
    }
  }
  await execAll(
    ctx.redis.multi().hset(keys.account(account.id), fields).del(keys.pendingCheckout(account.id)),
  );
  if (customer) await ctx.redis.set(keys.stripeCustomer(customer), account.id);
}

async function subscriptionDeleted(ctx: BrokerContext, subscription: Stripe.Subscription): Promise<void> {
  const customer = idOf(subscription.customer);
  const accountId = customer ? await ctx.redis.get(keys.stripeCustomer(customer)) : null;
  if (!accountId) return;
  const current = await ctx.redis.hget(keys.account(accountId), 'stripe_subscription');
  // Only the subscription that made the account paid can end it.
  if (current && current !== subscription.id) return;
  await ctx.redis.hset(keys.account(accountId), 'plan', 'free');
}

export type EventOutcome = 'applied' | 'ignored' | 'duplicate';

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
    let outcome: EventOutcome = 'applied';
    if (event.type === 'checkout.session.completed') await checkoutCompleted(ctx, event.data.object);
    else if (event.type === 'customer.subscription.deleted')
      await subscriptionDeleted(ctx, event.data.object);
    else outcome = 'ignored';
    await ctx.redis.set(marker, 'done', 'EX', TTL.stripeEventSeconds);
    return outcome;
  } catch (err) {
    await ctx.redis.del(marker).catch(() => undefined);
    throw err;
  }
}
