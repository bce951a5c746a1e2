// Whether the main thread is CPU-bound, for the crypto threads' hand-over (pool.ts, `--hand-over auto`).
// Handing a turn's messages to a crypto thread costs more CPU in all than sealing and opening them on the
// main thread (copies into the ring, wake-ups, reading results back: bench-tunnel measured 7.2 against
// 9.9 CPU s/GB with 2 threads, inline against handed over), and buys speed only when the main thread has
// no time left: then a second core takes a share of the crypto. While one core carries the node, the
// cores it would take are better left to the kernel and to everything else on the host.
import { readFileSync } from 'node:fs';

/** When bulk traffic goes to the crypto threads (`--hand-over`): 'auto' while the main thread is CPU-bound, 'bulk' always. */
export type HandOver = 'auto' | 'bulk';
export const HAND_OVER_MODES: readonly HandOver[] = ['auto', 'bulk'];

/** How often the load is sampled, at most (lazily, while messages pass). */
export const LOAD_WINDOW_MS = 100;
/**
 * The share of a window the main thread ran for it to count as CPU-bound; once it is, it stays so while the
 * whole process (the crypto threads' work and the hand-over's cost included) runs this share of a window
 * too: below it, the main thread could take everything back and still have time to spare. Its own share
 * would not say so, as it falls once the threads take part of its work, and a threshold on it would hand
 * over and take back window after window. Time spent waiting for a core does not count: a main thread that
 * gets less than a core because every core is busy is not helped by another thread, which would only take
 * CPU from the rest of the host (with a core idle, the kernel moves the thread there).
 */
export const CPU_BOUND_SHARE = 0.9;

/** Nanoseconds the calling thread has run (Linux schedstat), or undefined where that cannot be read. */
export function threadCpuNs(): number | undefined {
  try {
    const ns = Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ', 1)[0]);
    return Number.isFinite(ns) ? ns : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One line for an operator whose host cannot tell the main thread's CPU time: with `auto`, bulk traffic then
 * goes to the crypto threads as with `bulk`.
 */
export function handOverWarning(
  handOver: HandOver,
  threadCpu: () => number | undefined = threadCpuNs,
): string | undefined {
  if (handOver !== 'auto' || threadCpu() !== undefined) return undefined;
  return (
    "hand-over auto: this thread's CPU time cannot be read (/proc/thread-self/schedstat): bulk traffic goes " +
    'to the crypto threads as with --hand-over bulk'
  );
}

/** Nanoseconds every thread of this process has run (user and system time). */
export function processCpuNs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) * 1000;
}

/** Whether a thread is CPU-bound, asked at most once a turn, when a turn's bulk traffic is to be placed. */
export interface ThreadLoad {
  cpuBound(now: number): boolean;
}

export class MainThreadLoad implements ThreadLoad {
  private windowStart = -Infinity;
  // Doubles from the start (no reading yet: NaN), as the nanosecond counts are: a small integer here would
  // change the object's shape at the first reading, and so throw away the code compiled for the first one.
  private threadAtStart = NaN;
  private processAtStart = NaN;
  private bound = false;
  /** False once this thread's CPU time could not be read: it is not tried again. */
  private readable = true;

  constructor(
    private readonly threadCpu: () => number | undefined = threadCpuNs,
    private readonly processCpu: () => number = processCpuNs,
  ) {}

  /**
   * Whether the main thread was CPU-bound over its last whole window before `now` (monotonic ms), or, once
   * it was, whether the process still is; a host that cannot tell counts as CPU-bound (the threads take
   * bulk traffic, as with `--hand-over bulk`).
   */
  cpuBound(now: number): boolean {
    if (!this.readable) return true;
    if (now - this.windowStart < LOAD_WINDOW_MS) return this.bound;
    const thread = this.threadCpu();
    if (thread === undefined) {
      this.readable = false;
      return true;
    }
    const processNs = this.processCpu();
    const windowNs = (now - this.windowStart) * 1e6;
    const ran = this.bound ? processNs - this.processAtStart : thread - this.threadAtStart;
    this.bound = ran >= CPU_BOUND_SHARE * windowNs;
    this.windowStart = now;
    this.threadAtStart = thread;
    this.processAtStart = processNs;
    return this.bound;
  }
}
