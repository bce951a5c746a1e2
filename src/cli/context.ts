// What every command gets: the global options resolved once (broker URL, token, fingerprint, output
// mode), the config-dir store, and the two ways to answer (human text or --json).
import { ApiClient, DEFAULT_API_URL } from '../lib/api-client.js';
import { machineFingerprint } from '../lib/fingerprint.js';
import { CliError, EXIT, NO_TOKEN, usageError } from './exit.js';
import { type CliIO, withSpinner } from './io.js';
import { Store, type TokenSource } from './store.js';

export interface GlobalOptions {
  api?: string;
  json?: boolean;
}

export interface ResolvedToken {
  token: string;
  source: TokenSource;
}

const USER_AGENT = 'tunnelbyte-cli/0.1';

function brokerUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw usageError(`not a URL: ${raw} (give --api or TB_API as http(s)://host[:port])`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw usageError(`--api / TB_API must be an http(s) URL, not ${url.protocol}`);
  }
  return raw;
}

export class Context {
  readonly io: CliIO;
  readonly json: boolean;
  readonly apiUrl: string;
  readonly store: Store;

  constructor(io: CliIO, options: GlobalOptions) {
    this.io = io;
    this.json = options.json === true;
    this.apiUrl = brokerUrl(options.api ?? (io.env.TB_API || DEFAULT_API_URL));
    this.store = new Store(io.env);
  }

  /** TB_KEY wins over the cache, so CI can inject a token without touching files. */
  token(): ResolvedToken | undefined {
    const fromEnv = this.io.env.TB_KEY?.trim();
    if (fromEnv) return { token: fromEnv, source: 'TB_KEY' };
    const cached = this.store.readToken();
    return cached ? { token: cached, source: 'cache' } : undefined;
  }

  requireToken(): ResolvedToken {
    const found = this.token();
    if (!found) throw new CliError(NO_TOKEN, EXIT.auth);
    return found;
  }

  fingerprint(): string {
    return machineFingerprint(this.io.env);
  }

  /** A client presenting the token when there is one (public endpoints accept either). */
  client(token: string | undefined = this.token()?.token): ApiClient {
    return new ApiClient({
      baseUrl: this.apiUrl,
      token,
      fingerprint: this.fingerprint(),
      userAgent: USER_AGENT,
    });
  }

  /** A client for bearer endpoints: fails with exit 3 before any request when there is no token. */
  authed(): ApiClient {
    return this.client(this.requireToken().token);
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
