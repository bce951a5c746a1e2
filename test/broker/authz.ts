// A reusable authorization matrix: every bearer endpoint × every way a caller can be wrong.
// Each endpoint row says how to call it successfully; the matrix derives the failing calls.
// Other suites (sessions, usage) add their own rows and call authorizationMatrix() with them.
import request from 'supertest';
import type { Response } from 'supertest';
import type { BrokerApp } from '../../src/broker/app.js';
import type { BrokerContext } from '../../src/broker/context.js';
import { SCOPES, USER_SCOPES, expand, type Scope } from '../../src/broker/scopes.js';
import { createAccount, issueKey, type Account } from '../../src/broker/services/accounts.js';
import { API_TOKEN_PREFIX, checksum, randomBase62 } from '../../src/broker/tokens.js';

export interface Principal {
  account: Account;
  token: string;
  permissions: string[];
  /** Sent as X-Machine-Fingerprint (free accounts). */
  fingerprint: string | undefined;
}

export interface AuthFixture {
  app: BrokerApp;
  ctx: BrokerContext;
  /** Moves the broker's clock (for expiry). */
  advance(ms: number): void;
  /** A free, machine-bound account holding every non-admin scope. */
  user: Principal;
  /** A second free account, for "someone else's object". */
  other: Principal;
  /** A business account holding every scope, admin included. */
  operator: Principal;
  /** Another key of the principal's account with the given permissions. */
  keyFor(p: Principal, permissions: string[], expiresAt?: number | null): Promise<string>;
}

export interface EndpointRow {
  name: string;
  method: 'get' | 'post' | 'delete' | 'put' | 'patch';
  /** Who calls it in the success case. */
  as: 'user' | 'operator';
  scope?: Scope;
  /** Expected status of the successful call. */
  ok: number;
  /** Path and body for a call by `caller` on an object owned by `owner` (created fresh). */
  prepare(fx: AuthFixture, owner: Principal, caller: Principal): Promise<{ path: string; body?: unknown }>;
  /** Set when the path names an object: the matrix then checks another account's object → 404. */
  ownsObject?: boolean;
}

let counter = 0;
const fingerprintFor = (label: string) =>
  `${Buffer.from(label).toString('hex')}${(++counter).toString(16).padStart(8, '0')}`;

async function principal(
  ctx: BrokerContext,
  plan: Account['plan'],
  permissions: string[],
  fingerprint: string | undefined,
): Promise<Principal> {
  const account = await createAccount(ctx, { plan });
  const { token } = await issueKey(ctx, account.id, {
    name: 'fixture',
    permissions,
    fingerprint: fingerprint ?? null,
    expiresAt: null,
  });
  return { account, token, permissions, fingerprint };
}

export async function createAuthFixture(app: BrokerApp, advance: (ms: number) => void): Promise<AuthFixture> {
  const ctx = app.locals.broker;
  const user = await principal(ctx, 'free', [...USER_SCOPES], fingerprintFor('user'));
  const other = await principal(ctx, 'free', [...USER_SCOPES], fingerprintFor('other'));
  const operator = await principal(ctx, 'business', [...SCOPES], undefined);
  return {
    app,
    ctx,
    advance,
    user,
    other,
    operator,
    keyFor: async (p, permissions, expiresAt = null) =>
      (
        await issueKey(ctx, p.account.id, {
          name: 'derived',
          permissions,
          fingerprint: p.fingerprint ?? null,
          expiresAt,
        })
      ).token,
  };
}

export function call(
  fx: AuthFixture,
  row: EndpointRow,
  target: { path: string; body?: unknown },
  auth: { token?: string; authorization?: string; fingerprint?: string },
): Promise<Response> {
  let req = request(fx.app)[row.method](target.path);
  if (auth.authorization !== undefined) req = req.set('Authorization', auth.authorization);
  else if (auth.token !== undefined) req = req.set('Authorization', `Bearer ${auth.token}`);
  if (auth.fingerprint !== undefined) req = req.set('X-Machine-Fingerprint', auth.fingerprint);
  return target.body === undefined ? req : req.send(target.body as object);
}

function expectError(res: Response, status: number, error: string, extra: Record<string, unknown> = {}) {
  expect([res.status, res.body]).toEqual([
    status,
    expect.objectContaining({ error, code: expect.any(Number), message: expect.any(String), ...extra }),
  ]);
  // RFC 9110 §15.5.2: a 401 names the scheme to authenticate with; RFC 6750 §3.1: a 403 for a
  // missing scope says which.
  if (status === 401) expect(res.headers['www-authenticate']).toBe('Bearer realm="tunnelbyte"');
  if (error === 'forbidden')
    expect(res.headers['www-authenticate']).toBe(
      `Bearer realm="tunnelbyte", error="insufficient_scope", scope="${String(extra.required_scope)}"`,
    );
}

/** A well-formed token (valid checksum) that no account holds. */
export const unknownToken = () => {
  const body = randomBase62(32);
  return API_TOKEN_PREFIX + body + checksum(body);
};

export function authorizationMatrix(name: string, fixture: () => AuthFixture, rows: EndpointRow[]): void {
  const who = (fx: AuthFixture, row: EndpointRow) => (row.as === 'user' ? fx.user : fx.operator);

  describe(`${name}: authorization matrix`, () => {
    describe.each(rows.map((r) => [r.name, r] as const))('%s', (_label, row) => {
      test('valid token → success', async () => {
        const fx = fixture();
        const p = who(fx, row);
        // A fresh key of the principal, so rows like logout do not revoke the fixture's own token.
        const token = await fx.keyFor(p, p.permissions);
        const res = await call(fx, row, await row.prepare(fx, p, p), { token, fingerprint: p.fingerprint });
        expect([res.status, res.body]).toEqual([row.ok, expect.anything()]);
      });

      test.each([
        ['no Authorization header', {}],
        ['not a bearer scheme', { authorization: 'Basic dXNlcjpwYXNz' }],
        ['malformed token', { authorization: 'Bearer tb_short' }],
        ['bad checksum', { authorization: `Bearer tb_${'a'.repeat(32)}zzzzzz` }],
        ['empty bearer', { authorization: 'Bearer ' }],
      ])('%s → 401', async (_case, auth) => {
        const fx = fixture();
        const p = who(fx, row);
        expectError(
          await call(fx, row, await row.prepare(fx, p, p), { ...auth, fingerprint: p.fingerprint }),
          401,
          'unauthorized',
        );
      });

      test('unknown (well-formed) token → 401', async () => {
        const fx = fixture();
        const p = who(fx, row);
        const target = await row.prepare(fx, p, p);
        expectError(
          await call(fx, row, target, { token: unknownToken(), fingerprint: p.fingerprint }),
          401,
          'unauthorized',
        );
      });

      test('revoked token → 401', async () => {
        const fx = fixture();
        const p = who(fx, row);
        const token = await fx.keyFor(p, p.permissions);
        const logout = await request(fx.app)
          .post('/v1/auth/logout')
          .set('Authorization', `Bearer ${token}`)
          .set(p.fingerprint ? { 'X-Machine-Fingerprint': p.fingerprint } : {});
        expect(logout.status).toBe(204);
        expectError(
          await call(fx, row, await row.prepare(fx, p, p), { token, fingerprint: p.fingerprint }),
          401,
          'unauthorized',
        );
      });

      test('expired token → 401', async () => {
        const fx = fixture();
        const p = who(fx, row);
        const token = await fx.keyFor(p, p.permissions, fx.ctx.clock() + 1000);
        fx.advance(1000);
        expectError(
          await call(fx, row, await row.prepare(fx, p, p), { token, fingerprint: p.fingerprint }),
          401,
          'unauthorized',
        );
      });

      test('free token from another machine (or none) → 401', async () => {
        const fx = fixture();
        const target = await row.prepare(fx, fx.user, fx.user);
        expectError(
          await call(fx, row, target, { token: fx.user.token, fingerprint: 'deadbeefdeadbeef' }),
          401,
          'unauthorized',
        );
        expectError(await call(fx, row, target, { token: fx.user.token }), 401, 'unauthorized');
      });

      if (row.scope) {
        const scope = row.scope;
        test(`token without ${scope} → 403 forbidden with required_scope`, async () => {
          const fx = fixture();
          const p = who(fx, row);
          const without = [...expand(p.permissions)].filter((s) => s !== scope);
          const token = await fx.keyFor(p, without);
          const res = await call(fx, row, await row.prepare(fx, p, p), { token, fingerprint: p.fingerprint });
          expectError(res, 403, 'forbidden', { required_scope: scope });
        });
      }

      if (row.ownsObject) {
        test("another account's object → 404, same as an unknown id", async () => {
          const fx = fixture();
          const target = await row.prepare(fx, fx.other, fx.user);
          expectError(
            await call(fx, row, target, { token: fx.user.token, fingerprint: fx.user.fingerprint }),
            404,
            'not_found',
          );
        });
      }
    });
  });
}
