// Secrets print as <redacted> (crypto/secret.ts): every kind of key material the engine holds, through
// util.inspect, JSON.stringify and String; and a whole Tunnel with keypairs and a handshake in flight,
// inspected to any depth, shows none of their bytes.
import { inspect } from 'node:util';

import { ChaChaPoly } from '../../crypto/aead.js';
import { HOST_IS_LITTLE_ENDIAN } from '../../crypto/words.js';
import { REKEY_AFTER_TIME_MS } from '../../crypto/constants.js';
import { StablelibTransportCipher, clamp } from '../../crypto/primitives.js';
import { REDACTED, secret } from '../../crypto/secret.js';
import { Tunnel } from '../../crypto/tunnel.js';
import { TunnelPair, WALL_CLOCK_BASE_MS, seededRandom } from './tunnel-pair.js';

const STRANGER = { address: '203.0.113.9', port: 40000 };

/** Every byte of every array, on one line: a secret that leaked would appear in full. */
const EVERYTHING = {
  depth: Infinity,
  maxArrayLength: Infinity,
  maxStringLength: Infinity,
  breakLength: Infinity,
  compact: true,
} as const;

/** The text a leaked array leaves in EVERYTHING output: its elements in order. */
const needle = (values: ArrayLike<number>): string => Array.from(values).join(', ');

function expectRedacted(value: unknown): void {
  expect(inspect(value)).toBe(REDACTED);
  expect(JSON.stringify({ value })).toBe(`{"value":"${REDACTED}"}`);
  expect(String(value)).toBe(REDACTED);
}

describe('secret(): marked bytes', () => {
  test('1. print <redacted> three ways, yet keep their bytes and stay a Uint8Array', () => {
    const key = secret(Uint8Array.from([1, 2, 3]));
    expectRedacted(key);
    expect(key).toBeInstanceOf(Uint8Array);
    expect(key).toEqual(Uint8Array.from([1, 2, 3]));
    expect(Buffer.from(key).toString('hex')).toBe('010203');
  });

  test('2. a copy is plain (what code that must hand a key out relies on)', () => {
    const copy = Uint8Array.from(secret(Uint8Array.from([7, 8, 9])));
    expect(inspect(copy, EVERYTHING)).toContain(needle([7, 8, 9]));
  });

  test('3. both transport ciphers print <redacted>', () => {
    const key = new Uint8Array(32).fill(0x42);
    expectRedacted(new ChaChaPoly(key));
    expectRedacted(new StablelibTransportCipher(key));
  });
});

// The engine's internals, reached past TypeScript's `private` to find every secret it holds.
interface Internals {
  local: { privateKey: Uint8Array };
  // The cookie secret is the key of its keyed MAC, held in the hasher's padded key.
  cookieChecker: { secretMac: { hash: { _paddedKey: Uint8Array } } };
  peersByName: Map<string, PeerInternals>;
}
interface PeerInternals {
  presharedKey: Uint8Array;
  keys: { presharedKey: Uint8Array; staticStatic: Uint8Array };
  handshake: { state: string; chainKey: Uint8Array; ephemeralPrivate: Uint8Array };
  keypairs: { current: KeypairInternals; previous: KeypairInternals | undefined };
}
interface KeypairInternals {
  send: { cipher: { state: Uint32Array } };
  receive: { cipher: { state: Uint32Array } };
}

describe('a Tunnel prints no secret', () => {
  const pair = new TunnelPair({ presharedKey: new Uint8Array(32).fill(0x5a) });
  pair.connect('a');
  // Two minutes on, A's next packet goes out on its keypair and starts a rekey that gets no answer: A now
  // holds a keypair and a handshake in flight at once.
  pair.linkUp = false;
  pair.now += REKEY_AFTER_TIME_MS + 1;
  pair.send('a');
  // Under load, an initiation without mac2 from a stranger makes A draw its cookie secret to answer it.
  const stranger = new Tunnel({
    privateKey: clamp(new Uint8Array(32).fill(0x33)),
    randomBytes: seededRandom(9),
    wallClockMs: () => WALL_CLOCK_BASE_MS,
  });
  stranger.upsertPeer(
    pair.keys.a.publicKey,
    { allowedIps: ['0.0.0.0/0'], endpoint: pair.endpoints.a },
    pair.now,
  );
  const initiation = stranger.encapsulate(pair.packet('b'), pair.now)[0]!;
  pair.a.markUnderLoad(pair.now);
  const answer =
    initiation.kind === 'send' ? pair.a.decapsulate(initiation.datagram, STRANGER, pair.now) : [];
  const a = pair.a as unknown as Internals;
  const peer = [...a.peersByName.values()][0]!;

  test('1. a keypair is current, a handshake in flight, and a cookie reply sent (the state this test needs)', () => {
    expect(peer.handshake.state).toBe('initiation_created');
    expect(peer.keypairs.current).toBeDefined();
    expect(answer.map((action) => action.kind)).toEqual(['send', 'drop']);
  });

  // #, what, where
  const secrets: [number, string, () => Uint8Array][] = [
    [2, 'our private key', () => a.local.privateKey],
    [3, 'the cookie secret', () => a.cookieChecker.secretMac.hash._paddedKey.subarray(0, 32)],
    [4, "the peer's pre-shared key", () => peer.presharedKey],
    [5, 'the handshake pre-shared key', () => peer.keys.presharedKey],
    [6, 'the static-static DH', () => peer.keys.staticStatic],
    [7, 'the handshake chaining key', () => peer.handshake.chainKey],
    [8, 'the handshake ephemeral private key', () => peer.handshake.ephemeralPrivate],
  ];
  test.each(secrets.filter(([n]) => n !== 3))('%i. %s prints <redacted>', (_n, _what, where) =>
    expectRedacted(where()),
  );

  test('3. the cookie secret is drawn, and its keyed MAC prints <redacted>', () => {
    expect(secrets[1]![2]().some((byte) => byte !== 0)).toBe(true);
    expectRedacted(a.cookieChecker.secretMac);
  });

  test('9. inspected to any depth, the tunnel shows none of their bytes, nor its transport keys', () => {
    const printed = inspect(pair.a, EVERYTHING);
    expect(printed).toContain(REDACTED);
    const keypairKeys = [peer.keypairs.current, peer.keypairs.previous]
      .filter((keypair) => keypair !== undefined)
      .flatMap((keypair) => [keypair.send, keypair.receive])
      // Without the ChaChaPoly transport cipher (big-endian host) there are no key words to look for.
      .filter((cipher) => cipher.cipher?.state instanceof Int32Array)
      .map((cipher) => cipher.cipher.state.subarray(4, 12)); // ChaCha20 key words
    expect(keypairKeys).toHaveLength(HOST_IS_LITTLE_ENDIAN ? 2 : 0);
    const needles = [...secrets.map(([, , where]) => where()), ...keypairKeys].map(needle);
    for (const text of needles) expect(printed).not.toContain(text);
  });
});
