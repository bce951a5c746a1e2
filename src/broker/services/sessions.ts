// Sessions (docs/API.md "Sessions"): one WireGuard peer on one exit node.
//
// Creating one is two slots' worth of work, because an account's sessions may land in any region:
//   1. account slot  ({acct:<id>}, RESERVE_SLOT): byte quota and concurrent-session checks, then a
//      reservation in the account's live ZSET with a short deadline (RESERVATION_MS);
//   2. region slot   ({region:<id>}, CREATE_SESSION): node choice, address lease, session record,
//      expiry index and the node's feed event, all in one script: all of it or none of it;
//   3. account slot  (MULTI): the reservation's deadline becomes the session's expiry; counters.
// Trade-off, chosen on purpose: a broker that dies between 1 and 2 holds a slot for at most
// RESERVATION_MS (never locks a user out for a session's lifetime), and a step 2 that fails (its
// region's Redis failing over) gives the slot back at once, so retries through a failover do not use
// up the account's quota; one that dies between 2 and 3
// leaves a live session that stops counting against concurrency after RESERVATION_MS, until it
// expires and the reaper removes it. Both err in the user's favour, and neither can leak an address
// or a peer: those live only in step 2's atomic script. Putting concurrency in the region slot would
// make step 2 alone enough, but would only bound sessions per region, not per account.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { TIERS, type Tier } from '../config.js';
import { isoTime, type BrokerContext } from '../context.js';
import {
  conflict,
  invalidRequest,
  noCapacity,
  notFound,
  quotaExhausted,
  tierRequired,
  unavailable,
} from '../errors.js';
import { keys, TTL } from '../store/keys.js';
import { execAll, waitForReplicas } from '../store/redis.js';
import { newId } from '../tokens.js';
import { MAX_ADDRESS_INDEX, peerAllowedIps, type Pool } from '../../lib/addresses.js';
import {
  SESSION_TTL_SECONDS,
  type ClosedReason,
  type CreatedSession,
  type Session,
  type SessionNode,
  type SessionStatus,
} from '../../lib/api.js';
import { PRESHARED_KEY_PLACEHOLDER, sessionWgQuick, type SessionFields } from '../../lib/session-config.js';
import { keyFromBase64 } from '../../lib/wgkey.js';
import { getAccount } from './accounts.js';
import { settleLostSessions } from './failover.js';
import { FEED_MAX_LENGTH } from './feed.js';
import {
  poolOfTag,
  runCloseSession,
  runCreateSession,
  runReserveSlot,
  runRetireSession,
  type CloseOutcome,
} from './lua.js';
import { isLost, lastHeartbeats, nodePool, type NodeBeat } from './nodes.js';
import { getRegion } from './regions.js';
import { periodOf, type PeriodTotal } from './usage.js';

const HOUR = 3600;
export const DEFAULT_TTL_SECONDS = 24 * HOUR;
/** Longest session per tier; a longer ttl_seconds asks for a higher tier. */
export const MAX_TTL_SECONDS: Record<Tier, number> = {
  free: 24 * HOUR,
  pro: 7 * 24 * HOUR,
  business: SESSION_TTL_SECONDS.max,
};
/** How long a concurrency reservation lasts before step 3 makes it a session (see above). */
export const RESERVATION_MS = 30_000;
/** A handshake within this window makes a session `active`; older, `idle` (WireGuard rekeys every 2 min). */
export const ACTIVE_HANDSHAKE_MS = 3 * 60_000;
/** Resolvers put in client configs (the exit nodes NAT to the internet; any public resolver works). */
export const DEFAULT_DNS = ['1.1.1.1', '2606:4700:4700::1111'];
export const PERSISTENT_KEEPALIVE = 25;
export const FULL_TUNNEL = ['0.0.0.0/0', '::/0'];

/** Closed (and expired) sessions kept readable per account; older ones are deleted early. */
export const MAX_CLOSED_SESSIONS = 100;

export interface CreateSessionInput {
  region: string;
  /** Base64 of the client's X25519 public key; absent = the broker makes the pair. */
  publicKey?: string;
  ttlSeconds?: number;
  presharedKey?: boolean;
}

export interface SessionOwner {
  id: string;
  plan: Tier;
  createdAt: number;
}

/**
 * A WireGuard key pair, base64. node:crypto's X25519 (OpenSSL) rather than tweetnacl's: the same keys,
 * about 4x less CPU per session creation, which is the broker's hottest path.
 */
function x25519KeyPair(): { privateKey: string; publicKey: string } {
  const pair = generateKeyPairSync('x25519');
  const raw = (jwk: { d?: string; x?: string }, field: 'd' | 'x') =>
    Buffer.from(jwk[field] ?? '', 'base64url').toString('base64');
  return {
    privateKey: raw(pair.privateKey.export({ format: 'jwk' }), 'd'),
    publicKey: raw(pair.publicKey.export({ format: 'jwk' }), 'x'),
  };
}

/** The cheapest tier above `plan` that `allowed` contains (or the top tier). */
function tierAbove(plan: Tier, allowed: (t: Tier) => boolean): Tier {
  return TIERS.slice(TIERS.indexOf(plan) + 1).find(allowed) ?? TIERS[TIERS.length - 1]!;
}

function checkTtl(plan: Tier, ttlSeconds: number): void {
  if (ttlSeconds <= MAX_TTL_SECONDS[plan]) return;
  const tier = tierAbove(plan, (t) => ttlSeconds <= MAX_TTL_SECONDS[t]);
  if (ttlSeconds > MAX_TTL_SECONDS[tier]) {
    throw invalidRequest('ttl_seconds', `ttl_seconds is at most ${MAX_TTL_SECONDS[tier]}.`);
  }
  throw tierRequired(tier, `ttl_seconds above ${MAX_TTL_SECONDS[plan]} needs the ${tier} tier.`);
}

async function release(ctx: BrokerContext, accountId: string, sessionId: string): Promise<void> {
  await execAll(
    ctx.redis
      .multi()
      .zrem(keys.accountLiveSessions(accountId), sessionId)
      .hdel(keys.accountSessions(accountId), sessionId),
  );
}

export async function createSession(
  ctx: BrokerContext,
  owner: SessionOwner,
  input: CreateSessionInput,
): Promise<CreatedSession> {
  const region = await getRegion(ctx, input.region);
  if (!region) throw invalidRequest('region', `Unknown region '${input.region}'.`);
  if (!region.tiers.includes(owner.plan)) {
    throw tierRequired(
      tierAbove(owner.plan, (t) => region.tiers.includes(t)),
      `Region ${region.id} is not available on the ${owner.plan} tier.`,
    );
  }
  const ttlSeconds = input.ttlSeconds ?? Math.min(DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS[owner.plan]);
  checkTtl(owner.plan, ttlSeconds);

  const pair = input.publicKey === undefined ? x25519KeyPair() : null;
  const publicKey = pair ? pair.publicKey : input.publicKey!;
  const presharedKey = input.presharedKey ? randomBytes(32).toString('base64') : undefined;
  const sessionId = newId('ses');
  const now = ctx.clock();
  const expiresAt = now + ttlSeconds * 1000;
  const limits = ctx.config.tiers[owner.plan];
  const period = periodOf(owner.createdAt, now);
  const periodKey = keys.accountPeriod(owner.id, period.start);

  // 1. account slot: quota, then a short reservation.
  const reservation = {
    accountId: owner.id,
    periodKey,
    sessionId,
    now,
    deadline: now + RESERVATION_MS,
    concurrentLimit: limits.concurrentSessions,
    byteLimit: limits.bytesPer30Days,
    region: region.id,
  };
  let reserved = await runReserveSlot(ctx.redis, reservation);
  if (reserved.outcome === 'bytes') {
    throw quotaExhausted(Math.ceil((period.end - now) / 1000), 'The byte quota of this period is used up.');
  }
  // A session whose node is lost holds no slot: settle the account's now, then ask once more.
  if (reserved.outcome === 'sessions' && (await settleLostSessions(ctx, owner.id)) > 0) {
    reserved = await runReserveSlot(ctx.redis, reservation);
  }
  if (reserved.outcome === 'sessions') {
    throw quotaExhausted(
      Math.ceil((reserved.earliestDeadline - now) / 1000),
      `At most ${limits.concurrentSessions} concurrent session${limits.concurrentSessions === 1 ? '' : 's'} ` +
        `on the ${owner.plan} tier; closing one (\`tunnelbyte disconnect\`, DELETE /v1/sessions/{id}) frees its slot at once.`,
    );
  }

  // 2. region slot: everything that must be all-or-nothing.
  const created = await runCreateSession(ctx.redis, {
    region: region.id,
    now,
    heartbeatMs: ctx.config.heartbeatMs,
    sessionId,
    accountId: owner.id,
    publicKey,
    presharedKey,
    expiresAt,
    anchor: owner.createdAt,
    maxAddressIndex: MAX_ADDRESS_INDEX,
    feedMaxLength: FEED_MAX_LENGTH,
  }).catch(async (err: unknown) => {
    // The script may have run: a session it made stays listed but stops counting, as after RESERVATION_MS.
    await ctx.redis.zrem(keys.accountLiveSessions(owner.id), sessionId).catch(() => undefined);
    throw err;
  });
  if (created.outcome !== 'ok') {
    // The script answered and wrote nothing: give the slot back.
    await release(ctx, owner.id, sessionId);
    if (created.outcome === 'duplicate_key') {
      throw conflict('This public key already has a session on every node of the region with room.');
    }
    throw noCapacity(Math.ceil(ctx.config.heartbeatMs / 1000));
  }
  const { nodeId, endpoint, nodePublicKey, addressIndex, pool } = created;

  // 3. account slot: the reservation becomes the session; counters.
  await execAll(
    ctx.redis
      .multi()
      .zadd(keys.accountLiveSessions(owner.id), 'XX', expiresAt, sessionId)
      .hincrby(periodKey, 'sessions_created', 1)
      .expire(periodKey, TTL.usagePeriodSeconds)
      .hincrby(keys.accountUsage(owner.id), 'sessions_created', 1),
  );

  // 4. durability: with REDIS_WAIT_REPLICAS, a 201 means the session is on replicas and survives a
  // failover; when they do not confirm in time, the session is taken back and the client retries.
  const { replicas, timeoutMs } = ctx.config.redisWait;
  const written = [keys.accountLiveSessions(owner.id), keys.regionNodes(region.id)];
  if (!(await waitForReplicas(ctx.redis, written, replicas, timeoutMs))) {
    await closeSession(ctx, region.id, sessionId, { state: 'closed' });
    await release(ctx, owner.id, sessionId);
    await execAll(
      ctx.redis
        .multi()
        .hincrby(periodKey, 'sessions_created', -1)
        .hincrby(keys.accountUsage(owner.id), 'sessions_created', -1),
    );
    throw unavailable(`The session did not reach ${replicas} Redis replica(s) in time; it was not created.`);
  }

  const node = { id: nodeId, endpoint, public_key: nodePublicKey };
  const fields = configFields(addressIndex, pool, node, presharedKey);
  const config = wgQuickOf(fields, node, pair ? keyFromBase64(pair.privateKey)! : null);
  return {
    id: sessionId,
    status: 'pending',
    region: region.id,
    node,
    interface: { ...fields.interface, ...(pair ? { private_key: pair.privateKey } : {}) },
    peer: fields.peer,
    config,
    created_at: isoTime(now),
    expires_at: isoTime(expiresAt),
  };
}

/** A session's wg-quick fields: its addresses (index in its pool), its node as the one peer. */
function configFields(index: number, pool: Pool, node: SessionNode, presharedKey: string | undefined) {
  return {
    interface: { addresses: peerAllowedIps(index, pool), dns: DEFAULT_DNS },
    peer: {
      public_key: node.public_key,
      ...(presharedKey ? { preshared_key: presharedKey } : {}),
      endpoint: node.endpoint,
      allowed_ips: FULL_TUNNEL,
      persistent_keepalive: PERSISTENT_KEEPALIVE,
    },
  };
}

function wgQuickOf(fields: SessionFields, node: SessionNode, privateKey: Uint8Array | null): string {
  const config = sessionWgQuick(fields, privateKey);
  // Registration admits only endpoints a config can hold, and the rest is ours: a refusal is a bug.
  if (!config.ok) throw new Error(`session config of node ${node.id}: ${config.message}`);
  return config.text;
}

// ── reading ─────────────────────────────────────────────────────────────────────────────────────

interface SessionRecord {
  id: string;
  account: string;
  region: string;
  node: string;
  state: string;
  /** Address index in `pool`. */
  index: number;
  /** null: from before regional leases (the node's pool is the session's). */
  pool: Pool | null;
  hasPresharedKey: boolean;
  movedAt: number | null;
  createdAt: number;
  expiresAt: number;
  handshake: number;
  rx: number;
  tx: number;
  closedReason: ClosedReason | null;
}

function recordFrom(h: Record<string, string>): SessionRecord | null {
  if (!h.id || !h.account || !h.region || !h.node || !h.state) return null;
  return {
    id: h.id,
    account: h.account,
    region: h.region,
    node: h.node,
    state: h.state,
    index: Number(h.idx ?? 0),
    pool: h.pool ? poolOfTag(h.pool) : null,
    hasPresharedKey: h.psk === '1',
    movedAt: h.moved_at ? Number(h.moved_at) : null,
    createdAt: Number(h.created_at),
    expiresAt: Number(h.expires_at),
    handshake: Number(h.handshake ?? 0),
    rx: Number(h.rx ?? 0),
    tx: Number(h.tx ?? 0),
    closedReason:
      h.closed_reason === 'deleted' || h.closed_reason === 'quota_exhausted' ? h.closed_reason : null,
  };
}

/**
 * pending until the first handshake (with its current node), active within 3 min of one, idle after;
 * node_lost when its node went unhealthy, and for good once the failover found no room for it.
 */
export function sessionStatus(
  s: SessionRecord,
  nodeBeat: NodeBeat | undefined,
  nowMs: number,
): SessionStatus {
  if (s.state === 'closed') return 'closed';
  if (s.state === 'expired' || s.expiresAt <= nowMs) return 'expired';
  if (s.state === 'lost' || isLost(nodeBeat, nowMs)) return 'node_lost';
  if (s.handshake === 0) return 'pending';
  return nowMs - s.handshake <= ACTIVE_HANDSHAKE_MS ? 'active' : 'idle';
}

async function views(ctx: BrokerContext, records: SessionRecord[]): Promise<Session[]> {
  const now = ctx.clock();
  const byRegion = new Map<string, SessionRecord[]>();
  for (const r of records) byRegion.set(r.region, [...(byRegion.get(r.region) ?? []), r]);
  const out: Session[] = [];
  await Promise.all(
    [...byRegion].map(async ([region, list]) => {
      const nodeIds = [...new Set(list.map((r) => r.node))];
      const [beats, nodes] = await Promise.all([
        lastHeartbeats(ctx, region, nodeIds),
        Promise.all(
          nodeIds.map((id) =>
            ctx.redis.hmget(keys.regionNode(region, id), 'endpoint', 'public_key', 'pool_v4', 'pool_v6'),
          ),
        ),
      ]);
      const nodeView = new Map(
        nodeIds.map((id, i) => {
          const [endpoint, publicKey, ...pool] = nodes[i] ?? [];
          const node = { id, endpoint: endpoint ?? '', public_key: publicKey ?? '' };
          return [id, { node, pool: nodePool(pool) }];
        }),
      );
      for (const r of list) {
        const { node, pool } = nodeView.get(r.node)!;
        // The key pair and the preshared key were shown once, at creation: placeholders stand in.
        const fields = configFields(
          r.index,
          r.pool ?? pool,
          node,
          r.hasPresharedKey ? PRESHARED_KEY_PLACEHOLDER : undefined,
        );
        out.push({
          id: r.id,
          status: sessionStatus(r, beats.get(r.node), now),
          region: r.region,
          node,
          config: node.public_key ? wgQuickOf(fields, node, null) : '',
          moved_at: r.movedAt === null ? null : isoTime(r.movedAt),
          created_at: isoTime(r.createdAt),
          expires_at: isoTime(r.expiresAt),
          last_handshake_at: r.handshake > 0 ? isoTime(r.handshake) : null,
          rx_bytes: r.rx,
          tx_bytes: r.tx,
          closed_reason: r.state === 'closed' ? r.closedReason : null,
        });
      }
    }),
  );
  // Newest first; ids break ties, so the order is total (pagination relies on it).
  return out.sort((a, b) =>
    a.created_at !== b.created_at ? (a.created_at < b.created_at ? 1 : -1) : a.id < b.id ? 1 : -1,
  );
}

async function ownRecord(
  ctx: BrokerContext,
  accountId: string,
  sessionId: string,
): Promise<SessionRecord | null> {
  const region = await ctx.redis.hget(keys.accountSessions(accountId), sessionId);
  if (!region) return null;
  const record = recordFrom(await ctx.redis.hgetall(keys.session(region, sessionId)));
  return record && record.account === accountId ? record : null;
}

export async function getSession(ctx: BrokerContext, accountId: string, sessionId: string): Promise<Session> {
  const record = await ownRecord(ctx, accountId, sessionId);
  if (!record) throw notFound('No such session.');
  return (await views(ctx, [record]))[0]!;
}

/** Every session of the account still on record, newest first (the live ones + at most MAX_CLOSED_SESSIONS). */
export async function listSessions(ctx: BrokerContext, accountId: string): Promise<Session[]> {
  const index = await ctx.redis.hgetall(keys.accountSessions(accountId));
  const ids = Object.keys(index);
  const hashes = await Promise.all(ids.map((id) => ctx.redis.hgetall(keys.session(index[id]!, id))));
  const records: SessionRecord[] = [];
  const gone: string[] = [];
  hashes.forEach((h, i) => {
    const record = recordFrom(h);
    if (record && record.account === accountId) records.push(record);
    else gone.push(ids[i]!);
  });
  await pruneIndex(ctx, accountId, gone);
  return views(ctx, records);
}

/** Drops index entries whose record has expired, unless a creation still holds a reservation for them. */
async function pruneIndex(ctx: BrokerContext, accountId: string, sessionIds: string[]): Promise<void> {
  if (sessionIds.length === 0) return;
  const live = await ctx.redis.zmscore(keys.accountLiveSessions(accountId), ...sessionIds);
  const stale = sessionIds.filter((_, i) => live[i] == null);
  if (stale.length) await ctx.redis.hdel(keys.accountSessions(accountId), ...stale);
}

// ── closing ─────────────────────────────────────────────────────────────────────────────────────

/** Runs the close script for one session of `region`; frees the account's slot when it closed it. */
export async function closeSession(
  ctx: BrokerContext,
  region: string,
  sessionId: string,
  options: {
    owner?: string;
    state: 'closed' | 'expired';
    onlyIfDue?: boolean;
    reason?: ClosedReason;
  },
): Promise<CloseOutcome> {
  const now = ctx.clock();
  const { outcome, account } = await runCloseSession(ctx.redis, {
    region,
    sessionId,
    owner: options.owner,
    state: options.state,
    retentionSeconds: TTL.closedSessionSeconds,
    now,
    feedMaxLength: FEED_MAX_LENGTH,
    onlyIfDue: options.onlyIfDue ?? false,
    reason: options.state === 'closed' ? (options.reason ?? '') : '',
  });
  // Idempotent second step: a retry (or another broker's reaper) removes nothing twice.
  if ((outcome === 'closed' || outcome === 'gone') && account) await retire(ctx, account, sessionId, now);
  return outcome;
}

/** The session leaves the account's live set for its closed ones; the oldest past the cap go for good. */
async function retire(
  ctx: BrokerContext,
  accountId: string,
  sessionId: string,
  nowMs: number,
): Promise<void> {
  const dropped = await runRetireSession(ctx.redis, {
    accountId,
    sessionId,
    now: nowMs,
    maxClosed: MAX_CLOSED_SESSIONS,
  });
  await Promise.all(dropped.map((d) => ctx.redis.del(keys.session(d.region, d.sessionId))));
}

/**
 * After a heartbeat: every account whose period bytes reached its tier's quota has its sessions
 * closed (their peers leave the nodes through the feed); new ones get 429 quota_exhausted until the
 * period resets.
 */
export async function closeOverQuota(ctx: BrokerContext, totals: PeriodTotal[]): Promise<void> {
  // Most accounts of a busy node are far from any quota: they cost no account read.
  const limits = Object.values(ctx.config.tiers).flatMap((tier) => tier.bytesPer30Days ?? []);
  const lowest = Math.min(...limits);
  await Promise.all(
    totals.map(async ({ accountId, periodBytes }) => {
      if (periodBytes < lowest) return;
      const account = await getAccount(ctx, accountId);
      const limit = account ? ctx.config.tiers[account.plan].bytesPer30Days : null;
      if (limit === null || periodBytes < limit) return;
      const live = await ctx.redis.zrange(keys.accountLiveSessions(accountId), 0, -1);
      if (live.length === 0) return;
      const regions = await ctx.redis.hmget(keys.accountSessions(accountId), ...live);
      await Promise.all(
        live.map((id, i) =>
          regions[i]
            ? closeSession(ctx, regions[i]!, id, { state: 'closed', reason: 'quota_exhausted' })
            : undefined,
        ),
      );
    }),
  );
}

/** DELETE /v1/sessions/{id}: the peer leaves its node and the address is freed. Idempotent for the owner. */
export async function deleteSession(ctx: BrokerContext, accountId: string, sessionId: string): Promise<void> {
  const region = await ctx.redis.hget(keys.accountSessions(accountId), sessionId);
  if (!region) throw notFound('No such session.');
  const outcome = await closeSession(ctx, region, sessionId, {
    owner: accountId,
    state: 'closed',
    reason: 'deleted',
  });
  if (outcome === 'missing') throw notFound('No such session.');
}

// ── the fleet view ──────────────────────────────────────────────────────────────────────────────

/** Open session ids of a region: the reaper's index, which holds each until it is closed. */
export const openSessionIds = (ctx: BrokerContext, region: string) =>
  ctx.redis.zrange(keys.regionExpiry(region), 0, -1);

/** The status of every open session of a region (the broker's tunnelbyte_sessions gauge). */
export async function openSessionStatuses(ctx: BrokerContext, region: string): Promise<SessionStatus[]> {
  const ids = await openSessionIds(ctx, region);
  const hashes = await Promise.all(ids.map((id) => ctx.redis.hgetall(keys.session(region, id))));
  const records = hashes.flatMap((h) => recordFrom(h) ?? []);
  const beats = await lastHeartbeats(ctx, region, [...new Set(records.map((r) => r.node))]);
  const now = ctx.clock();
  return records.map((r) => sessionStatus(r, beats.get(r.node), now));
}
