#!/usr/bin/env node
// tunnelbyte-node: the exit-node daemon. `up` runs a standalone node from a wg-quick file; `run` runs
// one under a broker (nodes/run.ts). Usage errors are one line on stderr and exit code 2.
import './jit.js'; // first: sets how V8 compiles everything below
import { readFile, stat } from 'node:fs/promises';

import { Command, CommanderError, Option } from 'commander';

import { parseWgQuick } from '../src/lib/wgquick.js';
import {
  checkUpArguments,
  defaultThreads,
  MAX_THREADS,
  ON_OFF,
  threadsWarning,
  type UpArguments,
} from './config.js';
import { StopSignals } from './stop-signals.js';
import { HAND_OVER_MODES } from './threads/load.js';
import { readyLine } from './daemon.js';
import {
  checkRunArguments,
  DEFAULT_CAPACITY,
  DEFAULT_DRAIN_TIMEOUT_SECONDS,
  DEFAULT_INTERFACE,
  DEFAULT_STATE_ROOT,
  MAX_CAPACITY,
  MAX_DRAIN_TIMEOUT_SECONDS,
  runAgentCommand,
  type RunArguments,
} from './run.js';
import { up } from './up.js';

const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

class UsageError extends Error {}

const collect = (value: string, previous: string[]) => [...previous, value];

const say = (line: string) => process.stderr.write(`tunnelbyte-node: ${line}\n`);

/** Said once the arguments are good, before the threads start. */
function warnAboutThreads(threads: number): void {
  const warning = threadsWarning(threads);
  if (warning !== undefined) say(`warning: ${warning}`);
}

/**
 * Warns, as wg-quick does, when a file holding a secret can be read by every user: `what` names the
 * secret. A file that cannot be stat-ed was read already, so only its mode is asked here.
 */
async function warnIfWorldAccessible(file: string, what: string): Promise<void> {
  const { mode } = await stat(file);
  if ((mode & 0o007) !== 0)
    say(`warning: ${file} is world accessible: anyone on this machine can read ${what} (chmod 600 it)`);
}

interface TokenSources {
  token?: string;
  tokenFile?: string;
}

/** The enrollment token from exactly one of --token-file, TB_NODE_TOKEN or --token. */
async function nodeToken({ token, tokenFile }: TokenSources): Promise<string> {
  const fromEnv = process.env.TB_NODE_TOKEN?.trim() || undefined;
  const given = [token, tokenFile, fromEnv].filter((source) => source !== undefined);
  if (given.length === 0)
    throw new UsageError('give the node token with --token-file FILE or TB_NODE_TOKEN (or --token)');
  if (given.length > 1)
    throw new UsageError('give the node token once: --token-file, TB_NODE_TOKEN or --token');
  if (tokenFile === undefined) return (token ?? fromEnv)!;
  try {
    return (await readFile(tokenFile, 'utf8')).trim();
  } catch (error) {
    throw new UsageError(
      `cannot read --token-file ${tokenFile}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
}

/** A default shown in --help as it is typed (commander quotes a string default). */
const withDefault = (option: Option, value: string): Option => option.default(value, value);

const egressOption = () =>
  withDefault(new Option('--egress <kind>', 'tun (kernel interface) or netstack (userspace stack)'), 'tun');

/** The data-path modes both commands take (config.ts DataPathSettings), each with its TB_* variable. */
const dataPathOptions = (command: Command): Command =>
  command
    .addOption(
      new Option(
        '--batch <on|off>',
        'batched UDP (recvmmsg/sendmmsg, sticky source), or a system call per datagram',
      )
        .choices(ON_OFF)
        .env('TB_BATCH')
        .default('on'),
    )
    .addOption(
      new Option(
        '--offload <on|off>',
        'TUN offloads (64 KiB TCP segments split and coalesced in the node) and UDP GSO/GRO on the ' +
          'batched socket, where the kernel has them',
      )
        .choices(ON_OFF)
        .env('TB_OFFLOAD')
        .default('on'),
    )
    .addOption(
      new Option(
        '--threads <n>',
        `threads of the data path, 1 to ${MAX_THREADS}: 1 seals, opens and answers handshakes on the main thread, N > 1 adds N crypto threads and N handshake workers; more than the machine's cores adds no speed (default: the machine's cores, ${defaultThreads()})`,
      ).env('TB_THREADS'),
    )
    .addOption(
      new Option(
        '--hand-over <auto|bulk>',
        'with crypto threads, when bulk traffic goes to them: auto only while the main thread is ' +
          'CPU-bound (handing over costs CPU, and one core with time to spare carries it cheaper), bulk at ' +
          'every burst whatever the load',
      )
        .choices(HAND_OVER_MODES)
        .env('TB_HAND_OVER')
        .default('auto'),
    );

async function runUp(args: UpArguments): Promise<number> {
  const checked = checkUpArguments(args);
  if (!checked.ok) throw new UsageError(checked.message);
  const settings = checked.value;
  if (settings.egress === 'netstack') throw new UsageError('netstack egress is not available yet');

  let text: string;
  try {
    text = await readFile(settings.configFile, 'utf8');
  } catch (error) {
    say(`cannot read ${settings.configFile}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    return EXIT_FAILURE;
  }
  const parsed = parseWgQuick(text);
  if (!parsed.ok) {
    say(`${settings.configFile}:${parsed.error.line}: ${parsed.error.message}`);
    return EXIT_FAILURE;
  }
  await warnIfWorldAccessible(settings.configFile, 'its PrivateKey');

  warnAboutThreads(settings.threads);
  const signals = new StopSignals();
  try {
    const node = await up(settings, parsed.config, (line) => say(`warning: ${line}`));
    process.stdout.write(readyLine(node));
    // One that came while the node was starting stops it as soon as it is up.
    const signalled = new Promise<number>((resolve) => {
      signals.listen(() => resolve(EXIT_OK));
      if (signals.count > 0) resolve(EXIT_OK);
    });
    const code = await Promise.race([signalled, node.stopped]);
    await node.close();
    return code;
  } finally {
    signals.close();
  }
}

function buildProgram(): { program: Command; result: () => number } {
  let code = EXIT_OK;
  const program = new Command('tunnelbyte-node')
    .description('tunnelbyte exit node: a userspace WireGuard interface')
    .showSuggestionAfterError(false)
    .exitOverride()
    .configureOutput({
      outputError: (s, write) => write(`tunnelbyte-node: ${s.trim().replace(/^error: /, '')}\n`),
    });

  dataPathOptions(program.command('up'))
    .description('bring up an interface from a wg-quick configuration file')
    .requiredOption('--config <file>', 'wg-quick file ([Interface] and [Peer] sections)')
    .addOption(egressOption())
    .option('--interface <name>', 'interface name (default: the file name without .conf)')
    .option('--metrics <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics')
    .action(async (options: UpArguments) => {
      code = await runUp(options);
    });

  dataPathOptions(program.command('run'))
    .description('run as an agent of a tunnelbyte broker: register, heartbeat, follow the peer feed')
    .requiredOption('--broker <url>', 'broker base URL, e.g. https://api.example.com')
    .option('--token-file <file>', 'file holding the node enrollment token (admin node-token create)')
    .option('--token <tbn_...>', 'the token itself; visible in ps, so prefer --token-file or TB_NODE_TOKEN')
    .requiredOption('--region <id>', 'the region the token enrolls nodes in')
    .requiredOption('--listen <host:port>', 'UDP address to listen on, e.g. 0.0.0.0:51820 or [::]:51820')
    .requiredOption('--endpoint <host:port>', 'public address clients are told to reach')
    .addOption(egressOption())
    .option('--interface <name>', `interface name (default: ${DEFAULT_INTERFACE})`)
    .option('--metrics <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics')
    .option('--state-dir <dir>', `where the node key is kept (default: ${DEFAULT_STATE_ROOT}/<interface>)`)
    .option('--private-key-file <file>', 'the node key file (made, mode 0600, if absent)')
    .addOption(
      withDefault(
        new Option('--capacity <n>', `sessions this node takes at most, 1 to ${MAX_CAPACITY}`),
        String(DEFAULT_CAPACITY),
      ),
    )
    .addOption(
      new Option('--egress-ip <ip,...>', 'public IPs traffic leaves from, repeated or comma-separated')
        .argParser(collect)
        .default([], 'a numeric endpoint host'),
    )
    .addOption(
      withDefault(
        new Option(
          '--drain-timeout <s>',
          `on SIGTERM or SIGINT, longest wait for peers to move, 0 to ${MAX_DRAIN_TIMEOUT_SECONDS} seconds`,
        ),
        String(DEFAULT_DRAIN_TIMEOUT_SECONDS),
      ),
    )
    .option('--nat', 'enable forwarding and masquerade the pool (nftables); a real exit needs it')
    .action(async (options: TokenSources & Omit<RunArguments, 'token'>) => {
      const checked = checkRunArguments({ ...options, token: await nodeToken(options) });
      if (!checked.ok) throw new UsageError(checked.message);
      if (options.tokenFile !== undefined) await warnIfWorldAccessible(options.tokenFile, 'the node token');
      warnAboutThreads(checked.value.threads);
      code = await runAgentCommand(checked.value, say);
    });

  return { program, result: () => code };
}

async function main(argv: string[]): Promise<number> {
  const { program, result } = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return result();
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    if (error instanceof UsageError) {
      say(error.message);
      return EXIT_USAGE;
    }
    say(error instanceof Error ? error.message.split('\n')[0]! : String(error));
    return EXIT_FAILURE;
  }
}

// Exit explicitly: a handle left open by a failed teardown must not keep a stopped daemon alive.
process.exit(await main(process.argv.slice(2)));
