// Option value parsers shared by commands; a bad value is a usage error (exit 2) via commander.
import { InvalidArgumentError } from 'commander';

export function seconds(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new InvalidArgumentError('a whole number of seconds ≥ 1');
  return Number(value);
}
