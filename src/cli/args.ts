// Option value parsers shared by commands; a bad value is a usage error (exit 2) via commander.
import { InvalidArgumentError } from 'commander';
import { SESSION_TTL_SECONDS } from '../lib/api.js';

export function seconds(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new InvalidArgumentError('a whole number of seconds ≥ 1');
  return Number(value);
}

/** `connect --ttl`: refused here rather than by the broker, whose answer would be a schema's words. */
export function ttl(value: string): number {
  const { min, max } = SESSION_TTL_SECONDS;
  const parsed = /^\d{1,8}$/.test(value) ? Number(value) : 0;
  if (parsed < min || parsed > max) {
    throw new InvalidArgumentError(`whole seconds from ${min} (a minute) to ${max} (30 days)`);
  }
  return parsed;
}

// What the CLI itself waits (--timeout, TB_TIMEOUT, --interval): a day at most, far inside the timers'
// limit (about 24.8 days), beyond which Node would fire at once or throw.
const MAX_WAIT_SECONDS = 86_400;
export const WAIT_SECONDS_RANGE = `whole seconds from 1 to ${MAX_WAIT_SECONDS}`;

/** Whole seconds from 1 to MAX_WAIT_SECONDS, or undefined. */
export function waitSeconds(value: string): number | undefined {
  const parsed = /^\d{1,6}$/.test(value) ? Number(value) : 0;
  return parsed >= 1 && parsed <= MAX_WAIT_SECONDS ? parsed : undefined;
}

/** The commander parser for a wait: a bad value is a usage error. */
export function wait(value: string): number {
  const parsed = waitSeconds(value);
  if (parsed === undefined) throw new InvalidArgumentError(WAIT_SECONDS_RANGE);
  return parsed;
}
