// Sessions (docs/API.md "Sessions"): thin adapters over services/sessions.ts.
import type { Router } from 'express';
import { authOf } from '../auth.js';
import type { BrokerContext } from '../context.js';
import { defineRoute } from '../http.js';
import { z } from '../openapi.js';
import { startReaper } from '../services/reaper.js';
import { createSession, deleteSession, getSession, listSessions } from '../services/sessions.js';
import {
  CreatedSession,
  Session,
  SESSION_STATUSES,
  SESSION_TTL_SECONDS,
  WireGuardKey,
} from '../../lib/api.js';
import { PageQuery, paginate } from '../pagination.js';

const CreateSessionBody = z
  .object({
    region: z.string().min(1).max(64),
    public_key: WireGuardKey.optional(),
    ttl_seconds: z.number().int().min(SESSION_TTL_SECONDS.min).max(SESSION_TTL_SECONDS.max).optional(),
    preshared_key: z.boolean().optional(),
  })
  .openapi('CreateSession');

const SessionId = z.object({ id: z.string().regex(/^ses_[0-9A-Za-z]{1,64}$/, 'a session id') });

export function sessionRoutes(ctx: BrokerContext, router: Router): void {
  // Every broker reaps; the close script makes that safe (services/reaper.ts).
  startReaper(ctx);

  defineRoute(ctx, router, {
    method: 'post',
    path: '/v1/sessions',
    summary: 'Create a session: one WireGuard peer on an exit node of the region',
    tags: ['sessions'],
    access: 'bearer',
    scope: 'tunnels:write',
    body: CreateSessionBody,
    responses: {
      201: {
        description:
          'the session, its config, and (once) its private key; on Sentinel or Cluster, already on REDIS_WAIT_REPLICAS replicas',
        schema: CreatedSession,
      },
    },
    noStore: true,
    errors: ['tier_required', 'quota_exhausted', 'no_capacity', 'conflict'],
    handler: async ({ body }, req) => {
      const { account } = authOf(req);
      const created = await createSession(ctx, account, {
        region: body.region,
        publicKey: body.public_key,
        ttlSeconds: body.ttl_seconds,
        presharedKey: body.preshared_key,
      });
      return { status: 201, body: created };
    },
  });

  defineRoute(ctx, router, {
    method: 'get',
    path: '/v1/sessions',
    summary: 'Your sessions',
    tags: ['sessions'],
    access: 'bearer',
    scope: 'tunnels:read',
    query: PageQuery.extend({ status: z.enum(SESSION_STATUSES).optional() }),
    responses: {
      200: {
        description: 'own sessions, newest first, a page at a time',
        schema: z.object({ sessions: z.array(Session), next_cursor: z.string().nullable() }),
      },
    },
    handler: async ({ query }, req) => {
      const all = await listSessions(ctx, authOf(req).account.id);
      const page = paginate(
        query.status ? all.filter((s) => s.status === query.status) : all,
        (s) => ({ at: Date.parse(s.created_at), id: s.id }),
        'desc',
        query,
      );
      return { body: { sessions: page.items, next_cursor: page.nextCursor } };
    },
  });

  defineRoute(ctx, router, {
    method: 'get',
    path: '/v1/sessions/{id}',
    summary: 'One of your sessions',
    tags: ['sessions'],
    access: 'bearer',
    scope: 'tunnels:read',
    params: SessionId,
    responses: { 200: { description: 'the session', schema: Session } },
    errors: ['not_found'],
    handler: async ({ params }, req) => ({ body: await getSession(ctx, authOf(req).account.id, params.id) }),
  });

  defineRoute(ctx, router, {
    method: 'delete',
    path: '/v1/sessions/{id}',
    summary: 'Close a session: its peer leaves the node and its address is freed',
    tags: ['sessions'],
    access: 'bearer',
    scope: 'tunnels:delete',
    params: SessionId,
    responses: { 204: { description: 'closed' } },
    errors: ['not_found'],
    handler: async ({ params }, req) => {
      await deleteSession(ctx, authOf(req).account.id, params.id);
    },
  });
}
