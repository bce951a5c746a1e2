import { PeerTimers, type TimerExpiry, jitterFromRandomBytes } from '../../crypto/timers.js';

// A manual clock: every deadline below is exact because time only moves when the test says so.
function timers(jitter = 0): PeerTimers {
  return new PeerTimers({ jitter: () => jitter });
}

describe('timers (§4.2), one rule at a time on a manual clock', () => {
  test('1. keepalive 10 s after data received, not before', () => {
    const t = timers();
    t.dataReceived(1000);
    expect(t.deadline('sendKeepalive')).toBe(11_000);
    expect(t.due(10_999)).toEqual([]);
    expect(t.due(11_000)).toEqual(['sendKeepalive']);
    expect(t.deadline('sendKeepalive')).toBeUndefined();
    expect(t.due(30_000)).toEqual([]);
  });

  test('2. more data while the keepalive is pending does not move it but asks for another one', () => {
    const t = timers();
    t.dataReceived(0);
    t.dataReceived(4000);
    expect(t.deadline('sendKeepalive')).toBe(10_000);
    expect(t.due(10_000)).toEqual(['sendKeepalive']);
    expect(t.deadline('sendKeepalive')).toBe(20_000); // re-armed once
    // ...and, as in wireguard-go, the keepalive's own send disarms that re-arm.
    t.anyAuthenticatedPacketSent();
    expect(t.deadline('sendKeepalive')).toBeUndefined();
    t.dataReceived(21_000);
    expect(t.due(31_000)).toEqual(['sendKeepalive']);
    expect(t.deadline('sendKeepalive')).toBeUndefined(); // the request was used up
  });

  test('3. any authenticated packet sent makes the passive keepalive unnecessary', () => {
    const t = timers();
    t.dataReceived(0);
    t.anyAuthenticatedPacketSent();
    expect(t.due(60_000)).toEqual([]);
  });

  test('4. new handshake 15 s + jitter after data sent with no reply', () => {
    const t = timers(123);
    t.dataSent(2000);
    t.dataSent(9000); // already armed: unchanged
    expect(t.deadline('newHandshake')).toBe(2000 + 15_000 + 123);
    expect(t.due(17_122)).toEqual([]);
    expect(t.due(17_123)).toEqual(['newHandshake']);
  });

  test('5. any authenticated packet received cancels the new-handshake timer', () => {
    const t = timers();
    t.dataSent(0);
    t.anyAuthenticatedPacketReceived();
    expect(t.deadline('newHandshake')).toBeUndefined();
    expect(t.due(100_000)).toEqual([]);
    t.dataSent(100_000); // can be armed again
    expect(t.deadline('newHandshake')).toBe(115_000);
  });

  test('6. retransmit every 5 s + jitter; give up after 20 sends (wireguard-go: attempts > 18)', () => {
    const jitters = [0, 333, 7];
    let calls = 0;
    const t = new PeerTimers({ jitter: () => jitters[calls++ % jitters.length]! });
    t.newHandshakeAttempt();
    t.handshakeInitiated(0);
    const sends = [0];
    const retries: number[] = [];
    let now = 0;
    let gaveUpAt: number | undefined;
    // Play the façade: on every retransmit, send a retry initiation (allowed: ≥ 5 s since the last).
    while (gaveUpAt === undefined) {
      now = t.nextDeadline()!;
      for (const expiry of t.due(now)) {
        if (expiry === 'retransmitHandshake') {
          expect(t.canSendHandshake(now)).toBe(true);
          retries.push(t.handshakeAttempts);
          t.handshakeInitiated(now);
          t.anyAuthenticatedPacketSent();
          sends.push(now);
          if (t.handshakeAttempts === 19) t.dataReceived(now); // a keepalive pending when it gives up
        } else if (expiry === 'handshakeGaveUp') {
          gaveUpAt = now;
        }
      }
    }
    expect(retries).toEqual(Array.from({ length: 19 }, (_, i) => i + 1));
    expect(sends).toHaveLength(20);
    const gaps = sends.slice(1).map((at, i) => at - sends[i]!);
    expect(gaps).toEqual(gaps.map((_, i) => 5000 + jitters[i % 3]!));
    expect(gaveUpAt - sends[19]!).toBe(5000 + jitters[19 % 3]!);
    expect(gaveUpAt).toBeGreaterThanOrEqual(90_000);
    // Giving up: nothing retransmits any more, keys are wiped 540 s later.
    expect(t.deadline('retransmitHandshake')).toBeUndefined();
    expect(t.deadline('sendKeepalive')).toBeUndefined();
    expect(t.deadline('zeroKeyMaterial')).toBe(gaveUpAt + 540_000);
    expect(t.due(gaveUpAt + 539_999)).toEqual([]);
    expect(t.due(gaveUpAt + 540_000)).toEqual(['zeroKeyMaterial']);
  });

  test('7. giving up keeps an already armed zeroKeyMaterial deadline', () => {
    const t = timers();
    t.sessionDerived(0);
    t.handshakeInitiated(1000);
    for (let i = 0; i < 19; i++) {
      const now = t.deadline('retransmitHandshake')!;
      expect(t.due(now)).toEqual(['retransmitHandshake']);
      t.handshakeInitiated(now);
    }
    expect(t.due(t.deadline('retransmitHandshake')!)).toEqual(['handshakeGaveUp']);
    expect(t.deadline('zeroKeyMaterial')).toBe(540_000);
  });

  test('8. handshake complete stops retransmission and resets the attempt and last-minute flags', () => {
    const t = timers();
    t.handshakeInitiated(0);
    t.due(5000);
    t.handshakeInitiated(5000);
    expect(t.handshakeAttempts).toBe(1);
    t.sentLastMinuteHandshake = true;
    t.handshakeComplete();
    expect(t.deadline('retransmitHandshake')).toBeUndefined();
    expect(t.handshakeAttempts).toBe(0);
    expect(t.sentLastMinuteHandshake).toBe(false);
    expect(t.due(60_000)).toEqual([]);
  });

  test('9. a non-retry initiation resets the attempt counter', () => {
    const t = timers();
    t.handshakeInitiated(0);
    t.due(5000);
    t.handshakeInitiated(5000);
    t.due(10_000);
    expect(t.handshakeAttempts).toBe(2);
    t.newHandshakeAttempt();
    expect(t.handshakeAttempts).toBe(0);
  });

  test('10. initiations are rate-limited to one per REKEY_TIMEOUT, responses included', () => {
    const t = timers();
    expect(t.canSendHandshake(0)).toBe(true);
    t.handshakeInitiated(1000);
    expect(t.canSendHandshake(5999)).toBe(false);
    expect(t.canSendHandshake(6000)).toBe(true);
    t.handshakeResponseSent(7000);
    expect(t.canSendHandshake(11_999)).toBe(false);
    expect(t.canSendHandshake(12_000)).toBe(true);
  });

  test('11. zero key material 540 s after the last session derivation (re-derivation re-arms)', () => {
    const t = timers();
    t.sessionDerived(0);
    expect(t.deadline('zeroKeyMaterial')).toBe(540_000);
    t.sessionDerived(120_000);
    expect(t.due(540_000)).toEqual([]);
    expect(t.due(660_000)).toEqual(['zeroKeyMaterial']);
  });

  test('12. persistent keepalive every N s after the last packet either way; 0 turns it off', () => {
    const t = timers();
    t.anyAuthenticatedPacketTraversal(0);
    expect(t.deadline('persistentKeepalive')).toBeUndefined(); // off by default
    t.setPersistentKeepalive(25);
    expect(t.persistentKeepaliveSeconds).toBe(25);
    t.anyAuthenticatedPacketTraversal(1000);
    t.anyAuthenticatedPacketTraversal(3000); // each packet pushes it back
    expect(t.due(27_999)).toEqual([]);
    expect(t.due(28_000)).toEqual(['persistentKeepalive']);
    t.anyAuthenticatedPacketTraversal(28_000); // the façade's keepalive is itself a packet: re-armed
    expect(t.due(53_000)).toEqual(['persistentKeepalive']);
    t.anyAuthenticatedPacketTraversal(53_000);
    t.setPersistentKeepalive(0);
    expect(t.nextDeadline()).toBeUndefined();
    t.anyAuthenticatedPacketTraversal(60_000);
    expect(t.due(1_000_000)).toEqual([]);
  });

  test('13. several expiries at once come earliest first; nextDeadline is the minimum; stop disarms all', () => {
    const t = timers(50);
    t.sessionDerived(0); // 540 000
    t.dataSent(0); // 15 050
    t.dataReceived(0); // 10 000
    t.handshakeInitiated(0); // 5 050
    t.setPersistentKeepalive(7);
    t.anyAuthenticatedPacketTraversal(0); // 7 000
    expect(t.nextDeadline()).toBe(5050);
    const fired: TimerExpiry[] = t.due(600_000);
    expect(fired).toEqual([
      'retransmitHandshake',
      'persistentKeepalive',
      'sendKeepalive',
      'newHandshake',
      'zeroKeyMaterial',
    ]);
    expect(t.nextDeadline()).toBeUndefined();
    t.dataReceived(0);
    t.sessionDerived(0);
    t.stop();
    expect(t.nextDeadline()).toBeUndefined();
    expect(t.due(10_000_000)).toEqual([]);
  });

  test('14. equal deadlines come in wireguard-go declaration order', () => {
    const t = timers();
    t.dataReceived(5000); // sendKeepalive at 15 000
    t.dataSent(0); // newHandshake at 15 000
    t.handshakeInitiated(10_000); // retransmitHandshake at 15 000
    expect(t.due(15_000)).toEqual(['retransmitHandshake', 'sendKeepalive', 'newHandshake']);
  });
});

describe('jitterFromRandomBytes', () => {
  test('maps 4 random bytes to whole milliseconds in [0, 334)', () => {
    const script = [
      [0, 0, 0, 0],
      [0xff, 0xff, 0xff, 0xff],
      [77, 1, 0, 0],
    ];
    let call = 0;
    const jitter = jitterFromRandomBytes(() => Uint8Array.from(script[call++]!));
    expect([jitter(), jitter(), jitter()]).toEqual([0, 0xffffffff % 334, (77 + 256) % 334]);
  });

  test('with a real random source every value is an integer in range, and the range is covered', async () => {
    const { randomBytes } = await import('node:crypto');
    const jitter = jitterFromRandomBytes((n) => randomBytes(n));
    const values = Array.from({ length: 20000 }, jitter);
    expect(values.every((v) => Number.isInteger(v) && v >= 0 && v < 334)).toBe(true);
    expect(new Set(values).size).toBe(334);
  });
});
