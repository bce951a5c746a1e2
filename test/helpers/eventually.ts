// Bounded polling: tests wait for a state, never assert on time. The deadline only turns a hang into a
// failure that names what never happened (and, for a probed value, what was last seen).

export interface PollOptions {
  /** Give up after this long (default 15 s: generous on a loaded 2-core machine). */
  timeoutMs?: number;
  /** Between probes (default 25 ms). */
  everyMs?: number;
}

/** Probes until `done(value)` holds and returns that value. */
export async function settled<T>(
  what: string,
  probe: () => T | Promise<T>,
  done: (value: T) => boolean,
  { timeoutMs = 15_000, everyMs = 25 }: PollOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline) {
      const last = typeof value === 'boolean' ? '' : `; last: ${JSON.stringify(value)}`;
      throw new Error(`timed out waiting for ${what}${last}`);
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Polls until `condition` holds. */
export async function eventually(
  what: string,
  condition: () => boolean | Promise<boolean>,
  options?: PollOptions,
): Promise<void> {
  await settled(what, condition, (ok) => ok, options);
}
