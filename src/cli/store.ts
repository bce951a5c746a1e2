// The CLI's files in its config dir (env-paths: ~/.config/tunnelbyte on Linux, ~/Library/Preferences/
// tunnelbyte on macOS, %APPDATA%\tunnelbyte\Config on Windows; TB_CONFIG_DIR overrides it):
//   token        the cached API token (0600; the directory is 0700)
//   oauth.json   with a token from `login --web`: its refresh token, expiry and token endpoint (0600)
//   state.json   the last session id, for `status` and `disconnect` without an argument, and the
//                files `connect --up` brought up, for `disconnect` to take down
//   tb-<last 8 of the session id>.conf  wg-quick files written by `connect` (0600: they hold the
//                private key), named so that wg-quick accepts the name as an interface name
import {
  accessSync,
  chmodSync,
  constants,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import envPaths from 'env-paths';
import { CliError } from './exit.js';

const PRIVATE_FILE = 0o600;
const PRIVATE_DIR = 0o700;

export function configDir(env: Record<string, string | undefined>): string {
  const override = env.TB_CONFIG_DIR;
  if (override) return override;
  return envPaths('tunnelbyte', { suffix: '' }).config;
}

/** What a file system call refused, without Node's code and call: "no such file or directory". */
const fsReason = (err: unknown): string =>
  String((err as { message?: unknown } | undefined)?.message ?? err)
    .replace(/^[A-Z]+: /, '')
    .replace(/, \w+ '.*'$/, '');

/** Why no file can be written in the directory `dir` (which must exist), or undefined. */
export function directoryProblem(dir: string): string | undefined {
  try {
    if (!statSync(dir).isDirectory()) return 'not a directory';
    accessSync(dir, constants.W_OK);
    return undefined;
  } catch (err) {
    return fsReason(err);
  }
}

/**
 * Writes a file only its owner can read, creating its directory 0700 unless `makeDir` is false; an existing
 * file is replaced whole, and a failed write leaves nothing behind. A failure is a CliError naming `path`.
 */
export function writePrivateFile(path: string, contents: string, { makeDir = true } = {}): void {
  // Write a fresh 0600 file and rename it over the target: an existing file with looser permissions never
  // holds the secret, and a reader never sees half of it.
  const staging = `${path}.${process.pid}.tmp`;
  try {
    if (makeDir) mkdirSync(dirname(path), { recursive: true, mode: PRIVATE_DIR });
    rmSync(staging, { force: true });
    writeFileSync(staging, contents, { mode: PRIVATE_FILE, flag: 'wx' });
    chmodSync(staging, PRIVATE_FILE);
    renameSync(staging, path);
  } catch (err) {
    rmSync(staging, { force: true });
    throw new CliError(`cannot write ${path}: ${fsReason(err)}`);
  }
}

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    // ENOTDIR: a config dir under a file holds nothing (writing there is refused with the reason).
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

function statOptional(path: string) {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

interface State {
  last_session?: string;
  /** Session id → the wg-quick file `connect --up` brought up. */
  up?: Record<string, string>;
}

export type TokenSource = 'TB_KEY' | 'cache';

/** What renews a cached OAuth access token (src/cli/weblogin.ts). */
export interface OAuthRecord {
  refresh_token: string;
  /** When the cached access token expires, ms since the epoch. */
  expires_at: number;
  token_endpoint: string;
  revocation_endpoint?: string;
}

const LOCK_STALE_MS = 30_000;
const LOCK_WAIT_MS = 10_000;

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

  /**
   * Why the config dir cannot take files (it is made when missing, so its nearest existing ancestor counts
   * then), or undefined: checked before a command spends something whose secret only lives there.
   */
  writeProblem(): string | undefined {
    let dir = this.dir;
    while (statOptional(dir) === undefined && dirname(dir) !== dir) dir = dirname(dir);
    const problem = directoryProblem(dir);
    return problem === undefined || dir === this.dir ? problem : `${dir}: ${problem}`;
  }

  get oauthPath(): string {
    return join(this.dir, 'oauth.json');
  }

  readToken(): string | undefined {
    const token = readOptional(this.tokenPath)?.trim();
    return token ? token : undefined;
  }
  /** Caches a token that needs no renewal (signup, password login, set-key): any OAuth record goes. */
  writeToken(token: string): void {
    writePrivateFile(this.tokenPath, `${token}\n`);
    rmSync(this.oauthPath, { force: true });
  }
  removeToken(): void {
    rmSync(this.tokenPath, { force: true });
    rmSync(this.oauthPath, { force: true });
  }

  /** Caches an OAuth access token with what renews it (the record first: a token never lacks it). */
  writeOAuthTokens(accessToken: string, record: OAuthRecord): void {
    writePrivateFile(this.oauthPath, `${JSON.stringify(record)}\n`);
    writePrivateFile(this.tokenPath, `${accessToken}\n`);
  }
  readOAuth(): OAuthRecord | undefined {
    const text = readOptional(this.oauthPath);
    if (text === undefined) return undefined;
    try {
      const record = JSON.parse(text) as Partial<OAuthRecord>;
      const whole =
        typeof record.refresh_token === 'string' &&
        typeof record.expires_at === 'number' &&
        typeof record.token_endpoint === 'string';
      return whole ? (record as OAuthRecord) : undefined;
    } catch {
      return undefined; // a damaged record only costs a new `login --web`
    }
  }

  /**
   * Runs `work` holding the config dir's OAuth lock, so two commands never spend the same refresh token
   * (the broker would take the second use for a stolen token and revoke the sign-in). A lock left by a
   * crashed command is taken over after 30 s.
   */
  async withOAuthLock<T>(work: () => Promise<T>): Promise<T> {
    const lock = `${this.oauthPath}.lock`;
    mkdirSync(this.dir, { recursive: true, mode: PRIVATE_DIR });
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        writeFileSync(lock, String(process.pid), { flag: 'wx', mode: PRIVATE_FILE });
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const age = Date.now() - (statOptional(lock)?.mtimeMs ?? Date.now());
        if (age > LOCK_STALE_MS) rmSync(lock, { force: true });
        else if (Date.now() > deadline) throw new Error(`${lock} is held by another tunnelbyte command`);
        else await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    try {
      return await work();
    } finally {
      rmSync(lock, { force: true });
    }
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
