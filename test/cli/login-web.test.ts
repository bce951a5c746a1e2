// `tunnelbyte login --web` (the compiled bin) against a real broker, with the browser step driven in
// Debian's chromium: the URL the CLI prints, sign-in, consent, the redirect to the CLI's loopback
// listener, the cached tokens (0600), renewal on a refused and on an expired access token, Deny,
// logout ending the refresh token, and stray requests to the listener ignored.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import request from 'supertest';
import { fillSignIn, launchChromium } from '../broker/oauth/browser.js';
import { paidUser, PASSWORD, type User } from '../broker/oauth/flow.js';
import { listenBroker, type ListeningBroker } from '../broker/oauth/listen.js';
import { cli, cliProgram, machine, type Machine } from './harness.js';

let live: ListeningBroker;
let browser: Browser;

beforeAll(async () => {
  cliProgram(); // dist/ must be current
  [live, browser] = await Promise.all([listenBroker(), launchChromium()]);
});
afterAll(async () => {
  await browser?.close();
  await live?.close();
});

interface Running {
  /** The authorization URL the CLI printed. */
  url: Promise<string>;
  done: Promise<{ code: number; stdout: string; stderr: string }>;
}

/** Starts `tunnelbyte login --web` on the machine; no browser opens (no DISPLAY, empty PATH). */
function startLogin(m: Machine): Running {
  const child = spawn(process.execPath, [cliProgram(), 'login', '--web'], {
    env: { ...m.env, PATH: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let found: (url: string) => void;
  const url = new Promise<string>((resolve) => (found = resolve));
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    const match = /(http:\/\/127\.0\.0\.1:\d+\/v1\/oauth\/authorize\?\S+)/.exec(stderr);
    if (match) found(match[1]!);
  });
  const done = new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr })),
  );
  return { url, done };
}

/** The person at the browser: opens the printed URL, signs in, and presses the button. */
async function inBrowser(url: string, user: User, button: 'Allow' | 'Deny'): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  await page.goto(url);
  await fillSignIn(page, user.email, PASSWORD);
  await page.getByRole('heading', { name: /tunnelbyte CLI wants to use your tunnelbyte account/ }).waitFor();
  await page.getByRole('button', { name: button }).click();
  await page.waitForURL(/^http:\/\/127\.0\.0\.1:\d+\/callback\?/);
  return page;
}

const mode = (path: string) => statSync(path).mode & 0o777;

test('1. sign in through the browser once; the cached token renews when refused and when expired', async () => {
  const user = await paidUser(live.broker);
  const m = machine(live.url);
  const login = startLogin(m);
  const url = new URL(await login.url);
  expect(url.searchParams.get('client_id')).toBe('tunnelbyte-cli');
  expect(url.searchParams.get('code_challenge_method')).toBe('S256');
  expect(url.searchParams.get('redirect_uri')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);

  const page = await inBrowser(url.href, user, 'Allow');
  await expect(page.locator('h1').innerText()).resolves.toBe('Signed in to tunnelbyte');
  await page.context().close();
  const result = await login.done;
  expect([result.code, result.stdout]).toEqual([
    0,
    expect.stringContaining(`Logged in as ${user.email} (pro) through the browser.`),
  ]);

  const tokenPath = join(m.configDir, 'token');
  const oauthPath = join(m.configDir, 'oauth.json');
  const first = readFileSync(tokenPath, 'utf8').trim();
  expect(first).toMatch(/^tb_[0-9A-Za-z]{38}$/);
  expect(JSON.parse(readFileSync(oauthPath, 'utf8'))).toMatchObject({
    refresh_token: expect.stringMatching(/^tbr_/),
    token_endpoint: `${live.url}/v1/oauth/token`,
  });
  expect([mode(tokenPath), mode(oauthPath)]).toEqual([0o600, 0o600]);
  expect((await cli(['auth', 'test', '--scope', 'tunnels:write'], m.env)).code).toBe(0);

  // Refused: the broker no longer takes the access token; the next command renews it and goes on.
  const revoke = await request(live.broker.app)
    .post('/v1/oauth/revoke')
    .type('form')
    .send({ token: first, client_id: 'tunnelbyte-cli' });
  expect(revoke.status).toBe(200);
  const afterRevoke = await cli(['auth', 'test'], m.env);
  expect([afterRevoke.code, afterRevoke.stderr]).toEqual([0, '']);
  const second = readFileSync(tokenPath, 'utf8').trim();
  expect(second).not.toBe(first);

  // Expired (as the cache records it): renewed before the request is sent.
  const record = JSON.parse(readFileSync(oauthPath, 'utf8'));
  writeFileSync(oauthPath, JSON.stringify({ ...record, expires_at: Date.now() - 1000 }), { mode: 0o600 });
  expect((await cli(['auth', 'test'], m.env)).code).toBe(0);
  const third = readFileSync(tokenPath, 'utf8').trim();
  expect(third).not.toBe(second);
  expect(
    (await request(live.broker.app).get('/v1/auth/user').set('Authorization', `Bearer ${second}`)).status,
  ).toBe(401);

  // Logout ends the refresh token too, and forgets both.
  const { refresh_token } = JSON.parse(readFileSync(oauthPath, 'utf8'));
  expect((await cli(['logout'], m.env)).code).toBe(0);
  expect([existsSync(tokenPath), existsSync(oauthPath)]).toEqual([false, false]);
  const reuse = await request(live.broker.app)
    .post('/v1/oauth/token')
    .type('form')
    .send({ grant_type: 'refresh_token', refresh_token, client_id: 'tunnelbyte-cli' });
  expect(reuse.body.error).toBe('invalid_grant');
});

test('2. Deny: the CLI says so in one line, exits 3 and caches nothing', async () => {
  const user = await paidUser(live.broker);
  const m = machine(live.url);
  const login = startLogin(m);
  const page = await inBrowser(await login.url, user, 'Deny');
  await expect(page.locator('h1').innerText()).resolves.toBe('Sign-in failed');
  await page.context().close();
  const result = await login.done;
  expect(result.code).toBe(3);
  expect(result.stderr).toContain('tunnelbyte: sign-in refused: you denied access\n');
  expect(existsSync(join(m.configDir, 'token'))).toBe(false);
});

test('3. stray requests to the listener are answered and ignored; the real redirect still signs in', async () => {
  const user = await paidUser(live.broker);
  const m = machine(live.url);
  const login = startLogin(m);
  const url = new URL(await login.url);
  const redirect = url.searchParams.get('redirect_uri')!;
  const at = (query: string) => `${redirect}?${new URLSearchParams(query)}`;

  // Any local process can reach the listener: a wrong or missing state is not this sign-in, even when
  // it carries a code or an OAuth error.
  for (const query of [
    'code=forged&state=wrong',
    'code=forged',
    'error=access_denied&state=wrong',
    `code=forged&state=${url.searchParams.get('state')!.slice(1)}`,
  ]) {
    const stray = await fetch(at(query));
    expect([query, stray.status, stray.headers.get('content-type')]).toEqual([
      query,
      400,
      'text/html; charset=utf-8',
    ]);
    expect(await stray.text()).toContain('This answer belongs to another sign-in.');
  }
  const elsewhere = await fetch(new URL('/favicon.ico', redirect));
  expect([elsewhere.status, await elsewhere.text()]).toEqual([404, 'not here']);

  // A stale tab from an earlier sign-in shows the error page.
  const stale = await (await browser.newContext()).newPage();
  await stale.goto(at('code=stale&state=earlier'));
  await expect(stale.locator('h1').innerText()).resolves.toBe('Not this sign-in');
  await stale.context().close();

  const page = await inBrowser(url.href, user, 'Allow');
  await expect(page.locator('h1').innerText()).resolves.toBe('Signed in to tunnelbyte');
  await page.context().close();
  const result = await login.done;
  expect([result.code, result.stdout, result.stderr]).toEqual([
    0,
    expect.stringContaining(`Logged in as ${user.email} (pro) through the browser.`),
    expect.not.stringContaining('tunnelbyte:'),
  ]);
  expect(existsSync(join(m.configDir, 'token'))).toBe(true);

  // One genuine answer, then the listener is gone.
  await expect(fetch(at(`code=again&state=${url.searchParams.get('state')}`))).rejects.toThrow();
});

test('4. the listener’s page shows an error the answer carries as text, never as markup', async () => {
  const m = machine(live.url);
  const login = startLogin(m);
  const url = new URL(await login.url);
  const answer = new URL(url.searchParams.get('redirect_uri')!);
  answer.search = new URLSearchParams({
    state: url.searchParams.get('state')!,
    iss: live.url,
    error: 'invalid_request',
    error_description: '<img src=x id=injected>',
  }).toString();
  const page = await (await browser.newContext()).newPage();
  const shown = await page.goto(answer.href);
  expect(shown!.headers()['content-security-policy']).toContain("default-src 'none'");
  await expect(page.locator('p').innerText()).resolves.toContain('invalid_request: <img src=x id=injected>');
  await expect(page.locator('#injected').count()).resolves.toBe(0);
  await page.context().close();
  expect((await login.done).code).toBe(3);
});
