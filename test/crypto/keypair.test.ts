import {
  REJECT_AFTER_TIME_MS,
  REKEY_AFTER_TIME_MS,
  REKEY_ON_RECEIVE_AFTER_MS,
} from '../../crypto/constants.js';
import { Keypair, Keypairs } from '../../crypto/keypair.js';
import { transportCounterLow, transportLength, transportReceiver } from '../../crypto/messages.js';

const key = (fill: number) => new Uint8Array(32).fill(fill);

/** Two ends of one session: a sends with key 1 and receives with key 2, b the other way round. */
function pair(createdAt = 0): { a: Keypair; b: Keypair } {
  return {
    a: new Keypair({ sendKey: key(1), receiveKey: key(2) }, 10, 20, createdAt, true),
    b: new Keypair({ sendKey: key(2), receiveKey: key(1) }, 20, 10, createdAt, false),
  };
}

/** `packet` sealed by `sender` into a buffer of exactly the transport message's length. */
function sealed(sender: Keypair, packet: Uint8Array): Uint8Array {
  const datagram = new Uint8Array(transportLength(packet.length, 1420));
  expect(sender.seal(packet, 1420, datagram)).toBe(datagram.length);
  return datagram;
}

describe('Keypair', () => {
  test('1. seal then open round-trips, padded to 16, addressed to the remote index', () => {
    const { a, b } = pair();
    const datagram = sealed(a, new Uint8Array([1, 2, 3]));
    expect(datagram.length).toBe(16 + 16 + 16);
    expect(transportReceiver(datagram)).toBe(20);
    expect(b.open(datagram)).toBe(16);
    // Opened in place: the padded plaintext now follows the header.
    expect(datagram.subarray(16, 32)).toEqual(new Uint8Array([1, 2, 3, ...new Array<number>(13).fill(0)]));
  });

  test('2. counters count up from 0; a replayed message is refused after authenticating', () => {
    const { a, b } = pair();
    const first = sealed(a, new Uint8Array(0));
    const second = sealed(a, new Uint8Array(0));
    expect([transportCounterLow(first), transportCounterLow(second)]).toEqual([0, 1]);
    expect(a.sent).toBe(2);
    const replayed = first.slice(); // opening is in place: the replay arrives as its own copy
    expect(b.open(second)).toBe(0);
    expect(b.open(first)).toBe(0);
    expect(b.open(replayed)).toBe('replay');
  });

  test('3. a forged message does not authenticate and does not move the replay window', () => {
    const { a, b } = pair();
    const datagram = sealed(a, new Uint8Array(8));
    const forged = datagram.slice();
    forged[20]! ^= 1;
    const before = forged.slice();
    expect(b.open(forged)).toBe('decrypt_failed');
    expect(forged).toEqual(before); // nothing written
    expect(b.open(datagram)).toBe(16);
  });

  test('4. sending stops at REJECT_AFTER_TIME, receiving just after it', () => {
    const { a } = pair(1000);
    expect(a.canSend(1000 + REJECT_AFTER_TIME_MS - 1)).toBe(true);
    expect(a.canSend(1000 + REJECT_AFTER_TIME_MS)).toBe(false);
    expect(a.canReceive(1000 + REJECT_AFTER_TIME_MS)).toBe(true);
    expect(a.canReceive(1000 + REJECT_AFTER_TIME_MS + 1)).toBe(false);
  });

  test('5. only the initiator rekeys on time: after 120 s sending, after 165 s receiving', () => {
    const { a, b } = pair();
    expect(a.needsRekeyAfterSending(REKEY_AFTER_TIME_MS)).toBe(false);
    expect(a.needsRekeyAfterSending(REKEY_AFTER_TIME_MS + 1)).toBe(true);
    expect(b.needsRekeyAfterSending(REKEY_AFTER_TIME_MS + 1)).toBe(false);
    expect(a.needsRekeyAfterReceiving(REKEY_ON_RECEIVE_AFTER_MS + 1)).toBe(true);
    expect(b.needsRekeyAfterReceiving(REKEY_ON_RECEIVE_AFTER_MS + 1)).toBe(false);
  });

  test('6. zeroed keys neither send nor receive; expired-for-sending still receives', () => {
    const { a, b } = pair();
    const datagram = sealed(a, new Uint8Array(0));
    b.expireForSending();
    expect(b.canSend(0)).toBe(false);
    expect(b.canReceive(0)).toBe(true);
    b.zero();
    expect(b.canReceive(0)).toBe(false);
    expect(b.open(datagram)).toBe('decrypt_failed');
  });

  test('7. the keys handed to the constructor are wiped', () => {
    const keys = { sendKey: key(7), receiveKey: key(8) };
    new Keypair(keys, 1, 2, 0, true);
    expect(keys.sendKey.every((b) => b === 0) && keys.receiveKey.every((b) => b === 0)).toBe(true);
  });
});

describe('Keypairs rotation (§6)', () => {
  const make = (index: number) =>
    new Keypair({ sendKey: key(index), receiveKey: key(index + 1) }, index, 0, 0, true);

  function slots() {
    const released: number[] = [];
    const keypairs = new Keypairs((keypair) => released.push(keypair.localIndex));
    const names = () => [keypairs.previous, keypairs.current, keypairs.next].map((k) => k?.localIndex);
    return { keypairs, released, names };
  }

  test('1. initiator: current moves to previous, the old previous is released', () => {
    const { keypairs, released, names } = slots();
    keypairs.installAsInitiator(make(1));
    expect(names()).toEqual([undefined, 1, undefined]);
    keypairs.installAsInitiator(make(2));
    expect(names()).toEqual([1, 2, undefined]);
    keypairs.installAsInitiator(make(3));
    expect(names()).toEqual([2, 3, undefined]);
    expect(released).toEqual([1]);
  });

  test('2. responder: the new keypair waits in next; previous is released; current unchanged', () => {
    const { keypairs, released, names } = slots();
    keypairs.installAsInitiator(make(1));
    keypairs.installAsInitiator(make(2));
    keypairs.installAsResponder(make(3));
    expect(names()).toEqual([undefined, 2, 3]);
    expect(released).toEqual([1]);
  });

  test('3. responder: a newer next replaces an unconfirmed one', () => {
    const { keypairs, released, names } = slots();
    keypairs.installAsResponder(make(1));
    keypairs.installAsResponder(make(2));
    expect(names()).toEqual([undefined, undefined, 2]);
    expect(released).toEqual([1]);
  });

  test('4. the first packet on next rotates it in; packets on other slots do not', () => {
    const { keypairs, released, names } = slots();
    const one = make(1);
    const two = make(2);
    keypairs.installAsInitiator(one);
    keypairs.installAsResponder(two);
    expect(keypairs.receivedWith(one)).toBe(false);
    expect(names()).toEqual([undefined, 1, 2]);
    expect(keypairs.receivedWith(two)).toBe(true);
    expect(names()).toEqual([1, 2, undefined]);
    expect(keypairs.receivedWith(two)).toBe(false);
    expect(released).toEqual([]);
  });

  test('5. initiator with an unconfirmed next: next becomes previous, the old current is released', () => {
    const { keypairs, released, names } = slots();
    keypairs.installAsInitiator(make(1));
    keypairs.installAsResponder(make(2));
    keypairs.installAsInitiator(make(3));
    expect(names()).toEqual([2, 3, undefined]);
    expect(released).toEqual([1]);
  });

  test('6. clear releases and zeroes all three', () => {
    const { keypairs, released, names } = slots();
    const one = make(1);
    keypairs.installAsInitiator(one);
    keypairs.installAsInitiator(make(2));
    keypairs.installAsResponder(make(3));
    keypairs.clear();
    expect(names()).toEqual([undefined, undefined, undefined]);
    expect(released.sort()).toEqual([1, 2, 3]);
    expect(one.canReceive(0)).toBe(false);
  });

  test('7. expireForSending stops current and next from sending', () => {
    const { keypairs } = slots();
    keypairs.installAsInitiator(make(1));
    keypairs.installAsResponder(make(2));
    keypairs.expireForSending();
    expect(keypairs.current!.canSend(0)).toBe(false);
    expect(keypairs.next!.canSend(0)).toBe(false);
  });

  test('8. initiator keeping next (crossed initiations): next waits, and its first packet rotates it in', () => {
    const { keypairs, released, names } = slots();
    keypairs.installAsInitiator(make(1));
    keypairs.installAsResponder(make(2));
    keypairs.installAsInitiator(make(3), true);
    expect(names()).toEqual([1, 3, 2]);
    expect(keypairs.receivedWith(keypairs.next!)).toBe(true);
    expect(names()).toEqual([3, 2, undefined]);
    expect(released).toEqual([1]);
  });

  test('9. a kept next the peer never confirms goes at the next install, kept or not', () => {
    for (const keepNext of [true, false]) {
      const { keypairs, released, names } = slots();
      keypairs.installAsResponder(make(1));
      keypairs.installAsInitiator(make(2), true);
      expect(names()).toEqual([undefined, 2, 1]);
      keypairs.installAsInitiator(make(3), keepNext);
      expect(names()).toEqual([2, 3, undefined]);
      expect(released).toEqual([1]);
    }
  });
});
