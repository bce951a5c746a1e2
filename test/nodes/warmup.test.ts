// The start-up warm-up (nodes/warmup.ts) does its work: every packet it sends, both ways, is delivered by
// the other engine, with the engine options the node runs with and with the engine's defaults.
import { secureRandomBytes } from '../../nodes/random.js';
import { WARM_PACKETS, warmDataPath } from '../../nodes/warmup.js';

const CASES = [
  ['1. the node options', { decryptInPlace: true, reuseSendBuffers: true, reuseActions: true }],
  ['2. engine defaults', {}],
] as const;

describe('warmDataPath', () => {
  test.each(CASES)('%s: every packet each way is delivered', (_name, options) => {
    const delivered = warmDataPath({ ...options, randomBytes: secureRandomBytes, wallClockMs: Date.now });
    expect(delivered).toBe(2 * WARM_PACKETS);
  });
});
