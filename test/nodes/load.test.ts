// The main thread's load, which decides the crypto threads' hand-over with `--hand-over auto`
// (nodes/threads/load.ts): windows of CPU time against wall time, with hysteresis, from a clock fed by hand.
import {
  CPU_BOUND_SHARE,
  LOAD_WINDOW_MS,
  MainThreadLoad,
  RELIEVED_SHARE,
  threadCpuNs,
} from '../../nodes/threads/load.js';

const MS = 1e6; // ns

describe('MainThreadLoad', () => {
  // [n, what, CPU ms the thread ran in the window, window ms, bound before, bound after]
  const windows: Array<[number, string, number, number, boolean, boolean]> = [
    [1, 'idle', 0, LOAD_WINDOW_MS, false, false],
    [2, 'busy but below the share', (CPU_BOUND_SHARE - 0.05) * LOAD_WINDOW_MS, LOAD_WINDOW_MS, false, false],
    [3, 'at the share: CPU-bound', CPU_BOUND_SHARE * LOAD_WINDOW_MS, LOAD_WINDOW_MS, false, true],
    [
      4,
      'bound, then relieved a little: still bound',
      (RELIEVED_SHARE + 0.05) * LOAD_WINDOW_MS,
      LOAD_WINDOW_MS,
      true,
      true,
    ],
    [
      5,
      'bound, then below the relieved share: released',
      (RELIEVED_SHARE - 0.05) * LOAD_WINDOW_MS,
      LOAD_WINDOW_MS,
      true,
      false,
    ],
    [6, 'a long window, busy throughout', 0.95 * 10 * LOAD_WINDOW_MS, 10 * LOAD_WINDOW_MS, false, true],
    [7, 'a long idle gap after being bound', 1, 100 * LOAD_WINDOW_MS, true, false],
  ];
  test.each(windows)('%i. %s', (_n, _what, ranMs, windowMs, before, after) => {
    let cpu = 5_000 * MS;
    const load = new MainThreadLoad(() => cpu);
    let now = 1_000;
    load.cpuBound(now); // the first window starts
    if (before) {
      cpu += LOAD_WINDOW_MS * MS;
      now += LOAD_WINDOW_MS;
      expect(load.cpuBound(now)).toBe(true);
    }
    cpu += ranMs * MS;
    now += windowMs;
    expect(load.cpuBound(now)).toBe(after);
  });

  test('8. within a window the last answer holds, without reading the CPU time again', () => {
    let reads = 0;
    let cpu = 0;
    const load = new MainThreadLoad(() => (reads++, cpu));
    load.cpuBound(0);
    cpu += LOAD_WINDOW_MS * MS;
    expect(load.cpuBound(LOAD_WINDOW_MS)).toBe(true);
    cpu = 0; // would read as idle
    expect(load.cpuBound(LOAD_WINDOW_MS + LOAD_WINDOW_MS / 2)).toBe(true);
    expect(reads).toBe(2);
  });

  test('9. a host whose thread CPU time cannot be read counts as CPU-bound (the threads take bulk traffic)', () => {
    const load = new MainThreadLoad(() => undefined);
    expect(load.cpuBound(0)).toBe(true);
    expect(load.cpuBound(10 * LOAD_WINDOW_MS)).toBe(true);
  });

  test("10. threadCpuNs reads this thread's CPU time on Linux, and it grows as the thread works", () => {
    const before = threadCpuNs();
    expect(before).toEqual(expect.any(Number));
    let sum = 0;
    for (let i = 0; i < 20_000_000; i++) sum = (sum + i) | 0; // some CPU time: work, not a wait
    expect(sum).not.toBe(0.5);
    expect(threadCpuNs()!).toBeGreaterThan(before!);
  });
});
