// ip(8), as the node runs it for its interface's addresses, link and routes. A refusal is one line naming
// the command and ip's own reason ("RTNETLINK answers: File exists"), not Node's "Command failed: ...".
import { execFile } from 'node:child_process';

/** Runs `ip ARGS`; resolves with what it printed. */
export function ip(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, (error, stdout, stderr) => {
      if (error === null) return resolve(stdout);
      const reason = stderr.trim().split('\n')[0] || error.message.split('\n')[0];
      reject(new Error(`ip ${args.join(' ')}: ${reason}`));
    });
  });
}
