import { MAX_STAGED_PACKETS } from '../../crypto/constants.js';
import { Keypair } from '../../crypto/keypair.js';
import { WIREGUARD, createInitiation, localStatic } from '../../crypto/noise.js';
import { Peer } from '../../crypto/peer.js';
import { TAI64N, clamp, publicKey } from '../../crypto/primitives.js';

const local = localStatic(clamp(new Uint8Array(32).fill(3)));
const remotePublic = publicKey(clamp(new Uint8Array(32).fill(4)));

function makePeer(presharedKey?: Uint8Array) {
  const released: number[] = [];
  const peer = new Peer({
    publicKey: remotePublic,
    local,
    presharedKey,
    releaseIndex: (index) => released.push(index),
    timers: { jitter: () => 0 },
  });
  return { peer, released };
}

describe('Peer', () => {
  test('1. its name is the base64 public key; the key is copied', () => {
    const key = remotePublic.slice();
    const peer = new Peer({
      publicKey: key,
      local,
      presharedKey: undefined,
      releaseIndex: () => {},
      timers: { jitter: () => 0 },
    });
    key.fill(0);
    expect(peer.name).toBe(Buffer.from(remotePublic).toString('base64'));
    expect(peer.publicKey).toEqual(remotePublic);
  });

  test('2. staging keeps at most 128 packets, dropping the oldest, and copies them', () => {
    const { peer } = makePeer();
    const packet = new Uint8Array(1);
    for (let i = 0; i < MAX_STAGED_PACKETS; i++) {
      packet[0] = i;
      expect(peer.stage(packet)).toBe(true);
    }
    packet[0] = 200;
    expect(peer.stage(packet)).toBe(false);
    const staged = peer.takeStaged();
    expect(staged).toHaveLength(MAX_STAGED_PACKETS);
    expect(staged[0]![0]).toBe(1); // packet 0 was dropped
    expect(staged[MAX_STAGED_PACKETS - 1]![0]).toBe(200);
    expect(peer.stagedCount).toBe(0);
  });

  test('3. roaming replaces the endpoint with a copy of the source', () => {
    const { peer } = makePeer();
    expect(peer.endpoint).toBeUndefined();
    const from = { address: '192.0.2.1', port: 51820 };
    peer.roamTo(from);
    expect(peer.endpoint).toEqual(from);
    expect(peer.endpoint).not.toBe(from);
    peer.roamTo({ address: '2001:db8::1', port: 1 });
    expect(peer.endpoint).toEqual({ address: '2001:db8::1', port: 1 });
  });

  test('4. the pre-shared key is 32 zero bytes in the handshake keys until set, and can be cleared', () => {
    const { peer } = makePeer();
    expect(peer.hasPresharedKey).toBe(false);
    expect(peer.keys.presharedKey).toEqual(new Uint8Array(32));
    const psk = new Uint8Array(32).fill(9);
    peer.setPresharedKey(local, psk);
    expect(peer.hasPresharedKey).toBe(true);
    expect(peer.keys.presharedKey).toEqual(psk);
    expect(peer.presharedKeyCopy).toEqual(psk);
    peer.setPresharedKey(local, undefined);
    expect(peer.hasPresharedKey).toBe(false);
    expect(peer.keys.presharedKey).toEqual(new Uint8Array(32));
    peer.setPresharedKey(local, new Uint8Array(32)); // all zero, as UAPI writes "none"
    expect(peer.hasPresharedKey).toBe(false);
    expect(() => peer.setPresharedKey(local, new Uint8Array(31))).toThrow(RangeError);
  });

  test('5. a low-order public key gives a peer without static-static DH (unusable)', () => {
    const peer = new Peer({
      publicKey: new Uint8Array(32), // the identity point
      local,
      presharedKey: undefined,
      releaseIndex: () => {},
      timers: { jitter: () => 0 },
    });
    expect(peer.keys.staticStatic).toBeUndefined();
  });

  test('6. clearing the handshake frees its index and wipes its ephemeral key', () => {
    const { peer, released } = makePeer();
    const ephemeral = clamp(new Uint8Array(32).fill(5));
    const created = createInitiation(WIREGUARD, local, peer.keys, ephemeral, TAI64N(0), 77);
    if (!created.ok) throw new Error('initiation');
    peer.handshake = created.state;
    peer.clearHandshake();
    expect(released).toEqual([77]);
    expect(peer.handshake.state).toBe('zeroed');
    expect(ephemeral.every((b) => b === 0)).toBe(true);
  });

  test('7. zeroAndFlush releases every keypair index and empties the queue', () => {
    const { peer, released } = makePeer();
    const keys = () => ({ sendKey: new Uint8Array(32).fill(1), receiveKey: new Uint8Array(32).fill(2) });
    peer.keypairs.installAsInitiator(new Keypair(keys(), 5, 6, 0, true));
    peer.keypairs.installAsResponder(new Keypair(keys(), 7, 8, 0, false));
    peer.stage(new Uint8Array(3));
    peer.zeroAndFlush();
    expect(released.sort()).toEqual([5, 7]);
    expect(peer.keypairs.current).toBeUndefined();
    expect(peer.stagedCount).toBe(0);
  });
});
