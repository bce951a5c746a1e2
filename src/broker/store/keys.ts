// Every Redis key the broker uses, with its TTL, in one place. Keys that a single operation must
// touch together share a hash tag ({...}) so the layout also works on Redis Cluster: everything of
// one account lives under {acct:<id>}. Index keys (token hash → key, email → account) live in their
// own slots and are written after, and checked against, the record they point to.

const DAY = 24 * 60 * 60;

interface PoolPrefixes {
  v4: string;
  v6: string;
}

/** A pool's part of its key names (and a session's `pool` field): "<v4>,<v6>". */
export const poolTag = (pool: PoolPrefixes) => `${pool.v4},${pool.v6}`;

export const TTL = {
  /** A Stripe event id, remembered so that a replay applies nothing (Stripe retries for 3 days). */
  stripeEventSeconds: 30 * DAY,
  /** Claim on a Stripe event while it is being applied; released if applying fails. */
  stripeEventClaimSeconds: 60,
  /** Email + password hash waiting for the Stripe payment that attaches them. */
  pendingCheckoutSeconds: 2 * DAY,
  /** Failed-login counters: forgotten after this long without failures. */
  loginFailuresSeconds: 60 * 60,
  /** A closed or expired session stays readable (GET /v1/sessions/{id}) this long. */
  closedSessionSeconds: 7 * DAY,
  /** A usage period's counters outlive the period by this much. */
  usagePeriodSeconds: 60 * DAY,
  /** Egress-IP history kept for abuse desks. */
  ipHistorySeconds: 400 * DAY,
  /** One day's byte counter of an account (the account page's chart reads the last 30). */
  usageDaySeconds: 62 * DAY,
  /** An OAuth authorization code is redeemable for 60 s (RFC 9700); its record stays to catch reuse. */
  oauthCodeSeconds: 10 * 60,
  /** An OAuth grant (refresh-token family) unused this long is forgotten; each refresh renews it. */
  oauthGrantSeconds: 30 * DAY,
  /** A browser sign-in (session cookie) lasts this long. */
  webSessionSeconds: 12 * 60 * 60,
} as const;

export const keys = {
  // ── accounts (hash tag {acct:<id>}) ──────────────────────────────────────────────────────────
  /**
   * HASH id, email, name, plan, paid_until (ms, '' = open-ended), created_at, password_hash,
   * stripe_customer, sign_ins_ended_at (ms: browser sessions started until then are over)
   */
  account: (accountId: string) => `{acct:${accountId}}:account`,
  /** SET of key ids belonging to the account */
  accountKeys: (accountId: string) => `{acct:${accountId}}:keys`,
  /**
   * HASH id, account, name, hash, hint, permissions (JSON), fingerprint, created_at, last_used, expires_at,
   * status, sign_in ('1': a login's or signup's token), client?, made_by?, grant?
   */
  apiKey: (accountId: string, keyId: string) => `{acct:${accountId}}:key:${keyId}`,
  /**
   * HASH nonce, email?, password_hash?: the last checkout the broker started; its credentials attach
   * when Stripe confirms a paid checkout carrying the nonce (TTL pendingCheckout)
   */
  pendingCheckout: (accountId: string) => `{acct:${accountId}}:pending`,
  /**
   * HASH subscription id (or once:<checkout session id>) → JSON {plan, until (ms, 0 = open-ended)}:
   * every paid grant of the account; its plan is the best current one
   */
  accountGrants: (accountId: string) => `{acct:${accountId}}:grants`,
  /** HASH sessions_created, bytes_transferred, requests_served (lifetime counters) */
  accountUsage: (accountId: string) => `{acct:${accountId}}:usage`,
  /** STRING bytes transferred on one UTC day (YYYY-MM-DD); TTL usageDay */
  accountDay: (accountId: string, day: string) => `{acct:${accountId}}:day:${day}`,
  /** SET of OAuth client ids the account registered */
  accountOAuthClients: (accountId: string) => `{acct:${accountId}}:oauth:clients`,
  /** HASH grant id → client id: the account's OAuth grants (refresh-token families) */
  accountOAuthGrants: (accountId: string) => `{acct:${accountId}}:oauth:grants`,
  /**
   * HASH client, scope, created_at, last_used, access_key (id of the live access token), refresh_hash:
   * one OAuth grant, from a code exchange through every refresh; TTL oauthGrant
   */
  oauthGrant: (accountId: string, grantId: string) => `{acct:${accountId}}:oauth:grant:${grantId}`,

  // ── indexes (own slots) ──────────────────────────────────────────────────────────────────────
  /** STRING "<accountId> <keyId>" for the SHA-256 (hex) of a tb_ token */
  tokenHash: (sha256Hex: string) => `tokenhash:${sha256Hex}`,
  /** STRING accountId for a lower-cased email */
  email: (normalizedEmail: string) => `email:${normalizedEmail}`,
  /** STRING accountId for a Stripe customer id */
  stripeCustomer: (customerId: string) => `stripe:customer:${customerId}`,
  /** STRING accountId a Stripe subscription was paid for (SET NX: never moves) */
  stripeSubscription: (subscriptionId: string) => `stripe:subscription:${subscriptionId}`,
  /** HASH id, owner, name, redirect_uris (JSON), auth_method, secret_hash, created_at: an OAuth client */
  oauthClient: (clientId: string) => `oauthclient:${clientId}`,
  /** SET of "<accountId> <grantId>": every grant made to a client (deleting the client revokes them) */
  oauthClientGrants: (clientId: string) => `oauthclient:${clientId}:grants`,
  /**
   * HASH client, account, redirect_uri, scope, challenge, expires_at, uses, grant: an authorization code
   * by the SHA-256 of its value; TTL oauthCode
   */
  oauthCode: (sha256Hex: string) => `oauthcode:${sha256Hex}`,
  /** HASH account, grant, uses: a refresh token (tbr_) by SHA-256; outlives its rotation to catch reuse */
  oauthRefresh: (sha256Hex: string) => `oauthrefresh:${sha256Hex}`,
  /** HASH account, csrf, created_at, expires_at: a browser sign-in by the SHA-256 of its cookie; TTL webSession */
  webSession: (sha256Hex: string) => `websession:${sha256Hex}`,
  /** STRING "processing" | "done" (SET NX) */
  stripeEvent: (eventId: string) => `stripe:event:${eventId}`,

  // ── rate limits and login back-off ───────────────────────────────────────────────────────────
  /** rate-limiter-flexible key prefix for per-token bearer caps (one prefix per tier) */
  bearerLimitPrefix: (tier: string) => `rl:bearer:${tier}`,
  /** rate-limiter-flexible key prefix for the budget all tokens of one account share (per tier) */
  accountLimitPrefix: (tier: string) => `rl:account:${tier}`,
  /** rate-limiter-flexible key prefix of the global anonymous-signup window */
  signupLimitPrefix: () => 'rl:signup',
  /** rate-limiter-flexible key prefix of each source's anonymous-signup window (keyed by source) */
  signupSourceLimitPrefix: () => 'rl:signup-src',
  /** rate-limiter-flexible key prefix for node tokens (keyed by ntk_ id) */
  nodeLimitPrefix: () => 'rl:node',
  /** rate-limiter-flexible key prefix for node tokens' heartbeats, a window apart (keyed by ntk_ id) */
  nodeHeartbeatLimitPrefix: () => 'rl:node-beat',
  /** HASH count, last_ms: login attempts not (yet) successful per source (IPv4, or IPv6 /64) */
  loginFailuresBySource: (source: string) => `login:fail:src:${source}`,
  /** HASH count, last_ms, clean_ms: per email; the (email, source) counter shares its slot */
  loginFailuresByEmail: (normalizedEmail: string) => `{login:${normalizedEmail}}:fail`,
  /** HASH count, last_ms: per email and source */
  loginFailuresByEmailSource: (normalizedEmail: string, source: string) =>
    `{login:${normalizedEmail}}:fail:${source}`,

  // ── regions and exit nodes ───────────────────────────────────────────────────────────────────
  /** SET of region ids */
  regions: () => 'regions',
  /** HASH id, name, country, tiers (comma-separated), created_at */
  region: (regionId: string) => `region:${regionId}`,
  /**
   * ZSET nodeId → last heartbeat (ms since epoch). Written by services/nodes.ts on register and
   * every heartbeat; read by GET /v1/regions for status, node count and load.
   */
  regionNodes: (regionId: string) => `{region:${regionId}}:nodes`,
  /** SET of every node id ever registered (GET /v1/admin/nodes) */
  nodes: () => 'nodes',
  /**
   * HASH id, region, endpoint, public_key, capacity, version, load (0..1), draining ("0"|"1"),
   * heartbeat_ms (interval), last_heartbeat (ms), registered_at (ms), egress_ips (JSON). Written by
   * services/nodes.ts.
   */
  node: (nodeId: string) => `node:${nodeId}`,
  /** HASH id, region, created_at, expires_at, max_nodes, hash, revoked_at: a node token's record */
  nodeToken: (tokenId: string) => `nodetoken:${tokenId}`,
  /** SET of every node token id ever issued (GET /v1/admin/node-tokens) */
  nodeTokens: () => 'nodetokens',
  /** SET of the node ids a token enrolled (its max_nodes cap) */
  nodeTokenNodes: (tokenId: string) => `nodetoken:${tokenId}:nodes`,
  /** SET of node ids an operator removed: they may not register again */
  removedNodes: () => 'nodes:removed',
  /** HASH id, region, created_at, expires_at, max_nodes, hash: node enrollment tokens (tbn_), looked up by SHA-256 hex */
  nodeTokenHash: (sha256Hex: string) => `nodetokenhash:${sha256Hex}`,

  // ── sessions and the node data plane (hash tag {region:<id>}) ──────────────────────────────────
  // Creating a session picks a node, leases an address, writes the session and publishes to the
  // node's peer feed in ONE Lua script, so every key it may touch shares the region's slot. The
  // scripts (services/lua.ts) build the node-scoped names from regionPrefix() with the same
  // suffixes as the builders below; per-account keys ({acct:<id>}) are updated in separate,
  // idempotent steps (services/sessions.ts explains the trade-off).
  /** "{region:<id>}:": the prefix Lua scripts extend with the suffixes below. */
  regionPrefix: (regionId: string) => `{region:${regionId}}:`,
  /**
   * HASH endpoint, public_key, capacity, load, draining, token_id, pool_v4, pool_v6, max_index,
   * heartbeat_ms (the interval the node was last told)
   */
  regionNode: (regionId: string, nodeId: string) => `{region:${regionId}}:node:${nodeId}`,
  /**
   * SET of the region's nodes an operator removed whose peers have not all moved yet (the reaper's
   * failover finishes them, services/failover.ts)
   */
  regionRemovedNodes: (regionId: string) => `{region:${regionId}}:removed`,
  // Addresses are leased per region and pool, not per node, so a session keeps its addresses on any
  // node of the region with the same pool. "<v4>,<v6>" is the pool's tag (the session's `pool` field).
  /** HASH address index → session id: the pool's leased tunnel addresses in the region */
  addressLeases: (regionId: string, pool: PoolPrefixes) => `{region:${regionId}}:leases:${poolTag(pool)}`,
  /** ZSET address index → index: the pool's freed addresses, reused lowest first */
  freeAddresses: (regionId: string, pool: PoolPrefixes) => `{region:${regionId}}:free:${poolTag(pool)}`,
  /** STRING the highest address index the pool handed out in the region */
  addressCounter: (regionId: string, pool: PoolPrefixes) => `{region:${regionId}}:next:${poolTag(pool)}`,
  /**
   * HASH address index → session ids (space-separated): sessions from before regional leases that share
   * an index another session holds, waiting for it (services/lua.ts LEASES)
   */
  waitingLeases: (regionId: string, pool: PoolPrefixes) => `{region:${regionId}}:legacy:${poolTag(pool)}`,
  /** HASH address index → session id: a node's leases from before regional leases */
  nodeLeases: (regionId: string, nodeId: string) => `{region:${regionId}}:leases:${nodeId}`,
  /** HASH client public key → JSON {ses, idx, psk?}: the node's current peer set */
  nodePeers: (regionId: string, nodeId: string) => `{region:${regionId}}:peers:${nodeId}`,
  /** STREAM op (add|del), public_key, idx, psk: the node's peer feed (long-polled) */
  nodeFeed: (regionId: string, nodeId: string) => `{region:${regionId}}:feed:${nodeId}`,
  /**
   * HASH id, account, region, node, public_key, idx, pool (tag), psk ('1' | '0': has one), state
   * (open|lost|closed|expired; lost: its node was lost with no room elsewhere), created_at, closed_at,
   * lost_at, moved_at, expires_at, anchor (account created_at, for the 30-day period), rx, tx, rx_last,
   * tx_last (the current node's last report), handshake
   */
  session: (regionId: string, sessionId: string) => `{region:${regionId}}:ses:${sessionId}`,
  /** ZSET open session id → expires_at (ms): what the reaper walks */
  regionExpiry: (regionId: string) => `{region:${regionId}}:expiry`,
  /** ZSET session id → deadline (ms): the account's open sessions and pending reservations */
  accountLiveSessions: (accountId: string) => `{acct:${accountId}}:live`,
  /** ZSET session id → closed_at (ms): the account's closed and expired sessions, at most MAX_CLOSED_SESSIONS */
  accountClosedSessions: (accountId: string) => `{acct:${accountId}}:closed`,
  /** HASH session id → region: every session of the account whose record still exists */
  accountSessions: (accountId: string) => `{acct:${accountId}}:sessions`,
  /** HASH bytes, sessions_created: one 30-day usage period starting at `periodStartMs` */
  accountPeriod: (accountId: string, periodStartMs: number) => `{acct:${accountId}}:period:${periodStartMs}`,

  // ── IP attribution ───────────────────────────────────────────────────────────────────────────
  /** LIST of JSON {node, region, first_seen, last_seen} (ms), oldest first, for a canonical IP */
  ipHistory: (canonicalIp: string) => `ip:${canonicalIp}`,
} as const;
