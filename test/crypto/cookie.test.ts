import { COOKIE_REFRESH_TIME_MS, INITIATION_SIZE, RESPONSE_SIZE } from '../../crypto/constants.js';
import { CookieChecker, MacSender, cookieKey, cookieSource, mac1Key } from '../../crypto/cookie.js';
import {
  parseMessage,
  type CookieReplyMessage,
  type HandshakeMessage,
  type InitiationMessage,
} from '../../crypto/messages.js';
import { HASH, generatePrivateKey, publicKey } from '../../crypto/primitives.js';
import { VECTORS, hex, loadJson, toHex } from '../helpers/vectors.js';

const kat = loadJson<Record<string, Record<string, string>>>(`${VECTORS}wireguard_kat.json`);

/** Random source handing out the given chunks in order, then a counter pattern. */
function scriptedRandom(...chunks: Uint8Array[]): (length: number) => Uint8Array {
  let counter = 0;
  return (length) => {
    const next = chunks.shift();
    if (next !== undefined) {
      expect(next.length).toBe(length);
      return Uint8Array.from(next);
    }
    counter++;
    return Uint8Array.from({ length }, (_, i) => (i * 31 + counter * 7) & 0xff);
  };
}

describe('WireGuard KAT: cookie reply and mac2, byte for byte', () => {
  test.each(['no_psk', 'with_psk'])('%s', (variant) => {
    const v = kat[variant]!;
    const responderPublic = hex(v.responder_static_public!);
    expect(toHex(mac1Key(responderPublic))).toBe(v.mac1_key_for_responder);
    expect(toHex(cookieKey(responderPublic))).toBe(v.cookie_key_for_responder);
    expect(toHex(cookieSource(hex('c0000201'), 51820))).toBe(v.cookie_source_bytes);
    const source = hex(v.cookie_source_bytes!);
    const now = 1_000_000;

    // The responder's checker, its secret and nonce drawn from the KAT values.
    const checker = new CookieChecker(
      responderPublic,
      scriptedRandom(hex(v.cookie_secret!), hex(v.cookie_reply_nonce!)),
    );
    const initiation = parseMessage(hex(v.initiation!)) as InitiationMessage;
    expect(checker.checkMac1(initiation)).toBe(true);
    expect(checker.checkMac2(initiation, source, now)).toBe(false); // no secret yet
    const reply = checker.createCookieReply(initiation, source, now);
    expect(toHex(reply)).toBe(v.cookie_reply);

    // The initiator: send the initiation (remembering mac1), consume the reply, re-MAC with mac2.
    const sender = new MacSender(responderPublic);
    const first = hex(v.initiation!);
    first.fill(0, 116);
    sender.addMacs(first, now);
    expect(toHex(first)).toBe(v.initiation);
    expect(sender.consumeCookieReply(parseMessage(reply) as CookieReplyMessage, now + 10)).toBe(true);
    const second = hex(v.initiation!);
    sender.addMacs(second, now + 20);
    expect(toHex(second)).toBe(v.initiation_with_mac2_from_cookie);

    const withMac2 = parseMessage(second) as InitiationMessage;
    expect(checker.checkMac1(withMac2)).toBe(true);
    expect(checker.checkMac2(withMac2, source, now + 30)).toBe(true);
  });
});

/** wireguard-go cookie_test.go, on random keys and arbitrary message bodies. */
describe('mac1/mac2 round trip (wireguard-go cookie_test.go strategy)', () => {
  const random = scriptedRandom();
  const responderPublic = publicKey(generatePrivateKey((n) => HASH(Uint8Array.of(9)).subarray(0, n)));
  const source = cookieSource(Uint8Array.of(127, 0, 0, 1), 51820);
  const otherSource = cookieSource(Uint8Array.of(127, 0, 0, 1), 51821);

  function body(type: 1 | 2, seed: number): Uint8Array {
    const bytes = Uint8Array.from(
      { length: type === 1 ? INITIATION_SIZE : RESPONSE_SIZE },
      (_, i) => (i * seed) & 0xff,
    );
    bytes.set([type, 0, 0, 0]);
    return bytes;
  }
  const parse = (bytes: Uint8Array) => parseMessage(bytes) as HandshakeMessage;

  test.each([1, 2] as const)('message type %i', (type) => {
    const checker = new CookieChecker(responderPublic, random);
    const sender = new MacSender(responderPublic);
    let now = 0;

    // mac1 valid, mac2 invalid (no cookie yet).
    const message = body(type, 3);
    sender.addMacs(message, now);
    expect(checker.checkMac1(parse(message))).toBe(true);
    expect(checker.checkMac2(parse(message), source, now)).toBe(false);

    // Create + consume a cookie reply; then mac2 is valid.
    const reply = parseMessage(checker.createCookieReply(parse(message), source, now)) as CookieReplyMessage;
    expect(reply.receiverIndex).toBe(new DataView(message.buffer).getUint32(4, true));
    expect(sender.consumeCookieReply(reply, now)).toBe(true);
    expect(sender.consumeCookieReply(reply, now)).toBe(false); // one cookie per mac1
    const next = body(type, 5);
    sender.addMacs(next, now);
    expect(checker.checkMac1(parse(next))).toBe(true);
    expect(checker.checkMac2(parse(next), source, now)).toBe(true);

    // Flip any byte ⇒ mac1 and mac2 both fail.
    for (const index of [4, 20, next.length - 33, next.length - 17]) {
      const flipped = Uint8Array.from(next);
      flipped[index]! ^= 0x20;
      expect([
        index,
        checker.checkMac1(parse(flipped)),
        checker.checkMac2(parse(flipped), source, now),
      ]).toEqual([index, false, false]);
    }
    // Another source ⇒ mac2 fails (mac1 does not depend on it).
    expect(checker.checkMac2(parse(next), otherSource, now)).toBe(false);

    // The sender's cookie expires after 120 s: mac2 becomes zero.
    now += COOKIE_REFRESH_TIME_MS;
    const late = body(type, 7);
    sender.addMacs(late, now);
    expect(parse(late).mac2).toEqual(new Uint8Array(16));
  });

  test('a reply for another mac1, or under another key, is refused', () => {
    const checker = new CookieChecker(responderPublic, random);
    const sender = new MacSender(responderPublic);
    const stranger = new MacSender(HASH(Uint8Array.of(1)));
    const message = body(1, 3);
    sender.addMacs(message, 0);
    const reply = parseMessage(checker.createCookieReply(parse(message), source, 0)) as CookieReplyMessage;
    expect(new MacSender(responderPublic).consumeCookieReply(reply, 0)).toBe(false); // sent no mac1
    stranger.addMacs(body(1, 3), 0);
    expect(stranger.consumeCookieReply(reply, 0)).toBe(false); // wrong cookie key
    sender.addMacs(body(1, 11), 0); // a newer mac1 replaces the one the reply is bound to
    expect(sender.consumeCookieReply(reply, 0)).toBe(false);
  });

  test('the cookie secret rotates after 120 s', () => {
    const checker = new CookieChecker(responderPublic, random);
    const sender = new MacSender(responderPublic);
    const message = body(1, 3);
    sender.addMacs(message, 0);
    sender.consumeCookieReply(
      parseMessage(checker.createCookieReply(parse(message), source, 0)) as CookieReplyMessage,
      0,
    );
    const withCookie = body(1, 4);
    sender.addMacs(withCookie, 1000);
    // #, time, expected mac2 validity
    const table: [number, number, boolean][] = [
      [1, 0, true],
      [2, COOKIE_REFRESH_TIME_MS - 1, true],
      [3, COOKIE_REFRESH_TIME_MS, false], // secret too old: no cookie can be valid
    ];
    for (const [n, time, valid] of table) {
      expect([n, checker.checkMac2(parse(withCookie), source, time)]).toEqual([n, valid]);
    }
    // A reply made after expiry uses a fresh secret, so the old cookie stays invalid.
    checker.createCookieReply(parse(body(1, 6)), source, COOKIE_REFRESH_TIME_MS);
    expect(checker.checkMac2(parse(withCookie), source, COOKIE_REFRESH_TIME_MS + 1)).toBe(false);
  });

  test('macs on anything but a handshake message is a programmer error', () => {
    expect(() => new MacSender(responderPublic).addMacs(new Uint8Array(64), 0)).toThrow(RangeError);
  });
});
