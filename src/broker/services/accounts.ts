// Accounts and their API keys: the state layer over Redis for everything under {acct:<id>}.
// Handlers call these functions; only this module knows how an account or key is laid out.
import { TIERS, type Tier } from '../config.js';
import type { BrokerContext } from '../context.js';
import { keys } from '../store/keys.js';
import { conflict } from '../errors.js';
import { execAll } from '../store/redis.js';
import {
  API_TOKEN_PREFIX,
  hashToken,
  maskToken,
  mintToken,
  newId,
  sameDigest,
  tokenHint,
} from '../tokens.js';
import { runAddKey } from './lua.js';

export interface Account {
  id: string;
  email: string | null;
  name: string | null;
  plan: Tier;
  createdAt: number;
  passwordHash: string | null;
  /**
   * When the account's sign-ins last ended (its password changed, endSignIns): a browser session
   * started until then no longer counts (services/websessions.ts). Null: never.
   */
  signInsEndedAt: number | null;
}

export interface ApiKey {
  id: string;
  accountId: string;
  name: string;
  /** SHA-256 hex of the token; the token itself is never stored. */
  hash: string;
  hint: string;
  permissions: string[];
  /** Machine the key is bound to while the account is on the free tier; null = portable. */
  fingerprint: string | null;
  createdAt: number;
  lastUsed: number | null;
  expiresAt: number | null;
  revoked: boolean;
  /** The OAuth client this access token was issued to (services/oauth-grants.ts), or null for an API key. */
  client: string | null;
  /**
   * A sign-in's token (password login, signup), not a key someone made: a password change ends it
   * (endSignIns), as it ends browser sessions, while API keys stay.
   */
  signIn: boolean;
  /**
   * The OAuth client whose access token made this API key, directly or through another key it made;
   * null for keys the user made. Ending the app's access revokes it (revokeKeysMadeBy).
   */
  madeBy: string | null;
  /**
   * The OAuth grant (one sign-in, services/oauth-grants.ts) of an access token, or of the access token
   * that made this key, directly or through another key; null otherwise. Internal: ending that grant
   * revokes it, and only it, of the client's keys (revokeKeysOfGrant).
   */
  grant: string | null;
}

const numOrNull = (v: string | undefined) => (v === undefined || v === '' ? null : Number(v));
const strOrNull = (v: string | undefined) => (v === undefined || v === '' ? null : v);

/**
 * The account as of `nowMs`: a paid plan whose `paid_until` has passed (a one-time payment's period,
 * a cancelled or unpaid subscription's last period) reads as free.
 */
function accountFrom(h: Record<string, string>, nowMs: number): Account | null {
  if (!h.id) return null;
  const stored = (TIERS as readonly string[]).includes(h.plan ?? '') ? (h.plan as Tier) : 'free';
  const paidUntil = numOrNull(h.paid_until);
  const plan = paidUntil !== null && paidUntil <= nowMs ? 'free' : stored;
  return {
    id: h.id,
    email: strOrNull(h.email),
    name: strOrNull(h.name),
    plan,
    createdAt: Number(h.created_at),
    passwordHash: strOrNull(h.password_hash),
    signInsEndedAt: numOrNull(h.sign_ins_ended_at),
  };
}

/** Names login and signup gave their tokens before records said `sign_in`: such records are sign-ins. */
const UNMARKED_SIGN_IN_NAMES = new Set(['login', 'signup']);

const isSignIn = (h: Record<string, string>) =>
  h.sign_in === undefined
    ? UNMARKED_SIGN_IN_NAMES.has(h.name ?? '') && !h.client && !h.made_by
    : h.sign_in === '1';

function keyFrom(h: Record<string, string>): ApiKey | null {
  if (!h.id || !h.account || !h.hash) return null;
  return {
    id: h.id,
    accountId: h.account,
    name: h.name ?? '',
    hash: h.hash,
    hint: h.hint ?? '',
    permissions: JSON.parse(h.permissions ?? '[]') as string[],
    fingerprint: strOrNull(h.fingerprint),
    createdAt: Number(h.created_at),
    lastUsed: numOrNull(h.last_used),
    expiresAt: numOrNull(h.expires_at),
    revoked: h.status === 'revoked',
    client: strOrNull(h.client),
    signIn: isSignIn(h),
    madeBy: strOrNull(h.made_by),
    grant: strOrNull(h.grant),
  };
}

export const normalizeEmail = (email: string) => email.trim().toLowerCase();
export const normalizeFingerprint = (fingerprint: string) => fingerprint.trim().toLowerCase();

/** The account, as of the broker's clock (a lapsed paid_until reads as free). */
export async function getAccount(ctx: BrokerContext, accountId: string): Promise<Account | null> {
  return accountFrom(await ctx.redis.hgetall(keys.account(accountId)), ctx.clock());
}

export async function getKey(ctx: BrokerContext, accountId: string, keyId: string): Promise<ApiKey | null> {
  return keyFrom(await ctx.redis.hgetall(keys.apiKey(accountId, keyId)));
}

export async function createAccount(
  ctx: BrokerContext,
  fields: { plan: Tier; id?: string; name?: string },
): Promise<Account> {
  const account: Account = {
    id: fields.id ?? newId('usr'),
    email: null,
    name: fields.name ?? null,
    plan: fields.plan,
    createdAt: ctx.clock(),
    passwordHash: null,
    signInsEndedAt: null,
  };
  await ctx.redis.hset(keys.account(account.id), {
    id: account.id,
    plan: account.plan,
    created_at: account.createdAt,
    ...(account.name ? { name: account.name } : {}),
  });
  return account;
}

export interface IssuedKey {
  token: string;
  key: ApiKey;
}

const DAY_SECONDS = 24 * 3600;

/** An anonymous account (free, no email) is forgotten after this long without a request; null: kept. */
export function idleTtlSeconds(ctx: BrokerContext, account: Pick<Account, 'email' | 'plan'>): number | null {
  return account.email === null && account.plan === 'free'
    ? ctx.config.limits.anonymousIdleDays * DAY_SECONDS
    : null;
}

async function addKeyRecord(ctx: BrokerContext, key: ApiKey, ttlSeconds: number | null): Promise<boolean> {
  const fields: Record<string, string | number> = {
    id: key.id,
    account: key.accountId,
    name: key.name,
    hash: key.hash,
    hint: key.hint,
    permissions: JSON.stringify(key.permissions),
    fingerprint: key.fingerprint ?? '',
    created_at: key.createdAt,
    expires_at: key.expiresAt ?? '',
    status: 'valid',
    sign_in: key.signIn ? '1' : '0',
    ...(key.client ? { client: key.client } : {}),
    ...(key.madeBy ? { made_by: key.madeBy } : {}),
    ...(key.grant ? { grant: key.grant } : {}),
  };
  return runAddKey(ctx.redis, {
    accountId: key.accountId,
    keyId: key.id,
    maxKeys: ctx.config.limits.maxKeysPerAccount,
    ttlSeconds,
    fields,
  });
}

/**
 * Mints a token for the account; the record is written before the index that finds it. 409 conflict
 * when the account already holds TB_MAX_KEYS_PER_ACCOUNT keys. `idleTtlSeconds` (anonymous accounts)
 * makes the key, its index and the account's records expire unless a request renews them. An OAuth
 * access token (`client` set) is not an API key: it is listed with its app, not under keys, and its
 * record and index disappear when it expires.
 */
export async function issueKey(
  ctx: BrokerContext,
  accountId: string,
  fields: {
    name: string;
    permissions: string[];
    fingerprint: string | null;
    expiresAt: number | null;
    idleTtlSeconds?: number | null;
    client?: string;
    signIn?: boolean;
    madeBy?: string | null;
    grant?: string | null;
  },
): Promise<IssuedKey> {
  const token = mintToken(API_TOKEN_PREFIX);
  const key: ApiKey = {
    id: newId('key'),
    accountId,
    name: fields.name,
    hash: hashToken(token),
    hint: tokenHint(token),
    permissions: fields.permissions,
    fingerprint: fields.fingerprint,
    createdAt: ctx.clock(),
    lastUsed: null,
    expiresAt: fields.expiresAt,
    revoked: false,
    client: fields.client ?? null,
    signIn: fields.signIn ?? false,
    madeBy: fields.madeBy ?? null,
    grant: fields.grant ?? null,
  };
  const ttl = fields.idleTtlSeconds ?? null;
  if (!(await addKeyRecord(ctx, key, ttl))) {
    throw conflict(
      `An account holds at most ${ctx.config.limits.maxKeysPerAccount} keys: revoke one (DELETE /v1/auth/keys/{id}) first.`,
    );
  }
  const index = keys.tokenHash(key.hash);
  const pointer = `${accountId} ${key.id}`;
  await (ttl === null ? ctx.redis.set(index, pointer) : ctx.redis.set(index, pointer, 'EX', ttl));
  if (key.client && key.expiresAt !== null) {
    // Relative to the broker's clock (not Redis' own), so the record lives exactly as long as the token.
    const lifetimeMs = Math.max(1, key.expiresAt - key.createdAt);
    await Promise.all([
      ctx.redis.pexpire(keys.apiKey(accountId, key.id), lifetimeMs),
      ctx.redis.pexpire(index, lifetimeMs),
    ]);
  }
  return { token, key };
}

/** The key and account a well-formed token names, or null (unknown token, dangling index). */
export async function findByToken(
  ctx: BrokerContext,
  token: string,
): Promise<{ account: Account; key: ApiKey } | null> {
  const digest = hashToken(token);
  const pointer = await ctx.redis.get(keys.tokenHash(digest));
  if (!pointer) return null;
  const [accountId, keyId] = pointer.split(' ');
  if (!accountId || !keyId) return null;
  const [keyHash, accountHash] = (await execAll(
    ctx.redis.pipeline().hgetall(keys.apiKey(accountId, keyId)).hgetall(keys.account(accountId)),
  )) as Record<string, string>[];
  const key = keyFrom(keyHash ?? {});
  const account = accountFrom(accountHash ?? {}, ctx.clock());
  // The index is only a pointer: the record's own hash must match, compared in constant time.
  if (!key || !account || !sameDigest(key.hash, digest)) return null;
  return { account, key };
}

export async function listKeys(ctx: BrokerContext, accountId: string): Promise<ApiKey[]> {
  const ids = await ctx.redis.smembers(keys.accountKeys(accountId));
  if (ids.length === 0) return [];
  const pipeline = ctx.redis.pipeline();
  for (const id of ids) pipeline.hgetall(keys.apiKey(accountId, id));
  return (await execAll(pipeline))
    .map((value) => keyFrom(value as Record<string, string>))
    .filter((k): k is ApiKey => k !== null && !k.revoked && k.client === null)
    .sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
}

/** Revokes a key of the account; false when the account holds no such live key. */
export async function revokeKey(ctx: BrokerContext, accountId: string, keyId: string): Promise<boolean> {
  const key = await getKey(ctx, accountId, keyId);
  if (!key || key.revoked) return false;
  await execAll(
    ctx.redis
      .multi()
      .hset(keys.apiKey(accountId, keyId), 'status', 'revoked')
      .srem(keys.accountKeys(accountId), keyId),
  );
  await ctx.redis.del(keys.tokenHash(key.hash));
  return true;
}

async function revokeKeysWhere(
  ctx: BrokerContext,
  accountId: string,
  revoked: (key: ApiKey) => boolean,
): Promise<void> {
  const matching = (await listKeys(ctx, accountId)).filter(revoked);
  await Promise.all(matching.map((k) => revokeKey(ctx, accountId, k.id)));
}

/** Revokes the account's API keys an OAuth client made (its access to the account has ended). */
export const revokeKeysMadeBy = (ctx: BrokerContext, accountId: string, clientId: string) =>
  revokeKeysWhere(ctx, accountId, (k) => k.madeBy === clientId);

/**
 * Revokes the account's API keys made under one OAuth grant of the client (that sign-in ended; the
 * client's other grants keep theirs). Keys made before keys recorded their grant cannot be told apart,
 * and go with any of the client's grants.
 */
export const revokeKeysOfGrant = (ctx: BrokerContext, accountId: string, clientId: string, grantId: string) =>
  revokeKeysWhere(ctx, accountId, (k) => k.madeBy === clientId && (k.grant ?? grantId) === grantId);

/**
 * Ends the account's sign-ins as of now, but the key `keepKeyId`: browser sessions started until now
 * stop counting, and every sign-in token (login, signup) is revoked. API keys stay; OAuth grants are
 * oauth-grants.ts's (endSignInGrants).
 */
export async function endSignIns(ctx: BrokerContext, accountId: string, keepKeyId: string): Promise<void> {
  await ctx.redis.hset(keys.account(accountId), 'sign_ins_ended_at', ctx.clock());
  await revokeKeysWhere(ctx, accountId, (k) => k.signIn && k.id !== keepKeyId);
}

/**
 * A sign-in's credential (a login token, a browser session, a grant from a code) was just written for
 * `account` as read when the sign-in was checked. A password change landing in between ended every
 * sign-in (endSignIns) without seeing it: checked after the write, either the change saw the credential
 * or this sees the change, then `takeBack` undoes the write and `refusal` is thrown.
 */
export async function keepUnlessSignInsEnded(
  ctx: BrokerContext,
  account: Account,
  takeBack: () => Promise<unknown>,
  refusal: () => Error,
): Promise<void> {
  const endedAt = await ctx.redis.hget(keys.account(account.id), 'sign_ins_ended_at');
  if (numOrNull(endedAt ?? undefined) === account.signInsEndedAt) return;
  await takeBack();
  throw refusal();
}

/** Removes a token entirely (record, membership, index): how an OAuth access token is revoked. */
export async function dropKey(ctx: BrokerContext, accountId: string, keyId: string): Promise<void> {
  const key = await getKey(ctx, accountId, keyId);
  await execAll(
    ctx.redis.multi().del(keys.apiKey(accountId, keyId)).srem(keys.accountKeys(accountId), keyId),
  );
  if (key) await ctx.redis.del(keys.tokenHash(key.hash));
}

/**
 * Records a served bearer request: last_used on the key, requests_served on the account. An anonymous
 * account's records are renewed for another idle period, at most once a day per key.
 */
export async function touchKey(
  ctx: BrokerContext,
  account: Account,
  key: ApiKey,
  nowMs: number,
): Promise<void> {
  const pipeline = ctx.redis
    .pipeline()
    .hset(keys.apiKey(key.accountId, key.id), 'last_used', nowMs)
    .hincrby(keys.accountUsage(key.accountId), 'requests_served', 1);
  const ttl = idleTtlSeconds(ctx, account);
  const renew = ttl !== null && (key.lastUsed === null || nowMs - key.lastUsed >= DAY_SECONDS * 1000);
  if (renew) {
    for (const name of [
      keys.account(account.id),
      keys.accountUsage(account.id),
      keys.accountKeys(account.id),
      keys.apiKey(account.id, key.id),
      keys.accountLiveSessions(account.id),
      keys.accountSessions(account.id),
    ]) {
      pipeline.expire(name, ttl);
    }
  }
  // The token index lives in its own slot: its own command, sent in the same round trip.
  await Promise.all([execAll(pipeline), renew ? ctx.redis.expire(keys.tokenHash(key.hash), ttl) : null]);
}

/** The account is no longer anonymous (it paid): none of its records expire any more. */
export async function keepAccount(ctx: BrokerContext, accountId: string): Promise<void> {
  const ids = await ctx.redis.smembers(keys.accountKeys(accountId));
  const own = ctx.redis
    .multi()
    .persist(keys.account(accountId))
    .persist(keys.accountUsage(accountId))
    .persist(keys.accountKeys(accountId))
    .persist(keys.accountLiveSessions(accountId))
    .persist(keys.accountSessions(accountId));
  for (const id of ids) own.persist(keys.apiKey(accountId, id));
  await execAll(own);
  const hashes = await Promise.all(ids.map((id) => ctx.redis.hget(keys.apiKey(accountId, id), 'hash')));
  await Promise.all(hashes.filter((h): h is string => !!h).map((h) => ctx.redis.persist(keys.tokenHash(h))));
}

/** The account's lifetime counters (GET /v1/auth/user). */
export async function accountUsage(
  ctx: BrokerContext,
  accountId: string,
): Promise<{ sessions_created: number; bytes_transferred: number; requests_served: number }> {
  const [sessions, bytes, requests] = (
    await ctx.redis.hmget(
      keys.accountUsage(accountId),
      'sessions_created',
      'bytes_transferred',
      'requests_served',
    )
  ).map((v) => Number(v ?? 0));
  return { sessions_created: sessions!, bytes_transferred: bytes!, requests_served: requests! };
}

export const maskedKey = (key: ApiKey) => maskToken(API_TOKEN_PREFIX, key.hint);
