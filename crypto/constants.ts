// Every wire size, offset and protocol limit in one place, as the kernel's messages.h and wireguard-go's
// constants.go. Specification constants (fixed by the protocol, docs/WIREGUARD.md §1-§4) are kept apart from
// implementation constants (choices of this engine that a peer never sees). Times are milliseconds because
// the engine's injected clocks are.

const ascii = (text: string): Uint8Array => new TextEncoder().encode(text);

// ---------------------------------------------------------------------------------------------------------
// Specification: primitive sizes
// ---------------------------------------------------------------------------------------------------------

export const KEY_LENGTH = 32; // X25519 keys, symmetric keys, pre-shared keys
export const HASH_LENGTH = 32; // BLAKE2s-256
export const MAC_LENGTH = 16; // BLAKE2s-128 keyed: mac1, mac2, cookie
export const COOKIE_LENGTH = 16;
export const AEAD_TAG_LENGTH = 16;
export const AEAD_NONCE_LENGTH = 12; // 4 zero bytes ‖ u64 LE counter
export const XAEAD_NONCE_LENGTH = 24;
export const TIMESTAMP_LENGTH = 12; // TAI64N

/** AEAD output length for a plaintext of `length` bytes. */
export const sealedLength = (length: number): number => length + AEAD_TAG_LENGTH;

// ---------------------------------------------------------------------------------------------------------
// Specification: Noise and WireGuard labels (§2.2)
// ---------------------------------------------------------------------------------------------------------

export const CONSTRUCTION = ascii('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s');
export const IDENTIFIER = ascii('WireGuard v1 zx2c4 Jason@zx2c4.com');
export const LABEL_MAC1 = ascii('mac1----');
export const LABEL_COOKIE = ascii('cookie--');

// ---------------------------------------------------------------------------------------------------------
// Specification: message types, sizes and offsets (§1). The type is the first 4 bytes read as u32 LE.
// ---------------------------------------------------------------------------------------------------------

export const MESSAGE_INITIATION = 1;
export const MESSAGE_RESPONSE = 2;
export const MESSAGE_COOKIE_REPLY = 3;
export const MESSAGE_TRANSPORT = 4;

export const INITIATION_SIZE = 148;
export const INITIATION_SENDER_OFFSET = 4;
export const INITIATION_EPHEMERAL_OFFSET = 8;
export const INITIATION_STATIC_OFFSET = 40;
export const INITIATION_TIMESTAMP_OFFSET = 88;
export const INITIATION_MAC1_OFFSET = 116;
export const INITIATION_MAC2_OFFSET = 132;

export const RESPONSE_SIZE = 92;
export const RESPONSE_SENDER_OFFSET = 4;
export const RESPONSE_RECEIVER_OFFSET = 8;
export const RESPONSE_EPHEMERAL_OFFSET = 12;
export const RESPONSE_EMPTY_OFFSET = 44;
export const RESPONSE_MAC1_OFFSET = 60;
export const RESPONSE_MAC2_OFFSET = 76;

export const COOKIE_REPLY_SIZE = 64;
export const COOKIE_REPLY_RECEIVER_OFFSET = 4;
export const COOKIE_REPLY_NONCE_OFFSET = 8;
export const COOKIE_REPLY_COOKIE_OFFSET = 32;

export const TRANSPORT_HEADER_SIZE = 16;
export const TRANSPORT_RECEIVER_OFFSET = 4;
export const TRANSPORT_COUNTER_OFFSET = 8;
export const TRANSPORT_CONTENT_OFFSET = 16;
/** A transport message with an empty plaintext: header + tag. Shorter type-4 datagrams are dropped. */
export const KEEPALIVE_SIZE = TRANSPORT_HEADER_SIZE + AEAD_TAG_LENGTH; // 32
export const TRANSPORT_MIN_SIZE = KEEPALIVE_SIZE;

export const PADDING_MULTIPLE = 16;

// ---------------------------------------------------------------------------------------------------------
// Specification: limits and timers (§4.1). Counts above 2^53 are bigint.
// ---------------------------------------------------------------------------------------------------------

export const REKEY_AFTER_MESSAGES = 1n << 60n;
/** wireguard-go's value, 2^64 - 2^13 - 1: counters at or above it are never sent and always rejected. */
export const REJECT_AFTER_MESSAGES = (1n << 64n) - (1n << 13n) - 1n;
export const REKEY_AFTER_TIME_MS = 120_000;
export const REJECT_AFTER_TIME_MS = 180_000;
export const REKEY_ATTEMPT_TIME_MS = 90_000;
export const REKEY_TIMEOUT_MS = 5_000;
/** Retransmissions before giving up: REKEY_ATTEMPT_TIME / REKEY_TIMEOUT. */
export const MAX_TIMER_HANDSHAKES = REKEY_ATTEMPT_TIME_MS / REKEY_TIMEOUT_MS; // 18
/** Jitter added to retransmit and new-handshake timers is uniform in [0, this) ms (go fastrandn(334)). */
export const REKEY_TIMEOUT_JITTER_MAX_MS = 334;
export const KEEPALIVE_TIMEOUT_MS = 10_000;
/** Key material is wiped when nothing refreshed it for 3 × REJECT_AFTER_TIME. */
export const ZERO_KEY_MATERIAL_AFTER_MS = REJECT_AFTER_TIME_MS * 3;
/** Initiator of a keypair rekeys on receive once the keypair is this old (165 s). */
export const REKEY_ON_RECEIVE_AFTER_MS = REJECT_AFTER_TIME_MS - KEEPALIVE_TIMEOUT_MS - REKEY_TIMEOUT_MS;
/** Cookie secret lifetime on the responder, and cookie lifetime on the sender (wireguard-go's choice). */
export const COOKIE_REFRESH_TIME_MS = 120_000;
/** Minimum spacing between accepted initiations from one peer (50 per second). */
export const HANDSHAKE_INITIATION_RATE_MS = 20;
/** The device stays "under load" this long after the handshake backlog last crossed its threshold. */
export const UNDER_LOAD_AFTER_TIME_MS = 1_000;

// ---------------------------------------------------------------------------------------------------------
// Implementation constants (this engine's choices, not visible on the wire)
// ---------------------------------------------------------------------------------------------------------

/** Packets queued per peer while no usable keypair exists; the oldest is dropped beyond this. */
export const MAX_STAGED_PACKETS = 128;
/**
 * Handshake messages waiting at once that put the device under load (the I/O shell then calls
 * Tunnel.markUnderLoad). wireguard-go marks load at 1/8 of its handshake queue (128 of 1024), the kernel at
 * 512 of 4096. The node's shell queues nothing: it handles each batch the socket yields in one event-loop
 * turn (a recvmmsg batch of at most BATCH_SLOTS datagrams, nodes/udp.ts), so a quarter of a full batch being
 * initiations with a valid mac1 (Device.fromNetwork counts no others) is the backlog that means load.
 * test/nodes/device.test.ts floods a node with ten such backlogs every 20 ms: only the first backlog costs
 * DHs, the rest get cookie replies, and a real peer connects on its first retransmission.
 */
export const UNDER_LOAD_HANDSHAKE_BACKLOG = 16;
/** Inner MTU when none is configured: 1500 less 80 bytes of IPv6, UDP and WireGuard (wg-quick's fallback). */
export const DEFAULT_MTU = 1420;
/** Per-source handshake rate limiter under load (kernel ratelimiter.c): token bucket. */
export const RATELIMIT_PACKETS_PER_SECOND = 20;
export const RATELIMIT_BURST = 5;
/** Rate-limiter entries idle this long are collected; the table never exceeds RATELIMIT_MAX_ENTRIES. */
export const RATELIMIT_GC_AFTER_MS = 1_000;
export const RATELIMIT_MAX_ENTRIES = 8192;
