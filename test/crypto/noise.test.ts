import fc from 'fast-check';
import {
  WIREGUARD,
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createResponse,
  deriveTransportKeys,
  initiationRejection,
  localStatic,
  noiseProtocol,
  peerKeys,
} from '../../crypto/noise.js';
import { AEAD, HASH, TAI64N, generatePrivateKey } from '../../crypto/primitives.js';
import { VECTORS, hex, loadJson, toHex } from '../helpers/vectors.js';
import { seededRandom } from './tunnel-pair.js';

const concat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));

describe('cacophony Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s vector (docs/WIREGUARD.md §7.2)', () => {
  const v = loadJson<{
    init_prologue: string;
    init_psks: string[];
    init_static: string;
    init_ephemeral: string;
    init_remote_static: string;
    resp_static: string;
    resp_ephemeral: string;
    handshake_hash: string;
    messages: { payload: string; ciphertext: string }[];
  }>(`${VECTORS}cacophony_ikpsk2.json`);

  test('handshake messages, final hash and 4 transport messages, byte for byte', () => {
    const protocol = noiseProtocol(hex(v.init_prologue));
    const initiator = localStatic(hex(v.init_static));
    const responder = localStatic(hex(v.resp_static));
    expect(toHex(responder.publicKey)).toBe(v.init_remote_static);
    const psk = hex(v.init_psks[0]!);
    const initiatorView = peerKeys(initiator, responder.publicKey, psk);
    const responderView = peerKeys(responder, initiator.publicKey, psk);
    const [m0, m1, ...transport] = v.messages;

    const first = createInitiation(
      protocol,
      initiator,
      initiatorView,
      hex(v.init_ephemeral),
      hex(m0!.payload),
      1,
    );
    if (!first.ok) throw new Error(first.reason);
    const f = first.fields;
    expect(toHex(concat(f.ephemeral, f.encryptedStatic, f.encryptedPayload))).toBe(m0!.ciphertext);

    const wire0 = hex(m0!.ciphertext);
    const consumed = consumeInitiation(
      protocol,
      responder,
      {
        ephemeral: wire0.subarray(0, 32),
        encryptedStatic: wire0.subarray(32, 80),
        encryptedPayload: wire0.subarray(80),
      },
      (key) => (toHex(key) === toHex(initiator.publicKey) ? responderView : undefined),
    );
    if (!consumed.ok) throw new Error(consumed.reason);
    expect(toHex(consumed.state.payload)).toBe(m0!.payload);

    const second = createResponse(consumed.state, hex(v.resp_ephemeral), hex(m1!.payload));
    if (!second.ok) throw new Error(second.reason);
    expect(toHex(concat(second.fields.ephemeral, second.fields.encryptedPayload))).toBe(m1!.ciphertext);
    expect(toHex(second.result.hash)).toBe(v.handshake_hash);

    const wire1 = hex(m1!.ciphertext);
    const done = consumeResponse(first.state, initiator, initiatorView, {
      ephemeral: wire1.subarray(0, 32),
      encryptedPayload: wire1.subarray(32),
    });
    if (!done.ok) throw new Error(done.reason);
    expect(toHex(done.payload)).toBe(m1!.payload);
    expect(toHex(done.result.hash)).toBe(v.handshake_hash);

    const initiatorKeys = deriveTransportKeys(done.result, true);
    const responderKeys = deriveTransportKeys(second.result, false);
    expect(initiatorKeys.sendKey).toEqual(responderKeys.receiveKey);
    // Transport: initiator and responder alternate, each with its own counter from 0, empty AD.
    transport.forEach((message, i) => {
      const fromInitiator = i % 2 === 0;
      const key = fromInitiator ? initiatorKeys.sendKey : responderKeys.sendKey;
      const counter = Math.floor(i / 2);
      expect(toHex(AEAD.seal(key, counter, hex(message.payload), new Uint8Array(0)))).toBe(
        message.ciphertext,
      );
      const receiveKey = fromInitiator ? responderKeys.receiveKey : initiatorKeys.receiveKey;
      expect(toHex(AEAD.open(receiveKey, counter, hex(message.ciphertext), new Uint8Array(0))!)).toBe(
        message.payload,
      );
    });
    expect(transport).toHaveLength(4);
  });
});

/** Two in-memory parties over WireGuard's protocol, driven step by step as wireguard-go noise_test.go. */
function pair(seed: number, psk?: Uint8Array) {
  const random = seededRandom(seed);
  const a = localStatic(generatePrivateKey(random));
  const b = localStatic(generatePrivateKey(random));
  return { random, a, b, aPeer: peerKeys(a, b.publicKey, psk), bPeer: peerKeys(b, a.publicKey, psk) };
}

describe('two in-memory handshakes', () => {
  test.each([
    ['without psk', undefined],
    ['with psk', HASH(Uint8Array.of(7))],
  ])('%s: chaining key and hash agree after each message; keys work both ways', (_name, psk) => {
    const { random, a, b, aPeer, bPeer } = pair(1, psk);
    const init = createInitiation(
      WIREGUARD,
      a,
      aPeer,
      generatePrivateKey(random),
      TAI64N(1_700_000_000_000),
      1,
    );
    if (!init.ok) throw new Error(init.reason);
    const consumed = consumeInitiation(WIREGUARD, b, init.fields, () => bPeer);
    if (!consumed.ok) throw new Error(consumed.reason);
    expect(consumed.state.chainKey).toEqual(init.state.chainKey);
    expect(consumed.state.hash).toEqual(init.state.hash);

    const response = createResponse(consumed.state, generatePrivateKey(random), new Uint8Array(0));
    if (!response.ok) throw new Error(response.reason);
    const done = consumeResponse(init.state, a, aPeer, response.fields);
    if (!done.ok) throw new Error(done.reason);
    expect(done.result.chainKey).toEqual(response.result.chainKey);
    expect(done.result.hash).toEqual(response.result.hash);

    const aKeys = deriveTransportKeys(done.result, true);
    const bKeys = deriveTransportKeys(response.result, false);
    expect(aKeys.sendKey).toEqual(bKeys.receiveKey);
    expect(aKeys.receiveKey).toEqual(bKeys.sendKey);
    expect(aKeys.sendKey).not.toEqual(aKeys.receiveKey);
    const sealed = AEAD.seal(aKeys.sendKey, 0, Uint8Array.of(1, 2, 3), new Uint8Array(0));
    expect(AEAD.open(bKeys.receiveKey, 0, sealed, new Uint8Array(0))).toEqual(Uint8Array.of(1, 2, 3));
  });

  test('mismatched pre-shared keys fail at the response, as a typed failure', () => {
    const { random, a, b, aPeer } = pair(2, HASH(Uint8Array.of(1)));
    const bPeer = peerKeys(b, a.publicKey, HASH(Uint8Array.of(2)));
    const init = createInitiation(WIREGUARD, a, aPeer, generatePrivateKey(random), TAI64N(0), 1);
    const consumed = init.ok && consumeInitiation(WIREGUARD, b, init.fields, () => bPeer);
    if (!init.ok || !consumed || !consumed.ok) throw new Error('setup');
    const response = createResponse(consumed.state, generatePrivateKey(random), new Uint8Array(0));
    if (!response.ok) throw new Error(response.reason);
    expect(consumeResponse(init.state, a, aPeer, response.fields)).toEqual({
      ok: false,
      reason: 'decrypt_failed',
    });
  });

  test('bad input yields typed failures, never exceptions', () => {
    const { random, a, b, aPeer, bPeer } = pair(3);
    const init = createInitiation(WIREGUARD, a, aPeer, generatePrivateKey(random), TAI64N(0), 1);
    if (!init.ok) throw new Error(init.reason);
    const flip = (bytes: Uint8Array, i: number) => {
      const copy = Uint8Array.from(bytes);
      copy[i]! ^= 1;
      return copy;
    };
    const f = init.fields;
    const lookup = () => bPeer;
    // #, fields, expected reason
    const table: [number, typeof f, string][] = [
      [1, { ...f, ephemeral: new Uint8Array(32) }, 'invalid_public_key'], // low-order ephemeral
      [2, { ...f, ephemeral: flip(f.ephemeral, 3) }, 'decrypt_failed'],
      [3, { ...f, encryptedStatic: flip(f.encryptedStatic, 40) }, 'decrypt_failed'],
      [4, { ...f, encryptedPayload: flip(f.encryptedPayload, 0) }, 'decrypt_failed'],
      [5, { ...f, encryptedStatic: f.encryptedStatic.subarray(0, 10) }, 'decrypt_failed'],
    ];
    for (const [n, fields, reason] of table) {
      expect([n, consumeInitiation(WIREGUARD, b, fields, lookup)]).toEqual([n, { ok: false, reason }]);
    }
    expect(consumeInitiation(WIREGUARD, b, f, () => undefined)).toEqual({
      ok: false,
      reason: 'unknown_peer',
    });
    // A third party cannot consume an initiation meant for b.
    const c = localStatic(generatePrivateKey(random));
    expect(consumeInitiation(WIREGUARD, c, f, lookup)).toEqual({ ok: false, reason: 'decrypt_failed' });
    // A response with a low-order ephemeral, and one with a corrupted tag.
    const consumed = consumeInitiation(WIREGUARD, b, f, lookup);
    if (!consumed.ok) throw new Error(consumed.reason);
    const response = createResponse(consumed.state, generatePrivateKey(random), new Uint8Array(0));
    if (!response.ok) throw new Error(response.reason);
    const r = response.fields;
    expect(consumeResponse(init.state, a, aPeer, { ...r, ephemeral: new Uint8Array(32) })).toEqual({
      ok: false,
      reason: 'invalid_public_key',
    });
    expect(
      consumeResponse(init.state, a, aPeer, { ...r, encryptedPayload: flip(r.encryptedPayload, 5) }),
    ).toEqual({
      ok: false,
      reason: 'decrypt_failed',
    });
  });

  test('a peer whose public key is a low-order point cannot handshake', () => {
    const { random, a } = pair(4);
    const lowOrder = peerKeys(a, new Uint8Array(32));
    expect(lowOrder.staticStatic).toBeUndefined();
    expect(createInitiation(WIREGUARD, a, lowOrder, generatePrivateKey(random), TAI64N(0), 1)).toEqual({
      ok: false,
      reason: 'invalid_public_key',
    });
  });
});

describe('initiationRejection: replay (timestamp strictly greater) and flood (20 ms)', () => {
  const t0 = TAI64N(1_700_000_000_000);
  const later = TAI64N(1_700_000_001_000);
  const history = { timestamp: t0, consumedAt: 5_000 };
  // #, history, timestamp, now, expected
  const table: [number, typeof history | undefined, Uint8Array, number, string | undefined][] = [
    [1, undefined, t0, 0, undefined],
    [2, history, t0, 10_000, 'replay'], // equal is a replay
    [3, history, TAI64N(1_699_999_999_000), 10_000, 'replay'],
    [4, history, later, 10_000, undefined],
    [5, history, later, 5_019, 'flood'],
    [6, history, later, 5_020, undefined],
    [7, history, new Uint8Array(11), 10_000, 'replay'],
  ];
  test.each(table)('#%i', (_n, h, timestamp, now, expected) => {
    expect(initiationRejection(h, timestamp, now)).toBe(expected);
  });
});

describe('properties: consume functions never throw on random fields', () => {
  const { random, a, b, aPeer, bPeer } = pair(5);
  const init = createInitiation(WIREGUARD, a, aPeer, generatePrivateKey(random), TAI64N(0), 1);
  if (!init.ok) throw new Error(init.reason);
  const bytes = (length: number) => fc.uint8Array({ minLength: length, maxLength: length });

  test('consumeInitiation', () => {
    fc.assert(
      fc.property(bytes(32), bytes(48), bytes(28), (ephemeral, encryptedStatic, encryptedPayload) => {
        const result = consumeInitiation(
          WIREGUARD,
          b,
          { ephemeral, encryptedStatic, encryptedPayload },
          () => bPeer,
        );
        return !result.ok && ['invalid_public_key', 'decrypt_failed'].includes(result.reason);
      }),
      { numRuns: 50 },
    );
  });

  test('consumeResponse', () => {
    fc.assert(
      fc.property(bytes(32), bytes(16), (ephemeral, encryptedPayload) => {
        const result = consumeResponse(init.state, a, aPeer, { ephemeral, encryptedPayload });
        return !result.ok && ['invalid_public_key', 'decrypt_failed'].includes(result.reason);
      }),
      { numRuns: 50 },
    );
  });
});
