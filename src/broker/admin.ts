// `tunnelbyte-broker admin ...`: bootstrap commands that act on Redis directly (no HTTP, no token),
// for the operator who has the Redis URL: regions, node enrollment tokens, operator keys.
import { Command, InvalidArgumentError } from 'commander';
import { pino } from 'pino';
import { loadConfig, TIERS, type Tier } from './config.js';
import { createContext, type BrokerContext } from './context.js';
import { isPermission } from './scopes.js';
import { createAccount, getAccount, issueKey } from './services/accounts.js';
import { createNodeToken, DEFAULT_MAX_NODES, listNodeTokens } from './services/enrollment.js';
import { removeNode, revokeEnrollment } from './services/nodes.js';
import { POOL_PREFIXES, poolPrefixError, type Pool } from '../lib/addresses.js';
import { Name } from '../lib/api.js';
import { removeRegion } from './services/fleet.js';
import {
  getRegion,
  listNodeSummaries,
  REGION_ID,
  type RegionChanges,
  regionsWithHealth,
  updateRegion,
  upsertRegion,
} from './services/regions.js';
import { createRedis, REDIS_OPTIONS, type Redis } from './store/redis.js';

/** The account that owns keys made from the command line. */
export const OPERATOR_ACCOUNT_ID = 'usr_operator';

/** `--name` as the API takes names (lib/api.ts Name): trimmed, printable; the Error never echoes it. */
function checkedName(value: string): string {
  const parsed = Name.safeParse(value);
  if (!parsed.success) throw new Error(`--name: ${parsed.error.issues[0]?.message ?? 'not a name'}`);
  return parsed.data;
}

export async function addRegion(
  ctx: BrokerContext,
  input: { id: string; name: string; country: string; tiers: Tier[]; pool?: Partial<Pool> },
): Promise<string> {
  if (!REGION_ID.test(input.id)) throw new Error(`bad region id: ${input.id}`);
  if (!/^[A-Z]{2}$/.test(input.country)) throw new Error('country must be two upper-case letters');
  const { created } = await upsertRegion(ctx, { ...input, name: checkedName(input.name) });
  return `${created ? 'added' : 'updated'} region ${input.id}`;
}

export interface NodeTokenLimits {
  expiresInSeconds?: number;
  maxNodes?: number;
}

/** A tbn_ token for a region, with its public id (ntk_…) for listing and revoking. */
export async function createNodeTokenFor(
  ctx: BrokerContext,
  region: string,
  limits: NodeTokenLimits = {},
): Promise<{ id: string; token: string }> {
  if (!(await getRegion(ctx, region))) throw new Error(`unknown region: ${region}`);
  const issued = await createNodeToken(ctx, region, {
    expiresAt: limits.expiresInSeconds === undefined ? null : ctx.clock() + limits.expiresInSeconds * 1000,
    maxNodes: limits.maxNodes,
  });
  return { id: issued.tokenId, token: issued.token };
}

// Option parsers throw InvalidArgumentError: commander reports those as usage errors (exit 2). The
// commands themselves throw plain Errors: main.ts prints their line and exits 1.
const DURATION_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** `30d`, `12h`, `90m` or `3600s`: at least a minute, as the admin route takes. */
const parseDuration = (value: string): number => {
  const match = /^([1-9][0-9]{0,5})([smhd])$/.exec(value);
  const seconds = match ? Number(match[1]) * DURATION_SECONDS[match[2]!]! : 0;
  if (seconds < 60) throw new InvalidArgumentError('a duration of at least a minute, e.g. 30d, 12h or 90m');
  return seconds;
};

const parseMaxNodes = (value: string): number => {
  const n = Number(value);
  if (!/^[0-9]+$/.test(value) || n < 1 || n > 10_000)
    throw new InvalidArgumentError('a count from 1 to 10000');
  return n;
};

export async function createOperatorKey(ctx: BrokerContext, scopes: string[], name: string): Promise<string> {
  const bad = scopes.find((s) => !isPermission(s));
  if (bad) throw new Error(`unknown scope: ${bad}`);
  const keyName = checkedName(name);
  if (!(await getAccount(ctx, OPERATOR_ACCOUNT_ID))) {
    await createAccount(ctx, { id: OPERATOR_ACCOUNT_ID, plan: 'business', name: 'operator' });
  }
  const { token } = await issueKey(ctx, OPERATOR_ACCOUNT_ID, {
    name: keyName,
    permissions: [...new Set(scopes)],
    fingerprint: null,
    expiresAt: null,
  });
  return token;
}

const poolOption = (family: 'v4' | 'v6') => (value: string) => {
  const error = poolPrefixError(family, value);
  if (error) throw new InvalidArgumentError(error);
  return value;
};

interface PoolOptions {
  poolV4?: string;
  poolV6?: string;
}

/** The pool options as a partial pool, or nothing when neither is given. */
const poolOf = ({ poolV4, poolV6 }: PoolOptions): { pool?: Partial<Pool> } =>
  poolV4 || poolV6 ? { pool: { ...(poolV4 ? { v4: poolV4 } : {}), ...(poolV6 ? { v6: poolV6 } : {}) } } : {};

const parseTiers = (value: string): Tier[] => {
  const tiers = value.split(',').map((t) => t.trim());
  const bad = tiers.find((t) => !(TIERS as readonly string[]).includes(t));
  if (bad) throw new InvalidArgumentError(`unknown tier: ${bad}`);
  return tiers as Tier[];
};

export async function listRegions(ctx: BrokerContext, json: boolean): Promise<string> {
  const rows = (await regionsWithHealth(ctx)).map(({ region, health }) => ({
    id: region.id,
    name: region.name,
    country: region.country,
    tiers: region.tiers,
    pool: region.pool,
    ...health,
  }));
  if (json) return JSON.stringify({ regions: rows });
  const cells = [
    ['ID', 'NAME', 'COUNTRY', 'TIERS', 'STATUS', 'NODES', 'LOAD'],
    ...rows.map((r) => [
      r.id,
      r.name,
      r.country,
      r.tiers.join(','),
      r.status,
      String(r.nodes),
      String(r.load),
    ]),
  ];
  return table(cells);
}

/** Rows as aligned columns, the first row the header. */
function table(cells: string[][]): string {
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  return cells
    .map((row) =>
      row
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export async function listNodeTokensText(ctx: BrokerContext, json: boolean): Promise<string> {
  const tokens = await listNodeTokens(ctx);
  if (json) return JSON.stringify({ node_tokens: tokens });
  return table([
    ['ID', 'REGION', 'NODES', 'CREATED', 'EXPIRES', 'REVOKED'],
    ...tokens.map((t) => [
      t.id,
      t.region,
      `${t.nodes}/${t.max_nodes}`,
      t.created_at,
      t.expires_at ?? '-',
      t.revoked_at ?? '-',
    ]),
  ]);
}

export async function revokeNodeTokenText(ctx: BrokerContext, tokenId: string): Promise<string> {
  if (!(await listNodeTokens(ctx)).some((t) => t.id === tokenId)) {
    throw new Error(`no such node token: ${tokenId}`);
  }
  await revokeEnrollment(ctx, tokenId);
  return `revoked node token ${tokenId}; its nodes are removed`;
}

export async function listNodesText(
  ctx: BrokerContext,
  region: string | undefined,
  json: boolean,
): Promise<string> {
  const nodes = (await listNodeSummaries(ctx)).filter((n) => region === undefined || n.region === region);
  if (json) return JSON.stringify({ nodes });
  return table([
    ['ID', 'REGION', 'ENDPOINT', 'STATE', 'LOAD', 'LAST HEARTBEAT'],
    ...nodes.map((n) => [
      n.id,
      n.region,
      n.endpoint ?? '-',
      n.state ?? '-',
      `${n.load}/${n.capacity ?? '-'}`,
      n.last_heartbeat ?? '-',
    ]),
  ]);
}

export async function removeNodeText(ctx: BrokerContext, nodeId: string): Promise<string> {
  if (!(await removeNode(ctx, nodeId, true))) throw new Error(`no such node: ${nodeId}`);
  return `removed node ${nodeId}; its sessions move to other nodes of the region (node_lost where none has room)`;
}

export async function changeRegion(ctx: BrokerContext, id: string, changes: RegionChanges): Promise<string> {
  if (
    Object.values(changes).every((v) => v === undefined) ||
    (changes.pool && !changes.pool.v4 && !changes.pool.v6)
  )
    throw new Error('nothing to change: give --name, --country, --tiers, --pool-v4 or --pool-v6');
  if (changes.country !== undefined && !/^[A-Z]{2}$/.test(changes.country))
    throw new Error('country must be two upper-case letters');
  await updateRegion(ctx, id, {
    ...changes,
    ...(changes.name === undefined ? {} : { name: checkedName(changes.name) }),
  });
  return `updated region ${id}`;
}

export async function dropRegion(ctx: BrokerContext, id: string, force: boolean): Promise<string> {
  const { closedSessions } = await removeRegion(ctx, id, { force });
  return `removed region ${id} (${closedSessions} open session(s) closed)`;
}

type Print = (line: string) => void;

/** Where Redis is, for messages: scheme, host and port, never a password. */
function redisWhere(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}`;
  } catch {
    return 'REDIS_URL';
  }
}

/**
 * Connected, or one line saying why not: one attempt (no retries), bounded by the connect timeout even
 * when something accepts the connection and never answers.
 */
function connected(redis: Redis, url: string): Promise<void> {
  const timeoutMs = REDIS_OPTIONS.connectTimeout ?? 5000;
  return new Promise<void>((resolve, reject) => {
    let cause = 'connection closed';
    const fail = () => {
      clearTimeout(timer);
      reject(new Error(`cannot reach Redis at ${redisWhere(url)}: ${cause} (set REDIS_URL)`));
    };
    const timer = setTimeout(() => {
      cause = `no answer within ${timeoutMs / 1000} s`;
      fail();
    }, timeoutMs);
    redis.on('error', (err: Error) => (cause = err.message || cause));
    redis.once('end', fail);
    redis.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Runs `action` with a context on REDIS_URL, prints its result, and closes the connection. */
async function withContext(print: Print, action: (ctx: BrokerContext) => Promise<string>): Promise<void> {
  const config = loadConfig();
  const redis = createRedis(config.redisUrl, { enableOfflineQueue: true, retryStrategy: () => null });
  try {
    await connected(redis, config.redisUrl);
    const ctx = createContext({ config, redis, logger: pino({ level: 'silent' }) });
    print(await action(ctx));
  } finally {
    redis.disconnect();
  }
}

export function adminCommand(
  print: Print = (line) => process.stdout.write(`${line}\n`),
  inform: Print = (line) => process.stderr.write(`${line}\n`),
): Command {
  const admin = new Command('admin').description('act on Redis directly (env REDIS_URL)');
  const region = admin.command('region').description('exit regions');
  region
    .command('add <id>')
    .description('create a region, or replace one with the same id')
    .requiredOption('--name <name>', 'display name, e.g. Frankfurt')
    .requiredOption('--country <CC>', 'ISO 3166-1 alpha-2 country code')
    .option('--tiers <list>', 'tiers allowed, comma-separated', parseTiers, [...TIERS])
    .option(
      '--pool-v4 <CIDR>',
      `IPv4 pool nodes number their peers from (default ${POOL_PREFIXES.v4})`,
      poolOption('v4'),
    )
    .option('--pool-v6 <CIDR>', `IPv6 pool (default ${POOL_PREFIXES.v6})`, poolOption('v6'))
    .action((id: string, o: { name: string; country: string; tiers: Tier[] } & PoolOptions) =>
      withContext(print, (ctx) =>
        addRegion(ctx, { id, name: o.name, country: o.country, tiers: o.tiers, ...poolOf(o) }),
      ),
    );
  region
    .command('list')
    .description('every region with its tiers, status, healthy nodes and load')
    .option('--json', 'one JSON object')
    .action((o: { json?: boolean }) => withContext(print, (ctx) => listRegions(ctx, o.json === true)));
  region
    .command('update <id>')
    .description('change some fields of a region (sessions already made keep theirs)')
    .option('--name <name>', 'display name')
    .option('--country <CC>', 'ISO 3166-1 alpha-2 country code')
    .option('--tiers <list>', 'tiers allowed, comma-separated', parseTiers)
    .option(
      '--pool-v4 <CIDR>',
      'IPv4 pool, for nodes that register without sessions from now on',
      poolOption('v4'),
    )
    .option('--pool-v6 <CIDR>', 'IPv6 pool, likewise', poolOption('v6'))
    .action((id: string, o: Omit<RegionChanges, 'pool'> & PoolOptions) =>
      withContext(print, (ctx) =>
        changeRegion(ctx, id, { name: o.name, country: o.country, tiers: o.tiers, ...poolOf(o) }),
      ),
    );
  region
    .command('remove <id>')
    .description('remove a region and close its sessions; refused while it has live nodes')
    .option('--force', 'remove it even with live nodes (they can no longer serve it)')
    .action((id: string, o: { force?: boolean }) =>
      withContext(print, (ctx) => dropRegion(ctx, id, o.force === true)),
    );
  const nodeToken = admin.command('node-token').description('exit-node enrollment tokens');
  nodeToken
    .command('create')
    .description('issue a tbn_ token that enrolls nodes in a region (printed once; its ntk_ id on stderr)')
    .requiredOption('--region <id>', 'region the node serves')
    .option(
      '--expires-in <duration>',
      'stop enrolling after e.g. 30d, 12h or 90m (default: never)',
      parseDuration,
    )
    .option('--max-nodes <n>', `nodes it may enroll (default ${DEFAULT_MAX_NODES})`, parseMaxNodes)
    .action((o: { region: string; expiresIn?: number; maxNodes?: number }) =>
      withContext(print, async (ctx) => {
        const { id, token } = await createNodeTokenFor(ctx, o.region, {
          expiresInSeconds: o.expiresIn,
          maxNodes: o.maxNodes,
        });
        inform(`node token ${id} (revoke with: tunnelbyte-broker admin node-token revoke ${id})`);
        return token;
      }),
    );
  nodeToken
    .command('list')
    .description('every node token issued (never the secret), with its nodes, expiry and revocation')
    .option('--json', 'one JSON object')
    .action((o: { json?: boolean }) => withContext(print, (ctx) => listNodeTokensText(ctx, o.json === true)));
  nodeToken
    .command('revoke <ntk_id>')
    .description('revoke a node token: it stops working at once and the nodes it enrolled are removed')
    .action((id: string) => withContext(print, (ctx) => revokeNodeTokenText(ctx, id)));
  const node = admin.command('node').description('registered exit nodes');
  node
    .command('list')
    .description('every registered node with its region, endpoint, state and load')
    .option('--region <id>', 'only the nodes of this region')
    .option('--json', 'one JSON object')
    .action((o: { region?: string; json?: boolean }) =>
      withContext(print, (ctx) => listNodesText(ctx, o.region, o.json === true)),
    );
  node
    .command('remove <node_id>')
    .description(
      'take a node out: no new sessions, its sessions move to other nodes of its region, it may not register again',
    )
    .action((id: string) => withContext(print, (ctx) => removeNodeText(ctx, id)));
  admin
    .command('key')
    .description('operator API keys')
    .command('create')
    .description('make an API key of the operator account (printed once), e.g. for /v1/admin')
    .requiredOption('--scope <scope...>', 'scopes (e.g. admin:read admin:write)')
    .option('--name <name>', 'key name', 'operator')
    .action((o: { scope: string[]; name: string }) =>
      withContext(print, (ctx) => createOperatorKey(ctx, o.scope, o.name)),
    );
  return admin;
}
