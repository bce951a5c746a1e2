// ip(8) and nft(8), as the node runs them for its interface's addresses, link, routes and NAT table. A
// refusal is one line naming the command and the tool's own reason ("RTNETLINK answers: File exists"), not
// Node's "Command failed: ...".
import { execFile } from 'node:child_process';

/** Runs `command ARGS`, with `input` on its stdin when given; resolves with what it printed. */
export function runTool(command: string, args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, (error, stdout, stderr) => {
      if (error === null) return resolve(stdout);
      const reason = stderr.trim().split('\n')[0] || error.message.split('\n')[0];
      reject(new Error(`${command} ${args.join(' ')}: ${reason}`));
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Runs `ip ARGS`; resolves with what it printed. */
export const ip = (args: readonly string[]): Promise<string> => runTool('ip', args);
