// Changing the password (POST /v1/billing/checkout with current_password) ends every other sign-in of
// the account, as GitHub and Stripe do: the pages' session cookies, the tokens password login and
// signup gave, and the grants of the built-in CLI client (`tunnelbyte login --web`: its access and
// refresh tokens). The sign-in that made the change keeps working. API keys, whoever made them, and the
// tokens of third-party apps the user authorized stay, as GitHub keeps personal access tokens and OAuth
// apps: the user revokes those by name. Everything over HTTP on a real Redis.
import request from 'supertest';
import { getAccount, listKeys } from '../../src/broker/services/accounts.js';
import { endSignInGrants } from '../../src/broker/services/oauth-grants.js';
import { issueSignIn } from '../../src/broker/services/signin.js';
import { startWebSession } from '../../src/broker/services/websessions.js';
import { keys } from '../../src/broker/store/keys.js';
import { startBroker, type TestBroker } from './helpers.js';
import {
  authorize,
  authorizeQuery,
  bearer,
  cookieHeader,
  cookieJar,
  csrfOf,
  PASSWORD,
  paidUser,
  pkce,
  registerClient,
  signIn,
  token,
  type Client,
  type User,
} from './oauth/flow.js';

const NEW_PASSWORD = 'a brand new passphrase';
let broker: TestBroker;

beforeAll(async () => {
  broker = await startBroker({
    env: {
      PUBLIC_BURST: '1000000',
      STRIPE_PAYMENT_LINK: 'https://buy.stripe.com/test_password_change',
      TB_TIERS: JSON.stringify({ pro: { requestsPerMinute: 1000000 } }),
    },
  });
});
afterAll(async () => broker.close());

const api = () => request(broker.app);
const works = async (tokenValue: string) => (await api().get('/v1/auth/user').set(bearer(tokenValue))).status;

const CLI: Client = { client_id: 'tunnelbyte-cli', redirect_uris: ['http://127.0.0.1:49152/callback'] };

/** POST /v1/auth/login: a sign-in token. */
async function login(user: User, password = PASSWORD): Promise<string> {
  const res = await api().post('/v1/auth/login').send({ email: user.email, password });
  expect(res.status).toBe(200);
  return res.body.api_key as string;
}

/** The OAuth code flow for `client` through a fresh browser sign-in: its access and refresh tokens. */
async function grant(
  user: User,
  client: Client,
  scope: string,
): Promise<{ access: string; refresh: string }> {
  const jar = await signIn(broker, user);
  const { verifier, challenge } = pkce();
  const redirect = await authorize(
    broker,
    jar,
    authorizeQuery(client, { scope, code_challenge: challenge, code_challenge_method: 'S256' }),
  );
  const method = client.client_secret ? 'client_secret_basic' : 'none';
  const res = await token(
    broker,
    client,
    {
      grant_type: 'authorization_code',
      code: redirect.searchParams.get('code')!,
      redirect_uri: client.redirect_uris[0]!,
      code_verifier: verifier,
    },
    method,
  );
  expect(res.status).toBe(200);
  return { access: res.body.access_token as string, refresh: res.body.refresh_token as string };
}

const refreshes = async (client: Client, refreshToken: string) =>
  (
    await token(
      broker,
      client,
      { grant_type: 'refresh_token', refresh_token: refreshToken },
      client.client_secret ? 'client_secret_basic' : 'none',
    )
  ).status;

const accountPage = async (jar: Record<string, string>) =>
  (await api().get('/account').set('Cookie', cookieHeader(jar))).status;

async function makeKey(creator: string, name: string): Promise<string> {
  const res = await api()
    .post('/v1/auth/keys')
    .set(bearer(creator))
    .send({ name, permissions: ['account:read'] });
  expect(res.status).toBe(201);
  return res.body.key as string;
}

function changePassword(user: User, caller: string, password = NEW_PASSWORD, email = user.email) {
  return api()
    .post('/v1/billing/checkout')
    .set(bearer(caller))
    .send({ email, password, current_password: PASSWORD });
}

/** Every kind of sign-in and credential an account can hold, before the change. */
async function everything(user: User) {
  const app = await registerClient(broker, user);
  const cli = await grant(user, CLI, 'account:read keys:manage');
  const other = await login(user);
  const legacy = await login(user);
  // A login token from before the broker marked sign-ins: known by its name.
  const legacyId = (await api().get('/v1/auth/key').set(bearer(legacy))).body.id as string;
  await broker.redis.hdel(keys.apiKey(user.id, legacyId), 'sign_in');
  return {
    web: await signIn(broker, user),
    other,
    legacy,
    cli,
    app: await grant(user, app, 'account:read'),
    appClient: app,
    keyByLogin: await makeKey(other, 'made with a login token'),
    keyByCli: await makeKey(cli.access, 'made with the CLI'),
  };
}

test('1. from a login token: every other sign-in ends; that token, API keys and third-party apps stay', async () => {
  const user = await paidUser(broker);
  const caller = await login(user);
  const held = await everything(user);
  expect(await accountPage(held.web)).toBe(200);

  const res = await changePassword(user, caller);
  expect(res.status).toBe(200);

  const after = {
    caller: await works(caller),
    webPage: await accountPage(held.web),
    otherLogin: await works(held.other),
    legacyLogin: await works(held.legacy),
    cliAccess: await works(held.cli.access),
    cliRefresh: await refreshes(CLI, held.cli.refresh),
    appAccess: await works(held.app.access),
    appRefresh: await refreshes(held.appClient, held.app.refresh),
    apiKey: await works(user.apiKey),
    keyByLogin: await works(held.keyByLogin),
    keyByCli: await works(held.keyByCli),
  };
  expect(after).toEqual({
    caller: 200,
    webPage: 303,
    otherLogin: 401,
    legacyLogin: 401,
    cliAccess: 401,
    cliRefresh: 400,
    appAccess: 200,
    appRefresh: 200,
    apiKey: 200,
    keyByLogin: 200,
    keyByCli: 200,
  });
  // The new password signs in everywhere again; the old one nowhere.
  expect(await works(await login(user, NEW_PASSWORD))).toBe(200);
  expect((await api().post('/v1/auth/login').send({ email: user.email, password: PASSWORD })).status).toBe(
    401,
  );
  const form = await api().get('/login');
  const signedIn = await api()
    .post('/login')
    .set('Cookie', cookieHeader(cookieJar(form)))
    .type('form')
    .send({ email: user.email, password: NEW_PASSWORD, csrf: csrfOf(form.text), next: '/account' });
  expect(signedIn.status).toBe(303);
  expect(await accountPage(cookieJar(signedIn, cookieJar(form)))).toBe(200);
});

test('2. from the CLI signed in through the browser: its own grant stays, access and refresh', async () => {
  const user = await paidUser(broker);
  const caller = await grant(user, CLI, 'account:read account:write');
  const otherCli = await grant(user, CLI, 'account:read');
  const other = await login(user);
  const res = await changePassword(user, caller.access);
  expect(res.status).toBe(200);
  expect({
    caller: await works(caller.access),
    callerRefresh: await refreshes(CLI, caller.refresh),
    otherCli: await works(otherCli.access),
    otherCliRefresh: await refreshes(CLI, otherCli.refresh),
    otherLogin: await works(other),
  }).toEqual({ caller: 200, callerRefresh: 200, otherCli: 401, otherCliRefresh: 400, otherLogin: 401 });
});

test('3. changing only the email (the same password) ends no sign-in', async () => {
  const user = await paidUser(broker);
  const caller = await login(user);
  const other = await login(user);
  const web = await signIn(broker, user);
  const res = await changePassword(user, caller, PASSWORD, `moved-${user.email}`);
  expect(res.status).toBe(200);
  expect([await works(other), await accountPage(web)]).toEqual([200, 200]);
});

test('4. a refused change (wrong current_password) ends nothing', async () => {
  const user = await paidUser(broker);
  const caller = await login(user);
  const other = await login(user);
  const res = await api()
    .post('/v1/billing/checkout')
    .set(bearer(caller))
    .send({ email: user.email, password: NEW_PASSWORD, current_password: 'not the password' });
  expect(res.status).toBe(400);
  expect(await works(other)).toBe(200);
});

test('5. an authorization code a browser sign-in got before the change gives no tokens after it', async () => {
  const user = await paidUser(broker);
  const caller = await login(user);
  const app = await registerClient(broker, user);
  const codes = [];
  for (const client of [CLI, app]) {
    const jar = await signIn(broker, user);
    const { verifier, challenge } = pkce();
    const redirect = await authorize(
      broker,
      jar,
      authorizeQuery(client, {
        scope: 'account:read',
        code_challenge: challenge,
        code_challenge_method: 'S256',
      }),
    );
    codes.push({ client, code: redirect.searchParams.get('code')!, verifier });
  }
  expect((await changePassword(user, caller)).status).toBe(200);
  for (const { client, code, verifier } of codes) {
    const res = await token(
      broker,
      client,
      {
        grant_type: 'authorization_code',
        code,
        redirect_uri: client.redirect_uris[0]!,
        code_verifier: verifier,
      },
      client.client_secret ? 'client_secret_basic' : 'none',
    );
    expect([client.client_id, res.status, res.body.error]).toEqual([client.client_id, 400, 'invalid_grant']);
  }
});

// A login checks the password, then writes its token; a change landing in between ended every sign-in
// without seeing that token. The login sees the change after writing and takes its token back.
test('6. a login whose password check came before a change, and its token after, is refused', async () => {
  const user = await paidUser(broker);
  const caller = await login(user);
  const checked = (await getAccount(broker.ctx, user.id))!;
  expect((await changePassword(user, caller)).status).toBe(200);
  await expect(issueSignIn(broker.ctx, checked, null)).rejects.toMatchObject({ kind: 'unauthorized' });
  const live = await listKeys(broker.ctx, user.id);
  expect(live.filter((k) => k.signIn).map((k) => k.hint)).toEqual([caller.slice(-3)]);
});

// The same race for a browser sign-in (the sign-in page): its session record is written after the
// password check, sees the change and is taken back, so no cookie of it can work.
test('7. a browser sign-in whose password check came before a change, and its session after, is refused', async () => {
  const user = await paidUser(broker);
  const caller = await login(user);
  const checked = (await getAccount(broker.ctx, user.id))!;
  expect((await changePassword(user, caller)).status).toBe(200);
  const sessions = () => broker.ctx.redis.keys(keys.webSession('*'));
  const before = (await sessions()).length;
  await expect(startWebSession(broker.ctx, checked)).rejects.toMatchObject({ kind: 'unauthorized' });
  expect((await sessions()).length).toBe(before);
});

// A refresh racing the end of its grant (a password change ends the CLI's grants): however the two
// interleave, the access token the refresh hands out never outlives the grant. Ten rounds, each with the
// end started alongside the refresh at a different point.
test('8. a refresh racing the end of its grant never leaves a working access token', async () => {
  const user = await paidUser(broker);
  for (let round = 0; round < 10; round++) {
    const pair = await grant(user, CLI, 'account:read');
    const refresh = token(broker, CLI, { grant_type: 'refresh_token', refresh_token: pair.refresh }, 'none');
    const ended = (async () => {
      for (let turn = 0; turn < round; turn++) await broker.ctx.redis.ping();
      await endSignInGrants(broker.ctx, user.id, null);
    })();
    const [res] = await Promise.all([refresh, ended]);
    const handedOut = res.status === 200 ? (res.body.access_token as string) : undefined;
    expect({ round, works: handedOut && (await works(handedOut)) }).toEqual({
      round,
      works: handedOut && 401,
    });
  }
});
