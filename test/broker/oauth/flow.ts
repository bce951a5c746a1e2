// Shared by the OAuth suites: a paid account with a password, its browser sign-in over HTTP (the
// pages' own forms), client registration, and the authorization step up to the redirect's code.
import { createHash, randomBytes } from 'node:crypto';
import request from 'supertest';
import type { Tier } from '../../../src/broker/config.js';
import { hashPassword } from '../../../src/broker/password.js';
import { USER_SCOPES } from '../../../src/broker/scopes.js';
import { createAccount, issueKey } from '../../../src/broker/services/accounts.js';
import { keys } from '../../../src/broker/store/keys.js';
import type { TestBroker } from '../helpers.js';

export const PASSWORD = 'correct horse battery staple';

export interface User {
  id: string;
  email: string;
  /** A full-scope API key of the account. */
  apiKey: string;
}

let users = 0;
/** scrypt is slow on purpose: every test user shares one hash of PASSWORD. */
let passwordHash: Promise<string> | undefined;

export async function paidUser(broker: TestBroker, plan: Tier = 'pro'): Promise<User> {
  const account = await createAccount(broker.ctx, { plan });
  const email = `user${++users}-${account.id.slice(-6).toLowerCase()}@example.com`;
  await broker.redis.hset(keys.account(account.id), {
    email,
    password_hash: await (passwordHash ??= hashPassword(PASSWORD)),
  });
  await broker.redis.set(keys.email(email), account.id);
  const { token } = await issueKey(broker.ctx, account.id, {
    name: 'test',
    permissions: [...USER_SCOPES],
    fingerprint: null,
    expiresAt: null,
  });
  return { id: account.id, email, apiKey: token };
}

export const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/** The `name=value` pairs a response sets, for the next request's Cookie header. */
export function cookieJar(res: request.Response, jar: Record<string, string> = {}): Record<string, string> {
  const set = res.headers['set-cookie'] as unknown as string[] | undefined;
  for (const line of set ?? []) {
    const [pair] = line.split(';');
    const eq = pair!.indexOf('=');
    jar[pair!.slice(0, eq)] = pair!.slice(eq + 1);
  }
  return jar;
}
export const cookieHeader = (jar: Record<string, string>) =>
  Object.entries(jar)
    .map(([k, v]) => `${k}=${v}`)
    .join('; ');

export const csrfOf = (page: string) => /name="csrf" value="([^"]+)"/.exec(page)?.[1] ?? '';

/** Signs in through GET/POST /login; returns the cookie jar holding tb_session. */
export async function signIn(broker: TestBroker, user: User): Promise<Record<string, string>> {
  const form = await request(broker.app).get('/login');
  const jar = cookieJar(form);
  const res = await request(broker.app)
    .post('/login')
    .set('Cookie', cookieHeader(jar))
    .type('form')
    .send({ email: user.email, password: PASSWORD, csrf: csrfOf(form.text), next: '/account' });
  expect(res.status).toBe(303);
  return cookieJar(res, jar);
}

export interface Client {
  client_id: string;
  client_secret?: string;
  redirect_uris: string[];
}

export async function registerClient(
  broker: TestBroker,
  owner: User,
  fields: { redirect_uris?: string[]; token_endpoint_auth_method?: string; client_name?: string } = {},
): Promise<Client> {
  const res = await request(broker.app)
    .post('/v1/oauth/clients')
    .set(bearer(owner.apiKey))
    .send({ client_name: 'Acme Dashboard', redirect_uris: ['https://app.example/callback'], ...fields });
  expect(res.status).toBe(201);
  return res.body as Client;
}

export function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

export function authorizeQuery(client: Client, extra: Record<string, string> = {}): Record<string, string> {
  return {
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: client.redirect_uris[0]!,
    scope: 'account:read tunnels:read',
    state: 'st-123',
    ...extra,
  };
}

/** Opens the consent page signed in and presses Allow (or Deny); returns the redirect's URL. */
export async function authorize(
  broker: TestBroker,
  jar: Record<string, string>,
  query: Record<string, string>,
  decision: 'allow' | 'deny' = 'allow',
): Promise<URL> {
  const consent = await request(broker.app)
    .get('/v1/oauth/authorize')
    .query(query)
    .set('Cookie', cookieHeader(jar));
  expect(consent.status).toBe(200);
  const res = await request(broker.app)
    .post('/v1/oauth/authorize')
    .set('Cookie', cookieHeader(jar))
    .type('form')
    .send({ ...query, csrf: csrfOf(consent.text), decision });
  expect(res.status).toBe(303);
  return new URL(res.headers.location!);
}

/** POST /v1/oauth/token as the client, authenticating with `method`. */
export function token(
  broker: TestBroker,
  client: Client,
  form: Record<string, string>,
  method = 'client_secret_basic',
): request.Test {
  const req = request(broker.app).post('/v1/oauth/token').type('form');
  if (method === 'client_secret_basic') {
    const basic = Buffer.from(
      `${encodeURIComponent(client.client_id)}:${encodeURIComponent(client.client_secret ?? '')}`,
    ).toString('base64');
    return req.set('Authorization', `Basic ${basic}`).send(form);
  }
  if (method === 'client_secret_post')
    return req.send({ ...form, client_id: client.client_id, client_secret: client.client_secret ?? '' });
  return req.send({ ...form, client_id: client.client_id });
}
