// The node's HTTP to its broker, on a worker thread of its own. Node's fetch detaches the ArrayBuffers of
// every body it reads (its byte streams transfer each chunk), and the first detach on a thread costs V8's
// no-detach promise there for good: the data path's typed-array code then checks for detached buffers at
// every access (what that costs: docs/ARCHITECTURE.md). A fetch on the worker detaches the worker's buffers
// only; what crosses back is a status, one header and the body's text.
import { Worker } from 'node:worker_threads';

import { builtWorker } from './worker-file.js';

export interface ExchangeRequest {
  readonly method: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
}

/** What the broker client reads of an answer. */
export interface ExchangeAnswer {
  readonly status: number;
  readonly retryAfter: string | null;
  readonly text: string;
}

/**
 * One request and its whole answer. Fails with an error named as fetch's (a `TypeError` whose `cause` says
 * why: refused URL, network; across the thread a plain Error of that name, so read `name`, never
 * instanceof), the signal's reason once it aborts, or the thread's own one-line Error (closed, exited).
 */
export type Exchange = (
  url: string,
  request: ExchangeRequest,
  signal: AbortSignal,
) => Promise<ExchangeAnswer>;

/** The exchange on the calling thread. */
export const fetchExchange: Exchange = async (url, request, signal) => {
  const response = await fetch(url, { ...request, signal });
  return {
    status: response.status,
    retryAfter: response.headers.get('retry-after'),
    text: await response.text(),
  };
};

/** A failure as it crosses threads: what the broker client reads of an Error (fetchRefusal and its own). */
export interface PlainError {
  readonly name: string;
  readonly message: string;
  readonly cause?: { readonly code?: string; readonly message?: string };
}

export function plainError(error: unknown): PlainError {
  // Object(): whatever was thrown, null and strings too.
  const { name, message, cause } = Object(error) as Error & { cause?: { code?: unknown; message?: unknown } };
  const text = (value: unknown) => (typeof value === 'string' ? value : undefined);
  return {
    name: text(name) ?? 'Error',
    message: text(message) ?? String(error),
    ...(cause !== undefined &&
      cause !== null && { cause: { code: text(cause.code), message: text(cause.message) } }),
  };
}

export type ToFetchWorker =
  | {
      readonly kind: 'exchange';
      readonly id: number;
      readonly url: string;
      readonly request: ExchangeRequest;
    }
  | { readonly kind: 'abort'; readonly id: number };

export type FromFetchWorker =
  | { readonly id: number; readonly answer: ExchangeAnswer }
  | { readonly id: number; readonly error: PlainError };

const WORKER_FILES = ['./fetch-worker.js', '../dist/nodes/fetch-worker.js'];

interface Pending {
  resolve(answer: ExchangeAnswer): void;
  reject(error: unknown): void;
}

export class FetchThread {
  private worker: Worker | undefined;
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private closed = false;

  /** `workerFile`: the compiled worker (default: fetch-worker.js, built). */
  constructor(private readonly workerFile?: string) {}

  /** Exchange on the thread, started at the first call and again after it died (its calls failed). */
  readonly exchange: Exchange = (url, request, signal) =>
    new Promise<ExchangeAnswer>((resolve, reject) => {
      if (this.closed) throw new Error('the fetch thread is closed');
      signal.throwIfAborted();
      const id = this.nextId++;
      const worker = this.started();
      // An abort fails the call at once, as fetch does; the worker drops its request and its late answer is ignored.
      const aborted = () => {
        this.pending.delete(id);
        worker.postMessage({ kind: 'abort', id } satisfies ToFetchWorker);
        reject(signal.reason);
      };
      signal.addEventListener('abort', aborted, { once: true });
      const settled = () => {
        this.pending.delete(id);
        signal.removeEventListener('abort', aborted);
      };
      this.pending.set(id, {
        resolve: (answer) => (settled(), resolve(answer)),
        reject: (error) => (settled(), reject(error)),
      });
      worker.postMessage({ kind: 'exchange', id, url, request } satisfies ToFetchWorker);
    });

  private started(): Worker {
    if (this.worker !== undefined) return this.worker;
    const worker = new Worker(this.workerFile ?? builtWorker(import.meta.url, WORKER_FILES, 'fetch thread'));
    worker.unref(); // the device's socket keeps the process alive, not its helpers
    worker.on('message', (message: FromFetchWorker) => {
      const call = this.pending.get(message.id);
      if (call === undefined) return;
      if ('answer' in message) call.resolve(message.answer);
      else call.reject(Object.assign(new Error(message.error.message), message.error));
    });
    const died = (why: string) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      this.failPending(why);
    };
    worker.on('error', (error: unknown) => died(`failed: ${plainError(error).message.split('\n')[0]}`));
    worker.on('exit', (code) => died(`exited with code ${code}`));
    this.worker = worker;
    return worker;
  }

  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    this.failPending('is closed');
    await worker?.terminate();
  }

  /** Fails every call waiting for an answer with one line: `the fetch thread ${why}`. */
  private failPending(why: string): void {
    for (const call of [...this.pending.values()]) call.reject(new Error(`the fetch thread ${why}`));
  }
}
