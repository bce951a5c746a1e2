// connect, sessions, status, disconnect: WireGuard sessions on exit nodes.
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, rmSync } from 'node:fs';
import { basename, delimiter, join } from 'node:path';
import type { Command } from 'commander';
import { seconds } from '../args.js';
import QRCode from 'qrcode';
import type { CreatedSession } from '../../lib/api-client.js';
import type { Context } from '../context.js';
import { CliError, EXIT, usageError } from '../exit.js';
import { bytes, fields, orDash, table } from '../format.js';
import type { Act, Action } from '../program.js';
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

interface ConnectOptions {
  out?: string;
  qr?: boolean;
  up?: boolean;
  ttl?: number;
  psk?: boolean;
}

const connect: Action<[string | undefined, ConnectOptions]> = async (ctx, regionArg, options) => {
  const toStdout = options.out === '-';
  // Every local precondition is checked before a session (and quota) is spent.
  let wgQuickPath: string | undefined;
  if (options.up) {
    if (toStdout) throw usageError('--up needs a file: drop `--out -`');
    wgQuickPath = findOnPath(ctx, 'wg-quick');
    if (!wgQuickPath) throw new CliError(WG_QUICK_MISSING);
    if (options.out !== undefined && !INTERFACE_NAME.test(basename(options.out, '.conf'))) {
      throw usageError(
        'wg-quick names the interface after the file: use --out DIR/NAME.conf with NAME ≤ 15 of [a-zA-Z0-9_=+.-]',
      );
    }
  }
  const client = ctx.authed();
  const region = regionArg ?? (await ctx.spin('Choosing a region', pickRegion(ctx)));
  const keys = generateKeyPair();
  const session: CreatedSession = await ctx.spin(
    `Creating a session in ${region}`,
    client.createSession({
      region,
      public_key: keys.publicKey,
      ...(options.ttl === undefined ? {} : { ttl_seconds: options.ttl }),
      ...(options.psk ? { preshared_key: true } : {}),
    }),
  );
  ctx.store.setLastSession(session.id);

  // A broker that made the key pair itself (it should not, given ours) hands back its private key.
  const config = sessionConfig(session, session.interface.private_key ?? keys.privateKey);
  if (!config.ok) {
    throw new CliError(
      `session ${session.id} was created but its config is unusable (${config.message}); \`tunnelbyte disconnect ${session.id}\``,
    );
  }
  // wg-quick names the interface after the file, so --up gets a short default name.
  const defaultPath = options.up
    ? ctx.store.interfaceConfigPath(session.id)
    : ctx.store.sessionConfigPath(session.id);
  const path = toStdout ? undefined : (options.out ?? defaultPath);
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
  const next = path && !options.up ? `Bring it up with: sudo wg-quick up ${path}\n` : '';
  const human =
    `Session ${session.id} in ${session.region}: node ${session.node.id} at ${session.peer.endpoint}, ` +
    `address ${session.interface.addresses.join(', ')}, expires ${session.expires_at}.\n${where}${next}`;
  // With the config on stdout, everything else moves to stderr so the file stays clean.
  if (toStdout) ctx.note(human);
  else ctx.print(human, summary);
  if (toStdout && ctx.json) ctx.io.stderr.write(`${JSON.stringify(summary)}\n`);

  if (options.qr) {
    const qr = await QRCode.toString(config.text, { type: 'terminal', small: true });
    (toStdout || ctx.json ? ctx.io.stderr : ctx.io.stdout).write(qr);
  }
  if (options.up && wgQuickPath && path) {
    const code = await wgQuick(ctx, wgQuickPath, 'up', path);
    if (code !== 0) throw new CliError(`wg-quick up ${path} failed (exit ${code}); the session stays open`);
  }
};

const sessions: Action<[]> = async (ctx) => {
  const result = await ctx.spin('Fetching sessions', ctx.authed().listSessions());
  const rows = result.sessions.map((s) => [
    s.id,
    s.region,
    s.status,
    s.node.id,
    s.created_at,
    s.expires_at,
    bytes(s.rx_bytes ?? 0),
    bytes(s.tx_bytes ?? 0),
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
      ['received', bytes(s.rx_bytes ?? 0)],
      ['sent', bytes(s.tx_bytes ?? 0)],
    ]),
    s,
  );
};

const disconnect: Action<[string | undefined, { down?: boolean }]> = async (ctx, given, options) => {
  const id = sessionId(ctx, given);
  const client = ctx.authed();
  // The file `connect --up` wrote names the interface; `wg-quick down` needs it, so it is kept until
  // the interface is down (--down does both).
  const upFile = ctx.store.interfaceConfigPath(id);
  const wasUp = existsSync(upFile);
  if (options.down && wasUp) {
    const program = findOnPath(ctx, 'wg-quick');
    if (!program) throw new CliError(WG_QUICK_MISSING);
    const code = await wgQuick(ctx, program, 'down', upFile);
    if (code !== 0)
      throw new CliError(`wg-quick down ${upFile} failed (exit ${code}); the session is still open`);
    rmSync(upFile, { force: true });
  }
  await ctx.spin('Closing session', client.deleteSession(id));
  if (ctx.store.lastSession() === id) ctx.store.setLastSession(undefined);
  // This file's private key is useless now; a file the user placed with --out is theirs to keep.
  rmSync(ctx.store.sessionConfigPath(id), { force: true });
  const stillUp = wasUp && !options.down;
  ctx.print(
    `Disconnected ${id}.\n${stillUp ? `Take its interface down with: sudo wg-quick down ${upFile}\n` : ''}`,
    { id, closed: true, ...(stillUp ? { config_path: upFile } : {}) },
  );
};

export function registerSessions(program: Command, act: Act): void {
  program
    .command('connect')
    .description('open a session and write its wg-quick file (the private key is made here)')
    .argument('[region]', 'region id (default: the least-loaded one open to your tier)')
    .option('-o, --out <file>', 'where to write the config; - for stdout (default: config dir)')
    .option('--qr', 'also print the config as a QR code, for phone apps')
    .option('--up', 'bring it up with wg-quick (needs root)')
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
    .description('close a session (default: the last one connected from here)')
    .argument('[id]', 'ses_… id')
    .option('--down', 'first take down the interface `connect --up` brought up')
    .action(act(disconnect));
}
