// The error registry and docs/API.md's error table agree row for row (fastify style), and the one
// mapping function never leaks internals.
import { ApiError, ERRORS, toHttpError } from '../../src/broker/errors.js';
import { readDoc, section } from '../helpers/repo.js';

const apiMd = readDoc('API.md');

function documentedRows(): Record<string, { status: number; code: number }> {
  const rows: Record<string, { status: number; code: number }> = {};
  for (const m of section(apiMd, 'Errors').matchAll(/^\|\s*(\d{3})\s*\|\s*([a-z_]+)\s*\|\s*(\d{4})\s*\|/gm)) {
    rows[m[2]!] = { status: Number(m[1]), code: Number(m[3]) };
  }
  return rows;
}

test('every registry entry is in docs/API.md with the same status and code, and the reverse', () => {
  const documented = documentedRows();
  expect(Object.keys(documented).length).toBeGreaterThan(0);
  const { internal, ...registered } = ERRORS;
  const registry = Object.fromEntries(
    Object.entries(registered).map(([name, e]) => [name, { status: e.status, code: e.code }]),
  );
  expect(registry).toEqual(documented);
  // The one row outside the table: the unexpected fault.
  expect(apiMd).toContain(`{"error":"internal","code":${internal.code}}`);
});

test('codes are unique', () => {
  const codes = Object.values(ERRORS).map((e) => e.code);
  expect(new Set(codes).size).toBe(codes.length);
});

test.each([
  [new ApiError('rate_limited', { retryAfter: 7 }), 429, { 'Retry-After': '7' }, { retry_after: 7 }],
  [new ApiError('quota_exhausted', { retryAfter: 0.2 }), 429, { 'Retry-After': '1' }, { retry_after: 1 }],
  [new ApiError('no_capacity'), 503, { 'Retry-After': '5' }, {}],
  [
    new ApiError('forbidden', { details: { required_scope: 'tunnels:write' } }),
    403,
    { 'WWW-Authenticate': 'Bearer realm="tunnelbyte", error="insufficient_scope", scope="tunnels:write"' },
    { required_scope: 'tunnels:write' },
  ],
  [new ApiError('unauthorized'), 401, { 'WWW-Authenticate': 'Bearer realm="tunnelbyte"' }, {}],
  [
    Object.assign(new Error("Stream isn't writeable and enableOfflineQueue options is false"), {}),
    503,
    { 'Retry-After': '5' },
    {},
  ],
  [Object.assign(new Error('x'), { name: 'MaxRetriesPerRequestError' }), 503, { 'Retry-After': '5' }, {}],
  // ioredis' AbortError for a pipeline cut off by a Redis crash (seen in crash.test.ts as a 500).
  [
    Object.assign(new Error('Command aborted due to connection close'), { name: 'AbortError' }),
    503,
    { 'Retry-After': '5' },
    {},
  ],
  // Failover answers: a demoted master, a Cluster slot without a master yet.
  [new Error("READONLY You can't write against a read only replica."), 503, { 'Retry-After': '5' }, {}],
  [
    new Error('Too many Cluster redirections. Last error: Error: CLUSTERDOWN'),
    503,
    { 'Retry-After': '5' },
    {},
  ],
  [new Error('Failed to refresh slots cache.'), 503, { 'Retry-After': '5' }, {}],
  // A transaction sent to a slot's old master while the Cluster moves it (seen in failover.test.ts as a 500).
  [
    Object.assign(new Error('MOVED 10911 127.0.0.1:44183'), { name: 'ReplyError' }),
    503,
    { 'Retry-After': '5' },
    {},
  ],
  [
    Object.assign(new Error('ASK 10911 127.0.0.1:44183'), { name: 'ReplyError' }),
    503,
    { 'Retry-After': '5' },
    {},
  ],
  [Object.assign(new Error('too big'), { type: 'entity.too.large' }), 413, {}, {}],
  // The limit of the route that refused it: every endpoint's, or a heartbeat's sized for the node capacity.
  [
    Object.assign(new Error('too big'), { type: 'entity.too.large', limit: 64 * 1024 }),
    413,
    {},
    { message: 'The request body is larger than 64 KiB.' },
  ],
  [
    Object.assign(new Error('too big'), { type: 'entity.too.large', limit: 64 * 1024 + 256 * 10_000 }),
    413,
    {},
    { message: 'The request body is larger than 2564 KiB.' },
  ],
  [
    Object.assign(new Error('too big'), { type: 'entity.too.large', limit: 1000 }),
    413,
    {},
    { message: 'The request body is larger than 1000 bytes.' },
  ],
])('%#: mapping %s', (err, status, headers, extra) => {
  const mapped = toHttpError(err);
  expect(mapped.status).toBe(status);
  expect(mapped.headers).toEqual(headers);
  expect(mapped.body).toMatchObject(extra);
  expect(mapped.unexpected).toBe(false);
});

test('an unexpected fault is internal 5000, without its message or stack', () => {
  const mapped = toHttpError(new TypeError('secret detail at /srv/app.js:1'));
  expect(mapped).toEqual({
    status: 500,
    headers: {},
    body: { error: 'internal', message: 'Internal error.', code: 5000 },
    unexpected: true,
  });
  expect(toHttpError('a string').body.code).toBe(5000);
  expect(toHttpError(null).body.code).toBe(5000);
});
