// Views handed out again: a batch's packets lie at the same places in a reused buffer batch after batch (a
// bulk flow's are all full-sized), so a view made for a place and length serves every later packet there.
// The views are as valid as the buffer's contents, which the caller reuses anyway: no view per packet.

export class ReusedViews {
  private readonly views: Array<Uint8Array | undefined>;
  // What each view was last made from: the same array at the same start needs no getter call. A typed
  // array's `buffer` getter is a call into C++ (about 40 ns), and callers pass the same slab each time.
  private readonly sources: Array<Uint8Array | undefined>;
  private readonly starts: number[];

  /**
   * `keys`: how many keys there are, when they go beyond a few thousand. The arrays are then made whole at
   * once: V8 keeps an array first written far past its end as a dictionary, a hash lookup per access. Never
   * empty: an empty array holds small integers until its first view, and the code compiled for the other
   * instances' arrays of objects was thrown away at a new one's first use (a node's first packet).
   */
  constructor(keys = 1) {
    this.views = new Array<Uint8Array | undefined>(Math.max(keys, 1)).fill(undefined);
    this.sources = new Array<Uint8Array | undefined>(Math.max(keys, 1)).fill(undefined);
    this.starts = new Array<number>(Math.max(keys, 1)).fill(0);
  }

  /** bytes[start, start + length), as the view last made for `key` when that one has the same place. */
  view(key: number, bytes: Uint8Array, start: number, length: number): Uint8Array {
    const cached = this.views[key];
    if (cached !== undefined && cached.length === length) {
      if (this.sources[key] === bytes && this.starts[key] === start) return cached;
      if (cached.byteOffset === bytes.byteOffset + start && cached.buffer === bytes.buffer) {
        this.sources[key] = bytes;
        this.starts[key] = start;
        return cached;
      }
    }
    this.sources[key] = bytes;
    this.starts[key] = start;
    return (this.views[key] = bytes.subarray(start, start + length));
  }
}
