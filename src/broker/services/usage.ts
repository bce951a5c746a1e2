// Usage per account and 30-day period (docs/API.md "Usage and billing", "Tiers"). Periods are anchored at
// the account's creation, so every account gets whole 30-day windows of its own. Byte counts come
// from node heartbeats (services/nodes.ts); session counts from session creation.
import type { Tier } from '../config.js';
import type { Usage } from '../../lib/api.js';
import type { BrokerContext } from '../context.js';
import { isoTime } from '../context.js';
import { keys, TTL } from '../store/keys.js';
import { execAll } from '../store/redis.js';

export const PERIOD_MS = 30 * 24 * 60 * 60 * 1000;

export interface Period {
  start: number;
  end: number;
}

/** The 30-day period containing `nowMs` for an account created at `anchorMs`. */
export function periodOf(anchorMs: number, nowMs: number): Period {
  const start = anchorMs + Math.max(0, Math.floor((nowMs - anchorMs) / PERIOD_MS)) * PERIOD_MS;
  return { start, end: start + PERIOD_MS };
}

export interface UsageDelta {
  accountId: string;
  /** The account's created_at, as recorded on the session. */
  anchorMs: number;
  bytes: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** The UTC day of `ms` as YYYY-MM-DD: the name of its daily counter. */
export const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** An account's bytes in its current period, after a heartbeat's deltas. */
export interface PeriodTotal {
  accountId: string;
  periodBytes: number;
}

/**
 * Adds byte deltas to each account's current period, today's counter and the lifetime counter;
 * answers each account's new period total.
 */
export async function addUsage(
  ctx: BrokerContext,
  deltas: UsageDelta[],
  nowMs: number,
): Promise<PeriodTotal[]> {
  const byAccount = new Map<string, UsageDelta>();
  for (const d of deltas) {
    const seen = byAccount.get(d.accountId);
    byAccount.set(d.accountId, seen ? { ...seen, bytes: seen.bytes + d.bytes } : d);
  }
  // One MULTI per account: its keys share the account's slot.
  return Promise.all(
    [...byAccount.values()].map(async (d) => {
      const periodKey = keys.accountPeriod(d.accountId, periodOf(d.anchorMs, nowMs).start);
      const dayKey = keys.accountDay(d.accountId, dayOf(nowMs));
      const [periodBytes] = await execAll(
        ctx.redis
          .multi()
          .hincrby(periodKey, 'bytes', d.bytes)
          .expire(periodKey, TTL.usagePeriodSeconds)
          .incrby(dayKey, d.bytes)
          .expire(dayKey, TTL.usageDaySeconds)
          .hincrby(keys.accountUsage(d.accountId), 'bytes_transferred', d.bytes),
      );
      return { accountId: d.accountId, periodBytes: Number(periodBytes) };
    }),
  );
}

/** GET /v1/usage: this period's bytes and sessions against the tier's limits. */
export async function usageOf(
  ctx: BrokerContext,
  account: { id: string; plan: Tier; createdAt: number },
): Promise<Usage> {
  const now = ctx.clock();
  const period = periodOf(account.createdAt, now);
  const limits = ctx.config.tiers[account.plan];
  const [counters, active] = (await execAll(
    ctx.redis
      .multi()
      .hmget(keys.accountPeriod(account.id, period.start), 'bytes', 'sessions_created')
      .zcount(keys.accountLiveSessions(account.id), `(${now}`, '+inf'),
  )) as [(string | null)[], number];
  return {
    tier: account.plan,
    period: { start: isoTime(period.start), end: isoTime(period.end) },
    bytes: { used: Number(counters[0] ?? 0), limit: limits.bytesPer30Days },
    sessions: { active, limit: limits.concurrentSessions, created: Number(counters[1] ?? 0) },
    requests: { limit_per_minute: limits.requestsPerMinute },
  };
}

/** Bytes per UTC day for the `days` days ending today, oldest first (days without traffic read 0). */
export async function dailyBytes(
  ctx: BrokerContext,
  accountId: string,
  days: number,
): Promise<{ day: string; bytes: number }[]> {
  const today = ctx.clock();
  const names = Array.from({ length: days }, (_, i) => dayOf(today - (days - 1 - i) * DAY_MS));
  const values = await ctx.redis.mget(...names.map((day) => keys.accountDay(accountId, day)));
  return names.map((day, i) => ({ day, bytes: Number(values[i] ?? 0) }));
}
