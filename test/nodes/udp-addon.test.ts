// The UDP addon (nodes/tun/udp.c) fed what it must survive: wrong types, bad lengths and offsets, closed
// descriptors. Each case checks it answers with an error or a -errno (never a crash) and that no
// descriptor leaks (no socket opened since the case began is left in /proc/self/fd).
import { createSocket, type Socket } from 'node:dgram';
import { closeSync, openSync } from 'node:fs';
import { constants } from 'node:os';

import { loadAddon } from '../../nodes/tun/addon.js';
import { descriptorsOpenedSince, openDescriptors } from '../helpers/fds.js';
import type { UdpAddon } from '../../nodes/udp.js';

const addon = loadAddon<UdpAddon>('udp');
const RECORD_INTS = 12;
const FLAG_LOCAL = 1;
const FLAG_TRUNCATED = 2;
const LOOPBACK_V4 = Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1);
const ANY_V6 = new Uint8Array(16);

function openSocket(): number {
  return addon.open(6, ANY_V6, 0, 0, 0).fd;
}

/** `count` records addressed to 127.0.0.1:port with `length` bytes (a GSO message when `segment` > 0). */
function records(port: number, length: number, count = 1, segment = 0): Int32Array {
  const table = new Int32Array(count * RECORD_INTS);
  for (let i = 0; i < count; i++) {
    table[i * RECORD_INTS] = length;
    table[i * RECORD_INTS + 1] = port;
    table[i * RECORD_INTS + 3] = segment;
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
    const before = openDescriptors();
    expect(call).toThrow(message);
    expect(descriptorsOpenedSince(before)).toEqual([]);
  });

  test('6. a failed bind (port in use) closes its socket: 50 attempts leak nothing', () => {
    const fd = openSocket();
    const { port } = addon.open(4, LOOPBACK_V4, 0, 0, 0);
    const before = openDescriptors();
    for (let i = 0; i < 50; i++) {
      expect(() => addon.open(4, LOOPBACK_V4, port, 0, 0)).toThrow(/EADDRINUSE/);
    }
    expect(descriptorsOpenedSince(before)).toEqual([]);
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
      expect(addon.sendMany(fd, 6, slab, table, 2048, i, 4)).toBe(-constants.errno.EINVAL);
    }
    addon.close(fd);
  });

  test('8. sendMany: start/end outside the buffers, bad slot sizes, wrong array types and a family other than 4|6 throw', () => {
    const fd = openSocket();
    const slab = new Uint8Array(2 * 1024);
    const table = records(9, 10, 2);
    expect(() => addon.sendMany(fd, 6, slab, table, 1024, 0, 3)).toThrow(/outside/);
    expect(() => addon.sendMany(fd, 6, slab, table, 1024, 2, 1)).toThrow(/outside/);
    expect(() => addon.sendMany(fd, 6, slab, table, 1024, -1, 1)).toThrow(/outside/);
    expect(() => addon.sendMany(fd, 6, slab, table, 0, 0, 1)).toThrow(/slot size/);
    expect(() => addon.sendMany(fd, 6, slab, table, 65537, 0, 1)).toThrow(/slot size/);
    expect(() => addon.sendMany(fd, 6, slab, table, 4096, 0, 1)).toThrow(/too small/);
    expect(() => addon.sendMany(fd, 6, table as never, slab as never, 1024, 0, 1)).toThrow(/Uint8Array/);
    expect(() => addon.sendMany(fd, 6, slab, new Uint32Array(24) as never, 1024, 0, 1)).toThrow(/Int32Array/);
    expect(() => addon.sendMany(fd, 6, slab, new Int32Array(RECORD_INTS - 1), 1024, 0, 1)).toThrow(
      /too small/,
    );
    expect(addon.sendMany(fd, 6, slab, table, 1024, 1, 1)).toBe(0);
    const before = openDescriptors();
    for (const family of [0, 5, 46, -6, 6.5, 2 ** 32 + 6, NaN, '6', undefined, null]) {
      // The addon's TypeError comes from Node's realm, not the test's: compare its name, not its class.
      let thrown: unknown;
      try {
        addon.sendMany(fd, family as never, slab, table, 1024, 0, 1);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toMatchObject({ name: 'TypeError', message: expect.stringMatching(/family 4\|6/) });
    }
    expect(() => (addon.sendMany as (...args: unknown[]) => number)(fd, slab, table, 1024, 0, 1)).toThrow(
      /family 4\|6/,
    );
    expect(descriptorsOpenedSince(before)).toEqual([]);
    // A family that is not the socket's: refused sends, no crash.
    const v4 = addon.open(4, LOOPBACK_V4, 0, 0, 0).fd;
    expect(addon.sendMany(v4, 6, slab, table, 1024, 0, 1)).toBe(-constants.errno.EAFNOSUPPORT);
    addon.close(v4);
    const toV6 = records(9, 10);
    new Uint8Array(toV6.buffer).set(Uint8Array.of(0xfd, ...new Uint8Array(14), 1), 4 * 4);
    expect(addon.sendMany(fd, 4, slab, toV6, 1024, 0, 1)).toBe(-constants.errno.EINVAL);
    addon.close(fd);
  });

  test('9. a closed descriptor: sendMany is -EBADF, bufferSizes/startReceiving/close throw', () => {
    const fd = openSocket();
    addon.close(fd);
    const slab = new Uint8Array(1024);
    expect(addon.sendMany(fd, 6, slab, records(9, 10), 1024, 0, 1)).toBe(-constants.errno.EBADF);
    expect(() => addon.bufferSizes(fd)).toThrow(/EBADF/);
    expect(() => addon.receiveDrops(fd)).toThrow(/EBADF/);
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

  test('12. 200 open / receive / stop / close cycles leave no descriptor behind', () => {
    const slab = new Uint8Array(2048);
    const table = new Int32Array(RECORD_INTS);
    const before = openDescriptors();
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
    expect(descriptorsOpenedSince(before)).toEqual([]);
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

  test.each([
    [19, 'slab'],
    [20, 'records'],
  ])(
    '%i. the %s detached by JS (a transfer) while receiving: one error at the next datagram, no read into it, nothing leaks',
    async (_n, which) => {
      const before = openDescriptors();
      const { fd, port } = addon.open(4, LOOPBACK_V4, 0, 0, 0);
      const slab = new Uint8Array(2048);
      const table = new Int32Array(RECORD_INTS);
      const batches: number[] = [];
      const failed = new Promise<string>((resolveError) => {
        addon.startReceiving(fd, slab, table, 2048, (count) => batches.push(count), resolveError);
      });
      const detached = which === 'slab' ? slab.buffer : table.buffer;
      const moved = structuredClone(detached, { transfer: [detached] });
      expect(detached.byteLength).toBe(0);
      const sender = openSocket();
      expect(addon.sendMany(sender, 6, new Uint8Array(2048), records(port, 10), 2048, 0, 1)).toBe(1);
      expect(await failed).toBe('UDP receive: buffer detached');
      expect(batches).toEqual([]);
      expect(new Uint8Array(moved).every((byte) => byte === 0)).toBe(true); // the datagram was not read
      addon.close(sender);
      addon.close(fd);
      expect(descriptorsOpenedSince(before)).toEqual([]);
    },
  );
});

describe('udp addon: GSO (UDP_SEGMENT) and GRO (UDP_GRO)', () => {
  const EINVAL = -constants.errno.EINVAL;

  test('14. segment sizes: negative, above 65535, or more than GSO_SEGMENTS_MAX datagrams are -EINVAL, one at a time', () => {
    const fd = openSocket();
    const max = addon.GSO_SEGMENTS_MAX;
    expect(max).toBe(64);
    const slab = new Uint8Array(5 * 4096);
    const table = records(9, 1000, 5, 10);
    table[3] = -1;
    table[RECORD_INTS + 3] = 65536;
    table[2 * RECORD_INTS] = (max + 1) * 10; // 65 datagrams of 10 bytes
    table[3 * RECORD_INTS] = max * 10 + 1; // 64 of 10 and a 65th of 1
    for (let i = 0; i < 4; i++) expect(addon.sendMany(fd, 6, slab, table, 4096, i, 5)).toBe(EINVAL);
    table[4 * RECORD_INTS] = max * 10; // exactly 64 datagrams: sent
    expect(addon.sendMany(fd, 6, slab, table, 4096, 4, 5)).toBe(1);
    addon.close(fd);
  });

  /** `call` on a closed descriptor and on -1 throws EBADF, on a file ENOTSOCK, and without one its usage. */
  function expectDescriptorsRefused(call: (fd: number) => unknown, usage: RegExp): void {
    const fd = openSocket();
    addon.close(fd);
    expect(() => call(fd)).toThrow(/EBADF/);
    expect(() => call(-1)).toThrow(/EBADF/);
    const file = openSync('/proc/self/stat', 'r');
    expect(() => call(file)).toThrow(/ENOTSOCK/);
    closeSync(file);
    expect(() => (call as (...args: unknown[]) => unknown)()).toThrow(usage);
  }

  test('15. enableOffloads: a closed descriptor and a file throw, a missing fd is a TypeError, nothing leaks', () => {
    expectDescriptorsRefused(addon.enableOffloads, /enableOffloads\(fd\)/);
    const before = openDescriptors();
    const slab = new Uint8Array(2048);
    for (let i = 0; i < 200; i++) {
      const socket = openSocket();
      expect(addon.enableOffloads(socket)).toEqual({ gso: true, gro: true });
      expect(addon.sendMany(socket, 6, slab, records(9, 1000, 1, 100), 2048, 0, 1)).toBe(1);
      addon.close(socket);
    }
    expect(descriptorsOpenedSince(before)).toEqual([]);
  });

  /** 5 datagrams of 100 bytes and one of 37, each filled with its index + 1. */
  const SEGMENTS = [100, 100, 100, 100, 100, 37];
  const gsoSlab = () => {
    const slab = new Uint8Array(4096);
    let at = 0;
    SEGMENTS.forEach((length, i) => {
      slab.fill(i + 1, at, at + length);
      at += length;
    });
    return slab;
  };
  const TOTAL = SEGMENTS.reduce((sum, length) => sum + length, 0);

  /** A dgram socket on 127.0.0.1 that closes once `count` datagrams arrived and resolves with them. */
  async function plainReceiver(count: number): Promise<{ port: number; all: Promise<Buffer[]> }> {
    const receiver: Socket = createSocket('udp4');
    await new Promise<void>((resolveBind) => receiver.bind(0, '127.0.0.1', () => resolveBind()));
    const arrived: Buffer[] = [];
    const all = new Promise<Buffer[]>((resolveAll) =>
      receiver.on('message', (message) => {
        arrived.push(message);
        if (arrived.length < count) return;
        receiver.close();
        resolveAll(arrived);
      }),
    );
    return { port: receiver.address().port, all };
  }

  test('16. a GSO message reaches a plain receiver as its separate datagrams, sizes and bytes exact; segment size 0 sends one datagram', async () => {
    const { port, all } = await plainReceiver(SEGMENTS.length + 1);
    const fd = openSocket();
    const table = records(port, TOTAL, 2, 100);
    table[RECORD_INTS + 3] = 0;
    const slab = gsoSlab();
    slab.copyWithin(4096 / 2, 0, TOTAL);
    expect(addon.sendMany(fd, 6, slab, table, 4096 / 2, 0, 2)).toBe(2);
    const arrived = await all;
    addon.close(fd);
    expect(arrived.map((message) => message.length)).toEqual([...SEGMENTS, TOTAL]);
    SEGMENTS.forEach((_, i) => expect(arrived[i]!.every((byte) => byte === i + 1)).toBe(true));
    expect([...arrived[SEGMENTS.length]!]).toEqual([...slab.subarray(0, TOTAL)]);
  });

  test('17. sendMany takes views of a SharedArrayBuffer at any offset, as worker threads hand over rings', async () => {
    const { port, all } = await plainReceiver(SEGMENTS.length);
    const shared = new SharedArrayBuffer(8192);
    const slab = new Uint8Array(shared, 1024, 4096);
    slab.set(gsoSlab());
    const table = new Int32Array(shared, 6144, RECORD_INTS);
    table.set(records(port, TOTAL, 1, 100));
    const fd = openSocket();
    expect(addon.sendMany(fd, 6, slab, table, 4096, 0, 1)).toBe(1);
    const arrived = await all;
    addon.close(fd);
    expect(arrived.map((message) => message.length)).toEqual(SEGMENTS);
  });

  test('18. a GRO socket receives that message as one record naming the segment size, bytes exact', async () => {
    const { fd, port } = addon.open(6, ANY_V6, 0, 0, 0);
    expect(addon.enableOffloads(fd).gro).toBe(true);
    const slab = new Uint8Array(65536);
    const table = new Int32Array(RECORD_INTS);
    const received = new Promise<{ length: number; flags: number; segment: number; bytes: number[] }>(
      (resolveBatch) => {
        const reader = addon.startReceiving(
          fd,
          slab,
          table,
          65536,
          () => {
            reader.stop();
            resolveBatch({
              length: table[0]!,
              flags: table[2]!,
              segment: table[3]!,
              bytes: [...slab.subarray(0, table[0]!)],
            });
          },
          () => undefined,
        );
      },
    );
    const sender = openSocket();
    const sent = gsoSlab();
    expect(addon.sendMany(sender, 6, sent, records(port, TOTAL, 1, 100), 4096, 0, 1)).toBe(1);
    const batch = await received;
    addon.close(sender);
    addon.close(fd);
    expect(batch).toEqual({
      length: TOTAL,
      flags: FLAG_LOCAL,
      segment: 100,
      bytes: [...sent.subarray(0, TOTAL)],
    });
  });

  test('19. receiveDrops: 0 on a fresh socket; a closed descriptor, -1 and a file throw, a missing fd is a TypeError', () => {
    const fd = openSocket();
    expect(addon.receiveDrops(fd)).toBe(0);
    addon.close(fd);
    expectDescriptorsRefused(addon.receiveDrops, /receiveDrops\(fd\)/);
  });
});
