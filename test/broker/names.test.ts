// Names people give things (API keys, OAuth clients, regions) and text nodes report (their version)
// are printed later: in terminals, pages, logs. Every such field refuses characters that would print as
// something else: C0 and C1 controls (a terminal escape, a newline forging a log line), lone surrogates,
// U+2028/2029, and the bidi embeddings, overrides and isolates that reorder what surrounds them. Each
// case answers the contract's 400 naming the field, and stores nothing.
import request from 'supertest';
import { createOperatorKey } from '../../src/broker/admin.js';
import { createNodeToken } from '../../src/broker/services/enrollment.js';
import { businessToken, startBroker, type TestBroker } from './helpers.js';
import { keyPair } from './sessions-fixture.js';

let broker: TestBroker;
let user: string;
let admin: string;

beforeAll(async () => {
  broker = await startBroker({ env: { PUBLIC_BURST: '100000' } });
  user = await businessToken(broker.ctx, 'names');
  admin = await createOperatorKey(broker.ctx, ['admin:read', 'admin:write'], 'ops');
  const region = await api()
    .post('/v1/admin/regions')
    .set(bearer(admin))
    .send({ id: 'eu-west', name: 'Frankfurt', country: 'DE' });
  expect(region.status).toBe(201);
});
afterAll(async () => broker.close());

const api = () => request(broker.app);
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

type Send = (text: string) => Promise<request.Response>;

const FIELDS: [number, string, string, Send][] = [
  [
    1,
    'POST /v1/auth/keys',
    'name',
    (name) =>
      api()
        .post('/v1/auth/keys')
        .set(bearer(user))
        .send({ name, permissions: ['tunnels:read'] }),
  ],
  [
    2,
    'POST /v1/oauth/clients',
    'client_name',
    (client_name) =>
      api()
        .post('/v1/oauth/clients')
        .set(bearer(user))
        .send({ client_name, redirect_uris: ['https://app.example/callback'] }),
  ],
  [
    3,
    'POST /v1/admin/regions',
    'name',
    (name) =>
      api()
        .post('/v1/admin/regions')
        .set(bearer(admin))
        .send({ id: `r-${Math.random().toString(36).slice(2, 8)}`, name, country: 'FR' }),
  ],
  [
    4,
    'PATCH /v1/admin/regions/{id}',
    'name',
    (name) => api().patch('/v1/admin/regions/eu-west').set(bearer(admin)).send({ name }),
  ],
  [
    5,
    'POST /v1/nodes/register',
    'version',
    async (version) => {
      const { token } = await createNodeToken(broker.ctx, 'eu-west');
      return api().post('/v1/nodes/register').set(bearer(token)).send({
        region: 'eu-west',
        endpoint: '198.51.100.7:51820',
        public_key: keyPair().publicKey,
        capacity: 10,
        version,
      });
    },
  ],
];

const REFUSED: [string, string][] = [
  ['NUL', 'a\u0000b'],
  ['BEL', 'a\u0007b'],
  ['tab', 'a\tb'],
  ['newline', 'line\nforged: line'],
  ['carriage return', 'a\rb'],
  ['ESC (a terminal escape)', 'a\u001b[31mred'],
  ['DEL', 'a\u007fb'],
  ['NEL (C1)', 'a\u0085b'],
  ['CSI (C1)', 'a\u009b31mb'],
  ['line separator U+2028', 'a\u2028b'],
  ['paragraph separator U+2029', 'a\u2029b'],
  ['left-to-right embedding U+202A', 'a\u202ab'],
  ['right-to-left override U+202E', 'invoice\u202etxt.exe'],
  ['left-to-right isolate U+2066', 'a\u2066b'],
  ['pop directional isolate U+2069', 'a\u2069b'],
  ['lone surrogate', 'a\ud800b'],
];

describe.each(FIELDS)('%i. %s refuses non-printable characters in %s', (_n, _route, field, send) => {
  test.each(REFUSED)('%s → 400 invalid_request naming the field', async (_what, text) => {
    const res = await send(text);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      error: 'invalid_request',
      code: 4000,
      field,
      message: expect.stringContaining(field),
    });
  });

  test('printable text of any script is kept as sent: accents, emoji with joiners, right-to-left letters', async () => {
    const res = await send('café ☕ 👨‍👩‍👧 עברית 1.2');
    expect(res.status).toBeLessThan(300);
  });
});

test('nothing refused was stored: no key, client or region name holds such a character', async () => {
  const keys = await api().get('/v1/auth/keys').set(bearer(user));
  const clients = await api().get('/v1/oauth/clients').set(bearer(user));
  const regions = await api().get('/v1/admin/regions').set(bearer(admin));
  const names: string[] = [
    ...keys.body.keys.map((k: { name: string }) => k.name),
    ...clients.body.clients.map((c: { client_name: string }) => c.client_name),
    ...regions.body.regions.map((r: { name: string }) => r.name),
  ];
  expect(names).toContain('café ☕ 👨‍👩‍👧 עברית 1.2');
  expect(names.filter((name) => /[\p{Cc}\p{Cs}\u2028\u2029\u202a-\u202e\u2066-\u2069]/u.test(name))).toEqual(
    [],
  );
});

test('white space at either end of a name is trimmed before the check: "\\ttrimmed\\n" is stored as "trimmed"', async () => {
  const [, , , createKey] = FIELDS[0]!;
  expect((await createKey('\ttrimmed\n')).status).toBe(201);
  const keys = await api().get('/v1/auth/keys').set(bearer(user));
  expect(keys.body.keys.map((k: { name: string }) => k.name)).toContain('trimmed');
});
