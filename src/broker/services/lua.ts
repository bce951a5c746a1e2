// The broker's Lua scripts: the session and node data plane, and IP attribution. Each runs in ONE hash
// slot: the region scripts touch only `{region:<id>}:…` keys (store/keys.ts), the account scripts only
// `{acct:<id>}:…` keys, the egress script one IP's key, so they work unchanged on Redis Cluster. KEYS[1] always names a key of that slot (it routes the call).
//
// Redis runs a script without interleaving but does NOT roll back the writes of a script that fails
// half way. So every region script first reads and decides, and only then writes, with commands that
// cannot fail on keys of the right type: a script either changes nothing or all it set out to.
// Node-scoped names are built from the region prefix (ARGV[1]) with the suffixes of store/keys.ts.
//
// Each script has one typed wrapper below it: services call the wrapper with named fields, and only the
// wrapper knows the script's positional KEYS and ARGV.
import { NODE_ADDRESS_INDEX, POOL_PREFIXES, type Pool } from '../../lib/addresses.js';
import { keys, poolTag } from '../store/keys.js';
import { LuaScript, type Redis } from '../store/redis.js';
import { HEALTHY_INTERVALS } from './regions.js';

/** Numbers go back to Redis as integers: tostring() would print large ones as 1e+15. */
const INT = `local function int(x) return string.format('%.0f', x) end`;

/**
 * Whether a node is healthy by its heartbeats: its last one (its score in the region's nodes ZSET) at
 * most HEALTHY_INTERVALS of its own interval (its `heartbeat_ms`, else `fallbackMs`) before `now`.
 */
const IN_TIME = `local function inTime(now, lastBeat, intervalMs, fallbackMs)
  return tonumber(now) - tonumber(lastBeat) <= ${HEALTHY_INTERVALS} * (tonumber(intervalMs) or tonumber(fallbackMs))
end`;

/** A pool's tag (store/keys.ts poolTag); nodes registered before pools were settings have the default. */
const POOL_TAG = `local function poolTag(v4, v6, default)
  if v4 and v6 then return v4 .. ',' .. v6 end
  return default
end`;

/**
 * Address leases from before they were regional (store/keys.ts): a session created then holds its index
 * under its node's id, unique on that node only, so sessions of two nodes may share one. At start the
 * broker moves each such lease to its pool's regional one (MIGRATE_LEASES); a session whose index another
 * session already holds there waits in the pool's legacy list (HASH index → session ids, space-separated)
 * and keeps its address on its own node. freeLease hands an index to the first session waiting for it
 * instead of freeing it, so no new session is ever given an address an older one still uses; a session
 * still waiting never moves to another node (it may meet its index's holder there).
 */
const LEASES = `local function withoutWord(list, word)
  local kept = {}
  for w in string.gmatch(list, '%S+') do if w ~= word then table.insert(kept, w) end end
  return table.concat(kept, ' ')
end
-- idx's list of waiting sessions, without sid (gone once empty).
local function dropWaiting(legacy, idx, waiting, sid)
  local rest = withoutWord(waiting, sid)
  if rest == '' then redis.call('HDEL', legacy, idx) else redis.call('HSET', legacy, idx, rest) end
end
-- Session sid's lease on idx under its node's id (the layout before regional leases), if it holds it.
local function dropNodeLease(prefix, node, idx, sid)
  local old = prefix .. 'leases:' .. node
  if redis.call('HGET', old, idx) == sid then redis.call('HDEL', old, idx) end
end
-- The lease of session sid on idx, if it holds it, goes to the first session waiting for idx, else is freed.
local function freeLease(prefix, tag, idx, sid)
  local leases = prefix .. 'leases:' .. tag
  if redis.call('HGET', leases, idx) ~= sid then return end
  local legacy = prefix .. 'legacy:' .. tag
  local waiting = redis.call('HGET', legacy, idx)
  if not waiting then
    redis.call('HDEL', leases, idx)
    redis.call('ZADD', prefix .. 'free:' .. tag, idx, idx)
    return
  end
  local heir = string.match(waiting, '%S+')
  dropWaiting(legacy, idx, waiting, heir)
  redis.call('HSET', leases, idx, heir)
  local key = prefix .. 'ses:' .. heir
  local node = redis.call('HGET', key, 'node')
  redis.call('HSET', key, 'pool', tag)
  if node then dropNodeLease(prefix, node, idx, heir) end
end
-- A session from before regional leases gives up its node's lease and its place in the legacy list.
local function leaveLegacyLease(prefix, tag, idx, sid, node)
  dropNodeLease(prefix, node, idx, sid)
  local legacy = prefix .. 'legacy:' .. tag
  local waiting = redis.call('HGET', legacy, idx)
  if waiting then dropWaiting(legacy, idx, waiting, sid) end
end`;

/**
 * The node a peer goes to: the least-loaded healthy, non-draining node below capacity that does not
 * carry the public key yet (one WireGuard peer per key per interface), of pool `tag` when one is given,
 * never `skip`. Reads only. → node id or nil, and whether some node was passed over only for the key.
 */
const PICK = `${IN_TIME}
${POOL_TAG}
local function pick(prefix, nodesKey, now, fallbackMs, defaultTag, pk, tag, skip)
  local best, bestScore, bestCount, duplicate
  local members = redis.call('ZRANGE', nodesKey, 0, -1, 'WITHSCORES')
  for i = 1, #members, 2 do
    local id = members[i]
    local n = redis.call('HMGET', prefix .. 'node:' .. id,
      'draining', 'load', 'capacity', 'heartbeat_ms', 'pool_v4', 'pool_v6')
    local capacity = tonumber(n[3])
    if id ~= skip and capacity and n[1] ~= '1' and inTime(now, members[i + 1], n[4], fallbackMs)
        and (not tag or poolTag(n[5], n[6], defaultTag) == tag) then
      local peers = prefix .. 'peers:' .. id
      local count = redis.call('HLEN', peers)
      if count < capacity then
        if redis.call('HEXISTS', peers, pk) == 1 then
          duplicate = true
        else
          local score = math.max(tonumber(n[2]) or 0, count / capacity)
          if not best or score < bestScore or (score == bestScore and count < bestCount) then
            best, bestScore, bestCount = id, score, count
          end
        end
      end
    end
  end
  return best, duplicate
end`;

/**
 * Create a session. KEYS: region nodes ZSET, region expiry ZSET. ARGV: prefix, now, heartbeat interval
 * (ms) of nodes that recorded none, session id, account, client public key, psk ('' = none),
 * expires_at, anchor, max address index of nodes that recorded none, feed max length, region, default
 * pool tag.
 * The address is the lowest free one of the node's pool in the whole region, so the session can move
 * to any node of that pool keeping it.
 * → {'ok', node, endpoint, node public key, address index, pool tag} | {'no_capacity'} | {'duplicate_key'}
 */
export const CREATE_SESSION = new LuaScript(
  'create-session',
  `${INT}
${PICK}
local prefix, now, sid, account, pk, psk = ARGV[1], ARGV[2], ARGV[4], ARGV[5], ARGV[6], ARGV[7]

-- 1. Decide (reads only): the node, then the lowest free address of its pool in the region.
local best, duplicate = pick(prefix, KEYS[1], now, ARGV[3], ARGV[13], pk, nil, nil)
if not best then return {duplicate and 'duplicate_key' or 'no_capacity'} end
local node = redis.call('HMGET', prefix .. 'node:' .. best, 'endpoint', 'public_key', 'pool_v4', 'pool_v6', 'max_index')
local tag = poolTag(node[3], node[4], ARGV[13])
local leases, free, counter = prefix .. 'leases:' .. tag, prefix .. 'free:' .. tag, prefix .. 'next:' .. tag
local freed = redis.call('ZRANGE', free, 0, 0)[1]
local idx = tonumber(freed or ((tonumber(redis.call('GET', counter)) or ${NODE_ADDRESS_INDEX}) + 1))
if idx > (tonumber(node[5]) or tonumber(ARGV[10])) then return {'no_capacity'} end

-- 2. Write (nothing below can fail).
if freed then redis.call('ZREM', free, freed) else redis.call('SET', counter, int(idx)) end
redis.call('HSET', leases, int(idx), sid)
local peer = {ses = sid, idx = idx}
if psk ~= '' then peer.psk = psk end
redis.call('HSET', prefix .. 'peers:' .. best, pk, cjson.encode(peer))
redis.call('HSET', prefix .. 'ses:' .. sid,
  'id', sid, 'account', account, 'region', ARGV[12], 'node', best, 'public_key', pk, 'idx', int(idx),
  'pool', tag, 'psk', psk ~= '' and '1' or '0',
  'state', 'open', 'created_at', now, 'expires_at', ARGV[8], 'anchor', ARGV[9],
  'rx', 0, 'tx', 0, 'rx_last', 0, 'tx_last', 0, 'handshake', 0)
redis.call('ZADD', KEYS[2], ARGV[8], sid)
redis.call('XADD', prefix .. 'feed:' .. best, 'MAXLEN', '~', ARGV[11], '*',
  'op', 'add', 'public_key', pk, 'idx', int(idx), 'psk', psk)
return {'ok', best, node[1] or '', node[2] or '', int(idx), tag}`,
);

export type CreateSessionOutcome =
  | {
      outcome: 'ok';
      nodeId: string;
      endpoint: string;
      nodePublicKey: string;
      addressIndex: number;
      pool: Pool;
    }
  | { outcome: 'no_capacity' | 'duplicate_key' };

/** The pool a tag names (store/keys.ts poolTag). */
export const poolOfTag = (tag: string): Pool => {
  const [v4 = '', v6 = ''] = tag.split(',');
  return { v4, v6 };
};

export async function runCreateSession(
  redis: Redis,
  a: {
    region: string;
    now: number;
    /** The interval of nodes whose record has none (registered before it was recorded). */
    heartbeatMs: number;
    sessionId: string;
    accountId: string;
    publicKey: string;
    /** '' or absent: none. */
    presharedKey: string | undefined;
    expiresAt: number;
    anchor: number;
    maxAddressIndex: number;
    feedMaxLength: number;
  },
): Promise<CreateSessionOutcome> {
  const reply = (await CREATE_SESSION.run(
    redis,
    [keys.regionNodes(a.region), keys.regionExpiry(a.region)],
    [
      keys.regionPrefix(a.region),
      a.now,
      a.heartbeatMs,
      a.sessionId,
      a.accountId,
      a.publicKey,
      a.presharedKey ?? '',
      a.expiresAt,
      a.anchor,
      a.maxAddressIndex,
      a.feedMaxLength,
      a.region,
      poolTag(POOL_PREFIXES),
    ],
  )) as [string, string, string, string, string, string];
  if (reply[0] !== 'ok') return { outcome: reply[0] === 'duplicate_key' ? 'duplicate_key' : 'no_capacity' };
  const [, nodeId, endpoint, nodePublicKey, index, tag] = reply;
  return {
    outcome: 'ok',
    nodeId,
    endpoint,
    nodePublicKey,
    addressIndex: Number(index),
    pool: poolOfTag(tag),
  };
}

/**
 * Close a session (open, or lost with its node): free its address, drop its peer and tell the node.
 * KEYS: session HASH. ARGV: prefix, session id, owner account ('' = any), new state (closed|expired),
 * retention seconds, now, feed max length, only-if-due ('1': only when expires_at <= now, for the
 * reaper), closed_reason ('' = none), default pool tag.
 * → {'closed', account} | {'gone', account} (already closed) | {'missing'} | {'not_due'}
 */
export const CLOSE_SESSION = new LuaScript(
  'close-session',
  `${POOL_TAG}
${LEASES}
local prefix, sid = ARGV[1], ARGV[2]
local s = redis.call('HMGET', KEYS[1], 'account', 'node', 'public_key', 'idx', 'state', 'expires_at', 'pool')
if not s[5] or (ARGV[3] ~= '' and s[1] ~= ARGV[3]) then return {'missing'} end
if s[5] ~= 'open' and s[5] ~= 'lost' then return {'gone', s[1]} end
if ARGV[8] == '1' and tonumber(s[6]) > tonumber(ARGV[6]) then return {'not_due'} end

-- Each free is guarded by ownership, so a replay can never free what another session holds.
if s[7] then
  freeLease(prefix, s[7], s[4], sid)
else
  local n = redis.call('HMGET', prefix .. 'node:' .. s[2], 'pool_v4', 'pool_v6')
  leaveLegacyLease(prefix, poolTag(n[1], n[2], ARGV[10]), s[4], sid, s[2])
end
local peers = prefix .. 'peers:' .. s[2]
local current = redis.call('HGET', peers, s[3])
if current and cjson.decode(current).ses == sid then
  redis.call('HDEL', peers, s[3])
  redis.call('XADD', prefix .. 'feed:' .. s[2], 'MAXLEN', '~', ARGV[7], '*',
    'op', 'del', 'public_key', s[3], 'idx', s[4], 'psk', '')
end
redis.call('HSET', KEYS[1], 'state', ARGV[4], 'closed_at', ARGV[6])
if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'closed_reason', ARGV[9]) end
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('ZREM', prefix .. 'expiry', sid)
return {'closed', s[1]}`,
);

export type CloseOutcome = 'closed' | 'gone' | 'missing' | 'not_due';

export async function runCloseSession(
  redis: Redis,
  a: {
    region: string;
    sessionId: string;
    /** Only this account's session; absent: any. */
    owner: string | undefined;
    state: 'closed' | 'expired';
    retentionSeconds: number;
    now: number;
    feedMaxLength: number;
    /** Only when expires_at <= now (the reaper). */
    onlyIfDue: boolean;
    /** Recorded as closed_reason; '' for none. */
    reason: string;
  },
): Promise<{ outcome: CloseOutcome; account: string | undefined }> {
  const [outcome, account] = (await CLOSE_SESSION.run(
    redis,
    [keys.session(a.region, a.sessionId)],
    [
      keys.regionPrefix(a.region),
      a.sessionId,
      a.owner ?? '',
      a.state,
      a.retentionSeconds,
      a.now,
      a.feedMaxLength,
      a.onlyIfDue ? '1' : '0',
      a.reason,
      poolTag(POOL_PREFIXES),
    ],
  )) as [CloseOutcome, string | undefined];
  return { outcome, account };
}

/**
 * Exit failover for one node that is lost (3 missed heartbeats) or removed: each of its peers moves to
 * another node of the region with the same pool and room (`pick`), keeping its public key, address
 * index and preshared key; the feeds tell both nodes. A peer with nowhere to go leaves the node and
 * frees its address, and its session becomes `lost`. A node seen in time since the caller looked is
 * left alone. Peers are done one at a time, each decided before it is written, so a script cut short
 * leaves every peer either done or untouched, and running it again (another broker's reaper) finds
 * only what is left: no peer moves twice.
 * KEYS: region nodes ZSET, region removed-nodes SET. ARGV: prefix, now, heartbeat interval (ms) of
 * nodes that recorded none, default pool tag, node id, HSCAN cursor, batch size, feed max length,
 * session id ('' = a batch of the node's peers from the cursor; else only that session's peer).
 * → {'alive'} | {'ok', next cursor ('0': done), {moved session id…}, {lost session id, account, …}}
 */
export const FAILOVER_NODE = new LuaScript(
  'failover-node',
  `${INT}
${PICK}
${LEASES}
local prefix, now, from = ARGV[1], ARGV[2], ARGV[5]
local beat = redis.call('ZSCORE', KEYS[1], from)
local fromNode = redis.call('HMGET', prefix .. 'node:' .. from, 'heartbeat_ms', 'pool_v4', 'pool_v6')
if beat and inTime(now, beat, fromNode[1], ARGV[3]) then return {'alive'} end

local peersKey = prefix .. 'peers:' .. from
local cursor, entries = '0', {}
if ARGV[9] ~= '' then
  local s = redis.call('HMGET', prefix .. 'ses:' .. ARGV[9], 'node', 'public_key', 'state')
  if s[3] == 'open' and s[1] == from then entries = {s[2], ''} end
else
  local page = redis.call('HSCAN', peersKey, ARGV[6], 'COUNT', ARGV[7])
  cursor, entries = page[1], page[2]
end

local moved, lost = {}, {}
for i = 1, #entries, 2 do
  local pk = entries[i]
  -- HSCAN may return a field twice: only a peer still on this node is handled.
  local json = redis.call('HGET', peersKey, pk)
  if json then
    local peer = cjson.decode(json)
    local key = prefix .. 'ses:' .. peer.ses
    local s = redis.call('HMGET', key, 'account', 'pool')
    local tag = s[2] or poolTag(fromNode[2], fromNode[3], ARGV[4])
    local idx = int(peer.idx)
    -- A lease from before regional leases, or one another such session waits for: the index may be
    -- in use on another node, so the session does not move.
    local movable = s[2] and redis.call('HEXISTS', prefix .. 'legacy:' .. tag, idx) == 0
    local to = movable and pick(prefix, KEYS[1], now, ARGV[3], ARGV[4], pk, tag, from)
    redis.call('HDEL', peersKey, pk)
    redis.call('XADD', prefix .. 'feed:' .. from, 'MAXLEN', '~', ARGV[8], '*',
      'op', 'del', 'public_key', pk, 'idx', idx, 'psk', '')
    if to then
      redis.call('HSET', prefix .. 'peers:' .. to, pk, json)
      redis.call('XADD', prefix .. 'feed:' .. to, 'MAXLEN', '~', ARGV[8], '*',
        'op', 'add', 'public_key', pk, 'idx', idx, 'psk', peer.psk or '')
      -- The new node counts from zero, and the client has yet to shake hands with it.
      redis.call('HSET', key, 'node', to, 'moved_at', now, 'rx_last', 0, 'tx_last', 0, 'handshake', 0)
      table.insert(moved, peer.ses)
    else
      if s[2] then freeLease(prefix, tag, idx, peer.ses)
      else leaveLegacyLease(prefix, tag, idx, peer.ses, from) end
      redis.call('HSET', key, 'state', 'lost', 'lost_at', now)
      table.insert(lost, peer.ses)
      table.insert(lost, s[1] or '')
    end
  end
end
if not beat and redis.call('EXISTS', peersKey) == 0 then redis.call('SREM', KEYS[2], from) end
return {'ok', cursor, moved, lost}`,
);

export type FailoverOutcome =
  | { outcome: 'alive' }
  | {
      outcome: 'ok';
      /** '0' when the node's peers are all done. */
      cursor: string;
      moved: string[];
      /** Sessions that found no room: no longer on any node. */
      lost: { sessionId: string; accountId: string }[];
    };

export async function runFailoverNode(
  redis: Redis,
  a: {
    region: string;
    nodeId: string;
    now: number;
    /** The interval of nodes whose record has none. */
    heartbeatMs: number;
    cursor: string;
    batch: number;
    feedMaxLength: number;
    /** Only this session (when it is on the node). */
    sessionId?: string;
  },
): Promise<FailoverOutcome> {
  const reply = (await FAILOVER_NODE.run(
    redis,
    [keys.regionNodes(a.region), keys.regionRemovedNodes(a.region)],
    [
      keys.regionPrefix(a.region),
      a.now,
      a.heartbeatMs,
      poolTag(POOL_PREFIXES),
      a.nodeId,
      a.cursor,
      a.batch,
      a.feedMaxLength,
      a.sessionId ?? '',
    ],
  )) as ['alive'] | ['ok', string, string[], string[]];
  if (reply[0] === 'alive') return { outcome: 'alive' };
  const [, cursor, moved, flat] = reply;
  const lost = [];
  for (let i = 0; i + 1 < flat.length; i += 2) lost.push({ sessionId: flat[i]!, accountId: flat[i + 1]! });
  return { outcome: 'ok', cursor, moved, lost };
}

/**
 * Moves the leases of open sessions from before regional leases (LEASES above) to their pool's regional
 * lease, or into its legacy list when another session holds the index there, and raises the pool's
 * counter past every such index, so a new session is never given one. Idempotent: a session already
 * moved, or already waiting, is left as it is.
 * KEYS: region expiry ZSET (routes the call). ARGV: prefix, default pool tag, session id…
 * → {moved, waiting, {pool tag…}} (the pools it touched)
 */
export const MIGRATE_LEASES = new LuaScript(
  'migrate-leases',
  `${INT}
${POOL_TAG}
${LEASES}
local prefix, defaultTag = ARGV[1], ARGV[2]
local moved, waiting, touched, tags = 0, 0, {}, {}
for i = 3, #ARGV do
  local sid = ARGV[i]
  local key = prefix .. 'ses:' .. sid
  local s = redis.call('HMGET', key, 'node', 'idx', 'state', 'pool')
  if s[3] == 'open' and not s[4] and s[1] and s[2] then
    local n = redis.call('HMGET', prefix .. 'node:' .. s[1], 'pool_v4', 'pool_v6')
    local tag = poolTag(n[1], n[2], defaultTag)
    local idx = int(tonumber(s[2]))
    local leases, counter = prefix .. 'leases:' .. tag, prefix .. 'next:' .. tag
    if (tonumber(redis.call('GET', counter)) or ${NODE_ADDRESS_INDEX}) < tonumber(idx) then
      redis.call('SET', counter, idx)
    end
    redis.call('ZREM', prefix .. 'free:' .. tag, idx)
    local holder = redis.call('HGET', leases, idx)
    if not holder or holder == sid then
      redis.call('HSET', leases, idx, sid)
      redis.call('HSET', key, 'pool', tag)
      dropNodeLease(prefix, s[1], idx, sid)
      moved = moved + 1
    else
      local legacy = prefix .. 'legacy:' .. tag
      local list = redis.call('HGET', legacy, idx) or ''
      if not string.find(' ' .. list .. ' ', ' ' .. sid .. ' ', 1, true) then
        redis.call('HSET', legacy, idx, list == '' and sid or (list .. ' ' .. sid))
      end
      waiting = waiting + 1
    end
    if not touched[tag] then touched[tag] = true; table.insert(tags, tag) end
  end
end
return {moved, waiting, tags}`,
);

/**
 * After MIGRATE_LEASES: the indices of a pool below its counter that no session holds (closed before
 * the move, on any node) join its free list, so they are handed out again.
 * KEYS: region expiry ZSET (routes the call). ARGV: prefix, pool tag. → how many were freed
 */
export const FREE_LEASE_GAPS = new LuaScript(
  'free-lease-gaps',
  `${INT}
local prefix, tag = ARGV[1], ARGV[2]
local leases, free = prefix .. 'leases:' .. tag, prefix .. 'free:' .. tag
local top = tonumber(redis.call('GET', prefix .. 'next:' .. tag)) or ${NODE_ADDRESS_INDEX}
local freed = 0
for idx = ${NODE_ADDRESS_INDEX} + 1, top do
  if redis.call('HEXISTS', leases, idx) == 0 and not redis.call('ZSCORE', free, idx) then
    redis.call('ZADD', free, idx, idx)
    freed = freed + 1
  end
end
return freed`,
);

/** Moves a batch of a region's sessions' leases (MIGRATE_LEASES); returns the counts and pools touched. */
export async function runMigrateLeases(
  redis: Redis,
  region: string,
  sessionIds: string[],
): Promise<{ moved: number; waiting: number; pools: string[] }> {
  const [moved, waiting, pools] = (await MIGRATE_LEASES.run(
    redis,
    [keys.regionExpiry(region)],
    [keys.regionPrefix(region), poolTag(POOL_PREFIXES), ...sessionIds],
  )) as [number, number, string[]];
  return { moved, waiting, pools };
}

/** Frees a pool's unheld indices below its counter (FREE_LEASE_GAPS); returns how many. */
export async function runFreeLeaseGaps(redis: Redis, region: string, poolTagged: string): Promise<number> {
  return (await FREE_LEASE_GAPS.run(
    redis,
    [keys.regionExpiry(region)],
    [keys.regionPrefix(region), poolTagged],
  )) as number;
}

/**
 * An account's session left the live set: it joins the account's closed sessions, and the oldest
 * beyond the cap leave the account's index (their records are deleted by the caller, in their region's
 * slot). KEYS: account live ZSET, account closed ZSET, account sessions HASH. ARGV: session id, closed
 * at (ms), cap. → flat list [session id, region, …] of the sessions dropped
 */
const RETIRE_SESSION = new LuaScript(
  'retire-session',
  `redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
local dropped = {}
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if extra > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[2], extra)
  for i = 1, #popped, 2 do
    local region = redis.call('HGET', KEYS[3], popped[i])
    redis.call('HDEL', KEYS[3], popped[i])
    if region then
      table.insert(dropped, popped[i])
      table.insert(dropped, region)
    end
  end
end
return dropped`,
);

/** The sessions (and their regions) that fell off the account's closed list. */
export async function runRetireSession(
  redis: Redis,
  a: { accountId: string; sessionId: string; now: number; maxClosed: number },
): Promise<{ sessionId: string; region: string }[]> {
  const flat = (await RETIRE_SESSION.run(
    redis,
    [
      keys.accountLiveSessions(a.accountId),
      keys.accountClosedSessions(a.accountId),
      keys.accountSessions(a.accountId),
    ],
    [a.sessionId, a.now, a.maxClosed],
  )) as string[];
  const dropped = [];
  for (let i = 0; i + 1 < flat.length; i += 2) dropped.push({ sessionId: flat[i]!, region: flat[i + 1]! });
  return dropped;
}

/**
 * A node's heartbeat: health, then per-peer byte counters turned into deltas. KEYS: region nodes
 * ZSET, region node HASH. ARGV: prefix, node id, now, load, draining, JSON [[pk, rx, tx, handshake_ms]].
 * → nil for an unknown node, else JSON [[account, anchor, delta bytes], …]
 */
export const HEARTBEAT = new LuaScript(
  'node-heartbeat',
  `${INT}
local prefix, nodeId, now = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
redis.call('ZADD', KEYS[1], now, nodeId)
redis.call('HSET', KEYS[2], 'load', ARGV[4], 'draining', ARGV[5], 'last_heartbeat', now)

local peers = prefix .. 'peers:' .. nodeId
local usage = {}
for _, r in ipairs(cjson.decode(ARGV[6])) do
  local current = redis.call('HGET', peers, r[1])
  if current then
    local key = prefix .. 'ses:' .. cjson.decode(current).ses
    local s = redis.call('HMGET', key, 'account', 'anchor', 'rx', 'tx', 'rx_last', 'tx_last', 'handshake', 'state')
    if s[8] == 'open' then
      -- A counter lower than last time means the node restarted: all of it is new traffic.
      local rx, tx, rxLast, txLast = r[2], r[3], tonumber(s[5]), tonumber(s[6])
      local drx = rx >= rxLast and rx - rxLast or rx
      local dtx = tx >= txLast and tx - txLast or tx
      redis.call('HSET', key, 'rx', int(tonumber(s[3]) + drx), 'tx', int(tonumber(s[4]) + dtx),
        'rx_last', int(rx), 'tx_last', int(tx), 'handshake', int(math.max(tonumber(s[7]), r[4])))
      if drx + dtx > 0 then table.insert(usage, {s[1], s[2], int(drx + dtx)}) end
    end
  end
end
-- cjson writes an empty table as {}: the caller expects a JSON array.
if #usage == 0 then return '[]' end
return cjson.encode(usage)`,
);

/** Byte deltas per session's account: [account, period anchor (ms), bytes]. */
export type UsageReport = [accountId: string, anchorMs: number, bytes: number];

/** null for a node the store does not know. */
export async function runHeartbeat(
  redis: Redis,
  a: {
    region: string;
    nodeId: string;
    now: number;
    load: number;
    draining: boolean;
    /** Per peer: public key, rx bytes, tx bytes, last handshake (ms, 0 = never). */
    reports: [publicKey: string, rx: number, tx: number, handshakeMs: number][];
  },
): Promise<UsageReport[] | null> {
  const reply = await HEARTBEAT.run(
    redis,
    [keys.regionNodes(a.region), keys.regionNode(a.region, a.nodeId)],
    [keys.regionPrefix(a.region), a.nodeId, a.now, a.load, a.draining ? '1' : '0', JSON.stringify(a.reports)],
  );
  if (typeof reply !== 'string') return null;
  return (JSON.parse(reply) as [string, string, string][]).map(([account, anchor, bytes]) => [
    account,
    Number(anchor),
    Number(bytes),
  ]);
}

/**
 * The start of a feed read. KEYS: node peers HASH, node feed STREAM. ARGV: cursor ('' = none), max
 * entries. A cursor is usable when nothing after it was deleted or trimmed and it is not from the
 * future (a stream that was lost and rebuilt). → {'full', cursor, [pk, json, …]} | {'changes', [entries]}
 */
export const FEED_READ = new LuaScript(
  'feed-read',
  `local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function before(a, b) -- a < b
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end
local last, maxDeleted, first, added, length = '0-0', '0-0', false, 0, 0
if redis.call('EXISTS', KEYS[2]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[2])
  for i = 1, #info, 2 do
    local k, v = info[i], info[i + 1]
    if k == 'last-generated-id' then last = v
    elseif k == 'max-deleted-entry-id' then maxDeleted = v
    elseif k == 'first-entry' then first = v
    elseif k == 'entries-added' then added = v
    elseif k == 'length' then length = v end
  end
end
local cursor = ARGV[1]
local usable = cursor ~= '' and not before(last, cursor) and not before(cursor, maxDeleted)
-- Trimming (MAXLEN) does not move max-deleted-entry-id: when entries were dropped, a cursor before the
-- first remaining entry may have missed some, so it gets the full set (conservative, always correct).
if usable and added > length and cursor ~= last and (not first or before(cursor, first[1])) then
  usable = false
end
if usable then
  return {'changes', redis.call('XRANGE', KEYS[2], '(' .. cursor, '+', 'COUNT', ARGV[2])}
end
return {'full', last, redis.call('HGETALL', KEYS[1])}`,
);

export type StreamEntry = [id: string, fields: string[]];

export type FeedStart =
  /** `peers` is HGETALL of the node's peers: public key, JSON {ses, idx, psk?}, … */
  { kind: 'full'; cursor: string; peers: string[] } | { kind: 'changes'; entries: StreamEntry[] };

export async function runFeedRead(
  redis: Redis,
  a: { region: string; nodeId: string; cursor: string; maxEntries: number },
): Promise<FeedStart> {
  const reply = (await FEED_READ.run(
    redis,
    [keys.nodePeers(a.region, a.nodeId), keys.nodeFeed(a.region, a.nodeId)],
    [a.cursor, a.maxEntries],
  )) as ['full', string, string[]] | ['changes', StreamEntry[]];
  return reply[0] === 'full'
    ? { kind: 'full', cursor: reply[1], peers: reply[2] }
    : { kind: 'changes', entries: reply[1] };
}

/**
 * Reserve a concurrent-session slot for an account, after the quota checks. KEYS: account live
 * ZSET, account period HASH, account sessions HASH. ARGV: session id, now, reservation deadline,
 * concurrent limit, byte limit (-1 = unlimited), region.
 * → {'ok'} | {'bytes'} | {'sessions', earliest deadline}
 */
export const RESERVE_SLOT = new LuaScript(
  'reserve-session-slot',
  `redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local limit = tonumber(ARGV[5])
if limit >= 0 and tonumber(redis.call('HGET', KEYS[2], 'bytes') or '0') >= limit then return {'bytes'} end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return {'sessions', redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2] or ARGV[2]}
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[6])
return {'ok'}`,
);

export type ReserveOutcome =
  | { outcome: 'ok' | 'bytes' }
  /** The concurrent limit is reached; a slot frees at `earliestDeadline` (ms) at the latest. */
  | { outcome: 'sessions'; earliestDeadline: number };

export async function runReserveSlot(
  redis: Redis,
  a: {
    accountId: string;
    /** The account's usage-period hash (store/keys.ts accountPeriod). */
    periodKey: string;
    sessionId: string;
    now: number;
    deadline: number;
    concurrentLimit: number;
    /** null: unlimited. */
    byteLimit: number | null;
    region: string;
  },
): Promise<ReserveOutcome> {
  const reply = (await RESERVE_SLOT.run(
    redis,
    [keys.accountLiveSessions(a.accountId), a.periodKey, keys.accountSessions(a.accountId)],
    [a.sessionId, a.now, a.deadline, a.concurrentLimit, a.byteLimit ?? -1, a.region],
  )) as string[];
  if (reply[0] === 'sessions') return { outcome: 'sessions', earliestDeadline: Number(reply[1]) };
  return { outcome: reply[0] === 'bytes' ? 'bytes' : 'ok' };
}

// Extends the latest period when the same node still holds the IP, else opens a new one.
// One key per call, so it is Redis-Cluster safe.
const RECORD_EGRESS_IP = new LuaScript(
  'record-egress-ip',
  `local last = redis.call('LINDEX', KEYS[1], -1)
local now = tonumber(ARGV[3])
if last then
  local entry = cjson.decode(last)
  if entry.node == ARGV[1] and entry.region == ARGV[2] then
    if now > entry.last_seen then entry.last_seen = now end
    entry.released = nil
    redis.call('LSET', KEYS[1], -1, cjson.encode(entry))
    redis.call('EXPIRE', KEYS[1], ARGV[4])
    return 0
  end
  -- Another node reported it recently: attribution never moves from a live node to another (one an
  -- operator took out released it).
  if entry.last_seen >= tonumber(ARGV[6]) and not entry.released then return 2 end
end
redis.call('RPUSH', KEYS[1], cjson.encode({node = ARGV[1], region = ARGV[2], first_seen = now, last_seen = now}))
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[5]), -1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1`,
);

/**
 * A node taken out by an operator (removed, or its token revoked) releases the IP it holds: its period
 * stays as it was for attribution, marked released, so another node may take the IP at once.
 */
const RELEASE_EGRESS_IP = new LuaScript(
  'release-egress-ip',
  `local last = redis.call('LINDEX', KEYS[1], -1)
if not last then return 0 end
local entry = cjson.decode(last)
if entry.node ~= ARGV[1] then return 0 end
entry.released = true
redis.call('LSET', KEYS[1], -1, cjson.encode(entry))
return 1`,
);

export async function runReleaseEgressIp(redis: Redis, ip: string, nodeId: string): Promise<void> {
  await RELEASE_EGRESS_IP.run(redis, [keys.ipHistory(ip)], [nodeId]);
}

export async function runRecordEgressIp(
  redis: Redis,
  a: {
    ip: string;
    nodeId: string;
    region: string;
    now: number;
    ttlSeconds: number;
    maxPeriods: number;
    /** Another holder whose last report is at or after this (ms) is live: the IP stays its. */
    liveSince: number;
  },
): Promise<'recorded' | 'held_by_another'> {
  const reply = await RECORD_EGRESS_IP.run(
    redis,
    [keys.ipHistory(a.ip)],
    [a.nodeId, a.region, a.now, a.ttlSeconds, a.maxPeriods, a.liveSince],
  );
  return reply === 2 ? 'held_by_another' : 'recorded';
}

// ── accounts and sign-in ────────────────────────────────────────────────────────────────────────

// Writes a key record and adds it to the account's set unless the set is full; members whose record
// has expired (anonymous keys) are dropped first, so only real keys count. With a TTL, the account's
// own records expire together with it. KEYS: key HASH, account keys SET, account HASH, usage HASH.
// ARGV: key id, max keys, ttl seconds (0 = none), key-record prefix, then the record's fields.
const ADD_KEY = new LuaScript(
  'add-api-key',
  `if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[2]) then
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    if redis.call('EXISTS', ARGV[4] .. id) == 0 then redis.call('SREM', KEYS[2], id) end
  end
  if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('SADD', KEYS[2], ARGV[1])
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ttl) end
end
return 1`,
);

/** false: the account already holds `maxKeys` live keys. */
export async function runAddKey(
  redis: Redis,
  a: {
    accountId: string;
    keyId: string;
    maxKeys: number;
    /** null: the records do not expire. */
    ttlSeconds: number | null;
    /** The key record's fields. */
    fields: Record<string, string | number>;
  },
): Promise<boolean> {
  const added = await ADD_KEY.run(
    redis,
    [
      keys.apiKey(a.accountId, a.keyId),
      keys.accountKeys(a.accountId),
      keys.account(a.accountId),
      keys.accountUsage(a.accountId),
    ],
    [a.keyId, a.maxKeys, a.ttlSeconds ?? 0, keys.apiKey(a.accountId, ''), ...Object.entries(a.fields).flat()],
  );
  return added === 1;
}

const DELAY = `local function delay(count, free, capMs)
  if count < free then return 0 end
  return math.min(2 ^ (count - free) * 1000, capMs)
end`;

// KEYS: the email's counter, the (email, source) counter (one slot: the email's hash tag).
// ARGV: now, free failures, max delay ms, ttl s, clean-source interval ms.
// → 0 (slot taken: both counters count this attempt) or the ms to wait.
const TAKE_EMAIL_SLOT = new LuaScript(
  'login-email-slot',
  `${DELAY}
local now, free, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local e = redis.call('HMGET', KEYS[1], 'count', 'last_ms', 'clean_ms')
local p = redis.call('HMGET', KEYS[2], 'count', 'last_ms')
local ec, el, clean = tonumber(e[1]) or 0, tonumber(e[2]) or 0, tonumber(e[3]) or 0
local pc, pl = tonumber(p[1]) or 0, tonumber(p[2]) or 0
local ready, viaClean = 0, false
if ec >= free then
  if pc == 0 then
    ready, viaClean = clean + tonumber(ARGV[5]), true
  else
    ready = math.max(el + delay(ec, free, cap), pl + delay(pc, free, cap))
  end
end
if now < ready then return ready - now end
redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('HSET', KEYS[1], 'last_ms', ARGV[1])
if viaClean then redis.call('HSET', KEYS[1], 'clean_ms', ARGV[1]) end
redis.call('HINCRBY', KEYS[2], 'count', 1)
redis.call('HSET', KEYS[2], 'last_ms', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 0`,
);

// KEYS: the source's counter. ARGV: now, free failures, max delay ms, ttl s. → 0 or the ms to wait.
const TAKE_SOURCE_SLOT = new LuaScript(
  'login-source-slot',
  `${DELAY}
local now = tonumber(ARGV[1])
local s = redis.call('HMGET', KEYS[1], 'count', 'last_ms')
local ready = (tonumber(s[2]) or 0) + delay(tonumber(s[1]) or 0, tonumber(ARGV[2]), tonumber(ARGV[3]))
if now < ready then return ready - now end
redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('HSET', KEYS[1], 'last_ms', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 0`,
);

/** The ms to wait before this email may be tried from this source; 0: the attempt's slot is taken. */
export async function runTakeEmailSlot(
  redis: Redis,
  a: {
    emailKey: string;
    /** The (email, source) counter, in the email's slot. */
    pairKey: string;
    now: number;
    freeFailures: number;
    maxDelayMs: number;
    ttlSeconds: number;
    cleanSourceIntervalMs: number;
  },
): Promise<number> {
  const wait = await TAKE_EMAIL_SLOT.run(
    redis,
    [a.emailKey, a.pairKey],
    [a.now, a.freeFailures, a.maxDelayMs, a.ttlSeconds, a.cleanSourceIntervalMs],
  );
  return Number(wait);
}

/** The ms to wait before this source may try any email; 0: the attempt's slot is taken. */
export async function runTakeSourceSlot(
  redis: Redis,
  a: { sourceKey: string; now: number; freeFailures: number; maxDelayMs: number; ttlSeconds: number },
): Promise<number> {
  const wait = await TAKE_SOURCE_SLOT.run(
    redis,
    [a.sourceKey],
    [a.now, a.freeFailures, a.maxDelayMs, a.ttlSeconds],
  );
  return Number(wait);
}
