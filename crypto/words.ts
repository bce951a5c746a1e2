// 32-bit little-endian words over byte buffers, for the hot paths: the ciphers (aead.ts, poly1305.ts) and message parsing.

/**
 * Typed-array word views read and write little-endian only on a little-endian host. Words are signed
 * (Int32Array): the JIT keeps them in 32-bit registers, where unsigned words above 2^31 would become doubles. */
export const HOST_IS_LITTLE_ENDIAN = new Uint8Array(Int32Array.of(1).buffer)[0] === 1;

/** The little-endian 32-bit word at b[o .. o+4), as a signed 32-bit integer (as an Int32Array holds it). */
export const readWord = (b: Uint8Array, o: number): number =>
  b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24);

// %TypedArray%.prototype's own byteOffset and buffer getters, called directly. A property read `bytes.buffer`
// takes its feedback from every array that ever reached it: plain, Buffer, secret-marked (secret.ts gives those
// their own prototype), SharedArrayBuffer-backed, so on the node's hot path it became a generic property
// lookup per call; the getters check only that their receiver is a typed array.
const TYPED_ARRAY_PROTOTYPE: object = Object.getPrototypeOf(Uint8Array.prototype);
const typedArrayGetter = (name: string) =>
  Object.getOwnPropertyDescriptor(TYPED_ARRAY_PROTOTYPE, name)!.get as (this: Uint8Array) => never;
const BYTE_OFFSET = typedArrayGetter('byteOffset');
const BUFFER = typedArrayGetter('buffer');
export const byteOffsetOf = (bytes: Uint8Array): number => BYTE_OFFSET.call(bytes);
export const bufferOf = (bytes: Uint8Array): ArrayBufferLike => BUFFER.call(bytes);

/**
 * Int32Arrays over the whole of the last two ArrayBuffers seen: callers that reuse their packet buffers (the
 * node does) get word access without a new view per packet, also when one cipher alternates between two
 * buffers (plaintext and ciphertext). The last two arrays asked about are remembered as well: the `buffer`
 * getter is a call into C++ (about 40 ns), and a packet's MAC and its ChaCha20 ask about the same arrays
 * (aead.ts shares one WordView between them).
 */
export class WordView {
  private recent: ArrayBufferLike | undefined;
  private recentWords: Int32Array<ArrayBufferLike> = new Int32Array(0);
  private older: ArrayBufferLike | undefined;
  private olderWords: Int32Array<ArrayBufferLike> = new Int32Array(0);
  // The last two arrays asked about: their words (undefined: unaligned) and word index.
  private bytesA: Uint8Array | undefined;
  private wordsA: Int32Array | undefined;
  private baseA = 0;
  private bytesB: Uint8Array | undefined;
  private wordsB: Int32Array | undefined;
  private baseB = 0;
  /** The word index of the last array's first byte (its byteOffset / 4), valid after `of` returned words. */
  base = 0;

  /**
   * Words over the buffer under `bytes` (word i is bytes.buffer[4i .. 4i+4)), or undefined when `bytes` does
   * not start on a word boundary or the host is big-endian: then the caller reads bytes.
   */
  of(bytes: Uint8Array): Int32Array | undefined {
    if (bytes === this.bytesA) {
      this.base = this.baseA;
      return this.wordsA;
    }
    if (bytes === this.bytesB) {
      this.base = this.baseB;
      return this.wordsB;
    }
    const words = this.lookUp(bytes);
    this.bytesB = this.bytesA;
    this.wordsB = this.wordsA;
    this.baseB = this.baseA;
    this.bytesA = bytes;
    this.wordsA = words;
    this.baseA = this.base;
    return words;
  }

  private lookUp(bytes: Uint8Array): Int32Array | undefined {
    const byteOffset = byteOffsetOf(bytes);
    if (!HOST_IS_LITTLE_ENDIAN || byteOffset % 4 !== 0) return undefined;
    this.base = byteOffset >>> 2;
    const buffer = bufferOf(bytes);
    if (buffer === this.recent) return this.recentWords;
    const words =
      buffer === this.older ? this.olderWords : new Int32Array(buffer, 0, buffer.byteLength >>> 2);
    this.older = this.recent;
    this.olderWords = this.recentWords;
    this.recent = buffer;
    this.recentWords = words;
    return words;
  }
}
