// The device's timer queue: one entry per peer with an armed timer, keyed by that peer's earliest deadline,
// in an indexed binary min-heap. The event loop reads the next deadline and a tick finds the peers that are
// due without visiting the others (wireguard-go leaves this to the Go runtime's timer heap, the kernel to
// its timer wheel).
//
// An entry may be early, never late. Arming a timer earlier than the peer's entry moves the entry up; a
// timer disarmed or pushed back (a keepalive postponed by every packet) leaves the entry where it was, so
// the data path pays one comparison, not a sift. A stale entry is corrected when it reaches the top: at most
// once per arming, which keeps the work amortised O(log n) per timer event and never O(peers).

/** The queue's bookkeeping inside each item; only the queue writes it. */
export interface Queued {
  /** Position of the item's entry in the heap; -1 while it has none. */
  queueIndex: number;
  /** The entry's key in monotonic ms: never later than the item's earliest deadline while queued. */
  queuedAt: number;
}

export class DeadlineQueue<T extends Queued> {
  private readonly heap: T[] = [];

  /** @param deadlineOf the item's true earliest armed deadline, undefined when none is armed */
  constructor(private readonly deadlineOf: (item: T) => number | undefined) {}

  /** Items with an entry (stale ones included). */
  get size(): number {
    return this.heap.length;
  }

  /**
   * Call whenever one of the item's timers is armed at now + delay: only an earlier deadline moves its entry.
   * The deadline is summed here, as PeerTimersOptions.armed hands it over, so the data path boxes no number.
   */
  armed(item: T, now: number, delay = 0): void {
    const at = now + delay;
    if (item.queueIndex < 0 || at < item.queuedAt) this.place(item, at);
  }

  /** Re-reads the item's deadline and places (or drops) its entry accordingly. */
  requeue(item: T): void {
    const at = this.deadlineOf(item);
    if (at === undefined) this.remove(item);
    else this.place(item, at);
  }

  remove(item: T): void {
    const index = item.queueIndex;
    if (index < 0) return;
    item.queueIndex = -1;
    const last = this.heap.pop()!;
    if (last === item) return;
    this.heap[index] = last;
    last.queueIndex = index;
    this.siftUp(index);
    this.siftDown(last.queueIndex);
  }

  /**
   * False only when no item's deadline is before `at`: entries are never late, so a top entry at or after
   * `at` settles it. True may come from a stale entry (earliest() corrects it).
   */
  mayBeBefore(at: number): boolean {
    const top = this.heap[0];
    return top !== undefined && top.queuedAt < at;
  }

  /** The earliest armed deadline of any item, exact: stale entries on top are corrected first. */
  earliest(): number | undefined {
    for (let top = this.heap[0]; top !== undefined; top = this.heap[0]) {
      const at = this.deadlineOf(top);
      if (at === top.queuedAt) return at;
      this.requeue(top);
    }
    return undefined;
  }

  /**
   * Removes and returns the items with a deadline at or before `now`, earliest first. Their entries are gone:
   * the caller fires their timers, then calls requeue for each.
   */
  takeDue(now: number): T[] {
    const due: T[] = [];
    for (let top = this.heap[0]; top !== undefined && top.queuedAt <= now; top = this.heap[0]) {
      const at = this.deadlineOf(top);
      if (at !== undefined && at <= now) {
        this.remove(top);
        due.push(top);
      } else {
        this.requeue(top);
      }
    }
    return due;
  }

  private place(item: T, at: number): void {
    if (item.queueIndex < 0) {
      item.queueIndex = this.heap.length;
      item.queuedAt = at;
      this.heap.push(item);
      this.siftUp(item.queueIndex);
      return;
    }
    const earlier = at < item.queuedAt;
    item.queuedAt = at;
    if (earlier) this.siftUp(item.queueIndex);
    else this.siftDown(item.queueIndex);
  }

  private siftUp(index: number): void {
    const heap = this.heap;
    const item = heap[index]!;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = heap[parentIndex]!;
      if (parent.queuedAt <= item.queuedAt) break;
      heap[index] = parent;
      parent.queueIndex = index;
      index = parentIndex;
    }
    heap[index] = item;
    item.queueIndex = index;
  }

  private siftDown(index: number): void {
    const heap = this.heap;
    const length = heap.length;
    const item = heap[index]!;
    for (;;) {
      let child = 2 * index + 1;
      if (child >= length) break;
      if (child + 1 < length && heap[child + 1]!.queuedAt < heap[child]!.queuedAt) child++;
      const smaller = heap[child]!;
      if (smaller.queuedAt >= item.queuedAt) break;
      heap[index] = smaller;
      smaller.queueIndex = index;
      index = child;
    }
    heap[index] = item;
    item.queueIndex = index;
  }
}
