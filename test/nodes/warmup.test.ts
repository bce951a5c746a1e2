// The start-up warm-up (nodes/warmup.ts) does its work: every packet it sends, both ways, is delivered by
// the other engine (or device), with the engine options the node runs with and with the engine's defaults,
// over each kind of socket the node can run with; and it leaves nothing behind.
import { DEFAULT_MTU } from '../../crypto/constants.js';
import { nodeEngineOptions, socketForThreads } from '../../nodes/daemon.js';
import { secureRandomBytes } from '../../nodes/random.js';
import { CryptoThreads } from '../../nodes/threads/pool.js';
import { openUdp } from '../../nodes/udp.js';
import { descriptorsOpenedSince, openDescriptors } from '../helpers/fds.js';
import {
  WARM_PACKETS,
  WARM_RECORD_MESSAGES,
  warmDataPath,
  warmDevicePackets,
  warmDevicePath,
  warmThreadShapes,
} from '../../nodes/warmup.js';

const NODE_OPTIONS = nodeEngineOptions(DEFAULT_MTU, true);
const CASES = [
  ['1. the node options', NODE_OPTIONS],
  ['2. engine defaults', {}],
] as const;
const engine = (options: object) => ({ ...options, randomBytes: secureRandomBytes, wallClockMs: Date.now });

describe('warmDataPath', () => {
  test.each(CASES)('%s: every packet each way is delivered', (_name, options) => {
    expect(warmDataPath(engine(options))).toBe(2 * WARM_PACKETS);
  });
});

describe('warmThreadShapes', () => {
  test.each([1420, 9000])('MTU %i: every message sealed in a ring record opens again', (mtu) => {
    expect(warmThreadShapes(mtu, secureRandomBytes)).toBe(WARM_RECORD_MESSAGES);
  });
});

describe('warmDevicePath', () => {
  test.each([
    [1, 'batched UDP and a TUN with offloads, dual-stack', { batched: true, offload: true }, false, true],
    [2, 'batched UDP without offloads, IPv4 only', { batched: true, offload: false }, true, false],
    [3, 'dgram UDP, dual-stack', { batched: false }, false, false],
  ])(
    '%i. %s: every packet each way is delivered; no socket stays open',
    async (_n, _what, socket, ipv4Only, tunOffload) => {
      const before = openDescriptors();
      // dgram keeps a datagram until it is sent and hands in a new one each time: neither is reused (as the node).
      const options = engine({
        ...NODE_OPTIONS,
        reuseSendBuffers: socket.batched,
        reusedMessages: socket.batched,
      });
      const delivered = await warmDevicePath(
        options,
        (o) => openUdp({ ...o, ...socket }),
        ipv4Only,
        tunOffload,
      );
      expect(delivered).toBe(warmDevicePackets(tunOffload));
      expect(descriptorsOpenedSince(before)).toEqual([]);
    },
  );

  test('4. a socket that cannot be bound fails the warm-up (the node goes on without it), closing the first', async () => {
    const before = openDescriptors();
    let opened = 0;
    const openSecondFails: typeof openUdp = (o) =>
      ++opened === 2 ? Promise.reject(new Error('EADDRNOTAVAIL')) : openUdp({ ...o, batched: true });
    await expect(warmDevicePath(engine(NODE_OPTIONS), openSecondFails, true, false)).rejects.toThrow(
      /EADDRNOTAVAIL/,
    );
    expect(descriptorsOpenedSince(before)).toEqual([]);
  });

  test('5. a loopback that drops everything: the warm-up gives up after one turn and says it delivered 0', async () => {
    const before = openDescriptors();
    const dropping: typeof openUdp = async (o) => ({
      ...(await openUdp({ ...o, batched: true })),
      send: () => undefined,
    });
    expect(await warmDevicePath(engine(NODE_OPTIONS), dropping, true, false)).toBe(0);
    expect(descriptorsOpenedSince(before)).toEqual([]);
  });

  // The node's socket as `daemon.ts` hands it over with crypto threads: dgram's sends get a copy.
  test.each([
    [6, 'batched UDP', true],
    [7, 'dgram UDP (a turn lasts to the event loop’s check phase)', false],
  ])(
    '%i. with crypto threads, %s: every packet each way is delivered, each sealed and opened as a node’s first packets are (by the engine, none handed to a thread), and no peer stays pinned',
    async (_n, _what, batched) => {
      const threads = await CryptoThreads.start(
        2,
        DEFAULT_MTU,
        (line) => {
          throw new Error(line);
        },
        !batched,
      );
      try {
        const options = engine(nodeEngineOptions(DEFAULT_MTU, batched));
        const delivered = await warmDevicePath(
          options,
          async (o) => socketForThreads(await openUdp({ ...o, batched, offload: batched })),
          false,
          batched,
          threads,
        );
        expect(delivered).toBe(warmDevicePackets(batched));
        expect(threads.messages.handedOver).toBe(0);
        // Every packet both ways, and the keepalives that confirm the sessions.
        expect(threads.messages.inline).toBeGreaterThanOrEqual(2 * warmDevicePackets(batched));
        expect(threads.peersPerThread()).toEqual([0, 0]);
      } finally {
        await threads.close();
      }
    },
  );
});
