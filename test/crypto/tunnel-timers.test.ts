// The timer rules of docs/WIREGUARD.md §4.2 end to end, through two Tunnels on a manual clock.
import {
  KEEPALIVE_TIMEOUT_MS,
  REKEY_TIMEOUT_JITTER_MAX_MS,
  REKEY_TIMEOUT_MS,
  ZERO_KEY_MATERIAL_AFTER_MS,
} from '../../crypto/constants.js';
import { type Side, TunnelPair, sizes } from './tunnel-pair.js';

const INITIATION = 148;
const RESPONSE = 92;
const KEEPALIVE = 32;
const PING_DATAGRAM = 128;

/** Times at which `side` sent datagrams of `size` bytes. */
const timesOf = (pair: TunnelPair, side: Side, size: number) =>
  pair.log.filter((entry) => entry.side === side && entry.size === size).map((entry) => entry.at);

/** Captures what `side` would send for one packet now, without delivering it. */
function capture(pair: TunnelPair, side: Side): Uint8Array {
  const [action] = pair.tunnel(side).encapsulate(pair.packet(side), pair.now);
  if (action?.kind !== 'send') throw new Error('expected a datagram');
  return action.datagram;
}

describe('Tunnel timers on a manual clock', () => {
  test('1. the receiver of data sends a keepalive after 10 s of silence, and only then', () => {
    const pair = new TunnelPair();
    pair.connect('a');
    expect(pair.b.nextDeadline()).toBe(KEEPALIVE_TIMEOUT_MS);
    expect(sizes(pair.advance(KEEPALIVE_TIMEOUT_MS - 1), 'b')).toEqual([]);
    expect(sizes(pair.advance(1), 'b')).toEqual([KEEPALIVE]);
    // The keepalive reached A, so A's "no answer to my data" timer is disarmed: nothing more happens.
    const quiet = pair.advance(ZERO_KEY_MATERIAL_AFTER_MS - KEEPALIVE_TIMEOUT_MS - 1);
    expect(quiet.sent).toEqual({ a: [], b: [] });
  });

  test('2. a reply within 10 s makes the keepalive unnecessary', () => {
    const pair = new TunnelPair();
    pair.connect('a');
    pair.advance(3_000);
    pair.send('b');
    // A now owes B a keepalive (it received data); B owes none.
    const flow = pair.advance(KEEPALIVE_TIMEOUT_MS);
    expect(sizes(flow, 'b')).toEqual([]);
    expect(sizes(flow, 'a')).toEqual([KEEPALIVE]);
  });

  test('3. rekey after 120 s is the initiator’s job only', () => {
    const pair = new TunnelPair();
    pair.connect('a');
    pair.advance(121_000);
    const fromResponder = pair.send('b');
    expect(sizes(fromResponder, 'b')).toEqual([PING_DATAGRAM]);
    expect(sizes(fromResponder, 'a')).toEqual([]);
    const fromInitiator = pair.send('a');
    expect(sizes(fromInitiator, 'a')).toEqual([PING_DATAGRAM, INITIATION, KEEPALIVE]);
    expect(sizes(fromInitiator, 'b')).toEqual([RESPONSE]);
    expect(fromInitiator.delivered.b).toHaveLength(1);
  });

  test('4. nothing is sent or accepted with a keypair older than 180 s', () => {
    const pair = new TunnelPair();
    pair.connect('a');
    pair.advance(100_000);
    const late = capture(pair, 'a');
    pair.send('b'); // an answer, so A's "data without reply" rule stays quiet
    pair.advance(81_000); // 181 s
    expect(pair.b.decapsulate(late, pair.endpoints.a, pair.now)).toEqual([
      { kind: 'drop', reason: 'keypair_expired' },
    ]);
    // Both sides now need a new handshake before sending: the packet waits for it.
    pair.linkUp = false;
    expect(sizes(pair.send('a'), 'a')).toEqual([INITIATION]);
    expect(sizes(pair.send('b'), 'b')).toEqual([INITIATION]);
  });

  test('5. an unanswered initiation is retried every 5 s + jitter, 20 times in all, then abandoned', () => {
    const pair = new TunnelPair();
    pair.linkUp = false;
    const staged = pair.packet('a', 60);
    pair.send('a', staged);
    pair.advance(200_000);
    const sends = timesOf(pair, 'a', INITIATION);
    expect(sends).toHaveLength(20);
    const gaps = sends.slice(1).map((at, i) => at - sends[i]!);
    for (const gap of gaps) {
      expect(gap).toBeGreaterThanOrEqual(REKEY_TIMEOUT_MS);
      expect(gap).toBeLessThan(REKEY_TIMEOUT_MS + REKEY_TIMEOUT_JITTER_MAX_MS);
    }
    expect(new Set(gaps).size).toBeGreaterThan(1); // jitter really varies
    expect(sends.at(-1)!).toBeGreaterThanOrEqual(19 * REKEY_TIMEOUT_MS);
    expect(sends.at(-1)!).toBeLessThan(19 * (REKEY_TIMEOUT_MS + REKEY_TIMEOUT_JITTER_MAX_MS));

    // The 21st expiry gave up (≈ 100 s) and armed the 540 s wipe.
    const gaveUpAt = pair.a.nextDeadline()! - ZERO_KEY_MATERIAL_AFTER_MS;
    expect(gaveUpAt).toBeGreaterThanOrEqual(20 * REKEY_TIMEOUT_MS);
    expect(gaveUpAt).toBeLessThan(20 * (REKEY_TIMEOUT_MS + REKEY_TIMEOUT_JITTER_MAX_MS));

    // Given up: the staged packet is gone. When the link returns, a new packet starts a new handshake and
    // only that packet arrives.
    pair.linkUp = true;
    const fresh = pair.packet('a', 70);
    const flow = pair.send('a', fresh);
    expect(flow.delivered.b).toEqual([fresh]);
  });

  test('6. retries stop once an answer arrives; the staged packet goes out', () => {
    const pair = new TunnelPair();
    pair.linkUp = false;
    const staged = pair.packet('a', 60);
    pair.send('a', staged);
    pair.advance(12_000); // two retries lost
    pair.linkUp = true;
    const flow = pair.advance(6_000);
    expect(sizes(flow, 'a')).toEqual([INITIATION, 16 + 64 + 16]);
    expect(flow.delivered.b).toEqual([staged]);
    expect(timesOf(pair, 'a', INITIATION)).toHaveLength(4);
    pair.advance(60_000);
    expect(timesOf(pair, 'a', INITIATION)).toHaveLength(4);
  });

  test('7. data sent without any answer for 15 s starts a new handshake', () => {
    const pair = new TunnelPair();
    pair.connect('a');
    pair.advance(20_000);
    pair.linkUp = false;
    pair.send('a');
    const flow = pair.advance(KEEPALIVE_TIMEOUT_MS + REKEY_TIMEOUT_MS + REKEY_TIMEOUT_JITTER_MAX_MS);
    expect(sizes(flow, 'a')).toEqual([INITIATION]);
    const at = timesOf(pair, 'a', INITIATION).at(-1)!;
    expect(at - 20_000).toBeGreaterThanOrEqual(KEEPALIVE_TIMEOUT_MS + REKEY_TIMEOUT_MS);
  });

  test('8. key material is wiped 540 s after the last handshake', () => {
    const pair = new TunnelPair();
    pair.connect('a');
    pair.advance(1_000);
    const old = capture(pair, 'a');
    pair.advance(ZERO_KEY_MATERIAL_AFTER_MS - 1_001);
    expect(pair.b.decapsulate(old, pair.endpoints.a, pair.now)).toEqual([
      { kind: 'drop', reason: 'keypair_expired' },
    ]);
    pair.advance(1);
    expect(pair.b.decapsulate(old, pair.endpoints.a, pair.now)).toEqual([
      { kind: 'drop', reason: 'unknown_index' },
    ]);
    expect(pair.a.nextDeadline()).toBeUndefined();
    expect(pair.b.nextDeadline()).toBeUndefined();
    // A new handshake starts from scratch.
    expect(pair.send('a').delivered.b).toHaveLength(1);
  });

  test('9. the initiator rekeys on receive when its keypair nears 180 s (165 s), once', () => {
    const pair = new TunnelPair();
    pair.connect('a');
    pair.advance(166_000);
    const flow = pair.send('b');
    expect(sizes(flow, 'b')).toEqual([PING_DATAGRAM, RESPONSE]);
    expect(sizes(flow, 'a')).toEqual([INITIATION, KEEPALIVE]);
    expect(flow.delivered.a).toHaveLength(1);
    expect(sizes(pair.send('b'), 'a')).toEqual([]);
  });

  test('10. persistent keepalive: one at once, then after every N s without traffic', () => {
    const pair = new TunnelPair();
    pair.connect('a');
    pair.flow('a', pair.a.upsertPeer(pair.keys.b.publicKey, { persistentKeepaliveSeconds: 25 }, pair.now));
    pair.advance(100_000);
    // 0: at once; B's own keepalive at 10 s (it owed one for the first packet) restarts A's interval.
    expect(timesOf(pair, 'a', KEEPALIVE)).toEqual([0, 35_000, 60_000, 85_000]);
    pair.a.upsertPeer(pair.keys.b.publicKey, { persistentKeepaliveSeconds: 0 }, pair.now);
    pair.advance(100_000);
    expect(timesOf(pair, 'a', KEEPALIVE)).toHaveLength(4);
  });

  test('11. nextDeadline is the earliest armed timer and tick before it does nothing', () => {
    const pair = new TunnelPair();
    expect(pair.a.nextDeadline()).toBeUndefined();
    pair.linkUp = false;
    pair.send('a');
    const deadline = pair.a.nextDeadline()!;
    expect(deadline).toBeGreaterThanOrEqual(REKEY_TIMEOUT_MS);
    expect(pair.a.tick(deadline - 1)).toEqual([]);
    expect(pair.a.tick(deadline).map((a) => (a.kind === 'send' ? a.datagram.length : a.kind))).toEqual([
      INITIATION,
    ]);
  });
});
