// GET /v1/usage (docs/API.md "Usage and billing"): a thin adapter over services/usage.ts.
import type { Router } from 'express';
import { authOf } from '../auth.js';
import type { BrokerContext } from '../context.js';
import { defineRoute } from '../http.js';
import { usageOf } from '../services/usage.js';
import { Usage } from '../../lib/api.js';

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
