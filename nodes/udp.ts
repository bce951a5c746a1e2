// The daemon's UDP transport: one socket for both address families.
//
// Why one dual-stack socket (udp6, ipv6Only false, bound to [::]) rather than wireguard-go's and the
// kernel's two: Node gives each socket its own 'message' path, so one socket means one receive loop
// and one port to bind (no race where v4 gets the port and v6 finds it taken). IPv4 peers appear as
// IPv4-mapped addresses (::ffff:a.b.c.d); the engine sees plain a.b.c.d, so endpoints compare equal
// whether a peer was configured or roamed, and we map back when sending. If the host has no IPv6
// (module absent or disabled), we fall back to a plain udp4 socket.
import { createSocket, type Socket } from 'node:dgram';
import { isIPv4, isIPv6 } from 'node:net';

export interface UdpEndpoint {
  readonly address: string; // numeric IPv4 or IPv6, never IPv4-mapped
  readonly port: number;
}

export interface UdpOptions {
  /** 0 (default) lets the kernel pick; read the result from `port`. */
  port?: number;
  /** Default '::' (all addresses, both families); an IPv4 address binds an IPv4-only socket. */
  host?: string;
  /** Requested socket buffer sizes; the kernel caps them at net.core.{r,w}mem_max. */
  receiveBufferSize?: number;
  sendBufferSize?: number;
}

export interface UdpTransport {
  readonly port: number;
  /** Every received datagram with its normalised source. */
  onDatagram(listener: (datagram: Uint8Array, from: UdpEndpoint) => void): void;
  /** Fire and forget: a datagram the kernel refuses is dropped, as on the wire. */
  send(datagram: Uint8Array, to: UdpEndpoint): void;
  /** Actual buffer sizes the kernel granted (it reports double the usable size). */
  bufferSizes(): { receive: number; send: number };
  close(): Promise<void>;
}

// Large buffers absorb bursts while the single JS thread is busy encrypting.
const DEFAULT_BUFFER_SIZE = 8 * 1024 * 1024;
const MAPPED_PREFIX = '::ffff:';

/** '::ffff:a.b.c.d' → 'a.b.c.d'; every other address unchanged. */
export function normaliseAddress(address: string): string {
  if (
    address.length > MAPPED_PREFIX.length &&
    address.slice(0, MAPPED_PREFIX.length).toLowerCase() === MAPPED_PREFIX
  ) {
    const v4 = address.slice(MAPPED_PREFIX.length);
    if (isIPv4(v4)) return v4;
  }
  return address;
}

/** The address to hand a socket of `family`: IPv4 becomes IPv4-mapped on a dual-stack socket. */
export function socketAddress(address: string, family: 'udp4' | 'udp6'): string | undefined {
  if (family === 'udp6')
    return isIPv4(address) ? MAPPED_PREFIX + address : isIPv6(address) ? address : undefined;
  return isIPv4(address) ? address : undefined;
}

// Addresses are always numeric here; skipping dns.lookup saves a tick per datagram.
function numericLookup(
  address: string,
  _options: unknown,
  callback: (error: Error | null, address: string, family: number) => void,
): void {
  callback(null, address, isIPv6(address) ? 6 : 4);
}

function bind(family: 'udp4' | 'udp6', host: string, port: number): Promise<Socket> {
  return new Promise((resolveBind, reject) => {
    const socket = createSocket({ type: family, ipv6Only: false, lookup: numericLookup });
    // A failed bind leaves the descriptor open: close it, or every retry leaks one.
    socket.once('error', (error) => {
      socket.close();
      reject(error);
    });
    socket.bind({ port, address: host, exclusive: true }, () => {
      socket.removeAllListeners('error');
      resolveBind(socket);
    });
  });
}

const IPV6_UNAVAILABLE = new Set(['EAFNOSUPPORT', 'EADDRNOTAVAIL', 'EPROTONOSUPPORT']);

export async function openUdp(options: UdpOptions = {}): Promise<UdpTransport> {
  const { port = 0, host = '::' } = options;
  let family: 'udp4' | 'udp6' = isIPv4(host) ? 'udp4' : 'udp6';
  let socket: Socket;
  try {
    socket = await bind(family, host, port);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    if (host !== '::' || !IPV6_UNAVAILABLE.has(code)) throw error;
    family = 'udp4';
    socket = await bind(family, '0.0.0.0', port);
  }
  socket.setRecvBufferSize(options.receiveBufferSize ?? DEFAULT_BUFFER_SIZE);
  socket.setSendBufferSize(options.sendBufferSize ?? DEFAULT_BUFFER_SIZE);
  // Errors on an unconnected UDP socket (e.g. a failed send) concern one datagram, never the socket.
  socket.on('error', () => undefined);

  let closed = false;
  const ignoreSendError = () => undefined;
  return {
    port: socket.address().port,
    onDatagram(listener) {
      socket.removeAllListeners('message');
      socket.on('message', (datagram, remote) =>
        listener(datagram, { address: normaliseAddress(remote.address), port: remote.port }),
      );
    },
    send(datagram, to) {
      const address = socketAddress(to.address, family);
      // dgram throws on port 0 or out of range; a bad endpoint is one dropped datagram, not a crash.
      if (closed || address === undefined || !Number.isInteger(to.port) || to.port < 1 || to.port > 65535)
        return;
      socket.send(datagram, to.port, address, ignoreSendError);
    },
    bufferSizes: () => ({ receive: socket.getRecvBufferSize(), send: socket.getSendBufferSize() }),
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      return new Promise((resolveClose) => socket.close(() => resolveClose()));
    },
  };
}
