// Issue 9, finding 12: under a Redis error the broker's log carries no secret. Redis is made to refuse
// writes (maxmemory 1mb, noeviction) and the requests that then fail carry token hashes and password
// hashes in their commands; the log is searched for them.
import { pino } from 'pino';
import request from 'supertest';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startBroker, type TestBroker } from './helpers.js';

let server: RedisServer;
let broker: TestBroker;
const lines: string[] = [];
const FP = 'abcdefabcdef0123';

beforeAll(async () => {
  server = await startRedis(['--maxmemory-policy', 'noeviction']);
  broker = await startBroker({
    server,
    logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }),
    env: { STRIPE_PAYMENT_LINK: 'https://buy.stripe.com/test_logs' },
  });
});
afterAll(async () => {
  await broker.close();
  await server.stop();
});

test('Redis OOM: requests fail with the contract shape and the log has command names, never arguments', async () => {
  const signup = await request(broker.app).post('/v1/auth/signup').send({ fingerprint: FP });
  expect(signup.status).toBe(201);
  const auth = { Authorization: `Bearer ${signup.body.api_key}`, 'X-Machine-Fingerprint': FP };
  // Fill Redis past a 1 MiB limit: from now on every write is refused with OOM.
  await broker.redis.set('filler', 'x'.repeat(2 * 1024 * 1024));
  await broker.redis.config('SET', 'maxmemory', '1mb');

  const failing = [
    await request(broker.app).post('/v1/auth/signup').send({ fingerprint: FP }),
    await request(broker.app)
      .post('/v1/auth/keys')
      .set(auth)
      .send({ name: 'k', permissions: ['tunnels:read'] }),
    await request(broker.app)
      .post('/v1/billing/checkout')
      .set(auth)
      .send({ email: 'oom@example.com', password: 'a-secret-password' }),
  ];
  for (const res of failing) {
    expect(res.status).toBeGreaterThanOrEqual(500);
    expect(res.body).toEqual(
      expect.objectContaining({ error: expect.any(String), code: expect.any(Number) }),
    );
  }
  await broker.redis.config('SET', 'maxmemory', '0');

  const faults = lines.filter((l) => l.includes('"err"'));
  expect(faults.length).toBeGreaterThanOrEqual(failing.length);
  const log = lines.join('');
  expect(log).toMatch(/OOM command not allowed/);
  // The command is named (evalsha, hset, ...), its arguments are not there.
  expect(log).toMatch(/"command":"(evalsha|eval|hset|set|multi|exec)"/);
  expect(log).not.toMatch(/"args"/);
  expect(log).not.toMatch(/[0-9a-f]{64}/); // SHA-256 token hashes
  expect(log).not.toContain('scrypt$'); // password hashes
  expect(log).not.toMatch(/[A-Za-z0-9+/]{43}=/); // base64 keys (preshared, private)
  expect(log).not.toContain(signup.body.user.id);
});
