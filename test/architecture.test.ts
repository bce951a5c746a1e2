// docs/ARCHITECTURE.md: imports run one way. crypto/ imports nothing of ours; nodes/ and src/ may import
// crypto/; src/lib/ is what the broker, the node and the CLI share, and imports none of them; the broker
// and the CLI never import each other; nodes/ takes from src/ only src/lib/; nothing imports nodes/
// (except nodes/ itself and its tests); a route never touches the store. Each rule is also run on a small
// in-memory import graph that breaks it, so a rule that could never fail does not pass unnoticed.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Source text by path relative to the repository root. */
type Sources = Map<string, string>;

interface Import {
  /** Repository-relative path of the imported module (.ts), or the package name for a bare import. */
  target: string;
  /** One of ours (a relative specifier), not a package or builtin. */
  local: boolean;
  /** `import type` / `export type`: gone at run time. */
  typeOnly: boolean;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'node_modules' ? [] : sourceFiles(path);
    return path.endsWith('.ts') && !path.endsWith('.d.ts') ? [path] : [];
  });
}

function readSources(...dirs: string[]): Sources {
  const files = dirs.flatMap((dir) => sourceFiles(join(root, dir)));
  return new Map(files.map((file) => [relative(root, file), readFileSync(file, 'utf8')]));
}

const IMPORT =
  /(?:^|[\n;])\s*(import|export)\s+(type\s+)?(?:[\w*\s{},]*?\s+from\s+)?['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g;

/** The static and dynamic imports of one file. */
function importsOf(file: string, text: string): Import[] {
  return [...text.matchAll(IMPORT)].map((m) => {
    const specifier = (m[3] ?? m[4])!;
    const target = specifier.startsWith('.')
      ? join(dirname(file), specifier).replace(/\.js$/, '.ts')
      : specifier.replace(/^node:/, '');
    return { target, local: specifier.startsWith('.'), typeOnly: m[2] !== undefined };
  });
}

const under = (dir: string) => (path: string) => path.startsWith(`${dir}/`);
const any =
  (...tests: ((path: string) => boolean)[]) =>
  (path: string) =>
    tests.some((t) => t(path));

interface Rule {
  name: string;
  from: (path: string) => boolean;
  /** A forbidden module of ours, for an importer matched by `from`. */
  forbids: (target: string) => boolean;
}

const RULES: Rule[] = [
  {
    name: 'crypto/ imports only crypto/ of ours',
    from: under('crypto'),
    forbids: (target) => !under('crypto')(target),
  },
  { name: 'src/ never imports nodes/', from: under('src'), forbids: under('nodes') },
  {
    name: 'nodes/ never imports src/broker or src/cli',
    from: under('nodes'),
    forbids: any(under('src/broker'), under('src/cli')),
  },
  { name: 'src/cli never imports src/broker', from: under('src/cli'), forbids: under('src/broker') },
  { name: 'src/broker never imports src/cli', from: under('src/broker'), forbids: under('src/cli') },
  {
    name: 'src/lib imports none of the broker, the CLI or the node',
    from: under('src/lib'),
    forbids: any(under('src/broker'), under('src/cli'), under('nodes')),
  },
  {
    name: 'src/broker/routes never imports src/broker/store',
    from: under('src/broker/routes'),
    forbids: under('src/broker/store'),
  },
];

/** Every [importer, target] pair of `sources` that `rule` forbids. */
function violations(sources: Sources, rule: Rule): [string, string][] {
  const found: [string, string][] = [];
  for (const [file, text] of sources) {
    if (!rule.from(file)) continue;
    for (const { target, local } of importsOf(file, text)) {
      if (local && rule.forbids(target)) found.push([file, target]);
    }
  }
  return found;
}

/** Import cycles among `sources` (type-only imports count: a circle of types is still a circle). */
function cycles(sources: Sources): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string) => {
    state.set(file, 'open');
    stack.push(file);
    for (const { target } of importsOf(file, sources.get(file)!)) {
      if (!sources.has(target)) continue;
      if (state.get(target) === 'open') found.push([...stack.slice(stack.indexOf(target)), target]);
      else if (!state.has(target)) visit(target);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of [...sources.keys()].sort()) if (!state.has(file)) visit(file);
  return found;
}

/** What loading `entry` loads: its run-time imports (not type-only), followed through `sources`. */
function loadedBy(sources: Sources, entry: string): Set<string> {
  const seen = new Set<string>();
  const walk = (file: string) => {
    for (const { target, typeOnly } of importsOf(file, sources.get(file) ?? '')) {
      if (typeOnly || seen.has(target)) continue;
      seen.add(target);
      if (sources.has(target)) walk(target);
    }
  };
  walk(entry);
  return seen;
}

/** Mentions of the Redis client in `sources` matched by `from`. */
function redisUses(sources: Sources, from: (path: string) => boolean): string[] {
  return [...sources]
    .filter(([file, text]) => from(file) && /\.redis\b|\bioredis\b/.test(text))
    .map(([f]) => f);
}

/** Lua scripts defined outside services/lua.ts, where each has its one typed wrapper. */
function strayScripts(sources: Sources): string[] {
  return [...sources]
    .filter(([file, text]) => file !== 'src/broker/services/lua.ts' && /\bnew LuaScript\(/.test(text))
    .map(([f]) => f);
}

const tree = readSources('crypto', 'nodes', 'src');

describe('import direction', () => {
  test('the tree holds modules in crypto/, nodes/, src/lib, src/broker/routes and src/cli', () => {
    for (const dir of ['crypto', 'nodes', 'src/lib', 'src/broker/routes', 'src/cli']) {
      expect([dir, [...tree.keys()].some(under(dir))]).toEqual([dir, true]);
    }
  });

  test.each(RULES.map((rule) => [rule.name, rule] as const))('%s', (_name, rule) => {
    expect(violations(tree, rule)).toEqual([]);
  });

  test('no import cycles in crypto/, nodes/ or src/', () => {
    expect(cycles(tree)).toEqual([]);
  });

  test('no route touches Redis: routes call services', () => {
    expect(redisUses(tree, under('src/broker/routes'))).toEqual([]);
  });

  test('every Lua script is defined in src/broker/services/lua.ts, beside its typed wrapper', () => {
    expect(strayScripts(tree)).toEqual([]);
  });

  test('the broker admin commands load neither Express nor any route', () => {
    const loaded = [...loadedBy(tree, 'src/broker/admin.ts')];
    expect(
      loaded.filter((m) => m === 'express' || m === 'src/broker/app.ts' || under('src/broker/routes')(m)),
    ).toEqual([]);
    // ...while they do reach the state layer they act on.
    expect(loaded).toContain('src/broker/context.ts');
  });
});

// Each rule, fed a graph that breaks it once, reports exactly that import.
describe('the rules catch a deliberate violation', () => {
  const example = (files: Record<string, string>): Sources => new Map(Object.entries(files));

  test.each([
    [1, 'crypto/ importing src/', 'crypto/x.ts', "import { y } from '../src/lib/y.js';", 'src/lib/y.ts'],
    [
      2,
      'src/ importing nodes/',
      'src/lib/x.ts',
      // Spelled in parts: from test/ this path would leave the repository (test/self-contained.test.ts).
      `import { d } from '${'../'.repeat(2)}nodes/device.js';`,
      'nodes/device.ts',
    ],
    [
      3,
      'nodes/ importing the broker',
      'nodes/x.ts',
      "import { k } from '../src/broker/store/keys.js';",
      'src/broker/store/keys.ts',
    ],
    [
      4,
      'the CLI importing the broker',
      'src/cli/x.ts',
      "import type { T } from '../broker/tokens.js';",
      'src/broker/tokens.ts',
    ],
    [
      5,
      'the broker importing the CLI',
      'src/broker/x.ts',
      "export { s } from '../cli/store.js';",
      'src/cli/store.ts',
    ],
    [
      6,
      'src/lib importing the CLI',
      'src/lib/x.ts',
      "const m = await import('../cli/io.js');",
      'src/cli/io.ts',
    ],
    [
      7,
      'a route importing the store',
      'src/broker/routes/x.ts',
      "import { keys } from '../store/keys.js';",
      'src/broker/store/keys.ts',
    ],
  ])('%i. %s', (n, _case, file, line, target) => {
    const rule = RULES[n - 1]!;
    const allowed = "import { z } from 'zod';\nimport { a } from './a.js';\n";
    expect(violations(example({ [file]: allowed + line }), rule)).toEqual([[file, target]]);
    expect(violations(example({ [file]: allowed }), rule)).toEqual([]);
  });

  test('8. a circle of two modules, through a type-only import', () => {
    const graph = example({
      'src/cli/program.ts': "import { a } from './commands/a.js';",
      'src/cli/commands/a.ts': "import type { Action } from '../program.js';",
      'src/cli/context.ts': "import { x } from './exit.js';",
      'src/cli/exit.ts': '',
    });
    expect(cycles(graph)).toEqual([['src/cli/commands/a.ts', 'src/cli/program.ts', 'src/cli/commands/a.ts']]);
    graph.set('src/cli/commands/a.ts', "import type { Action } from '../context.js';");
    expect(cycles(graph)).toEqual([]);
  });

  test('9. a route that reads Redis itself', () => {
    const graph = example({
      'src/broker/routes/x.ts': 'const n = await ctx.redis.hget(k, f);',
      'src/broker/services/x.ts': 'const n = await ctx.redis.hget(k, f);',
    });
    expect(redisUses(graph, under('src/broker/routes'))).toEqual(['src/broker/routes/x.ts']);
  });

  test('10. an admin module that loads the app (type-only imports do not load anything)', () => {
    const graph = example({
      'src/broker/admin.ts': "import type { BrokerApp } from './app.js';\nimport { c } from './context.js';",
      'src/broker/context.ts': "import { m } from './metrics.js';",
      'src/broker/metrics.ts': "import { createApp } from './app.js';",
      'src/broker/app.ts': "import express from 'express';",
    });
    expect([...loadedBy(graph, 'src/broker/admin.ts')]).toEqual([
      'src/broker/context.ts',
      'src/broker/metrics.ts',
      'src/broker/app.ts',
      'express',
    ]);
  });

  test('11. a Lua script written where it is run', () => {
    const graph = example({
      'src/broker/services/lua.ts': "const A = new LuaScript('a', 'return 1');",
      'src/broker/services/x.ts': "const B = new LuaScript('b', 'return 2');",
    });
    expect(strayScripts(graph)).toEqual(['src/broker/services/x.ts']);
  });
});
