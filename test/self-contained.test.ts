// The repository stands on its own: no tracked file reads or cites a relative path that leaves it
// (a clone in an empty folder has nothing beside it), and every section of docs/ that a file cites
// by number or by name exists.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { REPO_ROOT } from './helpers/repo.js';

/** `./x`, `../x` and a quoted `..`, where a path may start: after a quote, a space, `(`, `=`, `:` or `[`. */
const RELATIVE_PATH = /(?<=^|[\s'"`(=:[])(\.{1,2}\/[^\s'"`()[\]<>,;|*{}]*|\.\.(?=['"`]))/gm;
/** A shell script's own folder, which is where its relative paths start. */
const SCRIPT_DIR = /\$\(dirname "\$(?:0|\{BASH_SOURCE\[0\]\})"\)/g;

/**
 * The relative paths in `text` that resolve outside the root from `file`'s folder. The programs run
 * compiled in dist/ (tsconfig's outDir), so their paths may be meant from there instead; tests run
 * from their source (ts-jest).
 */
function escapingPaths(file: string, text: string): string[] {
  const folder = posix.dirname(file);
  const compiled = file.endsWith('.ts') && !file.startsWith('test/');
  const folders = compiled ? [folder, posix.join('dist', folder)] : [folder];
  const outside = (path: string) => path === '..' || path.startsWith('../');
  return [...text.replace(SCRIPT_DIR, '.').matchAll(RELATIVE_PATH)]
    .map((m) => m[1]!)
    .filter((path) => folders.every((from) => outside(posix.normalize(posix.join(from, path)))));
}

function trackedTextFiles(): { file: string; text: string }[] {
  const files = execFileSync('git', ['ls-files', '-z'], { cwd: REPO_ROOT, encoding: 'utf8' })
    .split('\0')
    .filter((file) => file && existsSync(join(REPO_ROOT, file)));
  return files
    .map((file) => ({ file, text: readFileSync(join(REPO_ROOT, file), 'utf8') }))
    .filter(({ text }) => !text.includes('\0'));
}

describe('no path leaves the repository', () => {
  test.each([
    ['README.md', 'The contract is `' + ['..', 'shared', 'API.md'].join('/') + '`.', 1],
    ['test/helpers/vectors.ts', "new URL('" + '../'.repeat(3) + "elsewhere/', import.meta.url)", 1],
    ['scripts/test', 'cd "$(dirname "$0")/' + ['..', '..'].join('/') + '"', 1],
    ['eslint.config.js', "resolve(here, '..')", 1],
    ['nodes/run.ts', "new URL('" + '../'.repeat(3) + "package.json', import.meta.url)", 1],
    ['docs/API.md', '[up](' + '../'.repeat(2) + 'x.md)', 1],
    ['test/helpers/vectors.ts', "new URL('../crypto/vectors/', import.meta.url)", 0],
    ['scripts/test', 'cd "$(dirname "$0")/.."', 0],
    ['src/cli/README.md', 'through [the client](../lib/api-client.ts) and `./x`', 0],
    ['nodes/run.ts', "new URL('" + '../'.repeat(2) + "package.json', import.meta.url) // from dist/nodes", 0],
    ['crypto/aead.ts', 'a range 1..W, an ellipsis ... and ./', 0],
  ])('%#. in %s: %s → %i escaping', (file, text, count) => {
    expect(escapingPaths(file, text)).toHaveLength(count);
  });

  test('no tracked file reads or cites a relative path outside the repository', () => {
    const files = trackedTextFiles();
    expect(files.length).toBeGreaterThan(100);
    const found = files.flatMap(({ file, text }) =>
      escapingPaths(file, text).map((path) => `${file}: ${path}`),
    );
    expect(found).toEqual([]);
  });
});

describe('citations of docs/', () => {
  const DOCS = ['API.md', 'ARCHITECTURE.md', 'WIREGUARD.md'];
  const doc = (name: string) => readFileSync(join(REPO_ROOT, 'docs', name), 'utf8');

  /** `## 7. x` or `### 7.5 x` exists, or `§0.3` names item 3 of the numbered list in section 0. */
  function hasNumberedSection(markdown: string, number: string): boolean {
    if (new RegExp(`^#{2,3} ${number.replace('.', '\\.')}[. ]`, 'm').test(markdown)) return true;
    const [major, item] = number.split('.');
    const part = markdown.split(/\n(?=## )/).find((p) => p.startsWith(`## ${major}. `));
    return item !== undefined && part !== undefined && new RegExp(`^${item}\\. `, 'm').test(part);
  }

  const citations = trackedTextFiles().flatMap(({ file, text }) =>
    [...text.matchAll(/docs\/([A-Z]+\.md)((?:(?:,| and|-)? ?§\d+(?:\.\d+)?)*)((?: "[^"\n]+",?)*)/g)].map(
      (m) => ({ file, doc: m[1]!, numbers: m[2]!, names: m[3]! }),
    ),
  );

  test('outside docs/, a document is cited by its path (docs/API.md), never by a bare name', () => {
    const bare = trackedTextFiles()
      .filter(({ file }) => !file.startsWith('docs/') && !file.endsWith('.json'))
      .flatMap(({ file, text }) =>
        [...text.matchAll(/(?<![\w/'])(?:API|ARCHITECTURE|WIREGUARD)\.md/g)].map((m) => `${file}: ${m[0]}`),
      );
    expect(bare).toEqual([]);
  });

  test('every cited document exists', () => {
    expect(citations.length).toBeGreaterThan(20);
    for (const { file, doc: name } of citations)
      expect([file, name, DOCS.includes(name)]).toEqual([file, name, true]);
  });

  test('every section cited by number (§7.5) exists with that number', () => {
    const numbered = citations.filter((c) => c.numbers);
    expect(numbered.length).toBeGreaterThan(10);
    for (const { file, doc: name, numbers } of numbered) {
      for (const [, number] of numbers.matchAll(/§(\d+(?:\.\d+)?)/g)) {
        expect([file, name, number, hasNumberedSection(doc(name), number!)]).toEqual([
          file,
          name,
          number,
          true,
        ]);
      }
    }
  });

  test('every section cited by name ("Exit nodes") exists as a heading', () => {
    const named = citations.filter((c) => c.names);
    expect(named.length).toBeGreaterThan(10);
    for (const { file, doc: name, names } of named) {
      for (const [, heading] of names.matchAll(/"([^"]+)"/g)) {
        const exists = doc(name).includes(`\n## ${heading}\n`);
        expect([file, name, heading, exists]).toEqual([file, name, heading, true]);
      }
    }
  });

  test('a citation of a missing section is caught', () => {
    expect(hasNumberedSection(doc('WIREGUARD.md'), '7.5')).toBe(true);
    expect(hasNumberedSection(doc('WIREGUARD.md'), '0.3')).toBe(true);
    expect(hasNumberedSection(doc('WIREGUARD.md'), '7.9')).toBe(false);
    expect(hasNumberedSection(doc('WIREGUARD.md'), '0.9')).toBe(false);
  });
});

describe('every script installs what it needs', () => {
  test('each command in scripts/ sources scripts/lib.sh and calls tb_install_missing or tb_install_npm', () => {
    const commands = trackedTextFiles().filter(
      ({ file, text }) => file.startsWith('scripts/') && text.startsWith('#!/usr/bin/env bash'),
    );
    expect(commands.map((c) => c.file)).toEqual(
      expect.arrayContaining(['scripts/test', 'scripts/bench-tunnel']),
    );
    for (const { file, text } of commands) {
      const installs =
        /^source scripts\/lib\.sh$/m.test(text) && /^\s*tb_install_(missing|npm)\b/m.test(text);
      expect([file, installs]).toEqual([file, true]);
    }
  });
});

describe('tb_build (scripts/lib.sh): quiet when the build works, its output when it fails', () => {
  // A project whose build prints as tsc does, then exits with `code`.
  const build = (code: number) => {
    const dir = mkdtempSync(join(tmpdir(), 'tb-build-'));
    const script = `echo 'compiling'; echo 'src/x.ts(1,7): error TS2322: not assignable' >&2; exit ${code}`;
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'b', scripts: { build: script } }));
    return spawnSync('bash', ['-c', `source ${join(REPO_ROOT, 'scripts/lib.sh')} && tb_build`], {
      cwd: dir,
      encoding: 'utf8',
    });
  };
  const rows: [string, number, string][] = [
    ['1. works: nothing said', 0, ''],
    [
      '2. fails: what it printed, after one line saying so; its exit code',
      2,
      'the build failed (npm run build, exit 2):\ncompiling\nsrc/x.ts(1,7): error TS2322: not assignable\n',
    ],
  ];
  test.each(rows)('%s', (_, code, stderr) => {
    const run = build(code);
    expect([run.status, run.stdout, run.stderr]).toEqual([code, '', stderr]);
  });
});

describe("the README's layout table", () => {
  const rows = () => {
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    const table = readme.slice(
      readme.indexOf('\n## Layout\n'),
      readme.indexOf('\n## ', readme.indexOf('\n## Layout\n') + 1),
    );
    return [...table.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!);
  };
  const folders = () => {
    const files = execFileSync('git', ['ls-files'], { cwd: REPO_ROOT, encoding: 'utf8' }).split('\n');
    // Top-level folders, and src/'s programs, each get a row; dot-folders (.ci) are tooling.
    const folder = (f: string) => (f.startsWith('src/') ? /^src\/[^/]+\//.exec(f) : /^[^./][^/]*\//.exec(f));
    return [...new Set(files.flatMap((f) => folder(f)?.[0] ?? []))];
  };

  test('names every top-level folder and every program under src/', () => {
    expect(folders().length).toBeGreaterThan(5);
    expect(rows().sort()).toEqual(expect.arrayContaining(folders().sort()));
  });

  test('names only paths that exist', () => {
    for (const path of rows()) expect([path, existsSync(join(REPO_ROOT, path))]).toEqual([path, true]);
  });
});
