// `tunnelbyte-node run` as the namespace tests start it: a broker served on a Unix socket (the filesystem
// is shared, the network is not) reached through a small relay on the node namespace's loopback, so
// nothing touches the host network; the daemon spawned with its run arguments. Runs the built daemon.
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
}

/** Spawns `tunnelbyte-node run` in `ns`, listening on NODE_PORT. */
export function spawnNode(ns: Namespace, args: NodeArgs) {
  return ns.spawn('node', [
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
