// The machine fingerprint a free token is bound to (docs/API.md "Tiers"): stable across runs on one machine,
// different between machines, and revealing nothing about the machine (it is a hash).
// TB_FINGERPRINT overrides it, so tests can play several machines from one host.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

/** Where systemd, dbus, and the BSDs keep a per-install random id. */
const MACHINE_ID_FILES = ['/etc/machine-id', '/var/lib/dbus/machine-id', '/etc/hostid'];

/** A fingerprint as the broker accepts it: lowercase hex, 16 to 128 digits. */
export const FINGERPRINT_PATTERN = /^[0-9a-f]{16,128}$/;

function machineId(): string {
  for (const file of MACHINE_ID_FILES) {
    try {
      const id = readFileSync(file, 'utf8').trim();
      if (id !== '') return id;
    } catch {
      // absent on this system: try the next place
    }
  }
  return '';
}

/** SHA-256 (hex) of the machine id and host name, domain-separated from any other use of them. */
export function computeFingerprint(id: string = machineId(), host: string = hostname()): string {
  return createHash('sha256').update(`tunnelbyte-fingerprint-v1\0${id}\0${host}`).digest('hex');
}

export class FingerprintError extends Error {
  override name = 'FingerprintError';
}

/** TB_FINGERPRINT when set (it must be hex), else this machine's computed fingerprint. */
export function machineFingerprint(env: Record<string, string | undefined> = process.env): string {
  const override = env.TB_FINGERPRINT;
  if (override !== undefined && override !== '') {
    const normalized = override.trim().toLowerCase();
    if (!FINGERPRINT_PATTERN.test(normalized)) {
      throw new FingerprintError('TB_FINGERPRINT must be 16 to 128 hex digits');
    }
    return normalized;
  }
  return computeFingerprint();
}
