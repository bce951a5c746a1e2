// The pages attacked from outside in Debian's chromium (playwright-core): a hostile site that posts
// forms at the broker, frames its pages or plants markup in names, and a browser that navigates where
// no page is. The hostile site is answered by playwright (http://attacker.invalid never leaves the
// browser); the broker listens on a real loopback port.
import request from 'supertest';
import { bearer, csrfOf, paidUser, PASSWORD, pkce, registerClient, type User } from './flow.js';
import { browserSuite, fillSignIn, launchChromium } from './browser.js';
import { listenBroker } from './listen.js';

const suite = browserSuite();
const ATTACKER = 'http://attacker.invalid/';
const REDIRECT = 'http://127.0.0.1:9/callback';

const api = () => request(suite.live.broker.app);
const at = (path: string) => new URL(path, suite.live.url).href;

/** Shows `body` as the hostile site's page. */
async function attackerPage(body: string): Promise<void> {
  await suite.page.route(ATTACKER, (route) => route.fulfill({ status: 200, contentType: 'text/html', body }));
  await suite.page.goto(ATTACKER);
}

async function signedIn(user: User): Promise<void> {
  await suite.page.goto(at('/account'));
  await fillSignIn(suite.page, user.email, PASSWORD);
  await suite.page.waitForURL(/\/account$/);
}

function authorizeParams(clientId: string, challenge: string): Record<string, string> {
  return {
    response_type: 'code',
    client_id: clientId,
    redirect_uri: REDIRECT,
    scope: 'account:read',
    state: 'st',
    code_challenge: challenge,
    code_challenge_method: 'S256',
  };
}

const hiddenFields = (fields: Record<string, string>) =>
  Object.entries(fields)
    .map(([name, value]) => `<input type="hidden" name="${name}" value="${value}">`)
    .join('');

test('1. every form posted from another site is refused (403), even with the right CSRF token', async () => {
  const user = await paidUser(suite.live.broker);
  const client = await registerClient(suite.live.broker, user, { redirect_uris: [REDIRECT] });
  await signedIn(user);
  const account = await suite.page.content();
  // The worst case: the attacker somehow holds this sign-in's token. The site check alone must hold.
  const csrf = csrfOf(account);
  const keyPath = /action="(\/account\/keys\/[^"]+\/revoke)"/.exec(account)![1]!;
  // A code must not reach the app: playwright answers the redirect URI and records any arrival.
  const arrivals: string[] = [];
  await suite.page.route(`${REDIRECT}**`, async (route) => {
    arrivals.push(route.request().url());
    await route.fulfill({ status: 200, contentType: 'text/plain', body: 'app' });
  });
  const attacks: [string, string, Record<string, string>][] = [
    ['sign-out', '/logout', { csrf }],
    ['key revocation', keyPath, { csrf }],
    [
      'consent (Allow)',
      '/v1/oauth/authorize',
      { ...authorizeParams(client.client_id, pkce().challenge), csrf, decision: 'allow' },
    ],
    ['sign-in as the attacker', '/login', { email: user.email, password: PASSWORD, csrf: 'A'.repeat(32) }],
  ];
  for (const [what, path, fields] of attacks) {
    await attackerPage(
      `<form method="post" action="${at(path)}">${hiddenFields(fields)}<button>Win</button></form>`,
    );
    const [answer] = await Promise.all([
      suite.page.waitForResponse((r) => r.request().method() === 'POST'),
      suite.page.getByRole('button', { name: 'Win' }).click(),
    ]);
    expect([what, answer.status()]).toEqual([what, 403]);
  }
  expect(arrivals).toEqual([]);
  expect((await api().get('/v1/auth/user').set(bearer(user.apiKey))).status).toBe(200);
  // Still signed in with the same sign-in.
  await suite.page.goto(at('/account'));
  expect(csrfOf(await suite.page.content())).toBe(csrf);
});

test('2. the sign-in, account and consent pages refuse to be framed by another site', async () => {
  const user = await paidUser(suite.live.broker);
  const client = await registerClient(suite.live.broker, user, { redirect_uris: [REDIRECT] });
  await signedIn(user);
  const consent = `/v1/oauth/authorize?${new URLSearchParams(authorizeParams(client.client_id, pkce().challenge))}`;
  for (const path of ['/login', '/account', consent]) {
    await attackerPage(`<iframe src="${at(path)}"></iframe>`);
    // The attacker's page has loaded with its frame; chromium shows its own error page in the frame's
    // place when the framed page forbids it.
    const frames = suite.page.frames().map((f) => f.url());
    expect([path, frames]).toEqual([path, [ATTACKER, 'chrome-error://chromewebdata/']]);
  }
});

test('3. markup in a key name, an app name, state and the sign-in email stays text', async () => {
  const markup = '"><img src=x id=injected>';
  const user = await paidUser(suite.live.broker);
  const key = await api()
    .post('/v1/auth/keys')
    .set(bearer(user.apiKey))
    .send({ name: `key ${markup}`, permissions: ['tunnels:read'] });
  expect(key.status).toBe(201);
  const client = await registerClient(suite.live.broker, user, {
    client_name: `app ${markup}`,
    redirect_uris: [REDIRECT],
  });

  await suite.page.goto(at('/login'));
  // A hostile user skips the browser's own check of the email field.
  await suite.page.locator('form[action="/login"]').evaluate((f) => f.setAttribute('novalidate', ''));
  await fillSignIn(suite.page, markup, 'wrong');
  await suite.page.getByRole('alert').waitFor();
  await expect(suite.page.getByLabel('Email').inputValue()).resolves.toBe(markup);
  await expect(suite.page.locator('#injected').count()).resolves.toBe(0);

  await fillSignIn(suite.page, user.email, PASSWORD);
  await suite.page.waitForURL(/\/account$/);
  await expect(suite.page.locator('tr', { hasText: `key ${markup}` }).count()).resolves.toBe(1);
  await expect(suite.page.locator('#injected').count()).resolves.toBe(0);

  const params = { ...authorizeParams(client.client_id, pkce().challenge), state: markup };
  await suite.page.goto(at(`/v1/oauth/authorize?${new URLSearchParams(params)}`));
  await expect(suite.page.locator('h1').innerText()).resolves.toBe(
    `app ${markup} wants to use your tunnelbyte account`,
  );
  await expect(suite.page.locator('input[name="state"]').inputValue()).resolves.toBe(markup);
  await expect(suite.page.locator('#injected').count()).resolves.toBe(0);
});

test('4. leaving the consent page for the app sends no Referer: the request’s state stays on the broker', async () => {
  const user = await paidUser(suite.live.broker);
  const client = await registerClient(suite.live.broker, user, { redirect_uris: [REDIRECT] });
  await signedIn(user);
  await suite.page.goto(
    at(`/v1/oauth/authorize?${new URLSearchParams(authorizeParams(client.client_id, pkce().challenge))}`),
  );
  const arrival = new Promise<Record<string, string>>((resolve) => {
    void suite.page.route(`${REDIRECT}**`, async (route) => {
      resolve(route.request().headers());
      await route.fulfill({ status: 200, contentType: 'text/plain', body: 'app' });
    });
  });
  await suite.page.getByRole('button', { name: 'Allow' }).click();
  const headers = await arrival;
  expect(headers.referer).toBeUndefined();
});

test('5. a broker named by plain HTTP off loopback (HOST=0.0.0.0): signing in works, cookies HttpOnly and Lax', async () => {
  // A name that is not loopback to the browser, resolved to 127.0.0.1 by chromium alone.
  const name = 'tunnelbyte.test';
  const lan = await listenBroker({}, name);
  const lanBrowser = await launchChromium([`--host-resolver-rules=MAP ${name} 127.0.0.1`]);
  try {
    const user = await paidUser(lan.broker);
    const lanPage = await (await lanBrowser.newContext()).newPage();
    lanPage.setDefaultTimeout(10_000);
    await lanPage.goto(new URL('/account', lan.url).href);
    await fillSignIn(lanPage, user.email, PASSWORD);
    await lanPage.waitForURL(`${lan.url}/account`);
    await expect(lanPage.locator('h1').innerText()).resolves.toBe('Your account');
    const cookies = await lanPage.context().cookies();
    const session = cookies.find((c) => c.name === 'tb_session');
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Lax', secure: false, path: '/' });
  } finally {
    await lanBrowser.close();
    await lan.close();
  }
});

test('6. a browser where no page is, a method a page does not take, a huge form: each a page; the API stays JSON', async () => {
  const { page } = suite;
  for (const [path, status, title] of [
    ['/logout', 405, 'Method not allowed'],
    ['/account/keys/key_x/revoke', 405, 'Method not allowed'],
    ['/account/settings', 404, 'Page not found'],
    ['/nothing-here', 404, 'Page not found'],
  ] as const) {
    const answer = await page.goto(at(path));
    expect([path, answer!.status(), await page.locator('h1').innerText()]).toEqual([path, status, title]);
    expect(answer!.headers()['content-security-policy']).toContain("frame-ancestors 'none'");
  }
  const put = await api().put('/login').type('form').send({ csrf: 'x' });
  expect([put.status, put.headers.allow, put.headers['content-type']]).toEqual([
    405,
    'GET, HEAD, POST',
    'text/html; charset=utf-8',
  ]);
  // A body past the 64 KiB limit is refused with a page, not a trace.
  const huge = await api()
    .post('/login')
    .type('form')
    .send(`email=${'x'.repeat(100_000)}`);
  expect([huge.status, huge.headers['content-type']]).toEqual([413, 'text/html; charset=utf-8']);
  expect(huge.text).toContain('The request body is larger than 64 KiB.');
  expect(huge.text).not.toMatch(/\bat \S+ \(/);
  // Clients of the API ask for JSON (or anything) and get the contract's error, as under /v1/ always.
  for (const [path, accept] of [
    ['/nothing-here', '*/*'],
    ['/nothing-here', 'application/json'],
    ['/v1/nothing-here', 'text/html'],
  ]) {
    const res = await api().get(path!).set('Accept', accept!);
    expect([path, accept, res.status, res.body.error]).toEqual([path, accept, 404, 'not_found']);
  }
});

test('7. an app named like tunnelbyte’s own CLI is shown as a user’s app with its host; the real CLI is not', async () => {
  const { page } = suite;
  const user = await paidUser(suite.live.broker);
  const impostor = await registerClient(suite.live.broker, user, {
    client_name: 'tunnelbyte CLI',
    redirect_uris: ['https://login.evil.example/callback'],
  });
  await signedIn(user);
  const consent = (clientId: string, redirect: string) =>
    page.goto(
      at(
        `/v1/oauth/authorize?${new URLSearchParams({ ...authorizeParams(clientId, pkce().challenge), redirect_uri: redirect })}`,
      ),
    );
  await consent(impostor.client_id, 'https://login.evil.example/callback');
  const card = page.locator('main');
  await expect(card.innerText()).resolves.toContain('login.evil.example');
  await expect(card.innerText()).resolves.toContain('Made by a tunnelbyte user, not by tunnelbyte.');

  await consent('tunnelbyte-cli', 'http://127.0.0.1:41234/callback');
  await expect(page.locator('h1').innerText()).resolves.toBe(
    'tunnelbyte CLI wants to use your tunnelbyte account',
  );
  await expect(card.innerText()).resolves.not.toContain('not by tunnelbyte');
  await expect(card.innerText()).resolves.toContain('127.0.0.1:41234');
});
