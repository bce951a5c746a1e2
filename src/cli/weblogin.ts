// `tunnelbyte login --web`: sign in through the browser, as `gh auth login --web` does. The CLI is the
// broker's built-in public client: PKCE (S256), a one-shot listener on 127.0.0.1 at a random port as
// the redirect URI (RFC 8252 §7.3), `state` and the issuer (RFC 9207) checked on the way back; a
// callback without this sign-in's `state` gets an error page and is otherwise ignored (RFC 6749 §10.12).
// The tokens are cached 0600; commands renew the access token when it expires or is refused (context.ts).
import { spawn } from 'node:child_process';
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  authorizationUrl,
  fetchMetadata,
  OAuthFailure,
  pkcePair,
  randomState,
  tokenRequest,
  CLI_CLIENT_ID,
  type ServerMetadata,
  type TokenSet,
} from '../lib/oauth-client.js';
import { limitSignal, type RequestLimits } from '../lib/api-client.js';
import { html } from '../lib/html.js';
import { CliError, EXIT, interrupted } from './exit.js';
import type { CliIO } from './io.js';
import type { Store } from './store.js';

/** What a browser sign-in needs of the command's Context (which itself renews tokens through here). */
export interface WebLoginContext {
  readonly io: CliIO;
  readonly apiUrl: string;
  readonly store: Store;
  /** Each request's wait for the broker (--timeout), and Ctrl-C. */
  readonly requestLimits: RequestLimits;
  spin<T>(label: string, work: Promise<T>): Promise<T>;
}

/** How long the CLI waits for the browser to come back. */
const WAIT_MS = 5 * 60_000;

/** The text may carry what the answer said (error_description): escaped, and no script runs. */
const page = (title: string, text: string) =>
  html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <title>${title}</title>
      </head>
      <body style="font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem">
        <h1>${title}</h1>
        <p>${text}</p>
      </body>
    </html>`.text;

function answer(res: ServerResponse, status: number, title: string, text: string): void {
  res
    .writeHead(status, {
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-store',
      'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
      'X-Content-Type-Options': 'nosniff',
    })
    .end(page(title, text));
}

/** In constant time: a stray callback no longer ends the sign-in, so a local process may keep guessing. */
function isOwnState(presented: string | null, state: string): boolean {
  const a = Buffer.from(presented ?? '');
  const b = Buffer.from(state);
  return a.length === b.length && timingSafeEqual(a, b);
}

interface Callback {
  redirectUri: string;
  /** The query of the first request to /callback that carries this sign-in's state. */
  params: Promise<URLSearchParams>;
  /** Answers the browser, then stops listening. */
  finish(ok: boolean, text: string): void;
}

/** Listens on 127.0.0.1 at a port the system picks, for exactly one redirect with `state`. */
async function listenForCallback(state: string): Promise<Callback> {
  let arrived!: (params: URLSearchParams) => void;
  const params = new Promise<URLSearchParams>((resolve) => (arrived = resolve));
  let pending: ServerResponse | undefined;
  let finished = false;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname !== '/callback' || pending) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not here');
      return;
    }
    // A stale tab or another local process, not the redirect this sign-in started: the real one may
    // still come, so keep waiting.
    if (!isOwnState(url.searchParams.get('state'), state)) {
      answer(res, 400, 'Not this sign-in', 'This answer belongs to another sign-in. You can close this tab.');
      return;
    }
    pending = res;
    arrived(url.searchParams);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    redirectUri: `http://127.0.0.1:${port}/callback`,
    params,
    finish: (ok, text) => {
      if (finished) return;
      finished = true;
      if (pending) answer(pending, ok ? 200 : 400, ok ? 'Signed in to tunnelbyte' : 'Sign-in failed', text);
      server.close();
      server.closeAllConnections();
    },
  };
}

/** Opens the URL in the desktop's browser when there is one ($BROWSER, xdg-open, open); false otherwise. */
function openBrowser(url: string, env: Record<string, string | undefined>): boolean {
  const graphical =
    process.platform === 'darwin' || process.platform === 'win32' || !!(env.DISPLAY || env.WAYLAND_DISPLAY);
  const command =
    env.BROWSER || (process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? '' : 'xdg-open');
  if (!command || (!env.BROWSER && !graphical)) return false;
  try {
    const child = spawn(command, [url], { detached: true, stdio: 'ignore', env: env as NodeJS.ProcessEnv });
    child.on('error', () => undefined); // no such program: the printed URL still works
    child.unref();
    return true;
  } catch {
    return false;
  }
}

function waitFor<T>(work: Promise<T>, signal: AbortSignal | undefined, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new CliError(`no answer from the browser within ${ms / 60_000} minutes`, EXIT.auth)),
      ms,
    );
    const stop = () => reject(interrupted());
    signal?.addEventListener('abort', stop, { once: true });
    work.then(resolve, reject).finally(() => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', stop);
    });
  });
}

function save(
  store: Store,
  meta: Pick<ServerMetadata, 'token_endpoint' | 'revocation_endpoint'>,
  set: TokenSet,
): void {
  store.writeOAuthTokens(set.access_token, {
    refresh_token: set.refresh_token,
    expires_at: Date.now() + set.expires_in * 1000,
    token_endpoint: meta.token_endpoint,
    ...(meta.revocation_endpoint ? { revocation_endpoint: meta.revocation_endpoint } : {}),
  });
}

/** The browser sign-in; caches the tokens and returns the access token. */
export async function webLogin(ctx: WebLoginContext): Promise<string> {
  const limits = ctx.requestLimits;
  const { signal } = limits;
  const meta = await ctx.spin('Contacting the broker', fetchMetadata(ctx.apiUrl, limits));
  const { verifier, challenge } = pkcePair();
  const state = randomState();
  const callback = await listenForCallback(state);
  try {
    const url = authorizationUrl(meta, {
      redirectUri: callback.redirectUri,
      challenge,
      state,
      scope: (meta.scopes_supported ?? []).join(' '),
    });
    const opened = openBrowser(url, ctx.io.env);
    ctx.io.stderr.write(
      `${opened ? 'Your browser should open; if it does not, open' : 'Open'} this URL to sign in:\n  ${url}\n` +
        'Waiting for the browser…\n',
    );
    const params = await waitFor(callback.params, signal, WAIT_MS);
    const refuse = (browserText: string, line: string): never => {
      callback.finish(false, browserText);
      throw new CliError(line, EXIT.auth);
    };
    if (params.get('iss') !== meta.issuer)
      refuse(
        'The answer came from another server.',
        `the answer names issuer ${params.get('iss') ?? '(none)'}, not ${meta.issuer}`,
      );
    const error = params.get('error');
    if (error) {
      const why =
        error === 'access_denied'
          ? 'you denied access'
          : `${error}: ${params.get('error_description') ?? ''}`;
      refuse(`Nothing was signed in (${why}). You can close this tab.`, `sign-in refused: ${why}`);
    }
    const code = params.get('code');
    if (!code) refuse('The answer carries no code.', 'the browser came back without a code');
    let set: TokenSet;
    try {
      set = await tokenRequest(
        meta.token_endpoint,
        {
          grant_type: 'authorization_code',
          code: code!,
          redirect_uri: callback.redirectUri,
          code_verifier: verifier,
        },
        limits,
      );
    } catch (err) {
      callback.finish(false, 'The broker did not accept the sign-in. See the terminal.');
      if (err instanceof OAuthFailure) throw new CliError(`sign-in failed: ${err.message}`, EXIT.auth);
      throw err;
    }
    save(ctx.store, meta, set);
    callback.finish(true, 'You can close this tab and go back to the terminal.');
    return set.access_token;
  } finally {
    callback.finish(false, 'The sign-in was abandoned.');
  }
}

/**
 * Renews the cached OAuth access token `presented` with its refresh token, under the config dir's lock.
 * Another command may have renewed it meanwhile: then its token is used. A refused refresh token
 * (revoked, or the account no longer paid) is forgotten, and the caller sees the original 401.
 */
export function renewCachedToken(
  store: Store,
  presented: string,
  limits: RequestLimits,
): Promise<string | undefined> {
  return store.withOAuthLock(async () => {
    const record = store.readOAuth();
    const current = store.readToken();
    if (!record || !current) return undefined;
    if (current !== presented) return current;
    try {
      const set = await tokenRequest(
        record.token_endpoint,
        { grant_type: 'refresh_token', refresh_token: record.refresh_token },
        limits,
      );
      save(store, record, set);
      return set.access_token;
    } catch (err) {
      if (!(err instanceof OAuthFailure && ['invalid_grant', 'invalid_client'].includes(err.error)))
        throw err;
      store.removeToken();
      return undefined;
    }
  });
}

/**
 * Logging out of a browser sign-in also ends its refresh token (RFC 7009), best effort: given up at the
 * command's --timeout or Ctrl-C, as its other requests are.
 */
export async function revokeRefreshToken(store: Store, limits: RequestLimits): Promise<void> {
  const record = store.readOAuth();
  if (!record?.revocation_endpoint) return;
  try {
    await fetch(record.revocation_endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: record.refresh_token, client_id: CLI_CLIENT_ID }).toString(),
      signal: limitSignal(limits).signal,
    });
  } catch {
    // Unreachable or silent broker: the cached copy is removed anyway, and the refresh token expires unused.
  }
}
