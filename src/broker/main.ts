#!/usr/bin/env node
// tunnelbyte-broker: `serve` (the default) runs the API; `admin ...` acts on Redis directly.
import { createServer } from 'node:http';
import { Command } from 'commander';
import { pino } from 'pino';
import { adminCommand } from './admin.js';
import { createApp } from './app.js';
import { loadConfig } from './config.js';
import { createMetricsServer } from './metrics.js';
import { createRedis, waitForReady } from './store/redis.js';

/** How long in-flight requests get to finish after SIGTERM before the process exits anyway. */
const DRAIN_TIMEOUT_MS = 10_000;

async function serve(): Promise<void> {
  const config = loadConfig();
  const logger = pino({ level: config.logLevel, base: { service: 'tunnelbyte-broker' } });
  const redis = createRedis(config.redisUrl);
  redis.on('error', (err: Error) => logger.warn({ err: err.message }, 'redis connection error'));
  const app = createApp({ config, redis, logger });
  const server = createServer(app);
  server.listen(config.port, config.host, () =>
    logger.info({ host: config.host, port: config.port }, 'listening'),
  );
  const metricsPort = config.metrics.port;
  const metricsServer =
    metricsPort === undefined ? undefined : createMetricsServer(app.locals.broker.metrics);
  metricsServer?.listen(metricsPort, config.metrics.host, () =>
    logger.info({ host: config.metrics.host, port: metricsPort }, 'metrics listening'),
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    app.locals.close();
    const forced = setTimeout(() => process.exit(1), DRAIN_TIMEOUT_MS);
    forced.unref();
    metricsServer?.close();
    server.close(() => {
      void redis.quit().finally(() => process.exit(0));
    });
    server.closeIdleConnections();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Requests fail fast with 503 until Redis is up; this only reports when it is.
  void waitForReady(redis).then(() => logger.info('redis ready'));
}

export function buildProgram(): Command {
  const program = new Command('tunnelbyte-broker').description('tunnelbyte API broker');
  program
    .command('serve', { isDefault: true })
    .description('run the HTTP API (env: REDIS_URL, PORT, HOST, METRICS_PORT, TRUSTED_PROXIES, STRIPE_*)')
    .action(serve);
  program.addCommand(adminCommand());
  return program;
}

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  // Operator mistakes (unknown region, bad scope, Redis down) print one line, not a stack.
  process.stderr.write(`tunnelbyte-broker: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
