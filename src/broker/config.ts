// The broker's environment, parsed and validated once at start. Everything else receives a Config
// value; nothing below this file reads process.env.
import { z } from 'zod';
import { type RedisMode, parseRedisUrl } from './store/redis-url.js';

import { TIERS, type Tier } from '../lib/api.js';

export { TIERS, type Tier };

const GiB = 1024 ** 3;

/** docs/API.md "Tiers" defaults; `bytesPer30Days: null` means unlimited. */
export interface TierLimits {
  concurrentSessions: number;
  bytesPer30Days: number | null;
  requestsPerMinute: number;
}

export const DEFAULT_TIERS: Record<Tier, TierLimits> = {
  free: { concurrentSessions: 1, bytesPer30Days: 10 * GiB, requestsPerMinute: 60 },
  pro: { concurrentSessions: 5, bytesPer30Days: 1024 * GiB, requestsPerMinute: 600 },
  business: { concurrentSessions: 50, bytesPer30Days: null, requestsPerMinute: 3000 },
};

const tierLimitsSchema = z.object({
  concurrentSessions: z.number().int().min(0),
  bytesPer30Days: z.number().int().min(0).nullable(),
  requestsPerMinute: z.number().int().min(1),
});

const csv = z.string().transform((s) =>
  s
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean),
);

const envSchema = z.object({
  /** redis://, rediss://, redis+sentinel:// or redis+cluster:// (store/redis-url.ts). */
  REDIS_URL: z
    .string()
    .default('redis://127.0.0.1:6379')
    .transform((url, ctx) => {
      try {
        return { url, mode: parseRedisUrl(url).mode };
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    }),
  /** Replicas that must hold a new session before 201; default 1 with Sentinel or Cluster, 0 for one Redis. */
  REDIS_WAIT_REPLICAS: z.coerce.number().int().min(0).max(100).optional(),
  REDIS_WAIT_TIMEOUT_MS: z.coerce.number().int().min(1).max(60_000).default(1000),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().default('0.0.0.0'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Comma-separated IPs/CIDRs (or Express names like `loopback`) whose X-Forwarded-For is believed. */
  TRUSTED_PROXIES: csv.default([]),
  /** JSON overriding parts of the tier table, e.g. {"free":{"requestsPerMinute":30}}. */
  TB_TIERS: z
    .string()
    .optional()
    .transform((s, ctx) => {
      if (!s) return {};
      try {
        return JSON.parse(s) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'TB_TIERS is not JSON' });
        return z.NEVER;
      }
    })
    .pipe(z.partialRecord(z.enum(TIERS), tierLimitsSchema.partial())),
  PUBLIC_BURST: z.coerce.number().int().min(1).default(10),
  PUBLIC_REFILL_PER_SECOND: z.coerce.number().positive().default(1),
  /** The operator's Stripe Payment Link (or Checkout URL); absent = billing disabled. */
  STRIPE_PAYMENT_LINK: z.string().url().optional(),
  STRIPE_WEBHOOK_SECRET: z.string().min(1).optional(),
  /** Only used to construct the stripe client object; webhook verification needs no network. */
  STRIPE_SECRET_KEY: z.string().min(1).optional(),
  STRIPE_WEBHOOK_TOLERANCE_SECONDS: z.coerce.number().int().min(1).default(300),
  /** All tokens of one account together: this many times the tier's per-token cap. */
  TB_ACCOUNT_RATE_FACTOR: z.coerce.number().positive().default(2),
  TB_MAX_KEYS_PER_ACCOUNT: z.coerce.number().int().min(1).default(100),
  /** Anonymous signups per minute, across all sources and brokers. */
  TB_SIGNUP_PER_MINUTE: z.coerce.number().int().min(1).default(60),
  /** Anonymous signups per minute from one source (IPv6: per /64), across brokers. */
  TB_SIGNUP_PER_SOURCE_PER_MINUTE: z.coerce.number().int().min(1).default(5),
  /** An anonymous account with no request for this many days is deleted. */
  TB_ANONYMOUS_IDLE_DAYS: z.coerce.number().int().min(1).default(30),
  /** Failed authentications per source (IPv6: per /64) per minute before 429 without a lookup. */
  TB_AUTH_FAILURES_PER_MINUTE: z.coerce.number().int().min(1).default(30),
  /** Highest `capacity` a node may register with. */
  TB_NODE_MAX_CAPACITY: z.coerce.number().int().min(1).default(10_000),
  /**
   * Requests per minute of one node token: its nodes' registrations and feed polls, and as many
   * heartbeats again in a window of their own (polls must never cost a node its health).
   */
  TB_NODE_REQUESTS_PER_MINUTE: z.coerce.number().int().min(1).default(600),
  /** The heartbeat interval handed to nodes; a node is lost after 3 intervals without one. */
  TB_HEARTBEAT_MS: z.coerce.number().int().min(100).max(600_000).default(10_000),
  /** How often each broker closes expired sessions and fails over lost nodes; default min(5000, TB_HEARTBEAT_MS). */
  TB_REAP_INTERVAL_MS: z.coerce.number().int().min(10).max(86_400_000).optional(),
  /** Set: /metrics moves off the API port to its own listener on METRICS_HOST. */
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  METRICS_HOST: z.string().default('127.0.0.1'),
  /** The broker's external base URL (OAuth issuer, links in pages); default http://HOST:PORT. */
  TB_PUBLIC_URL: z
    .string()
    .url()
    .refine((u) => /^https?:$/.test(new URL(u).protocol) && !new URL(u).search && !new URL(u).hash, {
      message: 'an http(s) URL without query or fragment',
    })
    .optional(),
});

export interface Config {
  redisUrl: string;
  redisMode: RedisMode;
  /** WAIT before acknowledging a session: replicas (0 = off) and how long to wait for them. */
  redisWait: { replicas: number; timeoutMs: number };
  port: number;
  host: string;
  logLevel: z.infer<typeof envSchema>['LOG_LEVEL'];
  trustedProxies: string[];
  tiers: Record<Tier, TierLimits>;
  publicBurst: number;
  publicRefillPerSecond: number;
  /** Abuse limits (docs/API.md "Rate limits"). */
  limits: {
    accountRateFactor: number;
    maxKeysPerAccount: number;
    signupsPerMinute: number;
    signupsPerSourcePerMinute: number;
    anonymousIdleDays: number;
    authFailuresPerMinute: number;
    nodeMaxCapacity: number;
    nodeRequestsPerMinute: number;
  };
  /** Heartbeat interval (ms) handed to nodes at registration and in every heartbeat answer. */
  heartbeatMs: number;
  /** How often the reaper runs (services/reaper.ts). */
  reapIntervalMs: number;
  /** undefined: /metrics is served on the API port. */
  metrics: { port: number | undefined; host: string };
  /** External base URL without a trailing slash: the OAuth issuer. */
  publicUrl: string;
  stripe: {
    paymentLink: string | undefined;
    webhookSecret: string | undefined;
    secretKey: string | undefined;
    toleranceSeconds: number;
  };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** http://HOST:PORT, with a wildcard bind address read as loopback (it names no reachable host). */
function defaultPublicUrl(host: string, port: number): string {
  const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
}

/** Parses an environment (process.env by default); throws ConfigError naming every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // An empty variable means unset (`STRIPE_PAYMENT_LINK=` disables billing).
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => {
      const name = i.path.join('.') || 'env';
      // A coerced number reads NaN for a word, and the schema would report the NaN, not what was set.
      if (i.code === 'invalid_type' && i.expected === 'number')
        return `${name}: '${present[name]}' is not a number`;
      return `${name}: ${i.message}`;
    });
    throw new ConfigError(`invalid broker environment: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  const tiers = Object.fromEntries(
    TIERS.map((t) => [t, { ...DEFAULT_TIERS[t], ...e.TB_TIERS[t] }]),
  ) as Record<Tier, TierLimits>;
  return {
    redisUrl: e.REDIS_URL.url,
    redisMode: e.REDIS_URL.mode,
    redisWait: {
      replicas: e.REDIS_WAIT_REPLICAS ?? (e.REDIS_URL.mode === 'single' ? 0 : 1),
      timeoutMs: e.REDIS_WAIT_TIMEOUT_MS,
    },
    port: e.PORT,
    host: e.HOST,
    logLevel: e.LOG_LEVEL,
    trustedProxies: e.TRUSTED_PROXIES,
    tiers,
    publicBurst: e.PUBLIC_BURST,
    publicRefillPerSecond: e.PUBLIC_REFILL_PER_SECOND,
    limits: {
      accountRateFactor: e.TB_ACCOUNT_RATE_FACTOR,
      maxKeysPerAccount: e.TB_MAX_KEYS_PER_ACCOUNT,
      signupsPerMinute: e.TB_SIGNUP_PER_MINUTE,
      signupsPerSourcePerMinute: e.TB_SIGNUP_PER_SOURCE_PER_MINUTE,
      anonymousIdleDays: e.TB_ANONYMOUS_IDLE_DAYS,
      authFailuresPerMinute: e.TB_AUTH_FAILURES_PER_MINUTE,
      nodeMaxCapacity: e.TB_NODE_MAX_CAPACITY,
      nodeRequestsPerMinute: e.TB_NODE_REQUESTS_PER_MINUTE,
    },
    heartbeatMs: e.TB_HEARTBEAT_MS,
    reapIntervalMs: e.TB_REAP_INTERVAL_MS ?? Math.min(5000, e.TB_HEARTBEAT_MS),
    metrics: { port: e.METRICS_PORT, host: e.METRICS_HOST },
    publicUrl: (e.TB_PUBLIC_URL ?? defaultPublicUrl(e.HOST, e.PORT)).replace(/\/+$/, ''),
    stripe: {
      paymentLink: e.STRIPE_PAYMENT_LINK,
      webhookSecret: e.STRIPE_WEBHOOK_SECRET,
      secretKey: e.STRIPE_SECRET_KEY,
      toleranceSeconds: e.STRIPE_WEBHOOK_TOLERANCE_SECONDS,
    },
  };
}
