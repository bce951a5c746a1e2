// Crossed initiations (docs/WIREGUARD.md §6): both ends start a handshake at the same moment, so each has
// sent its initiation when the other's arrives. Whatever order the rest arrives in, both first packets are
// delivered at once, neither side sends a second initiation, and the counters stay exact (§7.5).
import { REKEY_TIMEOUT_JITTER_MAX_MS, REKEY_TIMEOUT_MS } from '../../crypto/constants.js';
import type { TunnelAction } from '../../crypto/tunnel.js';
import { type Flow, type Side, TunnelPair, merge, other, sizes } from './tunnel-pair.js';

const INITIATION = 148;
const RESPONSE = 92;
const PING_DATAGRAM = 128;

/** What happens to the two responses once the initiations have crossed. */
type Then =
  | 'A’s response reaches B first'
  | 'B’s response reaches A first'
  | 'the responses cross too'
  | 'A’s response is lost (a wireguard-go B drops it: it gave up its own initiation)';

/** The handshake message whose sender index a side's transport messages are addressed to. */
type Addressed = 'initiation' | 'response';

interface Row {
  then: Then;
  /** B's transport messages sealed and opened outside its engine (a crypto thread's way). */
  bTransportCrypto: boolean;
  drops: Record<Side, string[]>;
  /** Which of the other side's messages named the index each side sends its data to afterwards. */
  sendsTo: Record<Side, Addressed>;
  rxBytes: Record<Side, number>;
}

const BOTH_WAYS = INITIATION + RESPONSE + PING_DATAGRAM;
const ORDERS: Omit<Row, 'bTransportCrypto'>[] = [
  {
    // B completes as initiator and sends; A completes as responder on it and forgets its own initiation.
    then: 'A’s response reaches B first',
    drops: { a: ['unknown_index'], b: [] },
    sendsTo: { a: 'initiation', b: 'response' },
    rxBytes: { a: INITIATION + PING_DATAGRAM, b: BOTH_WAYS },
  },
  {
    then: 'B’s response reaches A first',
    drops: { a: [], b: ['unknown_index'] },
    sendsTo: { a: 'response', b: 'initiation' },
    rxBytes: { a: BOTH_WAYS, b: INITIATION + PING_DATAGRAM },
  },
  {
    // Each completes as initiator before hearing the other's data: two sessions, one per direction.
    then: 'the responses cross too',
    drops: { a: [], b: [] },
    sendsTo: { a: 'response', b: 'response' },
    rxBytes: { a: BOTH_WAYS, b: BOTH_WAYS },
  },
  {
    then: 'A’s response is lost (a wireguard-go B drops it: it gave up its own initiation)',
    drops: { a: [], b: [] },
    sendsTo: { a: 'response', b: 'initiation' },
    rxBytes: { a: BOTH_WAYS, b: INITIATION + PING_DATAGRAM },
  },
];
const ROWS: [number, Then, boolean, Row][] = [false, true]
  .flatMap((bTransportCrypto) => ORDERS.map((order) => ({ ...order, bTransportCrypto })))
  .map((row, i) => [i + 1, row.then, row.bTransportCrypto, row]);

/** The one send action a call returned (an initiation or a response). */
function sent(actions: TunnelAction[], size: number): Uint8Array {
  const [action] = actions;
  if (actions.length !== 1 || action?.kind !== 'send' || action.datagram.length !== size)
    throw new Error(`expected one ${size}-byte datagram, got ${JSON.stringify(actions.map((a) => a.kind))}`);
  return action.datagram.slice();
}

const senderIndex = (message: Uint8Array) => message.slice(4, 8);
const receiverIndex = (transport: Uint8Array) => transport.slice(4, 8);
const copied = (actions: TunnelAction[]) => actions.map((action) => ({ ...action }));

describe('Tunnel: crossed initiations converge at once', () => {
  test.each(ROWS)('%i. both initiate, the initiations cross, then %s (B seals outside: %s)', (...args) => {
    const row = args[3];
    const pair = new TunnelPair({ bKnowsA: true, bTransportCrypto: row.bTransportCrypto });
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
    switch (row.then) {
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
    expect(flow.drops).toEqual(row.drops);
    expect(sizes(flow, 'a')).toEqual([PING_DATAGRAM]);
    expect(sizes(flow, 'b')).toEqual([PING_DATAGRAM]);
    for (const side of ['a', 'b'] as const) {
      expect(pair.status(side)).toMatchObject({ txBytes: BOTH_WAYS, rxBytes: row.rxBytes[side] });
    }

    // No retry is due: past the latest retransmission deadline nothing is sent.
    expect(pair.advance(REKEY_TIMEOUT_MS + REKEY_TIMEOUT_JITTER_MAX_MS).sent).toEqual({ a: [], b: [] });

    // Data keeps flowing both ways, on the session(s) the handshake messages named.
    const named = (side: Side, by: Addressed) =>
      senderIndex(by === 'initiation' ? initiation[side] : response[side]);
    for (const [from, to] of [
      ['a', 'b'],
      ['b', 'a'],
    ] as const) {
      const packet = pair.packet(from, 100, 0x5a);
      const more = pair.send(from, packet);
      expect(more.delivered[to]).toEqual([packet]);
      expect(receiverIndex(more.sent[from][0]!.datagram)).toEqual(named(to, row.sendsTo[from]));
    }
  });
});
