import { createConnection } from 'node:net';
import { startRedis } from './redis.js';

function ping(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(port, '127.0.0.1', () => socket.write('PING\r\n'));
    socket.once('data', (d) => {
      resolve(d.toString());
      socket.end();
    });
    socket.once('error', reject);
  });
}

test('startRedis runs a real server that survives kill and restart', async () => {
  const redis = await startRedis();
  try {
    expect(await ping(redis.port)).toBe('+PONG\r\n');
    await redis.kill();
    await expect(ping(redis.port)).rejects.toThrow();
    await redis.restart();
    expect(await ping(redis.port)).toBe('+PONG\r\n');
    // stop() right after kill() must return, not wait for an exit that already happened.
    await redis.kill();
  } finally {
    await redis.stop();
  }
});
