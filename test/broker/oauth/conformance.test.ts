// The other side: oauth4webapi, a maintained OAuth 2.0 client, configured only from the broker's RFC
// 8414 metadata, registers a client (RFC 7591, the API key as initial access token), runs the code flow
// with PKCE (checking state and RFC 9207's iss), refreshes, calls the API, and revokes, over real HTTP.
import * as oauth from 'oauth4webapi';
import request from 'supertest';
import { authorize, bearer, paidUser, signIn } from './flow.js';
import { listenBroker, type ListeningBroker } from './listen.js';

let live: ListeningBroker;
beforeAll(async () => {
  live = await listenBroker();
});
afterAll(async () => live.close());

// Loopback over plain HTTP is the test's own choice; the library refuses it unless told.
const insecure = { [oauth.allowInsecureRequests]: true };

async function discover(): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(live.url);
  return oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
  );
}

test.each([
  ['1. confidential client (client_secret_basic)', 'client_secret_basic'],
  ['2. confidential client (client_secret_post)', 'client_secret_post'],
  ['3. public client (none)', 'none'],
])('%s: register, code + PKCE, API call, refresh, revoke', async (_name, method) => {
  const as = await discover();
  expect(as.issuer).toBe(live.url);
  const user = await paidUser(live.broker);
  const redirectUri = 'http://127.0.0.1:9/callback';

  const registered = await oauth.processDynamicClientRegistrationResponse(
    await oauth.dynamicClientRegistrationRequest(
      as,
      { client_name: 'Conformance', redirect_uris: [redirectUri], token_endpoint_auth_method: method },
      { initialAccessToken: user.apiKey, ...insecure },
    ),
  );
  const client: oauth.Client = { client_id: registered.client_id };
  const secret = registered.client_secret as string | undefined;
  const clientAuth =
    method === 'none'
      ? oauth.None()
      : method === 'client_secret_post'
        ? oauth.ClientSecretPost(secret!)
        : oauth.ClientSecretBasic(secret!);

  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const authorizationUrl = new URL(as.authorization_endpoint!);
  authorizationUrl.search = new URLSearchParams({
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: redirectUri,
    scope: 'account:read tunnels:read',
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  }).toString();

  // The person in the browser: signs in and presses Allow (the browser suites do this in chromium).
  const jar = await signIn(live.broker, user);
  const callback = await authorize(live.broker, jar, Object.fromEntries(authorizationUrl.searchParams));
  expect(callback.origin + callback.pathname).toBe(redirectUri);

  const params = oauth.validateAuthResponse(as, client, callback, state);
  const tokens = await oauth.processAuthorizationCodeResponse(
    as,
    client,
    await oauth.authorizationCodeGrantRequest(
      as,
      client,
      clientAuth,
      params,
      redirectUri,
      verifier,
      insecure,
    ),
  );
  expect(tokens).toMatchObject({
    token_type: 'bearer',
    expires_in: 3600,
    scope: 'account:read tunnels:read',
  });

  const me = await request(live.broker.app).get('/v1/auth/user').set(bearer(tokens.access_token));
  expect([me.status, me.body.id]).toEqual([200, user.id]);

  const refreshed = await oauth.processRefreshTokenResponse(
    as,
    client,
    await oauth.refreshTokenGrantRequest(as, client, clientAuth, tokens.refresh_token!, insecure),
  );
  expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
  expect(
    (await request(live.broker.app).get('/v1/auth/user').set(bearer(refreshed.access_token))).status,
  ).toBe(200);

  await oauth.processRevocationResponse(
    await oauth.revocationRequest(as, client, clientAuth, refreshed.refresh_token!, insecure),
  );
  expect(
    (await request(live.broker.app).get('/v1/auth/user').set(bearer(refreshed.access_token))).status,
  ).toBe(401);
  // The library reads the RFC 6749 error of a refresh after revocation.
  await expect(
    oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(as, client, clientAuth, refreshed.refresh_token!, insecure),
    ),
  ).rejects.toMatchObject({ error: 'invalid_grant' });
});
