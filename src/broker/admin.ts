// `tunnelbyte-broker admin ...`: bootstrap commands that act on Redis directly (no HTTP, no token),
// for the operator who has the Redis URL: regions, node enrollment tokens, operator keys.
import { Command, InvalidArgumentError } from 'commander';
import { pino } from 'pino';
import { createContext } from './app.js';
import { loadConfig, TIERS, type Tier } from './config.js';
import type { BrokerContext } from './context.js';
import { isPermission } from './scopes.js';
import { createAccount, getAccount, issueKey } from './services/accounts.js';
import { createNodeToken } from './services/enrollment.js';
import { getRegion, REGION_ID, upsertRegion } from './services/regions.js';
import { createRedis, waitForReady } from './store/redis.js';

/** The account that owns keys made from the command line. */
export const OPERATOR_ACCOUNT_ID = 'usr_operator';

export async function addRegion(
  ctx: BrokerContext,
  input: { id: string; name: string; country: string; tiers: Tier[] },
): Promise<string> {
  if (!REGION_ID.test(input.id)) throw new InvalidArgumentError(`bad region id: ${input.id}`);
  if (!/^[A-Z]{2}$/.test(input.country))
    throw new InvalidArgumentError('country must be two upper-case letters');
  const { created } = await upsertRegion(ctx, input);
  return `${created ? 'added' : 'updated'} region ${input.id}`;
}

export async function createNodeTokenFor(ctx: BrokerContext, region: string): Promise<string> {
  if (!(await getRegion(ctx.redis, region))) throw new InvalidArgumentError(`unknown region: ${region}`);
  return (await createNodeToken(ctx, region)).token;
}

export async function createOperatorKey(ctx: BrokerContext, scopes: string[], name: string): Promise<string> {
  const bad = scopes.find((s) => !isPermission(s));
  if (bad) throw new InvalidArgumentError(`unknown scope: ${bad}`);
  if (!(await getAccount(ctx.redis, OPERATOR_ACCOUNT_ID, ctx.clock()))) {
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

const parseTiers = (value: string): Tier[] => {
  const tiers = value.split(',').map((t) => t.trim());
  const bad = tiers.find((t) => !(TIERS as readonly string[]).includes(t));
  if (bad) throw new InvalidArgumentError(`unknown tier: ${bad}`);
  return tiers as Tier[];
};

type Print = (line: string) => void;

/** Runs `action` with a context on REDIS_URL, prints its result, and closes the connection. */
async function withContext(print: Print, action: (ctx: BrokerContext) => Promise<string>): Promise<void> {
  const config = loadConfig();
  const redis = createRedis(config.redisUrl, { enableOfflineQueue: true, retryStrategy: () => null });
  try {
    await waitForReady(redis);
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
    .requiredOption('--name <name>', 'display name, e.g. Frankfurt')
    .requiredOption('--country <CC>', 'ISO 3166-1 alpha-2 country code')
    .option('--tiers <list>', 'tiers allowed, comma-separated', parseTiers, [...TIERS])
    .action((id: string, o: { name: string; country: string; tiers: Tier[] }) =>
      withContext(print, (ctx) => addRegion(ctx, { id, name: o.name, country: o.country, tiers: o.tiers })),
    );
  admin
    .command('node-token')
    .description('exit-node enrollment tokens')
    .command('create')
    .requiredOption('--region <id>', 'region the node serves')
    .action((o: { region: string }) => withContext(print, (ctx) => createNodeTokenFor(ctx, o.region)));
  admin
    .command('key')
    .description('operator API keys')
    .command('create')
    .requiredOption('--scope <scope...>', 'scopes (e.g. admin:read admin:write)')
    .option('--name <name>', 'key name', 'operator')
    .action((o: { scope: string[]; name: string }) =>
      withContext(print, (ctx) => createOperatorKey(ctx, o.scope, o.name)),
    );
  return admin;
}
