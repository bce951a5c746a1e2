// connect, sessions, status, disconnect, usage against a real broker. Nodes are registered over HTTP
// the way tunnelbyte-node does it (admin region → node token → register → heartbeat).
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, machine, startCliBroker, type CliBroker, type Machine } from './harness.js';

let b: CliBroker;
beforeAll(async () => {
  b = await startCliBroker();
});
afterAll(async () => b.close());

async function signedUp(): Promise<Machine> {
  const m = machine(b.url);
  expect((await cli(['signup'], m.env)).code).toBe(0);
  return m;
}

describe('local checks before any session is spent', () => {
  test('1. --up without wg-quick on PATH → exit 1, one line saying what to install', async () => {
    const m = await signedUp();
    const res = await cli(['connect', 'eu-west', '--up'], {
      ...m.env,
      PATH: mkdtempSync(join(tmpdir(), 'tb-nopath-')),
    });
    expect(res.code).toBe(1);
    expect(res.stderr).toBe(
      'tunnelbyte: wg-quick not found: install wireguard-tools, or import the file into a WireGuard app\n',
    );
  });

  test('2. --up with --out - or an --out name wg-quick cannot use → exit 2', async () => {
    const m = await signedUp();
    const env = { ...m.env, PATH: process.env.PATH ?? '' };
    expect((await cli(['connect', 'eu-west', '--up', '--out', '-'], env)).code).toBe(2);
    const long = await cli(
      ['connect', 'eu-west', '--up', '--out', join(m.configDir, 'much-too-long-a-name.conf')],
      env,
    );
    expect(long.code).toBe(2);
    expect(long.stderr).toContain('≤ 15');
  });

  test('3. status and disconnect with no id and none recorded → exit 2', async () => {
    const m = await signedUp();
    for (const verb of ['status', 'disconnect']) {
      const res = await cli([verb], m.env);
      expect(res.code).toBe(2);
      expect(res.stderr).toBe(
        'tunnelbyte: no session id given and none recorded here; see `tunnelbyte sessions`\n',
      );
    }
  });

  test('4. connect with no region and none usable → exit 5, pointing at `tunnelbyte regions`', async () => {
    const m = await signedUp();
    const res = await cli(['connect'], m.env);
    expect(res.code).toBe(5);
    expect(res.stderr).toBe(
      'tunnelbyte: no region has capacity for the free tier now; see `tunnelbyte regions`\n',
    );
    expect(existsSync(join(m.configDir, 'state.json'))).toBe(false);
  });
});
