// regions, usage, ip: what the service offers, what this account used, who held an exit address.
import type { Command } from 'commander';
import type { Act, Action } from '../context.js';
import { bytes, fields, orDash, table } from '../format.js';

const regions: Action<[]> = async (ctx) => {
  const result = await ctx.spin('Fetching regions', ctx.client().regions());
  const rows = result.regions.map((r) => [
    r.id,
    r.name,
    r.country,
    r.status,
    String(r.nodes),
    `${Math.round(r.load * 100)}%`,
    r.tiers.join(','),
  ]);
  const human =
    rows.length === 0
      ? 'No regions yet.\n'
      : table(['id', 'name', 'country', 'status', 'nodes', 'load', 'tiers'], rows);
  ctx.print(human, result);
};

const usage: Action<[]> = async (ctx) => {
  const u = await ctx.spin('Fetching usage', ctx.authed().usage());
  ctx.print(
    fields([
      ['tier', u.tier],
      ['period', `${u.period.start} → ${u.period.end}`],
      ['bytes', `${bytes(u.bytes.used)} of ${bytes(u.bytes.limit)}`],
      ['sessions', `${u.sessions.active} active of ${u.sessions.limit}, ${u.sessions.created} created`],
      ['requests', `${u.requests.limit_per_minute} per minute`],
    ]),
    u,
  );
};

const ip: Action<[string, { at?: string }]> = async (ctx, addr, options) => {
  const result = await ctx.spin('Looking up', ctx.client().ip(addr, options.at));
  // Without --at the broker answers about now, so the sentence is in the present tense.
  const [verb, when] = options.at ? ['was', ` at ${options.at}`] : ['is', ''];
  const human = result.exit
    ? `${result.ip} ${verb} a tunnelbyte exit${when}: region ${result.region}, node ${result.node}, ` +
      `first seen ${orDash(result.first_seen)}, last seen ${orDash(result.last_seen)}\n`
    : `${result.ip} ${verb} not a tunnelbyte exit address${when}\n`;
  ctx.print(human, result);
};

export function registerInfo(program: Command, act: Act): void {
  program.command('regions').description('list exit regions').action(act(regions));
  program.command('usage').description('show this period’s usage and tier limits').action(act(usage));
  program
    .command('ip')
    .description('tell whether an address is (or was) a tunnelbyte exit, for abuse desks')
    .argument('<addr>', 'IPv4 or IPv6 address')
    .option('--at <time>', 'RFC 3339 time: who held it then')
    .action(act(ip));
}
