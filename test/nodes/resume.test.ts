// nodes/resume.ts: the peers' endpoints kept with a node's state across restarts, read back with
// every damage refused, and greeted by a real engine a few per event-loop turn, once each.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import nacl from 'tweetnacl';

import {
  INITIATION_SIZE,
  MESSAGE_INITIATION,
  REJECT_AFTER_TIME_MS,
  REKEY_TIMEOUT_MS,
} from '../../crypto/constants.js';
import { Tunnel, type TunnelAction } from '../../crypto/tunnel.js';
import {
  loadPeers,
  rememberedPeers,
  resumeHandshakes,
  savePeers,
  type RememberedPeer,
} from '../../nodes/resume.js';

const NOW = 1_800_000_000_000;
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
const peer = (lastHandshakeUnixMs: number, port = 40000): RememberedPeer => ({
  publicKey: b64(nacl.box.keyPair().publicKey),
  endpoint: { address: '192.0.2.7', port },
  lastHandshakeUnixMs,
});

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'tb-resume-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('the kept file', () => {
  test('1. written whole and owner-only; read back with only the peers of the last 3 minutes', async () => {
    const file = join(dir, 'peers.json');
    const recent = peer(NOW - 1000);
    const edge = peer(NOW - REJECT_AFTER_TIME_MS);
    await savePeers(file, [recent, edge, peer(NOW - REJECT_AFTER_TIME_MS - 1)]);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(await loadPeers(file, NOW)).toEqual({ peers: [recent, edge] });
  });

  test.each([
    [1, 'no file', null, undefined],
    [2, 'not JSON', '{"peers": [', /not a peers file/],
    [3, 'no peers list', '{"version":1}', /not a peers file/],
    [4, 'a list of garbage', JSON.stringify({ peers: [1, null, 'x', { publicKey: 'short' }] }), undefined],
  ])('2.%i %s → no peers', async (_n, _case, text, problem) => {
    const file = join(dir, 'peers.json');
    if (text !== null) writeFileSync(file, text);
    const loaded = await loadPeers(file, NOW);
    expect(loaded.peers).toEqual([]);
    if (problem) expect(loaded.problem).toMatch(problem);
    else expect(loaded.problem).toBeUndefined();
  });

  test.each([
    [1, 'a bad address', { endpoint: { address: 'example.com', port: 1 } }],
    [2, 'port 0', { endpoint: { address: '192.0.2.1', port: 0 } }],
    [3, 'port 65536', { endpoint: { address: '192.0.2.1', port: 65536 } }],
    [4, 'a key that is not 32 bytes', { publicKey: b64(new Uint8Array(31)) }],
    [5, 'no handshake time', { lastHandshakeUnixMs: 'soon' }],
  ])('3.%i an entry with %s is skipped, the others kept', async (_n, _case, damage) => {
    const file = join(dir, 'peers.json');
    const good = peer(NOW);
    writeFileSync(file, JSON.stringify({ version: 1, peers: [{ ...peer(NOW), ...damage }, good] }));
    expect((await loadPeers(file, NOW)).peers).toEqual([good]);
  });
});

describe('greeting with a real engine', () => {
  const engine = () => {
    const tunnel = new Tunnel({
      privateKey: nacl.randomBytes(32),
      randomBytes: nacl.randomBytes,
      wallClockMs: () => NOW,
    });
    const peers = Array.from({ length: 20 }, (_, i) => peer(NOW - 1000, 40000 + i));
    for (const p of peers) tunnel.upsertPeer(Buffer.from(p.publicKey, 'base64'), { allowedIps: [] }, 0);
    const sent: TunnelAction[] = [];
    const device = {
      resumeHandshake: (key: Uint8Array, at: RememberedPeer['endpoint']) =>
        sent.push(...tunnel.resumeHandshake(key, at, 0)),
    };
    return { tunnel, peers, sent, device };
  };

  test('1. one initiation per peer to its kept endpoint, 8 per event-loop turn, never retransmitted', async () => {
    const { tunnel, peers, sent, device } = engine();
    const greeting = resumeHandshakes(device, peers);
    expect(sent).toHaveLength(8); // the first turn's share, before anything else may run
    expect(await greeting).toBe(20);
    expect(sent).toHaveLength(20);
    for (const [i, action] of sent.entries()) {
      if (action.kind !== 'send') throw new Error(`expected a send, got ${action.kind}`);
      expect([action.datagram[0], action.datagram.length]).toEqual([MESSAGE_INITIATION, INITIATION_SIZE]);
      expect(action.to).toEqual(peers[i]!.endpoint);
    }
    // Greeting again sends nothing new (a handshake is under way); the retransmission timer gives up.
    await resumeHandshakes(device, peers);
    expect(sent).toHaveLength(20);
    expect(tunnel.tick(REKEY_TIMEOUT_MS * 2).filter((a) => a.kind === 'send')).toEqual([]);
    expect(tunnel.peers().map((p) => p.endpoint)).toEqual(peers.map((p) => p.endpoint));
  });

  test('2. stops early when told; unknown keys send nothing', async () => {
    const { peers, sent, device } = engine();
    const stop = new AbortController();
    const greeting = resumeHandshakes(device, peers, stop.signal);
    stop.abort();
    expect(await greeting).toBe(8);
    expect(await resumeHandshakes(device, [peer(NOW)])).toBe(1);
    expect(sent).toHaveLength(8);
  });

  test('3. what is kept: peers with a handshake and an endpoint', () => {
    const { tunnel } = engine();
    expect(rememberedPeers(tunnel)).toEqual([]); // configured, never handshook: nothing to greet
  });
});

test('the file holds no secret: keys are public keys only', async () => {
  const file = join(dir, 'peers.json');
  await savePeers(file, [peer(NOW)]);
  expect(Object.keys(JSON.parse(readFileSync(file, 'utf8')).peers[0]).sort()).toEqual([
    'endpoint',
    'lastHandshakeUnixMs',
    'publicKey',
  ]);
});
