// The TUN addon (nodes/tun/tun.c) fed what it must survive: wrong types, bad lengths and vnet headers,
// refused ioctls, closed descriptors. Each case checks it answers with an error, a -errno or a refused
// write (never a crash) and that no descriptor leaks (no TUN device or socket opened since the case began is
// left in /proc/self/fd). Needs CAP_NET_ADMIN.
import { execFileSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { constants } from 'node:os';

import { TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, VNET_HEADER_SIZE } from '../../nodes/offload.js';
import { loadAddon } from '../../nodes/tun/addon.js';
import type { TunAddon } from '../../nodes/tun/index.js';
import { descriptorsOpenedSince, openDescriptors } from '../helpers/fds.js';
import { netnsHarness } from './netns.js';

const addon = loadAddon<TunAddon>('tun');
const harness = netnsHarness();
const name = () => `tb${process.pid}a%d`;
const noop = () => undefined;

/** A descriptor number that is certainly closed. */
function closedFd(): number {
  const fd = openSync('/dev/null', 'r');
  closeSync(fd);
  return fd;
}

describe('tun addon: bad input', () => {
  test.each([
    [1, 'a number for a name', () => addon.open(42 as never, false), /a string and a boolean/],
    [2, 'no vnet flag', () => addon.open(name(), undefined as never), /a string and a boolean/],
    [3, 'a 16-byte name', () => addon.open('x'.repeat(16), true), /1 to 15 bytes/],
    [4, 'an empty name', () => addon.open('', false), /1 to 15 bytes/],
    [5, 'an interface that is not a TUN', () => addon.open('lo', false), /TUNSETIFF/],
    [6, 'the same with a vnet header', () => addon.open('lo', true), /TUNSETIFF \(vnet header\)/],
  ])('%i. open refuses %s and leaves no descriptor', (_n, _what, call, message) => {
    const before = openDescriptors();
    expect(call).toThrow(message);
    expect(descriptorsOpenedSince(before)).toEqual([]);
  });

  test('7. 50 opens and closes, with and without the vnet header, leak nothing', () => {
    const before = openDescriptors();
    for (let i = 0; i < 50; i++) {
      const { fd } = addon.open(name(), i % 2 === 0);
      addon.close(fd);
    }
    expect(descriptorsOpenedSince(before)).toEqual([]);
  });

  test('8. setOffload: unknown flags are -EINVAL, a closed or non-TUN descriptor an error code', () => {
    const { fd } = addon.open(name(), true);
    expect(addon.setOffload(fd, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)).toBe(0);
    expect(addon.setOffload(fd, 0x4000)).toBe(-constants.errno.EINVAL);
    expect(() => addon.setOffload(fd, -1)).toThrow(/non-negative/);
    expect(() => addon.setOffload(fd, 'all' as never)).toThrow(/non-negative/);
    expect(() => (addon.setOffload as (fd: number) => number)(fd)).toThrow(/setOffload\(fd, flags\)/);
    addon.close(fd);
    expect(addon.setOffload(fd, TUN_F_CSUM)).toBe(-constants.errno.EBADF);
    const devNull = openSync('/dev/null', 'r');
    expect(addon.setOffload(devNull, TUN_F_CSUM)).toBeLessThan(0);
    closeSync(devNull);
  });

  test('9. writeMany: empty, oversized and garbage frames are refused, each call stopping at the refusal', () => {
    const { fd } = addon.open(name(), true);
    const zeroHeader = (length: number) => new Uint8Array(VNET_HEADER_SIZE + length);
    const badGso = zeroHeader(100);
    badGso[1] = 1; // TCPV4 over zeros: no IP packet behind it
    badGso[4] = 10; // gso_size 10
    const frames = [new Uint8Array(0), zeroHeader(70000), Uint8Array.of(1, 2, 3), badGso];
    // Each call stops at the first refusal; the caller steps over it.
    for (let start = 0; start < frames.length; start++) expect(addon.writeMany(fd, frames, start)).toBe(0);
    expect(addon.writeMany(fd, frames, frames.length)).toBe(0);
    addon.close(fd);
  });

  test('10. writeMany: a start outside the batch, a non-array and non-bytes throw', () => {
    const { fd } = addon.open(name(), false);
    const frames = [new Uint8Array(20)];
    expect(() => addon.writeMany(fd, frames, 2)).toThrow(/writeMany\(fd, packets\[\], start\)/);
    expect(() => addon.writeMany(fd, frames, -1)).toThrow(/writeMany/);
    expect(() => addon.writeMany(fd, 'frames' as never, 0)).toThrow(/writeMany/);
    expect(() => addon.writeMany(fd, [new Uint16Array(4)] as never, 0)).toThrow(/Uint8Array/);
    expect(() => addon.writeMany('fd' as never, frames, 0)).toThrow(/writeMany/);
    addon.close(fd);
  });

  test('11. closed descriptors: writes refused, reading and closing throw, nothing leaks', () => {
    const before = openDescriptors();
    const fd = closedFd();
    expect(addon.writeMany(fd, [new Uint8Array(40)], 0)).toBe(0);
    const buffers = [new Uint8Array(70_000), new Int32Array(2)] as const;
    expect(() => addon.startReading(fd, ...buffers, noop, noop)).toThrow(/uv_poll_init/);
    expect(() => addon.close(fd)).toThrow(/close: Bad file descriptor/);
    expect(() => addon.startReading(fd, ...buffers, 'no' as never, noop)).toThrow(/startReading/);
    expect(descriptorsOpenedSince(before)).toEqual([]);
  });

  test.each([
    [
      1,
      'a slab without room for one 64 KiB frame',
      new Uint8Array(65546),
      new Int32Array(2),
      /one 65547-byte frame/,
    ],
    [2, 'a records table without one entry', new Uint8Array(70_000), new Int32Array(1), /one entry/],
    [3, 'a slab that is not bytes', new Uint16Array(40_000), new Int32Array(2), /expected a Uint8Array/],
    [4, 'records that are not int32', new Uint8Array(70_000), new Uint32Array(2), /expected an Int32Array/],
    [5, 'no slab at all', 'slab', new Int32Array(2), /expected a Uint8Array/],
  ])('12.%i. startReading refuses %s, leaving nothing behind', (_n, _what, slab, records, message) => {
    const { fd } = addon.open(name(), false);
    const before = openDescriptors();
    expect(() => addon.startReading(fd, slab as never, records as never, noop, noop)).toThrow(message);
    expect(descriptorsOpenedSince(before)).toEqual([]);
    addon.close(fd);
  });

  test('13. stop on a stopped reader is a no-op; 50 start/stop cycles leak nothing', () => {
    const { fd } = addon.open(name(), false);
    const before = openDescriptors();
    for (let i = 0; i < 50; i++) {
      const reader = addon.startReading(fd, new Uint8Array(70_000), new Int32Array(2), noop, noop);
      reader.stop();
      reader.stop();
    }
    expect(descriptorsOpenedSince(before)).toEqual([]);
    addon.close(fd);
  });
});

describe('tun addon: readFrames', () => {
  const slab = () => new Uint8Array(70_000);
  const records = () => new Int32Array(2);

  test.each([
    [1, 'a slab without room for one 64 KiB frame', new Uint8Array(65546), records(), /one 65547-byte frame/],
    [2, 'a records table without one entry', slab(), new Int32Array(1), /one entry/],
    [3, 'a slab that is not bytes', new Uint16Array(40_000), records(), /expected a Uint8Array/],
    [4, 'records that are not int32', slab(), new Uint32Array(2), /expected an Int32Array/],
    [5, 'no records at all', slab(), undefined, /readFrames\(fd, slab, records\)/],
  ])(
    '15.%i. refuses %s, reading nothing and leaving nothing behind',
    (_n, _what, slabArg, recordsArg, message) => {
      const { fd } = addon.open(name(), false);
      const before = openDescriptors();
      const read = addon.readFrames as (...args: unknown[]) => number;
      expect(() => (recordsArg === undefined ? read(fd, slabArg) : read(fd, slabArg, recordsArg))).toThrow(
        message,
      );
      expect(descriptorsOpenedSince(before)).toEqual([]);
      addon.close(fd);
    },
  );

  test('16. nothing queued is -EAGAIN, a closed or non-TUN descriptor -errno; 50 calls leak nothing', () => {
    const before = openDescriptors();
    const { fd } = addon.open(name(), true);
    for (let i = 0; i < 50; i++)
      expect(addon.readFrames(fd, slab(), records())).toBe(-constants.errno.EAGAIN);
    addon.close(fd);
    expect(addon.readFrames(fd, slab(), records())).toBe(-constants.errno.EBADF);
    expect(addon.readFrames(closedFd(), slab(), records())).toBe(-constants.errno.EBADF);
    const devNull = openSync('/dev/null', 'w');
    expect(addon.readFrames(devNull, slab(), records())).toBe(-constants.errno.EBADF); // not open for reading
    closeSync(devNull);
    expect(() => addon.readFrames('fd' as never, slab(), records())).toThrow(/readFrames/);
    expect(descriptorsOpenedSince(before)).toEqual([]);
  });

  test('17. a detached slab or records table is refused before any read', () => {
    const { fd } = addon.open(name(), false);
    for (const which of ['slab', 'records'] as const) {
      const buffers = { slab: slab(), records: records() };
      const detached = buffers[which].buffer;
      structuredClone(detached, { transfer: [detached] });
      expect(() => addon.readFrames(fd, buffers.slab, buffers.records)).toThrow(
        /expected an? (Uint8|Int32)Array/,
      );
    }
    addon.close(fd);
  });
});

describe('tun addon: buffers JS takes away', () => {
  test.each([
    [1, 'slab'],
    [2, 'records'],
  ])(
    '14.%i. the %s detached (a transfer) while reading: one error at the next packet, no read into it, nothing leaks',
    async (_n, which) => {
      // The TUN lives in a namespace of its own, so the ping that makes it readable stays there.
      const ns = await harness.namespace('detach');
      const before = openDescriptors();
      const { fd, name: ifname } = addon.open(harness.interfaceName(), false);
      execFileSync('ip', ['link', 'set', 'dev', ifname, 'netns', ns.name]);
      await ns.exec('ip', ['address', 'add', '10.251.0.1/24', 'dev', ifname]);
      await ns.exec('ip', ['link', 'set', 'dev', ifname, 'up']);
      const slab = new Uint8Array(70_000);
      const records = new Int32Array(2);
      const batches: number[] = [];
      const failed = new Promise<string>((resolveError) => {
        addon.startReading(fd, slab, records, (count) => batches.push(count), resolveError);
      });
      const detached = which === 'slab' ? slab.buffer : records.buffer;
      const moved = structuredClone(detached, { transfer: [detached] });
      expect(detached.byteLength).toBe(0);
      // Nobody answers: ping fails, but its request is in the TUN.
      const ping = ns.exec('ping', ['-c', '1', '-W', '1', '10.251.0.2']).catch((error: Error) => error);
      expect(await failed).toBe('TUN read: buffer detached');
      expect(await ping).toBeInstanceOf(Error);
      expect(batches).toEqual([]);
      expect(new Uint8Array(moved).every((byte) => byte === 0)).toBe(true); // the packet was not read
      addon.close(fd);
      expect(descriptorsOpenedSince(before)).toEqual([]);
    },
  );
});
