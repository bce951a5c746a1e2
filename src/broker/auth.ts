// The two kinds of caller. Bearer authentication (docs/API.md "Conventions", "Tiers"): token shape and
// checksum checked before any lookup, the stored SHA-256 compared in constant time, revoked/expired
// refused, free tokens bound to the X-Machine-Fingerprint they were issued for, per-token tier limits,
// then scope checks. Node authentication (docs/API.md "Exit nodes"): the node's tbn_ enrollment token.
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { BrokerContext } from './context.js';
import { ApiError, forbidden, unauthorized } from './errors.js';
import { sourceOf } from './ip.js';
import { enforce } from './ratelimit.js';
import { grants, type Scope } from './scopes.js';
import {
  findByToken,
  normalizeFingerprint,
  touchKey,
  type Account,
  type ApiKey,
} from './services/accounts.js';
import { verifyNodeToken, type NodeToken } from './services/enrollment.js';
import { API_TOKEN_PREFIX, isWellFormedToken } from './tokens.js';

export interface AuthContext {
  account: Account;
  key: ApiKey;
}

declare module 'express-serve-static-core' {
  interface Request {
    /** Set by bearerAuth; read it with authOf(req). */
    auth?: AuthContext;
    /** Set by nodeAuth; read it with nodeTokenOf(req). */
    nodeToken?: NodeToken;
  }
}

export const FINGERPRINT_HEADER = 'x-machine-fingerprint';

/** The authenticated caller; calling it on a route without bearerAuth is a programmer mistake. */
export function authOf(req: Request): AuthContext {
  if (!req.auth) throw new Error('authOf() on a route without bearerAuth');
  return req.auth;
}

/** The enrollment of the calling node; calling it on a route without nodeAuth is a programmer mistake. */
export function nodeTokenOf(req: Request): NodeToken {
  if (!req.nodeToken) throw new Error('nodeTokenOf() on a route without nodeAuth');
  return req.nodeToken;
}

export function bearerToken(req: Request): string | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer +(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/** Free-tier keys only work from the machine they were issued to; paid ones are portable. */
function machineMatches(account: Account, key: ApiKey, presented: string | undefined): boolean {
  if (account.plan !== 'free') return true;
  if (!key.fingerprint || presented === undefined) return false;
  return normalizeFingerprint(presented) === key.fingerprint;
}

/** The client's rate-limit identity (IPv6: its /64). */
export const sourceOfRequest = (req: Request) => sourceOf(req.ip ?? 'unknown');

/**
 * Runs `check` (which throws unauthorized for a bad credential) unless the source already failed too
 * often this minute (then 429 without any lookup); a failure counts against the source.
 */
export async function throttledAuth<T>(
  ctx: BrokerContext,
  req: Request,
  check: () => Promise<T>,
): Promise<T> {
  const source = sourceOfRequest(req);
  ctx.limits.authFailures.check(source, ctx.clock());
  try {
    return await check();
  } catch (err) {
    if (err instanceof ApiError && err.kind === 'unauthorized')
      ctx.limits.authFailures.record(source, ctx.clock());
    throw err;
  }
}

async function authenticate(ctx: BrokerContext, req: Request): Promise<AuthContext> {
  const token = bearerToken(req);
  if (!token || !isWellFormedToken(API_TOKEN_PREFIX, token)) throw unauthorized();
  const found = await findByToken(ctx, token);
  if (!found || found.key.revoked) throw unauthorized();
  if (found.key.expiresAt !== null && found.key.expiresAt <= ctx.clock())
    throw unauthorized('API key expired.');
  const fingerprint = req.headers[FINGERPRINT_HEADER];
  if (!machineMatches(found.account, found.key, typeof fingerprint === 'string' ? fingerprint : undefined)) {
    throw unauthorized('This anonymous API key is bound to another machine.');
  }
  return found;
}

/** Authenticates, counts the request against the token's tier cap, and attaches req.auth. */
export function bearerAuth(ctx: BrokerContext): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    const auth = await throttledAuth(ctx, req, () => authenticate(ctx, req));
    enforce(res, await ctx.limits.bearer.take(auth.key.id, auth.account.id, auth.account.plan));
    const now = ctx.clock();
    await touchKey(ctx, auth.account, auth.key, now);
    req.auth = { account: auth.account, key: { ...auth.key, lastUsed: now } };
    next();
  };
}

export function hasScope(auth: AuthContext, scope: Scope): boolean {
  return grants(auth.key.permissions, scope);
}

/** 403 forbidden with required_scope unless the token holds `scope` (`tunnels:*` counts). */
export function requireScope(scope: Scope): RequestHandler {
  return (req: Request, _res: Response, next: NextFunction) => {
    if (!hasScope(authOf(req), scope)) throw forbidden(scope);
    next();
  };
}

/** Authenticates an exit node by its tbn_ enrollment token (failures throttled per source), counts the
 * request against the token's limit (`window`: heartbeats have their own), and attaches req.nodeToken. */
export function nodeAuth(ctx: BrokerContext, window: 'node' | 'nodeHeartbeat' = 'node'): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    const token = await throttledAuth(ctx, req, async () => {
      const found = await verifyNodeToken(ctx, bearerToken(req));
      if (!found) throw unauthorized('Invalid or missing node token.');
      return found;
    });
    enforce(res, await ctx.limits[window].take(token.tokenId));
    req.nodeToken = token;
    next();
  };
}
