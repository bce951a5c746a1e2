// Loads one of the Node-API addons node-gyp builds from binding.gyp into nodes/tun/build/Release.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

// This module runs from nodes/tun (ts-jest) or dist/nodes/tun (tsc); the build stays in nodes/tun/build.
const BUILD_DIRECTORIES = ['./build/Release/', '../../../nodes/tun/build/Release/'];

const loaded = new Map<string, unknown>();

/** The addon `name` (a binding.gyp target); throws a one-line error when it was not built. */
export function loadAddon<T>(name: 'tun' | 'udp'): T {
  const cached = loaded.get(name);
  if (cached) return cached as T;
  const path = BUILD_DIRECTORIES.map((directory) =>
    fileURLToPath(new URL(`${directory}${name}.node`, import.meta.url)),
  ).find((candidate) => existsSync(candidate));
  if (!path) throw new Error(`${name} addon not built: run \`npm run build\` (node-gyp builds nodes/tun)`);
  const addon = createRequire(import.meta.url)(path) as T;
  loaded.set(name, addon);
  return addon;
}
