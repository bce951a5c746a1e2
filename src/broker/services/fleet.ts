// The operator's view across regions, nodes and sessions: the state of every node and session by region
// (the broker's fleet gauges in /metrics) and the removal of a region, which must first close the
// sessions in it. Kept apart from regions.ts because it reads sessions, which read regions.
import type { SessionStatus } from '../../lib/api.js';
import type { BrokerContext } from '../context.js';
import { conflict, notFound } from '../errors.js';
import { keys } from '../store/keys.js';
import { getRegion, NODE_STATES, nodeStates, type NodeState } from './regions.js';
import { closeSession, openSessionIds, openSessionStatuses } from './sessions.js';

/** The states the fleet gauges count: a stopped node left on purpose and is not counted. */
type GaugedNodeState = Exclude<NodeState, 'stopped'>;
const GAUGED_NODE_STATES = NODE_STATES.filter((s): s is GaugedNodeState => s !== 'stopped');
/** The statuses an open session can have (closed and expired ones have left their region's index). */
export const OPEN_SESSION_STATUSES: readonly SessionStatus[] = [
  'pending',
  'active',
  'idle',
  'node_lost',
  'expired',
];

export interface FleetCounts {
  /** region → state → nodes; every region has every state, zeros included, so an alert can test `== 0`. */
  nodes: Map<string, Record<GaugedNodeState, number>>;
  /** region → status → open sessions, zeros included. */
  sessions: Map<string, Record<string, number>>;
}

const zeros = <K extends string>(names: readonly K[]) =>
  Object.fromEntries(names.map((n) => [n, 0])) as Record<K, number>;

export async function fleetCounts(ctx: BrokerContext): Promise<FleetCounts> {
  const regions = (await ctx.redis.smembers(keys.regions())).sort();
  const [states, statuses] = await Promise.all([
    Promise.all(regions.map((r) => nodeStates(ctx, r))),
    Promise.all(regions.map((r) => openSessionStatuses(ctx, r))),
  ]);
  const counts: FleetCounts = { nodes: new Map(), sessions: new Map() };
  regions.forEach((region, i) => {
    const nodes = zeros(GAUGED_NODE_STATES);
    for (const state of states[i] ?? []) if (state !== 'stopped') nodes[state]++;
    const sessions = zeros(OPEN_SESSION_STATUSES);
    for (const status of statuses[i] ?? []) sessions[status] = (sessions[status] ?? 0) + 1;
    counts.nodes.set(region, nodes);
    counts.sessions.set(region, sessions);
  });
  return counts;
}

/**
 * Removes a region: refused (409) while nodes of it are live (healthy or draining) unless forced. Its
 * record goes first, so no session is created in it meanwhile; then its open sessions are closed (their
 * peers leave the nodes, their accounts' slots free up); last it leaves the region set the reaper walks.
 */
export async function removeRegion(
  ctx: BrokerContext,
  regionId: string,
  { force }: { force: boolean },
): Promise<{ closedSessions: number }> {
  if (!(await getRegion(ctx, regionId))) throw notFound(`No region '${regionId}'.`);
  const live = (await nodeStates(ctx, regionId)).filter((s) => s === 'healthy' || s === 'draining').length;
  if (live > 0 && !force) {
    throw conflict(
      `Region ${regionId} has ${live} live node(s): stop them first, or force the removal (their sessions are closed).`,
    );
  }
  await ctx.redis.del(keys.region(regionId));
  let closedSessions = 0;
  for (const sessionId of await openSessionIds(ctx, regionId)) {
    const outcome = await closeSession(ctx, regionId, sessionId, { state: 'closed' });
    if (outcome === 'closed') closedSessions++;
    await ctx.redis.zrem(keys.regionExpiry(regionId), sessionId);
  }
  await ctx.redis.srem(keys.regions(), regionId);
  return { closedSessions };
}

/**
 * The fleet gauges in /metrics, read from Redis once per scrape and shared by the three:
 * tunnelbyte_nodes{region,state}, tunnelbyte_sessions{region,status}, tunnelbyte_broker_redis_up.
 * Every broker reports the same fleet (the alert rules in deploy/prometheus take max() over brokers).
 */
export function registerFleetMetrics(ctx: BrokerContext): void {
  let inflight: Promise<FleetCounts | null> | undefined;
  // The three collects start in the same tick of a scrape and await one read.
  const read = () =>
    (inflight ??= fleetCounts(ctx)
      .catch(() => null)
      .finally(() => (inflight = undefined)));
  ctx.metrics.gauge('tunnelbyte_nodes', 'Exit nodes by region and state.', ['region', 'state'], async (g) => {
    const counts = await read();
    g.reset();
    for (const [region, states] of counts?.nodes ?? [])
      for (const state of GAUGED_NODE_STATES) g.set({ region, state }, states[state]);
  });
  ctx.metrics.gauge(
    'tunnelbyte_sessions',
    'Open sessions by region and status.',
    ['region', 'status'],
    async (g) => {
      const counts = await read();
      g.reset();
      for (const [region, statuses] of counts?.sessions ?? [])
        for (const [status, n] of Object.entries(statuses)) g.set({ region, status }, n);
    },
  );
  ctx.metrics.gauge(
    'tunnelbyte_broker_redis_up',
    '1 when this broker could read the fleet from Redis at this scrape, else 0.',
    [],
    async (g) => g.set((await read()) === null ? 0 : 1),
  );
}
