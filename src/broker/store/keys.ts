// Every Redis key the broker uses, with its TTL, in one place. Keys that a single operation must
// touch together share a hash tag ({...}) so the layout also works on Redis Cluster: everything of
// one account lives under {acct:<id>}. Index keys (token hash → key, email → account) live in their
// own slots and are written after, and checked against, the record they point to.

const DAY = 24 * 60 * 60;

export const TTL = {
  /** A Stripe event id, remembered so that a replay applies nothing (Stripe retries for 3 days). */
  stripeEventSeconds: 30 * DAY,
  /** Claim on a Stripe event while it is being applied; released if applying fails. */
  stripeEventClaimSeconds: 60,
  /** Email + password hash waiting for the Stripe payment that attaches them. */
  pendingCheckoutSeconds: 2 * DAY,
  /** Failed-login counters: forgotten after this long without failures. */
  loginFailuresSeconds: 60 * 60,
  /** Egress-IP history kept for abuse desks. */
  ipHistorySeconds: 400 * DAY,
} as const;

export const keys = {
  // ── accounts (hash tag {acct:<id>}) ──────────────────────────────────────────────────────────
  /** HASH id, email, name, plan, created_at, password_hash, stripe_customer, stripe_subscription */
  account: (accountId: string) => `{acct:${accountId}}:account`,
  /** SET of key ids belonging to the account */
  accountKeys: (accountId: string) => `{acct:${accountId}}:keys`,
  /** HASH id, account, name, hash, hint, permissions (JSON), fingerprint, created_at, last_used, expires_at, status */
  apiKey: (accountId: string, keyId: string) => `{acct:${accountId}}:key:${keyId}`,
  /** HASH email, password_hash: attached to the account when Stripe confirms payment (TTL pendingCheckout) */
  pendingCheckout: (accountId: string) => `{acct:${accountId}}:pending`,
  /** HASH sessions_created, bytes_transferred, requests_served (lifetime counters) */
  accountUsage: (accountId: string) => `{acct:${accountId}}:usage`,

  // ── indexes (own slots) ──────────────────────────────────────────────────────────────────────
  /** STRING "<accountId> <keyId>" for the SHA-256 (hex) of a tb_ token */
  tokenHash: (sha256Hex: string) => `tokenhash:${sha256Hex}`,
  /** STRING accountId for a lower-cased email */
  email: (normalizedEmail: string) => `email:${normalizedEmail}`,
  /** STRING accountId for a Stripe customer id */
  stripeCustomer: (customerId: string) => `stripe:customer:${customerId}`,
  /** STRING "processing" | "done" (SET NX) */
  stripeEvent: (eventId: string) => `stripe:event:${eventId}`,

  // ── rate limits and login back-off ───────────────────────────────────────────────────────────
  /** rate-limiter-flexible key prefix for per-token bearer caps (one prefix per tier) */
  bearerLimitPrefix: (tier: string) => `rl:bearer:${tier}`,
  /** HASH count, last_ms: failed logins per source IP / per email */
  loginFailuresByIp: (ip: string) => `login:fail:ip:${ip}`,
  loginFailuresByEmail: (normalizedEmail: string) => `login:fail:email:${normalizedEmail}`,

  // ── regions and exit nodes ───────────────────────────────────────────────────────────────────
  /** SET of region ids */
  regions: () => 'regions',
  /** HASH id, name, country, tiers (comma-separated), created_at */
  region: (regionId: string) => `region:${regionId}`,
  /**
   * ZSET nodeId → last heartbeat (ms since epoch). Written by the node service (B2) on register and
   * every heartbeat; read by GET /v1/regions for status, node count and load.
   */
  regionNodes: (regionId: string) => `{region:${regionId}}:nodes`,
  /** SET of every node id ever registered (GET /v1/admin/nodes) */
  nodes: () => 'nodes',
  /**
   * HASH id, region, endpoint, public_key, capacity, version, load (0..1), draining ("0"|"1"),
   * heartbeat_ms (interval), last_heartbeat (ms), registered_at (ms), egress_ips (JSON). Written by B2.
   */
  node: (nodeId: string) => `node:${nodeId}`,
  /** HASH id, region, created_at, hash: node enrollment tokens (tbn_), looked up by SHA-256 hex */
  nodeTokenHash: (sha256Hex: string) => `nodetokenhash:${sha256Hex}`,

  // ── IP attribution ───────────────────────────────────────────────────────────────────────────
  /** LIST of JSON {node, region, first_seen, last_seen} (ms), oldest first, for a canonical IP */
  ipHistory: (canonicalIp: string) => `ip:${canonicalIp}`,
} as const;
