import fc from 'fast-check';

import {
  applySet,
  formatGet,
  parseUapiEndpoint,
  UapiRequestReader,
  type UapiRequest,
  type UapiDeviceStatus,
} from '../../nodes/uapi-protocol.js';
import { MemoryDevice } from './memory-device.js';

const key = (byte: number) => new Uint8Array(32).fill(byte);
const hex = (k: Uint8Array) => Buffer.from(k).toString('hex');
const read = (text: string): UapiRequest[] => new UapiRequestReader().push(text);

async function set(device: MemoryDevice, body: string): Promise<number> {
  const [request] = read(`set=1\n${body}\n\n`);
  if (request?.kind === 'error') return request.errno;
  if (request?.kind !== 'set') throw new Error(`not a set: ${JSON.stringify(request)}`);
  return applySet(device, request.set);
}

describe('UapiRequestReader', () => {
  test('get, set and several operations on one connection', () => {
    const requests = read(`get=1\n\nset=1\nlisten_port=51820\n\nget=1\n\n`);
    expect(requests.map((r) => r.kind)).toEqual(['get', 'set', 'get']);
  });

  test('requests split across chunks at every byte', () => {
    const text = `set=1\nprivate_key=${hex(key(7))}\npublic_key=${hex(key(9))}\nallowed_ip=10.0.0.2/32\n\nget=1\n\n`;
    for (let cut = 0; cut <= text.length; cut++) {
      const reader = new UapiRequestReader();
      const requests = [
        ...reader.push(Buffer.from(text.slice(0, cut))),
        ...reader.push(Buffer.from(text.slice(cut))),
      ];
      expect(requests.map((r) => r.kind)).toEqual(['set', 'get']);
    }
  });

  // Numbered table of malformed requests: [request text, expected requests].
  const malformed: Array<[number, string, UapiRequest[]]> = [
    [1, 'set=1\nno equals sign\n\n', [{ kind: 'error', errno: -71 }]],
    [2, 'set=1\nbogus_key=1\n\n', [{ kind: 'error', errno: -22 }]],
    [3, 'set=1\nprivate_key=xyz\n\n', [{ kind: 'error', errno: -22 }]],
    [4, 'set=1\nlisten_port=65536\n\n', [{ kind: 'error', errno: -22 }]],
    [5, 'set=1\nlisten_port=-1\n\n', [{ kind: 'error', errno: -22 }]],
    [6, 'set=1\nreplace_peers=false\n\n', [{ kind: 'error', errno: -22 }]],
    [7, 'set=1\nendpoint=1.2.3.4:5\n\n', [{ kind: 'error', errno: -22 }]], // a peer key before any public_key
    [8, `set=1\npublic_key=${hex(key(1))}\nprotocol_version=2\n\n`, [{ kind: 'error', errno: -22 }]],
    [9, `set=1\npublic_key=${hex(key(1))}\nallowed_ip=10.0.0.1\n\n`, [{ kind: 'error', errno: -22 }]],
    [10, `set=1\npublic_key=${hex(key(1))}\nendpoint=example.com:1\n\n`, [{ kind: 'error', errno: -22 }]],
    [
      11,
      `set=1\npublic_key=${hex(key(1))}\npersistent_keepalive_interval=70000\n\n`,
      [{ kind: 'error', errno: -22 }],
    ],
    [12, 'get=1\nx\n', [{ kind: 'error', errno: -22 }]],
    [13, 'hello\nget=1\n\n', [{ kind: 'close' }]],
    [14, '\n', [{ kind: 'close' }]],
    [15, 'set=1\nbad\nlisten_port=1\n\nget=1\n\n', [{ kind: 'error', errno: -71 }, { kind: 'get' }]],
    [16, `set=1\n${'a'.repeat(5000)}`, [{ kind: 'close' }]],
  ];
  test.each(malformed)('malformed #%i', (_n, text, expected) => {
    expect(read(text)).toEqual(expected);
  });

  test('property: random and mutated request text never throws, and close is final', () => {
    const valid = `set=1\nprivate_key=${hex(key(3))}\nlisten_port=1\npublic_key=${hex(key(4))}\nendpoint=[::1]:5\nallowed_ip=::/0\n\nget=1\n\n`;
    const mutated = fc
      .tuple(fc.nat(valid.length), fc.nat(valid.length), fc.string({ maxLength: 20 }))
      .map(([a, b, insert]) => valid.slice(0, Math.min(a, b)) + insert + valid.slice(Math.max(a, b)));
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 300 }), mutated, fc.uint8Array({ maxLength: 300 })),
        (input) => {
          const reader = new UapiRequestReader();
          const requests = reader.push(input);
          const closeAt = requests.findIndex((r) => r.kind === 'close');
          expect(closeAt === -1 || closeAt === requests.length - 1).toBe(true);
          if (closeAt >= 0) expect(reader.push('get=1\n\n')).toEqual([]);
        },
      ),
    );
  });

  test('property: applying any parsed set to a device never throws', async () => {
    const line = fc.oneof(
      fc.constantFrom(
        'replace_peers=true',
        'remove=true',
        'update_only=true',
        'replace_allowed_ips=true',
        'protocol_version=1',
      ),
      fc.constantFrom(...[1, 2, 3].map((b) => `public_key=${hex(key(b))}`)),
      fc.constantFrom(
        'allowed_ip=10.0.0.0/8',
        'allowed_ip=-10.0.0.0/8',
        'allowed_ip=::/0',
        'endpoint=[::1]:9',
        'listen_port=0',
      ),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(line, { maxLength: 12 }), async (lines) => {
        const device = new MemoryDevice();
        const [request] = read(`set=1\n${lines.join('\n')}\n\n`);
        if (request?.kind === 'set') expect(await applySet(device, request.set)).toBe(0);
        expect(formatGet(device.status())).toMatch(/errno=0\n\n$/);
      }),
    );
  });
});

describe('parseUapiEndpoint', () => {
  const table: Array<[number, string, { address: string; port: number } | undefined]> = [
    [1, '192.0.2.1:51820', { address: '192.0.2.1', port: 51820 }],
    [2, '[2001:DB8::1]:1', { address: '2001:db8::1', port: 1 }],
    [3, '2001:db8::1:1', undefined],
    [4, '[192.0.2.1]:1', undefined],
    [5, '192.0.2.1:65536', undefined],
    [6, '192.0.2.1', undefined],
    [7, 'host:1', undefined],
  ];
  test.each(table)('#%i %s', (_n, text, expected) => expect(parseUapiEndpoint(text)).toEqual(expected));
});

describe('applySet', () => {
  test('device keys, peers, allowed-IP edits, remove, update_only, own key ignored', async () => {
    const device = new MemoryDevice();
    const own = device.publicKey.call({ privateKey: key(5) } as MemoryDevice)!;
    expect(
      await set(
        device,
        [
          `private_key=${hex(key(5))}`,
          'listen_port=51820',
          'fwmark=7',
          `public_key=${hex(key(1))}`,
          `preshared_key=${hex(key(2))}`,
          'endpoint=[2001:db8::1]:51820',
          'persistent_keepalive_interval=25',
          'allowed_ip=10.0.0.1/24',
          'allowed_ip=fd00::2/128',
          `public_key=${hex(own)}`,
          'allowed_ip=10.9.0.0/16',
          `public_key=${hex(key(3))}`,
          'update_only=true',
          'allowed_ip=10.3.0.0/16',
        ].join('\n'),
      ),
    ).toBe(0);
    expect(device.listenPort).toBe(51820);
    expect(device.fwmark).toBe(7);
    expect([...device.peerMap.keys()]).toEqual([hex(key(1))]);
    const peer = device.peerMap.get(hex(key(1)))!;
    expect(peer.allowedIps).toEqual(['10.0.0.0/24', 'fd00::2/128']);
    expect(peer.endpoint).toEqual({ address: '2001:db8::1', port: 51820 });
    expect(peer.persistentKeepaliveSeconds).toBe(25);
    expect(peer.presharedKey).toEqual(key(2));

    expect(
      await set(device, `public_key=${hex(key(1))}\nallowed_ip=-10.0.0.0/24\nallowed_ip=10.5.0.0/16`),
    ).toBe(0);
    expect(peer.allowedIps).toEqual(['fd00::2/128', '10.5.0.0/16']);
    expect(
      await set(device, `public_key=${hex(key(1))}\nreplace_allowed_ips=true\nallowed_ip=0.0.0.0/0`),
    ).toBe(0);
    expect(peer.allowedIps).toEqual(['0.0.0.0/0']);
    expect(await set(device, `public_key=${hex(key(1))}\npreshared_key=${hex(key(0))}`)).toBe(0);
    expect(peer.presharedKey).toBeUndefined();
    expect(await set(device, `public_key=${hex(key(1))}\nremove=true\nallowed_ip=1.0.0.0/8`)).toBe(0);
    expect(device.peerMap.size).toBe(0);
  });

  test('replace_peers, an all-zero private key, and a port that cannot be bound (-98)', async () => {
    const device = new MemoryDevice();
    await set(device, `private_key=${hex(key(5))}\npublic_key=${hex(key(1))}\npublic_key=${hex(key(2))}`);
    expect(device.peerMap.size).toBe(2);
    expect(await set(device, `replace_peers=true\npublic_key=${hex(key(3))}`)).toBe(0);
    expect([...device.peerMap.keys()]).toEqual([hex(key(3))]);
    expect(await set(device, `private_key=${hex(key(0))}`)).toBe(0);
    expect(device.privateKey).toBeUndefined();
    device.takenPorts.add(4000);
    expect(await set(device, 'listen_port=4000')).toBe(-98);
  });

  test('a set with an error changes nothing', async () => {
    const device = new MemoryDevice();
    expect(await set(device, `listen_port=1234\npublic_key=${hex(key(1))}\nallowed_ip=nonsense`)).toBe(-22);
    expect(device.listenPort).toBe(0);
    expect(device.peerMap.size).toBe(0);
  });
});

describe('formatGet', () => {
  test("wireguard-go's order, omissions and zero preshared key", () => {
    const status: UapiDeviceStatus = {
      privateKey: key(0xb8),
      listenPort: 51899,
      fwmark: 0,
      peers: [
        {
          publicKey: key(0x12),
          allowedIps: ['10.99.0.2/32', 'fd00::/64'],
          persistentKeepaliveSeconds: 0,
          endpoint: { address: 'fd00::1', port: 9 },
          rxBytes: 260,
          txBytes: 172,
          lastHandshakeUnixMs: 1_700_000_000_123.5,
        },
      ],
    };
    expect(formatGet(status)).toBe(
      [
        `private_key=${'b8'.repeat(32)}`,
        'listen_port=51899',
        `public_key=${'12'.repeat(32)}`,
        `preshared_key=${'00'.repeat(32)}`,
        'protocol_version=1',
        'endpoint=[fd00::1]:9',
        'last_handshake_time_sec=1700000000',
        'last_handshake_time_nsec=123500000',
        'tx_bytes=172',
        'rx_bytes=260',
        'persistent_keepalive_interval=0',
        'allowed_ip=10.99.0.2/32',
        'allowed_ip=fd00::/64',
        'errno=0',
        '',
        '',
      ].join('\n'),
    );
    expect(formatGet({ listenPort: 0, fwmark: 3, peers: [] })).toBe('fwmark=3\nerrno=0\n\n');
  });
});
