// The handshake workers (nodes/handshakes.ts) on their own, with real worker threads running the compiled
// worker: which answers come back valid, and which a change of keys voids.
import { pathToFileURL } from 'node:url';

import nacl from 'tweetnacl';

import { Tunnel } from '../../crypto/tunnel.js';
import type { InitiationAnswer } from '../../crypto/noise.js';
import { secureRandomBytes } from '../../nodes/random.js';
import { HandshakeWorkers, WARM_HANDSHAKES, warmAnswers } from '../../nodes/handshakes.js';
import { eventually } from '../helpers/eventually.js';
import { threadsThatDetached } from '../helpers/detaches.js';
import { builtProgram } from '../helpers/repo.js';

const FROM = { address: '192.0.2.1', port: 51820 };
// The turn's initiations go to the workers at its end: after this, they are being answered.
const flushed = () => new Promise((resolve) => setImmediate(resolve));

/** An initiator whose initiation (with a valid mac1) is addressed to `responder`'s public key. */
function initiationTo(responder: Uint8Array, initiatorKey: Uint8Array): Uint8Array {
  const initiator = new Tunnel({
    privateKey: initiatorKey,
    randomBytes: secureRandomBytes,
    wallClockMs: Date.now,
  });
  initiator.upsertPeer(responder, { allowedIps: ['10.0.0.2/32'], endpoint: FROM }, 0);
  const packet = new Uint8Array(20);
  packet.set([0x45, 0, 0, 20], 0);
  packet.set([10, 0, 0, 2], 16);
  const [initiation] = initiator.encapsulate(packet, 0);
  if (initiation?.kind !== 'send') throw new Error('no initiation');
  return initiation.datagram.slice();
}

describe('HandshakeWorkers', () => {
  const responderKey = nacl.randomBytes(32);
  const responder = nacl.scalarMult.base(responderKey);
  const initiatorKey = nacl.randomBytes(32);
  const initiator = nacl.scalarMult.base(initiatorKey);
  let answers: (InitiationAnswer<string> | undefined)[];
  let failures: Error[];
  let workers: HandshakeWorkers;

  beforeEach(() => {
    answers = [];
    failures = [];
    workers = new HandshakeWorkers({
      threads: 2,
      privateKey: responderKey,
      onAnswer: (answer) => answers.push(answer),
      onFailure: (error) => failures.push(error),
    });
    workers.upsertPeer(initiator, undefined, false);
  });
  afterEach(async () => {
    await workers.close();
    expect(failures).toEqual([]);
  });

  test('1. a peer’s initiation is answered with its name and keys; a stranger’s is not', async () => {
    workers.submit(initiationTo(responder, initiatorKey), FROM);
    workers.submit(initiationTo(responder, nacl.randomBytes(32)), FROM);
    expect(workers.backlog).toBe(2);
    await eventually('both answers', () => answers.length === 2);
    expect(workers.backlog).toBe(0);
    const answered = answers.filter((answer) => answer !== undefined);
    expect(answered.map((answer) => answer.peer)).toEqual([Buffer.from(initiator).toString('base64')]);
    expect(answered[0]!.keys.sendKey.some((byte) => byte !== 0)).toBe(true);
  });

  test('2. adding a peer with a pre-shared key while an answer is out voids nothing', async () => {
    workers.submit(initiationTo(responder, initiatorKey), FROM);
    await flushed();
    workers.upsertPeer(nacl.randomBytes(32), nacl.randomBytes(32), false);
    await eventually('the answer', () => answers.length === 1);
    expect(answers[0]?.peer).toBe(Buffer.from(initiator).toString('base64'));
  });

  test('3. a known peer’s new pre-shared key, or our new private key, voids the answers out', async () => {
    const cases: [string, () => void][] = [
      ['pre-shared key', () => workers.upsertPeer(initiator, nacl.randomBytes(32), true)],
      ['private key', () => workers.setPrivateKey(nacl.randomBytes(32))],
    ];
    for (const [name, change] of cases) {
      answers.length = 0;
      workers.submit(initiationTo(responder, initiatorKey), FROM);
      await flushed();
      change(); // the worker answers with the keys it had
      await eventually(`the answer after a new ${name}`, () => answers.length === 1);
      expect([name, answers[0]]).toEqual([name, undefined]);
    }
  });

  test('4. after close, nothing is answered and no worker is left running', async () => {
    await workers.close();
    workers.submit(initiationTo(responder, initiatorKey), FROM);
    expect(workers.backlog).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(answers).toEqual([]);
  });

  test('8. the shared records an answer came in are zeroed once the device has it (they held its keys)', async () => {
    workers.submit(initiationTo(responder, initiatorKey), FROM);
    await eventually('the answer', () => answers.length === 1);
    // A view into the records (the keys themselves were copied out before the wipe).
    const record = answers[0]!.fields.ephemeral;
    expect(Object.prototype.toString.call(record.buffer)).toBe('[object SharedArrayBuffer]'); // another realm's
    expect(new Uint8Array(record.buffer).every((byte) => byte === 0)).toBe(true);
    expect(answers[0]!.keys.sendKey.some((byte) => byte !== 0)).toBe(true);
  });

  test('5. a worker’s start-up warm-up answers each of its throwaway initiations, as a real one is answered', () => {
    // Every worker above ran it before its first real initiation, and answered that one as before.
    expect(warmAnswers(secureRandomBytes)).toBe(WARM_HANDSHAKES);
  });

  test('6. the warm-up leaves no key behind: the randomness of every key it made is zeroed', () => {
    const drawn: Uint8Array[] = [];
    const recorded = (length: number) => {
      const bytes = secureRandomBytes(length);
      drawn.push(bytes);
      return bytes;
    };
    expect(warmAnswers(recorded)).toBe(WARM_HANDSHAKES);
    // Two statics, the initiation's ephemeral, one ephemeral per answer.
    expect(drawn).toHaveLength(3 + WARM_HANDSHAKES);
    expect(drawn.filter((bytes) => bytes.some((byte) => byte !== 0))).toEqual([]);
  });
});

// In a process of its own, as the node's main thread: keys, a pre-shared key and an initiation go to two
// workers and an answer comes back. No thread detaches a buffer, or its typed-array code would run with
// detach checks: the device's thread its data path, a worker its X25519 and BLAKE2s.
const ANSWER_IN_A_PROCESS = `
const { HandshakeWorkers } = await import(process.argv[2]);
const [privateKey, initiator, presharedKey, initiation] = process.argv.slice(3).map((hex) => Buffer.from(hex, 'hex'));
const answered = new Promise((resolve, reject) => {
  const workers = new HandshakeWorkers({
    threads: 2,
    privateKey: new Uint8Array(privateKey),
    onAnswer: (answer) => resolve([workers, answer]),
    onFailure: reject,
  });
  workers.upsertPeer(new Uint8Array(initiator), new Uint8Array(presharedKey), false);
  workers.submit(new Uint8Array(initiation), { address: '192.0.2.1', port: 51820 });
});
const [workers, answer] = await answered;
await workers.close();
console.log(answer === undefined ? 'not answered' : 'answered');
`;

test('7. keys, initiations and answers cross between the threads without a buffer detached', async () => {
  const responderKey = nacl.randomBytes(32);
  const initiatorKey = nacl.randomBytes(32);
  const presharedKey = new Uint8Array(32); // the initiation below is made without one: all zeros
  const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
  const { threads, printed } = await threadsThatDetached(ANSWER_IN_A_PROCESS, [
    pathToFileURL(builtProgram('nodes/handshakes.js')).href,
    hex(responderKey),
    hex(nacl.scalarMult.base(initiatorKey)),
    hex(presharedKey),
    hex(initiationTo(nacl.scalarMult.base(responderKey), initiatorKey)),
  ]);
  expect({ threads, printed }).toEqual({ threads: 0, printed: ['answered'] });
});
