// Probes, the OpenAPI document and Prometheus metrics. Not rate-limited: load balancers and
// Prometheus poll these from one address, and none of them touches an account.
import type { Router } from 'express';
import type { BrokerContext } from '../context.js';
import { generateDocument, z } from '../openapi.js';
import { defineRoute } from '../http.js';
import { checkReady } from '../services/readiness.js';

const Health = z.object({ status: z.literal('ok') }).openapi('Health');

export function systemRoutes(ctx: BrokerContext, router: Router): void {
  defineRoute(ctx, router, {
    method: 'get',
    path: '/v1/health',
    summary: 'The process is up',
    tags: ['system'],
    access: 'open',
    responses: { 200: { description: 'up', schema: Health } },
    handler: () => ({ body: { status: 'ok' } }),
  });

  defineRoute(ctx, router, {
    method: 'get',
    path: '/v1/ready',
    summary: 'Redis is reachable (PING)',
    tags: ['system'],
    access: 'open',
    responses: { 200: { description: 'ready', schema: Health } },
    handler: async () => {
      await checkReady(ctx);
      return { body: { status: 'ok' } };
    },
  });

  let document: object | undefined;
  defineRoute(ctx, router, {
    method: 'get',
    path: '/v1/openapi.json',
    summary: 'This API as OpenAPI 3.1',
    tags: ['system'],
    access: 'public',
    responses: { 200: { description: 'the document' } },
    // Generated on first request, when every route module has registered.
    handler: () => ({ body: (document ??= generateDocument(ctx.openapi)) }),
  });

  // Public on purpose (documented in docs/API.md): aggregate counters by route template, no ids or
  // tokens. METRICS_PORT moves it to its own listener (main.ts) instead.
  if (ctx.config.metrics.port !== undefined) return;
  router.get('/metrics', async (_req, res) => {
    res.locals.route = '/metrics';
    res.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });
}
