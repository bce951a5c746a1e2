// The build check that tests running dist/ rely on: a missing or older output is named, a current
// build passes, and the real tree is current when the suite runs (scripts/test builds first).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { builtProgram, REPO_ROOT, staleBuildOutputs } from './repo.js';

function tree(files: Record<string, number>): string {
  const root = mkdtempSync(join(tmpdir(), 'tb-build-'));
  for (const [path, mtimeSeconds] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), '');
    utimesSync(join(root, path), mtimeSeconds, mtimeSeconds);
  }
  return root;
}

test.each([
  ['1. every output newer than its source', { 'src/a.ts': 100, 'dist/src/a.js': 200 }, []],
  [
    '2. a source edited after the build',
    { 'src/a.ts': 300, 'dist/src/a.js': 200 },
    ['dist/src/a.js (src/a.ts)'],
  ],
  ['3. a source never built', { 'nodes/b.ts': 100 }, ['dist/nodes/b.js (nodes/b.ts)']],
  ['4. tests are not programs', { 'test/c.test.ts': 300 }, []],
  [
    '5. an addon older than its C source',
    { 'nodes/tun/binding.gyp': 100, 'nodes/tun/tun.c': 300, 'nodes/tun/build/Release/tun.node': 200 },
    ['nodes/tun/build/Release/*.node (nodes/tun)'],
  ],
  [
    '6. an addon never built',
    { 'nodes/tun/binding.gyp': 100, 'nodes/tun/tun.c': 100 },
    ['nodes/tun/build/Release/*.node (nodes/tun)'],
  ],
])('%s', (_name, files, stale) => {
  expect(staleBuildOutputs(tree(files))).toEqual(stale);
});

test('7. the tree under test is built: builtProgram answers a path in dist/', () => {
  expect(staleBuildOutputs()).toEqual([]);
  expect(builtProgram('nodes/main.js')).toBe(join(REPO_ROOT, 'dist', 'nodes', 'main.js'));
});

test('8. every test that runs a compiled program finds it through builtProgram, so the check applies', () => {
  const tests = execFileSync('git', ['ls-files', 'test'], { cwd: REPO_ROOT, encoding: 'utf8' })
    .split('\n')
    // This check and its helper name dist/ paths as data.
    .filter((file) => file.endsWith('.ts') && !file.startsWith('test/helpers/repo'));
  expect(tests.length).toBeGreaterThan(50);
  const bypassing = tests.filter((file) => /['"`]dist\//.test(readFileSync(join(REPO_ROOT, file), 'utf8')));
  expect(bypassing).toEqual([]);
});
