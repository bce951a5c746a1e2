// run(argv, io): the whole CLI as a function of its arguments and streams, returning the exit code.
// main.ts calls it with the real process; tests call it in-process with captured buffers.
import { Command, CommanderError } from 'commander';
import { ApiError } from '../lib/api-client.js';
import { registerAccount } from './commands/account.js';
import { registerAuth } from './commands/auth.js';
import { registerInfo } from './commands/info.js';
import { registerSessions } from './commands/sessions.js';
import { wait } from './args.js';
import { Context, type Act, type GlobalOptions } from './context.js';
import { describeError, EXIT, type ExitCode } from './exit.js';
import type { CliIO } from './io.js';
import { usageLine } from '../lib/usage.js';

export const VERSION = '0.1.0';

export function buildProgram(io: CliIO): Command {
  const program = new Command('tunnelbyte')
    .description('WireGuard exit sessions from a tunnelbyte broker')
    .version(VERSION)
    .option('--api <url>', 'broker URL (env TB_API; default http://127.0.0.1:8080)')
    .option('--json', 'machine-readable output on stdout')
    .option(
      '--timeout <seconds>',
      'how long to wait for each answer of the broker, 1 to 86400 (env TB_TIMEOUT; 15)',
      wait,
    )
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: (s, write) => write(usageLine('tunnelbyte', s)),
    })
    .addHelpText(
      'after',
      '\nEnvironment: TB_API (broker URL), TB_KEY (token; wins over the cache), TB_TIMEOUT (seconds),\n' +
        'TB_FINGERPRINT (hex machine fingerprint override), TB_CONFIG_DIR (config dir override).\n' +
        'Exit codes: 0 ok, 1 API or other error, 2 usage error, 3 auth (no/invalid token, missing scope or\n' +
        'tier), 4 rate limit or quota, 5 broker unreachable, timed out or no capacity, 130 interrupted,\n' +
        '143 terminated (SIGTERM, where a command cleans up: connect --up --follow, follow).\n',
    );

  // Commander calls an action with (positionals..., options, command); the command is swapped for the
  // Context, built from the options of every level (so --json and --api work before or after the verb).
  const act: Act =
    (fn) =>
    async (...args) => {
      const command = args[args.length - 1] as Command;
      const ctx = new Context(io, command.optsWithGlobals<GlobalOptions>());
      await (fn as (ctx: Context, ...rest: unknown[]) => Promise<void>)(ctx, ...args.slice(0, -1));
    };

  registerAccount(program, act);
  registerInfo(program, act);
  registerSessions(program, act);
  registerAuth(program, act);
  return program;
}

function commanderExit(err: CommanderError): ExitCode {
  // Help and version requests end with code 0; every other commander error is about the arguments.
  return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
}

export async function run(argv: string[], io: CliIO): Promise<ExitCode> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) return commanderExit(err);
    const { line, exitCode } = describeError(err);
    io.stderr.write(`tunnelbyte: ${line}\n`);
    if (argv.includes('--json')) {
      const body =
        err instanceof ApiError ? { status: err.status, ...err.body } : { error: 'cli', message: line };
      io.stdout.write(`${JSON.stringify(body)}\n`);
    }
    return exitCode;
  }
}
