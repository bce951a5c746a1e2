// Per-source handshake rate limiter used under load (docs/WIREGUARD.md §3; kernel ratelimiter.c): a token bucket
// of 20 packets per second with a burst of 5, keyed per IPv4 address or per IPv6 /64 (an IPv4-mapped IPv6
// address counts as its IPv4 address). Time is injected (monotonic ms); memory is bounded: idle entries are
// collected, and when the table is full of active sources new sources are refused, as the kernel does.
import {
  RATELIMIT_BURST,
  RATELIMIT_GC_AFTER_MS,
  RATELIMIT_MAX_ENTRIES,
  RATELIMIT_PACKETS_PER_SECOND,
} from './constants.js';
import { dottedQuad, isIpv4Mapped } from './ipaddr.js';

export interface RateLimiterOptions {
  packetsPerSecond?: number;
  burst?: number;
  maxEntries?: number;
}

interface Bucket {
  /** Milliseconds of credit; one packet costs 1000 / packetsPerSecond. */
  tokens: number;
  lastTime: number;
}

/** The bucket key of a source address (4 or 16 bytes), or undefined for anything else. */
export function sourceKey(address: Uint8Array | undefined): string | undefined {
  if (address === undefined) return undefined;
  if (address.length === 4) return `4:${dottedQuad(address, 0)}`;
  if (address.length !== 16) return undefined;
  if (isIpv4Mapped(address)) return `4:${dottedQuad(address, 12)}`;
  return `6:${dottedQuad(address, 0)}.${dottedQuad(address, 4)}`; // the /64
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly packetCost: number;
  private readonly maxTokens: number;
  private readonly maxEntries: number;
  private lastCollection = -Infinity;

  constructor(options: RateLimiterOptions = {}) {
    this.packetCost = 1000 / (options.packetsPerSecond ?? RATELIMIT_PACKETS_PER_SECOND);
    this.maxTokens = this.packetCost * (options.burst ?? RATELIMIT_BURST);
    this.maxEntries = options.maxEntries ?? RATELIMIT_MAX_ENTRIES;
  }

  /** Number of sources currently tracked. */
  get size(): number {
    return this.buckets.size;
  }

  /** True if a handshake message from `address` (4 or 16 bytes) may be processed now; spends one token. */
  allow(address: Uint8Array, now: number): boolean {
    const key = sourceKey(address);
    if (key === undefined) return false;
    if (now - this.lastCollection >= RATELIMIT_GC_AFTER_MS) this.collectGarbage(now);

    const bucket = this.buckets.get(key);
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxEntries) {
        this.collectGarbage(now);
        if (this.buckets.size >= this.maxEntries) return false;
      }
      this.buckets.set(key, { tokens: this.maxTokens - this.packetCost, lastTime: now });
      return true;
    }
    bucket.tokens = Math.min(this.maxTokens, bucket.tokens + Math.max(0, now - bucket.lastTime));
    bucket.lastTime = now;
    if (bucket.tokens < this.packetCost) return false;
    bucket.tokens -= this.packetCost;
    return true;
  }

  /**
   * Forgets sources idle for at least 1 s. Their buckets had refilled completely (5 tokens take 250 ms),
   * so forgetting them changes no decision. Called from allow() at most once per second.
   */
  collectGarbage(now: number): void {
    this.lastCollection = now;
    for (const [key, bucket] of this.buckets) {
      if (now - bucket.lastTime >= RATELIMIT_GC_AFTER_MS) this.buckets.delete(key);
    }
  }
}
