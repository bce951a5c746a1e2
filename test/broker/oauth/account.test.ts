// The account page and its buttons over HTTP (the browser suite drives the same page in chromium):
// signed-out redirects, what it lists, and each action with its CSRF token, without it, and cross-site.
import request from 'supertest';
import { BACKOFF } from '../../../src/broker/services/backoff.js';
import { startBroker, type TestBroker } from '../helpers.js';
import {
  authorize,
  authorizeQuery,
  bearer,
  cookieHeader,
  cookieJar,
  csrfOf,
  paidUser,
  pkce,
  registerClient,
  signIn,
  PASSWORD,
  token,
} from './flow.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startBroker({
    env: { PUBLIC_BURST: '1000000', TB_TIERS: JSON.stringify({ pro: { requestsPerMinute: 1000000 } }) },
  });
});
afterAll(async () => broker.close());

const api = () => request(broker.app);

/** A user with an app authorized through the consent page, signed in; its access token. */
async function userWithApp() {
  const user = await paidUser(broker);
  const client = await registerClient(broker, user, { client_name: 'Acme <Dash>' });
  const jar = await signIn(broker, user);
  const { verifier, challenge } = pkce();
  const redirect = await authorize(
    broker,
    jar,
    authorizeQuery(client, { code_challenge: challenge, code_challenge_method: 'S256' }),
  );
  const tokens = await token(broker, client, {
    grant_type: 'authorization_code',
    code: redirect.searchParams.get('code')!,
    redirect_uri: client.redirect_uris[0]!,
    code_verifier: verifier,
  });
  return { user, client, jar, access: tokens.body.access_token as string };
}

test('1. signed out: /account and its buttons send the browser to sign in', async () => {
  const page = await api().get('/account');
  expect([page.status, page.headers.location]).toEqual([303, '/login?next=%2Faccount']);
  const post = await api().post('/account/keys/key_x/revoke').type('form').send({ csrf: 'x' });
  expect(post.status).toBe(303);
});

test('2. lists the plan, the API keys masked, and the authorized apps; no script, strict CSP', async () => {
  const { user, jar } = await userWithApp();
  const page = await api().get('/account').set('Cookie', cookieHeader(jar));
  expect(page.status).toBe(200);
  expect(page.text).toContain(user.email);
  expect(page.text).toContain('tb_***…');
  expect(page.text).not.toContain(user.apiKey);
  expect(page.text).toContain('Acme &lt;Dash&gt;');
  expect(page.text).toMatch(/<svg\s+class="chart"/);
  expect(page.text).not.toMatch(/<script|\sstyle=|\son[a-z]+=/i);
  expect(page.headers['content-security-policy']).toContain("default-src 'none'");
  expect(page.headers['cache-control']).toBe('no-store');
});

test('3. revoking the app from the page ends its token; revoking a key ends the key', async () => {
  const { user, jar, access } = await userWithApp();
  const page = await api().get('/account').set('Cookie', cookieHeader(jar));
  const csrf = csrfOf(page.text);
  const appPath = /action="(\/account\/apps\/[^"]+\/revoke)"/.exec(page.text)![1]!;
  const keyPath = /action="(\/account\/keys\/[^"]+\/revoke)"/.exec(page.text)![1]!;

  const revoked = await api().post(appPath).set('Cookie', cookieHeader(jar)).type('form').send({ csrf });
  expect([revoked.status, revoked.headers.location]).toEqual([303, '/account?notice=app-revoked']);
  expect((await api().get('/v1/auth/user').set(bearer(access))).status).toBe(401);

  const key = await api().post(keyPath).set('Cookie', cookieHeader(jar)).type('form').send({ csrf });
  expect(key.headers.location).toBe('/account?notice=key-revoked');
  expect((await api().get('/v1/auth/user').set(bearer(user.apiKey))).status).toBe(401);
});

test('4. a button without the CSRF token, with another sign-in’s, or from another site changes nothing', async () => {
  const { user, jar, access } = await userWithApp();
  const other = await signIn(broker, await paidUser(broker));
  const otherCsrf = csrfOf((await api().get('/account').set('Cookie', cookieHeader(other))).text);
  const page = await api().get('/account').set('Cookie', cookieHeader(jar));
  const csrf = csrfOf(page.text);
  const keyPath = /action="(\/account\/keys\/[^"]+\/revoke)"/.exec(page.text)![1]!;
  const post = (fields: Record<string, string>, headers: Record<string, string> = {}) =>
    api().post(keyPath).set('Cookie', cookieHeader(jar)).set(headers).type('form').send(fields);
  for (const [fields, headers] of [
    [{}, {}],
    [{ csrf: otherCsrf }, {}],
    [{ csrf }, { Origin: 'https://evil.example' }],
    [{ csrf }, { 'Sec-Fetch-Site': 'cross-site' }],
  ] as [Record<string, string>, Record<string, string>][]) {
    const res = await post(fields, headers);
    expect([fields, headers, res.status]).toEqual([fields, headers, 403]);
  }
  expect((await api().get('/v1/auth/user').set(bearer(user.apiKey))).status).toBe(200);
  expect((await api().get('/v1/auth/user').set(bearer(access))).status).toBe(200);
});

test('5. sign-in: a wrong password shows the form again (401); the back-off shows on the page (429)', async () => {
  const user = await paidUser(broker);
  const form = await api().get('/login');
  const jar = cookieJar(form);
  const attempt = (password: string) =>
    api()
      .post('/login')
      .set('Cookie', cookieHeader(jar))
      .type('form')
      .send({ email: user.email, password, csrf: csrfOf(form.text), next: '/account' });
  const wrong = await attempt('wrong password');
  expect(wrong.status).toBe(401);
  expect(wrong.text).toContain('Wrong email or password.');
  expect(wrong.text).toContain(`value="${user.email}"`);
  let last = wrong;
  for (let i = 0; i < 10 && last.status !== 429; i++) last = await attempt('wrong password');
  expect(last.status).toBe(429);
  expect(last.text).toMatch(/Too many failed attempts\. Try again in \d+ s\./);
  expect(last.headers['retry-after']).toMatch(/^\d+$/);
});

test('6. the sign-in form needs its CSRF cookie; next never leaves the broker', async () => {
  const user = await paidUser(broker);
  const form = await api().get('/login');
  const noCookie = await api()
    .post('/login')
    .type('form')
    .send({ email: user.email, password: 'x', csrf: csrfOf(form.text) });
  expect(noCookie.status).toBe(403);
  const jar = cookieJar(form);
  for (const next of ['https://evil.example/', '//evil.example/', '/\\evil.example', '/account/../../x']) {
    const res = await api()
      .post('/login')
      .set('Cookie', cookieHeader(jar))
      .type('form')
      .send({ email: user.email, password: 'correct horse battery staple', csrf: csrfOf(form.text), next });
    expect([next, res.status, res.headers.location]).toEqual([next, 303, '/account']);
  }
});

test('7. signing in again replaces the session cookie; the one the browser arrived with ends', async () => {
  const user = await paidUser(broker);
  const jar = await signIn(broker, user);
  const before = jar.tb_session!;
  const form = await api().get('/login').set('Cookie', cookieHeader(jar));
  // Already signed in: the form is skipped.
  expect([form.status, form.headers.location]).toEqual([303, '/account']);
  const login = await api().get('/login');
  const again = await api()
    .post('/login')
    .set('Cookie', `${cookieHeader(cookieJar(login))}; tb_session=${before}`)
    .type('form')
    .send({ email: user.email, password: 'correct horse battery staple', csrf: csrfOf(login.text) });
  expect(again.status).toBe(303);
  const after = cookieJar(again).tb_session!;
  expect(after).not.toBe(before);
  expect((await api().get('/account').set('Cookie', `tb_session=${before}`)).status).toBe(303);
  expect((await api().get('/account').set('Cookie', `tb_session=${after}`)).status).toBe(200);
});

test('8. a button for another account’s key or app, or an unknown one, is a 404 page and changes nothing', async () => {
  const { jar } = await userWithApp();
  const other = await userWithApp();
  const otherKey = (await api().get('/v1/auth/key').set(bearer(other.user.apiKey))).body.id as string;
  const csrf = csrfOf((await api().get('/account').set('Cookie', cookieHeader(jar))).text);
  for (const path of [
    `/account/keys/${otherKey}/revoke`,
    '/account/keys/key_unknown/revoke',
    `/account/apps/${other.client.client_id}/revoke`,
    '/account/apps/app_unknown/revoke',
    '/account/sessions/ses_unknown/close',
  ]) {
    const res = await api().post(path).set('Cookie', cookieHeader(jar)).type('form').send({ csrf });
    expect([path, res.status, res.headers['content-type']]).toEqual([path, 404, 'text/html; charset=utf-8']);
  }
  expect((await api().get('/v1/auth/user').set(bearer(other.user.apiKey))).status).toBe(200);
  expect((await api().get('/v1/auth/user').set(bearer(other.access))).status).toBe(200);
});

test('9. on https the cookies are __Host- (Secure, Path=/, no Domain): a sibling subdomain cannot plant a session', async () => {
  const secure = await startBroker({
    env: { TB_PUBLIC_URL: 'https://tunnelbyte.example', PUBLIC_BURST: '1000000' },
    server: broker.server,
  });
  try {
    const user = await paidUser(secure);
    const form = await request(secure.app).get('/login');
    const [formCookie] = form.headers['set-cookie'] as unknown as string[];
    expect(formCookie).toMatch(
      /^__Host-tb_login_csrf=\w+; Path=\/; HttpOnly; SameSite=Lax; Max-Age=\d+; Secure$/,
    );
    const jar = cookieJar(form);
    const signedIn = await request(secure.app)
      .post('/login')
      .set('Cookie', cookieHeader(jar))
      .type('form')
      .send({ email: user.email, password: PASSWORD, csrf: csrfOf(form.text) });
    expect(signedIn.status).toBe(303);
    const session = cookieJar(signedIn)['__Host-tb_session']!;
    expect(session).toMatch(/^tbws_/);
    expect(
      (await request(secure.app).get('/account').set('Cookie', `__Host-tb_session=${session}`)).status,
    ).toBe(200);
    // What another host of the domain can set (Domain=tunnelbyte.example, no prefix) is not read.
    const planted = await request(secure.app).get('/account').set('Cookie', `tb_session=${session}`);
    expect([planted.status, planted.headers.location]).toEqual([303, '/login?next=%2Faccount']);
  } finally {
    await secure.close();
  }
});

test('10. the redirects that carry a secret (the session cookie, an authorization code) are no-store', async () => {
  const user = await paidUser(broker);
  const form = await api().get('/login');
  const signedIn = await api()
    .post('/login')
    .set('Cookie', cookieHeader(cookieJar(form)))
    .type('form')
    .send({ email: user.email, password: PASSWORD, csrf: csrfOf(form.text) });
  expect([signedIn.status, signedIn.headers['cache-control']]).toEqual([303, 'no-store']);
  const jar = cookieJar(signedIn);
  const client = await registerClient(broker, user);
  const query = authorizeQuery(client);
  const consent = await api().get('/v1/oauth/authorize').query(query).set('Cookie', cookieHeader(jar));
  const allowed = await api()
    .post('/v1/oauth/authorize')
    .set('Cookie', cookieHeader(jar))
    .type('form')
    .send({ ...query, csrf: csrfOf(consent.text), decision: 'allow' });
  expect(allowed.headers.location).toContain('code=');
  expect([allowed.status, allowed.headers['cache-control']]).toEqual([303, 'no-store']);
});

test('11. the form and POST /v1/auth/login share one back-off: failures through either hold back both', async () => {
  // A clock that stands still: a back-off, once earned, does not run out during the test.
  const now = Date.now();
  const frozen = await startBroker({
    env: { PUBLIC_BURST: '1000000' },
    clock: () => now,
    server: broker.server,
  });
  try {
    const viaForm = async (email: string) => {
      const form = await request(frozen.app).get('/login');
      return request(frozen.app)
        .post('/login')
        .set('Cookie', cookieHeader(cookieJar(form)))
        .type('form')
        .send({ email, password: 'wrong password', csrf: csrfOf(form.text) });
    };
    const viaApi = (email: string) =>
      request(frozen.app).post('/v1/auth/login').send({ email, password: 'wrong password' });
    for (const [first, then] of [
      [viaForm, viaApi],
      [viaApi, viaForm],
    ]) {
      const user = await paidUser(frozen);
      for (let i = 0; i < BACKOFF.freeFailuresPerEmail; i++)
        expect((await first!(user.email)).status).toBe(401);
      const held = await then!(user.email);
      expect([held.status, held.headers['retry-after']]).toEqual([429, '1']);
    }
  } finally {
    await frozen.close();
  }
});

test('12. a notice is one of the pages’ own: any other name, even one every object has, shows nothing', async () => {
  const jar = await signIn(broker, await paidUser(broker));
  for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'nope']) {
    for (const path of [`/login?notice=${name}`, `/account?notice=${name}`]) {
      const res = await api()
        .get(path)
        .set('Cookie', path.startsWith('/account') ? cookieHeader(jar) : '');
      expect([path, res.status, /role="status"/.test(res.text)]).toEqual([path, 200, false]);
    }
  }
});
