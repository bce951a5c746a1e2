// A Linux TUN interface (IFF_TUN | IFF_NO_PI: every read and write is one bare IP packet) backed by
// the Node-API addon in tun.c. Packets arrive in batches, one callback per event-loop wakeup, read
// straight into one buffer that every batch reuses.
//
// With offloads (IFF_VNET_HDR + TUNSETOFFLOAD) the kernel reads and writes frames, a virtio_net_hdr in
// front of each packet, and may hand over 64 KiB TCP super-segments; nodes/offload.ts splits and coalesces
// them, so the interface below still deals in plain IP packets either way.

import {
  GroCoalescer,
  GsoSplitter,
  latencyFirst,
  noOffloadDrops,
  TUN_F_CSUM,
  TUN_F_TSO4,
  TUN_F_TSO6,
  type OffloadDrops,
} from '../offload.js';
import { ip } from '../ip.js';
import { ReusedViews } from '../views.js';
import { loadAddon } from './addon.js';

export interface TunAddon {
  open(name: string, vnetHeader: boolean): { fd: number; name: string };
  setOffload(fd: number, flags: number): number;
  writeMany(fd: number, packets: readonly Uint8Array[], start: number): number;
  close(fd: number): void;
  /** Frame i of a batch is at records[2i] in slab, records[2i + 1] bytes long. */
  startReading(
    fd: number,
    slab: Uint8Array,
    records: Int32Array,
    onFrames: (count: number) => void,
    onError: (message: string) => void,
  ): { stop(): void };
  /** The reads of a wakeup, now, into startReading's kind of buffers: the frames read, or -errno when none. */
  readFrames(fd: number, slab: Uint8Array, records: Int32Array): number;
}

// Implementation limits, not protocol constants. A read needs a whole frame's room (64 KiB + a vnet header).
const READ_BATCH_MAX = 256; // frames per wakeup: bounds how long one wakeup starves UDP
const READ_SLAB_BYTES = 1024 * 1024;

/** What the kernel agreed to: 'off', or the offloads in use with the vnet header. */
export interface TunOffload {
  readonly enabled: boolean;
  /** For the start-up line: "on (TSO4, TSO6, checksum)", "off", "off (kernel refused: ...)". */
  readonly description: string;
}

export interface Tun {
  /** The kernel's name for the interface (a `%d` in the requested name is filled in). */
  readonly name: string;
  readonly offload: TunOffload;
  /**
   * Starts reading; `listener` gets every packet the kernel routes into the interface, in batches. The
   * packets are valid during the call only: the next batch reuses their memory.
   */
  onPackets(listener: (packets: Uint8Array[]) => void): void;
  /**
   * Reads what the kernel has queued for the interface now and hands it to the `onPackets` listener as a
   * read's batch, before the event loop would. For a caller that has just written packets: a reply from this
   * host (an echo reply, a TCP ACK, the segments an ACK lets a sender send) is queued by then, as the kernel
   * handles a TUN write in the writer's own system call. Nothing happens before `onPackets`, after `close`, or
   * within the listener's own call (the batch it holds lives in the buffer a read would reuse).
   */
  readBack(): void;
  /** A read failed (e.g. the interface was deleted); reading has stopped. */
  onError(listener: (error: Error) => void): void;
  /** Sends one packet to the kernel; false if it dropped it (queue full, interface down or gone). */
  write(packet: Uint8Array): boolean;
  /** Sends a batch with a single native call; returns how many packets the kernel accepted. */
  writeMany(packets: readonly Uint8Array[]): number;
  /** Frames from the kernel the offload layer dropped, by reason (all 0 without offloads). */
  offloadDrops(): Readonly<OffloadDrops>;
  /** TCP super-segments split from reads (tx) and coalesced for writes (rx); 0 without offloads. */
  superSegments(): { rx: number; tx: number };
  /** Stops reading and closes the descriptor; the kernel removes the (non-persistent) interface. */
  close(): void;
}

export interface TunOptions {
  /** Ask for offloads; the TUN falls back to plain packets when the kernel refuses. Default false. */
  offload?: boolean;
}

// Most to least: TSO needs checksum offload, and with neither the vnet header still carries GRO writes.
const OFFLOAD_CHOICES = [
  [TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6, 'TSO4, TSO6, checksum'],
  [TUN_F_CSUM, 'checksum'],
  [0, 'GRO writes only'],
] as const;

/** Opens the TUN, with a vnet header and the most offloads the kernel accepts when asked. */
function openNative(native: TunAddon, name: string, offload: boolean) {
  if (!offload) return { ...native.open(name, false), offload: { enabled: false, description: 'off' } };
  let opened: { fd: number; name: string };
  try {
    opened = native.open(name, true);
  } catch (error) {
    const reason = (error as Error).message;
    return {
      ...native.open(name, false),
      offload: { enabled: false, description: `off (kernel refused: ${reason})` },
    };
  }
  const [, description] = OFFLOAD_CHOICES.find(([flags]) => native.setOffload(opened.fd, flags) === 0)!;
  return { ...opened, offload: { enabled: true, description: `on (${description})` } };
}

/**
 * Creates (or attaches to) the TUN interface `name`; needs CAP_NET_ADMIN. `native` is the addon, or the addon
 * with other ways to open, read and close (the start-up warm-up's, nodes/warmup.ts).
 */
export function openTun(name: string, options: TunOptions = {}, native = loadAddon<TunAddon>('tun')): Tun {
  const { fd, name: actualName, offload } = openNative(native, name, options.offload ?? false);
  // Looked up once: the warm-up's `native` is another object than the addon, and a lookup per write compiled
  // for its shape would be thrown away at the node's first write.
  const writeNative = native.writeMany;
  const readNative = native.readFrames;
  const splitter = offload.enabled ? new GsoSplitter() : undefined;
  const coalescer = offload.enabled ? new GroCoalescer() : undefined;
  let reader: { stop(): void } | undefined;
  let readBack = (): void => undefined;
  let closed = false;
  let errorListener: (error: Error) => void = () => undefined;

  /** Writes every frame (skipping the ones refused); returns how many packets they carried. */
  const writeFrames = (frames: readonly Uint8Array[], packetsIn?: ArrayLike<number>): number => {
    let accepted = 0;
    for (let start = 0; start < frames.length;) {
      const written = writeNative(fd, frames, start);
      if (packetsIn === undefined) accepted += written;
      else for (let i = start; i < start + written; i++) accepted += packetsIn[i]!;
      start += written + 1;
    }
    return accepted;
  };

  const writeMany = (packets: readonly Uint8Array[]): number => {
    if (closed) return 0;
    if (coalescer === undefined) return writeFrames(packets);
    return writeFrames(coalescer.coalesce(packets), coalescer.packetsPerFrame);
  };

  return {
    name: actualName,
    offload,
    onPackets(listener) {
      if (closed) throw new Error(`TUN ${actualName} is closed`);
      reader?.stop();
      const slab = new Uint8Array(READ_SLAB_BYTES);
      const records = new Int32Array(READ_BATCH_MAX * 2);
      const frames: Uint8Array[] = [];
      const frameViews = new ReusedViews();
      const packets: Uint8Array[] = [];
      let delivering = false;
      const deliver = (count: number) => {
        // Refilled, then cut to length: emptied first, an array gives up its storage and grows it again.
        for (let i = 0; i < count; i++)
          frames[i] = frameViews.view(i, slab, records[2 * i]!, records[2 * i + 1]!);
        frames.length = count;
        let batch = frames;
        if (splitter) {
          splitter.split(frames, packets);
          batch = packets;
        }
        latencyFirst(batch); // pings and other small datagrams do not wait behind bulk TCP
        if (batch.length === 0) return;
        delivering = true;
        try {
          listener(batch);
        } finally {
          delivering = false;
        }
      };
      reader = native.startReading(fd, slab, records, deliver, (message) => {
        reader = undefined;
        readBack = () => undefined;
        errorListener(new Error(message));
      });
      // A failed read-back (the interface gone) is left to the reader's wakeup to report.
      readBack = () => {
        if (delivering) return;
        const count = readNative(fd, slab, records);
        if (count > 0) deliver(count);
      };
    },
    readBack: () => readBack(),
    onError(listener) {
      errorListener = listener;
    },
    write: (packet) => writeMany([packet]) === 1,
    writeMany,
    offloadDrops: () => ({ ...(splitter?.drops ?? noOffloadDrops()) }),
    superSegments: () => ({ rx: coalescer?.superSegments ?? 0, tx: splitter?.superSegments ?? 0 }),
    close() {
      if (closed) return;
      closed = true;
      reader?.stop();
      reader = undefined;
      readBack = () => undefined;
      native.close(fd);
    },
  };
}

export interface InterfaceSettings {
  /** 'ip/prefix' strings, IPv4 or IPv6 (IPv6 added with nodad so it is usable at once). */
  addresses?: readonly string[];
  mtu?: number;
  /** The named network namespace the interface lives in (`ip -n`); default: our own. */
  netns?: string;
}

/** Assigns addresses and MTU with `ip`, then brings the interface up. */
export async function configureInterface(name: string, settings: InterfaceSettings): Promise<void> {
  const inNamespace = (args: string[]) => ip(settings.netns ? ['-n', settings.netns, ...args] : args);
  for (const address of settings.addresses ?? []) {
    const v6 = address.includes(':');
    await inNamespace([v6 ? '-6' : '-4', 'address', 'add', address, 'dev', name, ...(v6 ? ['nodad'] : [])]);
  }
  const mtu = settings.mtu === undefined ? [] : ['mtu', String(settings.mtu)];
  await inNamespace(['link', 'set', 'dev', name, ...mtu, 'up']);
}
