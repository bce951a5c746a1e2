// Garbage collections counted by the runtime as they happen, for the benchmarks. Entries arrive on a later
// turn: let one pass before reading the counts.
import { PerformanceObserver, constants } from 'node:perf_hooks';

export interface GcCount {
  /** Minor and major collections since counting began, updated in place. */
  readonly gcs: { readonly minor: number; readonly major: number };
  stop(): void;
}

/** Starts counting collections. */
export function countGcs(): GcCount {
  const gcs = { minor: 0, major: 0 };
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as unknown as { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) gcs.minor++;
      else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) gcs.major++;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return { gcs, stop: () => observer.disconnect() };
}
