// REDIS_URL's four forms (store/redis-url.ts): good ones parse to what ioredis is given, bad ones fail
// with one line that names the problem and never the password, in loadConfig and in the binary alike.
import { spawnSync } from 'node:child_process';
import { loadConfig } from '../../src/broker/config.js';
import { parseRedisUrl } from '../../src/broker/store/redis-url.js';
import { builtProgram } from '../helpers/repo.js';

// What the parser gives when a field is not in the URL.
const sentinel = (fields: object) => ({
  mode: 'sentinel',
  password: undefined,
  sentinelPassword: undefined,
  tls: false,
  db: 0,
  ...fields,
});
const cluster = (fields: object) => ({ mode: 'cluster', password: undefined, tls: false, ...fields });
const hosts = (...list: [string, number][]) => list.map(([host, port]) => ({ host, port }));

const GOOD: [string, string, unknown][] = [
  ['1', 'redis://127.0.0.1:6379', { mode: 'single', url: 'redis://127.0.0.1:6379' }],
  ['2', 'rediss://:pw@cache.example:6380/2', { mode: 'single', url: 'rediss://:pw@cache.example:6380/2' }],
  [
    '3',
    'redis+sentinel://10.0.0.1:26379,10.0.0.2:26380,sentinel-3/mymaster',
    sentinel({
      sentinels: hosts(['10.0.0.1', 26379], ['10.0.0.2', 26380], ['sentinel-3', 26379]),
      masterName: 'mymaster',
    }),
  ],
  [
    '4',
    'redis+sentinel://:p%40ss%2Cw@[::1]:26379/tb-master?sentinelPassword=s%26p&tls=1&db=3',
    sentinel({
      sentinels: hosts(['::1', 26379]),
      masterName: 'tb-master',
      password: 'p@ss,w',
      sentinelPassword: 's&p',
      tls: true,
      db: 3,
    }),
  ],
  [
    '5',
    'redis+cluster://:secret@node-1:7000,node-2:7001,node-3',
    cluster({ nodes: hosts(['node-1', 7000], ['node-2', 7001], ['node-3', 6379]), password: 'secret' }),
  ],
  ['6', 'redis+cluster://10.0.0.5:7000/?tls=true', cluster({ nodes: hosts(['10.0.0.5', 7000]), tls: true })],
];

const BAD: [string, string, RegExp][] = [
  ['1', 'http://127.0.0.1:6379', /must start with redis:\/\//],
  ['2', '127.0.0.1:6379', /must start with/],
  ['3', 'redis://exa mple', /not a valid redis:\/\/ URL/],
  ['4', 'redis+sentinel://10.0.0.1:26379', /needs the master name/],
  ['5', 'redis+sentinel://10.0.0.1:26379/', /needs the master name/],
  ['6', 'redis+sentinel://10.0.0.1:26379/a/b', /needs the master name/],
  ['7', 'redis+sentinel://10.0.0.1:26379,/m', /a host is missing/],
  ['8', 'redis+sentinel:///m', /a host is missing/],
  ['9', 'redis+sentinel://10.0.0.1:99999/m', /port 99999 is out of range/],
  ['10', 'redis+sentinel://10.0.0.1:0/m', /port 0 is out of range/],
  ['11', 'redis+sentinel://::1:26379/m', /is not host\[:port\]/],
  ['12', 'redis+sentinel://host:port/m', /is not host\[:port\]/],
  ['13', 'redis+sentinel://user:hunter2@h/m', /takes a password as ':password@'/],
  ['14', 'redis+sentinel://:@h/m', /password after ":" is empty/],
  ['15', 'redis+sentinel://h/m?db=x', /db must be a database number/],
  ['16', 'redis+sentinel://h/m?tls=yes', /tls must be 1 or 0/],
  ['17', 'redis+sentinel://h/m?password=x', /does not take 'password'/],
  ['18', 'redis+sentinel://h/m?db=1&db=2', /'db' is given twice/],
  ['19', 'redis+cluster://h:7000/0', /takes no path/],
  ['20', 'redis+cluster://h:7000?db=1', /does not take 'db'/],
  ['21', 'redis+cluster://:hunter2%zz@h:7000', /password is not valid percent-encoding/],
  ['22', 'redis+sentinel://h/%E0%A4%A', /master name is not valid percent-encoding/],
];

describe('REDIS_URL', () => {
  test.each(GOOD)('good %s: %s', (_, url, expected) => {
    expect(parseRedisUrl(url)).toEqual(expected);
  });

  test.each(BAD)('bad %s: %s', (_, url, reason) => {
    expect(() => parseRedisUrl(url)).toThrow(reason);
    let message = '';
    try {
      loadConfig({ REDIS_URL: url });
    } catch (err) {
      message = (err as Error).message;
    }
    // One line, naming the variable, never the password.
    expect(message).toMatch(/^invalid broker environment: REDIS_URL: [^\n]+$/);
    expect(message).not.toContain('hunter2');
  });

  test('WAIT defaults: 1 replica with Sentinel or Cluster, none with one Redis; both overridable', () => {
    const wait = (env: Record<string, string>) => loadConfig(env).redisWait;
    expect(wait({ REDIS_URL: 'redis://h' })).toEqual({ replicas: 0, timeoutMs: 1000 });
    expect(wait({ REDIS_URL: 'redis+sentinel://h/m' })).toEqual({ replicas: 1, timeoutMs: 1000 });
    expect(wait({ REDIS_URL: 'redis+cluster://h' })).toEqual({ replicas: 1, timeoutMs: 1000 });
    expect(wait({ REDIS_URL: 'redis+cluster://h', REDIS_WAIT_REPLICAS: '0' })).toEqual({
      replicas: 0,
      timeoutMs: 1000,
    });
    expect(wait({ REDIS_URL: 'redis://h', REDIS_WAIT_REPLICAS: '2', REDIS_WAIT_TIMEOUT_MS: '250' })).toEqual({
      replicas: 2,
      timeoutMs: 250,
    });
    expect(() => loadConfig({ REDIS_WAIT_TIMEOUT_MS: '0' })).toThrow(/REDIS_WAIT_TIMEOUT_MS/);
    expect(() => loadConfig({ REDIS_WAIT_REPLICAS: '-1' })).toThrow(/REDIS_WAIT_REPLICAS/);
  });

  test('the binary (serve and admin) reports a bad one in one line and exits 1', () => {
    const bin = builtProgram('src/broker/main.js');
    for (const args of [['serve'], ['admin', 'region', 'add', 'x', '--name', 'X', '--country', 'DE']]) {
      const run = spawnSync(process.execPath, [bin, ...args], {
        env: { ...process.env, REDIS_URL: 'redis+sentinel://:hunter2@h:26379' },
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(run.status).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toBe(
        'tunnelbyte-broker: invalid broker environment: REDIS_URL: redis+sentinel:// needs the master name as its path: redis+sentinel://host:26379/mymaster\n',
      );
    }
  });
});
