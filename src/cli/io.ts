// Where the CLI reads and writes: the process's streams and environment in main.ts, captured buffers
// in tests. Nothing else in src/cli touches process.* directly, so run() is testable in-process.
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { EXIT, interrupted, type StopSignal } from './exit.js';

export interface OutStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

export interface CliIO {
  stdout: OutStream;
  stderr: OutStream;
  stdin: Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  env: Record<string, string | undefined>;
  /**
   * Aborted by Ctrl-C, its reason 'SIGINT': requests in flight stop and the command reports "interrupted"
   * (exit 130).
   */
  interrupt?: AbortSignal;
  /**
   * From this call on, SIGTERM aborts `interrupt` too (reason 'SIGTERM'): for a command that stays in the
   * foreground and must undo what it set up. Other commands keep SIGTERM's default (exit at once).
   */
  catchTerminate?: () => void;
}

/** The first signal aborts, so the command can say so and close what it made; a second one exits at once. */
function stopSignals(): Pick<CliIO, 'interrupt' | 'catchTerminate'> {
  const controller = new AbortController();
  const stop = (signal: StopSignal) => {
    if (!controller.signal.aborted) return controller.abort(signal);
    process.stderr.write('tunnelbyte: interrupted again; see `tunnelbyte sessions` for anything left open\n');
    process.exit(EXIT.interrupted);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  let catching = false;
  const catchTerminate = () => {
    if (!catching) process.on('SIGTERM', () => stop('SIGTERM'));
    catching = true;
  };
  return { interrupt: controller.signal, catchTerminate };
}

export function processIo(): CliIO {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    ...stopSignals(),
  };
}

/** Reads all of stdin, without its final line break (`echo pw | tunnelbyte login --password-stdin`). */
export async function readStdin(io: CliIO): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of io.stdin)
    chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** Asks one question on the terminal; with `secret` the answer is not echoed. */
export async function prompt(io: CliIO, question: string, secret = false): Promise<string> {
  const output = io.stderr as NodeJS.WritableStream;
  const rl = createInterface({ input: io.stdin, output, terminal: true });
  if (secret) {
    // readline echoes through _writeToOutput; muting it hides the password but keeps line editing.
    const muted = rl as unknown as { _writeToOutput: (s: string) => void };
    muted._writeToOutput = (s: string) => {
      if (s.startsWith(question)) output.write(s);
    };
  }
  try {
    return await new Promise<string>((resolve, reject) => {
      // A terminal in raw mode turns Ctrl-C into this event rather than a signal.
      rl.once('SIGINT', () => reject(interrupted()));
      rl.question(question, resolve);
    });
  } finally {
    if (secret) output.write('\n');
    rl.close();
  }
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const FRAME_MS = 80;

/** Runs `work` with a spinner on stderr, drawn only when stderr is a terminal. */
export async function withSpinner<T>(io: CliIO, label: string, work: Promise<T>): Promise<T> {
  if (!io.stderr.isTTY) return work;
  let frame = 0;
  const draw = () => io.stderr.write(`\r${FRAMES[frame++ % FRAMES.length]} ${label}`);
  draw();
  const timer = setInterval(draw, FRAME_MS);
  try {
    return await work;
  } finally {
    clearInterval(timer);
    io.stderr.write('\r\x1b[2K');
  }
}
