// The exit side the end-to-end tests share, in one namespace of its own: Redis on its loopback, the broker
// on the namespace's veth address with a `local` region, and `tunnelbyte-node run` enrolled in it (TUN,
// UDP 51820). Runs the built tree (scripts/test builds first).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { PAIR_ADDRESSES, type Namespace, type NetnsHarness, type ProcessHandle } from '../nodes/netns.js';
import { builtProgram } from '../helpers/repo.js';

export const BROKER = builtProgram('src/broker/main.js');
export const NODE = builtProgram('nodes/main.js');
export const CLI = builtProgram('src/cli/main.js');

export const BROKER_HOST = PAIR_ADDRESSES.b.v4;
export const API = `http://${BROKER_HOST}:8080`;
const REDIS_URL = 'redis://127.0.0.1:6379'; // the exit namespace's own loopback
export const NODE_PORT = 51820;

export interface BrokerSide {
  /** `tunnelbyte-broker admin ARGS` on the exit side's Redis; its stdout. */
  admin(...args: string[]): Promise<string>;
  /** Starts `tunnelbyte-node run` enrolled in `local`, with the same key each time; not waited for. */
  spawnNode(): { node: ProcessHandle; nodeInterface: string };
}

/** Redis, the broker and the `local` region, with a node token kept in a file; no node yet. */
export async function startBrokerSide(harness: NetnsHarness, exit: Namespace): Promise<BrokerSide> {
  const redis = exit.spawn('redis-server', [
    ...['--port', '6379', '--bind', '127.0.0.1', '--dir', harness.tempDir()],
    ...['--appendonly', 'yes', '--save', ''],
  ]);
  await redis.waitFor('Ready to accept connections');

  const admin = async (...args: string[]) =>
    (await exit.exec('env', [`REDIS_URL=${REDIS_URL}`, 'node', BROKER, 'admin', ...args])).stdout.trim();
  await admin('region', 'add', 'local', '--name', 'Local', '--country', 'ZZ', '--tiers', 'free,pro,business');
  // Where operators keep it (deploy/): in a file, not on the command line.
  const tokenFile = join(harness.tempDir(), 'node-token');
  writeFileSync(tokenFile, `${await admin('node-token', 'create', '--region', 'local')}\n`, { mode: 0o600 });

  const broker = exit.spawn('node', [BROKER, 'serve'], { REDIS_URL, HOST: BROKER_HOST, PORT: '8080' });
  await broker.waitFor('redis ready');

  const nodeInterface = harness.interfaceName();
  const stateDir = harness.tempDir();
  return {
    admin,
    spawnNode: () => ({
      nodeInterface,
      node: exit.spawn('node', [
        ...[NODE, 'run', '--broker', API, '--token-file', tokenFile, '--region', 'local'],
        ...['--listen', `0.0.0.0:${NODE_PORT}`, '--endpoint', `${BROKER_HOST}:${NODE_PORT}`],
        ...['--interface', nodeInterface, '--state-dir', stateDir, '--drain-timeout', '0'],
      ]),
    }),
  };
}

export interface ExitSide {
  readonly nodeInterface: string;
  readonly nodeId: string;
  /** The node's IPv4 address on its TUN: the pool's gateway, reachable only through a tunnel. */
  readonly gateway: string;
  node: ProcessHandle;
  /** Starts the node again with the same token and key (after it was killed). */
  restartNode(): Promise<ProcessHandle>;
}

/** The broker side and one node, up. */
export async function startExitSide(harness: NetnsHarness, exit: Namespace): Promise<ExitSide> {
  const brokerSide = await startBrokerSide(harness, exit);
  const startNode = async () => {
    const { node, nodeInterface } = brokerSide.spawnNode();
    await node.waitFor(`${nodeInterface} up`);
    return { node, nodeInterface };
  };
  const { node, nodeInterface } = await startNode();
  const addresses = (await exit.exec('ip', ['-o', 'address', 'show', 'dev', nodeInterface])).stdout;
  const side: ExitSide = {
    nodeInterface,
    nodeId: /node (node_\w+)/.exec(node.output())![1]!,
    gateway: /inet (\d+\.\d+\.\d+\.\d+)\//.exec(addresses)![1]!,
    node,
    restartNode: async () => (side.node = (await startNode()).node),
  };
  return side;
}
