// The tunnelbyte-broker binary (as built by scripts/test): serves, then drains and exits 0 on SIGTERM.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startRedis, type RedisServer } from '../helpers/redis.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = join(root, 'dist/src/broker/main.js');

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => redis.stop());

test('serve answers, then SIGTERM drains and exits 0', async () => {
  expect(existsSync(bin)).toBe(true);
  const port = await freePort();
  const child = spawn(process.execPath, [bin, 'serve'], {
    env: { ...process.env, REDIS_URL: redis.url, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    // Listening comes first; requests answer 503 until Redis is connected, which is logged too.
    const check = () =>
      output.includes('"msg":"listening"') && output.includes('"msg":"redis ready"') ? resolve() : undefined;
    child.stdout.on('data', check);
    child.once('exit', () => reject(new Error(`broker exited early: ${output}`)));
  });
  const res = await fetch(`http://127.0.0.1:${port}/v1/ready`);
  expect([res.status, await res.json()]).toEqual([200, { status: 'ok' }]);
  child.kill('SIGTERM');
  expect(await exited).toBe(0);
  expect(output).toContain('"msg":"shutting down"');
});
