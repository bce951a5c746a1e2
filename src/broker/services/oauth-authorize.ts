// The authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3, RFC 9207) checked once for the consent
// page and again when the form comes back. Errors that would send the user to an unverified address
// (unknown client, redirect URI not registered) are shown on the page; every other error goes back to
// the client's redirect URI with `error`, `state` and `iss` (RFC 6749 §4.1.2.1).
import type { BrokerContext } from '../context.js';
import type { OAuthErrorCode } from '../oauth/errors.js';
import { isCodeChallenge } from '../oauth/pkce.js';
import { redirectUriMatches, withQuery } from '../oauth/redirect.js';
import type { Scope } from '../scopes.js';
import { getClient } from './oauth-clients.js';
import { parseScope, scopeProblem, type ApprovedRequest } from './oauth-grants.js';

/** The parameters a consent form carries back, exactly as the client sent them. */
export const AUTHORIZE_PARAMS = [
  'response_type',
  'client_id',
  'redirect_uri',
  'scope',
  'state',
  'code_challenge',
  'code_challenge_method',
] as const;
export type AuthorizeParams = Partial<Record<(typeof AUTHORIZE_PARAMS)[number], string>>;

export interface AuthorizationRequest extends ApprovedRequest {
  state: string | undefined;
  params: AuthorizeParams;
}

export type CheckedRequest =
  | { ok: true; request: AuthorizationRequest }
  /** Shown to the user; never redirected. */
  | { ok: false; shown: string }
  /** The client's redirect URI with the error. */
  | { ok: false; redirect: string };

/** The redirect back to the client: `code` or `error`, with `state` and the issuer. */
export function clientRedirect(
  ctx: BrokerContext,
  redirectUri: string,
  state: string | undefined,
  result: { code: string } | { error: OAuthErrorCode; description: string },
): string {
  const fields =
    'code' in result ? { code: result.code } : { error: result.error, error_description: result.description };
  return withQuery(redirectUri, { ...fields, state, iss: ctx.config.publicUrl });
}

/** Reads the request's parameters; a repeated one (an array) makes the request invalid (RFC 6749 §3.1). */
export function authorizeParams(source: Record<string, unknown>): AuthorizeParams | 'repeated' {
  const params: AuthorizeParams = {};
  for (const name of AUTHORIZE_PARAMS) {
    const value = source[name];
    if (value === undefined || value === '') continue;
    if (typeof value !== 'string') return 'repeated';
    params[name] = value;
  }
  return params;
}

export async function checkAuthorizationRequest(
  ctx: BrokerContext,
  source: Record<string, unknown>,
): Promise<CheckedRequest> {
  const params = authorizeParams(source);
  if (params === 'repeated')
    return { ok: false, shown: 'A parameter of the request appears more than once.' };
  if (!params.client_id) return { ok: false, shown: 'The request names no client (client_id).' };
  const client = await getClient(ctx, params.client_id);
  if (!client) return { ok: false, shown: 'The app that sent you here is not registered with tunnelbyte.' };
  if (!params.redirect_uri || !redirectUriMatches(client.redirectUris, params.redirect_uri)) {
    return { ok: false, shown: `The return address is not registered for ${client.name}.` };
  }
  const redirectUri = params.redirect_uri;
  const fail = (error: OAuthErrorCode, description: string): CheckedRequest => ({
    ok: false,
    redirect: clientRedirect(ctx, redirectUri, params.state, { error, description }),
  });
  if (params.response_type !== 'code') {
    return fail('unsupported_response_type', 'Only response_type=code is supported.');
  }
  const challenge = params.code_challenge ?? null;
  if (challenge !== null) {
    if (params.code_challenge_method !== 'S256')
      return fail('invalid_request', 'code_challenge_method must be S256.');
    if (!isCodeChallenge(challenge))
      return fail('invalid_request', 'code_challenge is not a S256 challenge.');
  } else if (client.authMethod === 'none') {
    return fail('invalid_request', 'A public client must send a PKCE code_challenge (S256).');
  } else if (params.code_challenge_method !== undefined) {
    return fail('invalid_request', 'code_challenge_method without code_challenge.');
  }
  const scopes = parseScope(params.scope ?? '');
  const problem = scopeProblem(scopes);
  if (problem) return fail('invalid_scope', problem);
  return {
    ok: true,
    request: { client, redirectUri, scopes: scopes as Scope[], challenge, state: params.state, params },
  };
}
