// The wg-quick file `connect` writes. The broker's `config` says `PrivateKey = <your private key>`
// when the key pair was made here (and, read after creation, `PresharedKey = <your preshared key>`);
// the real keys are put in on this machine only. A broker that sends no config text gets one built from
// the structured fields. Either way the result must parse.
import type { CreatedSession } from '../lib/api-client.js';
import { PRESHARED_KEY_PLACEHOLDER, sessionWgQuick, type ConfigText } from '../lib/session-config.js';
import { keyFromBase64, keyToBase64 } from '../lib/wgkey.js';
import { parseWgQuick } from '../lib/wgquick.js';

const PRIVATE_KEY_LINE = /^[ \t]*PrivateKey[ \t]*=.*$/im;
const DNS_LINE = /^[ \t]*DNS[ \t]*=.*(\r?\n|$)/gim;
const INTERFACE_HEADER = /^[ \t]*\[Interface\][ \t]*$/im;
const PRESHARED_KEY_PLACEHOLDER_LINE = new RegExp(
  `^[ \\t]*PresharedKey[ \\t]*=[ \\t]*${PRESHARED_KEY_PLACEHOLDER}[ \\t]*$`,
  'im',
);

export interface ConfigOptions {
  /** Keep the broker's DNS servers (wg-quick then needs resolvconf); false leaves DNS to the host. */
  dns: boolean;
}

function fromFields(session: CreatedSession, privateKey: Uint8Array, { dns }: ConfigOptions): ConfigText {
  const fields = dns ? session : { ...session, interface: { ...session.interface, dns: [] } };
  const made = sessionWgQuick(fields, privateKey);
  return made.ok ? made : { ok: false, message: `the session has no config text and ${made.message}` };
}

/**
 * The broker's config text with this machine's keys put in (and without its DNS line unless `dns`), or
 * undefined when the text is no wg-quick file to fill in.
 */
function fill(
  broker: string,
  privateKeyB64: string,
  { dns, presharedKeyB64 }: ConfigOptions & { presharedKeyB64?: string },
): ConfigText | undefined {
  const template = dns ? broker : broker.replace(DNS_LINE, '');
  let text: string;
  if (PRIVATE_KEY_LINE.test(template)) {
    text = template.replace(PRIVATE_KEY_LINE, `PrivateKey = ${privateKeyB64}`);
  } else if (INTERFACE_HEADER.test(template)) {
    text = template.replace(INTERFACE_HEADER, (header) => `${header}\nPrivateKey = ${privateKeyB64}`);
  } else {
    return undefined;
  }
  if (presharedKeyB64)
    text = text.replace(PRESHARED_KEY_PLACEHOLDER_LINE, `PresharedKey = ${presharedKeyB64}`);
  if (!text.endsWith('\n')) text += '\n';
  const parsed = parseWgQuick(text);
  // The message names a line, never a value, so no key reaches the terminal.
  if (!parsed.ok) return { ok: false, message: `line ${parsed.error.line}: ${parsed.error.message}` };
  return { ok: true, text };
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
  return fill(broker, privateKeyB64, options) ?? fromFields(session, privateKey, options);
}

/**
 * The file `connect` wrote, renewed from the broker's fresh `config` for the session's current node (after
 * a move): the private and preshared keys, and the choice of DNS, are taken from the file as it is.
 */
export function renewedConfig(current: string, broker: string): ConfigText {
  const parsed = parseWgQuick(current);
  if (!parsed.ok) return { ok: false, message: `line ${parsed.error.line}: ${parsed.error.message}` };
  const { interface: iface, peers } = parsed.config;
  const presharedKey = peers[0]?.presharedKey;
  const filled = fill(broker, keyToBase64(iface.privateKey), {
    dns: iface.dns.length > 0,
    ...(presharedKey ? { presharedKeyB64: keyToBase64(presharedKey) } : {}),
  });
  return filled ?? { ok: false, message: 'the broker sent no wg-quick file' };
}
