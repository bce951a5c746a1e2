// Accounts and their API keys: the state layer over Redis for everything under {acct:<id>}.
// Handlers call these functions; only this module knows how an account or key is laid out.
import { TIERS, type Tier } from '../config.js';
import type { BrokerContext } from '../context.js';
import { keys } from '../store/keys.js';
import { execAll, type Redis } from '../store/redis.js';
import {
  API_TOKEN_PREFIX,
  hashToken,
  maskToken,
  mintToken,
  newId,
  sameDigest,
  tokenHint,
} from '../tokens.js';

export interface Account {
  id: string;
  email: string | null;
  name: string | null;
  plan: Tier;
  createdAt: number;
  passwordHash: string | null;
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
}

const numOrNull = (v: string | undefined) => (v === undefined || v === '' ? null : Number(v));
const strOrNull = (v: string | undefined) => (v === undefined || v === '' ? null : v);

function accountFrom(h: Record<string, string>): Account | null {
  if (!h.id) return null;
  const plan = (TIERS as readonly string[]).includes(h.plan ?? '') ? (h.plan as Tier) : 'free';
  return {
    id: h.id,
    email: strOrNull(h.email),
    name: strOrNull(h.name),
    plan,
    createdAt: Number(h.created_at),
    passwordHash: strOrNull(h.password_hash),
  };
}

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
  };
}

export const normalizeEmail = (email: string) => email.trim().toLowerCase();
export const normalizeFingerprint = (fingerprint: string) => fingerprint.trim().toLowerCase();

export async function getAccount(redis: Redis, accountId: string): Promise<Account | null> {
  return accountFrom(await redis.hgetall(keys.account(accountId)));
}

export async function getKey(redis: Redis, accountId: string, keyId: string): Promise<ApiKey | null> {
  return keyFrom(await redis.hgetall(keys.apiKey(accountId, keyId)));
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

/** Mints a token for the account; the record is written before the index that finds it. */
export async function issueKey(
  ctx: BrokerContext,
  accountId: string,
  fields: { name: string; permissions: string[]; fingerprint: string | null; expiresAt: number | null },
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
  };
  await execAll(
    ctx.redis
      .multi()
      .hset(keys.apiKey(accountId, key.id), {
        id: key.id,
        account: accountId,
        name: key.name,
        hash: key.hash,
        hint: key.hint,
        permissions: JSON.stringify(key.permissions),
        fingerprint: key.fingerprint ?? '',
        created_at: key.createdAt,
        expires_at: key.expiresAt ?? '',
        status: 'valid',
      })
      .sadd(keys.accountKeys(accountId), key.id),
  );
  await ctx.redis.set(keys.tokenHash(key.hash), `${accountId} ${key.id}`);
  return { token, key };
}

/** The key and account a well-formed token names, or null (unknown token, dangling index). */
export async function findByToken(
  redis: Redis,
  token: string,
): Promise<{ account: Account; key: ApiKey } | null> {
  const digest = hashToken(token);
  const pointer = await redis.get(keys.tokenHash(digest));
  if (!pointer) return null;
  const [accountId, keyId] = pointer.split(' ');
  if (!accountId || !keyId) return null;
  const [keyHash, accountHash] = (await execAll(
    redis.pipeline().hgetall(keys.apiKey(accountId, keyId)).hgetall(keys.account(accountId)),
  )) as Record<string, string>[];
  const key = keyFrom(keyHash ?? {});
  const account = accountFrom(accountHash ?? {});
  // The index is only a pointer: the record's own hash must match, compared in constant time.
  if (!key || !account || !sameDigest(key.hash, digest)) return null;
  return { account, key };
}

export async function listKeys(redis: Redis, accountId: string): Promise<ApiKey[]> {
  const ids = await redis.smembers(keys.accountKeys(accountId));
  if (ids.length === 0) return [];
  const pipeline = redis.pipeline();
  for (const id of ids) pipeline.hgetall(keys.apiKey(accountId, id));
  return (await execAll(pipeline))
    .map((value) => keyFrom(value as Record<string, string>))
    .filter((k): k is ApiKey => k !== null && !k.revoked)
    .sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
}

/** Revokes a key of the account; false when the account holds no such live key. */
export async function revokeKey(redis: Redis, accountId: string, keyId: string): Promise<boolean> {
  const key = await getKey(redis, accountId, keyId);
  if (!key || key.revoked) return false;
  await execAll(
    redis
      .multi()
      .hset(keys.apiKey(accountId, keyId), 'status', 'revoked')
      .srem(keys.accountKeys(accountId), keyId),
  );
  await redis.del(keys.tokenHash(key.hash));
  return true;
}

/** Records a served bearer request: last_used on the key, requests_served on the account. */
export async function touchKey(redis: Redis, key: ApiKey, nowMs: number): Promise<void> {
  await execAll(
    redis
      .pipeline()
      .hset(keys.apiKey(key.accountId, key.id), 'last_used', nowMs)
      .hincrby(keys.accountUsage(key.accountId), 'requests_served', 1),
  );
}

export const maskedKey = (key: ApiKey) => maskToken(API_TOKEN_PREFIX, key.hint);
