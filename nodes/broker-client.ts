// The node side of docs/API.md "Exit nodes": register, heartbeat, and the long-polled peer feed, over fetch
// (on the fetch thread under `run`: fetch-thread.ts).
// Every answer is a typed outcome, never a throw: the agent decides what each means (retry, register
// again, exit). Broker bodies are untrusted input and are validated before anything uses them.
import { z } from 'zod';
import {
  FeedPage,
  HeartbeatAnswer,
  RegisterAnswer,
  type FeedPeer,
  type NodeHeartbeat,
  type NodeRegistration,
} from '../src/lib/api.js';
import { fetchRefusal } from '../src/lib/fetch-refusal.js';
import { fetchExchange, type Exchange, type ExchangeAnswer } from './fetch-thread.js';

/** Why a call did not succeed, in the terms the agent acts on. */
export type BrokerFailure =
  | { readonly kind: 'unauthorized'; readonly message: string } // 401: the token is wrong; retrying cannot help
  | { readonly kind: 'unknown_node'; readonly message: string } // 404: register again
  | { readonly kind: 'rejected'; readonly message: string } // any other 4xx: our request is wrong
  | { readonly kind: 'refused_url'; readonly message: string } // fetch will never request this URL: fix --broker
  | { readonly kind: 'unavailable'; readonly message: string; readonly retryAfterMs?: number }; // network, 5xx, 429, bad body

export type BrokerResult<T> =
  { readonly ok: true; readonly value: T } | ({ readonly ok: false } & BrokerFailure);

export interface Registration {
  region: string;
  endpoint: string;
  publicKey: string;
  egressIps: readonly string[];
  capacity: number;
  version: string;
}

export interface PeerReport {
  publicKey: string;
  rxBytes: number;
  txBytes: number;
  /** ms since the epoch; 0 = never. */
  lastHandshakeUnixMs: number;
}

export interface HeartbeatReport {
  load: number;
  draining: boolean;
  peers: readonly PeerReport[];
}

const ErrorBody = z.object({ message: z.string() }).partial();

export type { FeedPage, FeedPeer, HeartbeatAnswer, RegisterAnswer };

// A request that hangs (a half-open connection, a stuck proxy) must fail so the agent can retry.
const REQUEST_TIMEOUT_MS = 10_000;
// undici's code for "the other side closed" the connection before any answer.
const CLOSED_IDLE_CONNECTION = 'UND_ERR_SOCKET';
// The feed's own wait comes on top of that.
export const FEED_WAIT_SECONDS = 25;
// Error messages from the broker are echoed in one log line; keep them short.
const MAX_MESSAGE = 200;

const oneLine = (text: string) => text.replace(/\s+/g, ' ').trim().slice(0, MAX_MESSAGE);

function retryAfterMs(header: string | null): number | undefined {
  if (header === null) return undefined;
  const seconds = Number(header);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}

export class BrokerClient {
  private readonly base: string;
  /** The base as messages show it: without a user or password. */
  private readonly shownBase: string;

  constructor(
    baseUrl: string,
    private readonly token: string,
    /** How a request is made: fetch on this thread unless told (the node's fetch thread). */
    private readonly exchange: Exchange = fetchExchange,
  ) {
    this.base = baseUrl.replace(/\/+$/, '');
    this.shownBase = this.base.replace(/\/\/[^/@]*@/, '//');
  }

  register(registration: Registration, signal?: AbortSignal): Promise<BrokerResult<RegisterAnswer>> {
    const body: NodeRegistration = {
      region: registration.region,
      endpoint: registration.endpoint,
      public_key: registration.publicKey,
      egress_ips: [...registration.egressIps],
      capacity: registration.capacity,
      version: registration.version,
    };
    return this.call('POST', '/v1/nodes/register', RegisterAnswer, REQUEST_TIMEOUT_MS, signal, body);
  }

  heartbeat(
    nodeId: string,
    report: HeartbeatReport,
    signal?: AbortSignal,
  ): Promise<BrokerResult<HeartbeatAnswer>> {
    const body: NodeHeartbeat = {
      load: report.load,
      draining: report.draining,
      peers: report.peers.map((p) => ({
        public_key: p.publicKey,
        rx_bytes: p.rxBytes,
        tx_bytes: p.txBytes,
        last_handshake_at: p.lastHandshakeUnixMs > 0 ? new Date(p.lastHandshakeUnixMs).toISOString() : null,
      })),
    };
    const path = `/v1/nodes/${encodeURIComponent(nodeId)}/heartbeat`;
    return this.call('POST', path, HeartbeatAnswer, REQUEST_TIMEOUT_MS, signal, body);
  }

  /** One long poll: answers at once when there are changes (or no cursor), else after up to `waitSeconds`. */
  peers(
    nodeId: string,
    cursor: string,
    signal?: AbortSignal,
    waitSeconds = FEED_WAIT_SECONDS,
  ): Promise<BrokerResult<FeedPage>> {
    const query = new URLSearchParams({ cursor, wait: String(waitSeconds) });
    return this.call(
      'GET',
      `/v1/nodes/${encodeURIComponent(nodeId)}/peers?${query}`,
      FeedPage,
      REQUEST_TIMEOUT_MS + waitSeconds * 1000,
      signal,
    );
  }

  private async call<T>(
    method: 'GET' | 'POST',
    path: string,
    schema: z.ZodType<T>,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    body?: unknown,
  ): Promise<BrokerResult<T>> {
    const timeout = AbortSignal.timeout(timeoutMs);
    let response: ExchangeAnswer | undefined;
    for (let attempt = 1; response === undefined; attempt++) {
      try {
        response = await this.exchange(
          this.base + path,
          {
            method,
            headers: {
              authorization: `Bearer ${this.token}`,
              accept: 'application/json',
              ...(body !== undefined && { 'content-type': 'application/json' }),
            },
            ...(body !== undefined && { body: JSON.stringify(body) }),
          },
          signal ? AbortSignal.any([signal, timeout]) : timeout,
        );
      } catch (error) {
        response = undefined;
        const refused = fetchRefusal(error);
        if (refused !== undefined)
          return { ok: false, kind: 'refused_url', message: `--broker ${this.shownBase}: ${refused}` };
        const cause = (error as { cause?: { code?: string; message?: string } }).cause;
        // The broker closed a kept-alive connection just as this request went out on it (its idle
        // timeout, or an event loop that stalled past it): nothing was read, so one more try on a fresh
        // connection is safe, and every request here is idempotent besides.
        if (cause?.code === CLOSED_IDLE_CONNECTION && attempt < 2 && !timeout.aborted && !signal?.aborted)
          continue;
        const reason = timeout.aborted
          ? 'timed out'
          : oneLine(cause?.code ?? cause?.message ?? (error as Error).message);
        return { ok: false, kind: 'unavailable', message: `${method} ${path.split('?')[0]}: ${reason}` };
      }
    }
    let json: unknown;
    try {
      json = JSON.parse(response.text);
    } catch {
      json = undefined;
    }
    const where = `${method} ${path.split('?')[0]} → ${response.status}`;
    if (response.status < 200 || response.status > 299) {
      const said = ErrorBody.safeParse(json);
      const message = `${where}${said.success && said.data.message ? `: ${oneLine(said.data.message)}` : ''}`;
      if (response.status === 401) return { ok: false, kind: 'unauthorized', message };
      if (response.status === 404) return { ok: false, kind: 'unknown_node', message };
      if (response.status >= 500 || response.status === 429 || response.status === 408) {
        const after = retryAfterMs(response.retryAfter);
        return {
          ok: false,
          kind: 'unavailable',
          message,
          ...(after !== undefined && { retryAfterMs: after }),
        };
      }
      return { ok: false, kind: 'rejected', message };
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) return { ok: false, kind: 'unavailable', message: `${where}: unexpected body` };
    return { ok: true, value: parsed.data };
  }
}
