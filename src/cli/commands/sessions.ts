// connect, sessions, status, disconnect: WireGuard sessions on exit nodes.
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, rmSync } from 'node:fs';
import { basename, delimiter, join, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { seconds } from '../args.js';
import QRCode from 'qrcode';
import { ApiError, type CreatedSession, type Session } from '../../lib/api-client.js';
import type { Act, Action, Context } from '../context.js';
import { CliError, EXIT, interrupted, usageError } from '../exit.js';
import { bytes, fields, orDash, table } from '../format.js';
import { writePrivateFile } from '../store.js';
import { sessionConfig } from '../wgconfig.js';
import { generateKeyPair } from '../wgkeys.js';

/** wg-quick names the interface after the file: at most 15 of these characters (IFNAMSIZ - 1). */
const INTERFACE_NAME = /^[a-zA-Z0-9_=+.-]{1,15}$/;

function findOnPath(ctx: Context, program: string): string | undefined {
  for (const dir of (ctx.io.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, program);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

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

const WG_QUICK_MISSING =
  'wg-quick not found: install wireguard-tools, or import the file into a WireGuard app';
const RESOLVCONF_MISSING =
  "wg-quick needs resolvconf to apply the config's DNS servers and none is on PATH: install one " +
  "(Debian: openresolv), or add --no-dns to keep this machine's DNS";

/** Runs `wg-quick up|down FILE`; its progress lines go to our stderr, keeping stdout for results. */
function wgQuick(ctx: Context, program: string, verb: 'up' | 'down', file: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, [verb, file], { stdio: ['ignore', 'pipe', 'pipe'], env: ctx.io.env });
    const relay = (chunk: Buffer) => ctx.io.stderr.write(chunk.toString());
    child.stdout.on('data', relay);
    child.stderr.on('data', relay);
    child.once('error', reject);
    child.once('close', (code) => resolve(code ?? 1));
  });
}

/** wg-quick names the interface after its file; it is up on this machine while the kernel lists it. */
const interfaceOf = (file: string) => basename(file, '.conf');
const isUp = (file: string) => existsSync(join('/sys/class/net', interfaceOf(file)));

interface ConnectOptions {
  out?: string;
  qr?: boolean;
  up?: boolean;
  dns: boolean;
  ttl?: number;
  psk?: boolean;
}

/** Every local precondition of `connect`, checked before a session (and quota) is spent; wg-quick's path. */
function checkLocal(ctx: Context, options: ConnectOptions): string | undefined {
  if (!options.up) return undefined;
  if (options.out === '-') throw usageError('--up needs a file: drop `--out -`');
  if (options.out !== undefined && !INTERFACE_NAME.test(interfaceOf(options.out))) {
    throw usageError(
      'wg-quick names the interface after the file: use --out DIR/NAME.conf with NAME ≤ 15 of [a-zA-Z0-9_=+.-]',
    );
  }
  const wgQuickPath = findOnPath(ctx, 'wg-quick');
  if (!wgQuickPath) throw new CliError(WG_QUICK_MISSING);
  if (options.dns && !findOnPath(ctx, 'resolvconf')) throw new CliError(RESOLVCONF_MISSING);
  return wgQuickPath;
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
    if (ctx.store.lastSession() === id) ctx.store.setLastSession(undefined);
    return `session ${id} closed`;
  } catch {
    return `session ${id} may still be open: \`tunnelbyte disconnect ${id}\``;
  }
}

const connect: Action<[string | undefined, ConnectOptions]> = async (ctx, regionArg, options) => {
  const toStdout = options.out === '-';
  const wgQuickPath = checkLocal(ctx, options);
  const { token } = ctx.requireToken();
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
  ctx.store.setLastSession(session.id);

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
  else writePrivateFile(path, config.text);

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
  else ctx.print(human, summary);
  if (toStdout && ctx.json) ctx.io.stderr.write(`${JSON.stringify(summary)}\n`);

  if (options.qr) {
    const out = toStdout || ctx.json ? ctx.io.stderr : ctx.io.stdout;
    // Colour codes only for a terminal; a file or pipe gets plain block characters.
    const type = out.isTTY ? 'terminal' : 'utf8';
    out.write(await QRCode.toString(config.text, { type, small: true }));
  }
  if (wgQuickPath && path) {
    const code = await wgQuick(ctx, wgQuickPath, 'up', path);
    if (code !== 0 || ctx.interrupted) {
      const closed = await closeUnfinished(ctx, token, session.id);
      if (!options.out) rmSync(path, { force: true });
      if (ctx.interrupted) throw interrupted(closed);
      throw new CliError(`wg-quick up ${path} failed (exit ${code}); ${closed}`);
    }
    ctx.store.setUpConfig(session.id, path);
  }
};

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
      ['created', s.created_at],
      ['expires', s.expires_at],
      ['handshake', orDash(s.last_handshake_at)],
      ['received', received(s)],
      ['sent', sent(s)],
    ]),
    s,
  );
};

const disconnect: Action<[string | undefined]> = async (ctx, given) => {
  const id = sessionId(ctx, given);
  const client = ctx.authed();
  // What `connect --up` (or the user, with the printed `wg-quick up`) brought up on this machine comes
  // down first: a catch-all interface left up after its session closes sends traffic nowhere.
  const file = ctx.store.upConfig(id) ?? ctx.store.sessionConfigPath(id);
  if (existsSync(file) && isUp(file)) {
    const program = findOnPath(ctx, 'wg-quick');
    if (!program) throw new CliError(`${WG_QUICK_MISSING}; interface ${interfaceOf(file)} is still up`);
    const code = await wgQuick(ctx, program, 'down', file);
    if (code !== 0)
      throw new CliError(`wg-quick down ${file} failed (exit ${code}); the session is still open`);
  }
  await ctx.spin('Closing session', client.deleteSession(id));
  if (ctx.store.lastSession() === id) ctx.store.setLastSession(undefined);
  ctx.store.setUpConfig(id, undefined);
  // This file's private key is useless now; a file the user placed with --out is theirs to keep.
  rmSync(ctx.store.sessionConfigPath(id), { force: true });
  ctx.print(`Disconnected ${id}.\n`, { id, closed: true });
};

export function registerSessions(program: Command, act: Act): void {
  program
    .command('connect')
    .description('open a session and write its wg-quick file (the private key is made here)')
    .argument('[region]', 'region id (default: the least-loaded one open to your tier)')
    .option('-o, --out <file>', 'where to write the config; - for stdout (default: config dir)')
    .option('--qr', 'also print the config as a QR code, for phone apps')
    .option('--up', 'bring it up with wg-quick (needs root, and resolvconf unless --no-dns)')
    .option('--no-dns', "no DNS line: keep this machine's resolvers (wg-quick then needs no resolvconf)")
    .option('--ttl <seconds>', 'session lifetime', seconds)
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
}
