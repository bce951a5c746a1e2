// A device with 10,000 configured peers on a manual clock: the work of tick() and nextDeadline() follows the
// peers whose timers are due, not the peers configured. Work is counted (reads of a peer's timers), never
// timed.
import { jest } from '@jest/globals';
import { MAX_TIMER_HANDSHAKES, REKEY_TIMEOUT_MS } from '../../crypto/constants.js';
import { PeerTimers } from '../../crypto/timers.js';
import { Tunnel, type TunnelAction } from '../../crypto/tunnel.js';
import { WALL_CLOCK_BASE_MS, ipv4Packet, seededRandom } from './tunnel-pair.js';

const PEERS = 10_000;
const ACTIVE = 40; // peers that get a packet and so start (and keep retrying) a handshake
const INITIATION = 148;

const innerAddress = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

/** Calls of each PeerTimers method on every peer of the device. */
function countCalls(method: 'due' | 'nextDeadline') {
  const spy = jest.spyOn(PeerTimers.prototype, method);
  return {
    take(): number {
      const calls = spy.mock.calls.length;
      spy.mockClear();
      return calls;
    },
    restore: () => spy.mockRestore(),
  };
}

const initiations = (actions: TunnelAction[]) =>
  actions.filter((a) => a.kind === 'send' && a.datagram.length === INITIATION).length;

describe('a device with 10,000 peers', () => {
  const random = seededRandom(0x5ca1e);
  let now = 0;
  const tunnel = new Tunnel({
    privateKey: random(32),
    randomBytes: random,
    wallClockMs: () => WALL_CLOCK_BASE_MS + now,
  });
  const due = countCalls('due');
  const reads = countCalls('nextDeadline');

  beforeAll(() => {
    for (let i = 0; i < PEERS; i++) {
      tunnel.upsertPeer(
        random(32),
        {
          allowedIps: [`${innerAddress(i)}/32`],
          endpoint: { address: '127.0.0.1', port: 40_000 + (i % 1000) },
        },
        now,
      );
    }
  });

  afterAll(() => {
    due.restore();
    reads.restore();
  });

  test('1. with no timer armed, nextDeadline and tick read no peer', () => {
    reads.take();
    due.take();
    expect(tunnel.nextDeadline()).toBeUndefined();
    expect(tunnel.tick(1_000_000)).toEqual([]);
    expect(reads.take()).toBe(0);
    expect(due.take()).toBe(0);
  });

  test('2. handshakes retried by a few peers: each tick visits exactly the peers it fires', () => {
    for (let i = 0; i < ACTIVE; i++) {
      const actions = tunnel.encapsulate(ipv4Packet('10.200.0.1', innerAddress(i * 97)), now);
      expect(initiations(actions)).toBe(1);
    }
    due.take();
    reads.take();

    // Step from deadline to deadline as the node's scheduler does, through a few retransmission rounds.
    let ticks = 0;
    let fired = 0;
    const end = now + 3 * (REKEY_TIMEOUT_MS + 334);
    for (let at = tunnel.nextDeadline(); at !== undefined && at <= end; at = tunnel.nextDeadline()) {
      now = at;
      const sent = initiations(tunnel.tick(now));
      const visited = due.take();
      // Every visited peer was due and retransmitted (attempts are far below MAX_TIMER_HANDSHAKES).
      expect(visited).toBe(sent);
      expect(sent).toBeGreaterThan(0);
      fired += sent;
      ticks++;
    }
    expect(ticks).toBeGreaterThan(3);
    expect(fired).toBe(3 * ACTIVE);
    expect(MAX_TIMER_HANDSHAKES).toBeGreaterThan(3);
    // A naive scan reads all 10,000 peers per tick and per nextDeadline; the queue reads a handful per event.
    expect(reads.take()).toBeLessThanOrEqual(4 * (fired + ticks));
  });

  test('3. removing the busy peers leaves nothing armed and nothing to visit', () => {
    for (const peer of tunnel.peers()) {
      if (peer.txBytes > 0) tunnel.removePeer(peer.publicKey);
    }
    due.take();
    reads.take();
    expect(tunnel.peers()).toHaveLength(PEERS - ACTIVE);
    expect(tunnel.nextDeadline()).toBeUndefined();
    expect(tunnel.tick(now + 600_000)).toEqual([]);
    expect(due.take()).toBe(0);
    expect(reads.take()).toBe(0);
  });
});
