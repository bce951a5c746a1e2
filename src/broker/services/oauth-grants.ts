// The OAuth 2.0 authorization server's state (RFC 6749, RFC 7636, RFC 7009, RFC 9700): authorization
// codes, grants and their tokens. A grant is one code exchange and every refresh after it (a refresh
// token "family"). Its access token is an ordinary tb_ key (services/accounts.ts) limited to the
// consented scopes for an hour; its refresh token is tbr_ + the same body and checksum. Both are
// stored as SHA-256 only.
//
// Single use without locks: codes and refresh tokens carry a `uses` counter that HINCRBY claims. The
// first presenter (uses = 1) issues; any later one (uses > 1) revokes the grant the first one made.
// Because the first writes its grant id and then reads `uses` again, while a later one increments
// `uses` and then reads the grant id, at least one of the two always sees the other: a replay racing
// the genuine exchange still ends with the grant revoked.
import type { BrokerContext } from '../context.js';
import { oauthError } from '../oauth/errors.js';
import { verifierMatches } from '../oauth/pkce.js';
import { firstMissing, isScope, USER_SCOPES, type Scope } from '../scopes.js';
import { keys, TTL } from '../store/keys.js';
import { execAll } from '../store/redis.js';
import {
  API_TOKEN_PREFIX,
  AUTHORIZATION_CODE_PREFIX,
  hashToken,
  isWellFormedToken,
  mintToken,
  newId,
  REFRESH_TOKEN_PREFIX,
} from '../tokens.js';
import {
  dropKey,
  findByToken,
  getAccount,
  getKey,
  issueKey,
  keepUnlessSignInsEnded,
  revokeKey,
  revokeKeysMadeBy,
  revokeKeysOfGrant,
  type Account,
  type ApiKey,
} from './accounts.js';
import { CLI_CLIENT_ID, type OAuthClient } from './oauth-clients.js';

export const ACCESS_TOKEN_SECONDS = 60 * 60;
export const CODE_SECONDS = 60;

/** Scopes as OAuth writes them: space-separated. */
export const scopeString = (scopes: readonly string[]) => scopes.join(' ');
export const parseScope = (value: string) => [...new Set(value.split(' ').filter(Boolean))];

/** Why a requested scope list cannot be granted, or undefined. Admin scopes are never granted to apps. */
export function scopeProblem(scopes: readonly string[]): string | undefined {
  if (scopes.length === 0) return 'scope is required (space-separated scopes).';
  const unknown = scopes.find((s) => !isScope(s));
  if (unknown) return `Unknown scope: ${unknown}.`;
  const beyond = firstMissing(USER_SCOPES, scopes);
  return beyond ? `Scope ${beyond} cannot be granted to an app.` : undefined;
}

/** Only paid accounts sign in with email and password, so only they authorize apps. */
export const canAuthorize = (account: Account) => account.plan !== 'free';

export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token: string;
  scope: string;
}

// ── authorization codes ───────────────────────────────────────────────────────────────────────────

export interface ApprovedRequest {
  client: OAuthClient;
  redirectUri: string;
  scopes: Scope[];
  /** S256 challenge, or null when the (confidential) client sent none. */
  challenge: string | null;
}

/** After consent: a single-use code valid for CODE_SECONDS, bound to client, redirect URI and challenge. */
export async function createCode(
  ctx: BrokerContext,
  accountId: string,
  approved: ApprovedRequest,
): Promise<string> {
  const code = mintToken(AUTHORIZATION_CODE_PREFIX);
  const key = keys.oauthCode(hashToken(code));
  await execAll(
    ctx.redis
      .multi()
      .hset(key, {
        client: approved.client.id,
        account: accountId,
        redirect_uri: approved.redirectUri,
        scope: scopeString(approved.scopes),
        challenge: approved.challenge ?? '',
        expires_at: ctx.clock() + CODE_SECONDS * 1000,
        uses: 0,
      })
      .expire(key, TTL.oauthCodeSeconds),
  );
  return code;
}

const invalidGrant = (why: string) => oauthError('invalid_grant', why);

/**
 * The second half of single use: after issuing, read `uses` of the code or refresh token at `key`
 * again; a replay that raced this issue has incremented it, and the grant just made is revoked.
 */
async function revokeIfReplayed(
  ctx: BrokerContext,
  key: string,
  accountId: string,
  grantId: string,
  replayed: string,
): Promise<void> {
  if (Number(await ctx.redis.hget(key, 'uses')) <= 1) return;
  await revokeGrant(ctx, accountId, grantId);
  throw invalidGrant(replayed);
}

const CODE_REPLAYED = 'The authorization code was already used; the tokens it gave are revoked.';
const REFRESH_REPLAYED = 'The refresh token was already used; the grant is revoked.';

/** grant_type=authorization_code (RFC 6749 §4.1.3, RFC 7636 §4.6). */
export async function exchangeCode(
  ctx: BrokerContext,
  client: OAuthClient,
  input: { code: string; redirectUri: string | undefined; verifier: string | undefined },
): Promise<TokenResponse> {
  if (!isWellFormedToken(AUTHORIZATION_CODE_PREFIX, input.code))
    throw invalidGrant('Unknown authorization code.');
  const key = keys.oauthCode(hashToken(input.code));
  const code = await ctx.redis.hgetall(key);
  if (!code.client || !code.account) throw invalidGrant('Unknown authorization code.');
  const uses = await ctx.redis.hincrby(key, 'uses', 1);
  if (uses > 1) {
    const grantId = await ctx.redis.hget(key, 'grant');
    if (grantId) await revokeGrant(ctx, code.account, grantId);
    throw invalidGrant(CODE_REPLAYED);
  }
  if (Number(code.expires_at) <= ctx.clock()) throw invalidGrant('The authorization code has expired.');
  if (code.client !== client.id) throw invalidGrant('The authorization code was issued to another client.');
  if (input.redirectUri !== code.redirect_uri)
    throw invalidGrant('redirect_uri differs from the one in the authorization request.');
  if (code.challenge) {
    if (input.verifier === undefined)
      throw invalidGrant('code_verifier is required: a code_challenge was sent.');
    if (!verifierMatches(input.verifier, code.challenge)) throw invalidGrant('code_verifier does not match.');
  } else if (input.verifier !== undefined) {
    throw invalidGrant('code_verifier sent, but the authorization request had no code_challenge.');
  }
  const account = await getAccount(ctx, code.account);
  if (!account || !canAuthorize(account)) throw invalidGrant('The account can no longer authorize apps.');
  // Approved in a browser sign-in that a password change has ended since (accounts.ts endSignIns).
  const issuedBeforeChange = () =>
    invalidGrant('The authorization code was issued before the account’s password changed.');
  if (Number(code.expires_at) - CODE_SECONDS * 1000 <= (account.signInsEndedAt ?? -Infinity))
    throw issuedBeforeChange();

  const grantId = newId('grt');
  await ctx.redis.hset(key, 'grant', grantId);
  const issued = await startGrant(ctx, account, client, grantId, parseScope(code.scope ?? ''));
  await keepUnlessSignInsEnded(ctx, account, () => revokeGrant(ctx, account.id, grantId), issuedBeforeChange);
  await revokeIfReplayed(ctx, key, account.id, grantId, CODE_REPLAYED);
  return issued;
}

// ── grants, refresh and revocation ──────────────────────────────────────────────────────────────

async function mintPair(
  ctx: BrokerContext,
  account: Account,
  client: OAuthClient,
  grantId: string,
  scopes: string[],
): Promise<{ response: TokenResponse; accessKeyId: string }> {
  const { token, key } = await issueKey(ctx, account.id, {
    name: client.name,
    permissions: scopes,
    fingerprint: null,
    expiresAt: ctx.clock() + ACCESS_TOKEN_SECONDS * 1000,
    client: client.id,
    grant: grantId,
  });
  const refresh = mintToken(REFRESH_TOKEN_PREFIX);
  const refreshKey = keys.oauthRefresh(hashToken(refresh));
  await execAll(
    ctx.redis
      .multi()
      .hset(refreshKey, { account: account.id, grant: grantId, uses: 0 })
      .expire(refreshKey, TTL.oauthGrantSeconds),
  );
  return {
    accessKeyId: key.id,
    response: {
      access_token: token,
      token_type: 'Bearer',
      expires_in: ACCESS_TOKEN_SECONDS,
      refresh_token: refresh,
      scope: scopeString(scopes),
    },
  };
}

async function startGrant(
  ctx: BrokerContext,
  account: Account,
  client: OAuthClient,
  grantId: string,
  scopes: string[],
): Promise<TokenResponse> {
  const { response, accessKeyId } = await mintPair(ctx, account, client, grantId, scopes);
  const now = ctx.clock();
  const grantKey = keys.oauthGrant(account.id, grantId);
  await execAll(
    ctx.redis
      .multi()
      .hset(grantKey, {
        client: client.id,
        scope: response.scope,
        created_at: now,
        last_used: now,
        access_key: accessKeyId,
      })
      .expire(grantKey, TTL.oauthGrantSeconds)
      .hset(keys.accountOAuthGrants(account.id), grantId, client.id),
  );
  await ctx.redis.sadd(keys.oauthClientGrants(client.id), `${account.id} ${grantId}`);
  return response;
}

/** grant_type=refresh_token with rotation (RFC 9700 §4.14.2): a rotated token presented again revokes the grant. */
export async function refreshGrant(
  ctx: BrokerContext,
  client: OAuthClient,
  input: { refreshToken: string; scope: string | undefined },
): Promise<TokenResponse> {
  if (!isWellFormedToken(REFRESH_TOKEN_PREFIX, input.refreshToken))
    throw invalidGrant('Unknown refresh token.');
  const key = keys.oauthRefresh(hashToken(input.refreshToken));
  const record = await ctx.redis.hgetall(key);
  if (!record.account || !record.grant) throw invalidGrant('Unknown refresh token.');
  const grantKey = keys.oauthGrant(record.account, record.grant);
  const grant = await ctx.redis.hgetall(grantKey);
  if (!grant.client) throw invalidGrant('The grant was revoked.');
  if (grant.client !== client.id) throw invalidGrant('The refresh token was issued to another client.');
  // Every refusal comes before the token is claimed: a refused request issues nothing, so the
  // client's corrected retry is the token's first use, not a replay that revokes the grant.
  const granted = parseScope(grant.scope ?? '');
  const requested = input.scope === undefined ? granted : parseScope(input.scope);
  const beyond = requested.find((s) => !granted.includes(s));
  if (beyond)
    throw oauthError('invalid_scope', `Scope ${beyond} was not granted; a refresh never adds scopes.`);
  if (requested.length === 0) throw oauthError('invalid_scope', 'scope is empty.');
  const account = await getAccount(ctx, record.account);
  if (!account || !canAuthorize(account)) throw invalidGrant('The account can no longer authorize apps.');
  if ((await ctx.redis.hincrby(key, 'uses', 1)) > 1) {
    await revokeGrant(ctx, record.account, record.grant);
    throw invalidGrant(REFRESH_REPLAYED);
  }

  const { response, accessKeyId } = await mintPair(ctx, account, client, record.grant, requested);
  await execAll(
    ctx.redis
      .multi()
      .hset(grantKey, { scope: response.scope, last_used: ctx.clock(), access_key: accessKeyId })
      .expire(grantKey, TTL.oauthGrantSeconds),
  );
  // The grant ended since it was read (endGrant takes its record and the access token it named at once):
  // that write re-created a record without its client. Either endGrant saw this token, or this sees it ended.
  if ((await ctx.redis.hget(grantKey, 'client')) === null) {
    await ctx.redis.del(grantKey);
    await dropKey(ctx, account.id, accessKeyId);
    throw invalidGrant('The grant was revoked.');
  }
  // One live access token per grant: the one this refresh replaces stops working.
  if (grant.access_key) await dropKey(ctx, account.id, grant.access_key);
  await revokeIfReplayed(ctx, key, account.id, record.grant, REFRESH_REPLAYED);
  return response;
}

/**
 * Ends a grant's tokens: its access token stops working and its refresh tokens find nothing. The grant
 * record goes first: a key made under it meanwhile sees it gone (revokeIfGrantEnded). Answers the
 * grant's client (null when there was no such grant).
 */
async function endGrant(ctx: BrokerContext, accountId: string, grantId: string): Promise<string | null> {
  const grantKey = keys.oauthGrant(accountId, grantId);
  // Read and deleted in one transaction: a refresh writing its new access token meanwhile is either seen
  // here or finds the record gone (refreshGrant).
  const [[client, accessKey]] = (await execAll(
    ctx.redis
      .multi()
      .hmget(grantKey, 'client', 'access_key')
      .del(grantKey)
      .hdel(keys.accountOAuthGrants(accountId), grantId),
  )) as [[string | null, string | null]];
  if (accessKey) await dropKey(ctx, accountId, accessKey);
  if (client) await ctx.redis.srem(keys.oauthClientGrants(client), `${accountId} ${grantId}`);
  return client ?? null;
}

/**
 * Ends a grant: its tokens (endGrant), and the API keys made under it are revoked (the client's other
 * grants, other devices' sign-ins, keep theirs). Idempotent.
 */
export async function revokeGrant(ctx: BrokerContext, accountId: string, grantId: string): Promise<void> {
  const client = await endGrant(ctx, accountId, grantId);
  if (client) await revokeKeysOfGrant(ctx, accountId, client, grantId);
}

/**
 * A password change: ends the account's sign-ins through the built-in CLI client (`tunnelbyte login
 * --web`), but the grant `keep` (the one making the change). They are sign-ins, like a login's token;
 * the API keys made under them stay, as every API key does, and so do third-party apps' grants.
 */
export async function endSignInGrants(
  ctx: BrokerContext,
  accountId: string,
  keep: string | null,
): Promise<void> {
  const grants = Object.entries(await ctx.redis.hgetall(keys.accountOAuthGrants(accountId)));
  const ended = grants.filter(([grantId, client]) => client === CLI_CLIENT_ID && grantId !== keep);
  await Promise.all(ended.map(([grantId]) => endGrant(ctx, accountId, grantId)));
}

/**
 * A key just made under a grant (by its access token, or a key it made) whose grant ended meanwhile:
 * the creator passed authentication before revokeGrant, the key was written after revokeGrant listed
 * the grant's keys. Revokes it and answers true. Checked after the key is written, so either this sees
 * the grant gone or revokeGrant's listing sees the key.
 */
export async function revokeIfGrantEnded(ctx: BrokerContext, key: ApiKey): Promise<boolean> {
  if (!key.grant || (await ctx.redis.exists(keys.oauthGrant(key.accountId, key.grant)))) return false;
  await revokeKey(ctx, key.accountId, key.id);
  return true;
}

/** RFC 7009: the client's own refresh token ends its grant, its own access token ends itself; anything else is ignored. */
export async function revokeToken(ctx: BrokerContext, client: OAuthClient, token: string): Promise<void> {
  if (isWellFormedToken(REFRESH_TOKEN_PREFIX, token)) {
    const record = await ctx.redis.hgetall(keys.oauthRefresh(hashToken(token)));
    if (!record.account || !record.grant) return;
    const owner = await ctx.redis.hget(keys.oauthGrant(record.account, record.grant), 'client');
    if (owner === client.id) await revokeGrant(ctx, record.account, record.grant);
  } else if (isWellFormedToken(API_TOKEN_PREFIX, token)) {
    const found = await findByToken(ctx, token);
    if (found && found.key.client === client.id) await dropKey(ctx, found.account.id, found.key.id);
  }
}

// ── the apps a user allowed ─────────────────────────────────────────────────────────────────────

export interface Authorization {
  clientId: string;
  scopes: string[];
  grantedAt: number;
  lastUsed: number;
}

/** One entry per client, merging that client's grants; grants that expired are forgotten here. */
export async function listAuthorizations(ctx: BrokerContext, accountId: string): Promise<Authorization[]> {
  const grants = Object.entries(await ctx.redis.hgetall(keys.accountOAuthGrants(accountId)));
  const byClient = new Map<string, Authorization>();
  for (const [grantId, clientId] of grants) {
    const grant = await ctx.redis.hgetall(keys.oauthGrant(accountId, grantId));
    if (!grant.client) {
      await ctx.redis.hdel(keys.accountOAuthGrants(accountId), grantId);
      continue;
    }
    const accessKey = grant.access_key ? await getKey(ctx, accountId, grant.access_key) : null;
    const lastUsed = Math.max(Number(grant.last_used), accessKey?.lastUsed ?? 0);
    const seen = byClient.get(clientId);
    const scopes = parseScope(grant.scope ?? '');
    byClient.set(clientId, {
      clientId,
      scopes: seen ? [...new Set([...seen.scopes, ...scopes])] : scopes,
      grantedAt: Math.min(seen?.grantedAt ?? Infinity, Number(grant.created_at)),
      lastUsed: Math.max(seen?.lastUsed ?? 0, lastUsed),
    });
  }
  return [...byClient.values()].sort((a, b) => a.grantedAt - b.grantedAt);
}

/**
 * Revokes every grant the account gave the client, and every key the client made on it; false when there
 * was no grant. The grants' tokens end first (their records gone, so a key made meanwhile revokes itself),
 * then one listing takes every key the client made, which holds each grant's own.
 */
export async function revokeAuthorization(
  ctx: BrokerContext,
  accountId: string,
  clientId: string,
): Promise<boolean> {
  const grants = Object.entries(await ctx.redis.hgetall(keys.accountOAuthGrants(accountId)));
  const mine = grants.filter(([, c]) => c === clientId).map(([grantId]) => grantId);
  await Promise.all(mine.map((grantId) => endGrant(ctx, accountId, grantId)));
  await revokeKeysMadeBy(ctx, accountId, clientId);
  return mine.length > 0;
}

/** Every grant made to the client, across accounts (deleting a client calls this). */
export async function revokeClientGrants(ctx: BrokerContext, clientId: string): Promise<void> {
  const accounts = new Set<string>();
  for (const member of await ctx.redis.smembers(keys.oauthClientGrants(clientId))) {
    const [accountId, grantId] = member.split(' ');
    if (accountId && grantId) await endGrant(ctx, accountId, grantId);
    if (accountId) accounts.add(accountId);
  }
  // As revokeAuthorization: one listing per account after its grants ended takes every key the client made.
  for (const accountId of accounts) await revokeKeysMadeBy(ctx, accountId, clientId);
  await ctx.redis.del(keys.oauthClientGrants(clientId));
}
