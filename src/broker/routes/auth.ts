// Accounts and keys (docs/API.md "Accounts and keys"): signup, login, logout, user, key, test, keys.
import type { Request, Router } from 'express';
import { authOf, FINGERPRINT_HEADER, hasScope, sourceOfRequest } from '../auth.js';
import { isoOrNull, isoTime, type BrokerContext } from '../context.js';
import { forbidden, notFound, unauthorized } from '../errors.js';
import { defineRoute } from '../http.js';
import { PageQuery, paginate } from '../pagination.js';
import { z } from '../openapi.js';
import { firstMissing, PERMISSIONS, SCOPES } from '../scopes.js';
import {
  accountUsage,
  idleTtlSeconds,
  issueKey,
  listKeys,
  maskedKey,
  revokeKey,
  type Account,
  type ApiKey,
} from '../services/accounts.js';
import { revokeIfGrantEnded } from '../services/oauth-grants.js';
import { signup, login } from '../services/signin.js';
import {
  ApiKey as ApiKeyBody,
  AuthTest,
  CurrentKey,
  Name,
  TokenGrant,
  UserWithUsage,
} from '../../lib/api.js';

const MAX_EXPIRES_IN_SECONDS = 10 * 366 * 24 * 3600;

export const userView = (a: Account) => ({
  id: a.id,
  email: a.email,
  name: a.name,
  plan: a.plan,
  created_at: isoTime(a.createdAt),
});

const keyView = (k: ApiKey, shownKey = maskedKey(k)) => ({
  id: k.id,
  name: k.name,
  key: shownKey,
  permissions: k.permissions,
  created_at: isoTime(k.createdAt),
  last_used: isoOrNull(k.lastUsed),
  expires_at: isoOrNull(k.expiresAt),
});

const fingerprintOf = (req: Request) => {
  const value = req.headers[FINGERPRINT_HEADER];
  return typeof value === 'string' && /^[0-9a-fA-F]{8,128}$/.test(value) ? value : undefined;
};

export function authRoutes(ctx: BrokerContext, router: Router): void {
  defineRoute(ctx, router, {
    method: 'post',
    path: '/v1/auth/signup',
    summary: 'Anonymous free account; the key is bound to this machine (budgets per source and overall)',
    tags: ['auth'],
    access: 'public',
    body: z.object({ fingerprint: z.string().regex(/^[0-9a-fA-F]{8,128}$/, 'hex, 8 to 128 digits') }),
    responses: { 201: { description: 'account and its first key, shown once', schema: TokenGrant } },
    noStore: true,
    handler: async ({ body }, req) => {
      const { account, token } = await signup(ctx, {
        source: sourceOfRequest(req),
        fingerprint: body.fingerprint,
      });
      return { status: 201, body: { api_key: token, user: userView(account) } };
    },
  });

  defineRoute(ctx, router, {
    method: 'post',
    path: '/v1/auth/login',
    summary: 'Email and password → a new key',
    tags: ['auth'],
    access: 'public',
    body: z.object({ email: z.string().min(1).max(254), password: z.string().min(1).max(1024) }),
    responses: { 200: { description: 'a new key, shown once', schema: TokenGrant } },
    noStore: true,
    errors: ['unauthorized', 'conflict'],
    handler: async ({ body }, req) => {
      const { account, token } = await login(ctx, {
        source: sourceOfRequest(req),
        email: body.email,
        password: body.password,
        fingerprint: fingerprintOf(req),
      });
      return { body: { api_key: token, user: userView(account) } };
    },
  });

  defineRoute(ctx, router, {
    method: 'post',
    path: '/v1/auth/logout',
    summary: 'Revoke the presenting key',
    tags: ['auth'],
    access: 'bearer',
    responses: { 204: { description: 'revoked' } },
    handler: async (_input, req) => {
      const { key } = authOf(req);
      await revokeKey(ctx, key.accountId, key.id);
    },
  });

  defineRoute(ctx, router, {
    method: 'get',
    path: '/v1/auth/user',
    summary: 'The account of the presenting key',
    tags: ['auth'],
    access: 'bearer',
    scope: 'account:read',
    responses: {
      200: {
        description: 'account',
        schema: UserWithUsage,
      },
    },
    handler: async (_input, req) => {
      const { account } = authOf(req);
      return { body: { ...userView(account), usage: await accountUsage(ctx, account.id) } };
    },
  });

  defineRoute(ctx, router, {
    method: 'get',
    path: '/v1/auth/key',
    summary: 'The presenting key (masked)',
    tags: ['auth'],
    access: 'bearer',
    responses: { 200: { description: 'key', schema: CurrentKey } },
    handler: (_input, req) => ({ body: { ...keyView(authOf(req).key), status: 'valid' } }),
  });

  defineRoute(ctx, router, {
    method: 'get',
    path: '/v1/auth/test',
    summary: 'Is the key valid, and does it hold a scope?',
    tags: ['auth'],
    access: 'bearer',
    query: z.object({ scope: z.enum(SCOPES).optional() }),
    responses: {
      200: {
        description: 'valid (and granted, when a scope was asked)',
        schema: AuthTest,
      },
    },
    errors: ['forbidden'],
    handler: ({ query }, req) => {
      const auth = authOf(req);
      if (query.scope && !hasScope(auth, query.scope)) throw forbidden(query.scope);
      return {
        body: {
          valid: true,
          user: userView(auth.account),
          plan: auth.account.plan,
          permissions: auth.key.permissions,
          ...(query.scope ? { granted: true } : {}),
        },
      };
    },
  });

  defineRoute(ctx, router, {
    method: 'get',
    path: '/v1/auth/keys',
    summary: 'Keys of the account (masked)',
    tags: ['keys'],
    access: 'bearer',
    scope: 'keys:manage',
    query: PageQuery,
    responses: {
      200: {
        description: 'keys, oldest first, a page at a time',
        schema: z.object({ keys: z.array(ApiKeyBody), next_cursor: z.string().nullable() }),
      },
    },
    handler: async ({ query }, req) => {
      const all = await listKeys(ctx, authOf(req).account.id);
      const page = paginate(all, (k) => ({ at: k.createdAt, id: k.id }), 'asc', query);
      return { body: { keys: page.items.map((k) => keyView(k)), next_cursor: page.nextCursor } };
    },
  });

  defineRoute(ctx, router, {
    method: 'post',
    path: '/v1/auth/keys',
    summary: 'Create a key; never with a permission the creator lacks',
    tags: ['keys'],
    access: 'bearer',
    scope: 'keys:manage',
    body: z.object({
      name: Name,
      permissions: z
        .array(z.enum(PERMISSIONS as [string, ...string[]]))
        .min(1)
        .max(PERMISSIONS.length),
      expires_in: z.number().int().min(60).max(MAX_EXPIRES_IN_SECONDS).optional(),
    }),
    responses: { 201: { description: 'the key, in full, shown once', schema: ApiKeyBody } },
    noStore: true,
    errors: ['conflict'],
    handler: async ({ body }, req) => {
      const { account, key: creator } = authOf(req);
      const missing = firstMissing(creator.permissions, body.permissions);
      if (missing) throw forbidden(missing);
      const requested = body.expires_in === undefined ? null : ctx.clock() + body.expires_in * 1000;
      // A key never outlives the key that made it, nor leaves the machine it is bound to.
      const bounds = [requested, creator.expiresAt].filter((t): t is number => t !== null);
      const { token, key } = await issueKey(ctx, account.id, {
        name: body.name,
        permissions: [...new Set(body.permissions)],
        fingerprint: creator.fingerprint,
        expiresAt: bounds.length ? Math.min(...bounds) : null,
        idleTtlSeconds: idleTtlSeconds(ctx, account),
        // Made by an app (its access token, or a key it made): revoked when the app's access ends,
        // or when the grant (sign-in) it was made under ends.
        madeBy: creator.client ?? creator.madeBy,
        grant: creator.grant,
      });
      if (await revokeIfGrantEnded(ctx, key)) throw unauthorized("The app's access was revoked.");
      return { status: 201, body: keyView(key, token) };
    },
  });

  defineRoute(ctx, router, {
    method: 'delete',
    path: '/v1/auth/keys/{id}',
    summary: 'Revoke a key of the account',
    tags: ['keys'],
    access: 'bearer',
    scope: 'keys:manage',
    params: z.object({ id: z.string().max(64) }),
    responses: { 204: { description: 'revoked' } },
    errors: ['not_found'],
    handler: async ({ params }, req) => {
      const { account } = authOf(req);
      if (!(await revokeKey(ctx, account.id, params.id))) throw notFound('No such key.');
    },
  });
}
