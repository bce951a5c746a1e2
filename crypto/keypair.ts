// Transport keypairs and their per-peer rotation (docs/WIREGUARD.md §2.7, §6), as wireguard-go's keypair.go and
// BeginSymmetricSession/ReceivedWithKeypair: each peer holds up to three keypairs, `previous`, `current` and
// `next`. Receiving works with any of them (dispatch is by receiver index); sending only with `current`.
import {
  REJECT_AFTER_MESSAGES,
  REJECT_AFTER_TIME_MS,
  REKEY_AFTER_MESSAGES,
  REKEY_AFTER_TIME_MS,
  REKEY_ON_RECEIVE_AFTER_MS,
} from './constants.js';
import { openTransport, sealTransport, transportCounterHigh, transportCounterLow } from './messages.js';
import type { TransportKeys } from './noise.js';
import type { TransportAEAD } from './aead.js';
import { createTransportCipher, wipe } from './primitives.js';
import { ReplayFilter } from './replay.js';

// The send counter is a Number: exact up to 2^53, which no keypair reaches (it lives at most 180 s). The
// limits compare as Numbers; REKEY_AFTER_MESSAGES (2^60) is exact as a double.
const REKEY_AFTER_MESSAGES_NUMBER = Number(REKEY_AFTER_MESSAGES);
const REJECT_AFTER_MESSAGES_NUMBER = Number(REJECT_AFTER_MESSAGES);
const TWO_POW_32 = 0x1_0000_0000;

export class Keypair {
  private readonly send: TransportAEAD;
  private readonly receive: TransportAEAD;
  private readonly pair: { readonly send: TransportAEAD; readonly receive: TransportAEAD };
  private readonly replay = new ReplayFilter();
  private sendCounter = 0;
  private zeroed = false;
  /** With `exportKeys`: the keys until the I/O shell takes them (takeKeys) or the keypair is zeroed. */
  private exported: TransportKeys | undefined;

  /**
   * Takes ownership of `keys` and wipes them once the ciphers hold their own copies.
   * @param localIndex the index the peer addresses us by (the handshake's, re-pointed to this keypair)
   * @param remoteIndex the index we address the peer by
   * @param createdAt monotonic ms of the handshake that derived it
   * @param exportKeys keep the keys for takeKeys (transport messages sealed and opened by the I/O shell)
   */
  constructor(
    keys: TransportKeys,
    readonly localIndex: number,
    readonly remoteIndex: number,
    readonly createdAt: number,
    readonly isInitiator: boolean,
    exportKeys = false,
  ) {
    this.send = createTransportCipher(keys.sendKey);
    this.receive = createTransportCipher(keys.receiveKey);
    this.pair = { send: this.send, receive: this.receive };
    if (exportKeys) this.exported = keys;
    else wipe(keys.sendKey, keys.receiveKey);
  }

  /**
   * The transport keys, handed over once (then forgotten here): the caller copies them to whatever seals and
   * opens for this keypair and wipes them. Undefined without exportKeys, after the first call, or once zeroed.
   */
  takeKeys(): TransportKeys | undefined {
    const keys = this.exported;
    this.exported = undefined;
    return keys;
  }

  /**
   * Both ciphers, for whatever seals and opens this keypair's transport messages in the I/O shell's own
   * buffers (under counters from reserveCounter; the replay window through acceptCounter). Undefined once
   * zeroed: a wiped cipher must never seal.
   */
  ciphers(): { readonly send: TransportAEAD; readonly receive: TransportAEAD } | undefined {
    return this.zeroed ? undefined : this.pair;
  }

  /** The next send counter (the nonce), consumed: for a message sealed elsewhere. The caller checked canSend. */
  reserveCounter(): number {
    return this.sendCounter++;
  }

  /** Messages sent so far with this keypair. */
  get sent(): number {
    return this.sendCounter;
  }

  /** Whether a packet may still be sent: not wiped, not expired by age, counter below the limit. */
  canSend(now: number): boolean {
    return (
      !this.zeroed &&
      this.sendCounter < REJECT_AFTER_MESSAGES_NUMBER &&
      now - this.createdAt < REJECT_AFTER_TIME_MS
    );
  }

  /** Whether a received packet may be opened with it (go: rejected once older than REJECT_AFTER_TIME). */
  canReceive(now: number): boolean {
    return !this.zeroed && now - this.createdAt <= REJECT_AFTER_TIME_MS;
  }

  /** The sender's half of "who rekeys" (§4.2): too many messages, or the initiator's keypair is 120 s old. */
  needsRekeyAfterSending(now: number): boolean {
    return (
      this.sendCounter > REKEY_AFTER_MESSAGES_NUMBER ||
      (this.isInitiator && now - this.createdAt > REKEY_AFTER_TIME_MS)
    );
  }

  /** The receiver's half: the initiator's keypair is 165 s old, close to being rejected. */
  needsRekeyAfterReceiving(now: number): boolean {
    return this.isInitiator && now - this.createdAt > REKEY_ON_RECEIVE_AFTER_MS;
  }

  /**
   * Seals a packet (empty: keepalive) as a transport message at the start of `out` under the next send
   * counter; returns the message's length (transportLength). The caller checked canSend and the room.
   */
  seal(packet: Uint8Array, mtu: number, out: Uint8Array): number {
    const counter = this.reserveCounter();
    return sealTransport(
      this.send,
      this.remoteIndex,
      Math.floor(counter / TWO_POW_32),
      counter >>> 0,
      packet,
      mtu,
      out,
    );
  }

  /**
   * Opens a transport message addressed to this keypair in place: the padded plaintext's length (it now
   * lies at datagram[16 ..)), or a rejection. The replay window moves only after the message authenticated.
   */
  open(datagram: Uint8Array): number | 'decrypt_failed' | 'replay' {
    const counterHigh = transportCounterHigh(datagram);
    const counterLow = transportCounterLow(datagram);
    const length = openTransport(this.receive, datagram, counterHigh, counterLow);
    if (length < 0) return 'decrypt_failed';
    return this.replay.validate(counterHigh, counterLow) ? length : 'replay';
  }

  /**
   * The replay window's half of open, for a message that authenticated elsewhere (a crypto thread): whether
   * its counter is new, moving the window if so. Called in the order the messages arrived.
   */
  acceptCounter(counterHigh: number, counterLow: number): boolean {
    return this.replay.validate(counterHigh, counterLow);
  }

  /** No more sending with it (wireguard-go ExpireCurrentKeypairs); receiving still works until it ages out. */
  expireForSending(): void {
    this.sendCounter = REJECT_AFTER_MESSAGES_NUMBER;
  }

  /** Wipes both keys; the keypair can neither send nor receive afterwards. */
  zero(): void {
    if (this.zeroed) return;
    this.zeroed = true;
    this.send.wipe();
    this.receive.wipe();
    const keys = this.takeKeys();
    if (keys !== undefined) wipe(keys.sendKey, keys.receiveKey);
  }
}

/**
 * A peer's previous/current/next slots. `release` is called for every keypair that leaves the slots, so the
 * owner can free its index; the keypair is zeroed right after.
 */
export class Keypairs {
  private previousKeypair: Keypair | undefined;
  private currentKeypair: Keypair | undefined;
  private nextKeypair: Keypair | undefined;
  /** `next` was kept by installAsInitiator's keepNext: it is older than `current`. */
  private nextPredatesCurrent = false;

  constructor(private readonly release: (keypair: Keypair) => void) {}

  get previous(): Keypair | undefined {
    return this.previousKeypair;
  }

  get current(): Keypair | undefined {
    return this.currentKeypair;
  }

  get next(): Keypair | undefined {
    return this.nextKeypair;
  }

  /**
   * Initiator, after consuming a response: the new keypair is usable at once, and the old previous goes.
   * An unconfirmed `next` we answered (a simultaneous handshake) becomes `previous` and the old current goes
   * (as wireguard-go), else current moves to previous. With `keepNext` (crossed initiations, on the side
   * that lets the peer's session carry both ways: docs/WIREGUARD.md §6) that `next` stays instead, so the
   * peer's first packet on it rotates it in; one the peer never confirms predates current and goes at the
   * next install.
   */
  installAsInitiator(keypair: Keypair, keepNext = false): void {
    const oldPrevious = this.previousKeypair;
    const answered = this.nextKeypair !== undefined && !this.nextPredatesCurrent;
    if (answered && !keepNext) {
      this.previousKeypair = this.nextKeypair;
      this.nextKeypair = undefined;
      this.delete(this.currentKeypair);
    } else {
      if (!answered) {
        this.delete(this.nextKeypair);
        this.nextKeypair = undefined;
      }
      this.previousKeypair = this.currentKeypair;
    }
    this.nextPredatesCurrent = answered && keepNext;
    this.delete(oldPrevious);
    this.currentKeypair = keypair;
  }

  /**
   * Responder, after sending a response: the new keypair waits in `next` and is not sent with until the
   * initiator proves it holds it (receivedWith). `current` keeps working meanwhile; `previous` goes.
   */
  installAsResponder(keypair: Keypair): void {
    this.delete(this.nextKeypair);
    this.nextKeypair = keypair;
    this.nextPredatesCurrent = false;
    this.delete(this.previousKeypair);
    this.previousKeypair = undefined;
  }

  /**
   * Call after a packet authenticated with `keypair`. True when it was the first one on `next`: the rotation
   * happened and the handshake is complete (the caller runs the handshake-complete hooks).
   */
  receivedWith(keypair: Keypair): boolean {
    if (keypair !== this.nextKeypair) return false;
    this.delete(this.previousKeypair);
    this.previousKeypair = this.currentKeypair;
    this.currentKeypair = keypair;
    this.nextKeypair = undefined;
    this.nextPredatesCurrent = false;
    return true;
  }

  /** Stops sending with current and next (the local private key changed). */
  expireForSending(): void {
    this.currentKeypair?.expireForSending();
    this.nextKeypair?.expireForSending();
  }

  /** Deletes all three (zeroKeyMaterial, peer removal). */
  clear(): void {
    this.delete(this.previousKeypair);
    this.delete(this.currentKeypair);
    this.delete(this.nextKeypair);
    this.previousKeypair = this.currentKeypair = this.nextKeypair = undefined;
    this.nextPredatesCurrent = false;
  }

  private delete(keypair: Keypair | undefined): void {
    if (keypair === undefined) return;
    this.release(keypair);
    keypair.zero();
  }
}
