// GET /v1/usage exactly as docs/API.md: tier, the 30-day period anchored at the account's creation, bytes
// used this period against the tier's limit, active/created sessions, and the request cap.
import { PERIOD_MS, periodOf } from '../../src/broker/services/usage.js';
import { GiB, keyPair, startPlane, type Plane } from './sessions-fixture.js';

let plane: Plane;
beforeEach(async () => {
  plane = await startPlane();
});
afterEach(async () => plane.close());

test('1. a fresh free account: the exact shape, zeros, tier limits', async () => {
  const p = await plane.principal('free');
  const res = await plane.as(p, 'get', '/v1/usage');
  expect(res.status).toBe(200);
  expect(res.body).toEqual({
    tier: 'free',
    period: {
      start: new Date(p.account.createdAt).toISOString(),
      end: new Date(p.account.createdAt + PERIOD_MS).toISOString(),
    },
    bytes: { used: 0, limit: 10 * GiB },
    sessions: { active: 0, limit: 1, created: 0 },
    requests: { limit_per_minute: 1000000 },
  });
});

test('2. business: unlimited bytes is null; active and created follow sessions', async () => {
  const p = await plane.principal('business');
  const node = await plane.node('eu-west');
  const client = keyPair();
  const a = await plane.create(p, { region: 'eu-west', public_key: client.publicKey });
  await plane.create(p, { region: 'eu-west' });
  await plane.as(p, 'delete', `/v1/sessions/${a.body.id}`);
  await plane.heartbeat(node, { peers: [{ public_key: client.publicKey, rx_bytes: 10, tx_bytes: 20 }] });
  const usage = (await plane.as(p, 'get', '/v1/usage')).body;
  expect(usage).toMatchObject({
    tier: 'business',
    bytes: { used: 0, limit: null },
    sessions: { active: 1, limit: 50, created: 2 },
    requests: { limit_per_minute: 1000000 },
  });
});

test('3. bytes count in the period they were reported in; a new period starts at zero', async () => {
  const p = await plane.principal('pro');
  const node = await plane.node('eu-west');
  const client = keyPair();
  await plane.create(p, { region: 'eu-west', public_key: client.publicKey, ttl_seconds: 7 * 24 * 3600 });
  const report = (rx: number) =>
    plane.heartbeat(node, { peers: [{ public_key: client.publicKey, rx_bytes: rx, tx_bytes: 0 }] });
  await report(5000);
  plane.advance(PERIOD_MS - 1000);
  await report(6000);
  let usage = (await plane.as(p, 'get', '/v1/usage')).body;
  expect(usage.bytes.used).toBe(6000);
  plane.advance(2000);
  usage = (await plane.as(p, 'get', '/v1/usage')).body;
  expect(usage.period.start).toBe(new Date(p.account.createdAt + PERIOD_MS).toISOString());
  expect(usage.bytes.used).toBe(0);
  expect(usage.sessions.created).toBe(0);
});

test.each([
  [1, 0, 0, 0],
  [2, 1000, 0, 0],
  [3, PERIOD_MS, PERIOD_MS, 1],
  [4, PERIOD_MS - 1, 0, 0],
  [5, 5 * PERIOD_MS + 7, 5 * PERIOD_MS, 5],
])('4.%i periodOf: %i ms after creation starts at +%i (period %i)', (_n, offset, start) => {
  const anchor = Date.parse('2026-01-15T12:00:00Z');
  expect(periodOf(anchor, anchor + offset)).toEqual({
    start: anchor + start,
    end: anchor + start + PERIOD_MS,
  });
});
