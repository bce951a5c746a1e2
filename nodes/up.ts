// `tunnelbyte-node up`: the standalone exit node from a wg-quick file, set up as wg-quick(8) does with
// a userspace implementation: create the interface, assign every Address, set the MTU, bring it up, add
// routes for peer prefixes outside the interface's own subnets, configure the peers, serve UAPI.
import { execFile } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { promisify } from 'node:util';

import type { WgQuickConfig } from '../src/lib/wgquick.js';
import { routesFor, type UpSettings } from './config.js';
import { startDaemon, type Daemon } from './daemon.js';

const execFileAsync = promisify(execFile);

/** Host names in Endpoint lines are resolved once, at start, as wg(8) does at set time. */
async function resolveEndpoint(host: string, port: number): Promise<{ address: string; port: number }> {
  const { address } = await lookup(host);
  return { address, port };
}

export async function up(
  settings: UpSettings,
  config: WgQuickConfig,
  warn: (line: string) => void,
): Promise<Daemon> {
  const iface = config.interface;
  for (const [hooks, key] of [
    [iface.preUp, 'PreUp'],
    [iface.postUp, 'PostUp'],
    [iface.preDown, 'PreDown'],
    [iface.postDown, 'PostDown'],
  ] as const) {
    if (hooks.length > 0) warn(`${key} hooks are not run by tunnelbyte-node`);
  }
  if (iface.dns.length > 0) warn('DNS is ignored: an exit node does not change its own resolvers');

  return startDaemon({
    interfaceName: settings.interfaceName,
    addresses: iface.addresses,
    mtu: iface.mtu,
    privateKey: iface.privateKey,
    listen: { port: iface.listenPort ?? 0 },
    metrics: settings.metrics,
    batchedUdp: settings.batchedUdp,
    offload: settings.offload,
    threads: settings.threads,
    handOver: settings.handOver,
    log: warn,
    configure: async (device, name) => {
      for (const peer of config.peers) {
        device.upsertPeer(peer.publicKey, {
          presharedKey: peer.presharedKey ?? null,
          allowedIps: peer.allowedIps,
          ...(peer.endpoint && { endpoint: await resolveEndpoint(peer.endpoint.host, peer.endpoint.port) }),
          ...(peer.persistentKeepalive !== undefined && {
            persistentKeepaliveSeconds: peer.persistentKeepalive,
          }),
        });
      }
      if (iface.table === 'off') return;
      const { routes, defaults } = routesFor(
        iface.addresses,
        config.peers.flatMap((p) => p.allowedIps),
      );
      for (const route of routes) {
        await execFileAsync('ip', [
          route.includes(':') ? '-6' : '-4',
          'route',
          'replace',
          route,
          'dev',
          name,
        ]);
      }
      for (const route of defaults)
        warn(`not routing ${route} into ${name}: a catch-all needs fwmark policy routing`);
    },
  });
}
