// Exit-node endpoints (docs/API.md "Exit nodes"), authenticated by the node's tbn_ enrollment token:
// register, heartbeat, and the long-polled peer feed. Thin adapters over services/nodes.ts and
// services/feed.ts. A node may only act on node ids registered with its own enrollment.
import express, { type Router } from 'express';
import { nodeTokenOf } from '../auth.js';
import type { BrokerContext } from '../context.js';
import { notFound } from '../errors.js';
import { defineRoute } from '../http.js';
import { z } from '../openapi.js';
import { MAX_WAIT_MS, pollPeers } from '../services/feed.js';
import { ownNode, recordHeartbeat, registerNode } from '../services/nodes.js';
import { FeedPage, HeartbeatAnswer, NodeHeartbeat, NodeRegistration, RegisterAnswer } from '../../lib/api.js';
import { closeOverQuota } from '../services/sessions.js';

const NodeId = z.object({ id: z.string().regex(/^node_[0-9A-Za-z]{1,64}$/, 'a node id') });

/** The heartbeat path as the router matches it (routes/index.ts routedPath): it reads its own body. */
export const HEARTBEAT_PATH = /^\/v1\/nodes\/[^/]+\/heartbeat$/;
// A peer entry is at most ~200 bytes of JSON; a node of the largest capacity may report all of them in one
// body, as nodes before batched heartbeats do, so "many peers" is never a 413.
const HEARTBEAT_BYTES_PER_PEER = 256;
const HEARTBEAT_BODY_BASE = 64 * 1024;

/**
 * The heartbeat's JSON parser, run after the node token checked out: only an enrolled node may send a
 * body sized for its capacity; everyone else meets the 64 KiB limit of every other endpoint.
 */
const heartbeatBody = (ctx: BrokerContext) =>
  express.json({
    limit: HEARTBEAT_BODY_BASE + HEARTBEAT_BYTES_PER_PEER * ctx.config.limits.nodeMaxCapacity,
    type: ['application/json', 'application/*+json'],
  });

export function nodeRoutes(ctx: BrokerContext, router: Router): void {
  defineRoute(ctx, router, {
    method: 'post',
    path: '/v1/nodes/register',
    summary: 'Register (or re-register) an exit node in its token’s region',
    tags: ['nodes'],
    access: 'node',
    body: NodeRegistration,
    responses: {
      200: {
        description: 'the node id (stable per token and public key)',
        schema: RegisterAnswer,
      },
    },
    handler: async ({ body }, req) => {
      const { nodeId, heartbeatMs, pool } = await registerNode(ctx, nodeTokenOf(req), {
        region: body.region,
        endpoint: body.endpoint,
        publicKey: body.public_key,
        egressIps: body.egress_ips,
        capacity: body.capacity,
        version: body.version,
      });
      return { body: { node_id: nodeId, heartbeat_ms: heartbeatMs, pool } };
    },
  });

  defineRoute(ctx, router, {
    method: 'post',
    path: '/v1/nodes/{id}/heartbeat',
    summary: 'Node health and per-peer byte counters',
    tags: ['nodes'],
    access: 'node',
    nodeWindow: 'nodeHeartbeat',
    before: [heartbeatBody(ctx)],
    params: NodeId,
    body: NodeHeartbeat,
    responses: { 200: { description: 'recorded', schema: HeartbeatAnswer } },
    errors: ['not_found'],
    handler: async ({ params, body }, req) => {
      const node = await ownNode(ctx, nodeTokenOf(req), params.id);
      const totals = await recordHeartbeat(ctx, node, {
        load: body.load,
        draining: body.draining,
        peers: body.peers.map((p) => ({
          publicKey: p.public_key,
          rxBytes: p.rx_bytes,
          txBytes: p.tx_bytes,
          lastHandshakeAt: p.last_handshake_at ? Date.parse(p.last_handshake_at) : 0,
        })),
      });
      if (!totals) throw notFound('Unknown node: register again.');
      await closeOverQuota(ctx, totals);
      return { body: { heartbeat_ms: ctx.config.heartbeatMs } };
    },
  });

  defineRoute(ctx, router, {
    method: 'get',
    path: '/v1/nodes/{id}/peers',
    summary: 'Long poll of the node’s peer set: everything for an empty or stale cursor, else the changes',
    tags: ['nodes'],
    access: 'node',
    params: NodeId,
    query: z.object({
      cursor: z
        .string()
        .regex(/^(\d{1,20}-\d{1,20})?$/, 'a cursor from a previous answer')
        .default(''),
      wait: z.coerce
        .number()
        .int()
        .min(0)
        .max(MAX_WAIT_MS / 1000)
        .default(MAX_WAIT_MS / 1000)
        .openapi({ description: 'seconds to wait for changes' }),
    }),
    responses: { 200: { description: 'a page of the feed', schema: FeedPage } },
    errors: ['not_found'],
    handler: async ({ params, query }, req, res) => {
      const node = await ownNode(ctx, nodeTokenOf(req), params.id);
      const gone = new AbortController();
      res.on('close', () => gone.abort());
      return { body: await pollPeers(ctx, node, query.cursor, query.wait * 1000, gone.signal) };
    },
  });
}
