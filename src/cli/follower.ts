// Following a session from this machine (`connect --up --follow`, `follow`): GET /v1/sessions/{id} every
// few seconds; when the broker moves the session to another node of its region (its node was lost), the
// peer on the local interface is swapped for the new node (wgtools.ts), so traffic resumes without the
// user acting. One line per event; broker errors are retried with backoff. Follow ends when the session
// does (closed, expired, gone), or at Ctrl-C/SIGTERM; what happens to the interface then is the caller's
// (commands/sessions.ts), which knows whether it brought the interface up.
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError, NetworkError, RequestAborted, type Session } from '../lib/api-client.js';
import type { Context } from './context.js';
import { CliError, describeError, EXIT, type ExitCode, type StopSignal } from './exit.js';
import { interfacePeers, setEndpoint, swapPeer, type InterfacePeer } from './wgtools.js';

export const DEFAULT_INTERVAL_S = 5;
/**
 * A lost node's sessions read node_lost until the broker moves them, within one reaper round (5 s at
 * most by default); still node_lost after this many reads in a row (a minute at the default interval),
 * no node had room and the session is over.
 */
const NODE_LOST_READS = 12;
/** Backoff on broker errors doubles the interval up to this. */
const MAX_BACKOFF_MS = 60_000;

export interface FollowTarget {
  sessionId: string;
  interfaceName: string;
  /** The `wg` program. */
  wg: string;
  /** Seconds between reads of the session. */
  intervalS: number;
  /** What Ctrl-C does, for the first line (e.g. "takes the interface down and closes the session"). */
  onStop: string;
  /** Called once the interface goes through the session's new node. */
  afterMove?: (s: Session) => void;
}

export type FollowEnd =
  | { kind: 'stopped'; signal: StopSignal }
  /** The session ended; `line` says how, `exitCode` 0 when its owner closed it. */
  | { kind: 'ended'; line: string; exitCode: ExitCode };

/** The node the interface's peer is, as the broker named it (the endpoint as given, not as resolved). */
interface Applied {
  publicKey: string;
  endpoint: string;
}

const STATUS_NOTES: Partial<Record<Session['status'], string>> = {
  pending: 'pending: waiting for the first handshake with its node',
  active: 'active',
  idle: 'idle: no handshake for 3 minutes (the tunnel is up, nothing crossed it)',
};

/** How a session that is over ended, or undefined while it runs. */
function ending(s: Session): { line: string; exitCode: ExitCode } | undefined {
  if (s.status === 'closed' && s.closed_reason === 'quota_exhausted') {
    return {
      line: `session ${s.id} closed: the account's byte quota is used up; see \`tunnelbyte usage\` or \`tunnelbyte upgrade\``,
      exitCode: EXIT.limited,
    };
  }
  if (s.status === 'closed') return { line: `session ${s.id} closed`, exitCode: EXIT.ok };
  if (s.status === 'expired') {
    return {
      line: `session ${s.id} expired at ${s.expires_at}; run \`tunnelbyte connect\` for a new one`,
      exitCode: EXIT.error,
    };
  }
  return undefined;
}

/**
 * Broker failures worth retrying: it is unreachable, down, overloaded or rate-limiting us; anything else
 * (a refusal, a local failure such as the interface's) is final.
 */
const transient = (err: unknown) =>
  (err instanceof NetworkError && err.refused === undefined) ||
  (err instanceof ApiError && (err.status === 429 || err.status >= 500 || err.error === 'bad_response'));

/** One event of following: a timestamped line on stdout, or with --json one JSON object per line. */
export function followEvent(
  ctx: Context,
  sessionId: string,
  name: string,
  human: string,
  detail: Record<string, unknown> = {},
): void {
  const at = new Date().toISOString();
  if (ctx.json)
    ctx.io.stdout.write(`${JSON.stringify({ event: name, session: sessionId, at, ...detail })}\n`);
  else ctx.io.stdout.write(`${at.slice(11, 19)}Z ${human}\n`);
}

class Follower {
  private applied: Applied | undefined;
  private status: Session['status'] | undefined;
  private failures = 0;
  /** Reads in a row that found the session node_lost. */
  private lostReads = 0;
  /** The last failure to point the interface at the session's node, said once. */
  private moveFailure: string | undefined;

  constructor(
    private readonly ctx: Context,
    private readonly target: FollowTarget,
  ) {}

  private event(name: string, human: string, detail: Record<string, unknown> = {}): void {
    followEvent(this.ctx, this.target.sessionId, name, human, detail);
  }

  private get stopSignal(): StopSignal | undefined {
    return this.ctx.stoppedBy;
  }

  async run(): Promise<FollowEnd> {
    const { sessionId, interfaceName, intervalS, onStop } = this.target;
    let first = true;
    for (;;) {
      let wait = intervalS * 1000;
      try {
        const s: Session = await this.ctx.authed().session(sessionId);
        this.recovered();
        if (first) {
          await this.adopt(s);
          this.event(
            'following',
            `following session ${s.id} through ${interfaceName}, node ${s.node.id} (${s.node.endpoint}); Ctrl-C ${onStop}`,
            { interface: interfaceName, node: s.node, status: s.status },
          );
          first = false;
        }
        const end = ending(s);
        if (end) return { kind: 'ended', ...end };
        const lost = await this.follow(s);
        if (lost) return lost;
      } catch (err) {
        if (err instanceof RequestAborted || this.stopSignal) return this.stopped();
        if (err instanceof ApiError && err.status === 404) {
          return {
            kind: 'ended',
            line: `session ${sessionId} not found (closed sessions are kept up to 7 days); see \`tunnelbyte sessions\``,
            exitCode: EXIT.error,
          };
        }
        // The first read too: it comes right after `wg-quick up` changed this machine's routes, when a
        // connection kept alive from before may be dropped on its way out.
        if (!transient(err)) throw err;
        wait = this.backoff(err, wait);
      }
      try {
        await sleep(wait, undefined, this.ctx.io.interrupt ? { signal: this.ctx.io.interrupt } : {});
      } catch {
        return this.stopped();
      }
    }
  }

  private stopped(): FollowEnd {
    return { kind: 'stopped', signal: this.stopSignal ?? 'SIGINT' };
  }

  /**
   * Finds the interface's peer for the session. A peer for another node is the session's old node (it
   * moved while nobody followed it): it is swapped at the first turn of follow().
   */
  private async adopt(s: Session): Promise<void> {
    const peers = await this.peers();
    if (peers.some((p) => p.publicKey === s.node.public_key)) {
      this.applied = { publicKey: s.node.public_key, endpoint: s.node.endpoint };
    } else if (peers.length === 1) {
      this.applied = { publicKey: peers[0]!.publicKey, endpoint: '' };
    } else {
      throw new CliError(
        `interface ${this.target.interfaceName} has ${peers.length === 0 ? 'no peer' : "no peer for the session's node"}: is it the interface of session ${s.id}? (--interface)`,
      );
    }
  }

  private peers(): Promise<InterfacePeer[]> {
    return interfacePeers(this.ctx, this.target.wg, this.target.interfaceName);
  }

  /** One read of the session acted on; the end of following when the session is lost for good. */
  private async follow(s: Session): Promise<FollowEnd | undefined> {
    const applied = this.applied!;
    if (s.node.public_key !== applied.publicKey || s.node.endpoint !== applied.endpoint) {
      await this.move(s, applied);
    }
    this.lostReads = s.status === 'node_lost' ? this.lostReads + 1 : 0;
    if (this.lostReads >= NODE_LOST_READS) {
      return {
        kind: 'ended',
        line: `session ${s.id} is still node_lost: no other node in ${s.region} had room for it; run \`tunnelbyte connect\` again`,
        exitCode: EXIT.unavailable,
      };
    }
    if (s.status === this.status) return undefined;
    this.status = s.status;
    if (s.status === 'node_lost') {
      this.event(
        'node_lost',
        `node ${s.node.id} is lost: the broker moves the session to another node of ${s.region} with room; ` +
          'if none has, it stays node_lost: then run `tunnelbyte connect` again',
        { node: s.node },
      );
    } else this.event('status', `session ${STATUS_NOTES[s.status] ?? s.status}`, { status: s.status });
    return undefined;
  }

  /**
   * Points the interface at the session's node: the old node's peer swapped for the new one's, or only
   * the endpoint when the node kept its key. A failure is said and tried again at the next read.
   */
  private async move(s: Session, applied: Applied): Promise<void> {
    const { interfaceName, wg } = this.target;
    const sameNode = s.node.public_key === applied.publicKey;
    try {
      if (sameNode) {
        await setEndpoint(this.ctx, wg, interfaceName, s.node.public_key, s.node.endpoint);
      } else {
        const old = (await this.peers()).find((p) => p.publicKey === applied.publicKey);
        if (!old) throw new CliError(`its peer for node ${applied.publicKey} is gone`);
        await swapPeer(this.ctx, wg, interfaceName, old, {
          publicKey: s.node.public_key,
          endpoint: s.node.endpoint,
        });
      }
    } catch (err) {
      const line =
        `tunnelbyte: ${interfaceName} could not follow the session to node ${s.node.id} (${s.node.endpoint}): ` +
        `${describeError(err).line}; trying again at each read\n`;
      if (line !== this.moveFailure) this.ctx.io.stderr.write(line);
      this.moveFailure = line;
      return;
    }
    this.moveFailure = undefined;
    this.applied = { publicKey: s.node.public_key, endpoint: s.node.endpoint };
    if (sameNode) {
      this.event('endpoint', `node ${s.node.id} is now at ${s.node.endpoint}; ${interfaceName} follows`, {
        node: s.node,
      });
      return;
    }
    this.target.afterMove?.(s);
    const when = s.moved_at ? ` at ${s.moved_at}` : '';
    this.event(
      'moved',
      `session moved${when} to node ${s.node.id} (${s.node.endpoint}); ${interfaceName} now goes through it`,
      { node: s.node, moved_at: s.moved_at },
    );
  }

  /** The wait before the next read after a failed one, said once per kind of failure. */
  private backoff(err: unknown, intervalMs: number): number {
    this.failures++;
    const retryAfterMs = err instanceof ApiError && err.retryAfter !== undefined ? err.retryAfter * 1000 : 0;
    const wait = Math.max(Math.min(intervalMs * 2 ** this.failures, MAX_BACKOFF_MS), retryAfterMs);
    // The broker's own retry hint is taken into the wait above, so it is not repeated.
    const why = describeError(err).line.replace(/; retry in \d+ s$/, '');
    this.ctx.io.stderr.write(
      `tunnelbyte: reading the session failed: ${why}; retrying in ${Math.ceil(wait / 1000)} s\n`,
    );
    return wait;
  }

  private recovered(): void {
    if (this.failures > 0) this.event('broker', 'the broker answers again');
    this.failures = 0;
  }
}

/** Follows the session until it ends or a signal stops it (see FollowEnd). */
export function followSession(ctx: Context, target: FollowTarget): Promise<FollowEnd> {
  // Stopping must go through the cleanup, for SIGTERM (systemd, kill) as for Ctrl-C.
  ctx.io.catchTerminate?.();
  return new Follower(ctx, target).run();
}
