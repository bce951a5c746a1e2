// Getting a token: anonymous signup (free, bound to the machine) and email/password login
// (for accounts that attached credentials when they paid). Both hand out a key holding every
// non-admin scope.
import type { BrokerContext } from '../context.js';
import { invalidRequest, rateLimited, unauthorized } from '../errors.js';
import { verifyOrBurn } from '../password.js';
import { USER_SCOPES } from '../scopes.js';
import { keys } from '../store/keys.js';
import { takeLoginAttempt } from './backoff.js';
import {
  createAccount,
  getAccount,
  idleTtlSeconds,
  issueKey,
  normalizeEmail,
  normalizeFingerprint,
  endSignIns,
  revokeKey,
  keepUnlessSignInsEnded,
  type Account,
  type ApiKey,
  type IssuedKey,
} from './accounts.js';
import { CLI_CLIENT_ID } from './oauth-clients.js';
import { endSignInGrants } from './oauth-grants.js';

export const LOGIN_FAILED = 'Invalid email or password.';

/**
 * An anonymous account and its first key, within the source's signup budget and then the global one:
 * a source over its own budget is refused before it spends any of everyone's.
 */
export async function signup(
  ctx: BrokerContext,
  input: { source: string; fingerprint: string },
): Promise<{ account: Account } & IssuedKey> {
  const own = await ctx.limits.signupBySource.take(input.source);
  if (!own.allowed) throw rateLimited(own.retryAfterSeconds);
  const everyone = await ctx.limits.signup.take('all');
  if (!everyone.allowed) throw rateLimited(everyone.retryAfterSeconds);
  const account = await createAccount(ctx, { plan: 'free' });
  const issued = await issueKey(ctx, account.id, {
    name: 'signup',
    permissions: [...USER_SCOPES],
    fingerprint: normalizeFingerprint(input.fingerprint),
    expiresAt: null,
    idleTtlSeconds: idleTtlSeconds(ctx, account),
    signIn: true,
  });
  return { account, ...issued };
}

/**
 * Checks an email and password under the login back-off (services/backoff.ts). Unknown email and wrong
 * password answer the same 401 after the same scrypt work. Shared by the API's login and the web sign-in.
 */
export async function verifyCredentials(
  ctx: BrokerContext,
  input: { source: string; email: string; password: string },
): Promise<Account> {
  const email = normalizeEmail(input.email);
  const attempt = await takeLoginAttempt(ctx, input.source, email);
  const accountId = await ctx.redis.get(keys.email(email));
  const account = accountId ? await getAccount(ctx, accountId) : null;
  const matches = await verifyOrBurn(input.password, account?.email === email ? account.passwordHash : null);
  if (!account || !matches) throw unauthorized(LOGIN_FAILED);
  await attempt.succeeded();
  return account;
}

/** Checks the pair and issues a key. A free account's key is bound to the presented machine fingerprint. */
export async function login(
  ctx: BrokerContext,
  input: { source: string; email: string; password: string; fingerprint: string | undefined },
): Promise<{ account: Account } & IssuedKey> {
  const account = await verifyCredentials(ctx, input);
  if (account.plan === 'free' && !input.fingerprint) {
    throw invalidRequest(
      'fingerprint',
      'A free account signs in from a machine: send X-Machine-Fingerprint.',
    );
  }
  const fingerprint = input.fingerprint ? normalizeFingerprint(input.fingerprint) : null;
  return { account, ...(await issueSignIn(ctx, account, fingerprint)) };
}

/** A login's token for `account`, as read when its password was checked (keepUnlessSignInsEnded). */
export async function issueSignIn(
  ctx: BrokerContext,
  account: Account,
  fingerprint: string | null,
): Promise<IssuedKey> {
  const issued = await issueKey(ctx, account.id, {
    name: 'login',
    permissions: [...USER_SCOPES],
    fingerprint,
    expiresAt: null,
    signIn: true,
  });
  await keepUnlessSignInsEnded(
    ctx,
    account,
    () => revokeKey(ctx, account.id, issued.key.id),
    () => unauthorized(LOGIN_FAILED),
  );
  return issued;
}

/**
 * The account's password changed through `caller`: every other sign-in ends (browser sessions, login
 * and signup tokens, the CLI's browser sign-ins); `caller`, and its grant when it is the CLI's access
 * token, stay. API keys and third-party apps' grants stay (docs/API.md "Usage and billing").
 */
export async function endOtherSignIns(ctx: BrokerContext, caller: ApiKey): Promise<void> {
  await endSignIns(ctx, caller.accountId, caller.id);
  await endSignInGrants(ctx, caller.accountId, caller.client === CLI_CLIENT_ID ? caller.grant : null);
}
