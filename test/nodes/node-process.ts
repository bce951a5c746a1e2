// `tunnelbyte-node run` as the namespace tests start it: a broker served on a Unix socket (the filesystem
// is shared, the network is not) reached through a small relay on the node namespace's loopback, so
// nothing touches the host network; the daemon spawned with its run arguments. Runs the built daemon.
// Also used by scripts/bench-scale-node.ts.
import { Agent, createServer, request, type RequestListener } from 'node:http';
import { join } from 'node:path';

import type { Namespace } from './netns.js';
import { builtProgram } from '../helpers/repo.js';

export const DAEMON = builtProgram('nodes/main.js');
export const RELAY_PORT = 8080;
export const NODE_PORT = 51820;
/** The node's own address in the default pool: the kernel inside its namespace answers pings to it. */
export const NODE_GATEWAY = '10.64.0.1';

// Loopback TCP inside the namespace → the broker's Unix socket.
const RELAY = `
const net = require('net');
const [socket, port] = process.argv.slice(1);
net.createServer((c) => {
  const u = net.connect(socket);
  c.pipe(u); u.pipe(c);
  c.on('error', () => u.destroy()); u.on('error', () => c.destroy());
}).listen(Number(port), '127.0.0.1', () => console.log('relay ready'));
`;

/** Starts the relay in `ns`: http://127.0.0.1:RELAY_PORT there reaches the broker at `socketPath`. */
export async function relayBroker(ns: Namespace, socketPath: string): Promise<void> {
  const relay = ns.spawn('node', ['-e', RELAY, socketPath, String(RELAY_PORT)]);
  await relay.waitFor('relay ready');
}

export interface NodeArgs {
  region: string;
  token: string;
  stateDir: string;
  interfaceName: string;
  /** The endpoint the broker hands to clients. */
  endpoint: string;
  egressIp: string;
  extra?: string[];
  broker?: string;
  /** Node's own flags, before the program. */
  nodeFlags?: readonly string[];
}

/** Spawns `tunnelbyte-node run` in `ns`, listening on NODE_PORT. */
export function spawnNode(ns: Namespace, args: NodeArgs) {
  return ns.spawn('node', [
    ...(args.nodeFlags ?? []),
    DAEMON,
    'run',
    '--broker',
    args.broker ?? `http://127.0.0.1:${RELAY_PORT}`,
    '--token',
    args.token,
    '--region',
    args.region,
    '--listen',
    `[::]:${NODE_PORT}`,
    '--endpoint',
    args.endpoint,
    '--interface',
    args.interfaceName,
    '--state-dir',
    args.stateDir,
    '--drain-timeout',
    '60',
    '--egress-ip',
    args.egressIp,
    ...(args.extra ?? []),
  ]);
}

/** A broker app served on a Unix socket, and API calls to it over kept-alive connections. */
export interface SocketBroker {
  readonly socketPath: string;
  api<T>(method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; body: T }>;
  close(): Promise<void>;
}

/** Serves `app` on `broker.sock` in `dir`; at most `inFlight` API calls share the connections. */
export async function serveOnSocket(app: RequestListener, dir: string, inFlight = 16): Promise<SocketBroker> {
  const socketPath = join(dir, 'broker.sock');
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  const agent = new Agent({ keepAlive: true, maxSockets: inFlight });
  return {
    socketPath,
    api: (method, path, token, body) =>
      new Promise((resolve, reject) => {
        const payload = body === undefined ? undefined : JSON.stringify(body);
        const req = request(
          {
            socketPath,
            agent,
            method,
            path,
            headers: {
              ...(token && { authorization: `Bearer ${token}` }),
              ...(payload && {
                'content-type': 'application/json',
                'content-length': Buffer.byteLength(payload),
              }),
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('error', reject);
            res.on('data', (chunk: Buffer) => chunks.push(chunk));
            res.on('end', () =>
              resolve({
                status: res.statusCode!,
                body: JSON.parse(Buffer.concat(chunks).toString() || 'null'),
              }),
            );
          },
        );
        req.on('error', reject);
        req.end(payload);
      }),
    close: async () => {
      agent.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Runs `task` over `items` with at most `inFlight` at once; the results in input order. */
export async function pooled<T, R>(
  items: T[],
  inFlight: number,
  task: (item: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await task(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return out;
}
