// src/cli/exit.ts describeError: the one line an API refusal becomes.
import { describeError } from '../../src/cli/exit.js';
import { ApiError } from '../../src/lib/api-client.js';

describe('describeError: invalid_request names the field once', () => {
  test.each([
    [
      1,
      'the message starts with the field: said once',
      'id',
      'id: a session id',
      'invalid request (id): a session id',
    ],
    [
      2,
      'the field appears later in the message: kept there',
      'ttl',
      'must be below ttl: 86400',
      'invalid request (ttl): must be below ttl: 86400',
    ],
    [3, 'no field: the message as it is', undefined, 'body: not JSON', 'invalid request: body: not JSON'],
  ])('%i. %s', (_n, _what, field, message, line) => {
    const err = new ApiError(400, { error: 'invalid_request', message, ...(field && { field }) });
    expect(describeError(err).line).toBe(line);
  });
});
