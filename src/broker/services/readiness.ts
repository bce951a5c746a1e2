// GET /v1/ready: the broker can serve when its backing store answers.
import type { BrokerContext } from '../context.js';
import { ApiError } from '../errors.js';

export async function checkReady(ctx: BrokerContext): Promise<void> {
  try {
    await ctx.redis.ping();
  } catch {
    throw new ApiError('unavailable', { message: 'The backing store is unreachable.', retryAfter: 2 });
  }
}
