// `tunnelbyte-node up`: the standalone exit node from a wg-quick file, set up as wg-quick(8) does with
// a userspace implementation: create the interface, assign every Address, set the MTU, bring it up, add
// routes for peer prefixes outside the interface's own subnets, configure the peers, serve UAPI.
import { execFile } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { promisify } from 'node:util';

import { Tunnel } from '../crypto/tunnel.js';
import type { WgQuickConfig } from '../src/lib/wgquick.js';
import { routesFor, type UpSettings } from './config.js';
import { Device, secureRandomBytes } from './device.js';
import { NodeMetrics, serveMetrics, type MetricsServer } from './metrics.js';
import { configureInterface, openTun, type Tun } from './tun/index.js';
import { openUdp } from './udp.js';
import { startUapiServer, type UapiServer } from './uapi.js';

const execFileAsync = promisify(execFile);

// wg-quick's fallback when it cannot measure the path MTU: 1500 minus the 80 bytes of IPv6+UDP+WireGuard.
const DEFAULT_MTU = 1420;

export interface RunningNode {
  readonly interfaceName: string;
  readonly listenPort: number;
  readonly uapiPath: string;
  readonly metricsPort?: number;
  /** Resolves when the node stops by itself (socket removed, interface gone); the value is the exit code. */
  readonly stopped: Promise<number>;
  /** Removes the UAPI socket, closes UDP and the interface (the kernel deletes it), stops metrics. */
  close(): Promise<void>;
}

/** Host names in Endpoint lines are resolved once, at start, as wg(8) does at set time. */
async function resolveEndpoint(host: string, port: number): Promise<{ address: string; port: number }> {
  const { address } = await lookup(host);
  return { address, port };
}

export async function up(
  settings: UpSettings,
  config: WgQuickConfig,
  warn: (line: string) => void,
): Promise<RunningNode> {
  const cleanups: Array<() => Promise<void> | void> = [];
  const cleanup = async () => {
    for (const step of cleanups.splice(0).reverse()) await step();
  };
  try {
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

    const tun: Tun = openTun(settings.interfaceName);
    const name = tun.name;
    let tunClosed = false;
    const closeTun = () => {
      if (!tunClosed) tun.close();
      tunClosed = true;
    };
    cleanups.push(closeTun);
    const mtu = iface.mtu ?? DEFAULT_MTU;
    await configureInterface(name, { addresses: iface.addresses, mtu });

    const tunnel = new Tunnel({
      privateKey: iface.privateKey,
      randomBytes: secureRandomBytes,
      wallClockMs: Date.now,
      mtu,
    });
    const metrics = new NodeMetrics({ peers: () => tunnel.peers() });
    const device = await Device.start({
      tunnel,
      privateKey: iface.privateKey,
      packets: { onPackets: (l) => tun.onPackets(l), writeMany: (p) => tun.writeMany(p), close: closeTun },
      openUdp,
      listenPort: iface.listenPort ?? 0,
      metrics,
    });
    cleanups.push(() => device.close());

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

    if (iface.table !== 'off') {
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
    }

    let finish: (code: number) => void = () => undefined;
    const stopped = new Promise<number>((resolve) => (finish = resolve));
    const uapi: UapiServer = await startUapiServer({ name, device, onSocketRemoved: () => finish(0) });
    cleanups.push(() => uapi.close());
    tun.onError(() => finish(1));

    let metricsServer: MetricsServer | undefined;
    if (settings.metrics) {
      metricsServer = await serveMetrics(metrics, settings.metrics.host, settings.metrics.port);
      cleanups.push(() => metricsServer!.close());
    }

    return {
      interfaceName: name,
      listenPort: device.listenPort,
      uapiPath: uapi.path,
      ...(metricsServer && { metricsPort: metricsServer.port }),
      stopped,
      close: cleanup,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
