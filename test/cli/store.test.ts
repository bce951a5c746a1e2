// The token cache and configs hold secrets: they are only ever written into a fresh 0600 file.
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writePrivateFile } from '../../src/cli/store.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tb-store-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test('a loose-mode file is replaced, never written into', () => {
  const path = join(dir, 'config', 'token');
  writePrivateFile(path, 'old\n');
  chmodSync(path, 0o644);
  const looseInode = statSync(path).ino;
  writeFileSync(join(dir, 'probe'), ''); // keeps the loose inode number from being reused at once

  writePrivateFile(path, 'tb_secret\n');

  expect(statSync(path).ino).not.toBe(looseInode);
  expect(statSync(path).mode & 0o777).toBe(0o600);
  expect(statSync(join(dir, 'config')).mode & 0o777).toBe(0o700);
  expect(readFileSync(path, 'utf8')).toBe('tb_secret\n');
  expect(readdirSync(join(dir, 'config'))).toEqual(['token']);
});
