// A session's wg-quick file (docs/API.md "Sessions"), from the structured fields of a created session.
// The broker writes it into the session's `config`; the CLI writes it itself when a broker sent none.
// Both go through formatWgQuick, so a value that would change the file's meaning is refused, not written.
import type { SessionInterface, SessionPeer } from './api.js';
import { parseEndpoint } from './endpoint.js';
import { keyFromBase64 } from './wgkey.js';
import { formatWgQuick } from './wgquick.js';

/** The PrivateKey line of a config whose key pair the client made: the broker never sees that key. */
export const PRIVATE_KEY_PLACEHOLDER = '<your private key>';

/**
 * The PresharedKey line of a config written after the session's creation: the key was shown once, in
 * the 201, and the client keeps it. A peer whose preshared_key is this placeholder gets this line.
 */
export const PRESHARED_KEY_PLACEHOLDER = '<your preshared key>';

/** The parts of a created session (docs/API.md "Sessions") its config is made of. */
export interface SessionFields {
  interface: Pick<SessionInterface, 'addresses' | 'dns'>;
  peer: SessionPeer;
}

export type ConfigText = { ok: true; text: string } | { ok: false; message: string };

/** The config text; with no private key, its PrivateKey line is PRIVATE_KEY_PLACEHOLDER. */
export function sessionWgQuick(session: SessionFields, privateKey: Uint8Array | null): ConfigText {
  const { peer } = session;
  const publicKey = keyFromBase64(peer.public_key);
  const hiddenPresharedKey = peer.preshared_key === PRESHARED_KEY_PLACEHOLDER;
  // A zero key stands in for a key this side does not show; its line is replaced below.
  const presharedKey = hiddenPresharedKey
    ? new Uint8Array(32)
    : peer.preshared_key
      ? keyFromBase64(peer.preshared_key)
      : undefined;
  const endpoint = parseEndpoint(peer.endpoint);
  if (!publicKey || !endpoint.ok || (peer.preshared_key && !presharedKey)) {
    return { ok: false, message: 'its peer fields are malformed' };
  }
  let text: string;
  try {
    text = formatWgQuick({
      interface: {
        // A zero key stands in for a private key this side never sees; its line is replaced below.
        privateKey: privateKey ?? new Uint8Array(32),
        addresses: session.interface.addresses,
        dns: session.interface.dns,
        preUp: [],
        postUp: [],
        preDown: [],
        postDown: [],
      },
      peers: [
        {
          publicKey,
          ...(presharedKey ? { presharedKey } : {}),
          allowedIps: peer.allowed_ips,
          endpoint: endpoint.value,
          persistentKeepalive: peer.persistent_keepalive,
        },
      ],
    });
  } catch {
    return { ok: false, message: 'its fields are not canonical' };
  }
  if (!privateKey) text = text.replace(/^PrivateKey = .*$/m, `PrivateKey = ${PRIVATE_KEY_PLACEHOLDER}`);
  if (hiddenPresharedKey) {
    text = text.replace(/^PresharedKey = .*$/m, `PresharedKey = ${PRESHARED_KEY_PLACEHOLDER}`);
  }
  return { ok: true, text };
}
