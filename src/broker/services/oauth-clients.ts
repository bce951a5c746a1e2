// OAuth clients (RFC 7591 field names): registered by an account, looked up by id, authenticated at
// the token endpoint with exactly the method they registered. The secret is shown once and stored as
// its SHA-256. `tunnelbyte-cli` is built in: a public client whose redirects are loopback listeners.
import type { BrokerContext } from '../context.js';
import { notFound } from '../errors.js';
import { oauthError } from '../oauth/errors.js';
import { keys } from '../store/keys.js';
import { CLIENT_SECRET_PREFIX, hashToken, mintToken, newId, sameDigest } from '../tokens.js';

export const AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'none'] as const;
export type AuthMethod = (typeof AUTH_METHODS)[number];

export interface OAuthClient {
  id: string;
  /** The registering account; null for the built-in client. */
  owner: string | null;
  name: string;
  redirectUris: string[];
  authMethod: AuthMethod;
  secretHash: string | null;
  createdAt: number;
}

export const CLI_CLIENT_ID = 'tunnelbyte-cli';

/** The CLI's client: public, PKCE, a listener on 127.0.0.1 or [::1] at any port (RFC 8252 §7.3). */
export const CLI_CLIENT: OAuthClient = {
  id: CLI_CLIENT_ID,
  owner: null,
  name: 'tunnelbyte CLI',
  redirectUris: ['http://127.0.0.1/callback', 'http://[::1]/callback'],
  authMethod: 'none',
  secretHash: null,
  createdAt: 0,
};

function clientFrom(h: Record<string, string>): OAuthClient | null {
  if (!h.id || !h.redirect_uris) return null;
  return {
    id: h.id,
    owner: h.owner || null,
    name: h.name ?? '',
    redirectUris: JSON.parse(h.redirect_uris) as string[],
    authMethod: (AUTH_METHODS as readonly string[]).includes(h.auth_method ?? '')
      ? (h.auth_method as AuthMethod)
      : 'client_secret_basic',
    secretHash: h.secret_hash || null,
    createdAt: Number(h.created_at),
  };
}

export async function getClient(ctx: BrokerContext, clientId: string): Promise<OAuthClient | null> {
  if (clientId === CLI_CLIENT_ID) return CLI_CLIENT;
  if (!/^app_[0-9A-Za-z]{20}$/.test(clientId)) return null;
  return clientFrom(await ctx.redis.hgetall(keys.oauthClient(clientId)));
}

export interface RegisteredClient {
  client: OAuthClient;
  /** Shown once; absent for public clients. */
  secret: string | undefined;
}

export async function registerClient(
  ctx: BrokerContext,
  owner: string,
  fields: { name: string; redirectUris: string[]; authMethod: AuthMethod },
): Promise<RegisteredClient> {
  const secret = fields.authMethod === 'none' ? undefined : mintToken(CLIENT_SECRET_PREFIX);
  const client: OAuthClient = {
    id: newId('app'),
    owner,
    name: fields.name,
    redirectUris: fields.redirectUris,
    authMethod: fields.authMethod,
    secretHash: secret ? hashToken(secret) : null,
    createdAt: ctx.clock(),
  };
  await ctx.redis.hset(keys.oauthClient(client.id), {
    id: client.id,
    owner,
    name: client.name,
    redirect_uris: JSON.stringify(client.redirectUris),
    auth_method: client.authMethod,
    secret_hash: client.secretHash ?? '',
    created_at: client.createdAt,
  });
  await ctx.redis.sadd(keys.accountOAuthClients(owner), client.id);
  return { client, secret };
}

export async function listClients(ctx: BrokerContext, owner: string): Promise<OAuthClient[]> {
  const ids = await ctx.redis.smembers(keys.accountOAuthClients(owner));
  const found = await Promise.all(ids.map((id) => getClient(ctx, id)));
  return found
    .filter((c): c is OAuthClient => c !== null && c.owner === owner)
    .sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
}

/** The owner's client, or 404 (another account's client is indistinguishable from none). */
export async function ownClient(ctx: BrokerContext, owner: string, clientId: string): Promise<OAuthClient> {
  const client = await getClient(ctx, clientId);
  if (!client || client.owner !== owner) throw notFound('No such OAuth client.');
  return client;
}

/** Deletes the record first, so the client stops working before its grants are revoked. */
export async function deleteClientRecord(ctx: BrokerContext, client: OAuthClient): Promise<void> {
  await ctx.redis.del(keys.oauthClient(client.id));
  if (client.owner) await ctx.redis.srem(keys.accountOAuthClients(client.owner), client.id);
}

// ── client authentication at the token and revocation endpoints (RFC 6749 §2.3) ──────────────────

/** What a request presented; routes/oauth.ts reads it from the Authorization header or the form. */
export interface ClientCredentials {
  method: AuthMethod;
  clientId: string;
  secret: string | undefined;
}

/** The authenticated client; invalid_client when unknown, the wrong method, or the wrong secret. */
export async function authenticateClient(
  ctx: BrokerContext,
  credentials: ClientCredentials,
): Promise<OAuthClient> {
  const client = await getClient(ctx, credentials.clientId);
  if (!client) throw oauthError('invalid_client', 'Unknown client.');
  if (client.authMethod !== credentials.method) {
    throw oauthError('invalid_client', `This client authenticates with ${client.authMethod}.`);
  }
  if (client.authMethod !== 'none') {
    const ok =
      client.secretHash !== null && sameDigest(client.secretHash, hashToken(credentials.secret ?? ''));
    if (!ok) throw oauthError('invalid_client', 'Client authentication failed.');
  }
  return client;
}
