// The UDP addon (nodes/tun/udp.c) fed what it must survive: wrong types, bad lengths and offsets, closed
// descriptors. Each case checks it answers with an error or a -errno (never a crash) and that no
// descriptor leaks (counted in /proc/self/fd).
import { createSocket } from 'node:dgram';
import { readdirSync } from 'node:fs';
import { constants } from 'node:os';

import { loadAddon } from '../../nodes/tun/addon.js';
import type { UdpAddon } from '../../nodes/udp.js';

const addon = loadAddon<UdpAddon>('udp');
const RECORD_INTS = 12;
const LOOPBACK_V4 = Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1);
const ANY_V6 = new Uint8Array(16);
const openFds = () => readdirSync('/proc/self/fd').length;

function openSocket(): number {
  return addon.open(6, ANY_V6, 0, 0, 0).fd;
}

/** One record addressed to 127.0.0.1:port with `length` bytes. */
function records(port: number, length: number, count = 1): Int32Array {
  const table = new Int32Array(count * RECORD_INTS);
  for (let i = 0; i < count; i++) {
    table[i * RECORD_INTS] = length;
    table[i * RECORD_INTS + 1] = port;
    new Uint8Array(table.buffer).set(LOOPBACK_V4, (i * RECORD_INTS + 4) * 4);
  }
  return table;
}

describe('udp addon: bad input', () => {
  test.each([
    [1, () => addon.open(5 as never, ANY_V6, 0, 0, 0), /family 4\|6/],
    [2, () => addon.open(6, new Uint8Array(4), 0, 0, 0), /16 bytes/],
    [3, () => addon.open(6, 'not bytes' as never, 0, 0, 0), /Uint8Array/],
    [4, () => addon.open(6, ANY_V6, 70000, 0, 0), /port 0\.\.65535/],
    [5, () => addon.open(4, ANY_V6, 0, 0, 0), /IPv4-mapped/],
  ])('%i. open rejects bad arguments and leaves no descriptor', (_n, call, message) => {
    const before = openFds();
    expect(call).toThrow(message);
    expect(openFds()).toBe(before);
  });

  test('6. a failed bind (port in use) closes its socket: 50 attempts leak nothing', () => {
    const fd = openSocket();
    const { port } = addon.open(4, LOOPBACK_V4, 0, 0, 0);
    const before = openFds();
    for (let i = 0; i < 50; i++) {
      expect(() => addon.open(4, LOOPBACK_V4, port, 0, 0)).toThrow(/EADDRINUSE/);
    }
    expect(openFds()).toBe(before);
    addon.close(fd);
  });

  test('7. sendMany: lengths beyond the slot, negative, ports 0 and 65536 are -EINVAL, one at a time', () => {
    const fd = openSocket();
    const slab = new Uint8Array(4 * 2048);
    const table = records(9, 10, 4);
    table[0] = 2049; // longer than its slot
    table[RECORD_INTS] = -1;
    table[2 * RECORD_INTS + 1] = 0;
    table[3 * RECORD_INTS + 1] = 65536;
    for (let i = 0; i < 4; i++) {
      expect(addon.sendMany(fd, slab, table, 2048, i, 4)).toBe(-constants.errno.EINVAL);
    }
    addon.close(fd);
  });

  test('8. sendMany: start/end outside the buffers, bad slot sizes and wrong array types throw', () => {
    const fd = openSocket();
    const slab = new Uint8Array(2 * 1024);
    const table = records(9, 10, 2);
    expect(() => addon.sendMany(fd, slab, table, 1024, 0, 3)).toThrow(/outside/);
    expect(() => addon.sendMany(fd, slab, table, 1024, 2, 1)).toThrow(/outside/);
    expect(() => addon.sendMany(fd, slab, table, 1024, -1, 1)).toThrow(/outside/);
    expect(() => addon.sendMany(fd, slab, table, 0, 0, 1)).toThrow(/slot size/);
    expect(() => addon.sendMany(fd, slab, table, 65537, 0, 1)).toThrow(/slot size/);
    expect(() => addon.sendMany(fd, slab, table, 4096, 0, 1)).toThrow(/too small/);
    expect(() => addon.sendMany(fd, table as never, slab as never, 1024, 0, 1)).toThrow(/Uint8Array/);
    expect(() => addon.sendMany(fd, slab, new Uint32Array(24) as never, 1024, 0, 1)).toThrow(/Int32Array/);
    expect(() => addon.sendMany(fd, slab, new Int32Array(RECORD_INTS - 1), 1024, 0, 1)).toThrow(/too small/);
    expect(addon.sendMany(fd, slab, table, 1024, 1, 1)).toBe(0);
    addon.close(fd);
  });

  test('9. a closed descriptor: sendMany is -EBADF, bufferSizes/startReceiving/close throw', () => {
    const fd = openSocket();
    addon.close(fd);
    const slab = new Uint8Array(1024);
    expect(addon.sendMany(fd, slab, records(9, 10), 1024, 0, 1)).toBe(-constants.errno.EBADF);
    expect(() => addon.bufferSizes(fd)).toThrow(/EBADF/);
    expect(() =>
      addon.startReceiving(
        fd,
        slab,
        records(9, 10),
        1024,
        () => {},
        () => {},
      ),
    ).toThrow(/EBADF/);
    expect(() => addon.close(fd)).toThrow(/Bad file descriptor/);
    expect(() =>
      addon.startReceiving(
        -1,
        slab,
        records(9, 10),
        1024,
        () => {},
        () => {},
      ),
    ).toThrow(/EBADF/);
  });

  test('10. startReceiving rejects a missing callback and buffers too small', () => {
    const fd = openSocket();
    const slab = new Uint8Array(1024);
    expect(() => addon.startReceiving(fd, slab, records(9, 10), 1024, undefined as never, () => {})).toThrow(
      /startReceiving/,
    );
    expect(() =>
      addon.startReceiving(
        fd,
        slab,
        new Int32Array(3),
        1024,
        () => {},
        () => {},
      ),
    ).toThrow(/too small/);
    addon.close(fd);
  });
});

describe('udp addon: datagrams and descriptors', () => {
  test('11. a datagram longer than its slot arrives flagged truncated, a fitting one whole, with both addresses', async () => {
    const { fd, port } = addon.open(6, ANY_V6, 0, 0, 0);
    const slab = new Uint8Array(4 * 64);
    const table = new Int32Array(4 * RECORD_INTS);
    const seen: Array<{ length: number; port: number; flags: number; remote: number[]; local: number[] }> =
      [];
    const twoArrived = new Promise<void>((resolveSeen) => {
      const reader = addon.startReceiving(
        fd,
        slab,
        table,
        64,
        (count) => {
          const bytes = new Uint8Array(table.buffer);
          for (let i = 0; i < count; i++) {
            const at = i * RECORD_INTS;
            seen.push({
              length: table[at]!,
              port: table[at + 1]!,
              flags: table[at + 2]!,
              remote: [...bytes.subarray((at + 4) * 4, (at + 8) * 4)],
              local: [...bytes.subarray((at + 8) * 4, (at + 12) * 4)],
            });
          }
          if (seen.length >= 2) {
            reader.stop();
            resolveSeen();
          }
        },
        () => undefined,
      );
    });
    const sender = createSocket('udp4');
    await new Promise<void>((resolveBind) => sender.bind(0, '127.0.0.1', () => resolveBind()));
    sender.send(new Uint8Array(100), port, '127.0.0.1');
    sender.send(new Uint8Array(10).fill(7), port, '127.0.0.1');
    await twoArrived;
    const senderPort = sender.address().port;
    sender.close();
    addon.close(fd);
    const FLAG_LOCAL = 1;
    const FLAG_TRUNCATED = 2;
    expect(seen[0]).toEqual({
      length: 64,
      port: senderPort,
      flags: FLAG_LOCAL | FLAG_TRUNCATED,
      remote: [...LOOPBACK_V4],
      local: [...LOOPBACK_V4],
    });
    expect(seen[1]).toMatchObject({ length: 10, port: senderPort, flags: FLAG_LOCAL });
    expect([...slab.subarray(64, 74)]).toEqual(new Array(10).fill(7));
  });

  test('12. 200 open / receive / stop / close cycles leave the descriptor count unchanged', () => {
    const slab = new Uint8Array(2048);
    const table = new Int32Array(RECORD_INTS);
    const before = openFds();
    for (let i = 0; i < 200; i++) {
      const { fd } = addon.open(i % 2 ? 6 : 4, i % 2 ? ANY_V6 : LOOPBACK_V4, 0, 1 << 16, 1 << 16);
      addon
        .startReceiving(
          fd,
          slab,
          table,
          2048,
          () => undefined,
          () => undefined,
        )
        .stop();
      addon.close(fd);
    }
    expect(openFds()).toBe(before);
  });

  test('13. stop() twice and stop() after close are harmless', () => {
    const { fd } = addon.open(6, ANY_V6, 0, 0, 0);
    const reader = addon.startReceiving(
      fd,
      new Uint8Array(2048),
      new Int32Array(RECORD_INTS),
      2048,
      () => {},
      () => {},
    );
    reader.stop();
    reader.stop();
    addon.close(fd);
    reader.stop();
    expect(() => addon.bufferSizes(fd)).toThrow(/EBADF/);
  });
});
