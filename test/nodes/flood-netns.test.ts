// The handshake flood as an attacker sends it to a running `tunnelbyte-node up`: initiations with valid
// mac1s from strangers, far more than one core answers, while a real Debian wireguard-go peer connects.
// The node must answer the flood with cookie replies (no DH each), and the peer must get through on the
// retry that carries its cookie's mac2: its first initiation is answered with a cookie reply, and it
// sends at most 2 retries in all (docs/WIREGUARD.md §3, under load). Runs the built daemon.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { Tunnel } from '../../crypto/tunnel.js';
import { secureRandomBytes } from '../../nodes/random.js';
import { builtProgram } from '../helpers/repo.js';
import {
  endpointString,
  netnsHarness,
  PAIR_ADDRESSES,
  TUNNEL_ADDRESSES,
  TUNNEL_PREFIX,
  wgConfig,
} from './netns.js';

const DAEMON = builtProgram('nodes/main.js');
const harness = netnsHarness();
const NODE_PORT = 51821;
const METRICS_PORT = 9587;
const INNER = TUNNEL_ADDRESSES; // a = wireguard-go, b = tunnelbyte-node

/**
 * Sends the initiations given in hex, 160 every 20 ms (ten times the backlog that means load, 8,000 a
 * second), from the node's own loopback, until killed; says "under load" at the first cookie reply.
 */
const FLOODER = `
const dgram = require('dgram');
const [port, ...hex] = process.argv.slice(1);
const initiations = hex.map((h) => Buffer.from(h, 'hex'));
const s = dgram.createSocket('udp4');
let cookies = 0;
s.on('message', (m) => { if (m[0] === 3 && cookies++ === 0) console.log('under load'); });
s.bind(0, '127.0.0.1', () => setInterval(() => {
  for (let i = 0; i < 160; i++) s.send(initiations[i % initiations.length], Number(port), '127.0.0.1');
}, 20));`;

/** An initiation to `nodeKey` from a stranger: a valid mac1, a static key the node does not know. */
function strangerInitiation(nodeKey: string): string {
  const stranger = new Tunnel({
    privateKey: randomBytes(32),
    randomBytes: secureRandomBytes,
    wallClockMs: Date.now,
  });
  stranger.upsertPeer(
    Buffer.from(nodeKey, 'base64'),
    { allowedIps: ['0.0.0.0/0'], endpoint: { address: '127.0.0.1', port: NODE_PORT } },
    0,
  );
  const packet = new Uint8Array(20);
  packet[0] = 0x45;
  const initiation = stranger.encapsulate(packet, 0).find((action) => action.kind === 'send');
  if (initiation?.kind !== 'send') throw new Error('the stranger made no initiation');
  return Buffer.from(initiation.datagram).toString('hex');
}

test('under a flood of initiations the node answers cookies, and a wireguard-go peer connects on the retry its cookie allows', async () => {
  const { a, b } = await harness.pair();
  const [clientKeys, nodeKeys] = [await harness.generateKeys(), await harness.generateKeys()];

  const configFile = join(harness.tempDir(), 'node.conf');
  writeFileSync(
    configFile,
    wgConfig({
      privateKey: nodeKeys.privateKey,
      listenPort: NODE_PORT,
      addresses: [`${INNER.b.v4}/${TUNNEL_PREFIX.v4}`],
      peer: { publicKey: clientKeys.publicKey, allowedIps: [`${INNER.a.v4}/32`] },
    }),
    { mode: 0o600 },
  );
  const nodeInterface = harness.interfaceName();
  const node = b.spawn('node', [
    DAEMON,
    ...['up', '--config', configFile, '--interface', nodeInterface],
    ...['--metrics', `127.0.0.1:${METRICS_PORT}`],
  ]);
  await node.waitFor(`${nodeInterface} up`);

  const flooder = b.spawn('node', [
    '-e',
    FLOODER,
    String(NODE_PORT),
    ...Array.from({ length: 4 }, () => strangerInitiation(nodeKeys.publicKey)),
  ]);
  await flooder.waitFor('under load');

  const client = await harness.wireguardGo(a);
  await client.setconf(
    wgConfig({
      privateKey: clientKeys.privateKey,
      peer: {
        publicKey: nodeKeys.publicKey,
        allowedIps: [`${INNER.b.v4}/32`],
        endpoint: endpointString(PAIR_ADDRESSES.b.v4, NODE_PORT),
      },
    }),
  );
  await harness.configureInterface(a, client.interfaceName, [`${INNER.a.v4}/${TUNNEL_PREFIX.v4}`]);
  // The first ping waits through the retries (5 s apart, wireguard-go's REKEY_TIMEOUT); 2 retries fit in 25 s.
  const pinged = await a.exec('ping', ['-c', '1', '-W', '25', INNER.b.v4]);
  await flooder.stop();

  expect(pinged.stdout).toContain('1 received');
  const log = client.process.output();
  const count = (text: string) => log.split('\n').filter((line) => line.includes(text)).length;
  expect(count('Receiving cookie response')).toBeGreaterThanOrEqual(1);
  expect(count('Received handshake response')).toBe(1);
  expect(count('Sending handshake initiation')).toBeLessThanOrEqual(3);

  const metrics = (await b.exec('curl', ['-s', `http://127.0.0.1:${METRICS_PORT}/metrics`])).stdout;
  const cookies = /^tunnelbyte_node_drops_total\{reason="cookie_sent"\} (\d+)$/m.exec(metrics);
  expect(Number(cookies?.[1])).toBeGreaterThan(1000);
  // Still serving once the flood is over.
  expect((await a.exec('ping', ['-c', '2', '-i', '0.2', '-W', '2', INNER.b.v4])).stdout).toContain(
    '2 received',
  );
}, 60_000);
