// `tunnelbyte-broker admin ...`: bootstrap commands that act on Redis directly (no HTTP, no token),
// for the operator who has the Redis URL: regions, node enrollment tokens, operator keys.
import { Command, InvalidArgumentError } from 'commander';
import { pino } from 'pino';
import { loadConfig, TIERS, type Tier } from './config.js';
import { createContext, type BrokerContext } from './context.js';
import { isPermission } from './scopes.js';
import { createAccount, getAccount, issueKey } from './services/accounts.js';
import { createNodeToken } from './services/enrollment.js';
import { POOL_PREFIXES, poolPrefixError, type Pool } from '../lib/addresses.js';
import { removeRegion } from './services/fleet.js';
import {
  getRegion,
  REGION_ID,
  type RegionChanges,
  regionsWithHealth,
  updateRegion,
  upsertRegion,
} from './services/regions.js';
import { createRedis, REDIS_OPTIONS, type Redis } from './store/redis.js';

/** The account that owns keys made from the command line. */
export const OPERATOR_ACCOUNT_ID = 'usr_operator';

export async function addRegion(
  ctx: BrokerContext,
  input: { id: string; name: string; country: string; tiers: Tier[]; pool?: Partial<Pool> },
): Promise<string> {
  if (!REGION_ID.test(input.id)) throw new InvalidArgumentError(`bad region id: ${input.id}`);
  if (!/^[A-Z]{2}$/.test(input.country))
    throw new InvalidArgumentError('country must be two upper-case letters');
  const { created } = await upsertRegion(ctx, input);
  return `${created ? 'added' : 'updated'} region ${input.id}`;
}

export async function createNodeTokenFor(ctx: BrokerContext, region: string): Promise<string> {
  if (!(await getRegion(ctx, region))) throw new InvalidArgumentError(`unknown region: ${region}`);
  return (await createNodeToken(ctx, region)).token;
}

export async function createOperatorKey(ctx: BrokerContext, scopes: string[], name: string): Promise<string> {
  const bad = scopes.find((s) => !isPermission(s));
  if (bad) throw new InvalidArgumentError(`unknown scope: ${bad}`);
  if (!(await getAccount(ctx, OPERATOR_ACCOUNT_ID))) {
    await createAccount(ctx, { id: OPERATOR_ACCOUNT_ID, plan: 'business', name: 'operator' });
  }
  const { token } = await issueKey(ctx, OPERATOR_ACCOUNT_ID, {
    name,
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

export async function changeRegion(ctx: BrokerContext, id: string, changes: RegionChanges): Promise<string> {
  if (
    Object.values(changes).every((v) => v === undefined) ||
    (changes.pool && !changes.pool.v4 && !changes.pool.v6)
  )
    throw new InvalidArgumentError(
      'nothing to change: give --name, --country, --tiers, --pool-v4 or --pool-v6',
    );
  if (changes.country !== undefined && !/^[A-Z]{2}$/.test(changes.country))
    throw new InvalidArgumentError('country must be two upper-case letters');
  await updateRegion(ctx, id, changes);
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

export function adminCommand(print: Print = (line) => process.stdout.write(`${line}\n`)): Command {
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
  admin
    .command('node-token')
    .description('exit-node enrollment tokens')
    .command('create')
    .description('issue a tbn_ token that enrolls nodes in a region (printed once)')
    .requiredOption('--region <id>', 'region the node serves')
    .action((o: { region: string }) => withContext(print, (ctx) => createNodeTokenFor(ctx, o.region)));
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
