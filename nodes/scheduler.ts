// Drives the engine's timers: one setTimeout, never later than the earliest deadline of all peers, never a
// timer per peer. The engine only knows monotonic milliseconds, so the clock here is performance.now().
import { performance } from 'node:perf_hooks';

/** The part of the Tunnel the scheduler drives. */
export interface Tickable<A> {
  tick(now: number): A[];
  nextDeadline(): number | undefined;
  /** False only when no deadline is before `at`; true may be spurious (then nextDeadline() says). */
  mayBeDueBefore(at: number): boolean;
}

export interface TimerApi {
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const monotonicNow = (): number => performance.now();

const NODE_TIMERS: TimerApi = {
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

// setTimeout clamps longer delays to 1 ms; re-checking now and then is harmless.
const MAX_DELAY_MS = 2 ** 31 - 1;

export class TimerScheduler<A> {
  private handle: unknown;
  /** Holds undefined now and then, which keeps the field tagged: passed on as it is, never boxed anew. */
  private armedFor: number | undefined;
  private stopped = false;
  private readonly fired = (): void => this.fire();

  constructor(
    private readonly engine: Tickable<A>,
    private readonly onActions: (actions: A[]) => void,
    private readonly clock: () => number = monotonicNow,
    private readonly timers: TimerApi = NODE_TIMERS,
  ) {}

  /** Call after every engine call that may have moved the earliest deadline. Cheap when it did not. */
  rearm(): void {
    if (this.stopped) return;
    const deadline = this.engine.nextDeadline();
    if (deadline === this.armedFor) return;
    // A timer armed for an earlier moment stays: when it fires, the engine finds nothing due and the timer
    // moves on. Deadlines move later with nearly every packet (a keepalive pushed back), and re-arming for
    // each move made a new timer every event-loop turn of a busy node. With no deadline left it is cancelled,
    // so nothing keeps the event loop alive for it.
    if (deadline !== undefined && this.armedFor !== undefined && this.armedFor < deadline) return;
    this.cancel();
    if (deadline === undefined) return;
    this.armedFor = deadline;
    const delay = Math.min(MAX_DELAY_MS, Math.max(0, Math.ceil(deadline - this.clock())));
    this.handle = this.timers.setTimeout(this.fired, delay);
  }

  /**
   * The data path's variant, after every engine call: re-arms at once, but only when a deadline may have
   * come before the armed timer. Deadlines moved later (nearly every packet's) cost one comparison, no
   * scan, no callback queued and nothing allocated; an earlier one is armed before the call returns.
   */
  rearmIfEarlier(): void {
    const armedFor = this.armedFor;
    if (armedFor !== undefined && !this.engine.mayBeDueBefore(armedFor)) return;
    this.rearm();
  }

  stop(): void {
    this.stopped = true;
    this.cancel();
  }

  private fire(): void {
    this.handle = undefined;
    this.armedFor = undefined;
    const actions = this.engine.tick(this.clock());
    if (actions.length > 0) this.onActions(actions);
    this.rearm();
  }

  private cancel(): void {
    if (this.handle !== undefined) this.timers.clearTimeout(this.handle);
    this.handle = undefined;
    this.armedFor = undefined;
  }
}
