// Leak checks on descriptors: the sockets, TUN devices and /dev/null descriptors (the start-up warm-up's
// stand-in TUNs) this process opened since a snapshot and still holds. Only those kinds, and only new ones: the test runner opens and closes files of its own (module
// loads, caches), and a previous test file's connections may close at any moment, which made plain counts of
// every descriptor flake.
import { readdirSync, readlinkSync } from 'node:fs';

const TUN_DEVICE = '/dev/net/tun';
const NULL_DEVICE = '/dev/null';

/**
 * The sockets, TUN devices and /dev/null descriptors open now: a socket by its kernel name ('socket:[inode]'),
 * a device by its descriptor ('/dev/net/tun as fd 7'), since all of a device's descriptors link to one path.
 */
export function openDescriptors(): Set<string> {
  const descriptors = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith('socket:')) descriptors.add(target);
      else if (target === TUN_DEVICE || target === NULL_DEVICE) descriptors.add(`${target} as fd ${fd}`);
    } catch {
      // closed while we looked (the directory's own descriptor, or the runner's)
    }
  }
  return descriptors;
}

/** Sockets, TUN devices and /dev/null descriptors open now that were not open in `before`. */
export function descriptorsOpenedSince(before: Set<string>): string[] {
  return [...openDescriptors()].filter((descriptor) => !before.has(descriptor));
}
