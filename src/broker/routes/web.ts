// The HTML pages (docs/API.md "Pages"): sign-in, sign-out, the OAuth consent page and the account page.
// Server-rendered, no script, a strict Content-Security-Policy, and every form post checked twice:
// the browser must say it came from this site (Origin / Sec-Fetch-Site), and the form must carry the
// CSRF token of the sign-in (or, for the sign-in form, of the pre-sign-in cookie).
import express, {
  type NextFunction,
  type Request,
  type RequestHandler,
  type Response,
  type Router,
} from 'express';
import { sourceOfRequest } from '../auth.js';
import type { BrokerContext } from '../context.js';
import { ApiError, notFound, toHttpError } from '../errors.js';
import { expressPath, formBody } from '../http.js';
import { z } from '../openapi.js';
import { listKeys, maskedKey, revokeKey, type Account } from '../services/accounts.js';
import {
  authorizeParams,
  checkAuthorizationRequest,
  clientRedirect,
  type AuthorizationRequest,
  type AuthorizeParams,
} from '../services/oauth-authorize.js';
import { canAuthorize, createCode, revokeAuthorization } from '../services/oauth-grants.js';
import { deleteSession, listSessions } from '../services/sessions.js';
import { verifyCredentials } from '../services/signin.js';
import { dailyBytes, usageOf } from '../services/usage.js';
import {
  csrfMatches,
  endWebSession,
  findWebSession,
  startWebSession,
  type WebSession,
  WEB_SESSION_SECONDS,
} from '../services/websessions.js';
import { randomBase62 } from '../tokens.js';
import { stylesheet } from '../web/assets.js';
import { usageChart } from '../web/chart.js';
import { accountPage, consentPage, loginPage, messagePage, STYLESHEET_PATH } from '../web/pages.js';
import { AUTHORIZE_PATH, authorizationViews } from './oauth.js';

const CHART_DAYS = 30;
const OPEN_STATUSES = new Set(['pending', 'active', 'idle']);

/** Whether a path takes form posts (exempt from the broker's JSON-only rule). */
export const isWebFormPath = (path: string) =>
  path === '/login' || path === '/logout' || path === AUTHORIZE_PATH || path.startsWith('/account/');

/** Where a sign-in may send the browser next: only our own pages (never an open redirect). */
function safeNext(value: unknown): string {
  if (typeof value !== 'string') return '/account';
  if (value === '/account' || value.startsWith(`${AUTHORIZE_PATH}?`)) return value;
  return '/account';
}

function cookies(req: Request): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return out;
}

/** The notices a redirect may name (`?notice=`); a Map, so no name every object has is one. */
const NOTICES = new Map([
  ['session-closed', 'The session is closed.'],
  ['key-revoked', 'The key is revoked.'],
  ['app-revoked', 'The app no longer has access to your account.'],
  ['signed-out', 'You are signed out.'],
]);
const noticeOf = (req: Request) =>
  typeof req.query.notice === 'string' ? NOTICES.get(req.query.notice) : undefined;

const htmlReply = (description: string) => ({
  description,
  content: { 'text/html': { schema: z.string() } },
});

/** A page's operation in the OpenAPI document (a text/html one); a form post's 403 is added to it. */
interface PageDoc {
  summary: string;
  responses: Record<number, ReturnType<typeof htmlReply> | { description: string }>;
}

export function webRoutes(ctx: BrokerContext, router: Router): void {
  const publicUrl = new URL(ctx.config.publicUrl);
  // Secure whenever the broker is reached over https. A plain-HTTP broker (loopback, or a LAN address
  // with HOST=0.0.0.0) cannot have Secure cookies: the browser drops them, and no one could sign in.
  const secure = publicUrl.protocol === 'https:';
  // With Secure comes the __Host- prefix: the browser then takes the cookie only from this very host
  // (no Domain, Path=/), so another host of the domain cannot plant a session or a sign-in token.
  const cookieName = (name: string) => (secure ? `__Host-${name}` : name);
  const sessionCookie = cookieName('tb_session');
  /** Pre-sign-in CSRF cookie: the sign-in form echoes it (there is no session yet to hold a token). */
  const loginCsrfCookie = cookieName('tb_login_csrf');
  const css = stylesheet();
  const web = express.Router();
  const form = formBody();

  const cookie = (name: string, value: string, maxAgeSeconds: number) =>
    `${name}=${value}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${maxAgeSeconds}${secure ? '; Secure' : ''}`;

  /** Security headers of every page; `formTargets` are the origins a form may lead to (after a redirect). */
  function send(res: Response, status: number, body: string, formTargets: string[] = []): void {
    res
      .status(status)
      .set({
        'Content-Type': 'text/html; charset=utf-8',
        'Content-Security-Policy': [
          "default-src 'none'",
          "style-src 'self'",
          "img-src 'self'",
          `form-action 'self'${formTargets.map((o) => ` ${o}`).join('')}`,
          "frame-ancestors 'none'",
          "base-uri 'none'",
        ].join('; '),
        'Cache-Control': 'no-store',
        'X-Frame-Options': 'DENY',
        'X-Content-Type-Options': 'nosniff',
        'Referrer-Policy': 'same-origin',
      })
      .send(body);
  }

  /** A page's 303. No-store like the pages: some set the session cookie or carry an authorization code. */
  const seeOther = (res: Response, location: string) =>
    res.set('Cache-Control', 'no-store').redirect(303, location);

  const signedIn = (s: WebSession) => ({ email: s.account.email ?? s.account.id, csrf: s.csrf });

  /** The browser says the post came from this site; a post from elsewhere is refused before anything. */
  function sameSite(req: Request): boolean {
    if (req.headers['sec-fetch-site'] === 'cross-site') return false;
    const origin = req.headers.origin;
    if (origin === undefined) return true;
    return origin === publicUrl.origin || origin === `${req.protocol}://${req.headers.host ?? ''}`;
  }

  const refuse = (res: Response) =>
    send(
      res,
      403,
      messagePage('Request refused', 'This form was not sent from a tunnelbyte page. Nothing was changed.'),
    );

  const label = (path: string) => (_req: Request, res: Response, next: NextFunction) => {
    res.locals.route = path;
    next();
  };
  /** The methods each page's path (OpenAPI spelling) takes; any other gets the 405 page. */
  const methodsOf = new Map<string, string[]>();
  /** A page route: its metrics label, its methods for the 405 page, its operation in the document. */
  function page(method: 'get' | 'post', path: string, doc: PageDoc | null, ...handlers: RequestHandler[]) {
    const taken = method === 'get' ? ['GET', 'HEAD'] : ['POST'];
    methodsOf.set(path, [...(methodsOf.get(path) ?? []), ...taken]);
    web[method](expressPath(path), label(path), ...handlers);
    if (!doc) return;
    const responses: PageDoc['responses'] =
      method === 'post'
        ? { ...doc.responses, 403: htmlReply('cross-site or bad CSRF token') }
        : doc.responses;
    ctx.openapi.registerPath({
      method,
      path,
      summary: doc.summary,
      tags: ['pages'],
      request: path.includes('{id}') ? { params: z.object({ id: z.string() }) } : {},
      responses,
    });
  }

  // ── static ──
  page('get', STYLESHEET_PATH, null, (_req, res) => {
    res.set({ 'Content-Type': 'text/css; charset=utf-8', 'Cache-Control': 'public, max-age=3600' }).send(css);
  });
  page('get', '/', null, (_req, res) => seeOther(res, '/account'));

  // ── sign-in and sign-out ──
  function showLogin(
    req: Request,
    res: Response,
    status: number,
    extra: { email?: string; error?: string; notice?: string },
  ) {
    const token = cookies(req)[loginCsrfCookie];
    const csrf = token && /^[0-9A-Za-z]{32}$/.test(token) ? token : randomBase62(32);
    res.append('Set-Cookie', cookie(loginCsrfCookie, csrf, WEB_SESSION_SECONDS));
    send(res, status, loginPage({ csrf, next: safeNext(req.body?.next ?? req.query.next), ...extra }));
  }

  page(
    'get',
    '/login',
    { summary: 'Sign-in page', responses: { 200: htmlReply('the form') } },
    async (req, res) => {
      const session = await findWebSession(ctx, cookies(req)[sessionCookie]);
      if (session) return seeOther(res, safeNext(req.query.next));
      showLogin(req, res, 200, { notice: noticeOf(req) });
    },
  );

  page(
    'post',
    '/login',
    {
      summary: 'Sign in (form: email, password, csrf, next); sets the session cookie',
      responses: {
        303: { description: 'to next' },
        401: htmlReply('wrong pair'),
        429: htmlReply('back-off'),
      },
    },
    form,
    async (req, res) => {
      const expected = cookies(req)[loginCsrfCookie];
      if (!sameSite(req) || !expected || !csrfMatches(expected, req.body?.csrf)) return refuse(res);
      const email = typeof req.body.email === 'string' ? req.body.email.slice(0, 254) : '';
      const password = typeof req.body.password === 'string' ? req.body.password.slice(0, 1024) : '';
      const source = sourceOfRequest(req);
      const limit = ctx.limits.public.take(source, ctx.clock());
      if (!limit.allowed) {
        const wait = Math.max(1, Math.ceil(limit.retryAfterSeconds));
        res.set('Retry-After', String(wait));
        return showLogin(req, res, 429, { email, error: `Too many requests. Try again in ${wait} s.` });
      }
      let session: { cookie: string };
      try {
        const account = await verifyCredentials(ctx, { source, email, password });
        // A new sign-in never keeps a cookie it arrived with (session fixation): that one ends here.
        await endWebSession(ctx, cookies(req)[sessionCookie]);
        session = await startWebSession(ctx, account);
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        const error =
          err.kind === 'rate_limited'
            ? `Too many failed attempts. Try again in ${err.retryAfterSeconds ?? 1} s.`
            : 'Wrong email or password.';
        const mapped = toHttpError(err);
        res.set(mapped.headers);
        return showLogin(req, res, mapped.status, { email, error });
      }
      res.append('Set-Cookie', cookie(sessionCookie, session.cookie, WEB_SESSION_SECONDS));
      seeOther(res, safeNext(req.body.next));
    },
  );

  page(
    'post',
    '/logout',
    {
      summary: 'Sign out (form: csrf); the session ends on the server',
      responses: { 303: { description: 'to /login' } },
    },
    form,
    async (req, res) => {
      const value = cookies(req)[sessionCookie];
      const session = await findWebSession(ctx, value);
      if (!sameSite(req) || (session && !csrfMatches(session.csrf, req.body?.csrf))) return refuse(res);
      await endWebSession(ctx, value);
      res.append('Set-Cookie', cookie(sessionCookie, '', 0));
      seeOther(res, '/login?notice=signed-out');
    },
  );

  // ── the OAuth authorization page ──
  const toLogin = (res: Response, next: string) => seeOther(res, `/login?next=${encodeURIComponent(next)}`);
  /** To sign in, then back to the consent page with the request's parameters, at its one spelling. */
  const toLoginThenConsent = (res: Response, params: AuthorizeParams | 'repeated') =>
    toLogin(res, `${AUTHORIZE_PATH}?${new URLSearchParams(params === 'repeated' ? {} : params)}`);

  function showConsent(res: Response, session: WebSession, request: AuthorizationRequest) {
    const redirect = new URL(request.redirectUri);
    send(
      res,
      200,
      consentPage({
        signedIn: signedIn(session),
        clientName: request.client.name,
        thirdParty: request.client.owner !== null,
        redirectHost: redirect.host,
        scopes: request.scopes,
        params: request.params,
        refusal: canAuthorize(session.account)
          ? undefined
          : 'Apps can use paid accounts only. Upgrade with `tunnelbyte upgrade`, then come back.',
      }),
      [redirect.origin],
    );
  }

  page(
    'get',
    AUTHORIZE_PATH,
    {
      summary: 'OAuth authorization page: sign in, then Allow or Deny (RFC 6749 §4.1.1)',
      responses: {
        200: htmlReply('consent page'),
        303: { description: 'to the client with code or error, state and iss; or to /login' },
        400: htmlReply('unknown client or unregistered redirect URI (never redirected)'),
      },
    },
    async (req, res) => {
      const checked = await checkAuthorizationRequest(ctx, req.query);
      if (!checked.ok) {
        if ('redirect' in checked) return seeOther(res, checked.redirect);
        return send(res, 400, messagePage('This link cannot be used', checked.shown));
      }
      const session = await findWebSession(ctx, cookies(req)[sessionCookie]);
      if (!session) return toLoginThenConsent(res, checked.request.params);
      showConsent(res, session, checked.request);
    },
  );

  page(
    'post',
    AUTHORIZE_PATH,
    {
      summary: 'The consent form (the request parameters, csrf, decision=allow|deny)',
      responses: { 303: { description: 'to the client with code or error, state and iss' } },
    },
    form,
    async (req, res) => {
      if (!sameSite(req)) return refuse(res);
      const body = (req.body ?? {}) as Record<string, unknown>;
      const session = await findWebSession(ctx, cookies(req)[sessionCookie]);
      if (!session) return toLoginThenConsent(res, authorizeParams(body));
      if (!csrfMatches(session.csrf, body.csrf)) return refuse(res);
      const checked = await checkAuthorizationRequest(ctx, body);
      if (!checked.ok) {
        if ('redirect' in checked) return seeOther(res, checked.redirect);
        return send(res, 400, messagePage('This link cannot be used', checked.shown, signedIn(session)));
      }
      const { request } = checked;
      if (body.decision === 'allow' && canAuthorize(session.account)) {
        const code = await createCode(ctx, session.account.id, request);
        return seeOther(res, clientRedirect(ctx, request.redirectUri, request.state, { code }));
      }
      seeOther(
        res,
        clientRedirect(ctx, request.redirectUri, request.state, {
          error: 'access_denied',
          description: 'The user denied the request.',
        }),
      );
    },
  );

  // ── the account page ──
  async function requireSession(req: Request, res: Response): Promise<WebSession | null> {
    const session = await findWebSession(ctx, cookies(req)[sessionCookie]);
    if (!session) toLogin(res, '/account');
    return session;
  }

  page(
    'get',
    '/account',
    {
      summary: 'Account page: plan, usage per day, open sessions, API keys, authorized apps',
      responses: { 200: htmlReply('the page'), 303: { description: 'to /login when signed out' } },
    },
    async (req, res) => {
      const session = await requireSession(req, res);
      if (!session) return;
      const account = session.account;
      const [usage, days, sessions, keys, apps] = await Promise.all([
        usageOf(ctx, account),
        dailyBytes(ctx, account.id, CHART_DAYS),
        listSessions(ctx, account.id),
        listKeys(ctx, account.id),
        authorizationViews(ctx, account.id),
      ]);
      send(
        res,
        200,
        accountPage({
          signedIn: signedIn(session),
          notice: noticeOf(req),
          plan: account.plan,
          period: usage.period,
          bytes: usage.bytes,
          sessions: { active: usage.sessions.active, limit: usage.sessions.limit },
          requestsPerMinute: usage.requests.limit_per_minute,
          chart: usageChart(days),
          open: sessions
            .filter((s) => OPEN_STATUSES.has(s.status))
            .map((s) => ({
              id: s.id,
              region: s.region,
              node: s.node.id,
              since: s.created_at,
              bytes: s.rx_bytes + s.tx_bytes,
              lastHandshake: s.last_handshake_at,
              status: s.status,
            })),
          keys: keys.map((k) => ({
            id: k.id,
            name: k.name,
            masked: maskedKey(k),
            created: k.createdAt,
            lastUsed: k.lastUsed,
          })),
          apps: apps.map((a) => ({
            clientId: a.client_id,
            name: a.client_name,
            scopes: a.scopes,
            granted: a.granted_at,
            lastUsed: a.last_used,
          })),
        }),
      );
    },
  );

  /**
   * An account-page button: same-site, signed in, CSRF token, then the action and back to the page.
   * An action that finds nothing of this account's to act on (false) is a 404 page, as the API's is.
   */
  function accountAction(
    path: string,
    doc: { summary: string; missing: string },
    notice: string,
    act: (account: Account, id: string) => Promise<unknown>,
  ) {
    const responses = { 303: { description: 'to /account' }, 404: htmlReply(doc.missing) };
    page('post', path, { summary: `${doc.summary} (form: csrf)`, responses }, form, async (req, res) => {
      if (!sameSite(req)) return refuse(res);
      const session = await requireSession(req, res);
      if (!session) return;
      if (!csrfMatches(session.csrf, req.body?.csrf)) return refuse(res);
      if ((await act(session.account, String(req.params.id))) === false) throw notFound();
      seeOther(res, `/account?notice=${notice}`);
    });
  }
  accountAction(
    '/account/sessions/{id}/close',
    { summary: 'Close a session from the account page', missing: 'no such session' },
    'session-closed',
    (a, id) => deleteSession(ctx, a.id, id),
  );
  accountAction(
    '/account/keys/{id}/revoke',
    { summary: 'Revoke an API key from the account page', missing: 'no such key' },
    'key-revoked',
    (a, id) => revokeKey(ctx, a.id, id),
  );
  accountAction(
    '/account/apps/{id}/revoke',
    { summary: 'Revoke an authorized app from the account page', missing: 'no such authorized app' },
    'app-revoked',
    (a, id) => revokeAuthorization(ctx, a.id, id),
  );

  // A page's address with a method it does not take: a page too, naming the ones it takes.
  for (const [path, methods] of methodsOf) {
    web.all(expressPath(path), label(path), (_req, res) => {
      res.set('Allow', methods.join(', '));
      const only = `This address takes ${methods.join(', ')} only: use the buttons of the tunnelbyte pages.`;
      send(res, 405, messagePage('Method not allowed', only));
    });
  }
  // A browser (asking for HTML before JSON) where no page is gets a page. The API (/v1/…) and its
  // clients get the contract's JSON 404 (app.ts): this module is mounted last for that reason.
  web.use((req, res, next) => {
    if (req.path.toLowerCase().startsWith('/v1/') || req.accepts(['json', 'html']) !== 'html') return next();
    send(res, 404, messagePage('Page not found', 'There is no page at this address.'));
  });

  // Errors of the pages are pages too.
  web.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const mapped = toHttpError(err);
    if (mapped.unexpected) ctx.logger.error({ req_id: req.requestId, err }, 'unexpected fault');
    res.set(mapped.headers);
    send(res, mapped.status, messagePage('Something went wrong', mapped.body.message));
  });
  router.use(web);
}
