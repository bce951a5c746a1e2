// The CLI's local pieces: key generation (checked against the real `wg pubkey`), the wg-quick file
// it writes, the machine fingerprint, and answers no real broker gives (a proxy's HTML error page).
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { ApiClient, ApiError, type CreatedSession } from '../../src/lib/api-client.js';
import { computeFingerprint, FingerprintError, machineFingerprint } from '../../src/lib/fingerprint.js';
import { parseWgQuick } from '../../src/lib/wgquick.js';
import { keyToBase64 } from '../../src/lib/wgkey.js';
import { renewedConfig, sessionConfig } from '../../src/cli/wgconfig.js';
import { generateKeyPair } from '../../src/cli/wgkeys.js';
import { cli, listen, machine } from './harness.js';

describe('key pair', () => {
  test('1. private keys are clamped and the public key is what `wg pubkey` derives', () => {
    for (let i = 0; i < 8; i++) {
      const pair = generateKeyPair();
      const secret = Buffer.from(pair.privateKey, 'base64');
      expect(secret).toHaveLength(32);
      expect((secret[0] ?? 0) & 7).toBe(0);
      expect((secret[31] ?? 0) & 0x80).toBe(0);
      expect((secret[31] ?? 0) & 0x40).toBe(0x40);
      expect(
        execFileSync('wg', ['pubkey'], { input: `${pair.privateKey}\n` })
          .toString()
          .trim(),
      ).toBe(pair.publicKey);
    }
  });

  test('2. clamping applies to any random bytes (all ones, all zeros)', () => {
    const ones = Buffer.from(generateKeyPair(() => new Uint8Array(32).fill(0xff)).privateKey, 'base64');
    expect([ones[0], ones[31]]).toEqual([0xf8, 0x7f]);
    const zeros = Buffer.from(generateKeyPair(() => new Uint8Array(32)).privateKey, 'base64');
    expect([zeros[0], zeros[31]]).toEqual([0x00, 0x40]);
  });
});

const NODE_KEY = generateKeyPair().publicKey;
const OUR = generateKeyPair();

function session(config: string, overrides: Partial<CreatedSession> = {}): CreatedSession {
  return {
    id: 'ses_test',
    status: 'pending',
    region: 'eu-west',
    node: { id: 'node_1', endpoint: '192.0.2.1:51820', public_key: NODE_KEY },
    interface: { addresses: ['10.64.0.2/32', 'fd64::2/128'], dns: ['10.64.0.1'] },
    peer: {
      public_key: NODE_KEY,
      endpoint: '192.0.2.1:51820',
      allowed_ips: ['0.0.0.0/0', '::/0'],
      persistent_keepalive: 25,
    },
    config,
    created_at: '2026-01-01T00:00:00Z',
    expires_at: '2026-01-02T00:00:00Z',
    ...overrides,
  };
}

const TEMPLATE = [
  '[Interface]',
  'PrivateKey = <your private key>',
  'Address = 10.64.0.2/32, fd64::2/128',
  'DNS = 10.64.0.1',
  '',
  '[Peer]',
  `PublicKey = ${NODE_KEY}`,
  'AllowedIPs = 0.0.0.0/0, ::/0',
  'Endpoint = 192.0.2.1:51820',
  'PersistentKeepalive = 25',
  '',
].join('\n');

describe('the wg-quick file connect writes', () => {
  const cases: [string, string, boolean][] = [
    ['1. placeholder line replaced', TEMPLATE, true],
    ['2. placeholder in lower case keys', TEMPLATE.replace('PrivateKey', 'privatekey'), true],
    ['3. no PrivateKey line: inserted under [Interface]', TEMPLATE.replace(/^PrivateKey.*\n/m, ''), true],
    ['4. no trailing newline', TEMPLATE.trimEnd(), true],
    ['5. empty config: built from the structured fields', '', true],
    ['6. garbage after the key line is refused', `${TEMPLATE}Bogus = 1\n`, false],
  ];
  test.each(cases)('%s', (_name, config, ok) => {
    const result = sessionConfig(session(config), OUR.privateKey);
    expect(result.ok).toBe(ok);
    if (!result.ok) {
      expect(result.message).not.toContain(OUR.privateKey);
      return;
    }
    const parsed = parseWgQuick(result.text);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(Buffer.from(parsed.config.interface.privateKey).toString('base64')).toBe(OUR.privateKey);
    expect(parsed.config.interface.addresses).toEqual(['10.64.0.2/32', 'fd64::2/128']);
    expect(parsed.config.peers).toHaveLength(1);
    expect(parsed.config.peers[0]?.allowedIps).toEqual(['0.0.0.0/0', '::/0']);
    expect(parsed.config.peers[0]?.endpoint).toEqual({ host: '192.0.2.1', port: 51820 });
  });

  test('7. structured fields with an IPv6 endpoint and a preshared key', () => {
    const psk = generateKeyPair().privateKey;
    const s = session('', {
      peer: { ...session('').peer, endpoint: '[2001:db8::1]:51820', preshared_key: psk },
    });
    const result = sessionConfig(s, OUR.privateKey);
    expect(result.ok).toBe(true);
    if (result.ok) {
      expect(result.text).toContain('Endpoint = [2001:db8::1]:51820');
      expect(result.text).toContain(`PresharedKey = ${psk}`);
    }
  });

  test('8. a malformed endpoint or key in the fields is refused, not thrown', () => {
    for (const peer of [{ endpoint: 'no-port' }, { public_key: 'short' }, { endpoint: 'h:99999' }]) {
      const s = session('', { peer: { ...session('').peer, ...peer } });
      expect(sessionConfig(s, OUR.privateKey).ok).toBe(false);
    }
    expect(sessionConfig(session(TEMPLATE), 'not-a-key').ok).toBe(false);
  });

  test('9. property: any config text from the broker gives a result or a refusal, never a throw', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 400 }),
        fc.string({ maxLength: 40 }),
        (config, endpoint) => {
          const result = sessionConfig(
            session(config, { peer: { ...session('').peer, endpoint } }),
            OUR.privateKey,
          );
          if (result.ok) expect(parseWgQuick(result.text).ok).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('the file renewed after the session moved (connect --up --follow)', () => {
  const NEW_NODE = generateKeyPair().publicKey;
  const PSK = generateKeyPair().privateKey;
  /** The broker's fresh config for the new node, its keys as placeholders. */
  const moved = TEMPLATE.replace(NODE_KEY, NEW_NODE)
    .replace('192.0.2.1:51820', '192.0.2.2:51820')
    .replace('[Peer]', '[Peer]\nPresharedKey = <your preshared key>');
  const written = (options: { dns: boolean }) => {
    const made = sessionConfig(session(TEMPLATE), OUR.privateKey, options);
    if (!made.ok) throw new Error(made.message);
    return made.text.replace('[Peer]', `[Peer]\nPresharedKey = ${PSK}`);
  };

  test("1. the new node, with this machine's private and preshared keys, DNS as the file had it", () => {
    for (const dns of [true, false]) {
      const renewed = renewedConfig(written({ dns }), moved);
      expect(renewed.ok).toBe(true);
      const parsed = renewed.ok ? parseWgQuick(renewed.text) : undefined;
      if (!parsed?.ok) throw new Error('the renewed file does not parse');
      const { interface: iface, peers } = parsed.config;
      expect(keyToBase64(iface.privateKey)).toBe(OUR.privateKey);
      expect(iface.dns).toEqual(dns ? ['10.64.0.1'] : []);
      expect(
        peers.map((p) => [
          keyToBase64(p.publicKey),
          p.endpoint,
          p.presharedKey && keyToBase64(p.presharedKey),
        ]),
      ).toEqual([[NEW_NODE, { host: '192.0.2.2', port: 51820 }, PSK]]);
    }
  });

  test('2. a file or broker text that cannot be renewed is refused without a key in the message', () => {
    for (const [current, broker] of [
      ['not a config', moved],
      [written({ dns: true }), ''],
      [written({ dns: true }), `${moved}Bogus = 1\n`],
    ]) {
      const renewed = renewedConfig(current!, broker!);
      expect(renewed.ok).toBe(false);
      if (!renewed.ok)
        expect(renewed.message).not.toMatch(new RegExp(`${OUR.privateKey}|${PSK}`.replace(/[+/=]/g, '\\$&')));
    }
  });
});

describe('machine fingerprint', () => {
  test('1. stable per machine, different across machine ids and host names, 64 hex digits', () => {
    expect(computeFingerprint('abc', 'host')).toBe(computeFingerprint('abc', 'host'));
    expect(computeFingerprint('abc', 'host')).not.toBe(computeFingerprint('abd', 'host'));
    expect(computeFingerprint('abc', 'host')).not.toBe(computeFingerprint('abc', 'hosu'));
    expect(machineFingerprint({})).toMatch(/^[0-9a-f]{64}$/);
    expect(machineFingerprint({})).toBe(machineFingerprint({}));
  });

  test('2. TB_FINGERPRINT overrides it (lower-cased); a non-hex one is refused', () => {
    expect(machineFingerprint({ TB_FINGERPRINT: 'ABCDEF0123456789' })).toBe('abcdef0123456789');
    expect(() => machineFingerprint({ TB_FINGERPRINT: 'xyz' })).toThrow(FingerprintError);
    expect(() => machineFingerprint({ TB_FINGERPRINT: 'abc' })).toThrow(FingerprintError);
  });
});

describe('answers no real broker gives', () => {
  test('1. an HTML error page from a proxy becomes ApiError bad_response, exit 5 for a 502', async () => {
    const proxy = await listen((_req, res) => {
      res.writeHead(502, { 'Content-Type': 'text/html', 'Retry-After': '7' }).end('<html>Bad gateway</html>');
    });
    try {
      const err = await new ApiClient({ baseUrl: proxy.url }).regions().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ApiError);
      expect(err).toMatchObject({ status: 502, error: 'bad_response', retryAfter: 7 });
      const res = await cli(['regions'], machine(proxy.url).env);
      expect(res.code).toBe(5);
      expect(res.stderr).toMatch(/^tunnelbyte: bad_response \(HTTP 502\)/);
    } finally {
      await proxy.close();
    }
  });

  test('2. a 200 that is not JSON is refused, not trusted', async () => {
    const odd = await listen((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('hello');
    });
    try {
      const err = await new ApiClient({ baseUrl: `${odd.url}/v1/` }).regions().catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'ApiError', status: 200, error: 'bad_response' });
    } finally {
      await odd.close();
    }
  });
});
