// The sign-in, consent and account pages in Debian's chromium (playwright-core), against a broker on a
// real loopback port: the whole OAuth code flow as a person does it, Deny, the account page with a
// session made through the API (and closed from the page), and a cross-site form post refused.
// Screenshots of the consent and account pages at desktop and phone widths go to test-output/.
import request from 'supertest';
import nacl from 'tweetnacl';
import { createNodeToken } from '../../../src/broker/services/enrollment.js';
import { upsertRegion } from '../../../src/broker/services/regions.js';
import { bearer, paidUser, PASSWORD, pkce, registerClient, token, type User } from './flow.js';
import { browserSuite, fillSignIn, outputDir, screenshots } from './browser.js';

const suite = browserSuite();
const shots = outputDir('oauth-pages');
// The app's redirect target: playwright answers it, so nothing listens there and nothing leaves the host.
const REDIRECT = 'http://127.0.0.1:9/callback';

const api = () => request(suite.live.broker.app);

/** Catches the browser's arrival at the app's redirect URI and answers it with a plain page. */
function captureRedirect(): Promise<URL> {
  return new Promise((resolve) => {
    void suite.page.route(`${REDIRECT}**`, async (route) => {
      resolve(new URL(route.request().url()));
      await route.fulfill({ status: 200, contentType: 'text/plain', body: 'back at the app' });
    });
  });
}

function authorizeUrl(clientId: string, challenge: string, scope = 'account:read tunnels:read'): string {
  const url = new URL('/v1/oauth/authorize', suite.live.url);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: REDIRECT,
    scope,
    state: 'browser-state',
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();
  return url.href;
}

async function signInAt(url: string, user: User): Promise<void> {
  await suite.page.goto(url);
  await suite.page.waitForURL(/\/login\?next=/);
  await fillSignIn(suite.page, user.email, PASSWORD);
}

test('1. register, authorize, sign in, see the scopes, Allow, exchange the code, call the API', async () => {
  const user = await paidUser(suite.live.broker);
  const client = await registerClient(suite.live.broker, user, {
    client_name: 'Acme Dashboard',
    redirect_uris: [REDIRECT],
  });
  const { verifier, challenge } = pkce();
  await signInAt(authorizeUrl(client.client_id, challenge), user);

  await suite.page.waitForURL(/\/v1\/oauth\/authorize\?/);
  await suite.page
    .getByRole('heading', { name: /Acme Dashboard wants to use your tunnelbyte account/ })
    .waitFor();
  const scopes = await suite.page.locator('.scopes li').allInnerTexts();
  expect(scopes.map((s) => s.replace(/\s+/g, ' ').trim())).toEqual([
    'account:read See your account: email, plan and usage totals',
    'tunnels:read See your tunnel sessions',
  ]);
  // The stylesheet is served and applied (a real product's page, not raw HTML).
  type Styled = { getComputedStyle(e: unknown): { backgroundColor: string } };
  const primary = await suite.page
    .getByRole('button', { name: 'Allow' })
    .evaluate((b) => (globalThis as unknown as Styled).getComputedStyle(b).backgroundColor);
  expect(primary).toBe('rgb(53, 81, 243)');
  await screenshots(suite.page, shots, 'consent');

  const redirected = captureRedirect();
  await suite.page.getByRole('button', { name: 'Allow' }).click();
  const callback = await redirected;
  expect(callback.searchParams.get('state')).toBe('browser-state');
  expect(callback.searchParams.get('iss')).toBe(suite.live.url);

  const tokens = await token(suite.live.broker, client, {
    grant_type: 'authorization_code',
    code: callback.searchParams.get('code')!,
    redirect_uri: REDIRECT,
    code_verifier: verifier,
  });
  expect(tokens.status).toBe(200);
  const me = await api().get('/v1/auth/user').set(bearer(tokens.body.access_token));
  expect([me.status, me.body.email]).toEqual([200, user.email]);
});

test('2. Deny sends the browser back with access_denied and no code', async () => {
  const user = await paidUser(suite.live.broker);
  const client = await registerClient(suite.live.broker, user, { redirect_uris: [REDIRECT] });
  await signInAt(authorizeUrl(client.client_id, pkce().challenge), user);
  const redirected = captureRedirect();
  await suite.page.getByRole('button', { name: 'Deny' }).click();
  const callback = await redirected;
  expect(callback.searchParams.get('error')).toBe('access_denied');
  expect(callback.searchParams.get('state')).toBe('browser-state');
  expect(callback.searchParams.has('code')).toBe(false);
});

/** A region with one registered node, and a session of the user on it with some traffic reported. */
let egressCount = 0;

async function sessionWithTraffic(user: User): Promise<string> {
  const ctx = suite.live.broker.ctx;
  await upsertRegion(ctx, {
    id: 'eu-west',
    name: 'Frankfurt',
    country: 'DE',
    tiers: ['free', 'pro', 'business'],
  });
  const { token: nodeToken } = await createNodeToken(ctx, 'eu-west');
  const nodeKey = Buffer.from(nacl.box.keyPair().publicKey).toString('base64');
  const registered = await api()
    .post('/v1/nodes/register')
    .set(bearer(nodeToken))
    .send({
      region: 'eu-west',
      endpoint: '198.51.100.7:51820',
      public_key: nodeKey,
      // Each call's node is live: it needs an egress IP no other live node holds.
      egress_ips: [`203.0.113.${++egressCount}`],
      capacity: 10,
      version: '0.1.0',
    });
  expect(registered.status).toBe(200);
  const clientKey = Buffer.from(nacl.box.keyPair().publicKey).toString('base64');
  const created = await api()
    .post('/v1/sessions')
    .set(bearer(user.apiKey))
    .send({ region: 'eu-west', public_key: clientKey });
  expect(created.status).toBe(201);
  const beat = await api()
    .post(`/v1/nodes/${registered.body.node_id}/heartbeat`)
    .set(bearer(nodeToken))
    .send({
      load: 0.1,
      draining: false,
      peers: [
        {
          public_key: clientKey,
          rx_bytes: 3 * 1024 ** 2,
          tx_bytes: 5 * 1024 ** 2,
          last_handshake_at: new Date().toISOString(),
        },
      ],
    });
  expect(beat.status).toBe(200);
  return created.body.id as string;
}

test('3. the account page shows a session made through the API and today’s traffic; Close ends it', async () => {
  const user = await paidUser(suite.live.broker);
  const sessionId = await sessionWithTraffic(user);
  await signInAt(new URL('/account', suite.live.url).href, user);
  await suite.page.waitForURL(/\/account$/);

  const row = suite.page.locator('tr', { hasText: 'eu-west' });
  await expect(row.innerText()).resolves.toContain('8.00 MiB');
  const today = new Date().toISOString().slice(0, 10);
  const bars = await suite.page.locator('svg.chart rect.bar title').allTextContents();
  expect(bars).toContain(`${today}: 8.00 MiB`);
  await expect(suite.page.locator('table', { hasText: 'Key' }).innerText()).resolves.toContain('tb_***…');
  await screenshots(suite.page, shots, 'account');

  await row.getByRole('button', { name: 'Close' }).click();
  await suite.page.waitForURL(/\/account\?notice=session-closed$/);
  await expect(suite.page.getByRole('status').innerText()).resolves.toBe('The session is closed.');
  await expect(suite.page.locator('tr', { hasText: 'eu-west' }).count()).resolves.toBe(0);
  const closed = await api().get(`/v1/sessions/${sessionId}`).set(bearer(user.apiKey));
  expect(closed.body.status).toBe('closed');
});

test('4. a form posted from another site is refused and changes nothing', async () => {
  const user = await paidUser(suite.live.broker);
  const sessionId = await sessionWithTraffic(user);
  await signInAt(new URL('/account', suite.live.url).href, user);
  await suite.page.waitForURL(/\/account$/);

  // The attacker's page, on another origin, with a form aimed at the account page's Close button.
  const attacker = 'http://attacker.invalid/';
  await suite.page.route(attacker, (route) =>
    route.fulfill({
      status: 200,
      contentType: 'text/html',
      body: `<form method="post" action="${suite.live.url}/account/sessions/${sessionId}/close"><input name="csrf" value="guess"><button>Win a prize</button></form>`,
    }),
  );
  await suite.page.goto(attacker);
  const [answer] = await Promise.all([
    suite.page.waitForResponse((r) => r.url().includes('/close')),
    suite.page.getByRole('button', { name: 'Win a prize' }).click(),
  ]);
  expect(answer.status()).toBe(403);
  await expect(suite.page.locator('h1').innerText()).resolves.toBe('Request refused');
  const still = await api().get(`/v1/sessions/${sessionId}`).set(bearer(user.apiKey));
  expect(still.body.status).not.toBe('closed');

  // Still signed in: the account page still lists the session.
  await suite.page.goto(new URL('/account', suite.live.url).href);
  await expect(suite.page.locator('tr', { hasText: 'eu-west' }).count()).resolves.toBe(1);
});

test('5. Sign out ends the session on the server: the old cookie no longer opens the account page', async () => {
  const user = await paidUser(suite.live.broker);
  await signInAt(new URL('/account', suite.live.url).href, user);
  await suite.page.waitForURL(/\/account$/);
  const [session] = (await suite.context.cookies()).filter((c) => c.name === 'tb_session');
  expect(session).toMatchObject({ httpOnly: true, sameSite: 'Lax', secure: false });
  await suite.page.getByRole('button', { name: 'Sign out' }).first().click();
  await suite.page.waitForURL(/\/login\?notice=signed-out$/);
  const replay = await api().get('/account').set('Cookie', `tb_session=${session!.value}`);
  expect([replay.status, replay.headers.location]).toEqual([303, '/login?next=%2Faccount']);
});
