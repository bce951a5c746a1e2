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

/** How often the main thread's load is sampled, at most (lazily, while messages pass). */
export const LOAD_WINDOW_MS = 100;
/** The share of a window the main thread ran for it to count as CPU-bound. */
export const CPU_BOUND_SHARE = 0.9;
/**
 * Once CPU-bound, the share below which it no longer is: the threads took part of its work, so it runs
 * less than before for the same traffic, and a tighter band would hand over and take back turn after turn.
 */
export const RELIEVED_SHARE = 0.5;

/** Nanoseconds the calling thread has run (Linux schedstat), or undefined where that cannot be read. */
export function threadCpuNs(): number | undefined {
  try {
    const ns = Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ', 1)[0]);
    return Number.isFinite(ns) ? ns : undefined;
  } catch {
    return undefined;
  }
}

/** Whether a thread is CPU-bound, asked at the start of each turn that carries messages. */
export interface ThreadLoad {
  cpuBound(now: number): boolean;
}

export class MainThreadLoad implements ThreadLoad {
  private windowStart = -Infinity;
  private cpuAtStart = 0;
  private bound = false;

  constructor(private readonly cpuNs: () => number | undefined = threadCpuNs) {}

  /**
   * Whether the main thread was CPU-bound over its last whole window before `now` (monotonic ms); a host
   * that cannot tell counts as CPU-bound (the threads take bulk traffic, as with `--hand-over bulk`).
   */
  cpuBound(now: number): boolean {
    if (now - this.windowStart < LOAD_WINDOW_MS) return this.bound;
    const cpu = this.cpuNs();
    if (cpu === undefined) return (this.bound = true);
    const share = (cpu - this.cpuAtStart) / 1e6 / (now - this.windowStart);
    this.bound = share >= (this.bound ? RELIEVED_SHARE : CPU_BOUND_SHARE);
    this.windowStart = now;
    this.cpuAtStart = cpu;
    return this.bound;
  }
}
