import fc from 'fast-check';
import {
  COOKIE_REPLY_SIZE,
  INITIATION_SIZE,
  KEEPALIVE_SIZE,
  RESPONSE_SIZE,
  TRANSPORT_MIN_SIZE,
} from '../../crypto/constants.js';
import {
  handshakeTypeOf,
  paddedLength,
  parseMessage,
  sealTransportInPlace,
  writeCookieReply,
  writeInitiation,
  writeResponse,
  type Message,
} from '../../crypto/messages.js';
import { createTransportCipher } from '../../crypto/primitives.js';
import { VECTORS, hex, loadJson, toHex } from '../helpers/vectors.js';

const kat = loadJson<Record<string, Record<string, string>>>(`${VECTORS}wireguard_kat.json`).no_psk!;

const samples = {
  initiation: hex(kat.initiation!),
  response: hex(kat.response!),
  cookieReply: hex(kat.cookie_reply!),
  transport: hex(kat.data_packet_initiator_to_responder_counter0!),
  keepalive: hex(kat.keepalive_responder_to_initiator_counter0!),
};

describe('parseMessage on the WireGuard KAT', () => {
  test('initiation: fields at their offsets, views into the datagram', () => {
    const m = parseMessage(samples.initiation);
    if (m?.type !== 1) throw new Error('not an initiation');
    expect(m.senderIndex).toBe(0x11223344);
    expect(toHex(m.ephemeral)).toBe(kat.initiation!.slice(16, 80));
    expect([m.encryptedStatic.length, m.encryptedTimestamp.length, m.mac1.length, m.mac2.length]).toEqual([
      48, 28, 16, 16,
    ]);
    expect(m.mac2.byteOffset - samples.initiation.byteOffset).toBe(132);
    expect(m.bytes.buffer).toBe(samples.initiation.buffer);
  });

  test('response', () => {
    const m = parseMessage(samples.response);
    if (m?.type !== 2) throw new Error('not a response');
    expect([m.senderIndex, m.receiverIndex]).toEqual([0x55667788, 0x11223344]);
    expect([m.ephemeral.length, m.encryptedNothing.length, m.mac1.byteOffset]).toEqual([32, 16, 60]);
  });

  test('cookie reply', () => {
    const m = parseMessage(samples.cookieReply);
    if (m?.type !== 3) throw new Error('not a cookie reply');
    expect(m.receiverIndex).toBe(0x11223344);
    expect(toHex(m.nonce)).toBe(kat.cookie_reply_nonce);
    expect(m.encryptedCookie.length).toBe(32);
  });

  test('transport and keepalive', () => {
    const m = parseMessage(samples.transport);
    if (m?.type !== 4) throw new Error('not transport');
    expect([m.receiverIndex, m.counterHigh, m.counterLow, m.content.length]).toEqual([0x55667788, 0, 0, 48]);
    const k = parseMessage(samples.keepalive);
    if (k?.type !== 4) throw new Error('not transport');
    expect([k.receiverIndex, k.content.length]).toEqual([0x11223344, 16]);
  });
});

describe('sealTransportInPlace', () => {
  test('a receiver index given as its int32 bit pattern (as a crypto thread ring holds it) writes the same message', () => {
    const cipher = createTransportCipher(new Uint8Array(32).fill(7));
    const seal = (receiverIndex: number) => {
      const out = new Uint8Array(64);
      out.set([0x45, 0, 3], 16); // the packet, where its ciphertext goes
      return out.subarray(0, sealTransportInPlace(cipher, receiverIndex, 0, 5, 3, 1420, out));
    };
    const sealed = seal(0xdeadbeef);
    expect(seal(0xdeadbeef | 0)).toEqual(sealed);
    expect(parseMessage(sealed)).toMatchObject({ type: 4, receiverIndex: 0xdeadbeef, counterLow: 5 });
  });
});

describe('parseMessage edge cases', () => {
  const withByte = (base: Uint8Array, index: number, value: number) => {
    const copy = Uint8Array.from(base);
    copy[index] = value;
    return copy;
  };
  const sized = (type: number, size: number) => {
    const bytes = new Uint8Array(size);
    bytes[0] = type;
    return bytes;
  };
  // #, datagram, expected type or undefined
  const table: [number, Uint8Array, number | undefined][] = [
    [1, new Uint8Array(0), undefined],
    [2, Uint8Array.of(1, 0, 0), undefined],
    [3, sized(1, INITIATION_SIZE), 1],
    [4, sized(1, INITIATION_SIZE - 1), undefined],
    [5, sized(1, INITIATION_SIZE + 1), undefined],
    [6, sized(2, RESPONSE_SIZE), 2],
    [7, sized(2, RESPONSE_SIZE + 1), undefined],
    [8, sized(3, COOKIE_REPLY_SIZE), 3],
    [9, sized(3, COOKIE_REPLY_SIZE - 1), undefined],
    [10, sized(4, TRANSPORT_MIN_SIZE), 4],
    [11, sized(4, TRANSPORT_MIN_SIZE - 1), undefined],
    [12, sized(4, 65535), 4],
    [13, sized(0, 148), undefined],
    [14, sized(5, 148), undefined],
    [15, withByte(samples.initiation, 1, 1), undefined], // reserved bytes are part of the u32 type
    [16, withByte(samples.response, 3, 0x80), undefined],
    [17, withByte(samples.keepalive, 2, 1), undefined],
    [18, sized(1, RESPONSE_SIZE), undefined], // a response-sized initiation
    [19, sized(2, INITIATION_SIZE), undefined],
    [20, sized(4, KEEPALIVE_SIZE + 1), 4], // transport needs no alignment on receipt
  ];
  test.each(table)('#%i', (_n, datagram, expected) => {
    expect(parseMessage(datagram)?.type).toBe(expected);
  });
  // The metrics count handshake messages by handshakeTypeOf: the same verdict, 0 for anything else.
  test.each(table)('#%i handshakeTypeOf', (_n, datagram, expected) => {
    expect(handshakeTypeOf(datagram)).toBe(expected !== undefined && expected <= 3 ? expected : 0);
  });

  test('a datagram that is a view into a larger buffer is read at its own offset', () => {
    const big = new Uint8Array(300);
    big.set(samples.response, 100);
    const m = parseMessage(big.subarray(100, 100 + RESPONSE_SIZE));
    expect(m?.type === 2 && [m.senderIndex, m.receiverIndex]).toEqual([0x55667788, 0x11223344]);
  });
});

describe('serializers', () => {
  test('round trip of the KAT messages (mac fields aside)', () => {
    const i = parseMessage(samples.initiation) as Extract<Message, { type: 1 }>;
    const rebuilt = writeInitiation(i);
    expect(toHex(rebuilt.subarray(0, 116))).toBe(kat.initiation!.slice(0, 232));
    expect(rebuilt.subarray(116)).toEqual(new Uint8Array(32));

    const r = parseMessage(samples.response) as Extract<Message, { type: 2 }>;
    expect(toHex(writeResponse(r).subarray(0, 60))).toBe(kat.response!.slice(0, 120));

    const c = parseMessage(samples.cookieReply) as Extract<Message, { type: 3 }>;
    expect(toHex(writeCookieReply(c))).toBe(kat.cookie_reply);
  });

  test('a wrong field size is a programmer error', () => {
    expect(() =>
      writeCookieReply({ receiverIndex: 1, nonce: new Uint8Array(12), encryptedCookie: new Uint8Array(32) }),
    ).toThrow(RangeError);
  });
});

describe('paddedLength (wireguard-go calculatePaddingSize)', () => {
  // #, packet length, mtu, padded length
  const table: [number, number, number, number][] = [
    [1, 0, 1420, 0],
    [2, 1, 1420, 16],
    [3, 16, 1420, 16],
    [4, 28, 1420, 32],
    [5, 1419, 1420, 1420], // never past the MTU
    [6, 1420, 1420, 1420],
    [7, 1421, 1420, 1436], // above the MTU: pad the remainder modulo mtu
    [8, 1500, 1420, 1500], // remainder 80 is already aligned
    [9, 17, 0, 32], // mtu 0: plain alignment
    [10, 100, 90, 106], // remainder 10 is padded to 16
  ];
  test.each(table)('#%i', (_n, length, mtu, expected) => {
    expect(paddedLength(length, mtu)).toBe(expected);
  });
});

describe('properties', () => {
  test('random bytes never throw, and whatever parses has an allowed size', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), fc.nat(5), (bytes, type) => {
        if (bytes.length >= 4 && type > 0) bytes.set([type, 0, 0, 0]);
        const m = parseMessage(bytes);
        if (m === undefined) return true;
        const sizes: Record<number, (n: number) => boolean> = {
          1: (n) => n === INITIATION_SIZE,
          2: (n) => n === RESPONSE_SIZE,
          3: (n) => n === COOKIE_REPLY_SIZE,
          4: (n) => n >= TRANSPORT_MIN_SIZE,
        };
        return sizes[m.type]!(bytes.length) && m.bytes === bytes;
      }),
      { numRuns: 5000 },
    );
  });

  test('mutated, truncated and extended valid messages never throw', () => {
    const valid = Object.values(samples);
    fc.assert(
      fc.property(
        fc.constantFrom(...valid),
        fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 6 }),
        fc.integer({ min: -40, max: 40 }),
        (base, flips, resize) => {
          const length = Math.max(0, base.length + resize);
          const bytes = new Uint8Array(length);
          bytes.set(base.subarray(0, Math.min(length, base.length)));
          for (const [index, value] of flips) if (length > 0) bytes[index % length] = value;
          const m = parseMessage(bytes);
          return m === undefined || (m.type >= 1 && m.type <= 4);
        },
      ),
      { numRuns: 5000 },
    );
  });
});
