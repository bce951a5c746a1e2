// signup, token, login, logout, upgrade, auth ... against a real broker on a real Redis.
import { statSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Stripe from 'stripe';
import { freePort } from '../helpers/redis.js';
import { cli, listen, machine, startCliBroker, type CliBroker, type Machine } from './harness.js';

const PAYMENT_LINK = 'https://buy.stripe.test/tb_pro';
const WEBHOOK_SECRET = 'whsec_cli_test_secret';

let b: CliBroker;
beforeAll(async () => {
  b = await startCliBroker({
    STRIPE_PAYMENT_LINK: PAYMENT_LINK,
    STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    STRIPE_SECRET_KEY: 'sk_test_cli',
  });
});
afterAll(async () => b.close());

const TOKEN = /tb_[0-9A-Za-z]{38}/g;
const mode = (path: string) => statSync(path).mode & 0o777;

async function signedUp(): Promise<{ m: Machine; token: string }> {
  const m = machine(b.url);
  const res = await cli(['signup', '--json'], m.env);
  expect(res.code).toBe(0);
  return { m, token: (JSON.parse(res.stdout) as { api_key: string }).api_key };
}

describe('signup and the token cache', () => {
  test('1. signup prints the token once, caches it 0600 in a 0700 dir, and says how to load it', async () => {
    const m = machine(b.url);
    const res = await cli(['signup'], m.env);
    expect(res.code).toBe(0);
    const tokens = res.stdout.match(TOKEN) ?? [];
    expect(tokens).toHaveLength(1);
    expect(res.stdout).toContain('free tier');
    expect(res.stdout).toContain('export TB_KEY=$(tunnelbyte token)');
    // `tunnelbyte token` prints it again, so it is not called "shown once".
    expect(res.stdout).not.toContain('shown once');
    expect(res.stdout).toContain('`tunnelbyte token` prints it again');
    const path = join(m.configDir, 'token');
    expect(readFileSync(path, 'utf8').trim()).toBe(tokens[0]);
    expect(mode(path)).toBe(0o600);
    expect(mode(dirname(path))).toBe(0o700);
  });

  test('2. signup --json: api_key, user.plan free, token_path', async () => {
    const m = machine(b.url);
    const res = await cli(['--json', 'signup'], m.env);
    expect(res.code).toBe(0);
    const body = JSON.parse(res.stdout) as {
      api_key: string;
      user: { id: string; plan: string };
      token_path: string;
    };
    expect(body.api_key).toMatch(/^tb_[0-9A-Za-z]{38}$/);
    expect(body.user.plan).toBe('free');
    expect(body.user.id).toMatch(/^usr_/);
    expect(body.token_path).toBe(join(m.configDir, 'token'));
  });

  test('3. a second signup is refused without --force, accepted with it', async () => {
    const { m, token } = await signedUp();
    const again = await cli(['signup'], m.env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already cached.*--force/);
    expect(again.stderr.trim().split('\n')).toHaveLength(1);
    const forced = await cli(['signup', '--force', '--json'], m.env);
    expect(forced.code).toBe(0);
    expect(JSON.parse(forced.stdout).api_key).not.toBe(token);
  });

  test('4. token prints exactly the cached token; --json names its source', async () => {
    const { m, token } = await signedUp();
    const res = await cli(['token'], m.env);
    expect(res).toEqual({ code: 0, stdout: `${token}\n`, stderr: '' });
    const json = await cli(['token', '--json'], m.env);
    expect(JSON.parse(json.stdout)).toEqual({ token, source: 'cache' });
  });

  test('5. TB_KEY wins over the cache; TB_API is the broker unless --api says otherwise', async () => {
    const { m } = await signedUp();
    const other = await signedUp();
    const env = { ...m.env, TB_KEY: other.token, TB_FINGERPRINT: other.m.fingerprint };
    expect(JSON.parse((await cli(['token', '--json'], env)).stdout)).toEqual({
      token: other.token,
      source: 'TB_KEY',
    });
    const status = await cli(['auth', 'status'], env);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('from TB_KEY');
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const wrongApi = await cli(['regions'], { ...m.env, TB_API: nowhere });
    expect(wrongApi.code).toBe(5);
    const rescued = await cli(['regions', '--api', b.url], { ...m.env, TB_API: nowhere });
    expect(rescued.code).toBe(0);
  });

  test('6. no token: token, usage-type commands and logout exit 3 with what to run', async () => {
    const m = machine(b.url);
    for (const argv of [['token'], ['auth', 'status'], ['logout'], ['sessions'], ['connect', 'eu-west']]) {
      const res = await cli(argv, m.env);
      expect(res.code).toBe(3);
      expect(res.stderr).toBe(
        'tunnelbyte: no token: run `tunnelbyte signup` or `tunnelbyte login` (or set TB_KEY)\n',
      );
      expect(res.stdout).toBe('');
    }
  });

  test('7. a free token presented from another machine is refused (401 → exit 3, hint to sign up)', async () => {
    const { m, token } = await signedUp();
    const elsewhere = machine(b.url, { TB_KEY: token });
    const res = await cli(['auth', 'test'], elsewhere.env);
    expect(res.code).toBe(3);
    expect(res.stderr).toMatch(
      /^tunnelbyte: unauthorized: .*Run `tunnelbyte signup` or `tunnelbyte login`\.\n$/,
    );
    expect(res.stderr).not.toContain(token);
    expect((await cli(['auth', 'test'], m.env)).code).toBe(0);
  });

  test('7b. a token no HTTP header can carry (TB_KEY with a line break, a damaged cache) → exit 3 saying which, not "cannot reach the broker"', async () => {
    const { m, token } = await signedUp();
    const broken = `${token.slice(0, 10)}\n${token.slice(10)}`;
    const fromEnv = await cli(['sessions'], { ...m.env, TB_KEY: broken });
    expect([fromEnv.code, fromEnv.stderr]).toEqual([
      3,
      'tunnelbyte: TB_KEY holds characters no token has (spaces, line breaks, control or non-ASCII characters): set it to a tb_ token\n',
    ]);
    writeFileSync(join(m.configDir, 'token'), Buffer.from([0x74, 0x62, 0x5f, 0xff, 0x00, 0x07, 0x0a]));
    for (const argv of [['sessions'], ['regions'], ['token']]) {
      const res = await cli(argv, m.env);
      expect([argv, res.code, res.stderr, res.stdout]).toEqual([
        argv,
        3,
        `tunnelbyte: the cached token in ${join(m.configDir, 'token')} is damaged: replace it with \`tunnelbyte auth set-key\`, \`tunnelbyte login\` or \`tunnelbyte signup --force\`\n`,
        '',
      ]);
    }
    expect((await cli(['auth', 'set-key', token], m.env)).code).toBe(0);
    expect((await cli(['sessions'], m.env)).code).toBe(0);
  });

  test('7c. the ways out that 7b names work with a damaged cache: signup --force and login replace it, logout forgets it', async () => {
    const damage = (m: { configDir: string }) =>
      writeFileSync(join(m.configDir, 'token'), Buffer.from([0x74, 0x62, 0x5f, 0xff, 0x00, 0x07, 0x0a]));
    const { m } = await signedUp();
    damage(m);
    const forced = await cli(['signup', '--force'], m.env);
    expect([forced.code, forced.stderr]).toEqual([0, '']);
    expect((await cli(['sessions'], m.env)).code).toBe(0);

    const email = `damaged-${Date.now()}@example.test`;
    const up = await cli(['upgrade', '--email', email, '--password-stdin', '--json'], m.env, {
      stdin: 'correct horse battery\n',
    });
    expect(up.code).toBe(0);
    await paid(referenceOf(up.stdout)); // login is for paid accounts
    damage(m);
    const login = await cli(['login', '--email', email, '--password-stdin'], m.env, {
      stdin: 'correct horse battery\n',
    });
    expect([login.code, login.stderr]).toEqual([0, '']);
    expect((await cli(['sessions'], m.env)).code).toBe(0);

    damage(m);
    const logout = await cli(['logout'], m.env);
    expect([logout.code, logout.stderr, logout.stdout]).toEqual([
      0,
      '',
      `Logged out: the cached token was damaged and could not be revoked; removed ${join(m.configDir, 'token')}.\n`,
    ]);
    expect((await cli(['token'], m.env)).code).toBe(3); // nothing cached any more
  });

  test('8. a malformed TB_FINGERPRINT is a usage error before any request', async () => {
    const { m } = await signedUp();
    const res = await cli(['auth', 'test'], { ...m.env, TB_FINGERPRINT: 'not-hex' });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('TB_FINGERPRINT');
  });
});

describe('a config dir that cannot take the token', () => {
  const underFile = '/etc/hostname/tunnelbyte';
  const refusal = `tunnelbyte: cannot write in the config dir ${underFile} (TB_CONFIG_DIR): /etc/hostname: not a directory\n`;

  test('1. signup, login and auth set-key are refused before anything is sent: exit 2, one line naming the dir', async () => {
    // The broker's address is a closed port: a request sent would fail with exit 5 instead.
    const m = machine(`http://127.0.0.1:${await freePort()}`, { TB_CONFIG_DIR: underFile });
    const rows: [string[], string?][] = [
      [['signup']],
      [['login', '--email', 'a@example.com', '--password-stdin'], 'password\n'],
      [['auth', 'set-key', `tb_${'a'.repeat(38)}`]],
    ];
    for (const [argv, stdin] of rows) {
      const res = await cli(argv, m.env, { stdin });
      expect([argv, res.code, res.stderr, res.stdout]).toEqual([argv, 2, refusal, '']);
    }
  });

  test('2. a token the dir still refuses once the account is made (root passes the check on /proc) is shown, not lost: exit 1, the way to cache it', async () => {
    const m = machine(b.url, { TB_CONFIG_DIR: '/proc' });
    const res = await cli(['signup'], m.env);
    expect(res.code).toBe(1);
    const [token] = res.stdout.match(TOKEN) ?? [];
    expect(token).toBeDefined();
    expect(res.stdout).not.toContain('cached in');
    expect(res.stderr).toBe(
      'tunnelbyte: cannot write /proc/token: no such file or directory; the token above is not cached: `tunnelbyte auth set-key` with a config dir that can take it\n',
    );
    const other = machine(b.url, { TB_FINGERPRINT: m.fingerprint });
    expect((await cli(['auth', 'set-key', token!], other.env)).code).toBe(0);
    expect((await cli(['usage'], other.env)).code).toBe(0);
  });
});

describe('auth', () => {
  test('1. auth status shows the token masked, never whole; --json likewise', async () => {
    const { m, token } = await signedUp();
    const res = await cli(['auth', 'status'], m.env);
    expect(res.code).toBe(0);
    expect(res.stdout).not.toContain(token);
    expect(res.stdout).toContain(`tb_***…${token.slice(-4)}`);
    expect(res.stdout).toMatch(/permissions:\s+.*tunnels:write/);
    const json = await cli(['auth', 'status', '--json'], m.env);
    expect(json.stdout).not.toContain(token);
    const body = JSON.parse(json.stdout) as { id: string; permissions: string[]; source: string };
    expect(body.id).toMatch(/^key_/);
    expect(body.permissions).toContain('keys:manage');
    expect(body.source).toBe('cache');
  });

  test('2. auth test: valid; with a held scope granted; with an admin scope 403 → exit 3 naming it', async () => {
    const { m } = await signedUp();
    const ok = await cli(['auth', 'test', '--scope', 'tunnels:write'], m.env);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^Token valid: free tier, user usr_\S+; scope tunnels:write granted\.\n$/);
    const json = JSON.parse((await cli(['auth', 'test', '--json'], m.env)).stdout) as {
      valid: boolean;
      plan: string;
    };
    expect(json).toMatchObject({ valid: true, plan: 'free' });
    const denied = await cli(['auth', 'test', '--scope', 'admin:write', '--json'], m.env);
    expect(denied.code).toBe(3);
    expect(denied.stderr).toContain('lacks the scope admin:write');
    expect(JSON.parse(denied.stdout)).toMatchObject({
      status: 403,
      error: 'forbidden',
      required_scope: 'admin:write',
    });
  });

  test('3. auth set-key caches a token (0600) without printing it; a non-token is exit 2', async () => {
    const { token } = await signedUp();
    const m = machine(b.url);
    const bad = await cli(['auth', 'set-key', 'hello'], m.env);
    expect(bad.code).toBe(2);
    const res = await cli(['auth', 'set-key', token], m.env);
    expect(res.code).toBe(0);
    expect(res.stdout).not.toContain(token);
    expect(readFileSync(join(m.configDir, 'token'), 'utf8').trim()).toBe(token);
    expect(mode(join(m.configDir, 'token'))).toBe(0o600);
  });

  test('4. keys create shows the key once; list masks it; the new key works; revoke kills it', async () => {
    const { m } = await signedUp();
    const created = await cli(
      [
        'auth',
        'keys',
        'create',
        '--name',
        'ci',
        '--permission',
        'tunnels:read',
        'account:read',
        '--expires-in',
        '3600',
      ],
      m.env,
    );
    expect(created.code).toBe(0);
    const shown = created.stdout.match(TOKEN) ?? [];
    expect(shown).toHaveLength(1);
    const key = shown[0] as string;
    const id = /Created (key_\S+)/.exec(created.stdout)?.[1] as string;
    expect(id).toBeDefined();

    const list = await cli(['auth', 'keys', 'list'], m.env);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^ID\s+NAME\s+KEY\s+EXPIRES\s+LAST USED\s+PERMISSIONS\n/);
    expect(list.stdout).toContain(id);
    expect(list.stdout).not.toContain(key);
    const listJson = JSON.parse((await cli(['auth', 'keys', 'list', '--json'], m.env)).stdout) as {
      keys: { id: string; permissions: string[]; expires_at: string | null }[];
    };
    const entry = listJson.keys.find((k) => k.id === id);
    expect(entry?.permissions).toEqual(['tunnels:read', 'account:read']);
    expect(entry?.expires_at).not.toBeNull();

    const asKey = { ...m.env, TB_KEY: key };
    const scoped = await cli(['auth', 'test', '--scope', 'tunnels:write'], asKey);
    expect(scoped.code).toBe(3);
    expect(scoped.stderr).toContain('tunnels:write');

    const revoked = await cli(['auth', 'keys', 'revoke', id], m.env);
    expect(revoked).toMatchObject({ code: 0, stdout: `Revoked ${id}.\n` });
    const after = await cli(['auth', 'test'], asKey);
    expect(after.code).toBe(3);
  });

  test('5. keys: a permission the creator lacks → 403 exit 3; unknown key id → 404 exit 1; bad args → exit 2', async () => {
    const { m } = await signedUp();
    const above = await cli(['auth', 'keys', 'create', '--name', 'x', '--permission', 'admin:read'], m.env);
    expect(above.code).toBe(3);
    const missing = await cli(['auth', 'keys', 'revoke', 'key_doesnotexist'], m.env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^tunnelbyte: not found: .* See `tunnelbyte auth keys list`\.\n$/);
    for (const argv of [
      ['auth', 'keys', 'create', '--name', 'x'],
      ['auth', 'keys', 'create', '--permission', 'tunnels:read'],
      ['auth', 'keys', 'create', '--name', 'x', '--permission', 'tunnels:read', '--expires-in', 'soon'],
      ['auth', 'keys', 'revoke'],
      ['auth', 'set-key'],
    ]) {
      const res = await cli(argv, m.env);
      expect(res.code).toBe(2);
      expect(res.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});

/** Stripe confirms the payment: a signed checkout.session.completed, as Stripe sends it. */
async function paid(clientReference: string): Promise<void> {
  const payload = JSON.stringify({
    id: `evt_${Date.now()}_${clientReference}`,
    object: 'event',
    type: 'checkout.session.completed',
    data: {
      object: {
        id: `cs_test_${clientReference}`,
        object: 'checkout.session',
        payment_status: 'paid',
        client_reference_id: clientReference,
      },
    },
  });
  const signature = Stripe.webhooks.generateTestHeaderString({ payload, secret: WEBHOOK_SECRET });
  const hook = await fetch(`${b.url}/v1/webhooks/stripe`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Stripe-Signature': signature },
    body: payload,
  });
  expect(hook.status).toBe(200);
}

/** The client_reference_id of the checkout link `upgrade --json` printed. */
const referenceOf = (stdout: string) =>
  new URL((JSON.parse(stdout) as { url: string }).url).searchParams.get('client_reference_id')!;

describe('logout, upgrade, login', () => {
  test('1. logout revokes the token and removes the cache; the old token then fails', async () => {
    const { m, token } = await signedUp();
    const res = await cli(['logout'], m.env);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/token revoked; removed .*token\./);
    expect((await cli(['token'], m.env)).code).toBe(3);
    const old = await cli(['auth', 'test'], { ...m.env, TB_KEY: token });
    expect(old.code).toBe(3);
  });

  test('1b. logout of a browser sign-in whose revocation endpoint never answers still ends within --timeout: revoked, cache removed', async () => {
    const { m } = await signedUp();
    const silent = await listen(() => undefined); // takes the request, never answers
    try {
      writeFileSync(
        join(m.configDir, 'oauth.json'),
        JSON.stringify({
          refresh_token: `tbr_${'a'.repeat(38)}`,
          expires_at: Date.now() + 3_600_000,
          token_endpoint: `${silent.url}/oauth/token`,
          revocation_endpoint: `${silent.url}/oauth/revoke`,
        }),
      );
      const res = await cli(['logout'], { ...m.env, TB_TIMEOUT: '1' });
      expect(res.code).toBe(0);
      expect(res.stdout).toMatch(/token revoked; removed .*token\./);
      expect((await cli(['token'], m.env)).code).toBe(3);
    } finally {
      await silent.close();
    }
  }, 20_000);

  test('1c. an expired browser sign-in whose token endpoint never answers: the command ends at --timeout, exit 5 saying so', async () => {
    const { m } = await signedUp();
    const silent = await listen(() => undefined);
    try {
      writeFileSync(
        join(m.configDir, 'oauth.json'),
        JSON.stringify({
          refresh_token: `tbr_${'a'.repeat(38)}`,
          expires_at: Date.now() - 1000,
          token_endpoint: `${silent.url}/oauth/token`,
        }),
      );
      const res = await cli(['sessions'], { ...m.env, TB_TIMEOUT: '1' });
      expect([res.code, res.stderr]).toEqual([
        5,
        `tunnelbyte: timed out: the broker at ${silent.url} did not answer within 1 s (--timeout / TB_TIMEOUT)\n`,
      ]);
    } finally {
      await silent.close();
    }
  }, 20_000);

  test('2. upgrade prints the payment link; the webhook makes it paid; login then works from any machine', async () => {
    const { m, token } = await signedUp();
    const email = `user${Date.now()}@example.test`;
    const up = await cli(['upgrade', '--email', email, '--password-stdin', '--json'], m.env, {
      stdin: 'correct horse battery\n',
    });
    expect(up.code).toBe(0);
    const url = new URL((JSON.parse(up.stdout) as { url: string }).url);
    expect(`${url.origin}${url.pathname}`).toBe(PAYMENT_LINK);
    // The account id and the nonce of this checkout.
    const reference = url.searchParams.get('client_reference_id');
    expect(reference).toMatch(/^usr_[0-9A-Za-z]+-[0-9A-Za-z]+$/);

    await paid(reference!);

    // Paid tokens are portable: the original token now works from another machine.
    const elsewhere = machine(b.url, { TB_KEY: token });
    expect((await cli(['auth', 'test'], elsewhere.env)).stdout).toMatch(/pro tier/);

    const laptop = machine(b.url);
    const wrong = await cli(['login', '--email', email, '--password-stdin'], laptop.env, { stdin: 'nope' });
    expect(wrong.code).toBe(3);
    const login = await cli(['login', '--email', email, '--password-stdin'], laptop.env, {
      stdin: 'correct horse battery\n',
    });
    expect(login.code).toBe(0);
    expect(login.stdout).toContain(`Logged in as ${email} (pro)`);
    const shown = login.stdout.match(TOKEN) ?? [];
    expect(shown).toHaveLength(1);
    expect(readFileSync(join(laptop.configDir, 'token'), 'utf8').trim()).toBe(shown[0]);
    expect(mode(join(laptop.configDir, 'token'))).toBe(0o600);

    // As other tunnel CLIs (and the account docs) spell it: `login -e` and `auth login -e`.
    for (const argv of [
      ['login', '-e', email, '--password-stdin'],
      ['auth', 'login', '-e', email, '--password-stdin'],
    ]) {
      const short = await cli(argv, machine(b.url).env, { stdin: 'correct horse battery\n' });
      expect([argv, short.code, short.stdout]).toEqual([
        argv,
        0,
        expect.stringContaining(`Logged in as ${email} (pro)`),
      ]);
    }
  });

  test('3. on a terminal, login asks for email and password and does not echo the password', async () => {
    const m = machine(b.url);
    const res = await cli(['login'], m.env, {
      typed: [
        ['Email: ', 'nobody@example.test'],
        ['Password: ', 'hunter2-secret'],
      ],
    });
    expect(res.stderr).toContain('Email: ');
    expect(res.stderr).toContain('Password: ');
    expect(res.stderr).not.toContain('hunter2-secret');
    expect(res.code).toBe(3);
    expect(res.stderr).toMatch(/unauthorized: Invalid email or password\./);
  });

  test('4. login and upgrade off a terminal need --email and --password-stdin (exit 2, nothing sent)', async () => {
    const { m } = await signedUp();
    for (const argv of [
      ['login'],
      ['login', '--email', 'a@b.c'],
      ['upgrade'],
      ['upgrade', '--password-stdin'],
      ['upgrade', '--email', 'a@b.c'],
    ]) {
      const res = await cli(argv, m.env);
      expect(res.code).toBe(2);
      expect(res.stderr).toMatch(/^tunnelbyte: .*--(email|password-stdin).*\n$/); // one line, no note first
    }
    // Nothing on stdin: refused in one line too, not after the note that comes before prompts.
    for (const argv of [
      ['login', '--email', 'a@b.c', '--password-stdin'],
      ['upgrade', '--email', 'a@b.c', '--password-stdin'],
    ]) {
      const res = await cli(argv, m.env);
      expect([argv, res.code, res.stderr]).toEqual([
        argv,
        2,
        'tunnelbyte: email and password must not be empty\n',
      ]);
    }
  });

  test('5. upgrade of an account that signs in already: its password confirms it, the email stays', async () => {
    const { m } = await signedUp();
    const email = `again${Date.now()}@example.test`;
    const first = await cli(['upgrade', '--email', email, '--password-stdin', '--json'], m.env, {
      stdin: 'first password here\n',
    });
    expect(first.code).toBe(0);
    await paid(referenceOf(first.stdout));

    const wrong = await cli(['upgrade', '--password-stdin'], m.env, { stdin: 'not the password\n' });
    expect([wrong.code, wrong.stderr]).toEqual([
      1,
      expect.stringMatching(
        /invalid request \(current_password\): current_password is not the account’s password\.\n$/,
      ),
    ]);
    const again = await cli(['upgrade', '--password-stdin'], m.env, { stdin: 'first password here\n' });
    expect(again.code).toBe(0);
    expect(again.stderr).toContain(`Confirm with the password of ${email}.`);
    expect(again.stdout).toMatch(
      /^Open this page to pay:\nhttp\S+client_reference_id=usr_[0-9A-Za-z]+-[0-9A-Za-z]+&/,
    );
    // Still the same sign-in.
    const login = await cli(['login', '--email', email, '--password-stdin'], machine(b.url).env, {
      stdin: 'first password here\n',
    });
    expect(login.code).toBe(0);
  });
});
