// The bodies of the HTTP contract (docs/API.md) that more than one side reads, as zod schemas: the
// broker validates requests and documents its answers with them (routes/ → OpenAPI), the node's broker
// client (nodes/broker-client.ts) and the CLI's typed client (api-client.ts) take their types from them,
// and the node validates the broker's answers with them. Plain zod: `.meta({ id })` names a schema in
// the OpenAPI document without this module loading the document generator.
import { z } from 'zod';
import { MAX_ADDRESS_INDEX } from './addresses.js';
import { isCanonicalEndpoint } from './endpoint.js';
import { isBase64Key } from './wgkey.js';

/** The tiers of docs/API.md "Tiers", cheapest first. */
export const TIERS = ['free', 'pro', 'business'] as const;
export type Tier = (typeof TIERS)[number];

/** A session's ttl_seconds: at least a minute; at most 30 days, the longest any tier allows. */
export const SESSION_TTL_SECONDS = { min: 60, max: 30 * 24 * 3600 } as const;

// ── names (docs/API.md "Conventions") ───────────────────────────────────────────────────────────

/**
 * Text without C0 and C1 controls or DEL (a terminal escape, a newline forging a log line), lone
 * surrogates, the line and paragraph separators, or the bidi embeddings, overrides and isolates that
 * reorder the text around them. Names are printed later, in terminals, pages and logs, and must print
 * as what they are. Written without the u flag, so the OpenAPI document carries it as a plain
 * ECMA-262 pattern: any other code unit, or a surrogate pair (an emoji) whole.
 */
const PRINTABLE =
  // eslint-disable-next-line no-control-regex -- refusing control characters is the point
  /^(?:[^\u0000-\u001F\u007F-\u009F\u2028\u2029\u202A-\u202E\u2066-\u2069\uD800-\uDFFF]|[\uD800-\uDBFF][\uDC00-\uDFFF])*$/;

/** `schema` (a string) holding printable characters only. */
export const printable = (schema: z.ZodString) =>
  schema
    .regex(PRINTABLE, 'printable characters only: no control characters, line separators or bidi controls')
    .meta({
      description:
        'printable: no C0/C1 control characters, U+2028/2029 or bidi controls (U+202A–202E, U+2066–2069)',
    });

/** What a person calls a key, an app or a region: 1 to 100 printable characters, trimmed. */
export const Name = printable(z.string().trim().min(1).max(100));

// ── regions (docs/API.md "Public endpoints") ────────────────────────────────────────────────────

export const REGION_STATUSES = ['active', 'degraded', 'down'] as const;
export type RegionStatus = (typeof REGION_STATUSES)[number];

export const Region = z
  .object({
    id: z.string().meta({ example: 'eu-west' }),
    name: z.string().meta({ example: 'Frankfurt' }),
    country: z.string().meta({ example: 'DE' }),
    status: z.enum(REGION_STATUSES),
    nodes: z.number().int(),
    load: z.number(),
    tiers: z.array(z.enum(TIERS)),
  })
  .meta({ id: 'Region' });
export type Region = z.infer<typeof Region>;

export const WireGuardKey = z
  .string()
  .refine(isBase64Key, 'a base64 WireGuard key (32 bytes)')
  .meta({ example: 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=' });

// ── exit nodes (docs/API.md "Exit nodes") ───────────────────────────────────────────────────────

const Count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const NodeRegistration = z
  .object({
    region: z.string().min(1).max(64),
    endpoint: z
      .string()
      .min(3)
      .max(300)
      // The endpoint ends up in every client config: refuse now what could not be written then.
      .refine(isCanonicalEndpoint, "'host:port' or '[IPv6]:port', as wg(8) writes it")
      .meta({ example: '203.0.113.7:51820' }),
    public_key: WireGuardKey,
    egress_ips: z.array(z.string().max(64)).max(64).default([]),
    capacity: z
      .number()
      .int()
      .min(1)
      .max(MAX_ADDRESS_INDEX - 1),
    version: printable(z.string().max(64)).default(''),
  })
  .meta({ id: 'NodeRegistration' });

export const RegisterAnswer = z.object({
  node_id: z.string().min(1).max(128),
  heartbeat_ms: z.number().int().min(1),
  /** The address pool the node numbers its peers from (absent from brokers before pools: the default). */
  pool: z.object({ v4: z.string().max(64), v6: z.string().max(64) }).optional(),
});

export const NodeHeartbeat = z
  .object({
    load: z.number().min(0).max(1),
    draining: z.boolean().default(false),
    peers: z
      .array(
        z.object({
          public_key: WireGuardKey,
          rx_bytes: Count,
          tx_bytes: Count,
          last_handshake_at: z.iso.datetime({ offset: true }).nullable().optional(),
        }),
      )
      .default([])
      .meta({
        description:
          'totals of any subset of the peers (those that moved); this body may exceed 64 KiB, up to 64 KiB plus 256 bytes per peer of the broker’s largest node capacity',
      }),
  })
  .meta({ id: 'NodeHeartbeat' });

export const HeartbeatAnswer = z.object({ heartbeat_ms: z.number().int().min(1) });

export const FeedPeer = z.object({
  public_key: z.string(),
  preshared_key: z.string().optional(),
  allowed_ips: z.array(z.string()),
});

export const FeedPage = z
  .object({
    cursor: z.string().max(64),
    full: z
      .boolean()
      .meta({ description: 'true: peers is the whole set; false: apply removed, then upsert peers' }),
    peers: z.array(FeedPeer),
    removed: z.array(z.string()),
  })
  .meta({ id: 'PeerFeed' });

// ── accounts and keys (docs/API.md "Accounts and keys") ────────────────────────────────────────

export const User = z
  .object({
    id: z.string().meta({ example: 'usr_4f9K2m8Qx1Lp0Zr7Tb3W' }),
    email: z.string().nullable(),
    name: z.string().nullable(),
    plan: z.enum(TIERS),
    created_at: z.string(),
  })
  .meta({ id: 'User' });

/** `GET /v1/auth/user`: the account with its lifetime counters. */
export const UserWithUsage = User.extend({
  usage: z.object({
    sessions_created: z.number().int(),
    bytes_transferred: z.number().int(),
    requests_served: z.number().int(),
  }),
});

export const ApiKey = z
  .object({
    id: z.string(),
    name: z.string(),
    key: z.string().meta({ description: 'masked except at creation', example: 'tb_***…abc' }),
    permissions: z.array(z.string()),
    created_at: z.string(),
    last_used: z.string().nullable(),
    expires_at: z.string().nullable(),
  })
  .meta({ id: 'ApiKey' });

/** `GET /v1/auth/key`: the presenting key, masked. */
export const CurrentKey = ApiKey.extend({ status: z.literal('valid') });

/** Signup and login: a new key, shown once, and its account. */
export const TokenGrant = z.object({ api_key: z.string(), user: User }).meta({ id: 'TokenGrant' });

/** `GET /v1/auth/test`; `granted` only when a scope was asked for. */
export const AuthTest = z.object({
  valid: z.literal(true),
  user: User,
  plan: z.enum(TIERS),
  permissions: z.array(z.string()),
  granted: z.literal(true).optional(),
});

export type User = z.infer<typeof User>;
export type UserWithUsage = z.infer<typeof UserWithUsage>;
export type ApiKey = z.infer<typeof ApiKey>;
export type CurrentKey = z.infer<typeof CurrentKey>;
export type TokenGrant = z.infer<typeof TokenGrant>;
export type AuthTest = z.infer<typeof AuthTest>;

// ── sessions and usage (docs/API.md "Sessions", "Usage and billing") ────────────────────────────

export const SESSION_STATUSES = ['pending', 'active', 'idle', 'expired', 'closed', 'node_lost'] as const;
export type SessionStatus = (typeof SESSION_STATUSES)[number];
/** Why a closed session was closed: its owner deleted it, or its account ran out of bytes. */
export const CLOSED_REASONS = ['deleted', 'quota_exhausted'] as const;
export type ClosedReason = (typeof CLOSED_REASONS)[number];

export const SessionNode = z
  .object({ id: z.string(), endpoint: z.string(), public_key: z.string() })
  .meta({ id: 'SessionNode' });

export const Session = z
  .object({
    id: z.string().meta({ example: 'ses_4Xb2…' }),
    status: z.enum(SESSION_STATUSES),
    region: z.string(),
    node: SessionNode.meta({
      description: 'the node the session is on now: another one of the region after a failover',
    }),
    config: z.string().meta({
      description:
        'wg-quick file for the current node; PrivateKey = <your private key> (and PresharedKey = <your preshared key>) stand in for keys shown only at creation',
    }),
    moved_at: z.string().nullable().meta({
      description:
        'when the session last moved to another node (its node was lost or removed); null if never',
    }),
    created_at: z.string(),
    expires_at: z.string(),
    last_handshake_at: z.string().nullable(),
    rx_bytes: z.number().int().meta({ description: 'bytes the exit node received from the client' }),
    tx_bytes: z.number().int().meta({ description: 'bytes the exit node sent to the client' }),
    closed_reason: z
      .enum(CLOSED_REASONS)
      .nullable()
      .meta({ description: 'why a closed session was closed; null otherwise' }),
  })
  .meta({ id: 'Session' });

/** What a session's wg-quick config is made of (src/lib/session-config.ts). */
export const SessionInterface = z.object({
  addresses: z.array(z.string()),
  dns: z.array(z.string()),
  private_key: z
    .string()
    .optional()
    .meta({ description: 'only when the broker made the key pair; shown once' }),
});

export const SessionPeer = z.object({
  public_key: z.string(),
  preshared_key: z.string().optional(),
  endpoint: z.string(),
  allowed_ips: z.array(z.string()),
  persistent_keepalive: z.number().int(),
});

export const CreatedSession = z
  .object({
    id: z.string(),
    status: z.literal('pending'),
    region: z.string(),
    node: SessionNode,
    interface: SessionInterface,
    peer: SessionPeer,
    config: z
      .string()
      .meta({ description: 'wg-quick file; PrivateKey = <your private key> with a client key' }),
    created_at: z.string(),
    expires_at: z.string(),
  })
  .meta({ id: 'CreatedSession' });

export const Usage = z
  .object({
    tier: z.enum(TIERS),
    period: z.object({ start: z.string(), end: z.string() }),
    bytes: z.object({ used: z.number().int(), limit: z.number().int().nullable() }),
    sessions: z.object({ active: z.number().int(), limit: z.number().int(), created: z.number().int() }),
    requests: z.object({ limit_per_minute: z.number().int() }),
  })
  .meta({ id: 'Usage' });

export type SessionNode = z.infer<typeof SessionNode>;
export type Session = z.infer<typeof Session>;
export type SessionInterface = z.infer<typeof SessionInterface>;
export type SessionPeer = z.infer<typeof SessionPeer>;
export type CreatedSession = z.infer<typeof CreatedSession>;
export type Usage = z.infer<typeof Usage>;
export type NodeRegistration = z.input<typeof NodeRegistration>;
export type RegisterAnswer = z.infer<typeof RegisterAnswer>;
export type NodeHeartbeat = z.input<typeof NodeHeartbeat>;
export type HeartbeatAnswer = z.infer<typeof HeartbeatAnswer>;
export type FeedPeer = z.infer<typeof FeedPeer>;
export type FeedPage = z.infer<typeof FeedPage>;
