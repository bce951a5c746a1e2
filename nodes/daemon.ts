// The daemon that `tunnelbyte-node up` and `run` both start: the TUN interface with its addresses and MTU,
// the engine, the device on its UDP port, the UAPI socket (so `wg` works) and, when asked, the metrics
// endpoint. What differs (peers from a file or from a broker, routes, NAT) the callers add. close() undoes
// every step in reverse order, the callers' last-added first; a start that fails part-way undoes its own.
import { isIPv4 } from 'node:net';

import { DEFAULT_MTU } from '../crypto/constants.js';
import { Tunnel } from '../crypto/tunnel.js';
import type { DataPathSettings, HostPort } from './config.js';
import { Device } from './device.js';
import { NodeMetrics, serveMetrics } from './metrics.js';
import { secureRandomBytes } from './random.js';
import { configureInterface, openTun } from './tun/index.js';
import { handOverWarning } from './threads/load.js';
import { CryptoThreads } from './threads/pool.js';
import { startUapiServer } from './uapi.js';
import { openUdp, type UdpTransport } from './udp.js';
import { warmDataPath, warmDevicePackets, warmDevicePath, warmThreadShapes } from './warmup.js';

/**
 * The UDP socket's receive buffer: the queue in front of the engine, and under load the only long one. A
 * node busy encrypting leaves it full, so every packet waits for all of it: with 8 MiB a ping beside one
 * TCP stream took 22-28 ms (median), with 128 KiB 4-5 ms, as wireguard-go's own 3-7 ms in the same runs, at
 * the same throughput (scripts/bench-tunnel's topology). TCP keeps a short queue full as well as a long one.
 */
const RECEIVE_BUFFER_BYTES = 128 * 1024;

export interface DaemonOptions extends DataPathSettings {
  interfaceName: string;
  /** Interface addresses with their prefixes ('10.64.0.1/10'). */
  addresses: readonly string[];
  /** Default DEFAULT_MTU. */
  mtu?: number;
  privateKey: Uint8Array;
  /** UDP listen address (default: every address) and port (0 lets the kernel pick). */
  listen: { host?: string; port: number };
  metrics?: HostPort;
  /**
   * One-line notices while running (a kernel refusing UDP GSO, a handshake worker or a crypto thread
   * that died).
   */
  log?: (line: string) => void;
  /** Runs once the device is up and before UAPI and metrics are served: peers, routes. */
  configure?: (device: Device, interfaceName: string) => Promise<void>;
}

export interface Daemon {
  /** The name the kernel gave the interface. */
  readonly interfaceName: string;
  /** The TUN offload mode the kernel agreed to ("on (TSO4, TSO6, checksum)", "off"...). */
  readonly tunOffload: string;
  /** How the UDP socket carries datagrams ("batched, GSO on, GRO on", "dgram, GSO off, GRO off"...). */
  readonly udp: string;
  /** Threads of the data path ("1": the main thread alone; "2 (hand-over auto)"...). */
  readonly threads: string;
  readonly device: Device;
  readonly publicKey: Uint8Array;
  readonly listenPort: number;
  readonly uapiPath: string;
  readonly metricsPort?: number;
  /**
   * Resolves with an exit code once the daemon should stop: 0 when its UAPI socket is removed, 1 when the
   * interface fails or a crypto thread dies, or the code given to stop().
   */
  readonly stopped: Promise<number>;
  stop(code: number): void;
  /** Adds a step to close(); steps run in reverse order of adding, before the daemon's own. */
  onClose(step: () => Promise<void> | void): void;
  /** Undoes everything: the callers' steps, metrics, UAPI, then the device, its socket and the interface. */
  close(): Promise<void>;
}

/**
 * The engine's options on a node (its private key aside): what its device and its UDP socket (batched or
 * dgram) let the engine reuse.
 */
export function nodeEngineOptions(mtu: number, batchedUdp: boolean) {
  return {
    randomBytes: secureRandomBytes,
    wallClockMs: Date.now,
    mtu,
    decryptInPlace: true, // the device hands over each datagram and is done with it
    // The batched socket copies each datagram into its send slab at once; dgram keeps it until sent.
    reuseSendBuffers: batchedUdp,
    reuseActions: true, // Device.perform carries out every action before it calls the engine again
    // The batched socket's slots come back; dgram's Buffers do not, and with crypto threads the engine opens
    // some of them itself (where a view kept per message object would keep each datagram alive).
    reusedMessages: batchedUdp,
  };
}

/** Runs a start-up step whose failure says what failed: "TUN wg0: ioctl TUNSETIFF: Invalid argument". */
function named<T>(what: string, step: () => T): T {
  const failed = (error: unknown) => new Error(`${what}: ${(error as Error).message}`, { cause: error });
  try {
    const result = step();
    return result instanceof Promise
      ? (result.catch((error: unknown) => Promise.reject(failed(error))) as T)
      : result;
  } catch (error) {
    throw failed(error);
  }
}

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const cleanups: Array<() => Promise<void> | void> = [];
  const close = async () => {
    for (const step of cleanups.splice(0).reverse()) await step();
  };
  let stop: (code: number) => void = () => undefined;
  const stopped = new Promise<number>((resolve) => (stop = resolve));
  try {
    const tun = named(`TUN ${options.interfaceName}`, () =>
      openTun(options.interfaceName, { offload: options.offload }),
    );
    cleanups.push(() => tun.close());
    const mtu = options.mtu ?? DEFAULT_MTU;
    await configureInterface(tun.name, { addresses: options.addresses, mtu });

    // A crypto thread that dies takes its peers' keys with it: the node stops (exit 1) for its supervisor.
    const threads =
      options.threads > 1
        ? await CryptoThreads.start(
            options.threads,
            mtu,
            (line) => {
              options.log?.(line);
              stop(1);
            },
            !options.batchedUdp,
            options.handOver,
          )
        : undefined;
    if (threads) cleanups.push(() => threads.close());
    const handOverNotice = threads && handOverWarning(options.handOver);
    if (handOverNotice) options.log?.(handOverNotice);
    const engineOptions = nodeEngineOptions(mtu, options.batchedUdp);
    // The socket as the node's own, less what only the node's socket has (its address, counts, notices).
    const socketSettings = {
      batched: options.batchedUdp,
      receiveBufferSize: RECEIVE_BUFFER_BYTES,
      offload: options.offload, // UDP GSO and GRO ride on the same switch as the TUN's offloads
    };
    const { host } = options.listen;
    // The warm-up's sockets are wrapped as the node's: the device's calls into them are then compiled for
    // this shape.
    const ownedSends = (udp: UdpTransport): UdpTransport => (threads ? socketForThreads(udp) : udp);
    if (threads) warmThreadShapes(mtu, secureRandomBytes);
    warmDataPath(engineOptions);
    await warmDevicePath(
      engineOptions,
      async (udpOptions) => ownedSends(await openUdp({ ...udpOptions, ...socketSettings })),
      host !== undefined && isIPv4(host),
      tun.offload.enabled,
      threads,
    ).then(
      (delivered) => {
        const sent = warmDevicePackets(tun.offload.enabled);
        if (delivered < sent)
          options.log?.(`warm-up over loopback stopped after ${delivered} of ${sent} packets`);
      },
      (error: Error) => options.log?.(`warm-up over loopback skipped: ${error.message}`),
    );
    const tunnel = new Tunnel({
      privateKey: options.privateKey,
      ...engineOptions,
      ...(threads && { transportCrypto: threads }),
    });
    const metrics = new NodeMetrics(tunnel);
    metrics.countOffload(tun);
    if (threads) metrics.countCryptoThreads(threads);
    const udpSettings = {
      ...socketSettings,
      ...(host !== undefined && { host }),
      ...(options.log && { onNotice: options.log }),
    };
    let udpMode = '';
    const listening =
      host === undefined ? `UDP port ${options.listen.port}` : `UDP ${host}:${options.listen.port}`;
    const device = await named(listening, () =>
      Device.start({
        tunnel,
        privateKey: options.privateKey,
        // The TUN itself, no wrapper: the warm-up's devices are handed objects of its shape (nodes/warmup.ts).
        packets: tun,
        openUdp: async (udpOptions) => {
          const udp = ownedSends(await openUdp({ ...udpOptions, ...udpSettings }));
          udpMode = udp.mode;
          return udp;
        },
        listenPort: options.listen.port,
        metrics,
        // With more than one thread, as many handshake workers answer initiations; with one, the engine does.
        handshakeThreads: options.threads > 1 ? options.threads : 0,
        ...(threads && { threads }),
      }),
    );
    cleanups.push(() => device.close());
    if (device.udpReceiveDrops() !== undefined)
      metrics.countUdpReceiveDrops(() => device.udpReceiveDrops() ?? 0);
    await options.configure?.(device, tun.name);

    const uapi = await startUapiServer({ name: tun.name, device, onSocketRemoved: () => stop(0) });
    cleanups.push(() => uapi.close());
    tun.onError(() => stop(1));
    // Without its handshake worker the node could not answer a handshake: it stops (exit 1), never hangs.
    device.onFailure((error) => {
      options.log?.(`stopping: ${error.message.split('\n')[0]}`);
      stop(1);
    });

    let metricsPort: number | undefined;
    if (options.metrics) {
      const { host: metricsHost, port } = options.metrics;
      const server = await named(`metrics ${metricsHost}:${port}`, () =>
        serveMetrics(metrics, metricsHost, port),
      );
      metricsPort = server.port;
      cleanups.push(() => server.close());
    }

    return {
      interfaceName: tun.name,
      tunOffload: tun.offload.description,
      udp: udpMode,
      threads: threads ? `${options.threads} (hand-over ${options.handOver})` : '1',
      device,
      publicKey: tunnel.publicKey,
      listenPort: device.listenPort,
      uapiPath: uapi.path,
      ...(metricsPort !== undefined && { metricsPort }),
      stopped,
      stop,
      onClose: (step) => cleanups.push(step),
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * The node's socket as a node with crypto threads needs it: dgram keeps a datagram until it is sent, and the
 * threads' ring space is reused before that, so its sends get a copy; the batched socket copies each datagram
 * into its send slab at once.
 */
export function socketForThreads(udp: UdpTransport): UdpTransport {
  if (udp.batched) return udp;
  return { ...udp, send: (datagram, to, peer) => udp.send(datagram.slice(), to, peer) };
}

/**
 * The line a daemon prints once it serves, saying what is in force:
 * `NAME up[, who], UDP port N (UDP MODE), UAPI PATH, TUN offload MODE, threads N[ (hand-over MODE)][, metrics
 * port M]`.
 */
export function readyLine(
  daemon: Pick<
    Daemon,
    'interfaceName' | 'listenPort' | 'udp' | 'uapiPath' | 'tunOffload' | 'threads' | 'metricsPort'
  >,
  who?: string,
): string {
  return (
    `tunnelbyte-node: ${daemon.interfaceName} up${who === undefined ? '' : `, ${who}`}, ` +
    `UDP port ${daemon.listenPort} (${daemon.udp}), UAPI ${daemon.uapiPath}, ` +
    `TUN offload ${daemon.tunOffload}, threads ${daemon.threads}` +
    (daemon.metricsPort === undefined ? '' : `, metrics port ${daemon.metricsPort}`) +
    '\n'
  );
}
