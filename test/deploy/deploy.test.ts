// deploy/: the files an operator copies. The systemd units pass `systemd-analyze verify` without a single
// warning (an unknown or misspelt key is only a warning there, so any output fails); the Prometheus
// configuration, alert rules and the rules' own unit tests pass promtool (Debian's prometheus package,
// installed by scripts/test), or, where promtool is missing, parse as YAML with the expected alerts.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const DEPLOY = fileURLToPath(new URL('../../deploy/', import.meta.url));
const PROMETHEUS = join(DEPLOY, 'prometheus');

function run(command: string, args: string[], cwd?: string) {
  return new Promise<{ code: number; output: string }>((resolve) => {
    execFile(command, args, { cwd }, (error, stdout, stderr) =>
      resolve({
        code: error ? (typeof error.code === 'number' ? error.code : -1) : 0,
        output: stdout + stderr,
      }),
    );
  });
}

const available = async (command: string) => (await run('sh', ['-c', `command -v ${command}`])).code === 0;

describe('systemd units', () => {
  const units = readdirSync(join(DEPLOY, 'systemd')).filter((f) => f.endsWith('.service'));

  test('1. there is one for the broker and one for the node', () => {
    expect(units.sort()).toEqual(['tunnelbyte-broker.service', 'tunnelbyte-node.service']);
  });

  test.each(units)('2. %s passes systemd-analyze verify with no warning', async (unit) => {
    // verify checks that ExecStart's program exists: the units name Debian's /usr/bin/node, so on a
    // host whose node lives elsewhere the copy names that one instead.
    const dir = mkdtempSync(join(tmpdir(), 'tb-units-'));
    const text = readFileSync(join(DEPLOY, 'systemd', unit), 'utf8').replaceAll(
      '/usr/bin/node ',
      `${process.execPath} `,
    );
    writeFileSync(join(dir, unit), text);
    const result = await run('systemd-analyze', ['verify', join(dir, unit)]);
    expect(result).toEqual({ code: 0, output: '' });
  });

  test('3. the node runs as its own user with CAP_NET_ADMIN alone, the token out of its command line', () => {
    const text = readFileSync(join(DEPLOY, 'systemd/tunnelbyte-node.service'), 'utf8');
    for (const line of [
      'User=tunnelbyte-node',
      'AmbientCapabilities=CAP_NET_ADMIN',
      'CapabilityBoundingSet=CAP_NET_ADMIN',
      'DeviceAllow=/dev/net/tun rw',
      'RuntimeDirectory=wireguard',
      'LoadCredential=node-token:/etc/tunnelbyte/node-token',
    ])
      expect(text.split('\n')).toContain(line);
    expect(text).toMatch(/^ExecStartPre=\+\/usr\/sbin\/sysctl .*net\.ipv4\.ip_forward=1/m);
    expect(text).toContain('--token-file ${CREDENTIALS_DIRECTORY}/node-token');
    expect(text).not.toMatch(/--token\s/);
  });
});

describe('Prometheus', () => {
  const ALERTS = [
    'TunnelbyteRegionDown',
    'TunnelbyteNodeLost',
    'TunnelbyteSessionsLost',
    'TunnelbyteRedisUnreachable',
    'TunnelbyteBrokerDown',
    'TunnelbyteNodeDroppingDatagrams',
  ];

  test('1. the rules, the scrape config and the rules unit tests pass promtool (or parse, without it)', async () => {
    if (await available('promtool')) {
      for (const args of [
        ['check', 'rules', 'tunnelbyte-rules.yml'],
        ['check', 'config', 'prometheus.yml'],
        ['test', 'rules', 'tunnelbyte-rules.test.yml'],
      ]) {
        const result = await run('promtool', args, PROMETHEUS);
        expect([args, result.code, result.output]).toEqual([args, 0, expect.stringContaining('SUCCESS')]);
      }
    } else {
      const config = parse(readFileSync(join(PROMETHEUS, 'prometheus.yml'), 'utf8')) as {
        scrape_configs: { job_name: string }[];
      };
      expect(config.scrape_configs.map((c) => c.job_name)).toEqual(['tunnelbyte-broker', 'tunnelbyte-node']);
    }
  });

  test("2. the alerts: region down, node lost, sessions lost, Redis unreachable, broker down on the broker's metrics; a node dropping datagrams on its own", () => {
    const rules = parse(readFileSync(join(PROMETHEUS, 'tunnelbyte-rules.yml'), 'utf8')) as {
      groups: { rules: { alert: string; expr: string }[] }[];
    };
    const all = rules.groups.flatMap((g) => g.rules);
    expect(all.map((r) => r.alert)).toEqual(ALERTS);
    expect(all[0]!.expr).toContain('tunnelbyte_nodes{state="healthy"}');
    expect(all[1]!.expr).toContain('tunnelbyte_nodes{state="lost"}');
    expect(all[2]!.expr).toContain('tunnelbyte_broker_sessions_failed_over_total{outcome="lost"}');
    expect(all[3]!.expr).toContain('tunnelbyte_broker_redis_up');
    expect(all[5]!.expr).toContain('tunnelbyte_node_udp_receive_drops_total');
  });
});
