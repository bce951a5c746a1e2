import fc from 'fast-check';
import { keyFromBase64, keyToBase64 } from '../../src/lib/wgkey.js';
import { type WgQuickConfig, formatWgQuick, parseWgQuick } from '../../src/lib/wgquick.js';

// Fixed keys (not secrets): 32 bytes of 1, 2, 3 in base64.
const KEY1 = keyToBase64(new Uint8Array(32).fill(1));
const KEY2 = keyToBase64(new Uint8Array(32).fill(2));
const KEY3 = keyToBase64(new Uint8Array(32).fill(3));

const SAMPLE = `# a client config, written by hand
[Interface]
PrivateKey = ${KEY1}
  listenport=51820   # trailing comment
Address = 10.8.0.2/24, FD00::2/64
Address = 10.9.0.2
DNS = 1.1.1.1,2606:4700:4700:0000:0000:0000:0000:1111, corp.example.
MTU = 1420
Table = Off
FwMark = 0x1f
PostUp = iptables -A FORWARD -i %i -j ACCEPT
PostUp =   echo up
SaveConfig = TRUE

[peer]
Public Key = ${KEY2}
PresharedKey = ${KEY3}
AllowedIPs = 0.0.0.0/0, ::/0
allowedips = 10.1.2.3/16
Endpoint = vpn.example.com:51820
PersistentKeepalive = 25

[Peer]
PublicKey = ${KEY3}
Endpoint = [FD00::1]:443
PersistentKeepalive = off
AllowedIPs =
`;

function parsed(text: string): WgQuickConfig {
  const result = parseWgQuick(text);
  if (!result.ok) throw new Error(`line ${result.error.line}: ${result.error.message}`);
  return result.config;
}

describe('parseWgQuick', () => {
  test('reads a hand-written file: case, whitespace, comments, repeated keys, hooks', () => {
    const config = parsed(SAMPLE);
    expect(config.interface).toEqual({
      privateKey: new Uint8Array(32).fill(1),
      listenPort: 51820,
      addresses: ['10.8.0.2/24', 'fd00::2/64', '10.9.0.2/32'],
      dns: ['1.1.1.1', '2606:4700:4700::1111', 'corp.example.'],
      mtu: 1420,
      table: 'off',
      fwMark: 0x1f,
      preUp: [],
      postUp: ['iptables -A FORWARD -i %i -j ACCEPT', 'echo up'],
      preDown: [],
      postDown: [],
      saveConfig: true,
    });
    expect(config.peers).toEqual([
      {
        publicKey: new Uint8Array(32).fill(2),
        presharedKey: new Uint8Array(32).fill(3),
        allowedIps: ['0.0.0.0/0', '::/0', '10.1.0.0/16'],
        endpoint: { host: 'vpn.example.com', port: 51820 },
        persistentKeepalive: 25,
      },
      {
        publicKey: new Uint8Array(32).fill(3),
        allowedIps: [],
        endpoint: { host: 'fd00::1', port: 443 },
        persistentKeepalive: 0,
      },
    ]);
  });

  test('CRLF line endings read the same', () => {
    expect(parsed(SAMPLE.replace(/\n/g, '\r\n'))).toEqual(parsed(SAMPLE));
  });

  const IFACE = `[Interface]\nPrivateKey = ${KEY1}\n`;
  const errors: Array<[number, string, number, RegExp]> = [
    [1, '', 0, /no \[Interface\]/],
    [2, '[Interface]\nListenPort = 1\n', 0, /no PrivateKey/],
    [3, 'PrivateKey = x\n[Interface]', 1, /outside/],
    [4, `${IFACE}[Interface]\n`, 3, /second \[Interface\]/],
    [5, `${IFACE}[Peers]\n`, 3, /unknown section/],
    [6, `${IFACE}Colour = blue\n`, 3, /unknown \[Interface\] key 'Colour'/],
    [7, `${IFACE}[Peer]\nPrivateKey = ${KEY2}\n`, 4, /unknown \[Peer\] key/],
    [8, `${IFACE}ListenPort\n`, 3, /Key = Value/],
    [9, '[Interface]\nPrivateKey = AAAA\n', 2, /44 characters/],
    [10, `[Interface]\nPrivateKey = ${KEY1.slice(0, 42)}B=\n`, 2, /key/], // non-zero unused bits
    [11, `[Interface]\nPrivateKey = ${KEY1.slice(0, 43)}\n`, 2, /key/],
    [12, `${IFACE}ListenPort = 65536\n`, 3, /ListenPort/],
    [13, `${IFACE}ListenPort = -1\n`, 3, /ListenPort/],
    [14, `${IFACE}Address = 10.0.0.1/33\n`, 3, /prefix length/],
    [15, `${IFACE}Address = 10.0.0.1/24,\n`, 3, /invalid IP/],
    [16, `${IFACE}DNS = bad_domain!\n`, 3, /DNS/],
    [17, `${IFACE}MTU = 0\n`, 3, /MTU/],
    [18, `${IFACE}FwMark = 0x100000000\n`, 3, /FwMark/],
    [19, `${IFACE}SaveConfig = yes\n`, 3, /SaveConfig/],
    [20, `${IFACE}PostUp =   \n`, 3, /hook/],
    [21, `${IFACE}Table = a/b\n`, 3, /Table/],
    [22, `${IFACE}[Peer]\nAllowedIPs = 10.0.0.0/8\n`, 3, /no PublicKey/],
    [23, `${IFACE}[Peer]\nAllowedIPs = 10.0.0.0/8\n[Peer]\nPublicKey = ${KEY2}\n`, 3, /no PublicKey/],
    [24, `${IFACE}[Peer]\nPublicKey = ${KEY2}\nAllowedIPs = 10.0.0.0/8,,::/0\n`, 5, /invalid IP/],
    [25, `${IFACE}[Peer]\nPublicKey = ${KEY2}\nEndpoint = fd00::1:51820\n`, 5, /Endpoint/],
    [26, `${IFACE}[Peer]\nPublicKey = ${KEY2}\nEndpoint = [10.0.0.1]:51820\n`, 5, /IPv6/],
    [27, `${IFACE}[Peer]\nPublicKey = ${KEY2}\nEndpoint = host:0\n`, 5, /port/],
    [28, `${IFACE}[Peer]\nPublicKey = ${KEY2}\nEndpoint = host\n`, 5, /Endpoint/],
    [29, `${IFACE}[Peer]\nPublicKey = ${KEY2}\nEndpoint = 1.2.3.256:1\n`, 5, /not valid/],
    [30, `${IFACE}[Peer]\nPublicKey = ${KEY2}\nPersistentKeepalive = 65536\n`, 5, /PersistentKeepalive/],
    [31, `${IFACE}constructor = 1\n`, 3, /unknown/],
    [32, `${IFACE}[Peer]\n__proto__ = 1\n`, 4, /unknown/],
  ];
  test.each(errors)('error #%i', (_n, text, line, message) => {
    const result = parseWgQuick(text);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.line).toBe(line);
    expect(result.error.message).toMatch(message);
  });

  test('error messages never echo a key', () => {
    const result = parseWgQuick(`[Interface]\nPrivateKey = ${KEY1.slice(1)}A\n`);
    expect(result.ok).toBe(false);
    expect(JSON.stringify(result)).not.toContain(KEY1.slice(1, 40));
  });
});

describe('formatWgQuick', () => {
  test('writes the canonical text', () => {
    expect(formatWgQuick(parsed(SAMPLE))).toBe(
      [
        '[Interface]',
        `PrivateKey = ${KEY1}`,
        'ListenPort = 51820',
        'Address = 10.8.0.2/24, fd00::2/64, 10.9.0.2/32',
        'DNS = 1.1.1.1, 2606:4700:4700::1111, corp.example.',
        'MTU = 1420',
        'Table = off',
        'FwMark = 0x1f',
        'PostUp = iptables -A FORWARD -i %i -j ACCEPT',
        'PostUp = echo up',
        'SaveConfig = true',
        '',
        '[Peer]',
        `PublicKey = ${KEY2}`,
        `PresharedKey = ${KEY3}`,
        'AllowedIPs = 0.0.0.0/0, ::/0, 10.1.0.0/16',
        'Endpoint = vpn.example.com:51820',
        'PersistentKeepalive = 25',
        '',
        '[Peer]',
        `PublicKey = ${KEY3}`,
        'Endpoint = [fd00::1]:443',
        'PersistentKeepalive = 0',
        '',
      ].join('\n'),
    );
  });

  const base = (): WgQuickConfig =>
    parsed(`[Interface]\nPrivateKey = ${KEY1}\n[Peer]\nPublicKey = ${KEY2}\n`);
  const unwritable: Array<[number, string, (c: WgQuickConfig) => void]> = [
    [1, 'a line break smuggling a hook into DNS', (c) => c.interface.dns.push('1.1.1.1\nPostUp = rm -rf /')],
    [2, "a '#' inside a hook", (c) => c.interface.postUp.push('echo a # b')],
    [3, 'a short key', (c) => (c.peers[0]!.publicKey = new Uint8Array(31))],
    [4, 'host bits in AllowedIPs', (c) => c.peers[0]!.allowedIps.push('10.1.2.3/8')],
    [5, 'a fractional port', (c) => (c.interface.listenPort = 1.5)],
    [6, 'an endpoint host with a space', (c) => (c.peers[0]!.endpoint = { host: 'a b', port: 1 })],
  ];
  test.each(unwritable)('refuses #%i %s (programmer mistake: throws)', (_n, _what, spoil) => {
    const config = base();
    spoil(config);
    expect(() => formatWgQuick(config)).toThrow(RangeError);
  });

  test('the refusal never echoes a key', () => {
    const config = base();
    config.interface.dns.push('bad domain');
    expect(() => formatWgQuick(config)).toThrow(/^(?!.*AQEBAQEB)/s);
  });
});

describe('keyFromBase64 / keyToBase64', () => {
  test('round trip of random keys; other lengths and spellings are refused', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (key) => {
        const text = keyToBase64(key);
        return text.length === 44 && Buffer.from(keyFromBase64(text)!).equals(Buffer.from(key));
      }),
      { seed: 25519 },
    );
    expect(keyFromBase64(keyToBase64(new Uint8Array(33)))).toBeUndefined();
    expect(keyFromBase64(` ${KEY1}`)).toBeUndefined();
    expect(keyFromBase64(KEY1.replace('=', 'A'))).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------------------

const key = fc.uint8Array({ minLength: 32, maxLength: 32 });
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));
const ipv6 = fc.ipV6();
const hook = fc
  .string({ minLength: 1, maxLength: 30 })
  .map((s) => s.replace(/[#\r\n]/g, 'x').trim())
  .filter((s) => s !== '');
const hostName = fc.domain();

// Configs built from parseable pieces: formatting and re-parsing must give back exactly the same config.
const configArbitrary: fc.Arbitrary<WgQuickConfig> = fc
  .record({
    interface: fc.record(
      {
        privateKey: key,
        listenPort: fc.integer({ min: 0, max: 65535 }),
        addresses: fc.array(
          fc.oneof(
            ipv4.map((a) => `${a}/24`),
            ipv6.map((a) => `${a}/64`),
          ),
          { maxLength: 3 },
        ),
        dns: fc.array(fc.oneof(ipv4, hostName), { maxLength: 3 }),
        mtu: fc.integer({ min: 1280, max: 9000 }),
        table: fc.constantFrom('off', 'auto', '1234', 'main'),
        fwMark: fc.nat(0xffffffff),
        preUp: fc.array(hook, { maxLength: 2 }),
        postUp: fc.array(hook, { maxLength: 2 }),
        preDown: fc.array(hook, { maxLength: 2 }),
        postDown: fc.array(hook, { maxLength: 2 }),
        saveConfig: fc.boolean(),
      },
      { requiredKeys: ['privateKey', 'addresses', 'dns', 'preUp', 'postUp', 'preDown', 'postDown'] },
    ),
    peers: fc.array(
      fc.record(
        {
          publicKey: key,
          presharedKey: key,
          allowedIps: fc.array(
            fc.oneof(
              ipv4.map((a) => `${a}/32`),
              fc.constant('0.0.0.0/0'),
              fc.constant('::/0'),
            ),
            {
              maxLength: 3,
            },
          ),
          endpoint: fc.record({ host: fc.oneof(ipv4, hostName), port: fc.integer({ min: 1, max: 65535 }) }),
          persistentKeepalive: fc.integer({ min: 0, max: 65535 }),
        },
        { requiredKeys: ['publicKey', 'allowedIps'] },
      ),
      { maxLength: 3 },
    ),
  })
  // Canonicalise generated addresses the way parse() would (e.g. IPv6 compression).
  .map((config) => parsed(formatLoosely(config)));

// Writes without the canonical-form check, so generated values can be canonicalised by parse().
function formatLoosely(config: WgQuickConfig): string {
  const loose: WgQuickConfig = structuredClone(config);
  const text = [
    '[Interface]',
    `PrivateKey = ${keyToBase64(loose.interface.privateKey)}`,
    ...Object.entries({
      ListenPort: loose.interface.listenPort,
      MTU: loose.interface.mtu,
      Table: loose.interface.table,
      FwMark: loose.interface.fwMark,
      SaveConfig: loose.interface.saveConfig,
    })
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k} = ${v}`),
    ...loose.interface.addresses.map((a) => `Address = ${a}`),
    ...loose.interface.dns.map((d) => `DNS = ${d}`),
    ...loose.interface.preUp.map((h) => `PreUp = ${h}`),
    ...loose.interface.postUp.map((h) => `PostUp = ${h}`),
    ...loose.interface.preDown.map((h) => `PreDown = ${h}`),
    ...loose.interface.postDown.map((h) => `PostDown = ${h}`),
    ...loose.peers.flatMap((p) => [
      '[Peer]',
      `PublicKey = ${keyToBase64(p.publicKey)}`,
      ...(p.presharedKey ? [`PresharedKey = ${keyToBase64(p.presharedKey)}`] : []),
      ...p.allowedIps.map((a) => `AllowedIPs = ${a}`),
      ...(p.endpoint ? [`Endpoint = ${p.endpoint.host}:${p.endpoint.port}`] : []),
      ...(p.persistentKeepalive !== undefined ? [`PersistentKeepalive = ${p.persistentKeepalive}`] : []),
    ]),
  ];
  return text.join('\n');
}

describe('wg-quick properties', () => {
  test('parse(format(c)) gives c back, and format is stable', () => {
    fc.assert(
      fc.property(configArbitrary, (config) => {
        const text = formatWgQuick(config);
        const again = parseWgQuick(text);
        expect(again).toEqual({ ok: true, config });
        return again.ok && formatWgQuick(again.config) === text;
      }),
      { seed: 8, numRuns: 300 },
    );
  });

  test('arbitrary text never throws', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (text) => {
        const result = parseWgQuick(text);
        return result.ok || (Number.isInteger(result.error.line) && result.error.message.length > 0);
      }),
      { seed: 1, numRuns: 3000 },
    );
  });

  test('mutated valid files never throw, and whatever parses also round-trips', () => {
    const mutation = fc.record({
      at: fc.nat(),
      cut: fc.nat(6),
      insert: fc.oneof(
        fc.constantFrom('#', '=', '\n', '[', ']', ',', ':', '/', ' ', '[Peer]\n', 'off', '0x', '::', '\r'),
        fc.string({ maxLength: 4 }),
      ),
    });
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 5 }), (mutations) => {
        let text = SAMPLE;
        for (const m of mutations) {
          const at = m.at % (text.length + 1);
          text = text.slice(0, at) + m.insert + text.slice(at + m.cut);
        }
        const result = parseWgQuick(text);
        if (!result.ok) return result.error.line >= 0 && result.error.line <= text.split('\n').length;
        const again = parseWgQuick(formatWgQuick(result.config));
        expect(again).toEqual({ ok: true, config: result.config });
        return true;
      }),
      { seed: 1420, numRuns: 3000 },
    );
  });
});
