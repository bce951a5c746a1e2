// iperf3 TCP between namespaces, for the benchmarks that measure throughput through a tunnel
// (bench-tunnel, bench-scale-node): one listener per stream in the server namespace (`-1`: it serves one
// test and exits), one client per stream, all at once.
import type { Namespace } from '../test/nodes/netns.js';

export interface IperfStream {
  /** The namespace the client runs in, and the address it binds (its tunnel address). */
  client: Namespace;
  bind: string;
}

export interface IperfOptions {
  /** The namespace of the listeners and the address they bind. */
  server: Namespace;
  address: string;
  streams: readonly IperfStream[];
  seconds: number;
  /** The server sends (`-R`). */
  reverse?: boolean;
  /** Stream i listens on firstPort + i. */
  firstPort?: number;
  /** Called once every listener is up, just before the clients start (a CPU reading, say). */
  onStart?: () => void;
}

export interface IperfResult {
  /** Bytes received, all streams. */
  bytes: number;
  mbitPerSecond: number;
}

interface IperfJson {
  end: { sum_received: { bytes: number; bits_per_second: number } };
}

export async function iperf3({
  server,
  address,
  streams,
  seconds,
  reverse = false,
  firstPort = 5201,
  onStart,
}: IperfOptions): Promise<IperfResult> {
  const listeners = streams.map((_, i) =>
    server.spawn('iperf3', ['-s', '-1', '-B', address, '-p', String(firstPort + i), '--forceflush']),
  );
  await Promise.all(listeners.map((listener) => listener.waitFor('Server listening')));
  onStart?.();
  const outputs = await Promise.all(
    streams.map((stream, i) =>
      // `timeout` bounds a wedged tunnel: iperf3's own -t cannot end a connect that never completes.
      stream.client.exec('timeout', [
        String(seconds + 20),
        'iperf3',
        ...['-c', address, '-B', stream.bind, '-p', String(firstPort + i)],
        ...['-t', String(seconds), '-J', ...(reverse ? ['-R'] : [])],
      ]),
    ),
  );
  await Promise.all(listeners.map((listener) => listener.exited));
  const results = outputs.map(({ stdout }) => (JSON.parse(stdout) as IperfJson).end.sum_received);
  return {
    bytes: results.reduce((sum, r) => sum + r.bytes, 0),
    mbitPerSecond: results.reduce((sum, r) => sum + r.bits_per_second, 0) / 1e6,
  };
}
