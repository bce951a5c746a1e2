// REDIS_URL in its three forms. `redis://` and `rediss://` go to ioredis as they are. The Sentinel and
// Cluster forms name several hosts in one authority, which the WHATWG URL parser rejects, so they are read
// here by hand:
//   redis+sentinel://[:password@]host[:port][,host[:port]...]/mastername[?sentinelPassword=...&tls=1&db=N]
//   redis+cluster://[:password@]host[:port][,host[:port]...][?tls=1]
// Errors are one line and never repeat the password.

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export type RedisTarget =
  | { readonly mode: 'single'; readonly url: string }
  | {
      readonly mode: 'sentinel';
      readonly sentinels: HostPort[];
      readonly masterName: string;
      readonly password: string | undefined;
      readonly sentinelPassword: string | undefined;
      readonly tls: boolean;
      readonly db: number;
    }
  | {
      readonly mode: 'cluster';
      readonly nodes: HostPort[];
      readonly password: string | undefined;
      readonly tls: boolean;
    };

export type RedisMode = RedisTarget['mode'];

export class RedisUrlError extends Error {
  override name = 'RedisUrlError';
}

const DEFAULT_PORT = { sentinel: 26379, cluster: 6379 } as const;
const QUERY_KEYS = { sentinel: ['sentinelPassword', 'tls', 'db'], cluster: ['tls'] } as const;
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)$/;

/** Parses REDIS_URL; throws RedisUrlError with a one-line reason. */
export function parseRedisUrl(text: string): RedisTarget {
  const scheme = /^([a-z+]+):\/\//.exec(text)?.[1];
  if (scheme === 'redis' || scheme === 'rediss') {
    if (!URL.canParse(text)) throw new RedisUrlError(`not a valid ${scheme}:// URL`);
    return { mode: 'single', url: text };
  }
  if (scheme !== 'redis+sentinel' && scheme !== 'redis+cluster') {
    throw new RedisUrlError('must start with redis://, rediss://, redis+sentinel:// or redis+cluster://');
  }
  const mode = scheme === 'redis+sentinel' ? 'sentinel' : 'cluster';
  let rest = text.slice(scheme.length + 3);

  const queryAt = rest.indexOf('?');
  const query = queryAt < 0 ? '' : rest.slice(queryAt + 1);
  if (queryAt >= 0) rest = rest.slice(0, queryAt);
  const slashAt = rest.indexOf('/');
  const path = slashAt < 0 ? '' : rest.slice(slashAt + 1);
  let authority = slashAt < 0 ? rest : rest.slice(0, slashAt);

  let password: string | undefined;
  const atAt = authority.lastIndexOf('@');
  if (atAt >= 0) {
    const userinfo = authority.slice(0, atAt);
    authority = authority.slice(atAt + 1);
    if (!userinfo.startsWith(':')) throw new RedisUrlError(`${scheme}:// takes a password as ':password@'`);
    password = decode(userinfo.slice(1), 'the password');
    if (password === '') throw new RedisUrlError('the password after ":" is empty');
  }

  const hosts = authority.split(',').map((part) => hostPort(part, DEFAULT_PORT[mode]));
  const params = queryParams(query, QUERY_KEYS[mode], scheme);
  const tls = flag(params.get('tls'));

  if (mode === 'cluster') {
    if (path !== '') throw new RedisUrlError('redis+cluster:// takes no path (a cluster has no databases)');
    return { mode, nodes: hosts, password, tls };
  }
  const masterName = decode(path, 'the master name');
  if (masterName === '' || masterName.includes('/')) {
    throw new RedisUrlError(
      'redis+sentinel:// needs the master name as its path: redis+sentinel://host:26379/mymaster',
    );
  }
  const dbText = params.get('db') ?? '0';
  if (!/^\d{1,5}$/.test(dbText)) throw new RedisUrlError('db must be a database number');
  const sentinelPassword = params.get('sentinelPassword');
  return { mode, sentinels: hosts, masterName, password, sentinelPassword, tls, db: Number(dbText) };
}

function hostPort(part: string, defaultPort: number): HostPort {
  if (part === '') throw new RedisUrlError('a host is missing (empty entry in the host list)');
  const match = /^(.*?)(?::(\d+))?$/.exec(part)!;
  const host = match[1]!;
  if (!HOST.test(host)) throw new RedisUrlError(`'${part}' is not host[:port] (IPv6 hosts go in brackets)`);
  const port = match[2] === undefined ? defaultPort : Number(match[2]);
  if (!(port >= 1 && port <= 65535)) throw new RedisUrlError(`port ${match[2]} is out of range`);
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port };
}

function queryParams(query: string, allowed: readonly string[], scheme: string): Map<string, string> {
  const params = new Map<string, string>();
  if (query === '') return params;
  for (const pair of query.split('&')) {
    const equals = pair.indexOf('=');
    const key = equals < 0 ? pair : pair.slice(0, equals);
    if (!allowed.includes(key)) {
      throw new RedisUrlError(`${scheme}:// does not take '${key}' (it takes ${allowed.join(', ')})`);
    }
    if (params.has(key)) throw new RedisUrlError(`'${key}' is given twice`);
    params.set(key, decode(equals < 0 ? '' : pair.slice(equals + 1), `'${key}'`));
  }
  return params;
}

function flag(value: string | undefined): boolean {
  if (value === undefined || value === '0' || value === 'false') return false;
  if (value === '1' || value === 'true') return true;
  throw new RedisUrlError('tls must be 1 or 0');
}

// Percent-decoding; the value itself never goes into the message (it may be a password).
function decode(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new RedisUrlError(`${what} is not valid percent-encoding`);
  }
}
