// Public endpoints (docs/API.md "Public endpoints"): regions and IP attribution, per-IP rate-limited.
import type { Router } from 'express';
import type { BrokerContext } from '../context.js';
import { isoTime } from '../context.js';
import { invalidRequest } from '../errors.js';
import { defineRoute } from '../http.js';
import { canonicalIp } from '../ip.js';
import { z } from '../openapi.js';
import { regionsWithHealth } from '../services/regions.js';
import { lookupHolder } from '../services/egress.js';
import { Region } from '../../lib/api.js';

const IpAttribution = z
  .object({
    ip: z.string(),
    exit: z.boolean(),
    region: z.string().optional(),
    node: z.string().optional(),
    first_seen: z.string().optional(),
    last_seen: z.string().optional(),
  })
  .openapi('IpAttribution');

export function publicRoutes(ctx: BrokerContext, router: Router): void {
  defineRoute(ctx, router, {
    method: 'get',
    path: '/v1/regions',
    summary: 'List exit regions with their health',
    tags: ['public'],
    access: 'public',
    responses: { 200: { description: 'regions', schema: z.object({ regions: z.array(Region) }) } },
    handler: async () => ({
      body: {
        regions: (await regionsWithHealth(ctx)).map(({ region: r, health }) => ({
          id: r.id,
          name: r.name,
          country: r.country,
          ...health,
          tiers: r.tiers,
        })),
      },
    }),
  });

  defineRoute(ctx, router, {
    method: 'get',
    path: '/v1/ip/{addr}',
    summary: 'Which exit node held an IP (now, or at a moment)',
    tags: ['public'],
    access: 'public',
    params: z.object({ addr: z.string().max(64) }),
    query: z.object({ at: z.iso.datetime({ offset: true }).optional() }),
    responses: { 200: { description: 'attribution; never names a user', schema: IpAttribution } },
    handler: async ({ params, query }) => {
      const ip = canonicalIp(params.addr);
      if (!ip) throw invalidRequest('addr', 'Not an IPv4 or IPv6 address.');
      const holder = await lookupHolder(ctx, ip, query.at === undefined ? undefined : Date.parse(query.at));
      if (!holder) return { body: { ip, exit: false } };
      return {
        body: {
          ip,
          exit: true,
          region: holder.region,
          node: holder.node,
          first_seen: isoTime(holder.first_seen),
          last_seen: isoTime(holder.last_seen),
        },
      };
    },
  });
}
