// The device's timer queue (crypto/deadlines.ts): numbered cases for each rule, then a differential test
// against the naive scan it replaces (every item's earliest deadline read on every call), on random
// schedules of arming, disarming, postponing, removing and ticking.
import fc from 'fast-check';
import { DeadlineQueue, type Queued } from '../../crypto/deadlines.js';

/** An item with several independent timers, like a peer: its deadline is the earliest armed one. */
class Item implements Queued {
  queueIndex = -1;
  queuedAt = 0;
  timers: (number | undefined)[] = [undefined, undefined, undefined];
  constructor(readonly id: number) {}

  earliest(): number | undefined {
    const armed = this.timers.filter((at) => at !== undefined);
    return armed.length === 0 ? undefined : Math.min(...armed);
  }
}

/** Items and queue wired the way the Tunnel wires peers: arming tells the queue, disarming does not. */
class Model {
  readonly items: Item[];
  readonly queue = new DeadlineQueue<Item>((item) => item.earliest());
  constructor(count: number) {
    this.items = Array.from({ length: count }, (_, id) => new Item(id));
  }

  arm(item: Item, timer: number, at: number): void {
    item.timers[timer] = at;
    this.queue.armed(item, at);
  }

  /** What the naive scan reports: the earliest deadline of all items. */
  naiveEarliest(): number | undefined {
    const armed = this.items.map((item) => item.earliest()).filter((at) => at !== undefined);
    return armed.length === 0 ? undefined : Math.min(...armed);
  }

  /** What the naive scan visits at a tick: every item whose earliest deadline has come. */
  naiveDue(now: number): number[] {
    return this.items.filter((item) => (item.earliest() ?? Infinity) <= now).map((item) => item.id);
  }

  /** A tick as the Tunnel runs it: fire (disarm) what is due, then requeue. */
  tick(now: number): number[] {
    const due = this.queue.takeDue(now);
    for (const item of due) {
      item.timers = item.timers.map((at) => (at !== undefined && at <= now ? undefined : at));
      this.queue.requeue(item);
    }
    return due.map((item) => item.id).sort((x, y) => x - y);
  }
}

describe('deadline queue', () => {
  test('1. an armed item is due at its deadline, not before, and leaves the queue once fired', () => {
    const model = new Model(1);
    const [item] = model.items as [Item];
    model.arm(item, 0, 100);
    expect(model.queue.earliest()).toBe(100);
    expect(model.tick(99)).toEqual([]);
    expect(model.tick(100)).toEqual([0]);
    expect(model.queue.earliest()).toBeUndefined();
    expect(model.queue.size).toBe(0);
  });

  test('2. arming earlier moves the entry up; arming later leaves it early, and earliest() corrects it', () => {
    const model = new Model(2);
    const [a, b] = model.items as [Item, Item];
    model.arm(a, 0, 500);
    model.arm(b, 0, 300);
    model.arm(a, 1, 200);
    expect(model.queue.earliest()).toBe(200);
    // A postponed timer (a keepalive pushed back by traffic): the queue is not told.
    a.timers[1] = 900;
    expect(a.queuedAt).toBe(200);
    expect(model.queue.mayBeBefore(300)).toBe(true); // the stale entry: maybe
    expect(model.queue.earliest()).toBe(300);
    expect(a.queuedAt).toBe(500);
    expect(model.queue.mayBeBefore(300)).toBe(false); // corrected: nothing before 300
    expect(model.queue.mayBeBefore(301)).toBe(true);
  });

  test('3. a stale entry that reaches its time is requeued, not reported due', () => {
    const model = new Model(1);
    const [item] = model.items as [Item];
    model.arm(item, 0, 100);
    item.timers[0] = undefined; // disarmed without telling the queue
    model.arm(item, 1, 400);
    expect(model.tick(150)).toEqual([]);
    expect(item.queuedAt).toBe(400);
    expect(model.tick(400)).toEqual([0]);
  });

  test('4. remove drops the entry wherever it is in the heap', () => {
    const model = new Model(5);
    model.items.forEach((item, i) => model.arm(item, 0, 100 * (5 - i)));
    model.queue.remove(model.items[4]!);
    model.queue.remove(model.items[2]!);
    model.queue.remove(model.items[2]!); // twice is harmless
    expect(model.queue.size).toBe(3);
    expect(model.tick(1000)).toEqual([0, 1, 3]);
  });

  test('5. a tick visits only the due items of 10,000 (deadlineOf is read per visit, counted)', () => {
    let reads = 0;
    const items = Array.from({ length: 10_000 }, (_, id) => new Item(id));
    const queue = new DeadlineQueue<Item>((item) => (reads++, item.earliest()));
    items.forEach((item, i) => {
      item.timers[0] = 1_000 + i;
      queue.armed(item, item.timers[0]);
    });
    reads = 0;
    const due = queue.takeDue(1_009);
    expect(due.map((item) => item.id)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(reads).toBe(10);
  });

  // Operations on a model of 12 items with 3 timers each; times stay at or after the clock.
  const operation = fc.oneof(
    fc.record({
      kind: fc.constant('arm' as const),
      item: fc.nat(11),
      timer: fc.nat(2),
      delay: fc.integer({ min: 0, max: 1_000 }),
    }),
    fc.record({ kind: fc.constant('disarm' as const), item: fc.nat(11), timer: fc.nat(2) }),
    fc.record({
      kind: fc.constant('postpone' as const),
      item: fc.nat(11),
      timer: fc.nat(2),
      delay: fc.integer({ min: 0, max: 1_000 }),
    }),
    fc.record({ kind: fc.constant('remove' as const), item: fc.nat(11) }),
    fc.record({ kind: fc.constant('tick' as const), advance: fc.integer({ min: 0, max: 700 }) }),
    fc.record({ kind: fc.constant('peek' as const) }),
  );

  test('6. differential: on random schedules the queue agrees with the naive scan at every step (and mayBeBefore never clears a deadline it hides)', () => {
    fc.assert(
      fc.property(fc.array(operation, { maxLength: 200 }), (operations) => {
        const model = new Model(12);
        let now = 0;
        for (const op of operations) {
          switch (op.kind) {
            case 'arm':
              model.arm(model.items[op.item]!, op.timer, now + op.delay);
              break;
            case 'disarm':
              model.items[op.item]!.timers[op.timer] = undefined;
              break;
            case 'postpone': {
              // Later than it was, silently: the data path's keepalive push-back.
              const item = model.items[op.item]!;
              const was = item.timers[op.timer];
              if (was !== undefined) item.timers[op.timer] = Math.max(was, now) + op.delay;
              break;
            }
            case 'remove': {
              const item = model.items[op.item]!;
              item.timers = [undefined, undefined, undefined];
              model.queue.remove(item);
              break;
            }
            case 'tick': {
              now += op.advance;
              const expected = model.naiveDue(now);
              expect(model.tick(now)).toEqual(expected);
              expect(model.queue.earliest()).toBe(model.naiveEarliest());
              break;
            }
            case 'peek':
              // Not after every step: stale entries must also meet takeDue uncorrected.
              expect(model.queue.earliest()).toBe(model.naiveEarliest());
              break;
          }
          expect(model.queue.size).toBeLessThanOrEqual(model.items.length);
          // mayBeBefore is never wrong when false: a deadline lies before earliest + 1.
          const earliest = model.naiveEarliest();
          if (earliest !== undefined) expect(model.queue.mayBeBefore(earliest + 1)).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});
