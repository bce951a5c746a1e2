// Usage errors of both programs (tunnelbyte, tunnelbyte-broker): commander's message as one line that
// names the program, keeps its nearest match and says where to look next; exit code 2, as for any
// command-line tool that was called wrongly.
import type { Command } from 'commander';

export const USAGE_EXIT_CODE = 2;

export function usageLine(programName: string, commanderMessage: string): string {
  const message = commanderMessage
    .trim()
    .replace(/^error: /, '')
    .replace(/\s*\(Did you mean (.+)\?\)$/, '; did you mean $1?');
  return `${programName}: ${message} (see --help)\n`;
}

/**
 * Makes `command` and every subcommand throw instead of exiting, and print usage errors through
 * usageLine. Applied after the tree is built because commander copies these settings only to
 * subcommands made with `.command()`, not to ones added with `.addCommand()`.
 */
export function oneLineUsageErrors(command: Command, programName: string): void {
  command.exitOverride().configureOutput({ outputError: (s, write) => write(usageLine(programName, s)) });
  for (const sub of command.commands) oneLineUsageErrors(sub, programName);
}
