// The OAuth 2.0 authorization server against RFC 6749, 7636, 7009, 8414, 9207 and 9700, over HTTP on a
// real Redis: every success path and every failure the issue lists, each as a numbered case.
import request from 'supertest';
import { findByToken, issueKey } from '../../../src/broker/services/accounts.js';
import { revokeGrant, revokeIfGrantEnded } from '../../../src/broker/services/oauth-grants.js';
import { keys } from '../../../src/broker/store/keys.js';
import { startBroker, type TestBroker } from '../helpers.js';
import {
  authorize,
  authorizeQuery,
  bearer,
  cookieHeader,
  csrfOf,
  paidUser,
  pkce,
  registerClient,
  signIn,
  token,
  type Client,
  type User,
} from './flow.js';

const ISSUER = 'https://tb.example';
let now = Date.parse('2026-03-01T00:00:00Z');
let broker: TestBroker;

beforeAll(async () => {
  broker = await startBroker({
    clock: () => now,
    env: {
      TB_PUBLIC_URL: `${ISSUER}/`,
      PUBLIC_BURST: '1000000',
      TB_TIERS: JSON.stringify({ pro: { requestsPerMinute: 1000000 } }),
    },
  });
});
afterAll(async () => broker.close());

const api = () => request(broker.app);

/** A user signed in, a confidential client, and a code for it (with PKCE). */
async function codeFor(
  options: { method?: string; scope?: string; withPkce?: boolean } = {},
): Promise<{ user: User; client: Client; code: string; verifier: string; jar: Record<string, string> }> {
  const user = await paidUser(broker);
  const client = await registerClient(broker, user, {
    token_endpoint_auth_method: options.method ?? 'client_secret_basic',
  });
  const jar = await signIn(broker, user);
  const { verifier, challenge } = pkce();
  const pkceParams: Record<string, string> =
    options.withPkce === false ? {} : { code_challenge: challenge, code_challenge_method: 'S256' };
  const redirect = await authorize(
    broker,
    jar,
    authorizeQuery(client, { ...pkceParams, ...(options.scope ? { scope: options.scope } : {}) }),
  );
  return { user, client, code: redirect.searchParams.get('code')!, verifier, jar };
}

const exchange = (client: Client, code: string, verifier: string | undefined, method?: string) =>
  token(
    broker,
    client,
    {
      grant_type: 'authorization_code',
      code,
      redirect_uri: client.redirect_uris[0]!,
      ...(verifier === undefined ? {} : { code_verifier: verifier }),
    },
    method,
  );

const refresh = (client: Client, refreshToken: string, extra: Record<string, string> = {}) =>
  token(broker, client, { grant_type: 'refresh_token', refresh_token: refreshToken, ...extra });

const invalidGrant = { error: 'invalid_grant', error_description: expect.any(String) };

describe('metadata (RFC 8414)', () => {
  test('1. every endpoint from TB_PUBLIC_URL; code + S256 only; iss in responses', async () => {
    const res = await api().get('/.well-known/oauth-authorization-server');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      issuer: ISSUER,
      authorization_endpoint: `${ISSUER}/v1/oauth/authorize`,
      token_endpoint: `${ISSUER}/v1/oauth/token`,
      revocation_endpoint: `${ISSUER}/v1/oauth/revoke`,
      response_types_supported: ['code'],
      grant_types_supported: ['authorization_code', 'refresh_token'],
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
      authorization_response_iss_parameter_supported: true,
    });
    expect(res.body.scopes_supported).not.toContain('admin:write');
  });
});

describe('client registration', () => {
  test('1. 201 with the secret once, stored only as a hash; listed without it', async () => {
    const user = await paidUser(broker);
    const res = await api()
      .post('/v1/oauth/clients')
      .set(bearer(user.apiKey))
      .send({ client_name: 'Acme', redirect_uris: ['https://app.example/cb', 'http://127.0.0.1/cb'] });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      client_id: expect.stringMatching(/^app_[0-9A-Za-z]{20}$/),
      client_secret: expect.stringMatching(/^tbcs_[0-9A-Za-z]{38}$/),
      client_secret_expires_at: 0,
      client_name: 'Acme',
      redirect_uris: ['https://app.example/cb', 'http://127.0.0.1/cb'],
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      client_id_issued_at: Math.floor(now / 1000),
    });
    // It carries a secret: no cache may keep it.
    expect(res.headers['cache-control']).toBe('no-store');
    const stored = JSON.stringify(await broker.redis.hgetall(keys.oauthClient(res.body.client_id)));
    expect(stored).not.toContain(res.body.client_secret);
    const list = await api().get('/v1/oauth/clients').set(bearer(user.apiKey));
    expect(list.body.clients).toEqual([expect.not.objectContaining({ client_secret: expect.anything() })]);
    expect(list.body.clients[0].client_id).toBe(res.body.client_id);
  });

  test('2. a public client gets no secret', async () => {
    const client = await registerClient(broker, await paidUser(broker), {
      token_endpoint_auth_method: 'none',
    });
    expect(client.client_secret).toBeUndefined();
  });

  test.each([
    ['1. http on a public host', 'http://app.example/cb'],
    ['2. a fragment', 'https://app.example/cb#x'],
    ['3. not a URL', 'app.example/cb'],
    ['4. credentials in it', 'https://me:pw@app.example/cb'],
    ['5. a script scheme', 'javascript:alert(1)'],
  ])('3.%s: refused with 400 invalid_request', async (_name, uri) => {
    const user = await paidUser(broker);
    const res = await api()
      .post('/v1/oauth/clients')
      .set(bearer(user.apiKey))
      .send({ client_name: 'Bad', redirect_uris: [uri] });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_request', field: 'redirect_uris.0' });
  });

  test('4. a client of another user: not listed, not deletable (404), its owner still has it', async () => {
    const owner = await paidUser(broker);
    const other = await paidUser(broker);
    const client = await registerClient(broker, owner);
    const del = await api().delete(`/v1/oauth/clients/${client.client_id}`).set(bearer(other.apiKey));
    expect(del.status).toBe(404);
    expect((await api().get('/v1/oauth/clients').set(bearer(other.apiKey))).body.clients).toEqual([]);
    expect((await api().get('/v1/oauth/clients').set(bearer(owner.apiKey))).body.clients).toHaveLength(1);
  });

  test('5. deleting a client ends every token given to it', async () => {
    const { user, client, code, verifier } = await codeFor();
    const tokens = (await exchange(client, code, verifier)).body;
    const del = await api().delete(`/v1/oauth/clients/${client.client_id}`).set(bearer(user.apiKey));
    expect(del.status).toBe(204);
    expect((await api().get('/v1/auth/user').set(bearer(tokens.access_token))).status).toBe(401);
    expect((await refresh(client, tokens.refresh_token)).body.error).toBe('invalid_client');
  });
});

describe('authorization endpoint', () => {
  test('1. signed out: 303 to the sign-in page, which comes back to the same request', async () => {
    const client = await registerClient(broker, await paidUser(broker));
    // Every spelling Express routes here (any case, a trailing slash) comes back to the page.
    for (const path of ['/v1/oauth/authorize', '/v1/oauth/authorize/', '/V1/OAuth/Authorize']) {
      const res = await api().get(path).query(authorizeQuery(client));
      expect([path, res.status]).toEqual([path, 303]);
      const next = new URL(res.headers.location!, ISSUER).searchParams.get('next')!;
      expect([path, next.split('?')[0]]).toEqual([path, '/v1/oauth/authorize']);
      expect(new URLSearchParams(next.split('?')[1]).get('client_id')).toBe(client.client_id);
    }
  });

  test('2. the consent page names the app and each scope in words, with a strict CSP and no script', async () => {
    const user = await paidUser(broker);
    const client = await registerClient(broker, user, { client_name: 'Acme <b>Dash</b>' });
    const jar = await signIn(broker, user);
    const res = await api()
      .get('/v1/oauth/authorize')
      .query(authorizeQuery(client, { scope: 'tunnels:read tunnels:write' }))
      .set('Cookie', cookieHeader(jar));
    expect(res.status).toBe(200);
    expect(res.text).toContain('Acme &lt;b&gt;Dash&lt;/b&gt;');
    expect(res.text).toContain('Open tunnel sessions for you');
    expect(res.text).toContain('See your tunnel sessions');
    expect(res.text).not.toMatch(/<script/i);
    expect(res.headers['content-security-policy']).toBe(
      "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' https://app.example; frame-ancestors 'none'; base-uri 'none'",
    );
    expect(res.headers['x-frame-options']).toBe('DENY');
  });

  test.each([
    ['1. unknown client', { client_id: 'app_00000000000000000000' }, 'not registered'],
    [
      '2. redirect URI differing by one character',
      { redirect_uri: 'https://app.example/callbacK' },
      'not registered',
    ],
    [
      '3. redirect URI with an extra slash',
      { redirect_uri: 'https://app.example/callback/' },
      'not registered',
    ],
    ['4. no redirect URI', { redirect_uri: '' }, 'not registered'],
  ])('3.%s: shown on the page, never redirected', async (_name, change, words) => {
    const client = await registerClient(broker, await paidUser(broker));
    const res = await api()
      .get('/v1/oauth/authorize')
      .query({ ...authorizeQuery(client), ...change });
    expect(res.status).toBe(400);
    expect(res.headers.location).toBeUndefined();
    expect(res.text).toContain(words);
  });

  test.each([
    ['1. response_type=token (implicit)', { response_type: 'token' }, 'unsupported_response_type', 'none'],
    ['2. public client without PKCE', {}, 'invalid_request', 'none'],
    [
      '3. plain PKCE',
      { code_challenge: 'x'.repeat(43), code_challenge_method: 'plain' },
      'invalid_request',
      'none',
    ],
    [
      '4. a scope the user cannot hold',
      { scope: 'tunnels:read admin:write' },
      'invalid_scope',
      'client_secret_basic',
    ],
    ['5. an unknown scope', { scope: 'tunnels:fly' }, 'invalid_scope', 'client_secret_basic'],
    ['6. no scope', { scope: '' }, 'invalid_scope', 'client_secret_basic'],
  ])('4.%s: redirected with error, state and iss', async (_name, change, error, method) => {
    const client = await registerClient(broker, await paidUser(broker), {
      token_endpoint_auth_method: method,
    });
    const res = await api()
      .get('/v1/oauth/authorize')
      .query({ ...authorizeQuery(client), ...change });
    expect(res.status).toBe(303);
    const url = new URL(res.headers.location!);
    expect(url.origin + url.pathname).toBe('https://app.example/callback');
    expect(url.searchParams.get('error')).toBe(error);
    expect(url.searchParams.get('state')).toBe('st-123');
    expect(url.searchParams.get('iss')).toBe(ISSUER);
  });

  test('5. Allow: code, state and iss; Deny: access_denied', async () => {
    const user = await paidUser(broker);
    const client = await registerClient(broker, user);
    const jar = await signIn(broker, user);
    const allowed = await authorize(broker, jar, authorizeQuery(client));
    expect(allowed.searchParams.get('code')).toMatch(/^tbac_/);
    expect(allowed.searchParams.get('state')).toBe('st-123');
    expect(allowed.searchParams.get('iss')).toBe(ISSUER);
    const denied = await authorize(broker, jar, authorizeQuery(client), 'deny');
    expect(denied.searchParams.get('error')).toBe('access_denied');
    expect(denied.searchParams.get('code')).toBeNull();
  });

  test('6. the consent form without the CSRF token, or from another site, is refused', async () => {
    const user = await paidUser(broker);
    const client = await registerClient(broker, user);
    const jar = await signIn(broker, user);
    const query = authorizeQuery(client);
    const page = await api().get('/v1/oauth/authorize').query(query).set('Cookie', cookieHeader(jar));
    const post = (fields: Record<string, string>, headers: Record<string, string> = {}) =>
      api()
        .post('/v1/oauth/authorize')
        .set('Cookie', cookieHeader(jar))
        .set(headers)
        .type('form')
        .send(fields);
    expect((await post({ ...query, decision: 'allow' })).status).toBe(403);
    expect((await post({ ...query, decision: 'allow', csrf: 'x'.repeat(32) })).status).toBe(403);
    const csrf = csrfOf(page.text);
    expect(
      (await post({ ...query, decision: 'allow', csrf }, { Origin: 'https://evil.example' })).status,
    ).toBe(403);
    expect(
      (await post({ ...query, decision: 'allow', csrf }, { 'Sec-Fetch-Site': 'cross-site' })).status,
    ).toBe(403);
    expect((await post({ ...query, decision: 'allow', csrf })).status).toBe(303);
  });

  test('7. a free account sees why and can only deny; a forged Allow is a denial', async () => {
    const user = await paidUser(broker, 'free');
    const client = await registerClient(broker, await paidUser(broker));
    const jar = await signIn(broker, user);
    const page = await api()
      .get('/v1/oauth/authorize')
      .query(authorizeQuery(client))
      .set('Cookie', cookieHeader(jar));
    expect(page.text).toContain('paid accounts only');
    expect(page.text).not.toContain('value="allow"');
    const redirect = await authorize(broker, jar, authorizeQuery(client), 'allow');
    expect(redirect.searchParams.get('error')).toBe('access_denied');
  });

  test('8. the built-in CLI client: a loopback IP redirect on any port; not another path or host', async () => {
    const user = await paidUser(broker);
    const jar = await signIn(broker, user);
    const { challenge } = pkce();
    const base = {
      response_type: 'code',
      client_id: 'tunnelbyte-cli',
      scope: 'tunnels:read',
      code_challenge: challenge,
      code_challenge_method: 'S256',
    };
    const ok = await api()
      .get('/v1/oauth/authorize')
      .query({ ...base, redirect_uri: 'http://127.0.0.1:49152/callback' })
      .set('Cookie', cookieHeader(jar));
    expect(ok.status).toBe(200);
    for (const uri of [
      'http://127.0.0.1:49152/other',
      'http://localhost:49152/callback',
      'http://127.0.0.2:1/callback',
      // Not a URL at all (no such port): shown on the page like any unregistered address, not a 500.
      'http://127.0.0.1:99999/callback',
    ]) {
      const res = await api()
        .get('/v1/oauth/authorize')
        .query({ ...base, redirect_uri: uri })
        .set('Cookie', cookieHeader(jar));
      expect([uri, res.status]).toEqual([uri, 400]);
    }
  });
});

describe('token endpoint: authorization_code', () => {
  test('1. code + PKCE → tokens; the access token is a tb_ key with the consented scopes, for an hour', async () => {
    const { user, client, code, verifier } = await codeFor({ scope: 'account:read' });
    const res = await exchange(client, code, verifier);
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toEqual({
      access_token: expect.stringMatching(/^tb_[0-9A-Za-z]{38}$/),
      token_type: 'Bearer',
      expires_in: 3600,
      refresh_token: expect.stringMatching(/^tbr_[0-9A-Za-z]{38}$/),
      scope: 'account:read',
    });
    const me = await api().get('/v1/auth/user').set(bearer(res.body.access_token));
    expect(me.status).toBe(200);
    expect(me.body.id).toBe(user.id);
    const sessions = await api().get('/v1/sessions').set(bearer(res.body.access_token));
    expect(sessions.status).toBe(403);
    expect(sessions.body.required_scope).toBe('tunnels:read');
    // Not an API key: it is listed with its app, not under keys.
    const listed = await api().get('/v1/auth/keys').set(bearer(user.apiKey));
    expect(listed.body.keys).toHaveLength(1);
    const stored = JSON.stringify(await broker.redis.keys('*'));
    expect(stored).not.toContain(res.body.access_token);
    expect(stored).not.toContain(res.body.refresh_token);
    expect(stored).not.toContain(code);
    now += 3600 * 1000;
    expect((await api().get('/v1/auth/user').set(bearer(res.body.access_token))).status).toBe(401);
  });

  test('2. wrong verifier → invalid_grant', async () => {
    const { client, code } = await codeFor();
    const res = await exchange(client, code, pkce().verifier);
    expect([res.status, res.body]).toEqual([400, invalidGrant]);
  });

  test('3. missing verifier after a challenge → invalid_grant', async () => {
    const { client, code } = await codeFor();
    const res = await exchange(client, code, undefined);
    expect([res.status, res.body.error]).toEqual([400, 'invalid_grant']);
    expect(res.body.error_description).toContain('code_verifier is required');
  });

  test('4. a verifier without a challenge → invalid_grant; a confidential client without PKCE works', async () => {
    const first = await codeFor({ withPkce: false });
    expect((await exchange(first.client, first.code, pkce().verifier)).body.error).toBe('invalid_grant');
    const second = await codeFor({ withPkce: false });
    expect((await exchange(second.client, second.code, undefined)).status).toBe(200);
  });

  test('5. redirect_uri differing by one character → invalid_grant', async () => {
    const { client, code, verifier } = await codeFor();
    const res = await token(broker, client, {
      grant_type: 'authorization_code',
      code,
      code_verifier: verifier,
      redirect_uri: 'https://app.example/callbacK',
    });
    expect(res.body.error).toBe('invalid_grant');
  });

  test('6. a reused code → invalid_grant, and what it issued is revoked', async () => {
    const { client, code, verifier } = await codeFor();
    const first = await exchange(client, code, verifier);
    expect(first.status).toBe(200);
    const again = await exchange(client, code, verifier);
    expect([again.status, again.body.error]).toEqual([400, 'invalid_grant']);
    expect((await api().get('/v1/auth/user').set(bearer(first.body.access_token))).status).toBe(401);
    expect((await refresh(client, first.body.refresh_token)).body.error).toBe('invalid_grant');
  });

  test('7. an expired code (past 60 s) → invalid_grant', async () => {
    const { client, code, verifier } = await codeFor();
    now += 61_000;
    expect((await exchange(client, code, verifier)).body.error).toBe('invalid_grant');
  });

  test('8. a code of another client → invalid_grant', async () => {
    const { user, code, verifier } = await codeFor();
    const thief = await registerClient(broker, user);
    expect((await exchange(thief, code, verifier)).body.error).toBe('invalid_grant');
  });

  test.each([
    ['1. registered basic, presents post', 'client_secret_basic', 'client_secret_post'],
    ['2. registered post, presents basic', 'client_secret_post', 'client_secret_basic'],
    ['3. registered basic, presents none', 'client_secret_basic', 'none'],
    ['4. registered none, presents post', 'none', 'client_secret_post'],
  ])('9.%s → 401 invalid_client', async (_name, registered, presented) => {
    const { client, code, verifier } = await codeFor({ method: registered });
    const res = await exchange(client, code, verifier, presented);
    expect([res.status, res.body.error]).toEqual([401, 'invalid_client']);
  });

  test('10. each method works as registered; a wrong secret → 401 with WWW-Authenticate: Basic', async () => {
    for (const method of ['client_secret_basic', 'client_secret_post', 'none']) {
      const { client, code, verifier } = await codeFor({ method });
      expect([method, (await exchange(client, code, verifier, method)).status]).toEqual([method, 200]);
    }
    const { client, code, verifier } = await codeFor();
    const res = await exchange({ ...client, client_secret: 'tbcs_wrong' }, code, verifier);
    expect([res.status, res.body.error, res.headers['www-authenticate']]).toEqual([
      401,
      'invalid_client',
      'Basic',
    ]);
  });

  test.each([
    ['1. password', { grant_type: 'password', username: 'a', password: 'b' }, 'unsupported_grant_type'],
    ['2. client_credentials', { grant_type: 'client_credentials' }, 'unsupported_grant_type'],
    ['3. implicit', { grant_type: 'implicit' }, 'unsupported_grant_type'],
    ['4. no grant_type', {}, 'invalid_request'],
  ])('11.%s → %s', async (_name, form, error) => {
    const client = await registerClient(broker, await paidUser(broker));
    expect((await token(broker, client, form as Record<string, string>)).body.error).toBe(error);
  });

  test('12. a JSON body → 400 invalid_request in RFC 6749 shape', async () => {
    const res = await api().post('/v1/oauth/token').send({ grant_type: 'authorization_code' });
    expect([res.status, res.body]).toEqual([
      400,
      { error: 'invalid_request', error_description: expect.any(String) },
    ]);
  });
});

describe('token endpoint: refresh_token', () => {
  async function tokens(scope?: string) {
    const got = await codeFor(scope ? { scope } : {});
    const res = await exchange(got.client, got.code, got.verifier);
    expect(res.status).toBe(200);
    return { ...got, tokens: res.body as { access_token: string; refresh_token: string; scope: string } };
  }

  test('1. rotation: a new pair; the previous access token stops, the new one works', async () => {
    const { client, tokens: t } = await tokens();
    const res = await refresh(client, t.refresh_token);
    expect(res.status).toBe(200);
    expect(res.body.refresh_token).not.toBe(t.refresh_token);
    expect(res.body.scope).toBe(t.scope);
    expect((await api().get('/v1/auth/user').set(bearer(res.body.access_token))).status).toBe(200);
    expect((await api().get('/v1/auth/user').set(bearer(t.access_token))).status).toBe(401);
  });

  test('2. a rotated refresh token presented again revokes the family, its access tokens too', async () => {
    const { client, tokens: t } = await tokens();
    const second = (await refresh(client, t.refresh_token)).body;
    const third = (await refresh(client, second.refresh_token)).body;
    const reuse = await refresh(client, t.refresh_token);
    expect([reuse.status, reuse.body.error]).toEqual([400, 'invalid_grant']);
    expect((await api().get('/v1/auth/user').set(bearer(third.access_token))).status).toBe(401);
    expect((await refresh(client, third.refresh_token)).body.error).toBe('invalid_grant');
  });

  test('3. scope escalation on refresh → invalid_scope; narrowing works and stays narrow', async () => {
    const { client, tokens: t } = await tokens('account:read tunnels:read');
    const wider = await refresh(client, t.refresh_token, {
      scope: 'account:read tunnels:read tunnels:write',
    });
    expect(wider.body.error).toBe('invalid_scope');
    const { tokens: u, client: c2 } = await tokens('account:read tunnels:read');
    const narrow = await refresh(c2, u.refresh_token, { scope: 'account:read' });
    expect(narrow.body.scope).toBe('account:read');
    expect(
      (await refresh(c2, narrow.body.refresh_token, { scope: 'account:read tunnels:read' })).body.error,
    ).toBe('invalid_scope');
  });

  test('4. another client presenting the refresh token → invalid_grant; its owner still refreshes', async () => {
    const { user, client, tokens: t } = await tokens();
    const other = await registerClient(broker, user);
    expect((await refresh(other, t.refresh_token)).body.error).toBe('invalid_grant');
    expect((await refresh(client, t.refresh_token)).status).toBe(200);
  });

  test('5. an account that went back to free gets no new tokens', async () => {
    const { user, client, tokens: t } = await tokens();
    await broker.redis.hset(keys.account(user.id), 'plan', 'free');
    expect((await refresh(client, t.refresh_token)).body.error).toBe('invalid_grant');
  });

  // A refused refresh issues nothing, so it does not spend the token: the client's corrected retry is
  // its first use, not a replay that would revoke the grant (RFC 6749 §6: the old token stays until
  // a new one is issued).
  test.each([
    [1, 'account:read tunnels:write', 'invalid_scope'],
    [2, ' ', 'invalid_scope'],
  ])(
    '6.%i: a refresh refused with scope %j (%s) leaves the token and its grant usable',
    async (_n, scope, error) => {
      const { client, tokens: t } = await tokens('account:read tunnels:read');
      expect((await refresh(client, t.refresh_token, { scope })).body.error).toBe(error);
      expect((await api().get('/v1/auth/user').set(bearer(t.access_token))).status).toBe(200);
      const retry = await refresh(client, t.refresh_token, { scope: 'account:read' });
      expect([retry.status, retry.body.scope]).toEqual([200, 'account:read']);
      expect((await api().get('/v1/auth/user').set(bearer(retry.body.access_token))).status).toBe(200);
    },
  );
});

describe('revocation and authorized apps', () => {
  test('1. RFC 7009: revoking the refresh token ends the grant; unknown tokens answer 200', async () => {
    const { client, code, verifier } = await codeFor();
    const t = (await exchange(client, code, verifier)).body;
    const basic = Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64');
    const revoke = (value: string) =>
      api()
        .post('/v1/oauth/revoke')
        .set('Authorization', `Basic ${basic}`)
        .type('form')
        .send({ token: value });
    expect((await revoke('tbr_unknown')).status).toBe(200);
    expect((await revoke(t.refresh_token)).status).toBe(200);
    expect((await api().get('/v1/auth/user').set(bearer(t.access_token))).status).toBe(401);
    expect((await refresh(client, t.refresh_token)).body.error).toBe('invalid_grant');
  });

  // RFC 7009 §2.1: the server checks that the token was issued to the client asking; for any other
  // token it answers 200 and revokes nothing (§2.2), so a client learns nothing about other tokens.
  test('2. another client cannot revoke a token it was not given; the client it was given to can', async () => {
    const { user, client, code, verifier } = await codeFor();
    const t = (await exchange(client, code, verifier)).body;
    const other = await registerClient(broker, user);
    const revokeAs = (as: Client, value: string) =>
      api()
        .post('/v1/oauth/revoke')
        .set(
          'Authorization',
          `Basic ${Buffer.from(`${as.client_id}:${as.client_secret}`).toString('base64')}`,
        )
        .type('form')
        .send({ token: value });
    expect((await revokeAs(other, t.access_token)).status).toBe(200);
    expect((await revokeAs(other, t.refresh_token)).status).toBe(200);
    // Both still work: the access token calls the API, the refresh token rotates for its own client.
    expect((await api().get('/v1/auth/user').set(bearer(t.access_token))).status).toBe(200);
    const rotated = await refresh(client, t.refresh_token);
    expect(rotated.status).toBe(200);
    const access = rotated.body.access_token as string;
    expect((await api().get('/v1/auth/user').set(bearer(access))).status).toBe(200);
    // The client the token was issued to revokes it: the access token stops at once.
    expect((await revokeAs(client, access)).status).toBe(200);
    expect((await api().get('/v1/auth/user').set(bearer(access))).status).toBe(401);
    // ...and its refresh token ends the grant.
    expect((await revokeAs(client, rotated.body.refresh_token as string)).status).toBe(200);
    expect((await refresh(client, rotated.body.refresh_token as string)).body.error).toBe('invalid_grant');
  });

  test('3. the apps a user allowed; revoking one ends its access and refresh tokens', async () => {
    const { user, client, code, verifier } = await codeFor({ scope: 'account:read tunnels:read' });
    const t = (await exchange(client, code, verifier)).body;
    await api().get('/v1/auth/user').set(bearer(t.access_token));
    const list = await api().get('/v1/oauth/authorizations').set(bearer(user.apiKey));
    expect(list.body).toEqual({
      authorizations: [
        {
          client_id: client.client_id,
          client_name: 'Acme Dashboard',
          scopes: ['account:read', 'tunnels:read'],
          granted_at: new Date(now).toISOString(),
          last_used: new Date(now).toISOString(),
        },
      ],
    });
    const del = await api().delete(`/v1/oauth/authorizations/${client.client_id}`).set(bearer(user.apiKey));
    expect(del.status).toBe(204);
    expect((await api().get('/v1/auth/user').set(bearer(t.access_token))).status).toBe(401);
    expect((await refresh(client, t.refresh_token)).body.error).toBe('invalid_grant');
    expect(
      (await api().get('/v1/oauth/authorizations').set(bearer(user.apiKey))).body.authorizations,
    ).toEqual([]);
    expect(
      (await api().delete(`/v1/oauth/authorizations/${client.client_id}`).set(bearer(user.apiKey))).status,
    ).toBe(404);
  });

  // An app holding keys:manage can make API keys with its access token (they expire with it). Ending the
  // app's access ends those too, and the keys they made in turn: the app keeps nothing. Ending one grant
  // (one device's sign-in: its logout, its refresh token replayed) ends only that grant's keys; the same
  // app's other grant on the account (another device) keeps its token and keys. Keys the user made stay.
  test.each([
    [1, 'the user revokes the authorization', 'every grant'],
    [2, 'the owner deletes the client', 'every grant'],
    [3, 'the client revokes its refresh token', 'one grant'],
    [4, 'a rotated refresh token is replayed', 'one grant'],
  ])('4.%i: keys an app made are revoked with its access when %s (%s)', async (n, _why, ended) => {
    const { user, client, code, verifier, jar } = await codeFor({ scope: 'keys:manage account:read' });
    const t = (await exchange(client, code, verifier)).body;
    const second = pkce();
    const secondCode = (
      await authorize(
        broker,
        jar,
        authorizeQuery(client, {
          code_challenge: second.challenge,
          code_challenge_method: 'S256',
          scope: 'keys:manage account:read',
        }),
      )
    ).searchParams.get('code')!;
    const other = (await exchange(client, secondCode, second.verifier)).body;
    const make = async (token: string, name: string) => {
      const res = await api()
        .post('/v1/auth/keys')
        .set(bearer(token))
        .send({ name, permissions: ['keys:manage', 'account:read'] });
      expect(res.status).toBe(201);
      return res.body.key as string;
    };
    const made = await make(t.access_token, 'made by the app');
    const madeByMade = await make(made, 'made by that key');
    const otherMade = await make(other.access_token, 'made under the other grant');
    const otherMadeByMade = await make(otherMade, 'made by that other key');
    const users = await make(user.apiKey, 'made by the user');
    if (n === 1) await api().delete(`/v1/oauth/authorizations/${client.client_id}`).set(bearer(user.apiKey));
    if (n === 2) await api().delete(`/v1/oauth/clients/${client.client_id}`).set(bearer(user.apiKey));
    if (n === 3) {
      const basic = Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64');
      await api()
        .post('/v1/oauth/revoke')
        .set('Authorization', `Basic ${basic}`)
        .type('form')
        .send({ token: t.refresh_token });
    }
    if (n === 4) {
      expect((await refresh(client, t.refresh_token)).status).toBe(200);
      expect((await refresh(client, t.refresh_token)).body.error).toBe('invalid_grant');
    }
    const status = async (key: string) => (await api().get('/v1/auth/user').set(bearer(key))).status;
    for (const key of [made, madeByMade]) expect(await status(key)).toBe(401);
    const otherStatus = ended === 'every grant' ? 401 : 200;
    for (const key of [other.access_token, otherMade, otherMadeByMade])
      expect(await status(key)).toBe(otherStatus);
    expect(await status(users)).toBe(200);
    const listed = await api().get('/v1/auth/keys').set(bearer(user.apiKey));
    const names = listed.body.keys.map((k: { name: string }) => k.name);
    expect(names).not.toContain('made by the app');
    expect(names.includes('made under the other grant')).toBe(ended === 'one grant');
  });

  // The race of a key made while its grant ends: POST /v1/auth/keys passed authentication with the access
  // token, then the grant was revoked and its keys listed, then the new key is written. The route checks
  // the grant after writing (revokeIfGrantEnded); here the two orders, run as the route runs them.
  test('5. a key written under a grant that ended after its creator authenticated is revoked', async () => {
    const { client, code, verifier } = await codeFor({ scope: 'keys:manage account:read' });
    const t = (await exchange(client, code, verifier)).body;
    const creator = (await findByToken(broker.ctx, t.access_token))!.key;
    expect(creator.grant).toMatch(/^grt_/);
    const makeAsTheRouteDoes = () =>
      issueKey(broker.ctx, creator.accountId, {
        name: 'made in the race',
        permissions: ['account:read'],
        fingerprint: null,
        expiresAt: creator.expiresAt,
        madeBy: creator.client,
        grant: creator.grant,
      });
    const before = await makeAsTheRouteDoes();
    expect(await revokeIfGrantEnded(broker.ctx, before.key)).toBe(false);
    expect((await api().get('/v1/auth/user').set(bearer(before.token))).status).toBe(200);
    await revokeGrant(broker.ctx, creator.accountId, creator.grant!);
    expect((await api().get('/v1/auth/user').set(bearer(before.token))).status).toBe(401);
    const after = await makeAsTheRouteDoes();
    expect(await revokeIfGrantEnded(broker.ctx, after.key)).toBe(true);
    expect((await api().get('/v1/auth/user').set(bearer(after.token))).status).toBe(401);
  });
});

describe('request format', () => {
  test('1. a JSON or broken body answers in RFC 6749 §5.2 shape, at every spelling Express routes', async () => {
    for (const path of ['/v1/oauth/token', '/v1/oauth/revoke/', '/V1/OAuth/Token/']) {
      for (const body of ['{}', '{not json']) {
        const res = await api().post(path).set('Content-Type', 'application/json').send(body);
        expect({ path, body, status: res.status }).toEqual({ path, body, status: 400 });
        expect(res.body).toEqual({ error: 'invalid_request', error_description: expect.any(String) });
      }
    }
  });
});
