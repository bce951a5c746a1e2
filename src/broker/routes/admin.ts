// Operator endpoints (docs/API.md "Exit nodes", admin): regions, node enrollment tokens, node list.
import type { Router } from 'express';
import { TIERS } from '../config.js';
import { isoOrNull, isoTime, type BrokerContext } from '../context.js';
import { invalidRequest, notFound } from '../errors.js';
import { defineRoute } from '../http.js';
import { z } from '../openapi.js';
import { createNodeToken, DEFAULT_MAX_NODES, listNodeTokens } from '../services/enrollment.js';
import { removeNode, revokeEnrollment } from '../services/nodes.js';
import { poolPrefixError } from '../../lib/addresses.js';
import { removeRegion } from '../services/fleet.js';
import {
  getRegion,
  listNodeSummaries,
  NODE_STATES,
  REGION_ID,
  regionsWithHealth,
  type Region,
  updateRegion,
  upsertRegion,
} from '../services/regions.js';
import { Name, REGION_STATUSES } from '../../lib/api.js';

const poolPrefix = (family: 'v4' | 'v6') =>
  z
    .string()
    .max(64)
    .superRefine((text, check) => {
      const error = poolPrefixError(family, text);
      if (error) check.addIssue({ code: 'custom', message: error });
    });

const RegionFields = {
  name: Name,
  country: z.string().regex(/^[A-Z]{2}$/, 'ISO 3166-1 alpha-2, upper case'),
  tiers: z.array(z.enum(TIERS)).min(1),
  /** Either or both; the rest stays (default 10.64.0.0/10 and fd64::/64). */
  pool: z.object({ v4: poolPrefix('v4'), v6: poolPrefix('v6') }).partial(),
};

export const RegionInput = z.object({
  id: z.string().regex(REGION_ID, 'lower-case letters, digits and dashes'),
  ...RegionFields,
  tiers: RegionFields.tiers.default([...TIERS]),
  pool: RegionFields.pool.optional(),
});

const RegionId = z.object({ id: z.string().regex(REGION_ID, 'lower-case letters, digits and dashes') });

const AdminRegionView = z
  .object({
    id: z.string(),
    name: z.string(),
    country: z.string(),
    tiers: z.array(z.enum(TIERS)),
    pool: z.object({ v4: z.string(), v6: z.string() }),
    created_at: z.string(),
  })
  .openapi('AdminRegion');

const regionView = (region: Region) => ({
  id: region.id,
  name: region.name,
  country: region.country,
  tiers: region.tiers,
  pool: region.pool,
  created_at: isoTime(region.createdAt),
});

const NodeView = z
  .object({
    id: z.string(),
    region: z.string(),
    endpoint: z.string().nullable(),
    public_key: z.string().nullable(),
    version: z.string().nullable(),
    capacity: z.number().nullable(),
    load: z.number(),
    draining: z.boolean(),
    healthy: z.boolean(),
    state: z.enum(NODE_STATES).nullable(),
    last_heartbeat: z.string().nullable(),
    egress_ips: z.array(z.string()),
  })
  .openapi('Node');

export function adminRoutes(ctx: BrokerContext, router: Router): void {
  defineRoute(ctx, router, {
    method: 'post',
    path: '/v1/admin/regions',
    summary: 'Create or replace a region',
    tags: ['admin'],
    access: 'bearer',
    scope: 'admin:write',
    body: RegionInput,
    responses: {
      201: { description: 'created' },
      200: { description: 'replaced' },
    },
    handler: async ({ body }) => {
      const { region, created } = await upsertRegion(ctx, { ...body, tiers: [...new Set(body.tiers)] });
      return { status: created ? 201 : 200, body: regionView(region) };
    },
  });

  defineRoute(ctx, router, {
    method: 'get',
    path: '/v1/admin/regions',
    summary: 'Every region, with the health the public list shows',
    tags: ['admin'],
    access: 'bearer',
    scope: 'admin:read',
    responses: {
      200: {
        description: 'regions',
        schema: z.object({
          regions: z.array(
            AdminRegionView.extend({
              status: z.enum(REGION_STATUSES),
              nodes: z.number(),
              load: z.number(),
            }),
          ),
        }),
      },
    },
    handler: async () => ({
      body: {
        regions: (await regionsWithHealth(ctx)).map(({ region, health }) => ({
          ...regionView(region),
          ...health,
        })),
      },
    }),
  });

  defineRoute(ctx, router, {
    method: 'patch',
    path: '/v1/admin/regions/{id}',
    summary: 'Change some fields of a region',
    tags: ['admin'],
    access: 'bearer',
    scope: 'admin:write',
    params: RegionId,
    body: z.object(RegionFields).partial(),
    responses: { 200: { description: 'the region as changed', schema: AdminRegionView } },
    errors: ['not_found'],
    handler: async ({ params, body }) => ({
      body: regionView(
        await updateRegion(ctx, params.id, {
          ...body,
          ...(body.tiers ? { tiers: [...new Set(body.tiers)] } : {}),
        }),
      ),
    }),
  });

  defineRoute(ctx, router, {
    method: 'delete',
    path: '/v1/admin/regions/{id}',
    summary: 'Remove a region and close its sessions; 409 while it has live nodes, unless ?force=true',
    tags: ['admin'],
    access: 'bearer',
    scope: 'admin:write',
    params: RegionId,
    query: z.object({ force: z.enum(['true', 'false']).default('false') }),
    responses: {
      200: { description: 'removed', schema: z.object({ id: z.string(), closed_sessions: z.number() }) },
    },
    errors: ['not_found', 'conflict'],
    handler: async ({ params, query }) => {
      const { closedSessions } = await removeRegion(ctx, params.id, { force: query.force === 'true' });
      return { body: { id: params.id, closed_sessions: closedSessions } };
    },
  });

  defineRoute(ctx, router, {
    method: 'post',
    path: '/v1/admin/node-tokens',
    summary: 'Issue an exit-node enrollment token (tbn_) for a region, shown once',
    tags: ['admin'],
    access: 'bearer',
    scope: 'admin:write',
    body: z.object({
      region: z.string().max(63),
      expires_in: z
        .number()
        .int()
        .min(60)
        .max(10 * 366 * 24 * 3600)
        .optional()
        .openapi({ description: 'seconds; absent: never expires' }),
      max_nodes: z.number().int().min(1).max(10_000).default(DEFAULT_MAX_NODES),
    }),
    responses: {
      201: {
        description: 'token',
        schema: z.object({
          id: z.string(),
          token: z.string(),
          region: z.string(),
          created_at: z.string(),
          expires_at: z.string().nullable(),
          max_nodes: z.number().int(),
        }),
      },
    },
    noStore: true,
    handler: async ({ body }) => {
      if (!(await getRegion(ctx, body.region))) throw invalidRequest('region', 'Unknown region.');
      const issued = await createNodeToken(ctx, body.region, {
        expiresAt: body.expires_in === undefined ? null : ctx.clock() + body.expires_in * 1000,
        maxNodes: body.max_nodes,
      });
      return {
        status: 201,
        body: {
          id: issued.tokenId,
          token: issued.token,
          region: issued.region,
          created_at: isoTime(issued.createdAt),
          expires_at: isoOrNull(issued.expiresAt),
          max_nodes: issued.maxNodes,
        },
      };
    },
  });

  defineRoute(ctx, router, {
    method: 'get',
    path: '/v1/admin/node-tokens',
    summary: 'Every node token issued (never the secret), with its node count',
    tags: ['admin'],
    access: 'bearer',
    scope: 'admin:read',
    responses: {
      200: {
        description: 'node tokens',
        schema: z.object({
          node_tokens: z.array(
            z.object({
              id: z.string(),
              region: z.string(),
              created_at: z.string(),
              expires_at: z.string().nullable(),
              max_nodes: z.number().int(),
              nodes: z.number().int(),
              revoked_at: z.string().nullable(),
            }),
          ),
        }),
      },
    },
    handler: async () => ({ body: { node_tokens: await listNodeTokens(ctx) } }),
  });

  defineRoute(ctx, router, {
    method: 'delete',
    path: '/v1/admin/node-tokens/{id}',
    summary: 'Revoke a node token: its nodes are taken out and get 401 from then on',
    tags: ['admin'],
    access: 'bearer',
    scope: 'admin:write',
    params: z.object({ id: z.string().max(64) }),
    responses: { 204: { description: 'revoked' } },
    errors: ['not_found'],
    handler: async ({ params }) => {
      await revokeEnrollment(ctx, params.id);
    },
  });

  defineRoute(ctx, router, {
    method: 'delete',
    path: '/v1/admin/nodes/{id}',
    summary:
      'Remove a node: no new sessions, its sessions move to other nodes of its region, it may not register again',
    tags: ['admin'],
    access: 'bearer',
    scope: 'admin:write',
    params: z.object({ id: z.string().max(80) }),
    responses: { 204: { description: 'removed' } },
    errors: ['not_found'],
    handler: async ({ params }) => {
      if (!(await removeNode(ctx, params.id, true))) throw notFound('No such node.');
    },
  });

  defineRoute(ctx, router, {
    method: 'get',
    path: '/v1/admin/nodes',
    summary: 'Every registered exit node and its health',
    tags: ['admin'],
    access: 'bearer',
    scope: 'admin:read',
    responses: { 200: { description: 'nodes', schema: z.object({ nodes: z.array(NodeView) }) } },
    handler: async () => ({ body: { nodes: await listNodeSummaries(ctx) } }),
  });
}
