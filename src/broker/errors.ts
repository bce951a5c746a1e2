// The one registry of API errors (docs/API.md "Errors") and the one function that maps any thrown value
// to an HTTP answer. Services throw ApiError; handlers never build error bodies themselves.
// A test checks this table against docs/API.md's, row for row (fastify style).

export const ERRORS = {
  invalid_request: { status: 400, code: 4000, message: 'The request is not valid.' },
  unauthorized: { status: 401, code: 4001, message: 'Invalid or missing API key.' },
  forbidden: { status: 403, code: 4003, message: 'Insufficient permissions for this operation.' },
  tier_required: { status: 403, code: 4031, message: 'This operation needs a higher tier.' },
  not_found: { status: 404, code: 4004, message: 'No such resource.' },
  conflict: { status: 409, code: 4009, message: 'The request conflicts with the current state.' },
  payload_too_large: { status: 413, code: 4013, message: 'The request body is too large.' },
  headers_too_large: { status: 431, code: 4310, message: 'The request headers are larger than 16 KiB.' },
  rate_limited: { status: 429, code: 4029, message: 'API rate limit exceeded.' },
  quota_exhausted: { status: 429, code: 4290, message: 'The quota of your tier is used up.' },
  no_capacity: { status: 503, code: 5003, message: 'No healthy exit node in the requested region.' },
  unavailable: { status: 503, code: 5030, message: 'The service is temporarily unavailable; retry.' },
  // Not in docs/API.md's table on purpose: the contract spells it out apart ("an unexpected fault").
  internal: { status: 500, code: 5000, message: 'Internal error.' },
} as const satisfies Record<string, { status: number; code: number; message: string }>;

export type ErrorName = keyof typeof ERRORS;

/** Errors whose answers carry a Retry-After header (seconds). */
const RETRYABLE: ReadonlySet<ErrorName> = new Set([
  'rate_limited',
  'quota_exhausted',
  'no_capacity',
  'unavailable',
]);

/** Default Retry-After when a service gives none (seconds). */
const DEFAULT_RETRY_AFTER_SECONDS = 5;

/** Extra top-level fields of the error body, e.g. `field`, `required_scope`, `required_tier`. */
export type ErrorDetails = Record<string, string | number | boolean | string[]>;

export class ApiError extends Error {
  override name = 'ApiError';
  readonly kind: ErrorName;
  readonly details: ErrorDetails;
  readonly retryAfterSeconds: number | undefined;

  constructor(
    kind: ErrorName,
    options: { message?: string; details?: ErrorDetails; retryAfter?: number } = {},
  ) {
    super(options.message ?? ERRORS[kind].message);
    this.kind = kind;
    this.details = options.details ?? {};
    this.retryAfterSeconds = options.retryAfter;
  }
}

/** Shorthands for the common throws; more can be added next to them. */
export const invalidRequest = (field: string, message: string) =>
  new ApiError('invalid_request', { message, details: { field } });
export const unauthorized = (message?: string) => new ApiError('unauthorized', message ? { message } : {});
export const forbidden = (requiredScope: string) =>
  new ApiError('forbidden', { details: { required_scope: requiredScope } });
export const tierRequired = (requiredTier: string, message?: string) =>
  new ApiError('tier_required', { message, details: { required_tier: requiredTier } });
export const notFound = (message?: string) => new ApiError('not_found', message ? { message } : {});
export const conflict = (message: string) => new ApiError('conflict', { message });
export const rateLimited = (retryAfter: number) => new ApiError('rate_limited', { retryAfter });
export const quotaExhausted = (retryAfter: number, message?: string) =>
  new ApiError('quota_exhausted', { retryAfter, message });
export const noCapacity = (retryAfter?: number) => new ApiError('no_capacity', { retryAfter });
export const unavailable = (message?: string) => new ApiError('unavailable', message ? { message } : {});

export interface HttpError {
  status: number;
  headers: Record<string, string>;
  body: { error: ErrorName; message: string; code: number } & ErrorDetails;
  /** True when the fault was not an ApiError: the caller logs it with the request id. */
  unexpected: boolean;
}

// ioredis with enableOfflineQueue=false fails fast with these while the server is away; a pipeline or
// MULTI in flight when the connection drops is aborted ("Command aborted due to connection close").
// During a Sentinel or Cluster failover: a demoted master refuses writes (READONLY), and a Cluster client
// gives up on a slot with no master yet (redirections, slot refresh), and a MULTI sent to a slot's old master
// comes back MOVED or ASK (ioredis follows redirections for single commands, not inside a transaction).
const STORE_DOWN =
  /enableOfflineQueue|Connection is closed|Command aborted due to connection close|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|Redis connection is not ready|LOADING|MASTERDOWN|CLUSTERDOWN|READONLY|Too many Cluster redirections|Failed to refresh slots cache|^(MOVED|ASK) \d+ /;

export function isStoreUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return err.name === 'MaxRetriesPerRequestError' || STORE_DOWN.test(err.message);
}

/** A body limit as the 413 states it: whole KiB when it is one (64 KiB), else bytes. */
const formatLimit = (bytes: number) => (bytes % 1024 === 0 ? `${bytes / 1024} KiB` : `${bytes} bytes`);

/** The router's: a path parameter that is not percent-encoded UTF-8 (a URIError, status 400). */
function fromRouter(err: unknown): ApiError | undefined {
  return err instanceof URIError && (err as { status?: unknown }).status === 400
    ? invalidRequest('path', 'The path is not percent-encoded UTF-8.')
    : undefined;
}

/**
 * body-parser's errors carry `type` (and `status`); they are the client's fault, never a 500. A body over
 * its limit is told that route's limit (64 KiB, or a node heartbeat's, sized for TB_NODE_MAX_CAPACITY).
 */
function fromBodyParser(err: unknown): ApiError | undefined {
  const { type, limit, status, errno } = (err ?? {}) as Record<string, unknown>;
  // A gzip, deflate or br body that does not decompress: zlib's own error (Z_DATA_ERROR, a Brotli
  // ERR_...), which body-parser passes on with status 400 and no type.
  if (status === 400 && typeof errno === 'number')
    return invalidRequest('body', 'The body does not decompress as its Content-Encoding says.');
  if (typeof type !== 'string') return undefined;
  switch (type) {
    case 'entity.too.large':
      return new ApiError(
        'payload_too_large',
        typeof limit === 'number'
          ? { message: `The request body is larger than ${formatLimit(limit)}.` }
          : {},
      );
    case 'entity.parse.failed':
      return invalidRequest('body', 'The body is not valid JSON.');
    case 'parameters.too.many':
      return invalidRequest('body', 'The form has too many fields.');
    case 'encoding.unsupported':
      return invalidRequest('body', 'Content-Encoding must be identity, gzip, deflate or br.');
    case 'charset.unsupported':
      return invalidRequest('body', 'The body must be UTF-8 JSON.');
    case 'request.size.invalid':
    case 'request.aborted':
    case 'stream.encoding.set':
      return invalidRequest('body', 'The body could not be read.');
    default:
      return undefined;
  }
}

const BEARER_CHALLENGE = 'Bearer realm="tunnelbyte"';

/**
 * The bearer challenge (RFC 6750 §3): every 401 names the scheme (RFC 9110 §15.5.2 requires one), and
 * a 403 for a missing scope names that scope.
 */
function challengeOf(kind: ErrorName, requiredScope: unknown): string | undefined {
  if (kind === 'unauthorized') return BEARER_CHALLENGE;
  if (kind === 'forbidden' && typeof requiredScope === 'string')
    return `${BEARER_CHALLENGE}, error="insufficient_scope", scope="${requiredScope}"`;
  return undefined;
}

/** The headers an error's answer carries besides its body, as the OpenAPI document describes them. */
export function errorHeaders(kind: ErrorName): Record<string, string> {
  const headers: Record<string, string> = {};
  const challenge = challengeOf(kind, '<the scope it lacks>');
  if (challenge)
    headers['WWW-Authenticate'] = kind === 'forbidden' ? `with forbidden: ${challenge}` : challenge;
  if (RETRYABLE.has(kind)) headers['Retry-After'] = 'seconds to wait before retrying';
  return headers;
}

/** The one mapping from anything thrown to an HTTP answer. Never leaks a stack or an internal message. */
export function toHttpError(err: unknown): HttpError {
  const known =
    err instanceof ApiError
      ? err
      : (fromBodyParser(err) ??
        fromRouter(err) ??
        (isStoreUnavailable(err) ? new ApiError('unavailable') : undefined));
  const apiError = known ?? new ApiError('internal');
  const spec = ERRORS[apiError.kind];
  const headers: Record<string, string> = {};
  const body: HttpError['body'] = { error: apiError.kind, message: apiError.message, code: spec.code };
  Object.assign(body, apiError.details);
  const challenge = challengeOf(apiError.kind, apiError.details.required_scope);
  if (challenge) headers['WWW-Authenticate'] = challenge;
  if (RETRYABLE.has(apiError.kind)) {
    const retryAfter = Math.max(1, Math.ceil(apiError.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS));
    headers['Retry-After'] = String(retryAfter);
    if (apiError.kind === 'rate_limited' || apiError.kind === 'quota_exhausted')
      body.retry_after = retryAfter;
  }
  return { status: spec.status, headers, body, unexpected: known === undefined };
}
