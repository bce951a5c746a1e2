// OAuth 2.0 (docs/API.md "OAuth 2.0"): client registration and the user's authorized apps are ordinary
// JSON bearer routes; the token and revocation endpoints take form posts and answer errors in RFC 6749
// §5.2's shape; the RFC 8414 metadata describes it all from TB_PUBLIC_URL. The authorization page is
// in routes/web.ts.
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { authOf } from '../auth.js';
import { isoTime, type BrokerContext } from '../context.js';
import { ApiError, notFound, toHttpError } from '../errors.js';
import { defineRoute, publicLimit, formBody } from '../http.js';
import { OAuthError, oauthError, type OAuthErrorCode } from '../oauth/errors.js';
import { redirectUriProblem } from '../oauth/redirect.js';
import { z } from '../openapi.js';
import { USER_SCOPES } from '../scopes.js';
import { Name } from '../../lib/api.js';
import {
  AUTH_METHODS,
  authenticateClient,
  deleteClientRecord,
  getClient,
  listClients,
  ownClient,
  registerClient,
  type AuthMethod,
  type ClientCredentials,
  type OAuthClient,
} from '../services/oauth-clients.js';
import {
  exchangeCode,
  listAuthorizations,
  refreshGrant,
  revokeAuthorization,
  revokeClientGrants,
  revokeToken,
} from '../services/oauth-grants.js';

export const TOKEN_PATH = '/v1/oauth/token';
export const REVOKE_PATH = '/v1/oauth/revoke';
export const AUTHORIZE_PATH = '/v1/oauth/authorize';
export const METADATA_PATH = '/.well-known/oauth-authorization-server';
const FORM = 'application/x-www-form-urlencoded';

/** Paths whose bodies are forms (RFC 6749/7009), exempt from the broker's JSON-only rule. */
export const OAUTH_FORM_PATHS = [TOKEN_PATH, REVOKE_PATH];

const ClientView = z
  .object({
    client_id: z.string().openapi({ example: 'app_4f9K2m8Qx1Lp0Zr7Tb3W' }),
    client_secret: z.string().optional().openapi({ description: 'shown once, at registration' }),
    client_name: z.string(),
    redirect_uris: z.array(z.string()),
    token_endpoint_auth_method: z.enum(AUTH_METHODS),
    grant_types: z.array(z.string()),
    response_types: z.array(z.string()),
    client_id_issued_at: z.number().int(),
    client_secret_expires_at: z.number().int().optional(),
  })
  .openapi('OAuthClient');

const clientView = (client: OAuthClient, secret?: string) => ({
  client_id: client.id,
  ...(secret ? { client_secret: secret, client_secret_expires_at: 0 } : {}),
  client_name: client.name,
  redirect_uris: client.redirectUris,
  token_endpoint_auth_method: client.authMethod,
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  client_id_issued_at: Math.floor(client.createdAt / 1000),
});

const AuthorizationView = z
  .object({
    client_id: z.string(),
    client_name: z.string(),
    scopes: z.array(z.string()),
    granted_at: z.string(),
    last_used: z.string(),
  })
  .openapi('OAuthAuthorization');

const TokenResponse = z
  .object({
    access_token: z
      .string()
      .openapi({ description: 'a tb_ token with the granted scopes, valid expires_in seconds' }),
    token_type: z.literal('Bearer'),
    expires_in: z.number().int(),
    refresh_token: z.string().openapi({ description: 'tbr_…; single use, rotated on every refresh' }),
    scope: z.string(),
  })
  .openapi('OAuthTokenResponse');

const OAuthErrorBody = z
  .object({ error: z.string(), error_description: z.string() })
  .openapi('OAuthError', { description: 'RFC 6749 §5.2' });

const formValue = (req: Request, name: string): string | undefined => {
  const value = (req.body as Record<string, unknown> | undefined)?.[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw oauthError('invalid_request', `${name} appears more than once.`);
  return value;
};

function decodeBasicPart(part: string): string {
  try {
    return decodeURIComponent(part.replace(/\+/g, ' '));
  } catch {
    throw oauthError('invalid_client', 'Malformed HTTP Basic credentials.');
  }
}

/** How the request authenticates its client (RFC 6749 §2.3); two methods at once is invalid_request. */
function clientCredentials(req: Request): ClientCredentials {
  const header = req.headers.authorization;
  const bodyId = formValue(req, 'client_id');
  const bodySecret = formValue(req, 'client_secret');
  if (header !== undefined) {
    const match = /^Basic +([A-Za-z0-9+/=]+)\s*$/i.exec(header);
    if (!match) throw oauthError('invalid_client', 'The Authorization header is not HTTP Basic.');
    if (bodySecret !== undefined)
      throw oauthError('invalid_request', 'Use one client authentication method.');
    const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw oauthError('invalid_client', 'Malformed HTTP Basic credentials.');
    // RFC 6749 §2.3.1: each half is form-urlencoded before the Basic encoding.
    const clientId = decodeBasicPart(decoded.slice(0, colon));
    if (bodyId !== undefined && bodyId !== clientId)
      throw oauthError('invalid_request', 'client_id differs from the authenticated client.');
    return { method: 'client_secret_basic', clientId, secret: decodeBasicPart(decoded.slice(colon + 1)) };
  }
  if (bodyId === undefined) throw oauthError('invalid_client', 'Client authentication is required.');
  if (bodySecret !== undefined) return { method: 'client_secret_post', clientId: bodyId, secret: bodySecret };
  return { method: 'none', clientId: bodyId, secret: undefined };
}

const required = (req: Request, name: string): string => {
  const value = formValue(req, name);
  if (!value) throw oauthError('invalid_request', `${name} is required.`);
  return value;
};

/** RFC 6749 §5.2 answers; the broker's own errors (rate limit, store down) keep their status. */
function oauthErrorHandler(ctx: BrokerContext) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    res.set({ 'Cache-Control': 'no-store', Pragma: 'no-cache' });
    if (err instanceof OAuthError) {
      if (err.code === 'invalid_client' && req.headers.authorization) res.set('WWW-Authenticate', 'Basic');
      res.status(err.status).json({ error: err.code, error_description: err.description });
      return;
    }
    const mapped = toHttpError(err);
    if (mapped.unexpected) ctx.logger.error({ req_id: req.requestId, err }, 'unexpected fault');
    const code: OAuthErrorCode | string =
      err instanceof ApiError && err.kind === 'invalid_request' ? 'invalid_request' : mapped.body.error;
    res
      .status(mapped.status)
      .set(mapped.headers)
      .json({
        error: mapped.status >= 500 ? 'temporarily_unavailable' : code,
        error_description: mapped.body.message,
      });
  };
}

export function oauthMetadata(ctx: BrokerContext) {
  const base = ctx.config.publicUrl;
  return {
    issuer: base,
    authorization_endpoint: `${base}${AUTHORIZE_PATH}`,
    token_endpoint: `${base}${TOKEN_PATH}`,
    revocation_endpoint: `${base}${REVOKE_PATH}`,
    registration_endpoint: `${base}/v1/oauth/clients`,
    scopes_supported: [...USER_SCOPES],
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: ['authorization_code', 'refresh_token'],
    token_endpoint_auth_methods_supported: [...AUTH_METHODS],
    revocation_endpoint_auth_methods_supported: [...AUTH_METHODS],
    code_challenge_methods_supported: ['S256'],
    authorization_response_iss_parameter_supported: true,
    service_documentation: `${base}/v1/openapi.json`,
  };
}

function registerFormPath(
  ctx: BrokerContext,
  path: string,
  summary: string,
  fields: Record<string, z.ZodType>,
  ok: { description: string; schema?: z.ZodType },
): void {
  ctx.openapi.registerPath({
    method: 'post',
    path,
    summary,
    tags: ['oauth'],
    request: { body: { content: { [FORM]: { schema: z.object(fields) } }, required: true } },
    responses: {
      200: ok.schema
        ? { description: ok.description, content: { 'application/json': { schema: ok.schema } } }
        : { description: ok.description },
      400: {
        description: 'RFC 6749 §5.2 error',
        content: { 'application/json': { schema: OAuthErrorBody } },
      },
      401: { description: 'invalid_client', content: { 'application/json': { schema: OAuthErrorBody } } },
      429: { description: 'rate_limited', content: { 'application/json': { schema: OAuthErrorBody } } },
    },
  });
}

function formEndpoints(ctx: BrokerContext, router: Router): void {
  const forms = express.Router();
  const formOnly = (req: Request, _res: Response, next: NextFunction) => {
    if (!req.is(FORM)) throw oauthError('invalid_request', `The body must be ${FORM}.`);
    next();
  };
  const parse = formBody();
  const route = (path: string) => (_req: Request, res: Response, next: NextFunction) => {
    res.locals.route = path;
    next();
  };

  forms.post(TOKEN_PATH, route(TOKEN_PATH), publicLimit(ctx), formOnly, parse, async (req, res) => {
    const grantType = required(req, 'grant_type');
    const client = await authenticateClient(ctx, clientCredentials(req));
    let body;
    if (grantType === 'authorization_code') {
      body = await exchangeCode(ctx, client, {
        code: required(req, 'code'),
        redirectUri: formValue(req, 'redirect_uri'),
        verifier: formValue(req, 'code_verifier'),
      });
    } else if (grantType === 'refresh_token') {
      body = await refreshGrant(ctx, client, {
        refreshToken: required(req, 'refresh_token'),
        scope: formValue(req, 'scope'),
      });
    } else {
      throw oauthError('unsupported_grant_type', 'Supported: authorization_code, refresh_token.');
    }
    res.set({ 'Cache-Control': 'no-store', Pragma: 'no-cache' }).json(body);
  });
  registerFormPath(
    ctx,
    TOKEN_PATH,
    'Exchange a code (with PKCE) or a refresh token for tokens (RFC 6749 §4.1.3, §6)',
    {
      grant_type: z.enum(['authorization_code', 'refresh_token']),
      code: z.string().optional(),
      redirect_uri: z.string().optional(),
      code_verifier: z.string().optional(),
      refresh_token: z.string().optional(),
      scope: z.string().optional(),
      client_id: z.string().optional(),
      client_secret: z.string().optional(),
    },
    { description: 'tokens', schema: TokenResponse },
  );

  forms.post(REVOKE_PATH, route(REVOKE_PATH), publicLimit(ctx), formOnly, parse, async (req, res) => {
    const token = required(req, 'token');
    const client = await authenticateClient(ctx, clientCredentials(req));
    await revokeToken(ctx, client, token);
    res.set({ 'Cache-Control': 'no-store' }).status(200).end();
  });
  registerFormPath(
    ctx,
    REVOKE_PATH,
    'Revoke an access or refresh token (RFC 7009); unknown tokens answer 200 too',
    {
      token: z.string(),
      token_type_hint: z.enum(['access_token', 'refresh_token']).optional(),
      client_id: z.string().optional(),
      client_secret: z.string().optional(),
    },
    { description: 'revoked (or nothing to revoke)' },
  );

  forms.use(oauthErrorHandler(ctx));
  router.use(forms);
}

export function oauthRoutes(ctx: BrokerContext, router: Router): void {
  defineRoute(ctx, router, {
    method: 'get',
    path: METADATA_PATH,
    summary: 'OAuth 2.0 authorization server metadata (RFC 8414)',
    tags: ['oauth'],
    access: 'public',
    responses: { 200: { description: 'metadata' } },
    handler: () => ({ body: oauthMetadata(ctx) }),
  });

  formEndpoints(ctx, router);

  defineRoute(ctx, router, {
    method: 'post',
    path: '/v1/oauth/clients',
    summary: 'Register an OAuth client (RFC 7591 fields); the secret is shown once',
    tags: ['oauth'],
    access: 'bearer',
    scope: 'account:write',
    body: z.object({
      client_name: Name,
      redirect_uris: z
        .array(
          z.string().superRefine((uri, issue) => {
            const problem = redirectUriProblem(uri);
            if (problem) issue.addIssue({ code: 'custom', message: problem });
          }),
        )
        .min(1)
        .max(10),
      token_endpoint_auth_method: z.enum(AUTH_METHODS).default('client_secret_basic'),
    }),
    responses: { 201: { description: 'the client, with its secret shown once', schema: ClientView } },
    noStore: true,
    handler: async ({ body }, req) => {
      const { client, secret } = await registerClient(ctx, authOf(req).account.id, {
        name: body.client_name,
        redirectUris: [...new Set(body.redirect_uris)],
        authMethod: body.token_endpoint_auth_method as AuthMethod,
      });
      return { status: 201, body: clientView(client, secret) };
    },
  });

  defineRoute(ctx, router, {
    method: 'get',
    path: '/v1/oauth/clients',
    summary: 'The OAuth clients this account registered',
    tags: ['oauth'],
    access: 'bearer',
    scope: 'account:read',
    responses: { 200: { description: 'clients', schema: z.object({ clients: z.array(ClientView) }) } },
    handler: async (_input, req) => ({
      body: { clients: (await listClients(ctx, authOf(req).account.id)).map((c) => clientView(c)) },
    }),
  });

  defineRoute(ctx, router, {
    method: 'delete',
    path: '/v1/oauth/clients/{client_id}',
    summary: 'Delete a client of this account; every token given to it stops working',
    tags: ['oauth'],
    access: 'bearer',
    scope: 'account:write',
    params: z.object({ client_id: z.string().max(64) }),
    responses: { 204: { description: 'deleted' } },
    errors: ['not_found'],
    handler: async ({ params }, req) => {
      const client = await ownClient(ctx, authOf(req).account.id, params.client_id);
      await deleteClientRecord(ctx, client);
      await revokeClientGrants(ctx, client.id);
    },
  });

  defineRoute(ctx, router, {
    method: 'get',
    path: '/v1/oauth/authorizations',
    summary: 'The apps this account allowed, with their scopes',
    tags: ['oauth'],
    access: 'bearer',
    scope: 'account:read',
    responses: {
      200: {
        description: 'authorized apps',
        schema: z.object({ authorizations: z.array(AuthorizationView) }),
      },
    },
    handler: async (_input, req) => ({
      body: { authorizations: await authorizationViews(ctx, authOf(req).account.id) },
    }),
  });

  defineRoute(ctx, router, {
    method: 'delete',
    path: '/v1/oauth/authorizations/{client_id}',
    summary: 'Revoke every token this account gave an app',
    tags: ['oauth'],
    access: 'bearer',
    scope: 'account:write',
    params: z.object({ client_id: z.string().max(64) }),
    responses: { 204: { description: 'revoked' } },
    errors: ['not_found'],
    handler: async ({ params }, req) => {
      if (!(await revokeAuthorization(ctx, authOf(req).account.id, params.client_id)))
        throw notFound('This account has not authorized that app.');
    },
  });
}

/** The account's authorized apps as the API and the account page show them. */
export async function authorizationViews(ctx: BrokerContext, accountId: string) {
  const list = await listAuthorizations(ctx, accountId);
  const clients = await Promise.all(list.map((a) => getClient(ctx, a.clientId)));
  return list.map((a, i) => ({
    client_id: a.clientId,
    client_name: clients[i]?.name ?? a.clientId,
    scopes: a.scopes,
    granted_at: isoTime(a.grantedAt),
    last_used: isoTime(a.lastUsed),
  }));
}
