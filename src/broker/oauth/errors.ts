// OAuth 2.0 error answers (RFC 6749 §4.1.2.1 and §5.2, RFC 7009 §2.2.1). The token and revocation
// endpoints answer `{"error","error_description"}` with these codes; the authorization endpoint sends
// the same codes to the client's redirect URI. Everything else in the broker keeps errors.ts' shape.

export const OAUTH_ERRORS = {
  invalid_request: 400,
  invalid_client: 401,
  invalid_grant: 400,
  unauthorized_client: 400,
  unsupported_grant_type: 400,
  invalid_scope: 400,
  access_denied: 400,
  unsupported_response_type: 400,
  server_error: 500,
  temporarily_unavailable: 503,
} as const;

export type OAuthErrorCode = keyof typeof OAUTH_ERRORS;

export class OAuthError extends Error {
  override name = 'OAuthError';
  constructor(
    readonly code: OAuthErrorCode,
    readonly description: string,
  ) {
    super(description);
  }

  get status(): number {
    return OAUTH_ERRORS[this.code];
  }
}

export const oauthError = (code: OAuthErrorCode, description: string) => new OAuthError(code, description);
