// docs/ARCHITECTURE.md: imports run one way. crypto/ imports nothing of ours; nodes/ and src/ may import
// crypto/; nothing imports nodes/ (except nodes/ itself and its tests).
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

function relativeImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specifiers = [...text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)];
  return specifiers.map((m) => relative(root, resolve(dirname(file), m[1]!)));
}

const topOf = (path: string) => path.split('/')[0];

describe('import direction', () => {
  test('crypto/ imports only crypto/', () => {
    for (const file of sourceFiles(join(root, 'crypto'))) {
      for (const target of relativeImports(file)) expect([file, topOf(target)]).toEqual([file, 'crypto']);
    }
  });

  test('src/ never imports nodes/', () => {
    for (const file of sourceFiles(join(root, 'src'))) {
      for (const target of relativeImports(file)) expect([file, topOf(target)]).not.toEqual([file, 'nodes']);
    }
  });

  test('crypto/ and src/ hold at least one module each', () => {
    expect(sourceFiles(join(root, 'crypto')).length).toBeGreaterThan(0);
    expect(sourceFiles(join(root, 'src')).length).toBeGreaterThan(0);
  });
});
