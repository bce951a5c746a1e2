// The repository's root, its documents (for tests that check code against docs/), and its built
// programs (for tests that run them).
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

// Two levels up from test/helpers under jest; three from dist/test/helpers, where the benchmarks run it.
const twoUp = fileURLToPath(new URL('../..', import.meta.url));
export const REPO_ROOT = existsSync(join(twoUp, 'package.json')) ? twoUp : dirname(twoUp) + sep;

/** A file under docs/, e.g. readDoc('API.md'). */
export const readDoc = (name: string): string => readFileSync(join(REPO_ROOT, 'docs', name), 'utf8');

/** The text of one `## heading` section of a markdown document, up to the next `## `. */
export function section(markdown: string, heading: string): string {
  const start = markdown.indexOf(`\n## ${heading}\n`);
  if (start < 0) throw new Error(`no section "## ${heading}"`);
  const end = markdown.indexOf('\n## ', start + 1);
  return markdown.slice(start, end < 0 ? undefined : end);
}

/** The folders tsc compiles into dist/ that tests run as programs (tsconfig's include, minus test/). */
const PROGRAM_SOURCES = ['crypto', 'nodes', 'src', 'scripts'];

const newest = (paths: string[]) => Math.max(...paths.map((p) => statSync(p).mtimeMs));
const filesUnder = (dir: string): string[] =>
  existsSync(dir) ? readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((f) => join(dir, f)) : [];

/**
 * What in dist/ (and the node-gyp addons) is missing or older than the source it is built from,
 * as "output (source)" lines; empty when the build is current.
 */
export function staleBuildOutputs(root = REPO_ROOT): string[] {
  const stale: string[] = [];
  for (const top of PROGRAM_SOURCES) {
    for (const source of filesUnder(join(root, top))) {
      if (!source.endsWith('.ts') || source.endsWith('.d.ts') || source.includes(`${sep}build${sep}`))
        continue;
      const output = join(root, 'dist', relative(root, source)).replace(/\.ts$/, '.js');
      if (!existsSync(output) || statSync(output).mtimeMs < statSync(source).mtimeMs) {
        stale.push(`${relative(root, output)} (${relative(root, source)})`);
      }
    }
  }
  for (const gyp of filesUnder(join(root, 'nodes')).filter((f) => f.endsWith(`${sep}binding.gyp`))) {
    const dir = dirname(gyp);
    const sources = readdirSync(dir)
      .filter((f) => /\.(c|h|gyp)$/.test(f))
      .map((f) => join(dir, f));
    const addons = filesUnder(join(dir, 'build', 'Release')).filter((f) => f.endsWith('.node'));
    if (addons.length === 0 || Math.min(...addons.map((a) => statSync(a).mtimeMs)) < newest(sources)) {
      stale.push(`${relative(root, join(dir, 'build', 'Release'))}/*.node (${relative(root, dir)})`);
    }
  }
  return stale;
}

let buildChecked = false;

/**
 * The compiled program at dist/`path` (e.g. 'nodes/main.js'), for tests that run it as a subprocess.
 * Throws when dist/ is older than the sources, so a jest run without `npm run build` fails loudly
 * instead of testing old code (bash scripts/test builds first).
 */
export function builtProgram(path: string): string {
  if (!buildChecked) {
    const stale = staleBuildOutputs();
    if (stale.length > 0) {
      const more = stale.length > 1 ? ` and ${stale.length - 1} more` : '';
      throw new Error(`dist/ is out of date: ${stale[0]}${more}. Run \`npm run build\` before jest.`);
    }
    buildChecked = true;
  }
  return join(REPO_ROOT, 'dist', path);
}
