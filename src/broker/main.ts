#!/usr/bin/env node
// tunnelbyte-broker: `serve` (the default) runs the API; `admin ...` acts on Redis directly.
import { createServer, type Server } from 'node:http';
import { Command, CommanderError } from 'commander';
import { pino } from 'pino';
import { adminCommand } from './admin.js';
import { loadConfig } from './config.js';
import { createMetricsServer } from './metrics.js';
import { createRedis, waitForReady } from './store/redis.js';
import { oneLineUsageErrors, USAGE_EXIT_CODE } from '../lib/usage.js';

/** How long in-flight requests get to finish after SIGTERM before the process exits anyway. */
const DRAIN_TIMEOUT_MS = 10_000;

/** A listener that cannot bind ends the process with one line naming the cause and the setting. */
function failOnListenError(server: Server, host: string, port: number, settings: string): void {
  server.once('error', (err: NodeJS.ErrnoException) => {
    const why =
      err.code === 'EADDRINUSE'
        ? 'the address is in use by another process'
        : err.code === 'EACCES'
          ? 'permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)'
          : err.code === 'EADDRNOTAVAIL'
            ? 'no interface of this host has that address'
            : err.message;
    process.stderr.write(`tunnelbyte-broker: cannot listen on ${host}:${port}: ${why}; change ${settings}\n`);
    process.exit(1);
  });
}

async function serve(): Promise<void> {
  // Loaded here, not at the top: the admin commands need neither Express nor the routes.
  const { answerUnparsable, createApp } = await import('./app.js');
  const config = loadConfig();
  const logger = pino({ level: config.logLevel, base: { service: 'tunnelbyte-broker' } });
  const redis = createRedis(config.redisUrl);
  redis.on('error', (err: Error) => logger.warn({ err: err.message }, 'redis connection error'));
  const app = createApp({ config, redis, logger });
  const server = createServer(app);
  server.on('clientError', answerUnparsable);
  failOnListenError(server, config.host, config.port, 'PORT or HOST');
  server.listen(config.port, config.host, () =>
    logger.info({ host: config.host, port: config.port }, 'listening'),
  );
  const metricsPort = config.metrics.port;
  const metricsServer =
    metricsPort === undefined ? undefined : createMetricsServer(app.locals.broker.metrics);
  if (metricsServer && metricsPort !== undefined)
    failOnListenError(metricsServer, config.metrics.host, metricsPort, 'METRICS_PORT or METRICS_HOST');
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
    // The default command receives any word that is not a command: it is named as such, not as an
    // argument too many for serve.
    .allowExcessArguments()
    .action((_options: unknown, command: Command) => {
      const [word] = command.args;
      if (word === undefined) return serve();
      const commands = program.commands.map((c) => c.name()).join(', ');
      return program.error(`unknown command '${word}' (the commands: ${commands})`, {
        exitCode: USAGE_EXIT_CODE,
      });
    });
  program.addCommand(adminCommand());
  program.addHelpText(
    'after',
    '\nExit codes: 0 ok, 1 a failure said in one line (Redis unreachable, unknown id, busy port),\n' +
      '2 usage error (nothing was done).\n',
  );
  oneLineUsageErrors(program, 'tunnelbyte-broker');
  return program;
}

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  // Commander printed its one line already (or the help, which ends with code 0).
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : USAGE_EXIT_CODE);
  // Operator mistakes (unknown region, bad scope, Redis down) print one line, not a stack, and end the
  // process once it is written: a half-open connection to a Redis that never answered must not hold it.
  const line = `tunnelbyte-broker: ${err instanceof Error ? err.message : String(err)}\n`;
  process.stderr.write(line, () => process.exit(1));
}
