// The CLI's files in its config dir (env-paths: ~/.config/tunnelbyte on Linux, ~/Library/Preferences/
// tunnelbyte on macOS, %APPDATA%\tunnelbyte\Config on Windows; TB_CONFIG_DIR overrides it):
//   token        the cached API token (0600; the directory is 0700)
//   state.json   the last session id, for `status` and `disconnect` without an argument, and the
//                files `connect --up` brought up, for `disconnect` to take down
//   tb-<last 8 of the session id>.conf  wg-quick files written by `connect` (0600: they hold the
//                private key), named so that wg-quick accepts the name as an interface name
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import envPaths from 'env-paths';

const PRIVATE_FILE = 0o600;
const PRIVATE_DIR = 0o700;

export function configDir(env: Record<string, string | undefined>): string {
  const override = env.TB_CONFIG_DIR;
  if (override) return override;
  return envPaths('tunnelbyte', { suffix: '' }).config;
}

/** Writes a file only its owner can read, creating its directory 0700; an existing file is replaced whole. */
export function writePrivateFile(path: string, contents: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: PRIVATE_DIR });
  // Write a fresh 0600 file and rename it over the target: an existing file with looser permissions never
  // holds the secret, and a reader never sees half of it.
  const staging = `${path}.${process.pid}.tmp`;
  rmSync(staging, { force: true });
  writeFileSync(staging, contents, { mode: PRIVATE_FILE, flag: 'wx' });
  chmodSync(staging, PRIVATE_FILE);
  renameSync(staging, path);
}

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

interface State {
  last_session?: string;
  /** Session id → the wg-quick file `connect --up` brought up. */
  up?: Record<string, string>;
}

export type TokenSource = 'TB_KEY' | 'cache';

export class Store {
  readonly dir: string;

  constructor(env: Record<string, string | undefined>) {
    this.dir = configDir(env);
  }

  get tokenPath(): string {
    return join(this.dir, 'token');
  }
  private get statePath(): string {
    return join(this.dir, 'state.json');
  }
  /** wg-quick takes the interface name from the file name: 1–15 of [a-zA-Z0-9_=+.-], so `tb-` + 8. */
  sessionConfigPath(sessionId: string): string {
    return join(this.dir, `tb-${sessionId.replace(/[^A-Za-z0-9]/g, '').slice(-8)}.conf`);
  }

  readToken(): string | undefined {
    const token = readOptional(this.tokenPath)?.trim();
    return token ? token : undefined;
  }
  writeToken(token: string): void {
    writePrivateFile(this.tokenPath, `${token}\n`);
  }
  removeToken(): void {
    rmSync(this.tokenPath, { force: true });
  }

  private readState(): State {
    const text = readOptional(this.statePath);
    if (text === undefined) return {};
    try {
      const parsed = JSON.parse(text) as unknown;
      return typeof parsed === 'object' && parsed !== null ? (parsed as State) : {};
    } catch {
      return {}; // a damaged state file only loses the "last session" convenience
    }
  }
  lastSession(): string | undefined {
    const id = this.readState().last_session;
    return typeof id === 'string' ? id : undefined;
  }
  setLastSession(id: string | undefined): void {
    const state = this.readState();
    if (id === undefined) delete state.last_session;
    else state.last_session = id;
    this.writeState(state);
  }

  /** The file `connect --up` brought up for this session, if it did. */
  upConfig(sessionId: string): string | undefined {
    const path = this.readState().up?.[sessionId];
    return typeof path === 'string' ? path : undefined;
  }
  setUpConfig(sessionId: string, path: string | undefined): void {
    const state = this.readState();
    const up = { ...state.up };
    if (path === undefined) delete up[sessionId];
    else up[sessionId] = path;
    this.writeState({ ...state, up });
  }

  private writeState(state: State): void {
    writePrivateFile(this.statePath, `${JSON.stringify(state)}\n`);
  }
}
