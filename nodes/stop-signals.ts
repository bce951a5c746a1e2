// SIGTERM and SIGINT for the daemon's commands, caught from the moment a command starts to create anything.
// Node's default action ends the process where it stands: one that was part-way up, or just up with its own
// handlers not yet in place, left its UAPI socket (and with --nat its nftables table) behind.

const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

/** The stop signals a command has received, and who hears the next ones. */
export class StopSignals {
  private received = 0;
  private listener: (() => void) | undefined;
  private readonly heard = () => {
    this.received++;
    this.listener?.();
  };

  constructor() {
    for (const signal of STOP_SIGNALS) process.on(signal, this.heard);
  }

  /** How many have arrived so far. */
  get count(): number {
    return this.received;
  }

  /** From now on `listener` hears each one (in place of the last listener); undefined: they are only counted. */
  listen(listener: (() => void) | undefined): void {
    this.listener = listener;
  }

  /** Stops catching them. */
  close(): void {
    for (const signal of STOP_SIGNALS) process.off(signal, this.heard);
  }
}
