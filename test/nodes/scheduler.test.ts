import { TimerScheduler, type Tickable, type TimerApi } from '../../nodes/scheduler.js';

/** A manual clock with a timer list: advancing fires due timers in order. */
class ManualTimers implements TimerApi {
  now = 0;
  private next = 1;
  readonly pending = new Map<number, { at: number; callback: () => void }>();

  setTimeout(callback: () => void, delayMs: number): unknown {
    const id = this.next++;
    this.pending.set(id, { at: this.now + delayMs, callback });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      const due = [...this.pending.entries()]
        .filter(([, t]) => t.at <= end)
        .sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.pending.delete(due[0]);
      this.now = due[1].at;
      due[1].callback();
    }
    this.now = end;
  }
}

/** An engine with a list of deadlines; tick returns the ones due. */
class FakeEngine implements Tickable<number> {
  deadlines: number[] = [];
  ticks: number[] = [];
  tick(now: number): number[] {
    this.ticks.push(now);
    const due = this.deadlines.filter((d) => d <= now);
    this.deadlines = this.deadlines.filter((d) => d > now);
    return due;
  }
  nextDeadline(): number | undefined {
    return this.deadlines.length === 0 ? undefined : Math.min(...this.deadlines);
  }
  mayBeDueBefore(at: number): boolean {
    return this.deadlines.some((d) => d < at);
  }
}

function setup() {
  const timers = new ManualTimers();
  const engine = new FakeEngine();
  const fired: number[] = [];
  const scheduler = new TimerScheduler(
    engine,
    (actions) => fired.push(...actions),
    () => timers.now,
    timers,
  );
  return { timers, engine, fired, scheduler };
}

describe('TimerScheduler', () => {
  test('fires at each deadline with one timer armed at a time', () => {
    const { timers, engine, fired, scheduler } = setup();
    engine.deadlines = [5000, 100, 10000];
    scheduler.rearm();
    expect(timers.pending.size).toBe(1);
    timers.advance(99);
    expect(engine.ticks).toEqual([]);
    timers.advance(1);
    expect(engine.ticks).toEqual([100]);
    expect(fired).toEqual([100]);
    expect(timers.pending.size).toBe(1);
    timers.advance(20000);
    expect(engine.ticks).toEqual([100, 5000, 10000]);
    expect(fired).toEqual([100, 5000, 10000]);
    expect(timers.pending.size).toBe(0);
  });

  test('rearm moves the timer to an earlier deadline and is a no-op when nothing changed', () => {
    const { timers, engine, scheduler } = setup();
    engine.deadlines = [1000];
    scheduler.rearm();
    const [first] = timers.pending.keys();
    scheduler.rearm();
    expect([...timers.pending.keys()]).toEqual([first]);
    engine.deadlines.push(10);
    scheduler.rearm();
    expect(timers.pending.size).toBe(1);
    timers.advance(10);
    expect(engine.ticks).toEqual([10]);
  });

  test('a deadline that moves later keeps the armed timer: it fires early, finds nothing due, and moves on', () => {
    const { timers, engine, fired, scheduler } = setup();
    engine.deadlines = [100];
    scheduler.rearm();
    const [armed] = timers.pending.keys();
    for (const later of [150, 200, 250]) {
      engine.deadlines = [later]; // as a keepalive pushed back by each packet
      scheduler.rearm();
      expect([...timers.pending.keys()]).toEqual([armed]);
    }
    timers.advance(100);
    expect([engine.ticks, fired]).toEqual([[100], []]);
    expect(timers.pending.size).toBe(1);
    timers.advance(150);
    expect([engine.ticks, fired]).toEqual([[100, 250], [250]]);
    engine.deadlines = [];
    scheduler.rearm();
    expect(timers.pending.size).toBe(0);
  });

  test('a deadline already past fires at once; stop cancels', () => {
    const { timers, engine, scheduler } = setup();
    timers.now = 500;
    engine.deadlines = [200];
    scheduler.rearm();
    timers.advance(0);
    expect(engine.ticks).toEqual([500]);
    engine.deadlines = [900];
    scheduler.rearm();
    scheduler.stop();
    timers.advance(1000);
    expect(engine.ticks).toEqual([500]);
    scheduler.rearm();
    expect(timers.pending.size).toBe(0);
  });

  test('rearmIfEarlier scans nothing while deadlines move later, and arms an earlier one at once', () => {
    const { timers, engine, scheduler } = setup();
    let scans = 0;
    const nextDeadline = engine.nextDeadline.bind(engine);
    engine.nextDeadline = () => (scans++, nextDeadline());
    engine.deadlines = [50];
    scheduler.rearmIfEarlier(); // nothing armed yet: a full scan
    expect([scans, timers.pending.size]).toEqual([1, 1]);
    const [armed] = timers.pending.keys();
    for (let i = 0; i < 100; i++) {
      engine.deadlines = [50 + i]; // a keepalive pushed back by each packet
      scheduler.rearmIfEarlier();
    }
    expect(scans).toBe(1);
    expect([...timers.pending.keys()]).toEqual([armed]);
    engine.deadlines.push(20); // e.g. a handshake retransmission armed by a packet
    scheduler.rearmIfEarlier();
    expect(scans).toBe(2);
    expect(timers.pending.size).toBe(1);
    expect([...timers.pending.keys()]).not.toEqual([armed]);
    timers.advance(20);
    expect(engine.ticks).toEqual([20]);
  });

  test('real timers and the monotonic clock', async () => {
    const engine = new FakeEngine();
    const fired: number[] = [];
    const start = performance.now();
    engine.deadlines = [start + 20, start + 40];
    const scheduler = new TimerScheduler(engine, (actions) => fired.push(...actions));
    scheduler.rearm();
    for (let i = 0; i < 100 && fired.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(fired).toEqual([start + 20, start + 40]);
  });
});
