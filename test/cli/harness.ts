// The CLI against a REAL broker, the app of test/broker/helpers.ts on a real redis-server, listening on
// a loopback port, driven through run() in-process (fast, same code as the bin) or the compiled bin.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer, type RequestListener, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { run } from '../../src/cli/program.js';
import type { CliIO } from '../../src/cli/io.js';
import { startBroker, type TestBroker } from '../broker/helpers.js';
import { builtProgram } from '../helpers/repo.js';

/** The compiled CLI, checked to be current (`npm run build` first; scripts/test does it). */
export const cliProgram = () => builtProgram('src/cli/main.js');

export interface Listening {
  url: string;
  close(): Promise<void>;
}

export async function listen(handler: RequestListener): Promise<Listening> {
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface CliBroker {
  broker: TestBroker;
  url: string;
  close(): Promise<void>;
}

export async function startCliBroker(env: Record<string, string> = {}): Promise<CliBroker> {
  const broker = await startBroker({ env: { PUBLIC_BURST: '100000', ...env } });
  const http = await listen(broker.app);
  return {
    broker,
    url: http.url,
    close: async () => {
      await http.close();
      await broker.close();
    },
  };
}

/** One simulated machine: its own config dir and fingerprint. */
export interface Machine {
  configDir: string;
  fingerprint: string;
  env: Record<string, string>;
}

export function machine(apiUrl: string, extra: Record<string, string> = {}): Machine {
  const configDir = join(mkdtempSync(join(tmpdir(), 'tb-cli-')), 'tunnelbyte');
  const fingerprint = randomBytes(32).toString('hex');
  return {
    configDir,
    fingerprint,
    env: { TB_API: apiUrl, TB_CONFIG_DIR: configDir, TB_FINGERPRINT: fingerprint, PATH: '', ...extra },
  };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A writable stream that keeps what was written (readline needs a real stream for its prompts). */
class Capture extends Writable {
  text = '';
  onWrite: (() => void) | undefined;
  constructor(readonly isTTY = false) {
    super({ decodeStrings: false });
  }
  override _write(chunk: Buffer | string, _encoding: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    this.onWrite?.();
    done();
  }
}

/** A stdin that looks like a terminal and types each answer once its prompt appears on stderr. */
function typist(stderr: Capture, answers: [prompt: string, answer: string][]): CliIO['stdin'] {
  const input = Object.assign(new PassThrough(), { isTTY: true, setRawMode: () => input });
  let next = 0;
  let seen = 0;
  stderr.onWrite = () => {
    const pending = answers[next];
    const at = pending ? stderr.text.indexOf(pending[0], seen) : -1;
    if (!pending || at < 0) return;
    next++;
    seen = at + pending[0].length;
    setImmediate(() => input.write(`${pending[1]}\n`));
  };
  return input;
}

/** Runs the CLI in-process with captured streams; stdin is the given text (not a TTY). */
export async function cli(
  argv: string[],
  env: Record<string, string | undefined>,
  options: { stdin?: string; stderrTTY?: boolean; typed?: [prompt: string, answer: string][] } = {},
): Promise<CliResult> {
  const stdout = new Capture();
  const stderr = new Capture(options.stderrTTY ?? false);
  const stdin = options.typed ? typist(stderr, options.typed) : Readable.from([options.stdin ?? '']);
  const io: CliIO = { stdout, stderr, stdin, env };
  const code = await run(argv, io);
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/** The machine's sessions as `tunnelbyte sessions --json` lists them. */
export async function listedSessions(m: Machine): Promise<{ id: string; status: string }[]> {
  return (
    JSON.parse((await cli(['sessions', '--json'], m.env)).stdout) as {
      sessions: { id: string; status: string }[];
    }
  ).sessions;
}

/** Runs the compiled bin (in cwd, when given). */
export async function cliBin(
  argv: string[],
  env: Record<string, string>,
  stdin = '',
  cwd?: string,
): Promise<CliResult> {
  const bin = cliProgram();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...argv], {
      cwd,
      env: { ...env, PATH: process.env.PATH ?? '' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(stdin);
  });
}
