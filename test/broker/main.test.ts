// The tunnelbyte-broker binary (as built by scripts/test): serves, then drains and exits 0 on SIGTERM.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { freePort, startRedis, type RedisServer } from '../helpers/redis.js';
import { builtProgram } from '../helpers/repo.js';

const bin = builtProgram('src/broker/main.js');

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => redis.stop());

/** Resolves once `read()` satisfies `done`, re-checking whenever `source` emits data. */
const when = (source: NodeJS.EventEmitter, read: () => string, done: (text: string) => boolean) =>
  new Promise<void>((resolve) => {
    const check = () => done(read()) && (source.off('data', check), resolve());
    source.on('data', check);
    check();
  });

/** `tunnelbyte-broker serve` on a free port, resolved once it listens and Redis is connected. */
async function serve(extraEnv: Record<string, string> = {}) {
  const port = await freePort();
  const child = spawn(process.execPath, [bin, 'serve'], {
    env: {
      ...process.env,
      REDIS_URL: redis.url,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = { output: '' };
  child.stdout.on('data', (chunk: Buffer) => (log.output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    // Listening comes first; requests answer 503 until Redis is connected, which is logged too.
    const check = () =>
      log.output.includes('"msg":"listening"') && log.output.includes('"msg":"redis ready"')
        ? resolve()
        : undefined;
    child.stdout.on('data', check);
    child.once('exit', () => reject(new Error(`broker exited early: ${log.output}`)));
  });
  return { port, child, log, exited };
}

test('METRICS_PORT moves /metrics to its own listener on METRICS_HOST; the API port no longer serves it', async () => {
  const metricsPort = await freePort();
  const { port, child, log, exited } = await serve({
    METRICS_PORT: String(metricsPort),
    METRICS_HOST: '127.0.0.1',
  });
  await when(
    child.stdout,
    () => log.output,
    (text) => text.includes('"msg":"metrics listening"'),
  );
  const scraped = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  expect(scraped.status).toBe(200);
  expect(await scraped.text()).toMatch(/^tunnelbyte_broker_redis_up 1$/m);
  const api = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(api.status).toBe(404);
  expect(await api.json()).toMatchObject({ error: 'not_found' });
  expect((await fetch(`http://127.0.0.1:${metricsPort}/v1/ready`)).status).toBe(404);
  child.kill('SIGTERM');
  expect(await exited).toBe(0);
});

test('serve answers, then SIGTERM drains: a request in flight gets its answer, new ones are refused, exit 0', async () => {
  const { port, child, log, exited } = await serve();
  const res = await fetch(`http://127.0.0.1:${port}/v1/ready`);
  expect([res.status, await res.json()]).toEqual([200, { status: 'ok' }]);

  // A signup in flight: the broker has its headers (it said 100 Continue) but not yet its body.
  const socket = connect(port, '127.0.0.1');
  let response = '';
  socket.on('data', (chunk: Buffer) => (response += chunk.toString()));
  const body = JSON.stringify({ fingerprint: 'ab'.repeat(16) });
  socket.write(
    'POST /v1/auth/signup HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
      `Content-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`,
  );
  await when(
    socket,
    () => response,
    (text) => text.includes('100 Continue'),
  );

  child.kill('SIGTERM');
  await when(
    child.stdout,
    () => log.output,
    (text) => text.includes('"msg":"shutting down"'),
  );
  // Draining: no new connections...
  const refused = connect(port, '127.0.0.1');
  const [error] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
  // Refused once the listener is gone; reset when the connection raced the close into the backlog.
  expect(['ECONNREFUSED', 'ECONNRESET']).toContain(error.code);
  // ...but the request in flight completes.
  socket.write(body);
  await once(socket, 'close');
  expect(response).toMatch(/HTTP\/1\.1 201 Created/);
  expect(response).toMatch(/"api_key":"tb_[0-9A-Za-z]{38}"/);
  expect(await exited).toBe(0);
});

/**
 * Sends raw bytes to the broker, each part after the answer to the one before, and reads everything
 * it answers until it closes the connection.
 */
async function rawExchange(port: number, parts: string[]): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let answer = '';
  socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
  for (const [i, part] of parts.entries()) {
    if (i === parts.length - 1) {
      socket.end(part);
    } else {
      socket.write(part);
      await once(socket, 'data');
    }
  }
  await once(socket, 'close');
  return answer;
}

// What Node's HTTP parser refuses never reaches Express; its answer still has the contract's body. Headers
// over 16 KiB keep Node's status, 431; anything else it cannot parse is 400 invalid_request.
const unparsable = { status: 400, body: { error: 'invalid_request', code: 4000, field: 'request' } };
test.each([
  [
    1,
    'a header name with a space',
    'GET /v1/health HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n',
    unparsable,
  ],
  [2, 'no request line', 'GARBAGE\r\n\r\n', unparsable],
  [
    3,
    'Content-Length and chunked together',
    'POST /v1/auth/signup HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    unparsable,
  ],
  [
    4,
    'headers over 16 KiB',
    `GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(20_000)}\r\n\r\n`,
    { status: 431, body: { error: 'headers_too_large', code: 4310 } },
  ],
  // A kept-alive connection whose first request was answered in full: the garbage after it is answered too.
  [
    5,
    'after a good request on the same connection',
    ['GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n', 'GARBAGE\r\n\r\n'],
    unparsable,
  ],
])('%i: a request Node cannot parse (%s) → a JSON error', async (_n, _what, bytes, expected) => {
  const { port, child, exited } = await serve();
  try {
    const answer = await rawExchange(port, [bytes].flat());
    // The last answer on the connection is the refusal (a good request before it has its own 200).
    const [head = '', body = ''] = answer.slice(answer.lastIndexOf('HTTP/1.1 ')).split('\r\n\r\n');
    expect(head).toMatch(new RegExp(`^HTTP/1\\.1 ${expected.status} `));
    expect(head).toMatch(/\r\nContent-Type: application\/json; charset=utf-8\r\n/i);
    expect(head).toMatch(/\r\nX-Request-Id: [0-9a-f-]{36}\r\n/i);
    expect(JSON.parse(body)).toEqual({ ...expected.body, message: expect.any(String) });
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
});
