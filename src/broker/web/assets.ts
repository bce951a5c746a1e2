// The pages' static files, read once at start-up. They live next to this module's source; the
// compiled module (dist/src/broker/web) finds them under the package root, which it walks up to.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('tunnelbyte: package.json not found above the broker');
    dir = parent;
  }
  return dir;
}

export const stylesheet = (): string =>
  readFileSync(join(packageRoot(), 'src', 'broker', 'web', 'tunnelbyte.css'), 'utf8');
