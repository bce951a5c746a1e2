// Accounts and keys: every success path and every error row these endpoints can produce.
import request from 'supertest';
import { hashPassword } from '../../src/broker/password.js';
import { USER_SCOPES } from '../../src/broker/scopes.js';
import { createAccount } from '../../src/broker/services/accounts.js';
import { BACKOFF } from '../../src/broker/services/backoff.js';
import { keys } from '../../src/broker/store/keys.js';
import { hashToken, isWellFormedToken } from '../../src/broker/tokens.js';
import { redisContents, startBroker, type TestBroker } from './helpers.js';

let now = Date.parse('2026-03-01T00:00:00Z');
let broker: TestBroker;
const FP = 'a1b2c3d4e5f60718';

beforeAll(async () => {
  broker = await startBroker({
    clock: () => now,
    env: { PUBLIC_BURST: '100000', TB_TIERS: JSON.stringify({ free: { requestsPerMinute: 100000 } }) },
  });
});
afterAll(async () => broker.close());

const api = () => request(broker.app);
const as = (token: string, fingerprint: string | undefined = FP) => {
  const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
  if (fingerprint) headers['X-Machine-Fingerprint'] = fingerprint;
  return headers;
};

async function signup(fingerprint = FP): Promise<{ token: string; userId: string }> {
  const res = await api().post('/v1/auth/signup').send({ fingerprint });
  expect(res.status).toBe(201);
  return { token: res.body.api_key, userId: res.body.user.id };
}

/** A paid (or free) account with an email and password, as billing leaves it. */
async function accountWithPassword(email: string, password: string, plan: 'free' | 'pro' = 'pro') {
  const account = await createAccount(broker.ctx, { plan });
  await broker.redis.hset(keys.account(account.id), { email, password_hash: await hashPassword(password) });
  await broker.redis.set(keys.email(email), account.id);
  return account;
}

describe('POST /v1/auth/signup', () => {
  test('201 with a tb_ token (checksummed, stored only hashed) and a free user', async () => {
    const res = await api().post('/v1/auth/signup').send({ fingerprint: FP.toUpperCase() });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      api_key: expect.stringMatching(/^tb_[0-9A-Za-z]{38}$/),
      user: {
        id: expect.stringMatching(/^usr_/),
        email: null,
        name: null,
        plan: 'free',
        created_at: new Date(now).toISOString(),
      },
    });
    expect(isWellFormedToken('tb_', res.body.api_key)).toBe(true);
    const stored = JSON.stringify(await redisContents(broker.redis));
    expect(stored).toContain(hashToken(res.body.api_key));
    expect(stored).not.toContain(res.body.api_key);
    expect(await broker.redis.exists(keys.tokenHash(hashToken(res.body.api_key)))).toBe(1);
    // The fingerprint is compared case-insensitively.
    expect((await api().get('/v1/auth/key').set(as(res.body.api_key, FP))).status).toBe(200);
  });

  test.each([
    [{}, 'fingerprint'],
    [{ fingerprint: 'xyz' }, 'fingerprint'],
    [{ fingerprint: 'abc' }, 'fingerprint'],
    [{ fingerprint: 42 }, 'fingerprint'],
    [[], 'body'],
  ])('bad body %j → 400 field %s', async (body, field) => {
    const res = await api().post('/v1/auth/signup').send(body);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_request', code: 4000, field });
  });
});

describe('GET /v1/auth/key, /v1/auth/user, /v1/auth/test', () => {
  test('key: masked, permissions, created_at, last_used, status valid', async () => {
    const { token } = await signup();
    const res = await api().get('/v1/auth/key').set(as(token));
    expect(res.body).toEqual({
      id: expect.stringMatching(/^key_/),
      name: 'signup',
      key: `tb_***…${token.slice(-3)}`,
      permissions: [...USER_SCOPES],
      created_at: new Date(now).toISOString(),
      last_used: new Date(now).toISOString(),
      expires_at: null,
      status: 'valid',
    });
    expect(JSON.stringify(res.body)).not.toContain(token);
  });

  test('user: account and lifetime usage (requests_served counts bearer requests)', async () => {
    const { token, userId } = await signup();
    await broker.redis.hset(keys.accountUsage(userId), { sessions_created: 3, bytes_transferred: 12345 });
    await api().get('/v1/auth/key').set(as(token));
    const res = await api().get('/v1/auth/user').set(as(token));
    expect(res.body).toEqual({
      id: userId,
      email: null,
      name: null,
      plan: 'free',
      created_at: new Date(now).toISOString(),
      usage: { sessions_created: 3, bytes_transferred: 12345, requests_served: 2 },
    });
  });

  test('test: valid without scope; granted with one; tunnels:* grants tunnel scopes; 403 otherwise', async () => {
    const { token } = await signup();
    const plain = await api().get('/v1/auth/test').set(as(token));
    expect(plain.body).toMatchObject({ valid: true, plan: 'free', permissions: [...USER_SCOPES] });
    expect(plain.body.granted).toBeUndefined();
    const granted = await api().get('/v1/auth/test?scope=tunnels:write').set(as(token));
    expect(granted.body).toMatchObject({ valid: true, granted: true });

    const created = await api()
      .post('/v1/auth/keys')
      .set(as(token))
      .send({ name: 'tunnels only', permissions: ['tunnels:*'] });
    const wildcard = created.body.key as string;
    expect((await api().get('/v1/auth/test?scope=tunnels:delete').set(as(wildcard))).body.granted).toBe(true);
    const denied = await api().get('/v1/auth/test?scope=account:read').set(as(wildcard));
    expect(denied.status).toBe(403);
    expect(denied.body).toEqual({
      error: 'forbidden',
      message: expect.any(String),
      code: 4003,
      required_scope: 'account:read',
    });
    const unknown = await api().get('/v1/auth/test?scope=tunnels:fly').set(as(token));
    expect(unknown.status).toBe(400);
    expect(unknown.body).toMatchObject({ error: 'invalid_request', field: 'scope' });
  });
});

describe('keys', () => {
  test('create (shown once) → list (masked) → revoke → 401 with it → 404 again', async () => {
    const { token } = await signup();
    // Keys list oldest first; a later millisecond makes the order exact.
    now += 1;
    const created = await api()
      .post('/v1/auth/keys')
      .set(as(token))
      .send({ name: 'CI/CD Key', permissions: ['tunnels:read', 'tunnels:read'], expires_in: 3600 });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      id: expect.stringMatching(/^key_/),
      name: 'CI/CD Key',
      key: expect.stringMatching(/^tb_[0-9A-Za-z]{38}$/),
      permissions: ['tunnels:read'],
      created_at: new Date(now).toISOString(),
      last_used: null,
      expires_at: new Date(now + 3600_000).toISOString(),
    });
    const list = await api().get('/v1/auth/keys').set(as(token));
    expect(list.body.keys.map((k: { name: string }) => k.name)).toEqual(['signup', 'CI/CD Key']);
    expect(list.body.keys[1]).toEqual({ ...created.body, key: `tb_***…${created.body.key.slice(-3)}` });
    expect(JSON.stringify(list.body)).not.toContain(created.body.key);

    // The new key is bound to the same machine as its free creator.
    expect((await api().get('/v1/auth/key').set(as(created.body.key, 'ffffffffffffffff'))).status).toBe(401);
    expect((await api().get('/v1/auth/key').set(as(created.body.key))).status).toBe(200);

    expect((await api().delete(`/v1/auth/keys/${created.body.id}`).set(as(token))).status).toBe(204);
    expect((await api().get('/v1/auth/key').set(as(created.body.key))).status).toBe(401);
    const again = await api().delete(`/v1/auth/keys/${created.body.id}`).set(as(token));
    expect(again.status).toBe(404);
    expect(again.body).toMatchObject({ error: 'not_found', code: 4004 });
    expect((await api().get('/v1/auth/keys').set(as(token))).body.keys).toHaveLength(1);
  });

  test('never more permissions than the creator: 403 naming the missing scope', async () => {
    const { token } = await signup();
    const limited = (
      await api()
        .post('/v1/auth/keys')
        .set(as(token))
        .send({ name: 'limited', permissions: ['keys:manage', 'tunnels:read'] })
    ).body.key as string;
    const res = await api()
      .post('/v1/auth/keys')
      .set(as(limited))
      .send({ name: 'escalate', permissions: ['tunnels:*'] });
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ error: 'forbidden', code: 4003, required_scope: 'tunnels:write' });
    const admin = await api()
      .post('/v1/auth/keys')
      .set(as(token))
      .send({ name: 'admin', permissions: ['admin:write'] });
    expect(admin.body).toMatchObject({ error: 'forbidden', required_scope: 'admin:write' });
  });

  test('a derived key never outlives its creator', async () => {
    const { token } = await signup();
    const short = (
      await api()
        .post('/v1/auth/keys')
        .set(as(token))
        .send({ name: 'short', permissions: ['keys:manage'], expires_in: 120 })
    ).body.key as string;
    const child = await api()
      .post('/v1/auth/keys')
      .set(as(short))
      .send({ name: 'child', permissions: ['keys:manage'] });
    expect(child.body.expires_at).toBe(new Date(now + 120_000).toISOString());
  });

  test.each([
    [{ permissions: ['tunnels:read'] }, 'name'],
    [{ name: '', permissions: ['tunnels:read'] }, 'name'],
    [{ name: 'x', permissions: [] }, 'permissions'],
    [{ name: 'x', permissions: ['tunnels:fly'] }, 'permissions.0'],
    [{ name: 'x', permissions: ['tunnels:read'], expires_in: 1 }, 'expires_in'],
    [{ name: 'x', permissions: ['tunnels:read'], expires_in: 1.5 }, 'expires_in'],
  ])('bad key body %j → 400 field %s', async (body, field) => {
    const { token } = await signup();
    const res = await api().post('/v1/auth/keys').set(as(token)).send(body);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_request', code: 4000, field });
  });

  test('revoking an unknown id → 404', async () => {
    const { token } = await signup();
    expect((await api().delete('/v1/auth/keys/key_nope').set(as(token))).status).toBe(404);
  });

  test('logout revokes only the presenting key', async () => {
    const { token } = await signup();
    const other = (
      await api()
        .post('/v1/auth/keys')
        .set(as(token))
        .send({ name: 'other', permissions: ['tunnels:read'] })
    ).body.key as string;
    expect((await api().post('/v1/auth/logout').set(as(token))).status).toBe(204);
    expect((await api().get('/v1/auth/key').set(as(token))).status).toBe(401);
    expect((await api().get('/v1/auth/key').set(as(other))).status).toBe(200);
  });
});

describe('POST /v1/auth/login', () => {
  test('paid account: portable key with every non-admin scope', async () => {
    const account = await accountWithPassword('paid@example.com', 'correct horse battery');
    const res = await api()
      .post('/v1/auth/login')
      .send({ email: 'Paid@Example.com ', password: 'correct horse battery' });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      api_key: expect.stringMatching(/^tb_/),
      user: {
        id: account.id,
        email: 'paid@example.com',
        name: null,
        plan: 'pro',
        created_at: expect.any(String),
      },
    });
    const key = await api().get('/v1/auth/key').set(as(res.body.api_key, undefined));
    expect(key.status).toBe(200);
    expect(key.body.permissions).toEqual([...USER_SCOPES]);
  });

  test('free account with credentials: the key binds to the presented machine', async () => {
    await accountWithPassword('lapsed@example.com', 'pw-lapsed-123', 'free');
    const body = { email: 'lapsed@example.com', password: 'pw-lapsed-123' };
    const missing = await api().post('/v1/auth/login').send(body);
    expect(missing.body).toMatchObject({ error: 'invalid_request', field: 'fingerprint' });
    const res = await api().post('/v1/auth/login').set('X-Machine-Fingerprint', FP).send(body);
    expect(res.status).toBe(200);
    expect((await api().get('/v1/auth/key').set(as(res.body.api_key))).status).toBe(200);
    expect((await api().get('/v1/auth/key').set(as(res.body.api_key, '00000000'))).status).toBe(401);
  });

  test('unknown email and wrong password: the same 401', async () => {
    await accountWithPassword('known@example.com', 'right-password');
    const wrong = await api()
      .post('/v1/auth/login')
      .send({ email: 'known@example.com', password: 'wrong-password' });
    const unknown = await api()
      .post('/v1/auth/login')
      .send({ email: 'nobody@example.com', password: 'wrong-password' });
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(wrong.body).toEqual(unknown.body);
    expect(wrong.body).toEqual({ error: 'unauthorized', message: 'Invalid email or password.', code: 4001 });
  });

  test.each([[{}], [{ email: 'a@b.c' }], [{ password: 'x' }], [{ email: 1, password: 2 }]])(
    'bad body %j → 400',
    async (body) => {
      expect((await api().post('/v1/auth/login').send(body)).body).toMatchObject({
        error: 'invalid_request',
      });
    },
  );

  test('per-email back-off doubles after the free failures, and holds even for the right password', async () => {
    await accountWithPassword('target@example.com', 'the-real-one');
    const attempt = (password: string) =>
      api()
        .post('/v1/auth/login')
        .set('X-Forwarded-For', '1.1.1.1')
        .send({ email: 'target@example.com', password });
    for (let i = 0; i < BACKOFF.freeFailuresPerEmail; i++) expect((await attempt('guess')).status).toBe(401);
    let locked = await attempt('the-real-one');
    expect(locked.status).toBe(429);
    expect(locked.body).toMatchObject({ error: 'rate_limited', code: 4029, retry_after: 1 });
    expect(locked.headers['retry-after']).toBe('1');
    now += 1000;
    expect((await attempt('guess')).status).toBe(401);
    locked = await attempt('guess');
    expect(locked.body.retry_after).toBe(2);
    now += 2000;
    expect((await attempt('the-real-one')).status).toBe(200);
    // Success clears the email's count.
    expect((await attempt('guess')).status).toBe(401);
  });

  test('per-IP back-off across many emails', async () => {
    const app = await broker.another({ env: { TRUSTED_PROXIES: 'loopback', PUBLIC_BURST: '100000' } });
    const attempt = (i: number) =>
      request(app)
        .post('/v1/auth/login')
        .set('X-Forwarded-For', '203.0.113.50')
        .send({ email: `spray${i}@example.com`, password: 'x' });
    for (let i = 0; i < BACKOFF.freeFailuresPerIp; i++) expect((await attempt(i)).status).toBe(401);
    const res = await attempt(999);
    expect(res.status).toBe(429);
    // Another source address is unaffected.
    const elsewhere = await request(app)
      .post('/v1/auth/login')
      .set('X-Forwarded-For', '203.0.113.51')
      .send({ email: 'spray0@example.com', password: 'x' });
    expect(elsewhere.status).toBe(401);
  });
});
