// Brokers are stateless: two of them on one Redis see the same sessions and enforce one quota.
import request from 'supertest';
import { checkPlane, startPlane, type Plane } from './sessions-fixture.js';
import type { Principal } from './authz.js';

let plane: Plane;
let second: Awaited<ReturnType<Plane['broker']['another']>>;
beforeEach(async () => {
  plane = await startPlane();
  second = await plane.broker.another();
});
afterEach(async () => plane.close());

// The same request as plane.as(), sent to the second broker.
const onSecond = (p: Principal, method: 'get' | 'delete' | 'post', path: string) => {
  const req = request(second)[method](path).set('Authorization', `Bearer ${p.token}`);
  return p.fingerprint ? req.set('X-Machine-Fingerprint', p.fingerprint) : req;
};

test('a session made on one broker is read, counted and closed through another', async () => {
  await plane.node('eu-west');
  const free = await plane.principal('free');

  const made = await plane.create(free, { region: 'eu-west' });
  expect(made.status).toBe(201);

  const seen = await onSecond(free, 'get', `/v1/sessions/${made.body.id}`);
  expect(seen.status).toBe(200);
  expect(seen.body).toMatchObject({ id: made.body.id, region: 'eu-west', status: 'pending' });
  expect(
    (await onSecond(free, 'get', '/v1/sessions')).body.sessions.map((s: { id: string }) => s.id),
  ).toEqual([made.body.id]);

  // The free tier allows one concurrent session, whichever broker is asked.
  const refused = await onSecond(free, 'post', '/v1/sessions').send({ region: 'eu-west' });
  expect(refused.status).toBe(429);
  expect(refused.body.error).toBe('quota_exhausted');

  expect((await onSecond(free, 'delete', `/v1/sessions/${made.body.id}`)).status).toBe(204);
  expect((await plane.as(free, 'get', `/v1/sessions/${made.body.id}`)).body.status).toBe('closed');
  expect((await plane.create(free, { region: 'eu-west' })).status).toBe(201);
  expect([...(await checkPlane(plane.broker.redis, 'eu-west')).values()]).toEqual([1]);
});
