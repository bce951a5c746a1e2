import { INITIATION_MAC1_OFFSET, INITIATION_MAC2_OFFSET } from '../../crypto/constants.js';
import { Tunnel } from '../../crypto/tunnel.js';
import { clamp, publicKey } from '../../crypto/primitives.js';
import {
  A_INNER,
  B_INNER,
  TunnelPair,
  WALL_CLOCK_BASE_MS,
  ipv4Packet,
  ipv6Packet,
  seededRandom,
  sizes,
} from './tunnel-pair.js';

const PING = 84;
const PING_DATAGRAM = 128; // 16-byte header + 84 padded to 96 + 16-byte tag

describe('Tunnel: handshake and data between two engines', () => {
  test('1. A initiates: initiation, response, then the staged packet, delivered exactly', () => {
    const pair = new TunnelPair();
    const packet = pair.packet('a');
    const flow = pair.send('a', packet);
    expect(sizes(flow, 'a')).toEqual([148, PING_DATAGRAM]);
    expect(sizes(flow, 'b')).toEqual([92]);
    expect(flow.delivered.b).toEqual([packet]);
    expect(flow.drops).toEqual({ a: [], b: [] });
    expect(pair.status('a').lastHandshakeUnixMs).toBe(WALL_CLOCK_BASE_MS);
    expect(pair.status('b').lastHandshakeUnixMs).toBe(WALL_CLOCK_BASE_MS);
  });

  test('2. B initiates when it knows A’s endpoint', () => {
    const pair = new TunnelPair({ bKnowsA: true });
    const packet = pair.packet('b');
    const flow = pair.send('b', packet);
    expect(sizes(flow, 'b')).toEqual([148, PING_DATAGRAM]);
    expect(sizes(flow, 'a')).toEqual([92]);
    expect(flow.delivered.a).toEqual([packet]);
  });

  test('3. B cannot reach A before it learns A’s endpoint', () => {
    const pair = new TunnelPair();
    expect(pair.b.encapsulate(pair.packet('b'), 0)).toEqual([{ kind: 'drop', reason: 'no_endpoint' }]);
  });

  test('4. data both ways after the handshake; padding is removed via the IP header length', () => {
    const pair = new TunnelPair();
    pair.connect('a');
    for (const length of [20, 21, 84, 100, 1419, 1420]) {
      const there = pair.packet('a', length, length & 0xff);
      const back = pair.packet('b', length, ~length & 0xff);
      expect(pair.send('a', there).delivered.b).toEqual([there]);
      expect(pair.send('b', back).delivered.a).toEqual([back]);
    }
  });

  test('5. IPv6 packets route and deliver', () => {
    const pair = new TunnelPair();
    const aInner = new Uint8Array(16).fill(0).fill(0xfd, 0, 1);
    aInner[15] = 1;
    const bInner = aInner.slice();
    bInner[15] = 2;
    pair.a.upsertPeer(pair.keys.b.publicKey, { allowedIps: [`${B_INNER}/32`, 'fd00::2/128'] }, 0);
    pair.b.upsertPeer(pair.keys.a.publicKey, { allowedIps: [`${A_INNER}/32`, 'fd00::1/128'] }, 0);
    const there = ipv6Packet(aInner, bInner);
    const back = ipv6Packet(bInner, aInner, 41);
    expect(pair.send('a', there).delivered.b).toEqual([there]);
    expect(pair.send('b', back).delivered.a).toEqual([back]);
  });

  test('6. exact byte counters (§7.5): after a handshake and N pings, 148/92 + N × 128 each way', () => {
    const pair = new TunnelPair();
    const n = 10;
    for (let i = 0; i < n; i++) {
      expect(pair.send('a', pair.packet('a', PING)).delivered.b).toHaveLength(1);
      expect(pair.send('b', pair.packet('b', PING)).delivered.a).toHaveLength(1);
    }
    expect(pair.status('a')).toMatchObject({
      txBytes: 148 + n * PING_DATAGRAM,
      rxBytes: 92 + n * PING_DATAGRAM,
    });
    expect(pair.status('b')).toMatchObject({
      txBytes: 92 + n * PING_DATAGRAM,
      rxBytes: 148 + n * PING_DATAGRAM,
    });
  });

  test('7. the inner source must route back to the sending peer (cryptokey routing)', () => {
    const pair = new TunnelPair();
    pair.connect('a');
    const spoofed = ipv4Packet('10.9.0.99', A_INNER);
    const flow = pair.send('b', spoofed);
    expect(flow.delivered.a).toEqual([]);
    expect(flow.drops.a).toEqual(['allowed_ips_violation']);
  });

  test('8. a replayed initiation yields nothing', () => {
    const pair = new TunnelPair();
    const [initiation] = pair.a.encapsulate(pair.packet('a'), 0);
    if (initiation?.kind !== 'send') throw new Error('expected an initiation');
    const first = pair.b.decapsulate(initiation.datagram, pair.endpoints.a, 0);
    expect(first.map((a) => a.kind)).toEqual(['send']);
    pair.now = 1000; // past the 20 ms flood limit: only the timestamp rule applies
    expect(pair.b.decapsulate(initiation.datagram, pair.endpoints.a, 1000)).toEqual([
      { kind: 'drop', reason: 'handshake_invalid' },
    ]);
  });

  test('9. a replayed transport message is dropped after authenticating', () => {
    const pair = new TunnelPair();
    pair.connect('a');
    const [data] = pair.a.encapsulate(pair.packet('a'), 0);
    if (data?.kind !== 'send') throw new Error('expected a transport message');
    expect(pair.b.decapsulate(data.datagram, pair.endpoints.a, 0).map((a) => a.kind)).toEqual(['deliver']);
    expect(pair.b.decapsulate(data.datagram, pair.endpoints.a, 0)).toEqual([
      { kind: 'drop', reason: 'replay' },
    ]);
  });

  test('9b. decryptInPlace: the delivered packet is a view into the datagram; a replayed copy is still a replay', () => {
    const pair = new TunnelPair({ decryptInPlace: true });
    pair.connect('a');
    const packet = pair.packet('a', 100, 0x5a);
    const [data] = pair.a.encapsulate(packet, 0);
    if (data?.kind !== 'send') throw new Error('expected a transport message');
    const copy = data.datagram.slice();
    const [delivered] = pair.b.decapsulate(data.datagram, pair.endpoints.a, 0);
    if (delivered?.kind !== 'deliver') throw new Error('expected a delivery');
    expect(delivered.packet).toEqual(packet);
    expect(delivered.packet.buffer).toBe(data.datagram.buffer);
    expect(pair.b.decapsulate(copy, pair.endpoints.a, 0)).toEqual([{ kind: 'drop', reason: 'replay' }]);
    // A forged copy fails authentication and is not delivered, in place or not.
    copy[copy.length - 1]! ^= 1;
    expect(pair.b.decapsulate(copy, pair.endpoints.a, 0)).toEqual([
      { kind: 'drop', reason: 'decrypt_failed' },
    ]);
  });

  test('9c. reuseSendBuffers: a long then a short packet from one reused buffer both arrive intact', () => {
    const pair = new TunnelPair({ aReusesSendBuffers: true });
    pair.connect('a');
    const long = pair.packet('a', 1400, 0x11);
    const short = pair.packet('a', 60, 0x22);
    const datagrams = [long, short].map((packet) => {
      const [data] = pair.a.encapsulate(packet, 0);
      if (data?.kind !== 'send') throw new Error('expected a transport message');
      return data.datagram.slice(); // valid until a is next called: copied at once, as the node does
    });
    expect(datagrams.map((d) => d.length)).toEqual([16 + 1408 + 16, 16 + 64 + 16]); // padded to 16
    const delivered = datagrams.map((datagram) => pair.b.decapsulate(datagram, pair.endpoints.a, 0));
    expect(delivered).toEqual([
      [{ kind: 'deliver', packet: long, peer: expect.any(String) }],
      [{ kind: 'deliver', packet: short, peer: expect.any(String) }],
    ]);
  });

  test('9d. reuseActions: the data path hands back one array and the same actions each call, filled for it', () => {
    const pair = new TunnelPair({ reuseActions: true });
    pair.connect('a');
    const [first, second] = [pair.packet('a', 100, 0x11), pair.packet('a', 200, 0x22)];
    const sealed = pair.a.encapsulate(first, 0);
    const action = sealed[0]!;
    if (action.kind !== 'send') throw new Error('expected a transport message');
    const datagrams = [action.datagram];
    expect(pair.a.encapsulate(second, 0)).toBe(sealed); // the same array …
    expect(sealed).toEqual([action]); // … holding the same action, now for the second packet
    datagrams.push(action.datagram);
    const delivered = pair.b.decapsulate(datagrams[0]!, pair.endpoints.a, 0);
    expect(delivered).toEqual([{ kind: 'deliver', packet: first, peer: expect.any(String) }]);
    expect(pair.b.decapsulate(datagrams[1]!, pair.endpoints.a, 0)).toBe(delivered);
    expect(delivered).toEqual([{ kind: 'deliver', packet: second, peer: expect.any(String) }]);
    // A rejection is still its own answer, and counted by its reason.
    expect(pair.b.decapsulate(datagrams[1]!, pair.endpoints.a, 0)).toEqual([
      { kind: 'drop', reason: 'replay' },
    ]);
  });

  test('9e. the node’s options, steady state: 1,000 packets each way, and each engine hands back one result array, one action and one datagram view throughout, and one delivered view for a reused datagram view', () => {
    const pair = new TunnelPair({ decryptInPlace: true, aReusesSendBuffers: true, reuseActions: true });
    pair.connect('a');
    const toB = pair.packet('a', 1000, 0x11);
    const toA = pair.packet('b', 1000, 0x22);
    // Distinct objects handed back, per engine and call: a new one per packet would count 1,000.
    const distinct = new Map<string, Set<unknown>>();
    const count = (what: string, object: unknown) => {
      const seen = distinct.get(what) ?? new Set<unknown>();
      distinct.set(what, seen.add(object));
    };
    let delivered = 0;
    for (let i = 0; i < 1000; i++) {
      const now = 1000 + i * 0.37; // fractional milliseconds, as the node's clock
      const sealed = pair.a.encapsulate(toB, now);
      const send = sealed[0];
      if (sealed.length !== 1 || send?.kind !== 'send') throw new Error('expected one transport message');
      count('a.encapsulate result', sealed);
      count('a send action', send);
      count('a datagram', send.datagram);
      const opened = pair.b.decapsulate(send.datagram, pair.endpoints.a, now);
      const deliver = opened[0];
      if (opened.length !== 1 || deliver?.kind !== 'deliver') throw new Error('expected one delivery');
      if (deliver.packet.every((byte, k) => byte === toB[k])) delivered++;
      count('b.decapsulate result', opened);
      count('b deliver action', deliver);
      count('b delivered packet', deliver.packet);

      const back = pair.b.encapsulate(toA, now);
      const reply = back[0];
      if (back.length !== 1 || reply?.kind !== 'send') throw new Error('expected one transport message');
      count('b.encapsulate result', back);
      count('b send action', reply);
      const received = pair.a.decapsulate(reply.datagram, pair.endpoints.b, now);
      if (received[0]?.kind === 'deliver' && received[0].packet.every((byte, k) => byte === toA[k]))
        delivered++;
      count('a.decapsulate result', received);
      count('a deliver action', received[0]);
    }
    expect(delivered).toBe(2000);
    expect(Object.fromEntries([...distinct].map(([what, seen]) => [what, seen.size]))).toEqual({
      'a.encapsulate result': 1,
      'a send action': 1,
      'a datagram': 1,
      'b.decapsulate result': 1,
      'b deliver action': 1,
      'b delivered packet': 1, // a's datagram view is the same object every time, and so is b's view into it
      'b.encapsulate result': 1,
      'b send action': 1,
      'a.decapsulate result': 1,
      'a deliver action': 1,
    });
  });

  test('9f. a reused datagram view carrying packets of other lengths delivers each whole, its view kept per length', () => {
    const pair = new TunnelPair({ decryptInPlace: true, aReusesSendBuffers: true, reuseActions: true });
    pair.connect('a');
    const packets = [1000, 60, 1000, 1000].map((length, i) => pair.packet('a', length, 0x30 + i));
    const views = packets.map((packet) => {
      const [send] = pair.a.encapsulate(packet, 0);
      if (send?.kind !== 'send') throw new Error('expected a transport message');
      const [deliver] = pair.b.decapsulate(send.datagram, pair.endpoints.a, 0);
      if (deliver?.kind !== 'deliver') throw new Error('expected a delivery');
      expect(deliver.packet).toEqual(packet);
      return deliver.packet;
    });
    expect(views[1]).not.toBe(views[0]); // another length: a view of its own
    expect(views[3]).toBe(views[2]); // the same datagram view and length again: the same view
  });

  test('10. typed drops for garbage, unknown indices and bad mac1, never an answer', () => {
    const pair = new TunnelPair();
    const from = pair.endpoints.a;
    expect(pair.b.decapsulate(new Uint8Array(3), from, 0)).toEqual([{ kind: 'drop', reason: 'malformed' }]);
    const transport = new Uint8Array(48);
    transport[0] = 4;
    expect(pair.b.decapsulate(transport, from, 0)).toEqual([{ kind: 'drop', reason: 'unknown_index' }]);
    const cookie = new Uint8Array(64);
    cookie[0] = 3;
    expect(pair.b.decapsulate(cookie, from, 0)).toEqual([{ kind: 'drop', reason: 'unknown_index' }]);
    const [initiation] = pair.a.encapsulate(pair.packet('a'), 0);
    if (initiation?.kind !== 'send') throw new Error('expected an initiation');
    const badMac = initiation.datagram.slice();
    badMac[120]! ^= 1;
    expect(pair.b.decapsulate(badMac, from, 0)).toEqual([{ kind: 'drop', reason: 'mac1_invalid' }]);
    const badStatic = initiation.datagram.slice();
    badStatic[50]! ^= 1; // mac1 is then wrong too: re-deriving it is what an attacker cannot skip
    expect(pair.b.decapsulate(badStatic, from, 0)).toEqual([{ kind: 'drop', reason: 'mac1_invalid' }]);
  });

  test('11. no route, malformed TUN packets', () => {
    const pair = new TunnelPair();
    expect(pair.a.encapsulate(ipv4Packet(A_INNER, '10.9.0.3'), 0)).toEqual([
      { kind: 'drop', reason: 'no_route' },
    ]);
    expect(pair.a.encapsulate(new Uint8Array(10).fill(0x45), 0)).toEqual([
      { kind: 'drop', reason: 'malformed' },
    ]);
    expect(pair.a.encapsulate(new Uint8Array(0), 0)).toEqual([{ kind: 'drop', reason: 'malformed' }]);
  });

  test('12. roaming: B answers at the address A’s latest authenticated packet came from', () => {
    const pair = new TunnelPair();
    pair.connect('a');
    pair.endpoints.a = { address: '203.0.113.7', port: 4000 };
    pair.send('a');
    const flow = pair.send('b');
    expect(flow.sent.b.map((s) => s.to)).toEqual([{ address: '203.0.113.7', port: 4000 }]);
    expect(flow.delivered.a).toHaveLength(1);
    expect(pair.status('b').endpoint).toEqual({ address: '203.0.113.7', port: 4000 });
  });

  test('13. an unauthenticated datagram from a new address does not move the endpoint', () => {
    const pair = new TunnelPair();
    pair.connect('a');
    const [data] = pair.a.encapsulate(pair.packet('a'), 0);
    if (data?.kind !== 'send') throw new Error('expected a transport message');
    const forged = data.datagram.slice();
    forged[40]! ^= 1;
    const attacker = { address: '203.0.113.66', port: 666 };
    expect(pair.b.decapsulate(forged, attacker, 0)).toEqual([{ kind: 'drop', reason: 'decrypt_failed' }]);
    expect(pair.status('b').endpoint).toEqual(pair.endpoints.a);
  });

  test('14. the responder keeps its old keypair until the first packet on the new one', () => {
    const pair = new TunnelPair();
    pair.connect('a');
    const oldIndexAtA = pair.send('b').sent.b[0]!.datagram.slice(4, 8);

    // A starts a new handshake (rekey after 120 s); B answers, but the response is held back.
    pair.now = 121_000;
    const [data, initiation] = pair.a.encapsulate(pair.packet('a'), pair.now);
    if (data?.kind !== 'send' || initiation?.kind !== 'send') throw new Error('expected data + initiation');
    expect(initiation.datagram.length).toBe(148);
    pair.b.decapsulate(data.datagram, pair.endpoints.a, pair.now);
    const [response] = pair.b.decapsulate(initiation.datagram, pair.endpoints.a, pair.now);
    if (response?.kind !== 'send') throw new Error('expected a response');

    // B still sends with the old keypair, which A can open.
    const stillOld = pair.send('b');
    expect(stillOld.sent.b[0]!.datagram.slice(4, 8)).toEqual(oldIndexAtA);
    expect(stillOld.delivered.a).toHaveLength(1);

    // The response reaches A; A confirms with a keepalive on the new keypair, which rotates B.
    const confirm = pair.flow('b', [response]);
    expect(sizes(confirm, 'a')).toEqual([32]);
    const rotated = pair.send('b');
    expect(rotated.sent.b[0]!.datagram.slice(4, 8)).not.toEqual(oldIndexAtA);
    expect(rotated.delivered.a).toHaveLength(1);
  });

  test('15. a low-order peer public key is refused: no handshake is ever attempted', () => {
    const random = seededRandom(7);
    const tunnel = new Tunnel({ privateKey: random(32), randomBytes: random, wallClockMs: () => 0 });
    const lowOrder = new Uint8Array(32); // the identity point; DH with it is all zero
    tunnel.upsertPeer(
      lowOrder,
      { allowedIps: ['10.0.0.0/8'], endpoint: { address: '127.0.0.1', port: 1 } },
      0,
    );
    expect(tunnel.encapsulate(ipv4Packet('10.9.9.9', '10.1.2.3'), 0)).toEqual([
      { kind: 'drop', reason: 'handshake_invalid' },
    ]);
    expect(tunnel.tick(100_000)).toEqual([]);
  });

  test('16. a handshake from an unknown peer is dropped as invalid', () => {
    const pair = new TunnelPair();
    pair.b.removePeer(pair.keys.a.publicKey);
    const [initiation] = pair.a.encapsulate(pair.packet('a'), 0);
    if (initiation?.kind !== 'send') throw new Error('expected an initiation');
    expect(pair.b.decapsulate(initiation.datagram, pair.endpoints.a, 0)).toEqual([
      { kind: 'drop', reason: 'handshake_invalid' },
    ]);
  });

  test('17. a newer initiation within 20 ms of the last accepted one is dropped (flood rule)', () => {
    const pair = new TunnelPair();
    const [first] = pair.a.encapsulate(pair.packet('a'), 0);
    // A twin of A whose wall clock is 100 ms ahead: its initiation carries a strictly greater timestamp.
    const random = seededRandom(99);
    const twin = new Tunnel({
      privateKey: pair.keys.a.privateKey,
      randomBytes: random,
      wallClockMs: () => WALL_CLOCK_BASE_MS + 100,
    });
    twin.upsertPeer(pair.keys.b.publicKey, { allowedIps: [`${B_INNER}/32`], endpoint: pair.endpoints.b }, 0);
    const [second] = twin.encapsulate(pair.packet('a'), 0);
    if (first?.kind !== 'send' || second?.kind !== 'send') throw new Error('expected two initiations');
    expect(sizes(pair.flow('a', [first]), 'b')).toEqual([92]);
    expect(pair.b.decapsulate(second.datagram, pair.endpoints.a, 10)).toEqual([
      { kind: 'drop', reason: 'handshake_invalid' },
    ]);
    const later = pair.b.decapsulate(second.datagram, pair.endpoints.a, 20);
    expect(later.map((a) => (a.kind === 'send' ? a.datagram.length : a.kind))).toEqual([92]);
  });
});

describe('Tunnel: cookies under load', () => {
  test('1. under load a handshake without mac2 gets a cookie reply; the retransmission with mac2 is accepted', () => {
    const pair = new TunnelPair();
    pair.b.markUnderLoad(0);
    const first = pair.send('a');
    expect(sizes(first, 'a')).toEqual([148]);
    expect(sizes(first, 'b')).toEqual([64]); // the cookie reply
    expect(first.drops.b).toEqual(['cookie_sent']);
    expect(first.drops.a).toEqual([]); // the reply was consumed
    expect(first.delivered.b).toEqual([]);

    // The retransmit timer fires after 5 s + jitter; B is still under load.
    pair.now = 5_400;
    pair.b.markUnderLoad(pair.now);
    const retry = pair.flow('a', pair.a.tick(pair.now));
    expect(sizes(retry, 'a')[0]).toBe(148);
    expect(retry.sent.a[0]!.datagram.slice(132).some((byte) => byte !== 0)).toBe(true); // mac2 set
    expect(sizes(retry, 'b')).toEqual([92]);
    expect(retry.delivered.b).toHaveLength(1); // the staged packet
  });

  test('2. not under load, mac2 is ignored', () => {
    const pair = new TunnelPair();
    expect(sizes(pair.send('a'), 'b')).toEqual([92]);
  });

  test('3. a cookie reply that does not authenticate is dropped', () => {
    const pair = new TunnelPair();
    pair.b.markUnderLoad(0);
    const [initiation] = pair.a.encapsulate(pair.packet('a'), 0);
    if (initiation?.kind !== 'send') throw new Error('expected an initiation');
    const [reply] = pair.b.decapsulate(initiation.datagram, pair.endpoints.a, 0);
    if (reply?.kind !== 'send') throw new Error('expected a cookie reply');
    const forged = reply.datagram.slice();
    forged[40]! ^= 1;
    expect(pair.a.decapsulate(forged, pair.endpoints.b, 0)).toEqual([
      { kind: 'drop', reason: 'decrypt_failed' },
    ]);
    expect(pair.a.decapsulate(reply.datagram, pair.endpoints.b, 0)).toEqual([]);
  });

  test('4. under load, valid mac2 is still subject to the per-source rate limit', () => {
    const pair = new TunnelPair();
    pair.b.markUnderLoad(0);
    pair.send('a'); // gets A a cookie
    const drops: string[] = [];
    // Build fresh initiations carrying mac2 by retransmitting from A, without delivering them.
    const initiations: Uint8Array[] = [];
    for (let i = 1; i <= 7; i++) {
      pair.now = i * 5_400;
      const [action] = pair.a.tick(pair.now);
      if (action?.kind === 'send') initiations.push(action.datagram);
    }
    expect(initiations.length).toBe(7);
    pair.b.markUnderLoad(pair.now);
    for (const datagram of initiations) {
      for (const action of pair.b.decapsulate(datagram, pair.endpoints.a, pair.now)) {
        if (action.kind === 'drop') drops.push(action.reason);
      }
    }
    expect(drops.filter((reason) => reason === 'rate_limited')).toHaveLength(2); // burst of 5
  });

  test('5. screenInitiation passes an initiation with a valid mac1 and drops the rest of its type and length', () => {
    const pair = new TunnelPair();
    const [action] = pair.a.encapsulate(pair.packet('a'), 0);
    if (action?.kind !== 'send') throw new Error('expected an initiation');
    const initiation = action.datagram;
    const withByte = (index: number) => {
      const copy = initiation.slice();
      copy[index]! ^= 1;
      return copy;
    };
    const mac1Invalid = [{ kind: 'drop', reason: 'mac1_invalid' }];
    expect(pair.b.screenInitiation(initiation)).toBeUndefined();
    expect(pair.b.screenInitiation(withByte(8))).toEqual(mac1Invalid); // the ephemeral key, under mac1
    expect(pair.b.screenInitiation(withByte(INITIATION_MAC1_OFFSET + 4))).toEqual(mac1Invalid);
    expect(pair.a.screenInitiation(initiation)).toEqual(mac1Invalid); // made for b's key, not a's
    expect(pair.b.screenInitiation(withByte(1))).toEqual([{ kind: 'drop', reason: 'malformed' }]); // the type's u32
    expect(pair.b.screenInitiation(withByte(INITIATION_MAC2_OFFSET + 4))).toBeUndefined(); // mac2 is after mac1
  });
});

describe('Tunnel: configuration (the UAPI-facing parts)', () => {
  test('1. upsertPeer: allowedIps replace the whole set; peers() reports it', () => {
    const pair = new TunnelPair();
    pair.a.upsertPeer(pair.keys.b.publicKey, { allowedIps: ['10.9.0.0/24', 'fd00::/64'] }, 0);
    expect(pair.status('a').allowedIps).toEqual(['10.9.0.0/24', 'fd00::/64']);
    pair.a.upsertPeer(pair.keys.b.publicKey, { allowedIps: ['10.8.0.0/16'] }, 0);
    expect(pair.status('a').allowedIps).toEqual(['10.8.0.0/16']);
    expect(pair.a.encapsulate(pair.packet('a'), 0)).toEqual([{ kind: 'drop', reason: 'no_route' }]);
    pair.a.upsertPeer(pair.keys.b.publicKey, { endpoint: pair.endpoints.b }, 0);
    expect(pair.status('a').allowedIps).toEqual(['10.8.0.0/16']); // absent: unchanged
  });

  test('2. invalid settings throw (programmer error) and change nothing', () => {
    const pair = new TunnelPair();
    expect(() => pair.a.upsertPeer(pair.keys.b.publicKey, { allowedIps: ['10.0.0.0/33'] }, 0)).toThrow(
      RangeError,
    );
    expect(() => pair.a.upsertPeer(new Uint8Array(31), {}, 0)).toThrow(RangeError);
    expect(() => pair.a.upsertPeer(pair.keys.b.publicKey, { persistentKeepaliveSeconds: 70_000 }, 0)).toThrow(
      RangeError,
    );
    expect(pair.status('a').allowedIps).toEqual([`${B_INNER}/32`]);
  });

  test('3. matching pre-shared keys complete the handshake; a mismatch fails at the initiator', () => {
    const psk = new Uint8Array(32).fill(0x42);
    const good = new TunnelPair({ presharedKey: psk });
    expect(good.send('a').delivered.b).toHaveLength(1);
    expect(good.status('a').presharedKey).toEqual(psk);

    const bad = new TunnelPair();
    bad.a.upsertPeer(bad.keys.b.publicKey, { presharedKey: psk }, 0);
    const flow = bad.send('a');
    expect(flow.drops.a).toEqual(['handshake_invalid']);
    expect(flow.delivered.b).toEqual([]);

    bad.a.upsertPeer(bad.keys.b.publicKey, { presharedKey: null }, 0);
    expect(bad.status('a').presharedKey).toBeUndefined();
    bad.now = 6_000; // the retransmission now carries the right (absent) PSK
    expect(bad.advance(0).delivered.b).toHaveLength(1);
  });

  test('4. turning persistent keepalive on while a session is up sends one keepalive at once', () => {
    const pair = new TunnelPair();
    pair.connect('a');
    const actions = pair.a.upsertPeer(pair.keys.b.publicKey, { persistentKeepaliveSeconds: 25 }, 0);
    expect(actions.map((a) => (a.kind === 'send' ? a.datagram.length : a.kind))).toEqual([32]);
    expect(pair.status('a').persistentKeepaliveSeconds).toBe(25);
    // Already on: changing the interval sends nothing.
    expect(pair.a.upsertPeer(pair.keys.b.publicKey, { persistentKeepaliveSeconds: 30 }, 0)).toEqual([]);
  });

  test('5. persistent keepalive on without a session starts a handshake', () => {
    const pair = new TunnelPair();
    const actions = pair.a.upsertPeer(pair.keys.b.publicKey, { persistentKeepaliveSeconds: 25 }, 0);
    const flow = pair.flow('a', actions);
    expect(sizes(flow, 'a')).toEqual([148, 32]); // initiation, then the staged keepalive confirms
    expect(sizes(flow, 'b')).toEqual([92]);
  });

  test('6. removePeer wipes the session: later transport messages hit unknown indices', () => {
    const pair = new TunnelPair();
    pair.connect('a');
    const [data] = pair.a.encapsulate(pair.packet('a'), 0);
    if (data?.kind !== 'send') throw new Error('expected data');
    expect(pair.b.removePeer(pair.keys.a.publicKey)).toBe(true);
    expect(pair.b.removePeer(pair.keys.a.publicKey)).toBe(false);
    expect(pair.b.peers()).toEqual([]);
    expect(pair.b.decapsulate(data.datagram, pair.endpoints.a, 0)).toEqual([
      { kind: 'drop', reason: 'unknown_index' },
    ]);
    expect(pair.b.nextDeadline()).toBeUndefined();
  });

  test('7. our own public key is not accepted as a peer', () => {
    const pair = new TunnelPair();
    expect(pair.a.upsertPeer(pair.keys.a.publicKey, { allowedIps: ['10.0.0.0/8'] }, 0)).toEqual([]);
    expect(pair.a.peers()).toHaveLength(1);
  });

  test('8. setPrivateKey: the old session stops sending, and the peer must learn the new key', () => {
    const pair = new TunnelPair();
    pair.connect('a');
    const newPrivate = clamp(new Uint8Array(32).fill(0x33));
    pair.a.setPrivateKey(newPrivate);
    expect(pair.a.publicKey).toEqual(publicKey(newPrivate));
    // A starts a new handshake at once (not 5 s later), which B cannot authenticate: unknown static key.
    const staged = pair.packet('a', 100);
    const refused = pair.send('a', staged);
    expect(sizes(refused, 'a')).toEqual([148]);
    expect(refused.drops.b).toEqual(['handshake_invalid']);
    // B learns the new key; A's retransmission then completes and flushes the staged packet.
    pair.b.removePeer(pair.keys.a.publicKey);
    pair.b.upsertPeer(publicKey(newPrivate), { allowedIps: [`${A_INNER}/32`] }, pair.now);
    const retry = pair.advance(6_000);
    expect(sizes(retry, 'b')).toEqual([92]);
    expect(retry.delivered.b).toEqual([staged]);
  });

  test('9. peers() reports endpoint, counters and keys as copies', () => {
    const pair = new TunnelPair();
    pair.connect('a');
    const status = pair.status('b');
    expect(status.publicKey).toEqual(pair.keys.a.publicKey);
    expect(status.endpoint).toEqual(pair.endpoints.a);
    status.publicKey.fill(0);
    expect(pair.status('b').publicKey).toEqual(pair.keys.a.publicKey);
  });
});
