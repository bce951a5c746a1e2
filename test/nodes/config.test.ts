import { availableParallelism } from 'node:os';

import fc from 'fast-check';

import {
  checkUpArguments,
  interfaceNameFromFile,
  parseHostPort,
  routesFor,
  threadsWarning,
} from '../../nodes/config.js';

describe('parseHostPort', () => {
  const table: Array<[number, string, { host: string; port: number } | undefined]> = [
    [1, '127.0.0.1:9586', { host: '127.0.0.1', port: 9586 }],
    [2, '[::1]:9586', { host: '::1', port: 9586 }],
    [3, '::1:9586', undefined],
    [4, 'localhost:9586', undefined],
    [5, '127.0.0.1:65536', undefined],
    [6, '127.0.0.1', undefined],
    [7, '[127.0.0.1]:1', { host: '127.0.0.1', port: 1 }],
  ];
  test.each(table)('#%i %s', (_n, text, expected) => {
    const parsed = parseHostPort(text);
    expect(parsed.ok ? parsed.value : undefined).toEqual(expected);
  });

  test('property: never throws', () => {
    fc.assert(fc.property(fc.string(), (text) => void parseHostPort(text)));
  });
});

describe('checkUpArguments', () => {
  test('defaults: tun egress, interface named after the file, batched UDP, offload on, a thread per core, hand-over auto', () => {
    expect(checkUpArguments({ config: '/etc/wireguard/wg0.conf' })).toEqual({
      ok: true,
      value: {
        configFile: '/etc/wireguard/wg0.conf',
        interfaceName: 'wg0',
        egress: 'tun',
        batchedUdp: true,
        offload: true,
        threads: availableParallelism(),
        handOver: 'auto',
      },
    });
  });

  const refusals: Array<[number, Parameters<typeof checkUpArguments>[0], RegExp]> = [
    [1, { config: 'wg0.conf', egress: 'kernel' }, /--egress must be one of tun, netstack/],
    [2, { config: 'a-very-long-interface-name.conf' }, /pass --interface NAME/],
    [3, { config: 'wg0.conf', interface: 'bad name' }, /invalid interface name/],
    [4, { config: 'wg0.conf', metrics: 'nowhere' }, /^--metrics: /],
    [
      5,
      { config: 'wg0.conf', threads: '0' },
      /^--threads \(TB_THREADS\) must be a whole number from 1 to 64, not '0'$/,
    ],
    [
      6,
      { config: 'wg0.conf', threads: '65' },
      /^--threads \(TB_THREADS\) must be a whole number from 1 to 64/,
    ],
    [
      7,
      { config: 'wg0.conf', threads: '1.5' },
      /^--threads \(TB_THREADS\) must be a whole number from 1 to 64/,
    ],
    [
      8,
      { config: 'wg0.conf', threads: 'two' },
      /^--threads \(TB_THREADS\) must be a whole number from 1 to 64/,
    ],
    [9, { config: 'wg0.conf', threads: '' }, /^--threads \(TB_THREADS\) must be a whole number from 1 to 64/],
    [
      10,
      { config: 'wg0.conf', threads: '-1' },
      /^--threads \(TB_THREADS\) must be a whole number from 1 to 64/,
    ],
    [
      11,
      { config: 'wg0.conf', threads: ' 2' },
      /^--threads \(TB_THREADS\) must be a whole number from 1 to 64/,
    ],
  ];
  test.each(refusals)('refusal #%i', (_n, args, message) => {
    const checked = checkUpArguments(args);
    expect(checked.ok ? '' : checked.message).toMatch(message);
  });

  test('explicit interface and metrics', () => {
    const checked = checkUpArguments({
      config: 'x',
      interface: 'tb0',
      egress: 'netstack',
      metrics: '[::1]:0',
      batch: 'off',
      offload: 'off',
      threads: '3',
      handOver: 'bulk',
    });
    expect(checked).toEqual({
      ok: true,
      value: {
        configFile: 'x',
        interfaceName: 'tb0',
        egress: 'netstack',
        metrics: { host: '::1', port: 0 },
        batchedUdp: false,
        offload: false,
        threads: 3,
        handOver: 'bulk',
      },
    });
  });

  test('interfaceNameFromFile strips only .conf', () => {
    expect(interfaceNameFromFile('dir/exit.node.conf')).toEqual({ ok: true, value: 'exit.node' });
  });
});

describe('routesFor', () => {
  test('prefixes outside the interface subnets are routed; catch-alls are set apart', () => {
    expect(
      routesFor(
        ['10.77.0.1/24', 'fd77::1/64'],
        [
          '10.77.0.2/32',
          '10.77.0.0/23',
          '10.200.0.9/16',
          'fd77::2/128',
          'fd78::/64',
          '0.0.0.0/0',
          '::/0',
          '10.200.0.0/16',
        ],
      ),
    ).toEqual({ routes: ['10.77.0.0/23', '10.200.0.0/16', 'fd78::/64'], defaults: ['0.0.0.0/0', '::/0'] });
  });
});

describe('threadsWarning', () => {
  // [n, threads, cores, warning]: silent up to the cores; above them one line naming both and the cost.
  const table: Array<[number, number, number, string | undefined]> = [
    [1, 1, 2, undefined],
    [2, 2, 2, undefined],
    [3, 2, 8, undefined],
    [
      4,
      3,
      2,
      "--threads (TB_THREADS) 3 is more than this machine's 2 cores: threads beyond the cores add no speed, only start-up time and memory (about 0.3 CPU-seconds and 33 MB each)",
    ],
    [5, 64, 2, expect.stringMatching(/^--threads \(TB_THREADS\) 64 is more than this machine's 2 cores: /)],
  ];
  test.each(table)('#%i: %i threads on %i cores', (_n, threads, cores, warning) => {
    expect(threadsWarning(threads, cores)).toEqual(warning);
  });

  test('1 to 64 threads stay valid whatever the cores', () => {
    expect(checkUpArguments({ config: 'wg0.conf', threads: '64' })).toMatchObject({ ok: true });
  });
});
