// `tunnelbyte-node up`: the standalone exit node from a wg-quick file, set up as wg-quick(8) does with
// a userspace implementation: create the interface, assign every Address, set the MTU, bring it up, add
// routes for peer prefixes outside the interface's own subnets, configure the peers, serve UAPI.
import { lookup } from 'node:dns/promises';

import { formatEndpoint } from '../src/lib/endpoint.js';
import { keyToBase64 } from '../src/lib/wgkey.js';
import type { WgQuickConfig, WgQuickPeer } from '../src/lib/wgquick.js';
import { routesFor, type UpSettings } from './config.js';
import { startDaemon, type Daemon } from './daemon.js';
import { ip } from './ip.js';

/** Host names in Endpoint lines are resolved once, at start, as wg(8) does at set time. */
async function resolveEndpoint(peer: WgQuickPeer): Promise<{ address: string; port: number } | undefined> {
  if (peer.endpoint === undefined) return undefined;
  const { host, port } = peer.endpoint;
  try {
    return { address: (await lookup(host)).address, port };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new Error(
      `Endpoint ${formatEndpoint(peer.endpoint)} of peer ${keyToBase64(peer.publicKey)}: cannot resolve ${host} (${code})`,
    );
  }
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
  if (iface.fwMark) warn('FwMark is ignored: tunnelbyte-node cannot mark its UDP socket');
  if (iface.saveConfig) warn('SaveConfig is ignored: tunnelbyte-node never writes the file back');

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
        const endpoint = await resolveEndpoint(peer);
        device.upsertPeer(peer.publicKey, {
          presharedKey: peer.presharedKey ?? null,
          allowedIps: peer.allowedIps,
          ...(endpoint && { endpoint }),
          ...(peer.persistentKeepalive !== undefined && {
            persistentKeepaliveSeconds: peer.persistentKeepalive,
          }),
        });
      }
      await addRoutes(config, name, warn);
    },
  });
}

/**
 * The peers' routes as wg-quick adds them: with `Table = auto` (the default) in the main table, but for
 * the prefixes the interface's own subnets cover, and a catch-all only said (it needs fwmark policy
 * routing); with a table named, every prefix there, catch-alls too; with `Table = off`, none.
 */
async function addRoutes(config: WgQuickConfig, name: string, warn: (line: string) => void): Promise<void> {
  const table = config.interface.table ?? 'auto';
  if (table === 'off') return;
  const allowedIps = config.peers.flatMap((p) => p.allowedIps);
  const { routes, defaults } =
    table === 'auto'
      ? routesFor(config.interface.addresses, allowedIps)
      : { routes: [...new Set(allowedIps)], defaults: [] };
  const inTable = table === 'auto' ? [] : ['table', table];
  for (const route of routes) {
    await ip([route.includes(':') ? '-6' : '-4', 'route', 'replace', route, 'dev', name, ...inTable]);
  }
  for (const route of defaults)
    warn(`not routing ${route} into ${name}: a catch-all needs fwmark policy routing`);
}
