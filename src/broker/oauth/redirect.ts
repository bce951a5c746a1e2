// Redirect URIs (RFC 9700 §2.1, RFC 8252 §7.3 and §8.3). Registration accepts https URLs, and http only
// on loopback; matching is exact string comparison, except that a loopback IP literal redirect (a
// native app's listener) matches on any port, because the app picks a free port when it runs.

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);
const MAX_LENGTH = 2000;

/** Why `uri` cannot be registered, or undefined when it can. */
export function redirectUriProblem(uri: string): string | undefined {
  if (uri.length > MAX_LENGTH) return `at most ${MAX_LENGTH} characters`;
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return 'not an absolute URL';
  }
  if (uri.includes('#')) return 'a redirect URI has no fragment (RFC 6749 §3.1.2)';
  if (url.username || url.password) return 'a redirect URI carries no credentials';
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname)) return undefined;
  return 'https, or http on a loopback address (127.0.0.1, [::1], localhost)';
}

const LOOPBACK_IP_URL = /^http:\/\/(127\.0\.0\.1|\[::1\])(?::\d{1,5})?([/?].*)?$/;

/** The URI text with its port cut out, when it is an http URL on a loopback IP literal; else undefined. */
function portless(uri: string): string | undefined {
  const match = LOOPBACK_IP_URL.exec(uri);
  return match ? `http://${match[1]}${match[2] ?? ''}` : undefined;
}

/**
 * True when `presented` is one of `registered`, character for character (ports aside on loopback IPs).
 * It must be a URL too: a loopback one with a port past 65535 would match by its text alone.
 */
export function redirectUriMatches(registered: readonly string[], presented: string): boolean {
  if (!URL.canParse(presented)) return false;
  if (registered.includes(presented)) return true;
  const loose = portless(presented);
  return loose !== undefined && registered.some((r) => portless(r) === loose);
}

/** `uri` with the query parameters added (RFC 6749 §4.1.2: the URI's own query is kept). */
export function withQuery(uri: string, params: Record<string, string | undefined>): string {
  const url = new URL(uri);
  for (const [name, value] of Object.entries(params))
    if (value !== undefined) url.searchParams.append(name, value);
  return url.href;
}
