// The process's own metrics in the broker's and the node's /metrics: prom-client's defaults (CPU, memory,
// descriptors, heap, GC, handles), with the event loop measured without a timer of its own.
//
// prom-client measures event-loop delay with perf_hooks' monitor, a repeating timer (every 10 ms unless told
// otherwise): it woke an idle node 100 times a second, where wireguard-go sleeps until a packet comes. Its
// gauges report each sample as the whole time between two timer callbacks, the timer's period included, so
// a coarser period would have reported that period as delay (10 ms read as 0.010 s on an idle loop already).
// Left out instead, and in their place two measures that cost nothing between scrapes:
// - `<prefix>nodejs_eventloop_lag_seconds`: how late a callback queued at the scrape runs, awaited by the
//   scrape (prom-client's own sets it in that callback, after the scrape: each scrape reported the one
//   before's, 0 the first time);
// - `<prefix>nodejs_eventloop_busy_seconds_total`: the time the event loop spent running callbacks rather
//   than waiting for events (libuv counts it, read at the scrape); its rate() is the main thread's
//   utilization, 0 to 1, the sign of a saturated node.
import { performance } from 'node:perf_hooks';

import { Counter, Gauge, collectDefaultMetrics, type Registry } from 'prom-client';

// prom-client always starts its monitor; with a period longer than any process runs (24.8 days) it never
// samples, and the gauges it would have fed are removed from the registry, with its lag gauge (replaced).
const NEVER_SAMPLE_MS = 2 ** 31 - 1;
const LAG_GAUGE = 'nodejs_eventloop_lag_seconds';
const REMOVED_GAUGES = [
  LAG_GAUGE,
  ...['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'].map(
    (statistic) => `nodejs_eventloop_lag_${statistic}_seconds`,
  ),
];

/** Registers the process metrics on `registry`, each name starting with `prefix`. */
export function collectProcessMetrics(registry: Registry, prefix: string): void {
  collectDefaultMetrics({ register: registry, prefix, eventLoopMonitoringPrecision: NEVER_SAMPLE_MS });
  for (const name of REMOVED_GAUGES) registry.removeSingleMetric(prefix + name);
  new Gauge({
    name: prefix + LAG_GAUGE,
    help: 'How late a callback queued at this scrape ran, in seconds (the event loop work queued before it).',
    registers: [registry],
    async collect() {
      const queued = process.hrtime.bigint();
      await new Promise((resolve) => setImmediate(resolve));
      this.set(Number(process.hrtime.bigint() - queued) / 1e9);
    },
  });
  let exportedMs = 0;
  new Counter({
    name: `${prefix}nodejs_eventloop_busy_seconds_total`,
    help:
      'Time the event loop spent running callbacks, not waiting for events, since the process started; ' +
      "rate() is the main thread's utilization (0 to 1).",
    registers: [registry],
    collect() {
      const busyMs = performance.eventLoopUtilization().active;
      if (busyMs <= exportedMs) return;
      this.inc((busyMs - exportedMs) / 1000);
      exportedMs = busyMs;
    },
  });
}
