// Exit codes and the one mapping from any failure to ONE line on stderr saying what to do next.
// Documented in src/cli/README.md; scripts depend on them.
import { ApiError, NetworkError, RequestAborted } from '../lib/api-client.js';
import { FingerprintError } from '../lib/fingerprint.js';
import { USAGE_EXIT_CODE } from '../lib/usage.js';

export const EXIT = {
  ok: 0,
  /** The API refused (400, 404, 409, ...) or something else failed. */
  error: 1,
  /** Bad arguments or options: nothing was sent. */
  usage: USAGE_EXIT_CODE,
  /** No token, an invalid one (401), or one lacking a scope or tier (403). */
  auth: 3,
  /** 429: request rate or tier quota. */
  limited: 4,
  /** 503, the broker cannot be reached, or it did not answer within --timeout. */
  unavailable: 5,
  /** Ctrl-C (128 + SIGINT, as shells report it). */
  interrupted: 130,
  /** SIGTERM (128 + 15), where a command in the foreground catches it to clean up. */
  terminated: 143,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure the CLI detected itself, with its exit code and the line to print. */
export class CliError extends Error {
  override name = 'CliError';
  readonly exitCode: ExitCode;

  constructor(message: string, exitCode: ExitCode = EXIT.error) {
    super(message);
    this.exitCode = exitCode;
  }
}

export const usageError = (message: string) => new CliError(message, EXIT.usage);

/** The signals a command stops on and cleans up after (io.ts). */
export type StopSignal = 'SIGINT' | 'SIGTERM';

/** Ctrl-C (or SIGTERM); `detail` says what became of the work in flight. */
export function interrupted(detail?: string, by: StopSignal = 'SIGINT'): CliError {
  const word = by === 'SIGTERM' ? 'terminated' : 'interrupted';
  return new CliError(
    detail ? `${word}; ${detail}` : word,
    by === 'SIGTERM' ? EXIT.terminated : EXIT.interrupted,
  );
}

export const NO_TOKEN = 'no token: run `tunnelbyte signup` or `tunnelbyte login` (or set TB_KEY)';

export interface Described {
  line: string;
  exitCode: ExitCode;
}

function describeApiError(err: ApiError): Described {
  // The broker's sentences end in a full stop; a retry hint after one goes after a `;` instead.
  const retry = err.retryAfter === undefined ? '' : `; retry in ${err.retryAfter} s`;
  const said = retry ? err.message.replace(/\.$/, '') : err.message;
  switch (err.error) {
    case 'unauthorized':
      return {
        line: `unauthorized: ${err.message} Run \`tunnelbyte signup\` or \`tunnelbyte login\`.`,
        exitCode: EXIT.auth,
      };
    case 'forbidden':
      return {
        line: `forbidden: this token lacks the scope ${err.requiredScope ?? '(unknown)'}; use a key that has it (\`tunnelbyte auth keys create\`)`,
        exitCode: EXIT.auth,
      };
    case 'tier_required':
      return {
        line: `${err.message} It needs the ${err.requiredTier ?? 'a higher'} tier: run \`tunnelbyte upgrade\`.`,
        exitCode: EXIT.auth,
      };
    case 'rate_limited':
      return { line: `rate limited: ${said}${retry}`, exitCode: EXIT.limited };
    case 'quota_exhausted':
      return {
        line: `quota exhausted: ${said}${retry}; see \`tunnelbyte usage\` or \`tunnelbyte upgrade\``,
        exitCode: EXIT.limited,
      };
    case 'no_capacity':
      return {
        line: `no capacity: ${err.message} Try another region: \`tunnelbyte regions\`.`,
        exitCode: EXIT.unavailable,
      };
    case 'unavailable':
      return { line: `unavailable: ${said}${retry}`, exitCode: EXIT.unavailable };
    case 'not_found':
      return { line: `not found: ${err.message} See \`tunnelbyte sessions\`.`, exitCode: EXIT.error };
    case 'invalid_request': {
      // The field is named once: the broker's message may start with it too ("id: a session id").
      const field = err.field ? ` (${err.field})` : '';
      const prefix = `${err.field}: `;
      const message =
        err.field && err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
      return { line: `invalid request${field}: ${message}`, exitCode: EXIT.error };
    }
    default: {
      const exitCode = err.status === 429 ? EXIT.limited : err.status >= 500 ? EXIT.unavailable : EXIT.error;
      const id = err.requestId ? ` (request id ${err.requestId})` : '';
      return { line: `${err.error} (HTTP ${err.status}): ${err.message}${id}`, exitCode };
    }
  }
}

export function describeError(err: unknown): Described {
  if (err instanceof CliError) return { line: err.message, exitCode: err.exitCode };
  if (err instanceof ApiError) return describeApiError(err);
  if (err instanceof RequestAborted) return describeError(interrupted());
  if (err instanceof NetworkError && err.refused !== undefined) {
    // Without its query or fragment, which may carry a key.
    return { line: `--api / TB_API ${err.url.split(/[?#]/)[0]}: ${err.refused}`, exitCode: EXIT.usage };
  }
  if (err instanceof NetworkError && err.timeoutMs !== undefined) {
    return {
      line: `timed out: the broker at ${err.url} did not answer within ${err.timeoutMs / 1000} s (--timeout / TB_TIMEOUT)`,
      exitCode: EXIT.unavailable,
    };
  }
  if (err instanceof NetworkError) {
    return {
      line: `cannot reach the broker at ${err.url}: check --api / TB_API and your connection`,
      exitCode: EXIT.unavailable,
    };
  }
  if (err instanceof FingerprintError) return { line: err.message, exitCode: EXIT.usage };
  const message = err instanceof Error ? err.message : String(err);
  return { line: `error: ${message.split('\n')[0]}`, exitCode: EXIT.error };
}
