// A node whose host already routes part of the region's address pool elsewhere (here a 10.97.0.0/24
// client subnet inside the default 10.64.0.0/10) refuses to start with one line naming the route, instead
// of capturing replies to that subnet in its tunnel; with the region given another pool it starts, holds
// that pool's first address, and the broker hands out the pool's addresses. Real broker, Redis and
// `tunnelbyte-node run` in a namespace this test makes; runs the built tree.
import { netnsHarness, type Namespace } from '../nodes/netns.js';
import { startBrokerSide, type BrokerSide } from './exit-side.js';

const STEP_MS = 60_000;
const harness = netnsHarness();
let exit: Namespace;
let side: BrokerSide;

beforeAll(async () => {
  exit = (await harness.pair()).b;
  side = await startBrokerSide(harness, exit);
  // A subnet of this host inside the default pool, as on the host where the silent failure was seen.
  await exit.exec('ip', ['address', 'add', '10.97.0.1/24', 'dev', 'veth0']);
}, STEP_MS);

test(
  '1. the default pool overlaps a route of the host: one line naming it, exit 1, no interface left',
  async () => {
    const { node, nodeInterface } = side.spawnNode();
    expect(await node.exited).toBe(1);
    expect(node.output()).toMatch(
      /^tunnelbyte-node: the address pool 10\.64\.0\.0\/10 overlaps this host's route 10\.97\.0\.0\/24 dev veth0 .*: replies to it would go into the tunnel; give the region another pool \(tunnelbyte-broker admin region update REGION --pool-v4 CIDR\) or move the route\n$/,
    );
    expect((await exit.exec('ip', ['-o', 'link', 'show'])).stdout).not.toContain(nodeInterface);
  },
  STEP_MS,
);

test(
  '2. with the region on another pool the node starts on it, holding the first address of that pool',
  async () => {
    expect(await side.admin('region', 'update', 'local', '--pool-v4', '10.200.0.0/16')).toBe(
      'updated region local',
    );
    const { node, nodeInterface } = side.spawnNode();
    await node.waitFor(`${nodeInterface} up`);
    const addresses = (await exit.exec('ip', ['-o', 'address', 'show', 'dev', nodeInterface])).stdout;
    expect(addresses).toContain('inet 10.200.0.1/16');
    expect(addresses).toContain('inet6 fd64::1/64');
    await node.stop();
  },
  STEP_MS,
);
