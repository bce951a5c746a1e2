// defineRoute(): one declaration per endpoint gives the Express route, its access control and rate
// limit, zod validation of params/query/body (400 invalid_request with `field`), and its OpenAPI
// entry. Handlers stay thin: validated input in, a Reply (or nothing, for 204) out.
import express, { type Request, type RequestHandler, type Response, type Router } from 'express';
import type { ZodObject, ZodType, z as zod } from 'zod';
import { bearerAuth, nodeAuth, requireScope, sourceOfRequest } from './auth.js';
import type { BrokerContext } from './context.js';
import { ERRORS, errorHeaders, invalidRequest, type ErrorName } from './errors.js';
import { BEARER_SCHEME, ErrorBody, NODE_SCHEME, z } from './openapi.js';
import { enforce } from './ratelimit.js';
import type { Scope } from './scopes.js';

/**
 * public: per-IP token bucket (docs/API.md "Public endpoints");
 * bearer: tb_ token, per-token tier cap, optional scope;
 * node: an exit node's tbn_ token and its per-token limit (`nodeWindow`: heartbeats have their own);
 * open: no limiter (probes, metrics, signed webhooks).
 */
export type Access = 'public' | 'bearer' | 'node' | 'open';

/** The largest request body any endpoint reads, JSON or form. */
export const BODY_LIMIT = '64kb';

/** The parser of the HTML forms and the OAuth token endpoints (application/x-www-form-urlencoded). */
export const formBody = () => express.urlencoded({ extended: false, limit: BODY_LIMIT, parameterLimit: 32 });

export interface Reply {
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
}

type Infer<T> = T extends ZodType ? zod.output<T> : undefined;

export interface RouteSpec<
  B extends ZodType | undefined,
  Q extends ZodObject | undefined,
  P extends ZodObject | undefined,
> {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  /** OpenAPI-style path: /v1/sessions/{id} */
  path: string;
  summary: string;
  tags?: string[];
  access: Access;
  /** With access 'node': the limit window the request counts against (default 'node'). */
  nodeWindow?: 'node' | 'nodeHeartbeat';
  scope?: Scope;
  /** Extra middleware run after access control, before validation (e.g. reading a heartbeat's body). */
  before?: RequestHandler[];
  body?: B;
  query?: Q;
  params?: P;
  /** Success responses; the usual error answers are documented automatically. */
  responses: Record<number, { description: string; schema?: ZodType }>;
  /** The answer carries a secret (a token, a private key): Cache-Control: no-store. */
  noStore?: boolean;
  /** Further errors this route can answer, for the document. */
  errors?: ErrorName[];
  handler: (
    input: { body: Infer<B>; query: Infer<Q>; params: Infer<P> },
    req: Request,
    res: Response,
  ) => Promise<Reply | void> | Reply | void;
}

/** The one conversion from a zod failure to invalid_request: first issue, dotted path as `field`. */
function validate<T extends ZodType | undefined>(
  schema: T | undefined,
  value: unknown,
  where: string,
): Infer<T> {
  if (!schema) return undefined as Infer<T>;
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data as Infer<T>;
  const issue = parsed.error.issues[0];
  const path = issue?.path.map(String).join('.');
  throw invalidRequest(
    path ? path : where,
    issue ? `${path || where}: ${issue.message}` : `invalid ${where}`,
  );
}

export function publicLimit(ctx: BrokerContext): RequestHandler {
  return (req, res, next) => {
    enforce(res, ctx.limits.public.take(sourceOfRequest(req), ctx.clock()));
    next();
  };
}

/** Documented on every bearer operation (docs/API.md "Tiers"). */
const MachineHeader = z.object({
  'X-Machine-Fingerprint': z.string().optional().openapi({
    description: 'the fingerprint (hex) of the machine a free token was issued to; paid tokens ignore it',
  }),
});

/** /v1/sessions/{id} → /v1/sessions/:id */
export const expressPath = (openApiPath: string) => openApiPath.replace(/\{([^}]+)\}/g, ':$1');

function documentedErrors<
  B extends ZodType | undefined,
  Q extends ZodObject | undefined,
  P extends ZodObject | undefined,
>(spec: RouteSpec<B, Q, P>): ErrorName[] {
  const names = new Set<ErrorName>(spec.errors ?? []);
  if (spec.body || spec.query || spec.params) names.add('invalid_request');
  if (spec.body) names.add('payload_too_large');
  if (spec.access !== 'open') names.add('rate_limited');
  if (spec.access === 'bearer' || spec.access === 'node') names.add('unauthorized');
  if (spec.scope) names.add('forbidden');
  names.add('unavailable');
  return [...names];
}

export function defineRoute<
  B extends ZodType | undefined = undefined,
  Q extends ZodObject | undefined = undefined,
  P extends ZodObject | undefined = undefined,
>(ctx: BrokerContext, router: Router, spec: RouteSpec<B, Q, P>): void {
  const chain: RequestHandler[] = [
    (_req, res, next) => {
      res.locals.route = spec.path;
      next();
    },
  ];
  if (spec.access === 'public') chain.push(publicLimit(ctx));
  if (spec.access === 'bearer') chain.push(bearerAuth(ctx));
  if (spec.access === 'node') chain.push(nodeAuth(ctx, spec.nodeWindow));
  if (spec.scope) chain.push(requireScope(spec.scope));
  chain.push(...(spec.before ?? []));
  chain.push(async (req, res) => {
    const input = {
      params: validate<P>(spec.params, req.params, 'path'),
      query: validate<Q>(spec.query, req.query, 'query'),
      body: validate<B>(spec.body, req.body ?? {}, 'body'),
    };
    const reply = await spec.handler(input, req, res);
    if (res.headersSent) return;
    if (!reply) {
      res.status(204).end();
      return;
    }
    if (spec.noStore) res.set('Cache-Control', 'no-store');
    if (reply.headers) res.set(reply.headers);
    res.status(reply.status ?? 200);
    if (reply.body === undefined) res.end();
    else res.json(reply.body);
  });
  router[spec.method](expressPath(spec.path), ...chain);

  const responses: Record<string, object> = {};
  for (const [status, r] of Object.entries(spec.responses)) {
    responses[status] = r.schema
      ? { description: r.description, content: { 'application/json': { schema: r.schema } } }
      : { description: r.description };
  }
  for (const name of documentedErrors(spec)) {
    const status = String(ERRORS[name].status);
    const existing = responses[status] as { description: string; headers?: object } | undefined;
    const headers = Object.entries(errorHeaders(name)).map(([header, description]) => [
      header,
      { description, schema: { type: 'string' } },
    ]);
    responses[status] = {
      description: existing ? `${existing.description}; ${name}` : name,
      content: { 'application/json': { schema: ErrorBody } },
      ...(headers.length > 0 || existing?.headers
        ? { headers: { ...existing?.headers, ...Object.fromEntries(headers) } }
        : {}),
    };
  }
  ctx.openapi.registerPath({
    method: spec.method,
    path: spec.path,
    summary: spec.summary,
    tags: spec.tags,
    security:
      spec.access === 'bearer'
        ? [{ [BEARER_SCHEME]: spec.scope ? [spec.scope] : [] }]
        : spec.access === 'node'
          ? [{ [NODE_SCHEME]: [] }]
          : [],
    request: {
      ...(spec.access === 'bearer' ? { headers: MachineHeader } : {}),
      ...(spec.params ? { params: spec.params } : {}),
      ...(spec.query ? { query: spec.query } : {}),
      ...(spec.body
        ? { body: { content: { 'application/json': { schema: spec.body } }, required: true } }
        : {}),
    },
    responses,
  });
}
