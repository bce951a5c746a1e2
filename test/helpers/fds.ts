// Leak checks on descriptors: the sockets this process opened since a snapshot and still holds. Only sockets,
// and only new ones: the test runner opens and closes files of its own (module loads, caches), and a previous
// test file's connections may close at any moment, which made plain counts of every descriptor flake.
import { readdirSync, readlinkSync } from 'node:fs';

/** The sockets open now, by their kernel names ('socket:[inode]'). */
export function openSockets(): Set<string> {
  const sockets = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith('socket:')) sockets.add(target);
    } catch {
      // closed while we looked (the directory's own descriptor, or the runner's)
    }
  }
  return sockets;
}

/** Sockets open now that were not open in `before`. */
export function socketsOpenedSince(before: Set<string>): string[] {
  return [...openSockets()].filter((socket) => !before.has(socket));
}
