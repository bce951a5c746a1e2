// src/lib/process-metrics.ts: the process metrics the broker and the node export, with the event loop
// measured at the scrape (no sampling timer, whose gauges would read its period as delay).
import { performance } from 'node:perf_hooks';

import { Registry } from 'prom-client';

import { collectProcessMetrics } from '../../src/lib/process-metrics.js';
import { sample } from '../helpers/metrics.js';

describe('process metrics', () => {
  test('1. prom-client’s process metrics and the event loop’s lag and busy time; no sampled-delay gauges', async () => {
    const registry = new Registry();
    collectProcessMetrics(registry, 'test_');
    const text = await registry.metrics();
    for (const series of [
      'test_process_cpu_seconds_total',
      'test_process_resident_memory_bytes',
      'test_nodejs_heap_size_used_bytes',
      'test_nodejs_eventloop_lag_seconds',
      'test_nodejs_eventloop_busy_seconds_total',
    ]) {
      expect([series, sample(text, series)]).toEqual([series, expect.any(Number)]);
    }
    expect(text).toContain('# TYPE test_nodejs_eventloop_busy_seconds_total counter');
    for (const statistic of ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99']) {
      expect(text).not.toContain(`test_nodejs_eventloop_lag_${statistic}_seconds`);
    }
  });

  test('2. busy seconds grow with work done on the event loop, and never go back', async () => {
    const registry = new Registry();
    collectProcessMetrics(registry, 'test_');
    const busy = async () => sample(await registry.metrics(), 'test_nodejs_eventloop_busy_seconds_total')!;
    const before = await busy();
    const until = performance.now() + 20;
    while (performance.now() < until); // a callback that keeps the loop busy
    const after = await busy();
    expect(after).toBeGreaterThan(before);
    expect(await busy()).toBeGreaterThanOrEqual(after);
  });

  test('3. two registries in one process (tests run two brokers side by side): each has its own, both read the process', async () => {
    const [first, second] = [new Registry(), new Registry()];
    collectProcessMetrics(first, 'one_');
    collectProcessMetrics(second, 'two_');
    const one = sample(await first.metrics(), 'one_nodejs_eventloop_busy_seconds_total')!;
    const two = sample(await second.metrics(), 'two_nodejs_eventloop_busy_seconds_total')!;
    expect([one > 0, two > 0]).toEqual([true, true]);
  });

  test('4. the lag is this scrape’s own: a scrape whose queued callback waits behind a busy callback reports that wait', async () => {
    const registry = new Registry();
    collectProcessMetrics(registry, 'test_');
    const scrape = registry.metrics(); // queues the lag's callback
    const busyMs = 20;
    const until = performance.now() + busyMs;
    while (performance.now() < until); // the callback it waits behind
    // The first scrape: a lag set after the scrape (prom-client's) read 0 here.
    expect(sample(await scrape, 'test_nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(busyMs / 1000);
  });
});
