// The WireGuard-framed KAT (test/crypto/vectors/wireguard_kat.json, docs/WIREGUARD.md §7.3) through every module
// of the crypto core as the engine will chain them: messages, cookie (mac1/mac2, cookie reply), noise, and
// the engine's transport cipher. Byte for byte, both variants (no_psk, with_psk).
import { CookieChecker, MacSender, cookieSource } from '../../crypto/cookie.js';
import {
  isTransport,
  openTransport,
  parseMessage,
  sealTransport,
  transportLength,
  writeInitiation,
  writeResponse,
  type CookieReplyMessage,
} from '../../crypto/messages.js';
import {
  WIREGUARD,
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createResponse,
  deriveTransportKeys,
  initiationRejection,
  localStatic,
  peerKeys,
} from '../../crypto/noise.js';
import { createTransportCipher } from '../../crypto/primitives.js';
import { VECTORS, hex, loadJson, toHex } from '../helpers/vectors.js';

const kat = loadJson<Record<string, Record<string, string | number>>>(`${VECTORS}wireguard_kat.json`);

test('the vector file holds exactly the two variants', () => {
  expect(Object.keys(kat).filter((k) => !k.startsWith('_'))).toEqual(['no_psk', 'with_psk']);
});

describe.each(['no_psk', 'with_psk'])('%s', (variant) => {
  const v = kat[variant]!;
  const s = (name: string) => hex(v[name] as string);
  const initiator = localStatic(s('initiator_static_private'));
  const responder = localStatic(s('responder_static_private'));
  const psk = s('preshared_key');
  const initiatorView = peerKeys(initiator, responder.publicKey, psk);
  const responderView = peerKeys(responder, initiator.publicKey, psk);
  const now = 50_000; // monotonic ms

  test('static keys', () => {
    expect(toHex(initiator.publicKey)).toBe(v.initiator_static_public);
    expect(toHex(responder.publicKey)).toBe(v.responder_static_public);
  });

  test('handshake, transport, keepalive, cookie reply and mac2', () => {
    // Initiator: create the initiation, frame it, add macs.
    const toResponder = new MacSender(responder.publicKey);
    const init = createInitiation(
      WIREGUARD,
      initiator,
      initiatorView,
      s('initiator_ephemeral_private'),
      s('timestamp_tai64n'),
      v.initiator_sender_index as number,
    );
    if (!init.ok) throw new Error(init.reason);
    const initiation = writeInitiation({
      senderIndex: v.initiator_sender_index as number,
      ephemeral: init.fields.ephemeral,
      encryptedStatic: init.fields.encryptedStatic,
      encryptedTimestamp: init.fields.encryptedPayload,
    });
    toResponder.addMacs(initiation, now);
    expect(toHex(initiation)).toBe(v.initiation);

    // Responder: parse, mac1, consume, replay rules, respond.
    const checker = new CookieChecker(responder.publicKey, () => {
      throw new Error('no randomness needed before a cookie reply');
    });
    const received = parseMessage(initiation);
    if (received?.type !== 1) throw new Error('not an initiation');
    expect(checker.checkMac1(received)).toBe(true);
    const consumed = consumeInitiation(
      WIREGUARD,
      responder,
      {
        ephemeral: received.ephemeral,
        encryptedStatic: received.encryptedStatic,
        encryptedPayload: received.encryptedTimestamp,
      },
      (key) => (toHex(key) === v.initiator_static_public ? responderView : undefined),
    );
    if (!consumed.ok) throw new Error(consumed.reason);
    expect(toHex(consumed.state.payload)).toBe(v.timestamp_tai64n);
    expect(initiationRejection(undefined, consumed.state.payload, now)).toBeUndefined();
    expect(
      initiationRejection(
        { timestamp: consumed.state.payload, consumedAt: now },
        consumed.state.payload,
        now + 1000,
      ),
    ).toBe('replay');

    const response = createResponse(consumed.state, s('responder_ephemeral_private'), new Uint8Array(0));
    if (!response.ok) throw new Error(response.reason);
    const responseBytes = writeResponse({
      senderIndex: v.responder_sender_index as number,
      receiverIndex: received.senderIndex,
      ephemeral: response.fields.ephemeral,
      encryptedNothing: response.fields.encryptedPayload,
    });
    new MacSender(initiator.publicKey).addMacs(responseBytes, now);
    expect(toHex(responseBytes)).toBe(v.response);
    expect(toHex(response.result.hash)).toBe(v.final_handshake_hash);
    const responderKeys = deriveTransportKeys(response.result, false);

    // Initiator: parse the response, mac1 under its own key, consume, derive.
    const responseMessage = parseMessage(responseBytes);
    if (responseMessage?.type !== 2) throw new Error('not a response');
    expect(new CookieChecker(initiator.publicKey, () => new Uint8Array(0)).checkMac1(responseMessage)).toBe(
      true,
    );
    expect(responseMessage.receiverIndex).toBe(v.initiator_sender_index);
    const done = consumeResponse(init.state, initiator, initiatorView, {
      ephemeral: responseMessage.ephemeral,
      encryptedPayload: responseMessage.encryptedNothing,
    });
    if (!done.ok) throw new Error(done.reason);
    expect(toHex(done.result.hash)).toBe(v.final_handshake_hash);
    const initiatorKeys = deriveTransportKeys(done.result, true);
    expect([toHex(initiatorKeys.sendKey), toHex(initiatorKeys.receiveKey)]).toEqual([
      v.initiator_send_key,
      v.initiator_recv_key,
    ]);

    // Transport initiator → responder: 28-byte packet padded to 32, counter 0, the engine's cipher.
    const data = new Uint8Array(transportLength(28, 1420));
    const dataLength = sealTransport(
      createTransportCipher(initiatorKeys.sendKey),
      responseMessage.senderIndex,
      0,
      0,
      s('data_plaintext'),
      1420,
      data,
    );
    expect(dataLength).toBe(data.length);
    expect(toHex(data)).toBe(v.data_packet_initiator_to_responder_counter0);
    expect(parseMessage(data)?.type).toBe(4);
    expect(isTransport(data)).toBe(true);

    // Opened in place: the plaintext overwrites the ciphertext inside the datagram.
    expect(openTransport(createTransportCipher(responderKeys.receiveKey), data, 0, 0)).toBe(32);
    expect(toHex(data.subarray(16, 48))).toBe(`${v.data_plaintext}00000000`);

    // Sealed at an offset inside a larger buffer, the packet already where its ciphertext goes: same bytes.
    const slot = new Uint8Array(8 + data.length + 8);
    slot.set(s('data_plaintext'), 8 + 16);
    const packetInPlace = slot.subarray(8 + 16, 8 + 16 + 28);
    sealTransport(
      createTransportCipher(initiatorKeys.sendKey),
      responseMessage.senderIndex,
      0,
      0,
      packetInPlace,
      1420,
      slot,
      8,
    );
    expect(toHex(slot.subarray(8, 8 + data.length))).toBe(v.data_packet_initiator_to_responder_counter0);

    // Keepalive responder → initiator: 32 bytes.
    const keepalive = new Uint8Array(transportLength(0, 1420));
    sealTransport(
      createTransportCipher(responderKeys.sendKey),
      received.senderIndex,
      0,
      0,
      new Uint8Array(0),
      1420,
      keepalive,
    );
    expect(toHex(keepalive)).toBe(v.keepalive_responder_to_initiator_counter0);
    expect(openTransport(createTransportCipher(initiatorKeys.receiveKey), keepalive, 0, 0)).toBe(0);

    // Under load: the responder answers with a cookie reply; the initiator re-MACs with mac2.
    const source = s('cookie_source_bytes');
    expect(source).toEqual(cookieSource(hex('c0000201'), 0xca6c));
    const random = [s('cookie_secret'), s('cookie_reply_nonce')];
    const loadedChecker = new CookieChecker(responder.publicKey, () => random.shift()!);
    expect(loadedChecker.checkMac2(received, source, now)).toBe(false);
    const reply = loadedChecker.createCookieReply(received, source, now);
    expect(toHex(reply)).toBe(v.cookie_reply);
    expect(toResponder.consumeCookieReply(parseMessage(reply) as CookieReplyMessage, now)).toBe(true);
    const retry = hex(v.initiation as string);
    toResponder.addMacs(retry, now + 5_000);
    expect(toHex(retry)).toBe(v.initiation_with_mac2_from_cookie);
    const retryMessage = parseMessage(retry);
    if (retryMessage?.type !== 1) throw new Error('not an initiation');
    expect(
      loadedChecker.checkMac1(retryMessage) && loadedChecker.checkMac2(retryMessage, source, now + 5_001),
    ).toBe(true);
  });
});
