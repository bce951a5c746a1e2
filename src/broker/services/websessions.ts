// Browser sign-ins: the session cookie of the sign-in, consent and account pages. The cookie holds a
// random token; Redis holds its SHA-256 with the account, an expiry of its own and the CSRF token the
// pages' forms carry. Signing out deletes the record, so a copied cookie stops working at once.
import type { BrokerContext } from '../context.js';
import { unauthorized } from '../errors.js';
import { keys, TTL } from '../store/keys.js';
import { execAll } from '../store/redis.js';
import {
  hashToken,
  isWellFormedToken,
  mintToken,
  randomBase62,
  sameDigest,
  WEB_SESSION_PREFIX,
} from '../tokens.js';
import { getAccount, keepUnlessSignInsEnded, type Account } from './accounts.js';
import { LOGIN_FAILED } from './signin.js';

/** How long a signed-in page session, and its cookie, lasts. */
export const WEB_SESSION_SECONDS = TTL.webSessionSeconds;

export interface WebSession {
  account: Account;
  /** Synchronizer token for the forms of this sign-in. */
  csrf: string;
  expiresAt: number;
}

/** A browser sign-in's session for `account`, as read when its password was checked (keepUnlessSignInsEnded). */
export async function startWebSession(
  ctx: BrokerContext,
  account: Account,
): Promise<{ cookie: string; expiresAt: number }> {
  const cookie = mintToken(WEB_SESSION_PREFIX);
  const now = ctx.clock();
  const expiresAt = now + TTL.webSessionSeconds * 1000;
  const key = keys.webSession(hashToken(cookie));
  await execAll(
    ctx.redis
      .multi()
      .hset(key, { account: account.id, csrf: randomBase62(32), created_at: now, expires_at: expiresAt })
      .expire(key, TTL.webSessionSeconds),
  );
  await keepUnlessSignInsEnded(
    ctx,
    account,
    () => ctx.redis.del(key),
    () => unauthorized(LOGIN_FAILED),
  );
  return { cookie, expiresAt };
}

/**
 * The live sign-in a cookie names, or null (malformed, unknown, expired, signed out, account gone, ended
 * by a password change).
 */
export async function findWebSession(
  ctx: BrokerContext,
  cookie: string | undefined,
): Promise<WebSession | null> {
  if (!cookie || !isWellFormedToken(WEB_SESSION_PREFIX, cookie)) return null;
  const record = await ctx.redis.hgetall(keys.webSession(hashToken(cookie)));
  if (!record.account || !record.csrf || Number(record.expires_at) <= ctx.clock()) return null;
  const account = await getAccount(ctx, record.account);
  // A password change ends every sign-in started until then (accounts.ts endSignIns).
  if (!account || Number(record.created_at) <= (account.signInsEndedAt ?? -Infinity)) return null;
  return { account, csrf: record.csrf, expiresAt: Number(record.expires_at) };
}

export async function endWebSession(ctx: BrokerContext, cookie: string | undefined): Promise<void> {
  if (cookie && isWellFormedToken(WEB_SESSION_PREFIX, cookie))
    await ctx.redis.del(keys.webSession(hashToken(cookie)));
}

/** Constant-time comparison of a form's CSRF token with the expected one. */
export function csrfMatches(expected: string, presented: unknown): boolean {
  if (typeof presented !== 'string' || presented.length !== expected.length) return false;
  return sameDigest(Buffer.from(expected).toString('hex'), Buffer.from(presented).toString('hex'));
}
