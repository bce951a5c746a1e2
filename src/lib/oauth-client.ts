// The CLI's side of OAuth 2.0 (docs/API.md "OAuth 2.0"): the broker's RFC 8414 metadata, PKCE, the
// authorization URL of the built-in public client `tunnelbyte-cli`, and the token endpoint (form posts,
// RFC 6749 §5.2 errors). No state of its own; the CLI keeps the tokens.
import { createHash, randomBytes } from 'node:crypto';
import { limitSignal, NetworkError, RequestAborted, type RequestLimits } from './api-client.js';

export const CLI_CLIENT_ID = 'tunnelbyte-cli';

export interface ServerMetadata {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  revocation_endpoint?: string;
  scopes_supported?: string[];
}

export interface TokenSet {
  access_token: string;
  refresh_token: string;
  expires_in: number;
  scope: string;
}

/** An RFC 6749 §5.2 answer of the token endpoint. */
export class OAuthFailure extends Error {
  override name = 'OAuthFailure';
  constructor(
    readonly error: string,
    readonly description: string,
  ) {
    super(`${error}: ${description}`);
  }
}

const base64url = (bytes: Buffer) => bytes.toString('base64url');

export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = base64url(randomBytes(32));
  return { verifier, challenge: base64url(createHash('sha256').update(verifier).digest()) };
}

export const randomState = () => base64url(randomBytes(16));

async function send(
  url: string,
  init: RequestInit,
  origin: string,
  limits: RequestLimits,
): Promise<{ status: number; body: unknown }> {
  const { signal, timedOut } = limitSignal(limits);
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, { ...init, signal });
    text = await response.text();
  } catch (err) {
    if (limits.signal?.aborted) throw new RequestAborted();
    throw new NetworkError(origin, err, timedOut());
  }
  try {
    return { status: response.status, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
  } catch {
    throw new OAuthFailure('bad_response', `HTTP ${response.status} from ${url} is not JSON`);
  }
}

export async function fetchMetadata(baseUrl: string, limits: RequestLimits = {}): Promise<ServerMetadata> {
  const origin = baseUrl.replace(/\/+$/, '');
  const { status, body } = await send(`${origin}/.well-known/oauth-authorization-server`, {}, origin, limits);
  const meta = body as Partial<ServerMetadata> | undefined;
  if (status !== 200 || !meta?.issuer || !meta.authorization_endpoint || !meta.token_endpoint) {
    throw new OAuthFailure('bad_response', `${origin} does not publish OAuth metadata (HTTP ${status})`);
  }
  return meta as ServerMetadata;
}

export function authorizationUrl(
  meta: ServerMetadata,
  fields: { redirectUri: string; challenge: string; state: string; scope: string },
): string {
  const url = new URL(meta.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: CLI_CLIENT_ID,
    redirect_uri: fields.redirectUri,
    scope: fields.scope,
    state: fields.state,
    code_challenge: fields.challenge,
    code_challenge_method: 'S256',
  }).toString();
  return url.href;
}

/** POST to the token endpoint as the public CLI client; an RFC 6749 error becomes OAuthFailure. */
export async function tokenRequest(
  tokenEndpoint: string,
  form: Record<string, string>,
  limits: RequestLimits = {},
): Promise<TokenSet> {
  const { status, body } = await send(
    tokenEndpoint,
    {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      body: new URLSearchParams({ ...form, client_id: CLI_CLIENT_ID }).toString(),
    },
    new URL(tokenEndpoint).origin,
    limits,
  );
  const answer = (body ?? {}) as Partial<TokenSet> & { error?: string; error_description?: string };
  if (status !== 200 || !answer.access_token || !answer.refresh_token) {
    throw new OAuthFailure(answer.error ?? 'bad_response', answer.error_description ?? `HTTP ${status}`);
  }
  return answer as TokenSet;
}
