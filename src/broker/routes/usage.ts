// GET /v1/usage (docs/API.md "Usage and billing"): a thin adapter over services/usage.ts.
import type { Router } from 'express';
import { authOf } from '../auth.js';
import { TIERS } from '../config.js';
import type { BrokerContext } from '../context.js';
import { defineRoute } from '../http.js';
import { z } from '../openapi.js';
import { usageOf } from '../services/usage.js';

const Usage = z
  .object({
    tier: z.enum(TIERS),
    period: z.object({ start: z.string(), end: z.string() }),
    bytes: z.object({ used: z.number().int(), limit: z.number().int().nullable() }),
    sessions: z.object({ active: z.number().int(), limit: z.number().int(), created: z.number().int() }),
    requests: z.object({ limit_per_minute: z.number().int() }),
  })
  .openapi('Usage');

export function usageRoutes(ctx: BrokerContext, router: Router): void {
  defineRoute(ctx, router, {
    method: 'get',
    path: '/v1/usage',
    summary: 'This period’s usage against your tier',
    tags: ['usage'],
    access: 'bearer',
    scope: 'analytics:read',
    responses: { 200: { description: 'usage', schema: Usage } },
    handler: async (_input, req) => ({ body: await usageOf(ctx, authOf(req).account) }),
  });
}
