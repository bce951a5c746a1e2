// createApp(): the Express edge. Request ids, structured logs, metrics, JSON-only bodies up to
// 64 KiB (a node's heartbeat: sized for its capacity, routes/nodes.ts), the route modules of routes/index.ts, then 404 and the one error mapping of errors.ts.
import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { createContext, type BrokerContext, type ContextDeps } from './context.js';
import { ApiError, invalidRequest, notFound, toHttpError } from './errors.js';
import { BODY_LIMIT } from './http.js';
import { registerFleetMetrics } from './services/fleet.js';
import { acceptsForm, readsOwnBody, ROUTE_MODULES } from './routes/index.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

declare module 'express-serve-static-core' {
  interface Request {
    /** Verbatim body bytes of a JSON request (Stripe signatures are computed over them). */
    rawBody?: Buffer;
    /** The request id, also sent back as X-Request-Id. */
    requestId: string;
  }
}

/** The broker context an app was built with (tests and main use it for services and shutdown). */
export interface BrokerApp extends Express {
  locals: Express['locals'] & { broker: BrokerContext; close: () => void };
}

/**
 * The server's `clientError` listener: a request Node's HTTP parser refuses never reaches Express, and
 * Node's own answer is an empty 400 (431 for headers over 16 KiB). This one keeps those statuses and
 * gives them the contract's shape and a request id; a connection already gone or half answered is just
 * closed, and a request that timed out gets Node's 408.
 */
export function answerUnparsable(err: Error & { code?: string }, socket: Duplex): void {
  // As Node's own handler: answer unless a response on this connection is half written.
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (!socket.writable || inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    socket.end('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n');
    return;
  }
  const refused =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new ApiError('headers_too_large')
      : invalidRequest('request', 'The request is not valid HTTP/1.1.');
  const { status, body } = toHttpError(refused);
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nX-Request-Id: ${randomUUID()}\r\n` +
      `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\n` +
      `Connection: close\r\n\r\n${text}`,
  );
}

const hasBody = (req: Request) =>
  req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;

export function createApp(deps: ContextDeps): BrokerApp {
  const stop = new AbortController();
  const ctx = createContext(deps, stop.signal);
  registerFleetMetrics(ctx);
  const app = express() as BrokerApp;
  app.locals.broker = ctx;
  app.locals.close = () => stop.abort();
  app.disable('x-powered-by');
  app.set('etag', false);
  // X-Forwarded-For is believed only from these hops (proxy-addr semantics); none by default.
  app.set('trust proxy', deps.config.trustedProxies.length > 0 ? deps.config.trustedProxies : false);

  app.use((req: Request, res: Response, next: NextFunction) => {
    const incoming = req.headers['x-request-id'];
    req.requestId = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    res.setHeader('X-Request-Id', req.requestId);
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = typeof res.locals.route === 'string' ? res.locals.route : 'unmatched';
      ctx.metrics.httpRequests.inc({ method: req.method, route, status: String(res.statusCode) });
      ctx.metrics.httpDuration.observe({ method: req.method, route }, seconds);
      // Path without query string; headers (Authorization, fingerprints) are never logged.
      ctx.logger.info(
        {
          req_id: req.requestId,
          method: req.method,
          path: req.path,
          status: res.statusCode,
          latency_ms: Math.round(seconds * 1e6) / 1e3,
        },
        'request',
      );
    });
    next();
  });

  // JSON only: a body of any other type is refused before parsing. The OAuth endpoints and the pages'
  // forms take form posts instead (RFC 6749, HTML) and parse them themselves.
  app.use((req: Request, _res: Response, next: NextFunction) => {
    if (hasBody(req) && !acceptsForm(req.path) && !req.is(['application/json', 'application/*+json'])) {
      throw invalidRequest('body', 'Content-Type must be application/json.');
    }
    next();
  });
  const json = express.json({
    limit: BODY_LIMIT,
    type: ['application/json', 'application/*+json'],
    verify: (req, _res, buf) => {
      (req as Request).rawBody = buf;
    },
  });
  app.use((req: Request, res: Response, next: NextFunction) =>
    acceptsForm(req.path) || readsOwnBody(req.path) ? next() : json(req, res, next),
  );

  const router = express.Router();
  for (const register of ROUTE_MODULES) register(ctx, router);
  app.use(router);

  app.use(() => {
    throw notFound('No such endpoint.');
  });
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const mapped = toHttpError(err);
    if (mapped.unexpected) {
      ctx.logger.error({ req_id: req.requestId, err }, 'unexpected fault');
    } else if (mapped.status >= 500) {
      ctx.logger.warn({ req_id: req.requestId, error: mapped.body.error }, 'request failed');
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    res.status(mapped.status).set(mapped.headers).json(mapped.body);
  });
  return app;
}
