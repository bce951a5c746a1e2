// The per-peer timer state machine of wireguard-go's timers.go (docs/WIREGUARD.md §4.2) as pure state: five
// deadlines in the caller's monotonic milliseconds, the hooks that arm and disarm them, and due(now), which
// reports the timers that expired. Acting on them (sending an initiation or a keepalive, zeroing keys,
// dropping staged packets) is the façade's job; this module only keeps the deadlines and counters.

import {
  KEEPALIVE_TIMEOUT_MS,
  MAX_TIMER_HANDSHAKES,
  REKEY_TIMEOUT_JITTER_MAX_MS,
  REKEY_TIMEOUT_MS,
  ZERO_KEY_MATERIAL_AFTER_MS,
} from './constants.js';

export type TimerName =
  'retransmitHandshake' | 'sendKeepalive' | 'newHandshake' | 'zeroKeyMaterial' | 'persistentKeepalive';

/**
 * What an expired timer asks the façade to do:
 * - retransmitHandshake: send a new initiation as a retry (attempts already counted), after clearing the
 *   cached source address;
 * - handshakeGaveUp: the retransmit timer expired after MAX_TIMER_HANDSHAKES retries: drop the staged
 *   packets (the keepalive timer is already disarmed and zeroKeyMaterial armed);
 * - sendKeepalive / persistentKeepalive: send a keepalive;
 * - newHandshake: we sent data and heard nothing back: clear the cached source address and initiate a
 *   (non-retry) handshake;
 * - zeroKeyMaterial: delete all keypairs and zero the handshake.
 */
export type TimerExpiry = TimerName | 'handshakeGaveUp';

// Order among timers that expire at the same millisecond: the order wireguard-go declares them in.
const TIMERS: readonly TimerName[] = [
  'retransmitHandshake',
  'sendKeepalive',
  'newHandshake',
  'zeroKeyMaterial',
  'persistentKeepalive',
];

/** Shared by all the peers of a device (one object, no closure per peer). */
export interface PeerTimersOptions<O = undefined> {
  /** Random jitter in [0, REKEY_TIMEOUT_JITTER_MAX_MS) ms, added to the retransmit and new-handshake timers. */
  jitter(): number;
  /**
   * Told every time a timer is armed, with the timers' owner and the deadline as `now + delay` (the device's
   * timer queue). The sum is left to the listener: a fractional deadline computed here and passed on would be
   * a new heap number per call, and the data path re-arms a timer for nearly every packet.
   */
  armed?(owner: O, now: number, delay: number): void;
}

// Jitter is drawn whenever the new-handshake timer re-arms, which a two-way flow does for nearly every data
// packet it sends: the random bytes come in blocks, one randomBytes call per 256 jitters, not one per packet.
const JITTER_POOL_BYTES = 1024;

/** A jitter source over the engine's injected randomBytes: uniform in [0, 334) ms up to a 2^-25 bias. */
export function jitterFromRandomBytes(randomBytes: (length: number) => Uint8Array): () => number {
  let pool: Uint8Array = new Uint8Array(0);
  let used = 0;
  return () => {
    if (pool.length - used < 4) {
      pool = randomBytes(JITTER_POOL_BYTES);
      used = 0;
    }
    const b = pool;
    const i = used;
    used += 4;
    return (
      ((b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0) % REKEY_TIMEOUT_JITTER_MAX_MS
    );
  };
}

// A disarmed timer's deadline.
const UNARMED = Infinity;

// The deadlines live in a Float64Array, one slot per timer in TIMERS' order: a fractional deadline written to
// a slot is stored as it is, where an object field or array element would box it (the data path re-arms a
// timer for nearly every packet, so a box there is garbage per packet).
const RETRANSMIT_HANDSHAKE = 0;
const SEND_KEEPALIVE = 1;
const NEW_HANDSHAKE = 2;
const ZERO_KEY_MATERIAL = 3;
const PERSISTENT_KEEPALIVE = 4;

// Most peers of a big node are configured and idle, never arming a timer: they share this table until their
// first arm() gives them their own. It only ever holds UNARMED, as arm() is the one writer of anything else.
const NEVER_ARMED = new Float64Array(TIMERS.length).fill(UNARMED);

export class PeerTimers<O = undefined> {
  private deadlines = NEVER_ARMED;
  private attempts = 0;
  private needAnotherKeepalive = false;
  private persistentKeepaliveMs = 0;
  private lastHandshakeSentAt = -Infinity;
  /** Set by the façade when, as initiator, it rekeys on receive at 165 s; cleared by handshakeComplete. */
  sentLastMinuteHandshake = false;

  constructor(
    private readonly options: PeerTimersOptions<O>,
    private readonly owner?: O,
  ) {}

  /** Retries of the current handshake attempt so far. */
  get handshakeAttempts(): number {
    return this.attempts;
  }

  get persistentKeepaliveSeconds(): number {
    return this.persistentKeepaliveMs / 1000;
  }

  /** Sets the persistent keepalive interval (0 = off, which disarms the timer). */
  setPersistentKeepalive(seconds: number): void {
    this.persistentKeepaliveMs = seconds * 1000;
    if (seconds === 0) this.deadlines[PERSISTENT_KEEPALIVE] = UNARMED;
  }

  /** The armed deadline of one timer, if any. */
  deadline(timer: TimerName): number | undefined {
    const at = this.deadlines[TIMERS.indexOf(timer)]!;
    return at === UNARMED ? undefined : at;
  }

  /** The earliest armed deadline, if any. */
  nextDeadline(): number | undefined {
    let earliest = UNARMED;
    for (const at of this.deadlines) earliest = Math.min(earliest, at);
    return earliest === UNARMED ? undefined : earliest;
  }

  /** Disarms every timer (peer stopped or removed). */
  stop(): void {
    if (this.deadlines !== NEVER_ARMED) this.deadlines.fill(UNARMED);
    this.needAnotherKeepalive = false;
  }

  /** Whether an initiation may be sent now: none or a response went out less than REKEY_TIMEOUT ago. */
  canSendHandshake(now: number): boolean {
    return now - this.lastHandshakeSentAt >= REKEY_TIMEOUT_MS;
  }

  /** Call this before sending an initiation that is not a retransmission: a new attempt starts counting. */
  newHandshakeAttempt(): void {
    this.attempts = 0;
  }

  /** The initiation just sent is the only one: its retransmission timer gives up instead of retrying. */
  lastHandshakeAttempt(): void {
    this.attempts = MAX_TIMER_HANDSHAKES + 1;
  }

  /** Call this after a handshake initiation is sent. */
  handshakeInitiated(now: number): void {
    this.lastHandshakeSentAt = now;
    this.arm(RETRANSMIT_HANDSHAKE, now, REKEY_TIMEOUT_MS + this.options.jitter());
  }

  /** Lets the next initiation go out at once (wireguard-go ExpireCurrentKeypairs, after a key change). */
  allowHandshakeNow(): void {
    this.lastHandshakeSentAt = -Infinity;
  }

  /** Call this after a handshake response is sent (it counts against the initiation rate limit). */
  handshakeResponseSent(now: number): void {
    this.lastHandshakeSentAt = now;
  }

  /** Call this after a handshake response is consumed, or the first packet with the next keypair arrives. */
  handshakeComplete(): void {
    this.deadlines[RETRANSMIT_HANDSHAKE] = UNARMED;
    this.attempts = 0;
    this.sentLastMinuteHandshake = false;
  }

  /** Call this after a session key is derived (responder sending a response, initiator consuming one). */
  sessionDerived(now: number): void {
    this.arm(ZERO_KEY_MATERIAL, now, ZERO_KEY_MATERIAL_AFTER_MS);
  }

  /** Call this after an authenticated data packet (not a keepalive) is sent. */
  dataSent(now: number): void {
    if (this.deadlines[NEW_HANDSHAKE] === UNARMED) {
      this.arm(NEW_HANDSHAKE, now, KEEPALIVE_TIMEOUT_MS + REKEY_TIMEOUT_MS + this.options.jitter());
    }
  }

  /** Call this after an authenticated data packet (not a keepalive) is received. */
  dataReceived(now: number): void {
    if (this.deadlines[SEND_KEEPALIVE] === UNARMED) this.arm(SEND_KEEPALIVE, now, KEEPALIVE_TIMEOUT_MS);
    else this.needAnotherKeepalive = true;
  }

  /** Call this after any authenticated packet (data, keepalive or handshake) is sent. */
  anyAuthenticatedPacketSent(): void {
    this.deadlines[SEND_KEEPALIVE] = UNARMED;
  }

  /** Call this after any authenticated packet (data, keepalive or handshake) is received. */
  anyAuthenticatedPacketReceived(): void {
    this.deadlines[NEW_HANDSHAKE] = UNARMED;
  }

  /** Call this after any authenticated packet is sent or received. */
  anyAuthenticatedPacketTraversal(now: number): void {
    if (this.persistentKeepaliveMs > 0) this.arm(PERSISTENT_KEEPALIVE, now, this.persistentKeepaliveMs);
  }

  /**
   * Disarms and reports the timers whose deadline is at or before now, earliest first, applying their own
   * bookkeeping (retry counting, giving up, the extra keepalive).
   */
  due(now: number): TimerExpiry[] {
    const fired: TimerExpiry[] = [];
    for (let timer = this.earliestDue(now); timer >= 0; timer = this.earliestDue(now)) {
      this.deadlines[timer] = UNARMED;
      fired.push(this.expire(timer, now));
    }
    return fired;
  }

  /** Arms `timer` (a TIMERS index) at now + delay. */
  private arm(timer: number, now: number, delay: number): void {
    if (this.deadlines === NEVER_ARMED) this.deadlines = Float64Array.from(NEVER_ARMED);
    this.deadlines[timer] = now + delay;
    this.options.armed?.(this.owner as O, now, delay);
  }

  /** The TIMERS index of the earliest timer due at `now` (the first declared among equals), or -1. */
  private earliestDue(now: number): number {
    let earliest = -1;
    for (let timer = 0; timer < TIMERS.length; timer++) {
      const at = this.deadlines[timer]!;
      if (at <= now && (earliest < 0 || at < this.deadlines[earliest]!)) earliest = timer;
    }
    return earliest;
  }

  private expire(timer: number, now: number): TimerExpiry {
    switch (timer) {
      case RETRANSMIT_HANDSHAKE:
        if (this.attempts > MAX_TIMER_HANDSHAKES) {
          this.deadlines[SEND_KEEPALIVE] = UNARMED;
          if (this.deadlines[ZERO_KEY_MATERIAL] === UNARMED)
            this.arm(ZERO_KEY_MATERIAL, now, ZERO_KEY_MATERIAL_AFTER_MS);
          return 'handshakeGaveUp';
        }
        this.attempts++;
        return 'retransmitHandshake';
      case SEND_KEEPALIVE:
        // As in wireguard-go, the re-arm precedes the keepalive's own send, whose anyAuthenticatedPacketSent
        // disarms it again (there the send completes asynchronously, after this re-arm).
        if (this.needAnotherKeepalive) {
          this.needAnotherKeepalive = false;
          this.arm(SEND_KEEPALIVE, now, KEEPALIVE_TIMEOUT_MS);
        }
        return 'sendKeepalive';
      default:
        return TIMERS[timer]!;
    }
  }
}
