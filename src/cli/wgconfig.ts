// The wg-quick file `connect` writes. The broker's `config` says `PrivateKey = <your private key>`
// when the key pair was made here; the real key is put in on this machine only. A broker that sends
// no config text gets one built from the structured fields. Either way the result must parse.
import type { CreatedSession } from '../lib/api-client.js';
import { sessionWgQuick, type ConfigText } from '../lib/session-config.js';
import { keyFromBase64 } from '../lib/wgkey.js';
import { parseWgQuick } from '../lib/wgquick.js';

const PRIVATE_KEY_LINE = /^[ \t]*PrivateKey[ \t]*=.*$/im;
const DNS_LINE = /^[ \t]*DNS[ \t]*=.*(\r?\n|$)/gim;
const INTERFACE_HEADER = /^[ \t]*\[Interface\][ \t]*$/im;

export interface ConfigOptions {
  /** Keep the broker's DNS servers (wg-quick then needs resolvconf); false leaves DNS to the host. */
  dns: boolean;
}

function fromFields(session: CreatedSession, privateKey: Uint8Array, { dns }: ConfigOptions): ConfigText {
  const fields = dns ? session : { ...session, interface: { ...session.interface, dns: [] } };
  const made = sessionWgQuick(fields, privateKey);
  return made.ok ? made : { ok: false, message: `the session has no config text and ${made.message}` };
}

/** The complete wg-quick text for a session whose private key is `privateKeyB64`. */
export function sessionConfig(
  session: CreatedSession,
  privateKeyB64: string,
  options: ConfigOptions = { dns: true },
): ConfigText {
  const privateKey = keyFromBase64(privateKeyB64);
  if (!privateKey) return { ok: false, message: 'the private key is not a WireGuard key' };
  const broker = typeof session.config === 'string' ? session.config : '';
  const template = options.dns ? broker : broker.replace(DNS_LINE, '');
  let text: string;
  if (PRIVATE_KEY_LINE.test(template)) {
    text = template.replace(PRIVATE_KEY_LINE, `PrivateKey = ${privateKeyB64}`);
  } else if (INTERFACE_HEADER.test(template)) {
    text = template.replace(INTERFACE_HEADER, (header) => `${header}\nPrivateKey = ${privateKeyB64}`);
  } else {
    return fromFields(session, privateKey, options);
  }
  if (!text.endsWith('\n')) text += '\n';
  const parsed = parseWgQuick(text);
  // The message names a line, never a value, so no key reaches the terminal.
  if (!parsed.ok) return { ok: false, message: `line ${parsed.error.line}: ${parsed.error.message}` };
  return { ok: true, text };
}
