// Billing: checkout link and the Stripe webhook.
import type { Router } from 'express';
import { authOf, sourceOfRequest } from '../auth.js';
import type { BrokerContext } from '../context.js';
import { defineRoute } from '../http.js';
import { z } from '../openapi.js';
import { applyStripeEvent, startCheckout, verifyStripeEvent } from '../services/billing.js';

export const STRIPE_WEBHOOK_PATH = '/v1/webhooks/stripe';

export function billingRoutes(ctx: BrokerContext, router: Router): void {
  defineRoute(ctx, router, {
    method: 'post',
    path: '/v1/billing/checkout',
    summary: 'Payment link for this account; email and password attach when Stripe confirms payment',
    tags: ['billing'],
    access: 'bearer',
    scope: 'account:write',
    body: z.object({
      email: z
        .email()
        .max(254)
        .openapi({
          description:
            'one that belongs to another account is 409 only after current_password is proved; ' +
            'an account without a password is answered alike for every email, and the paid checkout attaches none that is taken',
        }),
      password: z.string().min(8).max(1024),
      current_password: z
        .string()
        .min(1)
        .max(1024)
        .optional()
        .openapi({
          description:
            'required once the account has a password; the change then applies at once, and a new password ' +
            'ends every other sign-in (browser sessions, login and signup tokens, tunnelbyte-cli grants)',
        }),
    }),
    responses: { 200: { description: 'where to pay', schema: z.object({ url: z.string() }) } },
    errors: ['conflict'],
    handler: async ({ body }, req) => {
      const { account, key } = authOf(req);
      const url = await startCheckout(ctx, account, {
        email: body.email,
        password: body.password,
        currentPassword: body.current_password,
        source: sourceOfRequest(req),
        caller: key,
      });
      return { body: { url } };
    },
  });

  defineRoute(ctx, router, {
    method: 'post',
    path: STRIPE_WEBHOOK_PATH,
    summary: 'Stripe events (Stripe-Signature over the raw body, 5-minute tolerance, each applied once)',
    tags: ['billing'],
    // Signature auth; Stripe retries on failure, so no rate limit here.
    access: 'open',
    responses: {
      200: {
        description: 'received',
        schema: z.object({ received: z.literal(true), outcome: z.enum(['applied', 'ignored', 'duplicate']) }),
      },
    },
    errors: ['invalid_request', 'conflict'],
    handler: async (_input, req) => {
      const event = verifyStripeEvent(ctx, req.rawBody, req.headers['stripe-signature']);
      return { body: { received: true, outcome: await applyStripeEvent(ctx, event) } };
    },
  });
}
