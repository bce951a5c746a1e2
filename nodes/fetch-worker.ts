// The fetch thread (nodes/fetch-thread.ts): runs each request it is given with Node's fetch and posts back
// the answer's status, Retry-After and text, or the failure as plain fields.
import { parentPort } from 'node:worker_threads';

import { fetchExchange, plainError, type FromFetchWorker, type ToFetchWorker } from './fetch-thread.js';

if (parentPort === null) throw new Error('nodes/fetch-worker.js runs as a worker thread only');
const port = parentPort;
const running = new Map<number, AbortController>();

port.on('message', (message: ToFetchWorker) => {
  if (message.kind === 'abort') {
    running.get(message.id)?.abort();
    return;
  }
  const { id } = message;
  const controller = new AbortController();
  running.set(id, controller);
  fetchExchange(message.url, message.request, controller.signal)
    .then(
      (answer) => port.postMessage({ id, answer } satisfies FromFetchWorker),
      (error: unknown) => port.postMessage({ id, error: plainError(error) } satisfies FromFetchWorker),
    )
    .finally(() => running.delete(id));
});
