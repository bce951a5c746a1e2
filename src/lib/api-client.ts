// The typed client for docs/API.md, used by the CLI and by tests. fetch-based (Node 20), no retries:
// the caller decides what a 429 or 503 means for it. Every failure is one of two typed errors:
// ApiError (the broker answered with an error) or NetworkError (it could not be reached at all).

import type {
  ApiKey,
  AuthTest,
  CreatedSession,
  CurrentKey,
  Region,
  Session,
  TokenGrant,
  UserWithUsage,
  Usage,
} from './api.js';
import { fetchRefusal } from './fetch-refusal.js';

// ---- Response and request types, as in docs/API.md (the shared ones are lib/api.ts's schemas) ----

export type {
  ApiKey,
  AuthTest,
  CreatedSession,
  CurrentKey,
  Region,
  RegionStatus,
  Session,
  SessionStatus,
  Tier,
  TokenGrant,
  User,
  UserWithUsage,
  Usage,
} from './api.js';

export type IpAttribution =
  | { ip: string; exit: true; region: string; node: string; first_seen: string; last_seen: string }
  | { ip: string; exit: false };

export interface CreateKeyRequest {
  name: string;
  permissions: string[];
  /** Seconds until the key expires; absent = never. */
  expires_in?: number;
}

export interface CreateSessionRequest {
  region: string;
  public_key?: string;
  ttl_seconds?: number;
  preshared_key?: boolean;
}

/** The error codes of docs/API.md's table (plus `internal`); a broker may add more, hence `string`. */
export type ApiErrorName =
  | 'invalid_request'
  | 'unauthorized'
  | 'forbidden'
  | 'tier_required'
  | 'not_found'
  | 'conflict'
  | 'payload_too_large'
  | 'headers_too_large'
  | 'rate_limited'
  | 'quota_exhausted'
  | 'no_capacity'
  | 'unavailable'
  | 'internal'
  /** The answer was not the contract's JSON error shape (e.g. a proxy's HTML page). */
  | 'bad_response';

export interface ErrorBody {
  error: string;
  message?: string;
  code?: number;
  retry_after?: number;
  required_scope?: string;
  required_tier?: string;
  field?: string;
  [detail: string]: unknown;
}

/** The broker answered with an error status. */
export class ApiError extends Error {
  override name = 'ApiError';
  readonly status: number;
  readonly error: ApiErrorName | (string & {});
  readonly code: number | undefined;
  /** Seconds, from the body's retry_after or else the Retry-After header. */
  readonly retryAfter: number | undefined;
  readonly requiredScope: string | undefined;
  readonly requiredTier: string | undefined;
  readonly field: string | undefined;
  readonly requestId: string | undefined;
  readonly body: ErrorBody;

  constructor(status: number, body: ErrorBody, headers?: Headers) {
    super(body.message ?? `HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.error = body.error;
    this.code = typeof body.code === 'number' ? body.code : undefined;
    this.retryAfter = typeof body.retry_after === 'number' ? body.retry_after : retryAfterHeader(headers);
    this.requiredScope = typeof body.required_scope === 'string' ? body.required_scope : undefined;
    this.requiredTier = typeof body.required_tier === 'string' ? body.required_tier : undefined;
    this.field = typeof body.field === 'string' ? body.field : undefined;
    this.requestId = headers?.get('x-request-id') ?? undefined;
  }
}

/** The broker could not be reached (DNS, refused connection, TLS), or did not answer in time. */
export class NetworkError extends Error {
  override name = 'NetworkError';
  readonly url: string;
  /** Set when the request was cut off by the client's timeout (the broker accepted but never answered). */
  readonly timeoutMs: number | undefined;
  /** Set when fetch refuses the URL itself (fetch-refusal.ts): no retry can help, the URL must change. */
  readonly refused: string | undefined;

  constructor(url: string, cause: unknown, timeoutMs?: number) {
    super(`cannot reach ${url}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.url = url;
    this.timeoutMs = timeoutMs;
    this.refused = fetchRefusal(cause);
  }
}

/** The caller's abort signal cut the request off (the CLI's Ctrl-C); the broker may still act on it. */
export class RequestAborted extends Error {
  override name = 'RequestAborted';
  constructor() {
    super('request aborted');
  }
}

function retryAfterHeader(headers: Headers | undefined): number | undefined {
  const value = headers?.get('retry-after');
  if (value === null || value === undefined || !/^\d+$/.test(value.trim())) return undefined;
  return Number(value);
}

function isErrorBody(value: unknown): value is ErrorBody {
  return typeof value === 'object' && value !== null && typeof (value as ErrorBody).error === 'string';
}

// ---- The client ----

export const DEFAULT_API_URL = 'http://127.0.0.1:8080';
export const FINGERPRINT_HEADER = 'X-Machine-Fingerprint';
export const DEFAULT_TIMEOUT_MS = 15_000;

/** How long a request may wait for its answer, and what cuts it off sooner (the CLI's Ctrl-C). */
export interface RequestLimits {
  signal?: AbortSignal;
  /** Default DEFAULT_TIMEOUT_MS. */
  timeoutMs?: number;
}

/** The signal a request goes out with: its limits' signal or its timeout, whichever comes first. */
export function limitSignal({ signal, timeoutMs = DEFAULT_TIMEOUT_MS }: RequestLimits): {
  signal: AbortSignal;
  timedOut: () => number | undefined;
} {
  const timeout = AbortSignal.timeout(timeoutMs);
  return {
    signal: signal ? AbortSignal.any([timeout, signal]) : timeout,
    timedOut: () => (timeout.aborted ? timeoutMs : undefined),
  };
}

export interface ApiClientOptions {
  /** Origin of the broker, e.g. https://api.tunnelbyte.dev (a trailing /v1 is accepted too). */
  baseUrl?: string;
  /** Bearer token (`tb_…`); requests without one go out unauthenticated. */
  token?: string;
  /** Sent as X-Machine-Fingerprint on every request (free tokens are bound to it). */
  fingerprint?: string;
  timeoutMs?: number;
  userAgent?: string;
  /** Aborts every request in flight and every later one (RequestAborted). */
  signal?: AbortSignal;
  /**
   * An OAuth access token's renewal: called before a request once the token is past `tokenExpiresAt`,
   * and once after a 401; resolves with the new token, or undefined when it cannot renew.
   */
  refresh?: () => Promise<string | undefined>;
  /** When the token expires (ms since the epoch); only read together with `refresh`. */
  tokenExpiresAt?: number;
}

/** Renew this long before the expiry, so a request does not race it. */
const EXPIRY_SKEW_MS = 30_000;

type Method = 'GET' | 'POST' | 'DELETE';

export class ApiClient {
  readonly baseUrl: string;
  private token: string | undefined;
  private readonly refresh: (() => Promise<string | undefined>) | undefined;
  private tokenExpiresAt: number | undefined;
  private renewed = false;
  private readonly fingerprint: string | undefined;
  private readonly timeoutMs: number;
  private readonly userAgent: string | undefined;
  private readonly signal: AbortSignal | undefined;

  constructor(options: ApiClientOptions = {}) {
    this.baseUrl = (options.baseUrl ?? DEFAULT_API_URL).replace(/\/+$/, '').replace(/\/v1$/, '');
    this.token = options.token;
    this.fingerprint = options.fingerprint;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.userAgent = options.userAgent;
    this.signal = options.signal;
    this.refresh = options.refresh;
    this.tokenExpiresAt = options.tokenExpiresAt;
  }

  /** Swaps in a renewed token; false when there is no renewal or it failed. At most once per client. */
  private async renew(): Promise<boolean> {
    if (!this.refresh || this.renewed) return false;
    this.renewed = true;
    const token = await this.refresh();
    if (!token) return false;
    this.token = token;
    this.tokenExpiresAt = undefined;
    return true;
  }

  /** A copy of this client presenting another token. */
  withToken(token: string | undefined): ApiClient {
    return new ApiClient({
      baseUrl: this.baseUrl,
      token,
      fingerprint: this.fingerprint,
      timeoutMs: this.timeoutMs,
      userAgent: this.userAgent,
      signal: this.signal,
    });
  }

  /**
   * One request; resolves with the parsed JSON body (undefined for 204), rejects with ApiError/NetworkError.
   * An expired or refused OAuth access token is renewed once (see `refresh`) and the request sent again.
   */
  async request<T>(method: Method, path: string, body?: unknown): Promise<T> {
    if (this.tokenExpiresAt !== undefined && Date.now() >= this.tokenExpiresAt - EXPIRY_SKEW_MS) {
      await this.renew();
    }
    try {
      return await this.send<T>(method, path, body);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401 && (await this.renew())) {
        return this.send<T>(method, path, body);
      }
      throw err;
    }
  }

  private async send<T>(method: Method, path: string, body?: unknown): Promise<T> {
    const url = `${this.baseUrl}${path}`;
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (this.fingerprint) headers[FINGERPRINT_HEADER] = this.fingerprint;
    if (this.userAgent) headers['User-Agent'] = this.userAgent;

    const { signal, timedOut } = limitSignal({ signal: this.signal, timeoutMs: this.timeoutMs });
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
      text = await response.text();
    } catch (err) {
      if (this.signal?.aborted) throw new RequestAborted();
      throw new NetworkError(this.baseUrl, err, timedOut());
    }

    let parsed: unknown = undefined;
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
    }
    if (!response.ok) {
      const errorBody: ErrorBody = isErrorBody(parsed)
        ? parsed
        : { error: 'bad_response', message: `HTTP ${response.status} without a JSON error body` };
      throw new ApiError(response.status, errorBody, response.headers);
    }
    if (text !== '' && parsed === undefined) {
      throw new ApiError(
        response.status,
        { error: 'bad_response', message: 'The answer is not JSON.' },
        response.headers,
      );
    }
    return parsed as T;
  }

  // Public
  regions(): Promise<{ regions: Region[] }> {
    return this.request('GET', '/v1/regions');
  }
  ip(addr: string, at?: string): Promise<IpAttribution> {
    const query = at === undefined ? '' : `?at=${encodeURIComponent(at)}`;
    return this.request('GET', `/v1/ip/${encodeURIComponent(addr)}${query}`);
  }

  // Accounts and keys
  signup(fingerprint: string): Promise<TokenGrant> {
    return this.request('POST', '/v1/auth/signup', { fingerprint });
  }
  login(email: string, password: string): Promise<TokenGrant> {
    return this.request('POST', '/v1/auth/login', { email, password });
  }
  logout(): Promise<void> {
    return this.request('POST', '/v1/auth/logout');
  }
  user(): Promise<UserWithUsage> {
    return this.request('GET', '/v1/auth/user');
  }
  currentKey(): Promise<CurrentKey> {
    return this.request('GET', '/v1/auth/key');
  }
  testAuth(scope?: string): Promise<AuthTest> {
    const query = scope === undefined ? '' : `?scope=${encodeURIComponent(scope)}`;
    return this.request('GET', `/v1/auth/test${query}`);
  }
  listKeys(): Promise<{ keys: ApiKey[] }> {
    return this.request('GET', '/v1/auth/keys');
  }
  createKey(request: CreateKeyRequest): Promise<ApiKey> {
    return this.request('POST', '/v1/auth/keys', request);
  }
  revokeKey(id: string): Promise<void> {
    return this.request('DELETE', `/v1/auth/keys/${encodeURIComponent(id)}`);
  }

  // Sessions
  createSession(request: CreateSessionRequest): Promise<CreatedSession> {
    return this.request('POST', '/v1/sessions', request);
  }
  listSessions(): Promise<{ sessions: Session[] }> {
    return this.request('GET', '/v1/sessions');
  }
  session(id: string): Promise<Session> {
    return this.request('GET', `/v1/sessions/${encodeURIComponent(id)}`);
  }
  deleteSession(id: string): Promise<void> {
    return this.request('DELETE', `/v1/sessions/${encodeURIComponent(id)}`);
  }

  // Usage and billing
  usage(): Promise<Usage> {
    return this.request('GET', '/v1/usage');
  }
  /** `currentPassword` is required once the account has a password (docs/API.md). */
  checkout(email: string, password: string, currentPassword?: string): Promise<{ url: string }> {
    const proof = currentPassword === undefined ? {} : { current_password: currentPassword };
    return this.request('POST', '/v1/billing/checkout', { email, password, ...proof });
  }
}
