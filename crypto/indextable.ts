// The receiver-index table (§6): a map from the 32-bit indices we hand out to the handshake or keypair they
// name. Indices are uniformly random, so an observer learns nothing from them, and retried until unused,
// as wireguard-go's indextable.go. A handshake's index is re-pointed to the keypair it derives: the peer
// keeps addressing us by the same number.

// A few hundred thousand entries fill under 0.01% of the space: this many used draws in a row means the
// injected random source is broken.
const MAX_DRAWS = 1000;

// Indices are keyed as signed 32-bit integers (index | 0, the same 32 bits): V8 keeps those as small integers,
// where an unsigned index above 2^31 would be a heap number allocated for every lookup of a packet's index.
export class IndexTable<E> {
  private readonly entries = new Map<number, E>();
  // The last index found and its entry: a bulk flow's messages all name one index, and comparing it is
  // cheaper than the Map's hash lookup. Forgotten whenever that index changes.
  private lastIndex = 0;
  private lastEntry: E | undefined;

  constructor(private readonly randomBytes: (length: number) => Uint8Array) {}

  get size(): number {
    return this.entries.size;
  }

  /** Stores an entry under a new, uniformly random, unused index and returns that index. */
  allocate(entry: E): number {
    for (let draw = 0; draw < MAX_DRAWS; draw++) {
      const bytes = this.randomBytes(4);
      if (bytes.length < 4) break;
      const index = (bytes[0]! | (bytes[1]! << 8) | (bytes[2]! << 16) | (bytes[3]! << 24)) >>> 0;
      if (!this.entries.has(index | 0)) {
        this.entries.set(index | 0, entry);
        return index;
      }
    }
    throw new Error('index table: the injected randomBytes keeps returning used (or too few) bytes');
  }

  get(index: number): E | undefined {
    const key = index | 0;
    if (key === this.lastIndex && this.lastEntry !== undefined) return this.lastEntry;
    const entry = this.entries.get(key);
    this.lastIndex = key;
    this.lastEntry = entry;
    return entry;
  }

  delete(index: number): boolean {
    if ((index | 0) === this.lastIndex) this.lastEntry = undefined;
    return this.entries.delete(index | 0);
  }

  /** Points an allocated index at a new entry (handshake → keypair); false if the index is not in use. */
  repoint(index: number, entry: E): boolean {
    if (!this.entries.has(index | 0)) return false;
    this.entries.set(index | 0, entry);
    if ((index | 0) === this.lastIndex) this.lastEntry = entry;
    return true;
  }
}
