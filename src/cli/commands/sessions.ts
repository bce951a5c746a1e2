// connect, sessions, status, disconnect: WireGuard sessions on exit nodes.
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { ttl, wait } from '../args.js';
import QRCode from 'qrcode';
import { ApiError, type CreatedSession, type Session } from '../../lib/api-client.js';
import type { Act, Action, Context } from '../context.js';
import { CliError, describeError, EXIT, interrupted, usageError } from '../exit.js';
import { bytes, fields, orDash, table } from '../format.js';
import { directoryProblem, writePrivateFile } from '../store.js';
import { renewedConfig, sessionConfig } from '../wgconfig.js';
import { generateKeyPair } from '../wgkeys.js';
import { DEFAULT_INTERVAL_S, followEvent, followSession, type FollowEnd } from '../follower.js';
import { findOnPath, interfaceOf, isUp, WG_MISSING, WG_QUICK_MISSING, wgQuick } from '../wgtools.js';

/** wg-quick names the interface after the file: at most 15 of these characters (IFNAMSIZ - 1). */
const INTERFACE_NAME = /^[a-zA-Z0-9_=+.-]{1,15}$/;

/** The least-loaded usable region open to this token's tier, when the user names none. */
async function pickRegion(ctx: Context): Promise<string> {
  const client = ctx.authed();
  const [{ regions }, { plan }] = await Promise.all([client.regions(), client.testAuth()]);
  const usable = regions
    .filter((r) => r.status !== 'down' && r.nodes > 0 && r.tiers.includes(plan))
    .sort((a, b) => a.load - b.load);
  const best = usable[0];
  if (!best)
    throw new CliError(
      `no region has capacity for the ${plan} tier now; see \`tunnelbyte regions\``,
      EXIT.unavailable,
    );
  return best.id;
}

const RESOLVCONF_MISSING =
  "wg-quick needs resolvconf to apply the config's DNS servers and none is on PATH: install one " +
  "(Debian: openresolv), or add --no-dns to keep this machine's DNS";

interface ConnectOptions {
  out?: string;
  qr?: boolean;
  up?: boolean;
  follow?: boolean;
  interval?: number;
  dns: boolean;
  ttl?: number;
  psk?: boolean;
}

/** The tools `--up` and `--follow` run. */
interface LocalTools {
  wgQuick?: string;
  wg?: string;
}

/** Every local precondition of `connect`, checked before a session (and quota) is spent. */
function checkLocal(ctx: Context, options: ConnectOptions): LocalTools {
  if (options.follow && !options.up) {
    throw usageError('--follow needs --up (a tunnel you brought up yourself: `tunnelbyte follow`)');
  }
  if (options.interval !== undefined && !options.follow) {
    throw usageError('--interval needs --follow (it is the pace of the following)');
  }
  if (options.out === '-' && options.up) throw usageError('--up needs a file: drop `--out -`');
  if (options.out !== undefined && options.out !== '-') checkOut(options.out);
  if (!options.up) return {};
  // wg-quick up refuses an interface that exists; the default file's name is the new session's, unused.
  if (options.out !== undefined && isUp(interfaceOf(options.out))) {
    throw usageError(
      `--out names the interface ${interfaceOf(options.out)}, which this machine already has: give the file another name`,
    );
  }
  const wgQuickPath = findOnPath(ctx, 'wg-quick');
  if (!wgQuickPath) throw new CliError(WG_QUICK_MISSING);
  if (options.dns && !findOnPath(ctx, 'resolvconf')) throw new CliError(RESOLVCONF_MISSING);
  if (!options.follow) return { wgQuick: wgQuickPath };
  const wgPath = findOnPath(ctx, 'wg');
  if (!wgPath) throw new CliError(WG_MISSING);
  return { wgQuick: wgQuickPath, wg: wgPath };
}

/**
 * `--out FILE`, before a session is spent: a name wg-quick takes, in a directory that is there and
 * writable (as `curl -o`, its parents are not created). Not the target itself a directory.
 */
function checkOut(out: string): void {
  if (!out.endsWith('.conf') || !INTERFACE_NAME.test(interfaceOf(out))) {
    throw usageError(
      'wg-quick names the interface after the file: use --out DIR/NAME.conf with NAME ≤ 15 of [a-zA-Z0-9_=+.-]',
    );
  }
  const path = resolve(out);
  const dir = dirname(path);
  const problem = directoryProblem(dir);
  if (problem) throw usageError(`--out ${path}: cannot write in ${dir}: ${problem}`);
  if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) {
    throw usageError(`--out ${path}: is a directory; give a file: DIR/NAME.conf`);
  }
}

/** An unknown region is answered with the ones there are. */
async function explainRegion(ctx: Context, region: string, err: unknown): Promise<never> {
  if (!(err instanceof ApiError && err.error === 'invalid_request' && err.field === 'region')) throw err;
  const { regions } = await ctx.client().regions();
  const ids = regions.map((r) => r.id).join(', ') || 'none yet';
  throw new CliError(`unknown region '${region}'; the regions are: ${ids} (see \`tunnelbyte regions\`)`);
}

/** Closes a session `connect` made but could not finish; says what became of it. */
async function closeUnfinished(ctx: Context, token: string, id: string): Promise<string> {
  try {
    await ctx.client(token, { interruptible: false }).deleteSession(id);
  } catch {
    return `session ${id} may still be open: \`tunnelbyte disconnect ${id}\``;
  }
  try {
    if (ctx.store.lastSession() === id) ctx.store.setLastSession(undefined);
  } catch {
    // a config dir that cannot be written holds no mark of it either
  }
  return `session ${id} closed`;
}

/** `connect` failed after the broker made the session: the failure's line, then what became of the session. */
async function failUnfinished(ctx: Context, token: string, id: string, err: unknown): Promise<never> {
  throw new CliError(`${describeError(err).line}; ${await closeUnfinished(ctx, token, id)}`);
}

const connect: Action<[string | undefined, ConnectOptions]> = async (ctx, regionArg, options) => {
  const toStdout = options.out === '-';
  const tools = checkLocal(ctx, options);
  const { token } = ctx.requireToken();
  ctx.requireWritableConfig(); // the last session is recorded there, even with --out
  const region = regionArg ?? (await ctx.spin('Choosing a region', pickRegion(ctx)));
  const keys = generateKeyPair();
  // Not cut off by Ctrl-C: a session the broker made must be known here, to be closed again.
  const session: CreatedSession = await ctx
    .spin(
      `Creating a session in ${region}`,
      ctx.client(token, { interruptible: false }).createSession({
        region,
        public_key: keys.publicKey,
        ...(options.ttl === undefined ? {} : { ttl_seconds: options.ttl }),
        ...(options.psk ? { preshared_key: true } : {}),
      }),
    )
    .catch((err: unknown) => explainRegion(ctx, region, err));
  if (ctx.interrupted) throw interrupted(await closeUnfinished(ctx, token, session.id));
  try {
    ctx.store.setLastSession(session.id);
  } catch (err) {
    await failUnfinished(ctx, token, session.id, err);
  }

  // A broker that made the key pair itself (it should not, given ours) hands back its private key.
  const config = sessionConfig(session, session.interface.private_key ?? keys.privateKey, options);
  if (!config.ok) {
    const closed = await closeUnfinished(ctx, token, session.id);
    throw new CliError(`the session's config is unusable (${config.message}); ${closed}`);
  }
  // Absolute: wg-quick reads a bare `NAME.conf` as /etc/wireguard/NAME.conf.conf, and `disconnect` may
  // run from another directory.
  const path = toStdout ? undefined : resolve(options.out ?? ctx.store.sessionConfigPath(session.id));
  if (path === undefined) ctx.io.stdout.write(config.text);
  else {
    try {
      // Only the config dir is made; a directory given with --out must be there (checked above).
      writePrivateFile(path, config.text, { makeDir: options.out === undefined });
    } catch (err) {
      await failUnfinished(ctx, token, session.id, err);
    }
  }

  // The private key appears only inside the file (or on stdout with `--out -`), never in the summary.
  const summary = {
    ...session,
    interface: { ...session.interface, private_key: undefined },
    config: undefined,
    config_path: path ?? null,
  };
  const where = path ? `Config written to ${path} (mode 0600).\n` : '';
  const next =
    path && !options.up
      ? `Bring it up with: sudo wg-quick up ${path}\n` +
        (options.dns
          ? "(its DNS line needs resolvconf; `connect --no-dns` leaves this machine's DNS alone)\n"
          : '')
      : '';
  const human =
    `Session ${session.id} in ${session.region}: node ${session.node.id} at ${session.peer.endpoint}, ` +
    `address ${session.interface.addresses.join(', ')}, expires ${session.expires_at}.\n${where}${next}`;
  // With the config on stdout, everything else moves to stderr so the file stays clean.
  if (toStdout) ctx.note(human);
  // Following, --json output is one object per line: the summary is the first.
  else if (options.follow && ctx.json) ctx.io.stdout.write(`${JSON.stringify(summary)}\n`);
  else ctx.print(human, summary);
  if (toStdout && ctx.json) ctx.io.stderr.write(`${JSON.stringify(summary)}\n`);

  if (options.qr) {
    const out = toStdout || ctx.json ? ctx.io.stderr : ctx.io.stdout;
    // Colour codes only for a terminal; a file or pipe gets plain block characters.
    const type = out.isTTY ? 'terminal' : 'utf8';
    out.write(await QRCode.toString(config.text, { type, small: true }));
  }
  if (tools.wgQuick && path) {
    const code = await wgQuick(ctx, tools.wgQuick, 'up', path);
    if (code !== 0) {
      const closed = await closeUnfinished(ctx, token, session.id);
      if (!options.out) rmSync(path, { force: true });
      throw new CliError(`wg-quick up ${path} failed (exit ${code}); ${closed}`);
    }
    ctx.store.setUpConfig(session.id, path);
    if (ctx.interrupted) throw interrupted(await release(ctx, token, session.id), ctx.stoppedBy);
  }
  if (tools.wg && path) {
    await followOwned(ctx, token, session.id, path, tools.wg, options.interval ?? DEFAULT_INTERVAL_S);
  }
};

/**
 * Takes down what `connect --up` brought up for the session, if it is up here: a catch-all interface left
 * up without its session sends traffic nowhere. Returns the interface's name, or undefined if none was up.
 */
async function downInterface(ctx: Context, id: string): Promise<string | undefined> {
  const file = ctx.store.upConfig(id) ?? ctx.store.sessionConfigPath(id);
  const name = interfaceOf(file);
  if (!isUp(name)) return undefined;
  // wg-quick down needs the file; without it the interface (and its catch-all routes) would outlive the session.
  if (!existsSync(file)) {
    throw new CliError(
      `${name} is up, but ${file}, which brought it up, is gone: put it back and run disconnect again, or take ${name} down yourself`,
    );
  }
  const program = findOnPath(ctx, 'wg-quick');
  if (!program) throw new CliError(`${WG_QUICK_MISSING}; interface ${name} is still up`);
  const code = await wgQuick(ctx, program, 'down', file);
  if (code !== 0) throw new CliError(`wg-quick down ${file} failed (exit ${code})`);
  return name;
}

/** Forgets a session that is over here: the last-session mark, what --up brought up, its default file. */
function forget(ctx: Context, id: string): void {
  if (ctx.store.lastSession() === id) ctx.store.setLastSession(undefined);
  ctx.store.setUpConfig(id, undefined);
  // This file's private key is useless now; a file the user placed with --out is theirs to keep.
  rmSync(ctx.store.sessionConfigPath(id), { force: true });
}

/**
 * Undoes `connect --up` for a session that ends with this command: the interface down, and the session
 * closed unless it is over already. Says what became of each, for the command's last line.
 */
async function release(ctx: Context, token: string, id: string, close = true): Promise<string> {
  const said: string[] = [];
  try {
    const name = await downInterface(ctx, id);
    if (name) said.push(`${name} taken down`);
  } catch (err) {
    said.push(describeError(err).line);
  }
  if (close) said.push(await closeUnfinished(ctx, token, id));
  forget(ctx, id);
  return said.join('; ');
}

/**
 * After a move, the file `connect` wrote names the session's new node (the broker's fresh config, with
 * this machine's keys), so bringing it up again reaches the session; a failure is said, not fatal.
 */
function renewFile(ctx: Context, file: string, session: Session): void {
  try {
    const renewed = renewedConfig(readFileSync(file, 'utf8'), session.config);
    if (!renewed.ok) throw new Error(renewed.message);
    writePrivateFile(file, renewed.text);
  } catch (err) {
    ctx.io.stderr.write(`tunnelbyte: ${file} still names the old node: ${describeError(err).line}\n`);
  }
}

/**
 * `connect --up --follow`: the tunnel lives as long as the command. Whatever ends the following (the
 * session ending, Ctrl-C, SIGTERM, a failure), the interface comes down, and the session is closed
 * unless it ended by itself.
 */
async function followOwned(
  ctx: Context,
  token: string,
  id: string,
  file: string,
  wg: string,
  intervalS: number,
): Promise<void> {
  let end: FollowEnd;
  try {
    end = await followSession(ctx, {
      sessionId: id,
      interfaceName: interfaceOf(file),
      wg,
      intervalS,
      onStop: 'takes it down and closes the session',
      afterMove: (s) => renewFile(ctx, file, s),
    });
  } catch (err) {
    const { line, exitCode } = describeError(err);
    throw new CliError(`${line}; ${await release(ctx, token, id)}`, exitCode);
  }
  if (end.kind === 'stopped') throw interrupted(await release(ctx, token, id), end.signal);
  const released = await release(ctx, token, id, false);
  const line = released ? `${end.line}; ${released}` : end.line;
  if (end.exitCode !== EXIT.ok) throw new CliError(line, end.exitCode);
  followEvent(ctx, id, 'ended', line, { message: line });
}

// Bytes from this machine's side, as `wg show` here counts them: the broker reports the exit node's
// counts, so what the node received (rx_bytes) is what we sent.
const received = (s: Session) => bytes(s.tx_bytes);
const sent = (s: Session) => bytes(s.rx_bytes);

const sessions: Action<[]> = async (ctx) => {
  const result = await ctx.spin('Fetching sessions', ctx.authed().listSessions());
  const rows = result.sessions.map((s) => [
    s.id,
    s.region,
    s.status,
    s.node.id,
    s.created_at,
    s.expires_at,
    received(s),
    sent(s),
  ]);
  const human =
    rows.length === 0
      ? 'No sessions. Start one with `tunnelbyte connect`.\n'
      : table(['id', 'region', 'status', 'node', 'created', 'expires', 'rx', 'tx'], rows);
  ctx.print(human, result);
};

function sessionId(ctx: Context, given: string | undefined): string {
  const id = given ?? ctx.store.lastSession();
  if (!id) throw usageError('no session id given and none recorded here; see `tunnelbyte sessions`');
  return id;
}

const status: Action<[string | undefined]> = async (ctx, given) => {
  const id = sessionId(ctx, given);
  const s = await ctx.spin('Fetching session', ctx.authed().session(id));
  ctx.print(
    fields([
      ['session', s.id],
      ['status', s.status],
      ['region', s.region],
      ['node', s.node.id],
      ['moved', orDash(s.moved_at)],
      ['created', s.created_at],
      ['expires', s.expires_at],
      ['handshake', orDash(s.last_handshake_at)],
      ['received', received(s)],
      ['sent', sent(s)],
    ]) + (s.status === 'node_lost' ? 'Its exit node was lost: run `tunnelbyte connect` again.\n' : ''),
    s,
  );
};

const disconnect: Action<[string | undefined]> = async (ctx, given) => {
  const id = sessionId(ctx, given);
  const client = ctx.authed();
  // What `connect --up` (or the user, with the printed `wg-quick up`) brought up here comes down first.
  await downInterface(ctx, id).catch((err: unknown) => {
    throw new CliError(`${describeError(err).line}; the session is still open`);
  });
  await ctx.spin('Closing session', client.deleteSession(id));
  forget(ctx, id);
  ctx.print(`Disconnected ${id}.\n`, { id, closed: true });
};

/** The interface a session's tunnel uses here, when `follow` is not told: the one its file brought up. */
function followedInterface(ctx: Context, id: string, given: string | undefined): string {
  if (given !== undefined) {
    if (!INTERFACE_NAME.test(given)) throw usageError(`not an interface name: ${given}`);
    return given;
  }
  const name = interfaceOf(ctx.store.upConfig(id) ?? ctx.store.sessionConfigPath(id));
  if (isUp(name)) return name;
  throw usageError(
    `no interface of session ${id} is up here: give --interface NAME (wg-quick names it after the file)`,
  );
}

interface FollowOptions {
  interface?: string;
  interval: number;
}

/**
 * `follow`: the same following for a tunnel the user brought up (from an --out file, or an earlier
 * `connect --up`). It did not bring the tunnel up, so it never takes it down: Ctrl-C stops following and
 * leaves the interface and the session as they are (`tunnelbyte disconnect` ends both).
 */
const follow: Action<[string | undefined, FollowOptions]> = async (ctx, given, options) => {
  const id = sessionId(ctx, given);
  const interfaceName = followedInterface(ctx, id, options.interface);
  const wg = findOnPath(ctx, 'wg');
  if (!wg) throw new CliError(WG_MISSING);
  const end = await followSession(ctx, {
    sessionId: id,
    interfaceName,
    wg,
    intervalS: options.interval,
    onStop: 'stops following and leaves the tunnel as it is',
  });
  if (end.kind === 'stopped') {
    throw interrupted(
      `stopped following; ${interfaceName} and session ${id} are left as they are`,
      end.signal,
    );
  }
  const left = isUp(interfaceName)
    ? `; ${interfaceName} is still up: take it down as you brought it up (\`wg-quick down FILE\`)`
    : '';
  if (end.exitCode !== EXIT.ok) throw new CliError(`${end.line}${left}`, end.exitCode);
  followEvent(ctx, id, 'ended', `${end.line}${left}`, { message: `${end.line}${left}` });
};

export function registerSessions(program: Command, act: Act): void {
  program
    .command('connect')
    .description('open a session and write its wg-quick file (the private key is made here)')
    .argument('[region]', 'region id (default: the least-loaded one open to your tier)')
    .option('-o, --out <file>', 'where to write the config; - for stdout (default: config dir)')
    .option('--qr', 'also print the config as a QR code, for phone apps')
    .option('--up', 'bring it up with wg-quick (needs root, and resolvconf unless --no-dns)')
    .option(
      '--follow',
      'with --up: stay in the foreground following the session; when its node is lost and the broker ' +
        'moves it, the interface follows (wg set); Ctrl-C takes it down and closes the session',
    )
    // Without a default value: an --interval given without --follow is told apart, and refused.
    .addOption(
      intervalOption(`with --follow: seconds between reads of the session (default: ${DEFAULT_INTERVAL_S})`),
    )
    .addHelpText('after', `\nWith --follow:\n${FOLLOW_HELP}`)
    .option('--no-dns', "no DNS line: keep this machine's resolvers (wg-quick then needs no resolvconf)")
    .option('--ttl <seconds>', 'session lifetime (60 to 2592000; the tier may allow less)', ttl)
    .option('--psk', 'add a preshared key')
    .action(act(connect));
  program.command('sessions').description('list your sessions').action(act(sessions));
  program
    .command('status')
    .description('show one session (default: the last one connected from here)')
    .argument('[id]', 'ses_… id')
    .action(act(status));
  program
    .command('disconnect')
    .description(
      'close a session (default: the last one connected from here), first taking down its interface if it is up here',
    )
    .argument('[id]', 'ses_… id')
    // What plain `disconnect` does now; still accepted from scripts written for earlier versions.
    .addOption(new Option('--down').hideHelp())
    .action(act(disconnect));
  program
    .command('follow')
    .description(
      'follow a tunnel you brought up (from a --out file): when the broker moves its session to another ' +
        'node, swap the peer on the interface (wg set); ends with the session. Ctrl-C stops following ' +
        'and leaves the tunnel and the session as they are',
    )
    .argument('[id]', 'ses_… id (default: the last one connected from here)')
    .option(
      '-i, --interface <name>',
      'the interface (wg-quick names it after the file; default: the one `connect --up` brought up)',
    )
    .addOption(intervalOption('seconds between reads of the session').default(DEFAULT_INTERVAL_S))
    .addHelpText('after', `\n${FOLLOW_HELP}`)
    .action(act(follow));
}

const FOLLOW_HELP =
  'Following needs wg (wireguard-tools) and root. One line per event (--json: one object per line).\n' +
  'It ends with the session: exit 0 when you closed it (`tunnelbyte disconnect`), 4 when the byte\n' +
  'quota is used up, 1 when it expired or is gone, 5 when its node was lost and no other node had\n' +
  'room (run `tunnelbyte connect` again); Ctrl-C exits 130, SIGTERM 143. Broker errors are retried\n' +
  'with backoff.\n';

const intervalOption = (description: string): Option =>
  new Option('--interval <seconds>', description).argParser(wait);
