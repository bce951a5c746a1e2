// A Linux TUN interface (IFF_TUN | IFF_NO_PI: every read and write is one bare IP packet) backed by
// the Node-API addon in tun.c. Packets arrive in batches, one callback per event-loop wakeup.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

import { loadAddon } from './addon.js';

interface TunAddon {
  open(name: string): { fd: number; name: string };
  write(fd: number, packet: Uint8Array): number;
  writeMany(fd: number, packets: readonly Uint8Array[]): number;
  close(fd: number): void;
  startReading(
    fd: number,
    onPackets: (packets: Uint8Array[]) => void,
    onError: (message: string) => void,
  ): { stop(): void };
}

export interface Tun {
  /** The kernel's name for the interface (a `%d` in the requested name is filled in). */
  readonly name: string;
  /** Starts reading; `listener` gets every packet the kernel routes into the interface, in batches. */
  onPackets(listener: (packets: Uint8Array[]) => void): void;
  /** A read failed (e.g. the interface was deleted); reading has stopped. */
  onError(listener: (error: Error) => void): void;
  /** Sends one packet to the kernel; false if it dropped it (queue full, interface down or gone). */
  write(packet: Uint8Array): boolean;
  /** Sends a batch with a single native call; returns how many packets the kernel accepted. */
  writeMany(packets: readonly Uint8Array[]): number;
  /** Stops reading and closes the descriptor; the kernel removes the (non-persistent) interface. */
  close(): void;
}

/** Creates (or attaches to) the TUN interface `name`; needs CAP_NET_ADMIN. */
export function openTun(name: string): Tun {
  const native = loadAddon<TunAddon>('tun');
  const { fd, name: actualName } = native.open(name);
  let reader: { stop(): void } | undefined;
  let closed = false;
  let errorListener: (error: Error) => void = () => undefined;

  return {
    name: actualName,
    onPackets(listener) {
      if (closed) throw new Error(`TUN ${actualName} is closed`);
      reader?.stop();
      reader = native.startReading(fd, listener, (message) => {
        reader = undefined;
        errorListener(new Error(message));
      });
    },
    onError(listener) {
      errorListener = listener;
    },
    write(packet) {
      return !closed && native.write(fd, packet) === packet.length;
    },
    writeMany(packets) {
      return closed ? 0 : native.writeMany(fd, packets);
    },
    close() {
      if (closed) return;
      closed = true;
      reader?.stop();
      reader = undefined;
      native.close(fd);
    },
  };
}

const execFileAsync = promisify(execFile);

export interface InterfaceSettings {
  /** 'ip/prefix' strings, IPv4 or IPv6 (IPv6 added with nodad so it is usable at once). */
  addresses?: readonly string[];
  mtu?: number;
  /** The named network namespace the interface lives in (`ip -n`); default: our own. */
  netns?: string;
}

/** Assigns addresses and MTU with `ip`, then brings the interface up. */
export async function configureInterface(name: string, settings: InterfaceSettings): Promise<void> {
  const ip = (args: string[]) => execFileAsync('ip', settings.netns ? ['-n', settings.netns, ...args] : args);
  for (const address of settings.addresses ?? []) {
    const v6 = address.includes(':');
    await ip([v6 ? '-6' : '-4', 'address', 'add', address, 'dev', name, ...(v6 ? ['nodad'] : [])]);
  }
  const mtu = settings.mtu === undefined ? [] : ['mtu', String(settings.mtu)];
  await ip(['link', 'set', 'dev', name, ...mtu, 'up']);
}
