// The node's fetch thread (nodes/fetch-thread.ts) against a real HTTP server on loopback: answers and
// failures come back as fetch gives them on the calling thread, and the calling thread detaches nothing.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { FetchThread, fetchExchange, type Exchange } from '../../nodes/fetch-thread.js';
import { fetchRefusal } from '../../src/lib/fetch-refusal.js';
import { threadsThatDetached } from '../helpers/detaches.js';
import { eventually } from '../helpers/eventually.js';
import { builtProgram } from '../helpers/repo.js';

const GET = { method: 'GET', headers: { accept: 'application/json' } };
const LONG = 60_000;

let server: Server;
let base: string;
/** Requests the server holds without answering (GET /hold). */
const held: Array<() => void> = [];
/** Held requests whose connection the client closed. */
let heldClosed = 0;

beforeAll(async () => {
  server = createServer((request, response) => {
    if (request.url === '/hold') {
      held.push(() => response.end());
      response.on('close', () => heldClosed++);
      return;
    }
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      response.writeHead(503, { 'retry-after': '7', 'content-type': 'application/json' });
      response.end(JSON.stringify({ method: request.method, body, auth: request.headers.authorization }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const answer of held.splice(0)) answer();
  await new Promise((resolve) => server.close(resolve));
});

type Failure = Error & { cause?: { code?: string } };

/** The failure of a call, which must fail. */
async function failure(call: Promise<unknown>): Promise<Failure> {
  return call.then(
    () => {
      throw new Error('the call succeeded');
    },
    (error: Failure) => error,
  );
}

describe.each([
  ['on the fetch thread', true],
  ['on the calling thread', false],
])('exchange %s', (_name, threaded) => {
  let thread: FetchThread | undefined;
  let exchange: Exchange;
  beforeEach(() => {
    thread = threaded ? new FetchThread() : undefined;
    exchange = thread?.exchange ?? fetchExchange;
  });
  afterEach(async () => thread?.close());

  test('1. an answer’s status, Retry-After and text come back; the request’s method, headers and body go out', async () => {
    const request = { method: 'POST', headers: { authorization: 'Bearer tbn_x' }, body: '{"load":1}' };
    const answer = await exchange(`${base}/v1`, request, AbortSignal.timeout(LONG));
    expect(answer).toEqual({
      status: 503,
      retryAfter: '7',
      text: JSON.stringify({ method: 'POST', body: '{"load":1}', auth: 'Bearer tbn_x' }),
    });
  });

  test('2. a URL fetch refuses fails as fetch does: fetchRefusal names it', async () => {
    const error = await failure(exchange('http://127.0.0.1:1/', GET, AbortSignal.timeout(LONG)));
    expect(fetchRefusal(error)).toBe('fetch refuses this URL (bad port)');
  });

  test('3. a port nobody listens on fails with the network’s code, not a refusal', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const error = await failure(exchange(`http://127.0.0.1:${port}/`, GET, AbortSignal.timeout(LONG)));
    expect([error.name, error.cause?.code, fetchRefusal(error)]).toEqual([
      'TypeError',
      'ECONNREFUSED',
      undefined,
    ]);
  });

  test('4. an abort fails a held request with the signal’s reason and drops its connection; the next request is answered', async () => {
    const controller = new AbortController();
    const call = exchange(`${base}/hold`, GET, controller.signal);
    await eventually('the request held', () => held.length > 0);
    const closedBefore = heldClosed;
    controller.abort(new Error('stopping'));
    expect((await failure(call)).message).toBe('stopping');
    await eventually('the held request dropped', () => heldClosed > closedBefore);
    expect((await exchange(base, GET, AbortSignal.timeout(LONG))).status).toBe(503);
    held.splice(0).forEach((answer) => answer());
  });
});

test('5. close fails a call in flight, and every call after it, with one line', async () => {
  const thread = new FetchThread();
  expect((await thread.exchange(base, GET, AbortSignal.timeout(LONG))).status).toBe(503);
  const inFlight = failure(thread.exchange(`${base}/hold`, GET, AbortSignal.timeout(LONG)));
  await eventually('the request held', () => held.length > 0);
  await thread.close();
  expect((await inFlight).message).toBe('the fetch thread is closed');
  expect((await failure(thread.exchange(base, GET, AbortSignal.timeout(LONG)))).message).toBe(
    'the fetch thread is closed',
  );
  held.splice(0).forEach((answer) => answer());
});

test('6. a thread that dies fails its call with one line, and the next call starts another', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tb-fetch-'));
  const dies = join(dir, 'dies.mjs');
  writeFileSync(
    dies,
    "import { parentPort } from 'node:worker_threads';\nparentPort.on('message', () => process.exit(3));\n",
  );
  const thread = new FetchThread(dies);
  try {
    for (const call of [1, 2]) {
      const error = await failure(thread.exchange(base, GET, AbortSignal.timeout(LONG)));
      expect([call, error.message]).toEqual([call, 'the fetch thread exited with code 3']);
    }
  } finally {
    await thread.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

// In a process of its own: fetch detaches buffers of the thread it runs on, so on the fetch thread the
// calling thread keeps its no-detach promise.
const EXCHANGE_IN_A_PROCESS = `
const { FetchThread, fetchExchange } = await import(process.argv[2]);
const thread = new FetchThread();
const exchange = process.argv[4] === 'thread' ? thread.exchange : fetchExchange;
const answer = await exchange(process.argv[3], { method: 'GET', headers: {} }, AbortSignal.timeout(${LONG}));
await thread.close();
console.log(answer.status);
`;

test.each([
  ['thread', 'the fetch thread’s alone'],
  ['here', 'the calling thread’s'],
])('7. fetch %s: one promise is given up, %s', async (where) => {
  const { threads, printed } = await threadsThatDetached(EXCHANGE_IN_A_PROCESS, [
    pathToFileURL(builtProgram('nodes/fetch-thread.js')).href,
    base,
    where,
  ]);
  // 'here' also shows the premise: a fetch on a thread detaches that thread's buffers.
  expect({ threads, printed }).toEqual({ threads: 1, printed: ['503'] });
});
