// A worker thread always runs compiled JavaScript. Its module lies beside the calling module when that runs
// from dist/ (tsc), or under dist/ when the caller runs from source (ts-jest).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The first of `candidates` (relative to the calling module's URL `base`) that exists, or a clear error. */
export function builtWorker(base: string, candidates: readonly string[], what: string): string {
  const path = candidates.map((file) => fileURLToPath(new URL(file, base))).find((file) => existsSync(file));
  if (path === undefined) throw new Error(`${what} not built: run \`npm run build\``);
  return path;
}
