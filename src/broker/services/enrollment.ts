// Exit-node enrollment tokens (tbn_): issued by an admin for one region, stored only as SHA-256.
// The node service authenticates register/heartbeat/feed calls with verifyNodeToken. Each token has
// a public id (ntk_…), an optional expiry and a cap on the nodes it may enroll, and can be revoked:
// the containment for a leaked one.
import { isoOrNull, isoTime, type BrokerContext } from '../context.js';
import { notFound } from '../errors.js';
import { keys } from '../store/keys.js';
import { NODE_TOKEN_PREFIX, hashToken, isWellFormedToken, mintToken, newId, sameDigest } from '../tokens.js';

export const DEFAULT_MAX_NODES = 10;

export interface NodeToken {
  tokenId: string;
  region: string;
  createdAt: number;
  /** ms; null = never. */
  expiresAt: number | null;
  maxNodes: number;
}

export async function createNodeToken(
  ctx: BrokerContext,
  region: string,
  limits: { expiresAt?: number | null; maxNodes?: number } = {},
): Promise<NodeToken & { token: string }> {
  const token = mintToken(NODE_TOKEN_PREFIX);
  const digest = hashToken(token);
  const record: NodeToken = {
    tokenId: newId('ntk'),
    region,
    createdAt: ctx.clock(),
    expiresAt: limits.expiresAt ?? null,
    maxNodes: limits.maxNodes ?? DEFAULT_MAX_NODES,
  };
  const fields = {
    id: record.tokenId,
    region,
    created_at: record.createdAt,
    expires_at: record.expiresAt ?? '',
    max_nodes: record.maxNodes,
    hash: digest,
  };
  // The record (listed, revocable by id) first, then the index that makes the token work.
  await ctx.redis.hset(keys.nodeToken(record.tokenId), fields);
  await ctx.redis.sadd(keys.nodeTokens(), record.tokenId);
  await ctx.redis.hset(keys.nodeTokenHash(digest), fields);
  return { ...record, token };
}

const tokenFrom = (h: Record<string, string>): NodeToken => ({
  tokenId: h.id!,
  region: h.region!,
  createdAt: Number(h.created_at),
  expiresAt: h.expires_at ? Number(h.expires_at) : null,
  maxNodes: h.max_nodes ? Number(h.max_nodes) : DEFAULT_MAX_NODES,
});

export interface NodeTokenView {
  id: string;
  region: string;
  created_at: string;
  expires_at: string | null;
  max_nodes: number;
  nodes: number;
  revoked_at: string | null;
}

/** Every node token ever issued, oldest first, with how many nodes it enrolled. */
export async function listNodeTokens(ctx: BrokerContext): Promise<NodeTokenView[]> {
  const ids = await ctx.redis.smembers(keys.nodeTokens());
  const [records, counts] = await Promise.all([
    Promise.all(ids.map((id) => ctx.redis.hgetall(keys.nodeToken(id)))),
    Promise.all(ids.map((id) => ctx.redis.scard(keys.nodeTokenNodes(id)))),
  ]);
  return records
    .map((h, i) => ({ h, nodes: counts[i]! }))
    .filter(({ h }) => h.id && h.region)
    .map(({ h, nodes }) => {
      const t = tokenFrom(h);
      return {
        id: t.tokenId,
        region: t.region,
        created_at: isoTime(t.createdAt),
        expires_at: isoOrNull(t.expiresAt),
        max_nodes: t.maxNodes,
        nodes,
        revoked_at: h.revoked_at ? isoTime(Number(h.revoked_at)) : null,
      };
    })
    .sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id));
}

/**
 * Revokes a node token: it stops authenticating at once, and answers the ids of the nodes it
 * enrolled (the caller removes them). 404 for an unknown id.
 */
export async function revokeNodeToken(ctx: BrokerContext, tokenId: string): Promise<string[]> {
  const h = await ctx.redis.hgetall(keys.nodeToken(tokenId));
  if (!h.id || !h.hash) throw notFound('No such node token.');
  await ctx.redis.del(keys.nodeTokenHash(h.hash));
  await ctx.redis.hsetnx(keys.nodeToken(tokenId), 'revoked_at', ctx.clock());
  return ctx.redis.smembers(keys.nodeTokenNodes(tokenId));
}

/** The enrollment a tbn_ token stands for, or null for anything else. Never throws on bad input. */
export async function verifyNodeToken(
  ctx: BrokerContext,
  token: string | undefined,
): Promise<NodeToken | null> {
  if (!token || !isWellFormedToken(NODE_TOKEN_PREFIX, token)) return null;
  const digest = hashToken(token);
  const h = await ctx.redis.hgetall(keys.nodeTokenHash(digest));
  if (!h.id || !h.region || !h.hash || !sameDigest(h.hash, digest)) return null;
  const found = tokenFrom(h);
  return found.expiresAt !== null && found.expiresAt <= ctx.clock() ? null : found;
}
