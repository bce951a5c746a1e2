// Crossed initiations (docs/WIREGUARD.md §6): both ends start a handshake at the same moment, so each has
// sent its initiation when the other's arrives. Whatever order the rest arrives in, both first packets are
// delivered at once, neither side sends a second initiation, the counters stay exact (§7.5), both end up
// sending on one session, and the first rekey loses nothing.
import {
  REKEY_AFTER_TIME_MS,
  REKEY_TIMEOUT_JITTER_MAX_MS,
  REKEY_TIMEOUT_MS,
} from '../../crypto/constants.js';
import type { TunnelAction } from '../../crypto/tunnel.js';
import { type Flow, type Side, TunnelPair, merge, other, sizes } from './tunnel-pair.js';

const INITIATION = 148;
const RESPONSE = 92;
const PING_DATAGRAM = 128;
const BOTH_WAYS = INITIATION + RESPONSE + PING_DATAGRAM;

/** What happens to the two responses once the initiations have crossed. */
type Then =
  | 'A’s response reaches B first'
  | 'B’s response reaches A first'
  | 'the responses cross too'
  | 'A’s response is lost (a wireguard-go B drops it: it gave up its own initiation)';

interface Order {
  then: Then;
  drops: Record<Side, string[]>;
  rxBytes: Record<Side, number>;
  /** The side whose initiation made the session both send on, given the side with the smaller key. */
  session(smaller: Side): Side;
}

const ORDERS: Order[] = [
  {
    // B completes as initiator and sends; A completes as responder on it and forgets its own initiation.
    then: 'A’s response reaches B first',
    drops: { a: ['unknown_index'], b: [] },
    rxBytes: { a: INITIATION + PING_DATAGRAM, b: BOTH_WAYS },
    session: () => 'b',
  },
  {
    then: 'B’s response reaches A first',
    drops: { a: [], b: ['unknown_index'] },
    rxBytes: { a: BOTH_WAYS, b: INITIATION + PING_DATAGRAM },
    session: () => 'a',
  },
  {
    // Both complete as initiators; the side with the smaller key kept its answer waiting, and the other's
    // first packet under it makes it current there: the other side's session carries both ways.
    then: 'the responses cross too',
    drops: { a: [], b: [] },
    rxBytes: { a: BOTH_WAYS, b: BOTH_WAYS },
    session: (smaller) => other(smaller),
  },
  {
    then: 'A’s response is lost (a wireguard-go B drops it: it gave up its own initiation)',
    drops: { a: [], b: [] },
    rxBytes: { a: BOTH_WAYS, b: INITIATION + PING_DATAGRAM },
    session: () => 'a',
  },
];

type Row = [number, Then, Side, boolean, Order];
const ROWS: Row[] = ([false, true] as const)
  .flatMap((bTransportCrypto) =>
    (['b', 'a'] as const).flatMap((smaller) =>
      ORDERS.map((order) => [order.then, smaller, bTransportCrypto, order] as const),
    ),
  )
  .map((row, i) => [i + 1, ...row]);

/** The one send action a call returned (an initiation or a response). */
function sent(actions: TunnelAction[], size: number): Uint8Array {
  const [action] = actions;
  if (actions.length !== 1 || action?.kind !== 'send' || action.datagram.length !== size)
    throw new Error(`expected one ${size}-byte datagram, got ${JSON.stringify(actions.map((a) => a.kind))}`);
  return action.datagram.slice();
}

const indexAt = (message: Uint8Array) => message.slice(4, 8); // sender index, or a transport's receiver
const copied = (actions: TunnelAction[]) => actions.map((action) => ({ ...action }));

describe('Tunnel: crossed initiations converge at once', () => {
  test.each(ROWS)(
    '%i. both initiate, the initiations cross, then %s (smaller key: %s; B seals outside: %s)',
    (_n, _then, smaller, bTransportCrypto, order) => {
      const pair = new TunnelPair({ bKnowsA: true, bTransportCrypto, swapKeys: smaller === 'a' });
      const first = { a: pair.packet('a', 84, 0xa1), b: pair.packet('b', 84, 0xb2) };

      // Both stage a packet and initiate; each initiation arrives after the receiver sent its own.
      const initiation = {
        a: sent(pair.a.encapsulate(first.a, 0), INITIATION),
        b: sent(pair.b.encapsulate(first.b, 0), INITIATION),
      };
      const response = {
        a: sent(pair.a.decapsulate(initiation.b, pair.endpoints.b, 0), RESPONSE),
        b: sent(pair.b.decapsulate(initiation.a, pair.endpoints.a, 0), RESPONSE),
      };
      // A side's response reaches the other, which runs what it does in turn to completion.
      const answered = (side: Side) =>
        copied(pair.tunnel(other(side)).decapsulate(response[side], pair.endpoints[side], 0));
      const deliver = (side: Side) => pair.flow(other(side), answered(side));

      let flow: Flow;
      switch (order.then) {
        case 'A’s response reaches B first':
          flow = merge(deliver('a'), deliver('b'));
          break;
        case 'B’s response reaches A first':
          flow = merge(deliver('b'), deliver('a'));
          break;
        case 'the responses cross too': {
          const [atB, atA] = [answered('a'), answered('b')];
          flow = merge(pair.flow('b', atB), pair.flow('a', atA));
          break;
        }
        default:
          flow = deliver('b');
      }

      // Each side's staged packet is delivered once, and only it: no keepalive, no second handshake.
      expect(flow.delivered).toEqual({ a: [first.b], b: [first.a] });
      expect(flow.drops).toEqual(order.drops);
      expect(sizes(flow, 'a')).toEqual([PING_DATAGRAM]);
      expect(sizes(flow, 'b')).toEqual([PING_DATAGRAM]);
      for (const side of ['a', 'b'] as const) {
        expect(pair.status(side)).toMatchObject({ txBytes: BOTH_WAYS, rxBytes: order.rxBytes[side] });
      }

      // No retry is due: past the latest retransmission deadline nothing is sent.
      expect(pair.advance(REKEY_TIMEOUT_MS + REKEY_TIMEOUT_JITTER_MAX_MS).sent).toEqual({ a: [], b: [] });

      // Both send on one session: its initiator's keypair, addressed by the response's sender index, and
      // its responder's, addressed by the initiation's.
      const initiator = order.session(smaller);
      const addressed: Record<Side, Uint8Array> = {
        [initiator]: indexAt(response[other(initiator)]),
        [other(initiator)]: indexAt(initiation[initiator]),
      } as Record<Side, Uint8Array>;
      for (const from of ['a', 'b'] as const) {
        const packet = pair.packet(from, 100, 0x5a);
        const more = pair.send(from, packet);
        expect(more.delivered[other(from)]).toEqual([packet]);
        expect(indexAt(more.sent[from][0]!.datagram)).toEqual(addressed[from]);
      }

      // A packet each way every second through the first rekey, each side's sealed before the other's
      // handshake messages of that second arrive: every one is delivered.
      let through: Flow = { sent: { a: [], b: [] }, delivered: { a: [], b: [] }, drops: { a: [], b: [] } };
      let packets = 0;
      while (pair.now < REKEY_AFTER_TIME_MS + 10_000) {
        through = merge(through, pair.advance(1000));
        const fromA = copied(pair.a.encapsulate(pair.packet('a'), pair.now));
        const fromB = copied(pair.b.encapsulate(pair.packet('b'), pair.now));
        through = merge(through, merge(pair.flow('a', fromA), pair.flow('b', fromB)));
        packets++;
      }
      expect(through.drops).toEqual({ a: [], b: [] });
      expect([through.delivered.a.length, through.delivered.b.length]).toEqual([packets, packets]);
      // The rekey is the session initiator's (its keypair is the initiator's), once.
      const initiations = (side: Side) => sizes(through, side).filter((size) => size === INITIATION).length;
      expect({
        [initiator]: initiations(initiator),
        [other(initiator)]: initiations(other(initiator)),
      }).toEqual({
        [initiator]: 1,
        [other(initiator)]: 0,
      });
    },
  );
});
