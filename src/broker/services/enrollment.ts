// Exit-node enrollment tokens (tbn_): issued by an admin for one region, stored only as SHA-256.
// The node service authenticates register/heartbeat/feed calls with verifyNodeToken.
import type { BrokerContext } from '../context.js';
import { keys } from '../store/keys.js';
import { NODE_TOKEN_PREFIX, hashToken, isWellFormedToken, mintToken, newId, sameDigest } from '../tokens.js';

export interface NodeToken {
  tokenId: string;
  region: string;
  createdAt: number;
}

export async function createNodeToken(
  ctx: BrokerContext,
  region: string,
): Promise<NodeToken & { token: string }> {
  const token = mintToken(NODE_TOKEN_PREFIX);
  const digest = hashToken(token);
  const record = { tokenId: newId('ntk'), region, createdAt: ctx.clock() };
  await ctx.redis.hset(keys.nodeTokenHash(digest), {
    id: record.tokenId,
    region,
    created_at: record.createdAt,
    hash: digest,
  });
  return { ...record, token };
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
  return { tokenId: h.id, region: h.region, createdAt: Number(h.created_at) };
}
