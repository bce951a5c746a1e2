// Daily byte counters (the account page's chart): kept by the heartbeat path, one counter per account and
// UTC day, read back oldest first with zeros for quiet days, and forgotten after their retention.
import { dailyBytes } from '../../src/broker/services/usage.js';
import { keys, TTL } from '../../src/broker/store/keys.js';
import { keyPair, startPlane, T0, type Plane } from './sessions-fixture.js';

const DAY = 24 * 3600 * 1000;
let plane: Plane;
beforeEach(async () => {
  plane = await startPlane();
});
afterEach(async () => plane.close());

test('1. bytes land on the UTC day of the heartbeat that reported them; quiet days read 0', async () => {
  const p = await plane.principal('pro');
  const node = await plane.node('eu-west');
  const client = keyPair();
  await plane.create(p, { region: 'eu-west', public_key: client.publicKey, ttl_seconds: 7 * 24 * 3600 });
  const report = (rx: number, tx: number) =>
    plane.heartbeat(node, { peers: [{ public_key: client.publicKey, rx_bytes: rx, tx_bytes: tx }] });
  await report(1000, 500); // day 0: 1500
  await report(3000, 500); // day 0: +2000
  plane.advance(2 * DAY); // day 1 quiet
  await report(3100, 600); // day 2: +200
  const days = await dailyBytes(plane.broker.ctx, p.account.id, 4);
  const day = (offset: number) => new Date(T0 + offset * DAY).toISOString().slice(0, 10);
  expect(days).toEqual([
    { day: day(-1), bytes: 0 },
    { day: day(0), bytes: 3500 },
    { day: day(1), bytes: 0 },
    { day: day(2), bytes: 200 },
  ]);
});

test('2. each day counter expires after its retention (bounded: 62 days, longer than the 30-day chart)', async () => {
  const p = await plane.principal('pro');
  const node = await plane.node('eu-west');
  const client = keyPair();
  await plane.create(p, { region: 'eu-west', public_key: client.publicKey });
  await plane.heartbeat(node, { peers: [{ public_key: client.publicKey, rx_bytes: 42, tx_bytes: 0 }] });
  const key = keys.accountDay(p.account.id, new Date(plane.now()).toISOString().slice(0, 10));
  const ttl = await plane.broker.redis.ttl(key);
  expect(ttl).toBeGreaterThan(TTL.usageDaySeconds - 5);
  expect(ttl).toBeLessThanOrEqual(TTL.usageDaySeconds);
  expect(TTL.usageDaySeconds).toBeGreaterThan(30 * 24 * 3600);
});
