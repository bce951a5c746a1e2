// The main thread's load, which decides the crypto threads' hand-over with `--hand-over auto`
// (nodes/threads/load.ts): windows of CPU time against wall time, with hysteresis, from a clock fed by hand.
import {
  CPU_BOUND_SHARE,
  handOverWarning,
  LOAD_WINDOW_MS,
  MainThreadLoad,
  processCpuNs,
  threadCpuNs,
} from '../../nodes/threads/load.js';

const MS = 1e6; // ns

describe('MainThreadLoad', () => {
  // [n, what, ms the main thread ran in the window, ms the whole process ran, window ms, bound before, after]
  const windows: Array<[number, string, number, number, number, boolean, boolean]> = [
    [1, 'idle', 0, 0, LOAD_WINDOW_MS, false, false],
    [2, 'busy but below the share', 85, 85, LOAD_WINDOW_MS, false, false],
    [
      3,
      'the process busy on other threads: the main thread is not bound',
      10,
      190,
      LOAD_WINDOW_MS,
      false,
      false,
    ],
    [
      4,
      'the main thread at the share: CPU-bound',
      CPU_BOUND_SHARE * LOAD_WINDOW_MS,
      95,
      LOAD_WINDOW_MS,
      false,
      true,
    ],
    [5, 'bound, its threads taking part of the work: still bound', 60, 140, LOAD_WINDOW_MS, true, true],
    [6, 'bound, the process below the share: released', 50, 85, LOAD_WINDOW_MS, true, false],
    [7, 'a long window, the main thread busy throughout', 950, 960, 10 * LOAD_WINDOW_MS, false, true],
    [8, 'a long idle gap after being bound', 1, 2, 100 * LOAD_WINDOW_MS, true, false],
  ];
  test.each(windows)('%i. %s', (_n, _what, threadMs, processMs, windowMs, before, after) => {
    let thread = 5_000 * MS;
    let proc = 7_000 * MS;
    const load = new MainThreadLoad(
      () => thread,
      () => proc,
    );
    let now = 1_000;
    load.cpuBound(now); // the first window starts
    if (before) {
      thread += LOAD_WINDOW_MS * MS;
      proc += LOAD_WINDOW_MS * MS;
      now += LOAD_WINDOW_MS;
      expect(load.cpuBound(now)).toBe(true);
    }
    thread += threadMs * MS;
    proc += processMs * MS;
    now += windowMs;
    expect(load.cpuBound(now)).toBe(after);
  });

  test('9. within a window the last answer holds, without reading the CPU time again', () => {
    let reads = 0;
    let cpu = 0;
    const load = new MainThreadLoad(
      () => (reads++, cpu),
      () => cpu,
    );
    load.cpuBound(0);
    cpu += LOAD_WINDOW_MS * MS;
    expect(load.cpuBound(LOAD_WINDOW_MS)).toBe(true);
    cpu = 0; // would read as idle
    expect(load.cpuBound(LOAD_WINDOW_MS + LOAD_WINDOW_MS / 2)).toBe(true);
    expect(reads).toBe(2);
  });

  test('10. a host whose thread CPU time cannot be read counts as CPU-bound (the threads take bulk traffic), and it is not read again', () => {
    let reads = 0;
    const load = new MainThreadLoad(() => (reads++, undefined));
    expect(load.cpuBound(0)).toBe(true);
    expect(load.cpuBound(1)).toBe(true);
    expect(load.cpuBound(10 * LOAD_WINDOW_MS)).toBe(true);
    expect(reads).toBe(1);
  });

  test("11. threadCpuNs and processCpuNs read this thread's and this process's CPU time, which grow as the thread works", () => {
    const before = threadCpuNs();
    const processBefore = processCpuNs();
    expect(before).toEqual(expect.any(Number));
    let sum = 0;
    for (let i = 0; i < 20_000_000; i++) sum = (sum + i) | 0; // some CPU time: work, not a wait
    expect(sum).not.toBe(0.5);
    expect(threadCpuNs()!).toBeGreaterThan(before!);
    expect(processCpuNs()).toBeGreaterThan(processBefore);
  });

  const UNREADABLE =
    "hand-over auto: this thread's CPU time cannot be read (/proc/thread-self/schedstat): bulk traffic " +
    'goes to the crypto threads as with --hand-over bulk';
  // [n, mode, the thread's CPU time readable, the start-up line]
  const warnings: Array<[number, 'auto' | 'bulk', boolean, string | undefined]> = [
    [12, 'auto', false, UNREADABLE],
    [13, 'auto', true, undefined],
    [14, 'bulk', false, undefined],
  ];
  test.each(warnings)('%i. handOverWarning, %s, CPU time readable %s', (_n, mode, readable, line) => {
    expect(handOverWarning(mode, () => (readable ? 1 : undefined))).toBe(line);
  });
});
