// Issue 9, findings 4, 5, 6, 10 and 13, each performed as the attack over HTTP against a broker on a
// real Redis: concurrent password guessing, rate limits multiplied by minting keys, IPv6 address
// walking, unbounded signups, free token guessing, and secrets left cacheable. Each test also shows the
// legitimate path still works.
import request from 'supertest';
import { hashPassword } from '../../src/broker/password.js';
import { FailureLimiter, TokenBucketLimiter } from '../../src/broker/ratelimit.js';
import { keys } from '../../src/broker/store/keys.js';
import { startBroker, type TestBroker } from './helpers.js';
import { unknownToken } from './authz.js';

let now = Date.parse('2026-05-01T00:00:00Z');
let broker: TestBroker;
const FP = '00112233445566778899';

beforeAll(async () => {
  broker = await startBroker({
    clock: () => now,
    env: { TRUSTED_PROXIES: 'loopback', PUBLIC_BURST: '100000' },
  });
});
afterAll(async () => broker.close());

const from = (app: TestBroker['app'], address: string) => ({
  post: (path: string) => request(app).post(path).set('X-Forwarded-For', address),
  get: (path: string) => request(app).get(path).set('X-Forwarded-For', address),
});

async function accountWithPassword(email: string, password: string): Promise<string> {
  const id = `usr_sec${Math.random().toString(36).slice(2, 10)}`;
  await broker.redis.hset(keys.account(id), {
    id,
    plan: 'pro',
    created_at: now,
    email,
    password_hash: await hashPassword(password),
  });
  await broker.redis.set(keys.email(email), id);
  return id;
}

const statuses = (responses: request.Response[]) => {
  const count: Record<number, number> = {};
  for (const r of responses) count[r.status] = (count[r.status] ?? 0) + 1;
  return count;
};

describe('finding 4: login back-off cannot be raced', () => {
  test('40 concurrent wrong passwords from 40 addresses: at most 5 free + 1 clean-source scrypt checks', async () => {
    await accountWithPassword('raced@example.com', 'the-owners-password');
    const guesses = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        from(broker.app, `198.51.100.${i + 1}`)
          .post('/v1/auth/login')
          .send({ email: 'raced@example.com', password: `guess-${i}` }),
      ),
    );
    const count = statuses(guesses);
    // Every 401 is one password check; the rest were refused before any scrypt work.
    expect(count[401]).toBeLessThanOrEqual(6);
    expect(count[429]).toBe(40 - count[401]!);
    expect(count[401]! + count[429]!).toBe(40);
    for (const r of guesses.filter((g) => g.status === 429)) {
      expect(r.body).toMatchObject({ error: 'rate_limited', retry_after: expect.any(Number) });
    }
    // The owner, from an address that never failed, still gets in (once a second is let through).
    now += 1000;
    const owner = await from(broker.app, '192.0.2.200')
      .post('/v1/auth/login')
      .send({ email: 'raced@example.com', password: 'the-owners-password' });
    expect(owner.status).toBe(200);
  });

  test('the guessing addresses stay in back-off; addresses of one /64 are one source', async () => {
    await accountWithPassword('walked@example.com', 'right-password');
    const attempt = (address: string, password = 'wrong') =>
      from(broker.app, address).post('/v1/auth/login').send({ email: 'walked@example.com', password });
    // Five failures from five addresses of one /64 (free), then that /64 is in back-off, whatever /128.
    for (let i = 1; i <= 5; i++) expect((await attempt(`2001:db8:aa:1::${i}`)).status).toBe(401);
    expect((await attempt('2001:db8:aa:1::99', 'right-password')).status).toBe(429);
    // A clean source gets through with the right password.
    expect((await attempt('2001:db8:bb:2::1', 'right-password')).status).toBe(200);
  });
});

describe('finding 5: rate limits do not multiply with keys', () => {
  test('four keys of one account stay within the account budget (2 × the per-token cap)', async () => {
    const app = await broker.another({
      env: { TB_TIERS: JSON.stringify({ free: { requestsPerMinute: 10 } }) },
    });
    const signup = await request(app).post('/v1/auth/signup').send({ fingerprint: FP });
    const first = signup.body.api_key as string;
    const auth = (token: string) => ({ Authorization: `Bearer ${token}`, 'X-Machine-Fingerprint': FP });
    const tokens = [first];
    for (let i = 0; i < 3; i++) {
      const made = await request(app)
        .post('/v1/auth/keys')
        .set(auth(first))
        .send({ name: `k${i}`, permissions: ['account:read'] });
      expect(made.status).toBe(201);
      tokens.push(made.body.key as string);
    }
    // Three requests went into making the keys. Now six each, round-robin: no key reaches its own
    // cap of 10, but together they pass the account's 20.
    const answers: request.Response[] = [];
    for (let round = 0; round < 6; round++) {
      for (const token of tokens) answers.push(await request(app).get('/v1/auth/key').set(auth(token)));
    }
    expect(answers.filter((r) => r.status === 200)).toHaveLength(20 - 3);
    expect(answers.slice(17).map((r) => r.status)).toEqual(Array(7).fill(429));
    expect(answers[17]!.body).toMatchObject({ error: 'rate_limited', retry_after: expect.any(Number) });
    // Headers: the token's limit, and the smaller remaining of token and account (the 17th request
    // of the account is this key's 4th: 6 left for the key, 3 for the account).
    expect(answers[13]!.headers['ratelimit-limit']).toBe('10');
    expect(answers[13]!.headers['ratelimit-remaining']).toBe('3');
    // Another account is untouched.
    const other = await request(app).post('/v1/auth/signup').send({ fingerprint: FP });
    expect((await request(app).get('/v1/auth/key').set(auth(other.body.api_key))).status).toBe(200);
  });

  test('key creation is capped per account: the next one is 409 until one is revoked', async () => {
    const app = await broker.another({ env: { TB_MAX_KEYS_PER_ACCOUNT: '3' } });
    const signup = await request(app).post('/v1/auth/signup').send({ fingerprint: FP });
    const auth = { Authorization: `Bearer ${signup.body.api_key}`, 'X-Machine-Fingerprint': FP };
    const make = () =>
      request(app)
        .post('/v1/auth/keys')
        .set(auth)
        .send({ name: 'ci', permissions: ['tunnels:read'] });
    const made = [await make(), await make()];
    expect(made.map((r) => r.status)).toEqual([201, 201]);
    const refused = await make();
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ error: 'conflict', code: 4009 });
    expect((await request(app).get('/v1/auth/keys').set(auth)).body.keys).toHaveLength(3);
    expect((await request(app).delete(`/v1/auth/keys/${made[0]!.body.id}`).set(auth)).status).toBe(204);
    expect((await make()).status).toBe(201);
  });
});

describe('finding 6: IPv6 walking, signup floods, anonymous accounts forever', () => {
  test('30 addresses of one /64 share one public bucket; another /64 has its own', async () => {
    const app = await broker.another({ env: { TRUSTED_PROXIES: 'loopback', PUBLIC_BURST: '10' } });
    const answers: number[] = [];
    for (let i = 1; i <= 30; i++) {
      answers.push((await from(app, `2001:db8:5:6::${i.toString(16)}`).get('/v1/regions')).status);
    }
    expect(answers.filter((s) => s === 200)).toHaveLength(10);
    expect(answers.filter((s) => s === 429)).toHaveLength(20);
    expect((await from(app, '2001:db8:5:7::1').get('/v1/regions')).status).toBe(200);
    // IPv4 addresses are their own sources.
    expect((await from(app, '198.51.100.7').get('/v1/regions')).status).toBe(200);
  });

  test('anonymous signups have a global budget per minute', async () => {
    const app = await broker.another({ env: { TB_SIGNUP_PER_MINUTE: '3' } });
    // A fresh Redis window: this broker's budget key is shared, so start from a clean count.
    await broker.redis.del(`${keys.signupLimitPrefix()}:all`);
    const answers = [];
    for (let i = 0; i < 5; i++) {
      answers.push(
        await from(app, `203.0.113.${i + 10}`)
          .post('/v1/auth/signup')
          .send({ fingerprint: FP }),
      );
    }
    expect(answers.map((r) => r.status)).toEqual([201, 201, 201, 429, 429]);
    expect(answers[3]!.body).toMatchObject({ error: 'rate_limited', retry_after: expect.any(Number) });
    expect(answers[3]!.headers['retry-after']).toBeDefined();
  });

  // The global budget alone let one source spend it and lock everyone else out of signing up. Each
  // source (an IPv4 address, an IPv6 /64) now has a budget of its own, checked first: its refused
  // signups spend nothing of the global one.
  test('one source cannot spend the global signup budget: each has its own, an IPv6 /64 is one source', async () => {
    const app = await broker.another({
      env: { TRUSTED_PROXIES: 'loopback', TB_SIGNUP_PER_MINUTE: '4', TB_SIGNUP_PER_SOURCE_PER_MINUTE: '2' },
    });
    for (const key of await broker.redis.keys(`${keys.signupLimitPrefix()}*`)) await broker.redis.del(key);
    const signup = (address: string) => from(app, address).post('/v1/auth/signup').send({ fingerprint: FP });
    const flood = [];
    for (let i = 1; i <= 6; i++) flood.push(await signup(`2001:db8:66:1::${i}`));
    expect(flood.map((r) => r.status)).toEqual([201, 201, 429, 429, 429, 429]);
    expect(flood[2]!.body).toEqual({
      error: 'rate_limited',
      code: 4029,
      message: expect.any(String),
      retry_after: expect.any(Number),
    });
    expect(flood[2]!.body.retry_after).toBeGreaterThanOrEqual(1);
    expect(flood[2]!.headers['retry-after']).toBe(String(flood[2]!.body.retry_after));
    // Others still sign up: the flood took two of the four, its refusals none.
    expect((await signup('198.51.100.21')).status).toBe(201);
    expect((await signup('2001:db8:66:2::1')).status).toBe(201);
    // The global budget still holds across sources.
    expect((await signup('198.51.100.22')).status).toBe(429);
  });

  test('without a trusted proxy, X-Forwarded-For does not make a source: a rotating header gets no new budget', async () => {
    const app = await broker.another({
      env: { TRUSTED_PROXIES: '', TB_SIGNUP_PER_MINUTE: '100', TB_SIGNUP_PER_SOURCE_PER_MINUTE: '2' },
    });
    for (const key of await broker.redis.keys(`${keys.signupLimitPrefix()}*`)) await broker.redis.del(key);
    const answers = [];
    for (let i = 1; i <= 3; i++)
      answers.push(
        (
          await from(app, `198.51.100.${30 + i}`)
            .post('/v1/auth/signup')
            .send({ fingerprint: FP })
        ).status,
      );
    expect(answers).toEqual([201, 201, 429]);
  });

  test('an anonymous account expires after TB_ANONYMOUS_IDLE_DAYS without requests; use renews it', async () => {
    const app = await broker.another({ env: { TB_ANONYMOUS_IDLE_DAYS: '30' } });
    const signup = await request(app).post('/v1/auth/signup').send({ fingerprint: FP });
    const id = signup.body.user.id as string;
    const token = signup.body.api_key as string;
    const keyIds = await broker.redis.smembers(keys.accountKeys(id));
    const idle = 30 * 24 * 3600;
    const ttls = async () =>
      Promise.all(
        [keys.account(id), keys.accountKeys(id), keys.apiKey(id, keyIds[0]!)].map((k) => broker.redis.ttl(k)),
      );
    for (const ttl of await ttls()) expect(ttl).toBeGreaterThan(idle - 60);
    for (const ttl of await ttls()) expect(ttl).toBeLessThanOrEqual(idle);
    const index = (await broker.redis.keys('tokenhash:*')).length;
    expect(index).toBeGreaterThan(0);
    // Shorten the clock on Redis' side, then a request a day later renews every record.
    for (const k of [keys.account(id), keys.accountKeys(id), keys.apiKey(id, keyIds[0]!)]) {
      await broker.redis.expire(k, 1000);
    }
    const auth = { Authorization: `Bearer ${token}`, 'X-Machine-Fingerprint': FP };
    expect((await request(app).get('/v1/auth/user').set(auth)).status).toBe(200);
    for (const ttl of await ttls()) expect(ttl).toBeGreaterThan(idle - 60);
    expect(await broker.redis.ttl(keys.accountUsage(id))).toBeGreaterThan(idle - 60);
    // An account with credentials (paid once) never expires.
    const paid = await accountWithPassword('kept@example.com', 'kept-password-1');
    expect(await broker.redis.ttl(keys.account(paid))).toBe(-1);
  });
});

describe('finding 10: failed authentication is throttled before any lookup', () => {
  test('past TB_AUTH_FAILURES_PER_MINUTE a source gets 429 without a Redis lookup; others are unaffected', async () => {
    const app = await broker.another({
      env: { TRUSTED_PROXIES: 'loopback', TB_AUTH_FAILURES_PER_MINUTE: '5' },
    });
    const probe = (address: string, token = unknownToken()) =>
      from(app, address).get('/v1/auth/key').set('Authorization', `Bearer ${token}`);
    for (let i = 0; i < 5; i++) expect((await probe('2001:db8:77::1')).status).toBe(401);
    await broker.redis.config('RESETSTAT');
    const throttled = [];
    for (let i = 0; i < 20; i++) throttled.push(await probe(`2001:db8:77::${i + 2}`));
    expect(new Set(throttled.map((r) => r.status))).toEqual(new Set([429]));
    expect(throttled[0]!.body).toMatchObject({ error: 'rate_limited', retry_after: expect.any(Number) });
    // Not one token lookup reached Redis for those 20.
    const stats = await broker.redis.info('commandstats');
    expect(stats).not.toMatch(/cmdstat_get:/);
    // Node tokens count as failures too, for the same source.
    const node = await from(app, '2001:db8:77::99')
      .post('/v1/nodes/register')
      .set('Authorization', 'Bearer tbn_nonsense')
      .send({});
    expect(node.status).toBe(429);
    // Another source with a real token is served.
    const signup = await request(app).post('/v1/auth/signup').send({ fingerprint: FP });
    const ok = await from(app, '198.51.100.77')
      .get('/v1/auth/key')
      .set('Authorization', `Bearer ${signup.body.api_key}`)
      .set('X-Machine-Fingerprint', FP);
    expect(ok.status).toBe(200);
  });
});

describe('finding 13: responses with secrets are not cacheable', () => {
  test('signup, login and key creation answer Cache-Control: no-store; other reads do not', async () => {
    const signup = await request(broker.app).post('/v1/auth/signup').send({ fingerprint: FP });
    expect(signup.headers['cache-control']).toBe('no-store');
    await accountWithPassword('cache@example.com', 'cache-password');
    const login = await from(broker.app, '192.0.2.77')
      .post('/v1/auth/login')
      .send({ email: 'cache@example.com', password: 'cache-password' });
    expect(login.status).toBe(200);
    expect(login.headers['cache-control']).toBe('no-store');
    const auth = { Authorization: `Bearer ${signup.body.api_key}`, 'X-Machine-Fingerprint': FP };
    const key = await request(broker.app)
      .post('/v1/auth/keys')
      .set(auth)
      .send({ name: 'x', permissions: ['tunnels:read'] });
    expect(key.headers['cache-control']).toBe('no-store');
    const masked = await request(broker.app).get('/v1/auth/key').set(auth);
    expect(masked.headers['cache-control']).toBeUndefined();
  });
});

// Each broker keeps a bucket per source and a failure count per source in memory. Sources are cheap
// for an attacker with IPv6 (a /48 holds 65,536 /64s): the tables stay bounded however many there are,
// the least recently seen going first, and what a source did just now is never the part forgotten.
describe('per-source tables in memory stay bounded under a flood of sources', () => {
  test('1. public buckets: 10,000 sources, each mid-burst, leave at most the capacity tracked', () => {
    const limiter = new TokenBucketLimiter(10, 1, 1000);
    for (let i = 0; i < 10_000; i++) limiter.take(`2001:db8:${i.toString(16)}::/64`, now);
    expect(limiter.tracked).toBeLessThanOrEqual(1000);
    // The most recent source is still mid-burst: its next request sees 8 left, not a fresh bucket.
    expect(limiter.take('2001:db8:270f::/64', now).remaining).toBe(8);
  });

  test('2. failure counts: 10,000 failing sources leave at most the capacity; the last is still refused', () => {
    const limiter = new FailureLimiter(3, 1000);
    for (let i = 0; i < 10_000; i++) for (let n = 0; n < 3; n++) limiter.record(`source-${i}`, now);
    expect(limiter.tracked).toBeLessThanOrEqual(1000);
    expect(() => limiter.check('source-9999', now)).toThrow(
      expect.objectContaining({ kind: 'rate_limited' }),
    );
  });
});
