// What every command gets: the global options resolved once (broker URL, token, fingerprint, output
// mode), the config-dir store, and the two ways to answer (human text or --json).
import {
  ApiClient,
  DEFAULT_API_URL,
  DEFAULT_TIMEOUT_MS,
  type ApiClientOptions,
  type RequestLimits,
} from '../lib/api-client.js';
import { machineFingerprint } from '../lib/fingerprint.js';
import { WAIT_SECONDS_RANGE, waitSeconds } from './args.js';
import { CliError, EXIT, NO_TOKEN, usageError, type StopSignal } from './exit.js';
import { type CliIO, withSpinner } from './io.js';
import { Store, type TokenSource } from './store.js';
import { renewCachedToken } from './weblogin.js';

export interface GlobalOptions {
  api?: string;
  json?: boolean;
  /** Seconds to wait for each answer of the broker (commander parses --timeout). */
  timeout?: number;
}

export interface ResolvedToken {
  token: string;
  source: TokenSource;
}

/** A command's body: the Context first, then commander's positionals and options. */
export type Action<A extends unknown[]> = (ctx: Context, ...args: A) => Promise<void>;
/** Turns an Action into a commander action handler (program.ts builds the one the commands get). */
export type Act = <A extends unknown[]>(fn: Action<A>) => (...args: unknown[]) => Promise<void>;

const USER_AGENT = 'tunnelbyte-cli/0.1';
/** Visible ASCII only: what a bearer token may hold, and all an HTTP header can carry as given. */
const SENDABLE_TOKEN = /^[\x21-\x7e]+$/;

function brokerUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // Never echoed, here or below: a password may be in it.
    throw usageError('--api / TB_API is not a URL (give it as http(s)://host[:port])');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw usageError(`--api / TB_API must be an http(s) URL, not ${url.protocol}`);
  }
  if (url.username !== '' || url.password !== '')
    throw usageError('--api / TB_API must not hold a user or password: sign in with `tunnelbyte login`');
  return raw;
}

function timeoutMs(option: number | undefined, env: string | undefined): number {
  if (option !== undefined) return option * 1000;
  if (env === undefined || env === '') return DEFAULT_TIMEOUT_MS;
  const seconds = waitSeconds(env);
  if (seconds === undefined) throw usageError(`TB_TIMEOUT must be ${WAIT_SECONDS_RANGE}, not ${env}`);
  return seconds * 1000;
}

export class Context {
  readonly io: CliIO;
  readonly json: boolean;
  readonly apiUrl: string;
  readonly store: Store;
  readonly timeoutMs: number;

  constructor(io: CliIO, options: GlobalOptions) {
    this.io = io;
    this.json = options.json === true;
    this.apiUrl = brokerUrl(options.api ?? (io.env.TB_API || DEFAULT_API_URL));
    this.timeoutMs = timeoutMs(options.timeout, io.env.TB_TIMEOUT);
    this.store = new Store(io.env);
  }

  /** True once Ctrl-C was pressed (or SIGTERM came, where the command catches it). */
  get interrupted(): boolean {
    return this.io.interrupt?.aborted === true;
  }

  /** Which signal stopped the command, once one did. */
  get stoppedBy(): StopSignal | undefined {
    if (!this.interrupted) return undefined;
    return this.io.interrupt?.reason === 'SIGTERM' ? 'SIGTERM' : 'SIGINT';
  }

  /**
   * TB_KEY wins over the cache, so CI can inject a token without touching files. One that no HTTP header can
   * carry is refused here, naming where it came from (fetch would refuse it as if the broker were down).
   */
  token(): ResolvedToken | undefined {
    const fromEnv = this.io.env.TB_KEY?.trim();
    if (fromEnv) {
      if (!SENDABLE_TOKEN.test(fromEnv)) {
        throw new CliError(
          'TB_KEY holds characters no token has (spaces, line breaks, control or non-ASCII characters): set it to a tb_ token',
          EXIT.auth,
        );
      }
      return { token: fromEnv, source: 'TB_KEY' };
    }
    const cached = this.store.readToken();
    if (cached === undefined) return undefined;
    if (!SENDABLE_TOKEN.test(cached)) {
      throw new CliError(
        `the cached token in ${this.store.tokenPath} is damaged: replace it with \`tunnelbyte auth set-key\`, \`tunnelbyte login\` or \`tunnelbyte signup --force\``,
        EXIT.auth,
      );
    }
    return { token: cached, source: 'cache' };
  }

  /** A token is cached, but damaged: no request can carry it (TB_KEY, when set, is used instead). */
  cachedTokenDamaged(): boolean {
    if (this.io.env.TB_KEY?.trim()) return false;
    const cached = this.store.readToken();
    return cached !== undefined && !SENDABLE_TOKEN.test(cached);
  }

  requireToken(): ResolvedToken {
    const found = this.token();
    if (!found) throw new CliError(NO_TOKEN, EXIT.auth);
    return found;
  }

  /** Before a command spends what only the config dir keeps (a token, a session's key): it must take files. */
  requireWritableConfig(): void {
    const problem = this.store.writeProblem();
    if (problem === undefined) return;
    const named = this.io.env.TB_CONFIG_DIR ? ' (TB_CONFIG_DIR)' : '';
    throw usageError(`cannot write in the config dir ${this.store.dir}${named}: ${problem}`);
  }

  /** Each request's limits: its wait for an answer (--timeout) and Ctrl-C. */
  get requestLimits(): RequestLimits {
    return { signal: this.io.interrupt, timeoutMs: this.timeoutMs };
  }

  fingerprint(): string {
    return machineFingerprint(this.io.env);
  }

  /**
   * A client presenting the token when there is one (public endpoints accept either); with null, none (signup
   * and login, which make one: a cached token, damaged or not, has no say in them). Ctrl-C aborts its
   * requests, unless `interruptible` is false: for a request whose result must be known to be undone.
   */
  client(
    token: string | null | undefined = this.token()?.token,
    {
      interruptible = true,
      renewal,
    }: { interruptible?: boolean; renewal?: Pick<ApiClientOptions, 'refresh' | 'tokenExpiresAt'> } = {},
  ): ApiClient {
    return new ApiClient({
      baseUrl: this.apiUrl,
      token: token ?? undefined,
      fingerprint: this.fingerprint(),
      userAgent: USER_AGENT,
      timeoutMs: this.timeoutMs,
      ...(interruptible && this.io.interrupt ? { signal: this.io.interrupt } : {}),
      ...renewal,
    });
  }

  /**
   * A client for bearer endpoints: fails with exit 3 before any request when there is no token. A cached
   * token from `login --web` is renewed when it expires or is refused, so the user signs in once.
   */
  authed(): ApiClient {
    const { token, source } = this.requireToken();
    const record = source === 'cache' ? this.store.readOAuth() : undefined;
    if (!record) return this.client(token);
    return this.client(token, {
      renewal: {
        refresh: () => renewCachedToken(this.store, token, this.requestLimits),
        tokenExpiresAt: record.expires_at,
      },
    });
  }

  spin<T>(label: string, work: Promise<T>): Promise<T> {
    return withSpinner(this.io, label, work);
  }

  /** Prints the human text, or with --json the value as JSON. */
  print(human: string, value: unknown): void {
    if (this.json) this.io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    else this.io.stdout.write(human);
  }

  /** A note for humans that must not pollute stdout (it goes to stderr, and not at all with --json). */
  note(text: string): void {
    if (!this.json) this.io.stderr.write(text);
  }
}
