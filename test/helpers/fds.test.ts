// The descriptor leak check the addon tests use: it finds a socket or TUN device left open, and nothing
// else moves it (a plain count of /proc/self/fd failed when the runner's own files closed meanwhile).
import { closeSync, openSync } from 'node:fs';

import { loadAddon } from '../../nodes/tun/addon.js';
import type { TunAddon } from '../../nodes/tun/index.js';
import type { UdpAddon } from '../../nodes/udp.js';
import { descriptorsOpenedSince, openDescriptors } from './fds.js';

const tun = loadAddon<TunAddon>('tun');
const udp = loadAddon<UdpAddon>('udp');

test('1. a socket and a TUN device left open are found, and are not once closed', () => {
  const before = openDescriptors();
  const socket = udp.open(6, new Uint8Array(16), 0, 0, 0).fd;
  const device = tun.open(`tb${process.pid}f%d`, false).fd;
  expect(descriptorsOpenedSince(before).sort()).toEqual(
    [`/dev/net/tun as fd ${device}`, expect.stringMatching(/^socket:\[\d+\]$/)].sort(),
  );
  udp.close(socket);
  tun.close(device);
  expect(descriptorsOpenedSince(before)).toEqual([]);
});

test('2. files opened and closed meanwhile, before or after the snapshot, do not count', () => {
  const older = openSync('/dev/null', 'r');
  const before = openDescriptors();
  closeSync(older); // as the runner's own files close while a test runs
  const newer = openSync('/proc/self/stat', 'r');
  expect(descriptorsOpenedSince(before)).toEqual([]);
  closeSync(newer);
});
