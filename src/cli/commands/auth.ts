// auth login | set-key | status | test | keys list|create|revoke: managing the tokens themselves.
import type { Command } from 'commander';
import { seconds } from '../args.js';
import { ApiError, type ApiKey } from '../../lib/api-client.js';
import { fields, maskToken, orDash, printable, table } from '../format.js';
import type { Act, Action } from '../context.js';
import { CliError, usageError } from '../exit.js';
import { registerLogin } from './account.js';

/** `tb_` + 32 base62 + 6 base62 checksum (docs/API.md "Conventions"). */
const TOKEN_SHAPE = /^tb_[0-9A-Za-z]{38}$/;

const setKey: Action<[string]> = async (ctx, key) => {
  const trimmed = key.trim();
  if (!TOKEN_SHAPE.test(trimmed))
    throw usageError('that is not a tunnelbyte token (tb_ followed by 38 letters/digits)');
  ctx.requireWritableConfig();
  ctx.store.writeToken(trimmed);
  const shadowed = ctx.io.env.TB_KEY ? ' (TB_KEY is set and takes precedence)' : '';
  ctx.print(`Saved ${maskToken(trimmed)} to ${ctx.store.tokenPath}${shadowed}.\n`, {
    key: maskToken(trimmed),
    token_path: ctx.store.tokenPath,
  });
};

const status: Action<[]> = async (ctx) => {
  const { token, source } = ctx.requireToken();
  const key = await ctx.spin('Checking token', ctx.client(token).currentKey());
  const from = source === 'TB_KEY' ? 'TB_KEY' : ctx.store.tokenPath;
  ctx.print(
    fields([
      ['token', `${maskToken(token)} (from ${from})`],
      ['id', key.id],
      ['name', orDash(key.name)],
      ['status', key.status],
      ['permissions', key.permissions.join(' ')],
      ['created', key.created_at],
      ['last used', orDash(key.last_used)],
      ['expires', orDash(key.expires_at ?? 'never')],
    ]),
    { ...key, source },
  );
};

const test: Action<[{ scope?: string }]> = async (ctx, options) => {
  const result = await ctx.spin('Testing token', ctx.authed().testAuth(options.scope));
  const scope = options.scope ? `; scope ${options.scope} granted` : '';
  const user = typeof result.user === 'string' ? result.user : (result.user.email ?? result.user.id);
  ctx.print(`Token valid: ${result.plan} tier, user ${user}${scope}.\n`, result);
};

const keyRows = (keys: ApiKey[]) =>
  keys.map((k) => [
    k.id,
    orDash(k.name),
    k.key,
    orDash(k.expires_at ?? 'never'),
    orDash(k.last_used),
    k.permissions.join(' '),
  ]);

const keysList: Action<[]> = async (ctx) => {
  const result = await ctx.spin('Fetching keys', ctx.authed().listKeys());
  const human =
    result.keys.length === 0
      ? 'No keys.\n'
      : table(['id', 'name', 'key', 'expires', 'last used', 'permissions'], keyRows(result.keys));
  ctx.print(human, result);
};

interface CreateOptions {
  name: string;
  permission: string[];
  expiresIn?: number;
}

const keysCreate: Action<[CreateOptions]> = async (ctx, options) => {
  const request = {
    name: options.name,
    permissions: options.permission,
    ...(options.expiresIn === undefined ? {} : { expires_in: options.expiresIn }),
  };
  const key = await ctx.spin('Creating key', ctx.authed().createKey(request));
  ctx.print(
    `Created ${key.id} (${printable(key.name)}) with ${key.permissions.join(' ')}, expires ${orDash(key.expires_at ?? 'never')}.\n` +
      `The key (shown once, store it now):\n${key.key}\n`,
    key,
  );
};

const keysRevoke: Action<[string]> = async (ctx, id) => {
  await ctx.spin('Revoking key', ctx.authed().revokeKey(id)).catch((err: unknown) => {
    // exit.ts points a missing thing at `sessions`; a key is found in the key list.
    if (err instanceof ApiError && err.error === 'not_found')
      throw new CliError(`not found: ${err.message} See \`tunnelbyte auth keys list\`.`);
    throw err;
  });
  ctx.print(`Revoked ${id}.\n`, { id, revoked: true });
};

export function registerAuth(program: Command, act: Act): void {
  const auth = program.command('auth').description('inspect and manage API tokens');
  registerLogin(auth, act);
  auth
    .command('set-key')
    .description('cache an existing token (e.g. from `auth keys create`) for this CLI')
    .argument('<key>', 'a tb_ token')
    .action(act(setKey));
  auth
    .command('status')
    .description('show the current token (masked) and its permissions')
    .action(act(status));
  auth
    .command('test')
    .description('check the token, and optionally that it holds a scope')
    .option('--scope <scope>', 'e.g. tunnels:write')
    .action(act(test));

  const keys = auth.command('keys').description('API keys of this account');
  keys.command('list').description('list keys (masked)').action(act(keysList));
  keys
    .command('create')
    .description('create a key with some of your permissions; it is shown once')
    .requiredOption('--name <name>', 'what the key is for')
    .requiredOption('--permission <scope...>', 'scopes to grant, e.g. tunnels:read tunnels:write')
    .option('--expires-in <seconds>', 'lifetime in seconds (default: never expires)', seconds)
    .action(act(keysCreate));
  keys.command('revoke').description('revoke a key').argument('<id>', 'key_… id').action(act(keysRevoke));
}
