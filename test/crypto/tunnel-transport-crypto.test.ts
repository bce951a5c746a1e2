// TunnelOptions.transportCrypto: the engine hands transport messages out to be sealed and opened (by
// nodes/ crypto threads) and keeps everything else. B runs that way here, with the shell's half done
// inline (tunnel-pair.ts InlineTransportCrypto), against A, a plain engine.
import { transportCounterLow } from '../../crypto/messages.js';
import { B_INNER, TunnelPair, ipv4Packet, sizes } from './tunnel-pair.js';

const PING = 84;
const PING_DATAGRAM = 128;

describe('Tunnel with transportCrypto', () => {
  test.each([
    [1, 'a'],
    [2, 'b'],
  ] as const)('%i. %s initiates; data both ways; §7.5 counters exact on both sides', (_n, initiator) => {
    const pair = new TunnelPair({ bTransportCrypto: true, bKnowsA: true });
    expect(pair.connect(initiator).delivered[initiator === 'a' ? 'b' : 'a']).toHaveLength(1);
    const n = 10;
    for (let i = 0; i < n; i++) {
      expect(pair.send('a', pair.packet('a', PING)).delivered.b).toEqual([pair.packet('a', PING)]);
      expect(pair.send('b', pair.packet('b', PING)).delivered.a).toEqual([pair.packet('b', PING)]);
    }
    const [a, b] = [pair.status('a'), pair.status('b')];
    expect([a.txBytes, a.rxBytes]).toEqual([b.rxBytes, b.txBytes]);
    expect(b.txBytes).toBeGreaterThanOrEqual(n * PING_DATAGRAM);
  });

  test('3. counters (nonces) are reserved once each, in order, keepalives included', () => {
    const pair = new TunnelPair({ bTransportCrypto: true });
    pair.connect('a');
    for (let i = 0; i < 5; i++) pair.send('b');
    pair.advance(11_000); // B's passive keepalive after A's last packet
    const counters = [...pair.bCrypto!.sealedCounters.values()];
    expect(counters).toHaveLength(1);
    expect(counters[0]).toEqual(counters[0]!.map((_c, i) => i));
    expect(counters[0]!.length).toBeGreaterThanOrEqual(5);
  });

  test('4. a replayed transport message is opened by the shell and rejected there, as a replay', () => {
    const pair = new TunnelPair({ bTransportCrypto: true });
    pair.connect('a');
    const [data] = pair.a.encapsulate(pair.packet('a'), 0);
    if (data?.kind !== 'send') throw new Error('expected a transport message');
    const first = pair.flow('a', [data]);
    expect(first.delivered.b).toHaveLength(1);
    expect(pair.flow('a', [data]).drops.b).toEqual(['replay']);
  });

  test('5. cryptokey routing stays in the engine: a spoofed inner source is dropped after opening', () => {
    const pair = new TunnelPair({ bTransportCrypto: true });
    pair.connect('a');
    const flow = pair.send('a', ipv4Packet('10.9.0.99', B_INNER));
    expect(flow.drops.b).toEqual(['allowed_ips_violation']);
  });

  test('6. every keypair is retired when it leaves service: rotation, then removal; keys handed out once', () => {
    const pair = new TunnelPair({ bTransportCrypto: true });
    pair.connect('a');
    pair.send('b');
    // Rekeys every 120 s: after three, the oldest keypairs have left B's previous slot.
    for (let i = 0; i < 3; i++) {
      pair.now += 121_000;
      pair.send('a');
      pair.send('b');
    }
    const retiredBeforeRemoval = pair.bCrypto!.retiredIndices.length;
    expect(retiredBeforeRemoval).toBeGreaterThanOrEqual(1);
    pair.b.removePeer(pair.keys.a.publicKey);
    expect(pair.bCrypto!.retiredIndices.length).toBeGreaterThan(retiredBeforeRemoval);
    expect(new Set(pair.bCrypto!.retiredIndices).size).toBe(pair.bCrypto!.retiredIndices.length);
    expect(pair.bCrypto!.liveSessions).toBe(0);
  });

  test('7. transportOpened for a keypair retired while it was being opened: keypair_expired', () => {
    const pair = new TunnelPair({ bTransportCrypto: true });
    pair.connect('a');
    const [data] = pair.a.encapsulate(pair.packet('a'), 0);
    if (data?.kind !== 'send') throw new Error('expected a transport message');
    const [open] = pair.b.decapsulate(data.datagram, pair.endpoints.a, 0);
    if (open?.kind !== 'open') throw new Error('expected an open action');
    const { keypair, from } = open;
    pair.b.removePeer(pair.keys.a.publicKey);
    const plainLength = data.datagram.length - 32;
    expect(pair.b.transportOpened(keypair, data.datagram.slice(), plainLength, from, 0)).toEqual([
      { kind: 'drop', reason: 'keypair_expired' },
    ]);
  });

  test('8. the first handshake still looks as it does without: 148, 92, then the staged packet', () => {
    const pair = new TunnelPair({ bTransportCrypto: true, bKnowsA: true });
    const flow = pair.connect('b');
    expect(sizes(flow, 'b')).toEqual([148, PING_DATAGRAM]);
    expect(sizes(flow, 'a')).toEqual([92]);
  });

  test('9. a seal the shell drops unsent (queue_full) leaves txBytes; the next message still opens', () => {
    const pair = new TunnelPair({ bTransportCrypto: true });
    pair.connect('a');
    pair.send('b');
    const before = pair.status('b').txBytes;
    const [seal] = pair.b.encapsulate(pair.packet('b'), pair.now);
    if (seal?.kind !== 'seal') throw new Error('expected a seal action');
    expect(pair.status('b').txBytes).toBe(before + PING_DATAGRAM); // counted as the action is made
    pair.b.sealDropped(seal.peer, seal.packet.length);
    expect(pair.status('b').txBytes).toBe(before);
    expect(pair.send('b').delivered.a).toEqual([pair.packet('b')]); // over the counter the drop skipped
    const [a, b] = [pair.status('a'), pair.status('b')];
    expect([b.txBytes, b.rxBytes]).toEqual([a.rxBytes, a.txBytes]);
  });

  test('10. messages the shell does not take are sealed and opened by the engine: one counter sequence, one replay window, exact counters', () => {
    const pair = new TunnelPair({ bTransportCrypto: true });
    pair.connect('a');
    const crypto = pair.bCrypto!;
    let asked = 0;
    crypto.takesNext = () => asked++ % 4 < 2; // per round trip: both handed out, then neither
    const fromA = Array.from({ length: 6 }, (_, i) => pair.packet('a', 84 + 4 * i, i));
    const fromB = Array.from({ length: 6 }, (_, i) => pair.packet('b', 84 + 4 * i, i));
    const datagramsFromA: Uint8Array[] = [];
    const countersFromB: number[] = [];
    for (let i = 0; i < 6; i++) {
      const there = pair.send('a', fromA[i]);
      datagramsFromA.push(there.sent.a[0]!.datagram);
      expect(there.delivered.b).toEqual([fromA[i]]);
      const back = pair.send('b', fromB[i]);
      countersFromB.push(transportCounterLow(back.sent.b[0]!.datagram));
      expect(back.delivered.a).toEqual([fromB[i]]);
    }
    expect(asked).toBe(12);
    // B's counters run on across both ways of sealing: half went through the shell.
    expect(countersFromB).toEqual(countersFromB.map((_c, i) => countersFromB[0]! + i));
    expect([...crypto.sealedCounters.values()].flat()).toEqual([0, 2, 4].map((i) => countersFromB[i]));
    // A replay is one whichever way it is opened: A's first message (opened by the shell) by the engine, and
    // its second (opened by the engine) by the shell.
    crypto.takesNext = () => false;
    expect(pair.flow('a', [sendOf(datagramsFromA[0]!, pair)]).drops.b).toEqual(['replay']);
    crypto.takesNext = () => true;
    expect(pair.flow('a', [sendOf(datagramsFromA[1]!, pair)]).drops.b).toEqual(['replay']);
    const [a, b] = [pair.status('a'), pair.status('b')];
    expect([b.txBytes, b.rxBytes]).toEqual([a.rxBytes, a.txBytes]);
  });
});

/** A datagram A sent once, to be sent again (a replay). */
const sendOf = (datagram: Uint8Array, pair: TunnelPair) =>
  ({ kind: 'send', datagram, to: pair.endpoints.b, peer: undefined }) as const;
