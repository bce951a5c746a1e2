// V8 says once per thread (`--trace-protector-invalidation`) when it gives up its promise that no ArrayBuffer
// was ever detached there, which costs that thread's typed-array code its speed (docs/ARCHITECTURE.md). This
// runs a script in a process of its own and counts the threads that did.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const INVALIDATED = 'Invalidating protector cell ArrayBufferDetaching';

/**
 * Runs `script` (an ES module; from a file, as a worker would inherit an -e script's flags) with `args` after
 * its own path: how many of the process's threads detached a buffer, and what else it printed, by line.
 */
export async function threadsThatDetached(
  script: string,
  args: readonly string[],
): Promise<{ threads: number; printed: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'tb-detaches-'));
  const file = join(dir, 'script.mjs');
  writeFileSync(file, script);
  const run = promisify(execFile)(process.execPath, ['--trace-protector-invalidation', file, ...args], {
    timeout: 60_000,
  });
  const { stdout } = await run.finally(() => rmSync(dir, { recursive: true, force: true }));
  const lines = stdout.split('\n').filter((line) => line !== '');
  return {
    threads: lines.filter((line) => line === INVALIDATED).length,
    printed: lines.filter((line) => line !== INVALIDATED),
  };
}
