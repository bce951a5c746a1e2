// How fetch refuses a URL it will never request, whatever the network does: a port the Fetch standard
// blocks (1, 6000, 10080...), a scheme it cannot fetch, or no request at all made of it. That is a setting
// to fix, not an outage to retry; a name that does not resolve may resolve later, and is not one.
const REFUSALS = new Set(['bad port', 'unknown scheme']);
const NO_REQUEST = /^Request cannot be constructed from a URL/;

/** Why fetch refused the URL itself, without any network I/O; undefined for every other failure. */
export function fetchRefusal(error: unknown): string | undefined {
  // Aborts and timeouts are DOMExceptions; by name, as fetch's TypeError may come from another realm.
  if ((error as Error | undefined)?.name !== 'TypeError') return undefined;
  const { cause, message } = error as Error & { cause?: { code?: string; message?: string } };
  // Without a cause, undici says it could make no Request of the URL (in a message that echoes it, credentials
  // and all), or refuses something else, such as a header value (a token with a newline): no fault of the URL.
  if (cause === undefined) return NO_REQUEST.test(message) ? 'not a URL fetch can request' : undefined;
  if (cause.code === 'ERR_INVALID_URL') return 'not a URL fetch can request';
  if (cause.code === undefined && REFUSALS.has(cause.message ?? ''))
    return `fetch refuses this URL (${cause.message})`;
  return undefined;
}
