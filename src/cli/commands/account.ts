// signup, login, logout, token, upgrade: getting a token onto this machine and off it again.
import type { Command } from 'commander';
import { ApiError, type TokenGrant } from '../../lib/api-client.js';
import type { Act, Action, Context } from '../context.js';
import { CliError, describeError, usageError } from '../exit.js';
import { prompt, readStdin } from '../io.js';
import { revokeRefreshToken, webLogin } from '../weblogin.js';

interface CredentialOptions {
  email?: string;
  passwordStdin?: boolean;
  web?: boolean;
}

/** Email and password from flags/stdin, or asked for on a terminal; never from argv (it leaks to `ps`). */
async function credentials(
  ctx: Context,
  options: CredentialOptions,
  note?: string,
): Promise<{ email: string; password: string }> {
  const interactive = ctx.io.stdin.isTTY === true;
  // Refused before the note, so a refusal stays the one line on stderr.
  if (options.email === undefined && (!interactive || options.passwordStdin))
    throw usageError('give --email (and --password-stdin) when not on a terminal');
  if (!options.passwordStdin && !interactive)
    throw usageError('give --password-stdin when not on a terminal');
  // The note goes before the first prompt; with nothing to ask, after the checks.
  const asks = options.email === undefined || !options.passwordStdin;
  if (note !== undefined && asks) ctx.note(note);
  const email = options.email ?? (await prompt(ctx.io, 'Email: '));
  const password = options.passwordStdin ? await readStdin(ctx.io) : await prompt(ctx.io, 'Password: ', true);
  if (email.trim() === '' || password === '') throw usageError('email and password must not be empty');
  if (note !== undefined && !asks) ctx.note(note);
  return { email: email.trim(), password };
}

/**
 * Caches the new token and shows it. A token the config dir refuses (checked before, yet a file can still
 * fail) is shown all the same, with the way to cache it: the account or key it belongs to is made.
 */
function saveAndShow(ctx: Context, result: TokenGrant, headline: string): void {
  let unsaved: unknown;
  try {
    ctx.store.writeToken(result.api_key);
  } catch (err) {
    unsaved = err;
  }
  const where = unsaved
    ? 'not cached'
    : `cached in ${ctx.store.tokenPath}; \`tunnelbyte token\` prints it again`;
  const load = unsaved ? '' : 'Load it into a shell with: export TB_KEY=$(tunnelbyte token)\n';
  ctx.print(`${headline}\nYour token (${where}):\n${result.api_key}\n${load}`, {
    ...result,
    token_path: unsaved ? null : ctx.store.tokenPath,
  });
  if (unsaved) {
    throw new CliError(
      `${describeError(unsaved).line}; the token above is not cached: \`tunnelbyte auth set-key\` with a config dir that can take it`,
    );
  }
}

const signup: Action<[{ force?: boolean }]> = async (ctx, options) => {
  ctx.requireWritableConfig();
  if (ctx.store.readToken() && !options.force) {
    throw new CliError(
      `a token is already cached in ${ctx.store.tokenPath}; \`tunnelbyte logout\` first, or pass --force to replace it`,
    );
  }
  const result = await ctx.spin('Signing up', ctx.client(null).signup(ctx.fingerprint()));
  saveAndShow(
    ctx,
    result,
    `Signed up: ${result.user.plan} tier, account ${result.user.id}, bound to this machine.`,
  );
};

const login: Action<[CredentialOptions]> = async (ctx, options) => {
  ctx.requireWritableConfig();
  if (options.web) {
    if (options.email !== undefined || options.passwordStdin)
      throw usageError('--web signs in through the browser: leave out --email and --password-stdin');
    const token = await webLogin(ctx);
    const user = await ctx.spin('Fetching the account', ctx.client(token).user());
    ctx.print(
      `Logged in as ${user.email ?? user.id} (${user.plan}) through the browser.\n` +
        `The token is cached in ${ctx.store.tokenPath} and renews itself; \`tunnelbyte logout\` ends it.\n`,
      { user, token_path: ctx.store.tokenPath, renews: true },
    );
    return;
  }
  const { email, password } = await credentials(ctx, options);
  const result = await ctx.spin('Logging in', ctx.client(null).login(email, password));
  saveAndShow(ctx, result, `Logged in as ${result.user.email ?? result.user.id} (${result.user.plan}).`);
};

const logout: Action<[]> = async (ctx) => {
  if (ctx.cachedTokenDamaged()) {
    // No request can carry it, so the broker cannot be asked to revoke it: it can only be forgotten here.
    await revokeRefreshToken(ctx.store, ctx.requestLimits);
    ctx.store.removeToken();
    ctx.print(
      `Logged out: the cached token was damaged and could not be revoked; removed ${ctx.store.tokenPath}.\n`,
      { revoked: false, removed_cache: true },
    );
    return;
  }
  const { token, source } = ctx.requireToken();
  let alreadyInvalid = false;
  try {
    await ctx.spin('Logging out', ctx.client(token).logout());
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) throw err;
    alreadyInvalid = true; // revoked or expired already: still forget it locally
  }
  const removed = ctx.store.readToken() === token;
  if (removed) {
    await revokeRefreshToken(ctx.store, ctx.requestLimits);
    ctx.store.removeToken();
  }
  const where = removed
    ? `; removed ${ctx.store.tokenPath}`
    : source === 'TB_KEY'
      ? '; unset TB_KEY too'
      : '';
  ctx.print(`Logged out: ${alreadyInvalid ? 'the token was already invalid' : 'token revoked'}${where}.\n`, {
    revoked: !alreadyInvalid,
    removed_cache: removed,
  });
};

const token: Action<[]> = async (ctx) => {
  const found = ctx.requireToken();
  ctx.print(`${found.token}\n`, found);
};

const upgrade: Action<[CredentialOptions]> = async (ctx, options) => {
  const client = ctx.authed();
  const { user } = await ctx.spin('Checking account', client.testAuth());
  let checkout: Promise<{ url: string }>;
  if (user.email === null) {
    const { email, password } = await credentials(
      ctx,
      options,
      'Paid accounts sign in with an email and password (`tunnelbyte login` on other machines).\n',
    );
    checkout = client.checkout(email, password);
  } else {
    // It signs in already: its password confirms the checkout and stays what it is.
    const { email, password } = await credentials(
      ctx,
      { ...options, email: options.email ?? user.email },
      `Confirm with the password of ${user.email}.\n`,
    );
    checkout = client.checkout(email, password, password);
  }
  const { url } = await ctx.spin('Preparing checkout', checkout);
  ctx.print(`Open this page to pay:\n${url}\nAfter payment this token is upgraded and portable.\n`, { url });
};

/** `login`, also under `auth` (`tunnelbyte auth login -e EMAIL`, as other tunnel CLIs spell it). */
export function registerLogin(parent: Command, act: Act): void {
  parent
    .command('login')
    .description('log in to a paid account and cache its token')
    .option('-e, --email <email>', 'account email (asked for on a terminal)')
    .option('--password-stdin', 'read the password from stdin')
    .option('--web', 'sign in through the browser instead (opens it when there is one, else prints the URL)')
    .action(act(login));
}

export function registerAccount(program: Command, act: Act): void {
  program
    .command('signup')
    .description('create a free account bound to this machine and cache its token')
    .option('--force', 'replace an already cached token')
    .action(act(signup));
  registerLogin(program, act);
  program.command('logout').description('revoke the token and remove the cached copy').action(act(logout));
  program
    .command('token')
    .description('print the token, for: export TB_KEY=$(tunnelbyte token)')
    .action(act(token));
  program
    .command('upgrade')
    .description('get a payment link for the pro tier')
    .option('-e, --email <email>', 'email for the paid account (default: the one it signs in with, if any)')
    .option('--password-stdin', "read the password from stdin (the account's own, once it has one)")
    .action(act(upgrade));
}
