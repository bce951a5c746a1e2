// Property tests: whatever arrives from the network, decapsulate never throws and never answers (except a
// cookie reply under load), and the session survives. Inputs are random datagrams and mutations of real
// datagrams captured from a live pair.
import fc from 'fast-check';
import { mac1Key } from '../../crypto/cookie.js';
import { MAC } from '../../crypto/primitives.js';
import type { TunnelAction } from '../../crypto/tunnel.js';
import { TunnelPair, ipv4Packet, ipv6Packet } from './tunnel-pair.js';

/** A live pair after a handshake, traffic both ways, a cookie exchange, and the datagrams it produced. */
function livePair(): { pair: TunnelPair; captured: Uint8Array[] } {
  const pair = new TunnelPair();
  const captured: Uint8Array[] = [];
  const keep = (flow: ReturnType<TunnelPair['send']>) => {
    for (const side of ['a', 'b'] as const) captured.push(...flow.sent[side].map((s) => s.datagram));
  };
  pair.b.markUnderLoad(0);
  keep(pair.send('a')); // initiation → cookie reply
  pair.now = 6_000;
  pair.b.markUnderLoad(pair.now);
  keep(pair.flow('a', pair.a.tick(pair.now))); // initiation with mac2 → response → staged data
  for (let i = 0; i < 4; i++) {
    keep(pair.send('a', pair.packet('a', 20 + i * 37)));
    keep(pair.send('b', pair.packet('b', 60 + i * 11)));
  }
  keep(pair.advance(10_000)); // a keepalive
  return { pair, captured };
}

const { pair, captured } = livePair();
const capturedTypes = new Set(captured.map((d) => d[0]));

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('extend' as const), extra: fc.uint8Array({ minLength: 1, maxLength: 32 }) }),
);

type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function mutate(datagram: Uint8Array, mutations: Mutation[]): Uint8Array {
  let out = datagram.slice();
  for (const m of mutations) {
    if (out.length === 0) break;
    switch (m.kind) {
      case 'flip':
        out[m.at % out.length]! ^= 1 << m.bit;
        break;
      case 'set':
        out[m.at % out.length] = m.value;
        break;
      case 'truncate':
        out = out.subarray(0, m.at % out.length);
        break;
      case 'extend': {
        const longer = new Uint8Array(out.length + m.extra.length);
        longer.set(out);
        longer.set(m.extra, out.length);
        out = longer;
        break;
      }
    }
  }
  return out;
}

const sources = fc.constantFrom(
  { address: '192.0.2.1', port: 51820 },
  { address: '203.0.113.9', port: 9 },
  { address: '2001:db8::7', port: 65535 },
);

/** The only answer an engine may give to unauthenticated input: a cookie reply, under load, to the source. */
function onlyCookieReplies(actions: TunnelAction[], underLoad: boolean): boolean {
  return actions.every(
    (action) =>
      action.kind === 'drop' || (underLoad && action.kind === 'send' && action.datagram.length === 64),
  );
}

describe('Tunnel properties', () => {
  test('1. the capture covers every message type', () => {
    expect([...capturedTypes].sort()).toEqual([1, 2, 3, 4]);
  });

  test('2. random datagrams never throw and never get an answer', () => {
    const datagram = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      // Plausible headers: a valid type word and a size near the real ones.
      fc
        .tuple(
          fc.integer({ min: 1, max: 4 }),
          fc.constantFrom(148, 92, 64, 32, 48, 128, 1452),
          fc.uint8Array({ minLength: 1452, maxLength: 1452 }),
        )
        .map(([type, size, body]) => {
          const out = body.slice(0, size);
          out.set([type, 0, 0, 0]);
          return out;
        }),
    );
    fc.assert(
      fc.property(datagram, sources, fc.boolean(), (bytes, from, underLoad) => {
        for (const tunnel of [pair.a, pair.b]) {
          if (underLoad) tunnel.markUnderLoad(pair.now);
          const actions = tunnel.decapsulate(bytes, from, pair.now);
          expect(onlyCookieReplies(actions, false)).toBe(true); // random bytes never carry a valid mac1
          expect(actions).toHaveLength(1);
        }
      }),
      { numRuns: 400 },
    );
  });

  test('3. mutated and replayed real datagrams never throw and never get an answer', () => {
    pair.now += 2_000; // out of the load test 2 may have marked
    fc.assert(
      fc.property(
        fc.constantFrom(...captured),
        fc.array(mutation, { maxLength: 4 }),
        sources,
        (original, mutations, from) => {
          const bytes = mutate(original, mutations);
          for (const tunnel of [pair.a, pair.b]) {
            const actions = tunnel.decapsulate(bytes, from, pair.now);
            expect(onlyCookieReplies(actions, false)).toBe(true);
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  test('4. mutated real handshakes with a valid mac1 (public: keyed by the receiver’s public key) are dropped', () => {
    pair.now += 2_000;
    const handshakes = captured.filter((d) => d[0] === 1 || d[0] === 2);
    fc.assert(
      fc.property(
        fc.constantFrom(...handshakes),
        fc.array(
          mutation.filter((m) => m.kind === 'flip' || m.kind === 'set'),
          { minLength: 1, maxLength: 3 },
        ),
        sources,
        (original, mutations, from) => {
          const bytes = mutate(original, mutations);
          const mac1At = bytes[0] === 1 ? 116 : 60;
          for (const tunnel of [pair.a, pair.b]) {
            const forged = bytes.slice();
            forged.set(MAC(mac1Key(tunnel.publicKey), forged.subarray(0, mac1At)), mac1At);
            const actions = tunnel.decapsulate(forged, from, pair.now);
            expect(actions).toHaveLength(1);
            expect(actions[0]!.kind).toBe('drop');
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  test('5. under load, mutated real handshakes get at most a cookie reply', () => {
    const handshakes = captured.filter((d) => d[0] === 1 || d[0] === 2);
    fc.assert(
      fc.property(
        fc.constantFrom(...handshakes),
        fc.array(mutation, { maxLength: 3 }),
        sources,
        (original, mutations, from) => {
          const bytes = mutate(original, mutations);
          for (const tunnel of [pair.a, pair.b]) {
            tunnel.markUnderLoad(pair.now);
            const actions = tunnel.decapsulate(bytes, from, pair.now);
            expect(onlyCookieReplies(actions, true)).toBe(true);
            for (const action of actions) if (action.kind === 'send') expect(action.to).toEqual(from);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  test('6. random TUN packets never throw; each yields sends or a single drop', () => {
    const packet = fc.oneof(
      fc.uint8Array({ maxLength: 100 }),
      fc.integer({ min: 20, max: 1500 }).map((length) => ipv4Packet('10.9.0.1', '10.9.0.2', length)),
      fc
        .integer({ min: 40, max: 1500 })
        .map((length) => ipv6Packet(new Uint8Array(16), new Uint8Array(16).fill(0xfd), length)),
    );
    fc.assert(
      fc.property(packet, (bytes) => {
        const actions = pair.a.encapsulate(bytes, pair.now);
        expect(actions.length).toBeGreaterThan(0);
        expect(
          actions.every((a) => a.kind === 'send') || (actions.length === 1 && actions[0]!.kind === 'drop'),
        ).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  test('7. after all of that the session still carries traffic both ways', () => {
    const there = pair.packet('a', 99);
    const back = pair.packet('b', 101);
    expect(pair.send('a', there).delivered.b).toEqual([there]);
    expect(pair.send('b', back).delivered.a).toEqual([back]);
  });
});
