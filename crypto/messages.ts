// WireGuard message framing (docs/WIREGUARD.md §1): parse a datagram by exact type and length into zero-copy
// views, or reject it; serializers write fresh buffers. parseMessage never throws, whatever the bytes.
import {
  AEAD_TAG_LENGTH,
  COOKIE_LENGTH,
  COOKIE_REPLY_COOKIE_OFFSET,
  COOKIE_REPLY_NONCE_OFFSET,
  COOKIE_REPLY_RECEIVER_OFFSET,
  COOKIE_REPLY_SIZE,
  INITIATION_EPHEMERAL_OFFSET,
  INITIATION_MAC1_OFFSET,
  INITIATION_MAC2_OFFSET,
  INITIATION_SENDER_OFFSET,
  INITIATION_SIZE,
  INITIATION_STATIC_OFFSET,
  INITIATION_TIMESTAMP_OFFSET,
  KEY_LENGTH,
  MAC_LENGTH,
  MESSAGE_COOKIE_REPLY,
  MESSAGE_INITIATION,
  MESSAGE_RESPONSE,
  MESSAGE_TRANSPORT,
  PADDING_MULTIPLE,
  RESPONSE_EMPTY_OFFSET,
  RESPONSE_EPHEMERAL_OFFSET,
  RESPONSE_MAC1_OFFSET,
  RESPONSE_MAC2_OFFSET,
  RESPONSE_RECEIVER_OFFSET,
  RESPONSE_SENDER_OFFSET,
  RESPONSE_SIZE,
  TRANSPORT_CONTENT_OFFSET,
  TRANSPORT_COUNTER_OFFSET,
  TRANSPORT_MIN_SIZE,
  TRANSPORT_RECEIVER_OFFSET,
  TIMESTAMP_LENGTH,
  XAEAD_NONCE_LENGTH,
  sealedLength,
} from './constants.js';
import type { TransportAEAD } from './aead.js';
import { bufferOf, byteOffsetOf, readWord } from './words.js';

/** Fields shared by the two handshake messages, which carry mac1/mac2 (see cookie.ts). */
interface MacFields {
  /** The whole datagram: mac1 covers bytes before `mac1`, mac2 the bytes before `mac2`. */
  readonly bytes: Uint8Array;
  readonly mac1: Uint8Array;
  readonly mac2: Uint8Array;
}

export interface InitiationMessage extends MacFields {
  readonly type: typeof MESSAGE_INITIATION;
  readonly senderIndex: number;
  readonly ephemeral: Uint8Array; // 32
  readonly encryptedStatic: Uint8Array; // 48
  readonly encryptedTimestamp: Uint8Array; // 28
}

export interface ResponseMessage extends MacFields {
  readonly type: typeof MESSAGE_RESPONSE;
  readonly senderIndex: number;
  readonly receiverIndex: number;
  readonly ephemeral: Uint8Array; // 32
  readonly encryptedNothing: Uint8Array; // 16
}

export interface CookieReplyMessage {
  readonly type: typeof MESSAGE_COOKIE_REPLY;
  readonly bytes: Uint8Array;
  readonly receiverIndex: number;
  readonly nonce: Uint8Array; // 24
  readonly encryptedCookie: Uint8Array; // 32
}

export interface TransportMessage {
  readonly type: typeof MESSAGE_TRANSPORT;
  readonly bytes: Uint8Array;
  readonly receiverIndex: number;
  /** The 64-bit counter as 32-bit halves, so the hot path creates no bigint. */
  readonly counterHigh: number;
  readonly counterLow: number;
  /** Ciphertext of the padded packet followed by the 16-byte tag (≥ 16 bytes). */
  readonly content: Uint8Array;
}

export type HandshakeMessage = InitiationMessage | ResponseMessage;
export type Message = InitiationMessage | ResponseMessage | CookieReplyMessage | TransportMessage;

// Sealed field sizes: each is its plaintext plus the AEAD tag.
const ENCRYPTED_STATIC_LENGTH = sealedLength(KEY_LENGTH); // 48
const ENCRYPTED_TIMESTAMP_LENGTH = sealedLength(TIMESTAMP_LENGTH); // 28
const ENCRYPTED_NOTHING_LENGTH = sealedLength(0); // 16
const ENCRYPTED_COOKIE_LENGTH = sealedLength(COOKIE_LENGTH); // 32

/** Little-endian u32 read without a DataView (none per packet on the hot path). */
const readU32 = (bytes: Uint8Array, offset: number): number => readWord(bytes, offset) >>> 0;
const view = (bytes: Uint8Array): DataView => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const slice = (bytes: Uint8Array, offset: number, length: number): Uint8Array =>
  bytes.subarray(offset, offset + length);

/** Handshake message sizes by type - 1: initiation, response, cookie reply. */
const HANDSHAKE_SIZES = [INITIATION_SIZE, RESPONSE_SIZE, COOKIE_REPLY_SIZE];

/**
 * The type (1 to 3) of a datagram parseMessage takes for a handshake message, from its first 4 bytes and
 * its length alone; 0 for anything else. For counting what arrives without parsing it.
 */
export function handshakeTypeOf(datagram: Uint8Array): number {
  // Byte by byte, as the first byte alone settles a transport message: this runs for every datagram.
  const type = datagram.length > 0 ? datagram[0]! : 0;
  if (type < 1 || type > 3 || datagram.length !== HANDSHAKE_SIZES[type - 1]) return 0;
  return (datagram[1]! | datagram[2]! | datagram[3]!) === 0 ? type : 0; // the u32's other bytes
}

/**
 * Classifies a datagram. The type is the first 4 bytes as u32 LE, so non-zero reserved bytes make an
 * unknown type. Types 1-3 need their exact size, type 4 at least 32 bytes. Anything else: undefined.
 * The returned fields are views into `datagram` (no copies); numbers are read without a DataView.
 */
export function parseMessage(datagram: Uint8Array): Message | undefined {
  if (datagram.length < 4) return undefined;
  const type = readU32(datagram, 0);
  switch (type) {
    case MESSAGE_INITIATION:
      if (datagram.length !== INITIATION_SIZE) return undefined;
      return {
        type,
        bytes: datagram,
        senderIndex: readU32(datagram, INITIATION_SENDER_OFFSET),
        ephemeral: slice(datagram, INITIATION_EPHEMERAL_OFFSET, KEY_LENGTH),
        encryptedStatic: slice(datagram, INITIATION_STATIC_OFFSET, ENCRYPTED_STATIC_LENGTH),
        encryptedTimestamp: slice(datagram, INITIATION_TIMESTAMP_OFFSET, ENCRYPTED_TIMESTAMP_LENGTH),
        mac1: slice(datagram, INITIATION_MAC1_OFFSET, MAC_LENGTH),
        mac2: slice(datagram, INITIATION_MAC2_OFFSET, MAC_LENGTH),
      };
    case MESSAGE_RESPONSE:
      if (datagram.length !== RESPONSE_SIZE) return undefined;
      return {
        type,
        bytes: datagram,
        senderIndex: readU32(datagram, RESPONSE_SENDER_OFFSET),
        receiverIndex: readU32(datagram, RESPONSE_RECEIVER_OFFSET),
        ephemeral: slice(datagram, RESPONSE_EPHEMERAL_OFFSET, KEY_LENGTH),
        encryptedNothing: slice(datagram, RESPONSE_EMPTY_OFFSET, ENCRYPTED_NOTHING_LENGTH),
        mac1: slice(datagram, RESPONSE_MAC1_OFFSET, MAC_LENGTH),
        mac2: slice(datagram, RESPONSE_MAC2_OFFSET, MAC_LENGTH),
      };
    case MESSAGE_COOKIE_REPLY:
      if (datagram.length !== COOKIE_REPLY_SIZE) return undefined;
      return {
        type,
        bytes: datagram,
        receiverIndex: readU32(datagram, COOKIE_REPLY_RECEIVER_OFFSET),
        nonce: slice(datagram, COOKIE_REPLY_NONCE_OFFSET, XAEAD_NONCE_LENGTH),
        encryptedCookie: slice(datagram, COOKIE_REPLY_COOKIE_OFFSET, ENCRYPTED_COOKIE_LENGTH),
      };
    case MESSAGE_TRANSPORT:
      if (datagram.length < TRANSPORT_MIN_SIZE) return undefined;
      return {
        type,
        bytes: datagram,
        receiverIndex: readU32(datagram, TRANSPORT_RECEIVER_OFFSET),
        counterLow: readU32(datagram, TRANSPORT_COUNTER_OFFSET),
        counterHigh: readU32(datagram, TRANSPORT_COUNTER_OFFSET + 4),
        content: datagram.subarray(TRANSPORT_CONTENT_OFFSET),
      };
    default:
      return undefined;
  }
}

/** A fresh message buffer of `size` bytes with the type word written. */
function messageBuffer(type: number, size: number): { bytes: Uint8Array; data: DataView } {
  const bytes = new Uint8Array(size);
  const data = view(bytes);
  data.setUint32(0, type, true);
  return { bytes, data };
}

function put(bytes: Uint8Array, offset: number, field: Uint8Array, length: number): void {
  if (field.length !== length) throw new RangeError(`field at offset ${offset} must be ${length} bytes`);
  bytes.set(field, offset);
}

/** An initiation with mac1 and mac2 zero: cookie.ts's MacSender fills them in. */
export function writeInitiation(fields: {
  senderIndex: number;
  ephemeral: Uint8Array;
  encryptedStatic: Uint8Array;
  encryptedTimestamp: Uint8Array;
}): Uint8Array {
  const { bytes, data } = messageBuffer(MESSAGE_INITIATION, INITIATION_SIZE);
  data.setUint32(INITIATION_SENDER_OFFSET, fields.senderIndex, true);
  put(bytes, INITIATION_EPHEMERAL_OFFSET, fields.ephemeral, KEY_LENGTH);
  put(bytes, INITIATION_STATIC_OFFSET, fields.encryptedStatic, ENCRYPTED_STATIC_LENGTH);
  put(bytes, INITIATION_TIMESTAMP_OFFSET, fields.encryptedTimestamp, ENCRYPTED_TIMESTAMP_LENGTH);
  return bytes;
}

/** A response with mac1 and mac2 zero: cookie.ts's MacSender fills them in. */
export function writeResponse(fields: {
  senderIndex: number;
  receiverIndex: number;
  ephemeral: Uint8Array;
  encryptedNothing: Uint8Array;
}): Uint8Array {
  const { bytes, data } = messageBuffer(MESSAGE_RESPONSE, RESPONSE_SIZE);
  data.setUint32(RESPONSE_SENDER_OFFSET, fields.senderIndex, true);
  data.setUint32(RESPONSE_RECEIVER_OFFSET, fields.receiverIndex, true);
  put(bytes, RESPONSE_EPHEMERAL_OFFSET, fields.ephemeral, KEY_LENGTH);
  put(bytes, RESPONSE_EMPTY_OFFSET, fields.encryptedNothing, ENCRYPTED_NOTHING_LENGTH);
  return bytes;
}

export function writeCookieReply(fields: {
  receiverIndex: number;
  nonce: Uint8Array;
  encryptedCookie: Uint8Array;
}): Uint8Array {
  const { bytes, data } = messageBuffer(MESSAGE_COOKIE_REPLY, COOKIE_REPLY_SIZE);
  data.setUint32(COOKIE_REPLY_RECEIVER_OFFSET, fields.receiverIndex, true);
  put(bytes, COOKIE_REPLY_NONCE_OFFSET, fields.nonce, XAEAD_NONCE_LENGTH);
  put(bytes, COOKIE_REPLY_COOKIE_OFFSET, fields.encryptedCookie, ENCRYPTED_COOKIE_LENGTH);
  return bytes;
}

/**
 * Plaintext length after padding (§1.4): zero-pad to a multiple of 16 but never past the MTU
 * (wireguard-go calculatePaddingSize; mtu 0 means plain 16-alignment).
 */
export function paddedLength(length: number, mtu: number): number {
  let last = length;
  if (mtu > 0 && last > mtu) last %= mtu;
  let padded = Math.ceil(last / PADDING_MULTIPLE) * PADDING_MULTIPLE;
  if (mtu > 0) padded = Math.min(padded, mtu);
  return length + (padded - last);
}

/** The length of the transport message sealTransport makes of a packet of `packetLength` bytes. */
export const transportLength = (packetLength: number, mtu: number): number =>
  TRANSPORT_CONTENT_OFFSET + paddedLength(packetLength, mtu) + AEAD_TAG_LENGTH;

/**
 * Writes a complete transport message into out[offset ..): header, the packet zero-padded (paddedLength),
 * sealed in place with the keypair's send cipher under the given counter (32-bit halves); returns its length
 * (transportLength). An empty packet makes a keepalive. No view or buffer is made: `out` may be a reused or
 * shared buffer, and the packet may already lie at out[offset + 16 ..), where its ciphertext goes. Anywhere
 * else it must not overlap the message: an aligned packet is encrypted straight from where it lies, and
 * checking for overlap would cost the buffer getters this path avoids (every caller's packet lies in its
 * own buffer: a TUN read, a split's segment, a staged copy).
 */
export function sealTransport(
  cipher: TransportAEAD,
  receiverIndex: number,
  counterHigh: number,
  counterLow: number,
  packet: Uint8Array,
  mtu: number,
  out: Uint8Array,
  offset = 0,
): number {
  const size = checkTransportRoom(packet.length, mtu, out, offset);
  const content = offset + TRANSPORT_CONTENT_OFFSET;
  // Offsets first: the buffer getter is a call into C++, needed only when the offsets say "in place".
  const packetAt = byteOffsetOf(packet);
  const contentAt = byteOffsetOf(out) + content;
  const inPlace = packetAt === contentAt && bufferOf(packet) === bufferOf(out);
  // Both on a word boundary: sealed from where the packet lies, no copy into out first.
  if (inPlace || ((packetAt | contentAt) & 3) !== 0) {
    if (!inPlace) out.set(packet, content);
    return sealTransportInPlace(
      cipher,
      receiverIndex,
      counterHigh,
      counterLow,
      packet.length,
      mtu,
      out,
      offset,
    );
  }
  writeTransportHeader(out, offset, receiverIndex, counterHigh, counterLow);
  const plainLength = size - TRANSPORT_CONTENT_OFFSET - AEAD_TAG_LENGTH;
  cipher.sealPadded(counterHigh, counterLow, packet, 0, packet.length, out, content, plainLength);
  return size;
}

/**
 * sealTransport for a packet of `packetLength` bytes that already lies at out[offset + 16 ..) (a crypto
 * thread's ring record): no view of it is needed. `receiverIndex` may be given as its int32 bit pattern.
 */
export function sealTransportInPlace(
  cipher: TransportAEAD,
  receiverIndex: number,
  counterHigh: number,
  counterLow: number,
  packetLength: number,
  mtu: number,
  out: Uint8Array,
  offset = 0,
): number {
  const size = checkTransportRoom(packetLength, mtu, out, offset);
  writeTransportHeader(out, offset, receiverIndex, counterHigh, counterLow);
  const content = offset + TRANSPORT_CONTENT_OFFSET;
  const plainLength = size - TRANSPORT_CONTENT_OFFSET - AEAD_TAG_LENGTH;
  // The zero padding (under 16 bytes) written out: TypedArray fill is a call into C++, slower for so few.
  for (let i = content + packetLength; i < content + plainLength; i++) out[i] = 0;
  cipher.sealInPlace(counterHigh, counterLow, out, content, plainLength);
  return size;
}

/** A transport message's 16-byte header at out[offset ..): type, receiver index, counter. */
function writeTransportHeader(
  out: Uint8Array,
  offset: number,
  receiverIndex: number,
  counterHigh: number,
  counterLow: number,
): void {
  writeU32(out, offset, MESSAGE_TRANSPORT);
  writeU32(out, offset + TRANSPORT_RECEIVER_OFFSET, receiverIndex);
  writeU32(out, offset + TRANSPORT_COUNTER_OFFSET, counterLow);
  writeU32(out, offset + TRANSPORT_COUNTER_OFFSET + 4, counterHigh);
}

/** The transport message's size (transportLength), after checking it fits in out[offset ..). */
function checkTransportRoom(packetLength: number, mtu: number, out: Uint8Array, offset: number): number {
  const size = transportLength(packetLength, mtu);
  if (offset < 0 || offset + size > out.length) throw new RangeError(`transport message needs ${size} bytes`);
  return size;
}

/** Little-endian u32 without a DataView (none per packet on the hot path). */
function writeU32(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value & 0xff;
  bytes[offset + 1] = (value >>> 8) & 0xff;
  bytes[offset + 2] = (value >>> 16) & 0xff;
  bytes[offset + 3] = value >>> 24;
}

/** Whether a datagram is a transport message by its type word and length (readTransport's precondition). */
export const isTransport = (datagram: Uint8Array): boolean =>
  datagram.length >= TRANSPORT_MIN_SIZE && readU32(datagram, 0) === MESSAGE_TRANSPORT;

/** A transport message's receiver index (isTransport checked). */
export const transportReceiver = (datagram: Uint8Array): number =>
  readU32(datagram, TRANSPORT_RECEIVER_OFFSET);

/**
 * The same index as a signed 32-bit integer, as IndexTable keys it: always a small integer, where an unsigned
 * index above 2^31 is a heap number allocated per packet.
 */
export const transportReceiverKey = (datagram: Uint8Array): number =>
  readWord(datagram, TRANSPORT_RECEIVER_OFFSET);

/** The halves of a transport message's counter (isTransport checked), of the one at `offset` in `bytes`. */
export const transportCounterLow = (bytes: Uint8Array, offset = 0): number =>
  readU32(bytes, offset + TRANSPORT_COUNTER_OFFSET);
export const transportCounterHigh = (bytes: Uint8Array, offset = 0): number =>
  readU32(bytes, offset + TRANSPORT_COUNTER_OFFSET + 4);

/**
 * Authenticates and decrypts a transport message in place with the keypair's receive cipher: the padded
 * plaintext (empty for a keepalive) is then datagram[16 .. 16 + returned length). -1 when it does not
 * authenticate (nothing written). The caller recovers the real length from the IP header and runs the
 * replay filter only after this succeeds. The message may lie at `offset` in a larger buffer (a crypto
 * thread's ring), `length` bytes long; its plaintext then starts at offset + 16.
 */
export function openTransport(
  cipher: TransportAEAD,
  datagram: Uint8Array,
  counterHigh: number,
  counterLow: number,
  offset = 0,
  length = datagram.length - offset,
): number {
  const plainLength = length - TRANSPORT_CONTENT_OFFSET - AEAD_TAG_LENGTH;
  return cipher.openInPlace(counterHigh, counterLow, datagram, offset + TRANSPORT_CONTENT_OFFSET, plainLength)
    ? plainLength
    : -1;
}
