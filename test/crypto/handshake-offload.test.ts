// The responder's handshake split in three (crypto/tunnel.ts admitInitiation, noise.ts answerInitiation,
// tunnel.ts acceptInitiation), as the node runs it with a handshake worker: the pure middle part answers
// exactly as the inline responder does, and only the state part decides whether the answer is used.
import { INITIATION_MAC1_OFFSET } from '../../crypto/constants.js';
import { parseMessage, type InitiationMessage } from '../../crypto/messages.js';
import {
  WIREGUARD,
  answerInitiation,
  initiationFields,
  localStatic,
  peerKeys,
  type InitiationAnswer,
} from '../../crypto/noise.js';
import { clamp, generatePrivateKey, publicKey } from '../../crypto/primitives.js';
import { Tunnel, type TunnelAction } from '../../crypto/tunnel.js';
import { A_INNER, B_INNER, WALL_CLOCK_BASE_MS, ipv4Packet, seededRandom } from './tunnel-pair.js';

const keyOf = (fill: number) => {
  const privateKey = clamp(new Uint8Array(32).fill(fill));
  return { privateKey, publicKey: publicKey(privateKey) };
};
const A = keyOf(0x11);
const B = keyOf(0x22);
const A_ENDPOINT = { address: '192.0.2.1', port: 51820 };
const B_ENDPOINT = { address: '198.51.100.2', port: 51821 };
const A_NAME = Buffer.from(A.publicKey).toString('base64');

/** The initiator: A, whose wall clock stands `clockMs` after the base (its initiations' timestamps). */
function initiator(seed: number, clockMs = 0): Tunnel {
  const a = new Tunnel({
    privateKey: A.privateKey,
    randomBytes: seededRandom(seed),
    wallClockMs: () => WALL_CLOCK_BASE_MS + clockMs,
  });
  a.upsertPeer(B.publicKey, { allowedIps: [`${B_INNER}/32`], endpoint: B_ENDPOINT }, 0);
  return a;
}

/** The responder B with its own seeded randomness (the same seed draws the same ephemeral and index). */
function responder(random: (length: number) => Uint8Array): Tunnel {
  const b = new Tunnel({
    privateKey: B.privateKey,
    randomBytes: random,
    wallClockMs: () => WALL_CLOCK_BASE_MS,
  });
  b.upsertPeer(A.publicKey, { allowedIps: [`${A_INNER}/32`] }, 0);
  return b;
}

/** The datagram of the only send action (a copy). */
function sent(actions: TunnelAction[]): Uint8Array {
  const sends = actions.filter((action) => action.kind === 'send');
  if (sends.length !== 1 || sends[0]!.kind !== 'send')
    throw new Error(`expected one send: ${actions.length}`);
  return sends[0]!.datagram.slice();
}

const initiationFrom = (a: Tunnel): Uint8Array => sent(a.encapsulate(ipv4Packet(A_INNER, B_INNER), 0));

/** Step 2 as the handshake worker runs it: B's key and a snapshot of its peers, not B's Tunnel. */
function answer(
  initiation: Uint8Array,
  ephemeralPrivate: Uint8Array,
): { answer: InitiationAnswer<string>; senderIndex: number } {
  const message = parseMessage(initiation) as InitiationMessage;
  const local = localStatic(B.privateKey);
  const snapshot = new Map([[A_NAME, peerKeys(local, A_NAME)]]);
  const answered = answerInitiation(
    WIREGUARD,
    local,
    initiationFields(message),
    (remoteStatic) => snapshot.get(Buffer.from(remoteStatic).toString('base64')),
    ephemeralPrivate,
    new Uint8Array(0),
  );
  if (!answered.ok) throw new Error(answered.reason);
  const { payload, fields, keys } = answered.answer;
  return { answer: { peer: A_NAME, payload, fields, keys }, senderIndex: message.senderIndex };
}

const drop = (reason: string) => [{ kind: 'drop', reason }];

describe('Responder handshake split (admit, answer, accept)', () => {
  test('1. the split answers byte for byte as the inline responder, given the same ephemeral, and the session works', () => {
    const initiation = initiationFrom(initiator(1));
    const inline = responder(seededRandom(7));
    const expected = sent(inline.decapsulate(initiation, A_ENDPOINT, 0));

    const random = seededRandom(7);
    const split = responder(random);
    expect(split.admitInitiation(initiation, A_ENDPOINT, 0)).toBeUndefined();
    // The inline responder draws its ephemeral, then its index: the same draws, in the same order.
    const { answer: answered, senderIndex } = answer(initiation, generatePrivateKey(random));
    const response = sent(split.acceptInitiation(answered, senderIndex, A_ENDPOINT, 0));
    expect(response[0]).toBe(2); // a response
    expect(Buffer.from(response).toString('hex')).toBe(Buffer.from(expected).toString('hex'));

    // The initiator takes the response and its staged packet arrives through the split responder.
    const a = initiator(1);
    initiationFrom(a);
    const data = sent(a.decapsulate(response, B_ENDPOINT, 0));
    const delivered = split.decapsulate(data, A_ENDPOINT, 0);
    expect(delivered.map((action) => action.kind)).toEqual(['deliver']);
    expect(split.peers()[0]!.rxBytes).toBe(148 + data.length);
  });

  test('2. a replayed initiation is answered but refused by the state part; its keys are wiped', () => {
    const initiation = initiationFrom(initiator(2));
    const random = seededRandom(8);
    const b = responder(random);
    const first = answer(initiation, generatePrivateKey(random));
    expect(sent(b.acceptInitiation(first.answer, first.senderIndex, A_ENDPOINT, 0)).length).toBe(92);
    const replay = answer(initiation, generatePrivateKey(random));
    expect(b.acceptInitiation(replay.answer, replay.senderIndex, A_ENDPOINT, 1_000)).toEqual(
      drop('handshake_invalid'),
    );
    expect(replay.answer.keys.sendKey.every((byte) => byte === 0)).toBe(true);
    expect(replay.answer.keys.receiveKey.every((byte) => byte === 0)).toBe(true);
  });

  test('3. a stale answer (a newer initiation was accepted while it was out) is refused', () => {
    const older = initiationFrom(initiator(3, 0));
    const newer = initiationFrom(initiator(4, 1_000));
    const random = seededRandom(9);
    const b = responder(random);
    const stale = answer(older, generatePrivateKey(random));
    const fresh = answer(newer, generatePrivateKey(random));
    expect(sent(b.acceptInitiation(fresh.answer, fresh.senderIndex, A_ENDPOINT, 0)).length).toBe(92);
    expect(b.acceptInitiation(stale.answer, stale.senderIndex, A_ENDPOINT, 1_000)).toEqual(
      drop('handshake_invalid'),
    );
  });

  test('4. an answer for a peer removed while it was out is refused and changes nothing', () => {
    const initiation = initiationFrom(initiator(5));
    const random = seededRandom(10);
    const b = responder(random);
    const out = answer(initiation, generatePrivateKey(random));
    b.removePeer(A.publicKey);
    expect(b.acceptInitiation(out.answer, out.senderIndex, A_ENDPOINT, 0)).toEqual(drop('handshake_invalid'));
    expect(b.peerCount).toBe(0);
    expect(out.answer.keys.sendKey.every((byte) => byte === 0)).toBe(true);
  });

  test('5. admitInitiation applies mac1 and the under-load rules before any DH', () => {
    const initiation = initiationFrom(initiator(6));
    const b = responder(seededRandom(11));
    const badMac1 = initiation.slice();
    badMac1[116] = badMac1[116]! ^ 1;
    expect(b.admitInitiation(badMac1, A_ENDPOINT, 0)).toEqual(drop('mac1_invalid'));
    expect(b.admitInitiation(initiation.subarray(0, 100), A_ENDPOINT, 0)).toEqual(drop('malformed'));
    expect(b.admitInitiation(new Uint8Array(32).fill(4, 0, 1), A_ENDPOINT, 0)).toEqual(drop('malformed'));
    b.markUnderLoad(0);
    const underLoad = b.admitInitiation(initiation, A_ENDPOINT, 0)!;
    expect(underLoad.map((action) => (action.kind === 'send' ? action.datagram.length : action))).toEqual([
      64, // the cookie reply
      { kind: 'drop', reason: 'cookie_sent' },
    ]);
  });

  test('5b. mac1 is checked once for the datagram just screened, and again for any other or any later use', () => {
    const initiation = initiationFrom(initiator(8));
    const b = responder(seededRandom(13));
    const forged = () => (initiation[INITIATION_MAC1_OFFSET + 3]! ^= 1);
    expect(b.screenInitiation(initiation)).toBeUndefined();
    const copy = initiation.slice();
    copy[INITIATION_MAC1_OFFSET]! ^= 1;
    expect(b.admitInitiation(copy, A_ENDPOINT, 0)).toEqual(drop('mac1_invalid')); // not the one screened
    expect(b.screenInitiation(initiation)).toBeUndefined();
    expect(b.admitInitiation(initiation, A_ENDPOINT, 0)).toBeUndefined(); // the one screened: passed
    forged(); // the same buffer, another datagram (an I/O shell's reused view), admitted without a screen
    expect(b.admitInitiation(initiation, A_ENDPOINT, 0)).toEqual(drop('mac1_invalid'));
    expect(b.screenInitiation(initiation)).toEqual(drop('mac1_invalid'));
    forged();
    expect(b.screenInitiation(new Uint8Array(32).fill(1, 0, 1))).toEqual(drop('malformed'));
    expect(b.admitInitiation(initiation, A_ENDPOINT, 0)).toBeUndefined(); // valid again, checked again
    // Screened, then any other engine call, then the buffer reused: checked again (a helper's review).
    expect(b.screenInitiation(initiation)).toBeUndefined();
    b.tick(0);
    forged();
    expect(b.admitInitiation(initiation, A_ENDPOINT, 0)).toEqual(drop('mac1_invalid'));
    forged();
    expect(b.screenInitiation(initiation)).toBeUndefined();
    forged();
    expect(b.decapsulate(initiation, A_ENDPOINT, 0)).toEqual(drop('mac1_invalid'));
  });

  test('5d. a datagram screened and then dropped by the I/O shell (no engine call): its buffer, holding another datagram, is checked anew', () => {
    const initiation = initiationFrom(initiator(17));
    const b = responder(seededRandom(18));
    const view = initiation.slice(); // the receive view an I/O shell hands out again for its next datagram
    const garbageMac1 = (bytes: Uint8Array) =>
      bytes.fill(0x5a, INITIATION_MAC1_OFFSET, INITIATION_MAC1_OFFSET + 16);
    // #, the next datagram in the same view, what each entry point makes of it
    const cases: [number, (bytes: Uint8Array) => void, string][] = [
      [1, garbageMac1, 'mac1_invalid'],
      [2, (bytes) => garbageMac1(bytes.fill(7, 1, 2)), 'malformed'], // a reserved byte set: not an initiation
    ];
    for (const [n, rewrite, reason] of cases) {
      for (const enter of [b.admitInitiation, b.respondToInitiation]) {
        view.set(initiation);
        expect(b.screenInitiation(view)).toBeUndefined();
        rewrite(view); // screened, then dropped without a call (the per-source cap), then the view reused
        expect([n, enter.call(b, view, A_ENDPOINT, 0)]).toEqual([n, drop(reason)]);
      }
    }
  });

  test('5c. respondToInitiation (the inline responder) answers as decapsulate does, and its buffer may be reused once it returns', () => {
    const initiation = initiationFrom(initiator(14));
    const expected = sent(responder(seededRandom(15)).decapsulate(initiation, A_ENDPOINT, 0));
    const b = responder(seededRandom(15));
    const buffer = initiation.slice(); // a receive buffer, reused once the call returns
    expect(b.screenInitiation(buffer)).toBeUndefined();
    const response = sent(b.respondToInitiation(buffer, A_ENDPOINT, 0));
    expect(Buffer.from(response).toString('hex')).toBe(Buffer.from(expected).toString('hex'));
    buffer.fill(0xee);
    // The initiator takes the response; its staged packet opens at B with the handshake B kept.
    const a = initiator(14);
    initiationFrom(a);
    const data = sent(a.decapsulate(response, B_ENDPOINT, 0));
    expect(b.decapsulate(data, A_ENDPOINT, 0).map((action) => action.kind)).toEqual(['deliver']);
    // Refused as admitInitiation refuses: a bad mac1, and under load a cookie reply.
    const c = responder(seededRandom(16));
    const badMac1 = initiation.slice();
    badMac1[INITIATION_MAC1_OFFSET] = badMac1[INITIATION_MAC1_OFFSET]! ^ 1;
    expect(c.respondToInitiation(badMac1, A_ENDPOINT, 0)).toEqual(drop('mac1_invalid'));
    c.markUnderLoad(0);
    const underLoad = c.respondToInitiation(initiation, A_ENDPOINT, 0);
    expect(underLoad.map((action) => (action.kind === 'send' ? action.datagram.length : action))).toEqual([
      64,
      { kind: 'drop', reason: 'cookie_sent' },
    ]);
  });

  test('6. answerInitiation: a refused or failed initiation wipes the ephemeral it was given', () => {
    const message = parseMessage(initiationFrom(initiator(7))) as InitiationMessage;
    const local = localStatic(B.privateKey);
    const keys = peerKeys(local, A.publicKey);
    const cases: [string, (remoteStatic: Uint8Array) => typeof keys | undefined, () => boolean, string][] = [
      ['unknown initiator', () => undefined, () => true, 'unknown_peer'],
      ['refused by admit', () => keys, () => false, 'refused'],
    ];
    for (const [name, lookup, admit, reason] of cases) {
      const ephemeral = generatePrivateKey(seededRandom(12));
      const answered = answerInitiation(
        WIREGUARD,
        local,
        initiationFields(message),
        lookup,
        ephemeral,
        new Uint8Array(0),
        admit,
      );
      expect([name, answered.ok ? 'ok' : answered.reason]).toEqual([name, reason]);
      expect(ephemeral.every((byte) => byte === 0)).toBe(true);
    }
  });
});
