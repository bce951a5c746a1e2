// The crypto threads (nodes/threads) on their own: real threads and rings, driven as the device drives
// them, checked against the engine's own Keypair on the other end.
import type { Worker } from 'node:worker_threads';

import { DEFAULT_MTU } from '../../crypto/constants.js';
import { Keypair } from '../../crypto/keypair.js';
import {
  transportCounterHigh,
  transportCounterLow,
  transportLength,
  transportReceiver,
} from '../../crypto/messages.js';
import type { DropReason, Endpoint, OpenAction, SealAction } from '../../crypto/tunnel.js';
import { CryptoThreads, type CryptoResults } from '../../nodes/threads/pool.js';
import { eventually } from '../helpers/eventually.js';

const TO: Endpoint = { address: '192.0.2.1', port: 51820 };

/** A keypair for the threads (its keys exported) and its twin on the peer's side (keys swapped). */
function keypairs(index: number, fill: number): { ours: Keypair; theirs: Keypair } {
  const key = (byte: number) => new Uint8Array(32).fill(byte);
  return {
    ours: new Keypair({ sendKey: key(fill), receiveKey: key(fill + 1) }, index, index + 1000, 0, true, true),
    theirs: new Keypair({ sendKey: key(fill + 1), receiveKey: key(fill) }, index + 1000, index, 0, false),
  };
}

interface Collected {
  readonly sealed: Uint8Array[];
  readonly opened: Uint8Array[];
  readonly rejected: DropReason[];
  batches: number;
}

/** Results as the device gets them, copied (they are views into the ring). */
function collector(): { results: CryptoResults; got: Collected } {
  const got: Collected = { sealed: [], opened: [], rejected: [], batches: 0 };
  return {
    got,
    results: {
      sealed: (datagram, to) => {
        expect(to).toBe(TO);
        got.sealed.push(datagram.slice());
      },
      opened: (_keypair, message, plainLength) => got.opened.push(message.slice(16, 16 + plainLength)),
      rejected: (reason) => got.rejected.push(reason),
      flushed: () => got.batches++,
    },
  };
}

const packet = (n: number, length = 1400) => {
  const bytes = new Uint8Array(length).fill(n & 0xff);
  bytes[0] = n >> 8;
  bytes[1] = n & 0xff;
  return bytes;
};

describe('crypto threads', () => {
  let threads: CryptoThreads;
  let got: Collected;
  const exits: string[] = [];
  beforeEach(async () => {
    threads = await CryptoThreads.start(2, DEFAULT_MTU, (line) => exits.push(line));
    const c = collector();
    got = c.got;
    threads.attach(c.results);
  });
  afterEach(async () => {
    await threads.close();
    expect(exits).toEqual([]);
  });

  test('1. 20,000 packets (the ring wraps several times) are sealed in order, under the counters given', async () => {
    const { ours, theirs } = keypairs(7, 1);
    const count = 20_000;
    for (let n = 0; n < count; n++) {
      threads.makeRoom(1400);
      const action: SealAction = {
        kind: 'seal',
        keypair: ours,
        counter: ours.reserveCounter(),
        packet: packet(n),
        to: TO,
        peer: 'peer-a',
      };
      expect(threads.seal(action)).toBe(true);
    }
    await eventually('every datagram', () => got.sealed.length === count, { timeoutMs: 60_000 });
    expect(ours.takeKeys()).toBeUndefined(); // handed over once
    // Compared in bulk: a matcher per 1400-byte array costs too much under the test runner.
    const wrong = got.sealed.filter((datagram, n) => {
      const header = [
        transportCounterHigh(datagram),
        transportCounterLow(datagram),
        transportReceiver(datagram),
      ];
      const opened = theirs.open(datagram);
      return (
        header.join() !== `0,${n},1007` ||
        opened !== 1408 ||
        Buffer.compare(datagram.subarray(16, 16 + 1400), packet(n)) !== 0
      );
    });
    expect(wrong).toEqual([]);
    expect(got.batches).toBeGreaterThan(1);
  }, 90_000);

  test('2. opening: authentic messages in order, then a replay and a forgery rejected by reason', async () => {
    const { ours, theirs } = keypairs(9, 3);
    const sent = Array.from({ length: 50 }, (_, n) => {
      const datagram = new Uint8Array(transportLength(200, DEFAULT_MTU));
      theirs.seal(packet(n, 200), DEFAULT_MTU, datagram);
      return datagram;
    });
    const forged = sent[49]!.slice();
    forged[forged.length - 1]! ^= 1;
    // Each open gets its own copy: a message is opened in place (the device hands over a consumed datagram).
    const open = (datagram: Uint8Array): OpenAction => ({
      kind: 'open',
      keypair: ours,
      datagram: datagram.slice(),
      from: TO,
      peer: 'peer-b',
    });
    // The forgery first: it must not move the window, so the authentic message 49 still opens after it.
    threads.open(open(forged));
    for (const datagram of sent) threads.open(open(datagram));
    threads.open(open(sent[3]!));
    await eventually('every result', () => got.opened.length + got.rejected.length === 52);
    expect(got.opened.map((p) => (p[0]! << 8) | p[1]!)).toEqual(sent.map((_d, n) => n));
    expect(got.rejected).toEqual(['decrypt_failed', 'replay']);
  });

  test('3. a retired keypair’s keys are gone from its thread: later messages for it are not sealed', async () => {
    const { ours } = keypairs(11, 5);
    const seal = (): SealAction => ({
      kind: 'seal',
      keypair: ours,
      counter: ours.reserveCounter(),
      packet: packet(1, 100),
      to: TO,
      peer: 'peer-c',
    });
    threads.seal(seal());
    threads.retired(ours);
    threads.seal(seal());
    await eventually('both results', () => got.sealed.length + got.rejected.length === 2);
    expect(got.sealed).toHaveLength(1);
    expect(got.rejected).toEqual(['keypair_expired']);
  });

  test('4. peers are spread over the threads, the fewest first, and their places freed on removal', () => {
    const peers = ['p1', 'p2', 'p3'];
    peers.forEach((peer, i) => {
      const { ours } = keypairs(20 + i, 7 + 2 * i);
      threads.seal({ kind: 'seal', keypair: ours, counter: 0, packet: packet(0, 60), to: TO, peer });
    });
    expect(threads.peersPerThread()).toEqual([2, 1]);
    threads.peerRemoved('p1');
    threads.peerRemoved('p3');
    expect(threads.peersPerThread()).toEqual([0, 1]);
  });

  test('5. a lone message on an idle ring is handled inline; after records in the ring, later ones queue behind them', async () => {
    const { ours, theirs } = keypairs(13, 9);
    const seal = (n: number): SealAction => ({
      kind: 'seal',
      keypair: ours,
      counter: ours.reserveCounter(),
      packet: packet(n, 100),
      to: TO,
      peer: 'peer-d',
    });
    // A lone seal: sealed before seal() returns, no thread woken (no batch read back).
    threads.seal(seal(0));
    expect(got.sealed).toHaveLength(1);
    // A lone open: opened at once, told at the end of the turn (the engine is not re-entered).
    const reply = new Uint8Array(transportLength(100, DEFAULT_MTU));
    theirs.seal(packet(1, 100), DEFAULT_MTU, reply);
    threads.open({ kind: 'open', keypair: ours, datagram: reply, from: TO, peer: 'peer-d' });
    expect(got.opened).toHaveLength(0);
    await Promise.resolve();
    expect(got.opened).toHaveLength(1);
    expect(got.batches).toBe(1); // the end of the turn's inline results, not a ring's
    expect(ours.takeKeys()).toBeDefined(); // no thread needed the keys yet

    // A burst: the turn's inline share, then the ring. The next turn's message finds the ring busy and
    // queues behind it, or finds it drained: either way every counter goes out in order.
    const { ours: burst } = keypairs(14, 11);
    const burstSeal = (n: number): SealAction => ({
      ...seal(n),
      keypair: burst,
      counter: burst.reserveCounter(),
    });
    for (let n = 0; n < 40; n++) threads.seal(burstSeal(n));
    await Promise.resolve();
    threads.seal(burstSeal(40));
    await eventually('the burst', () => got.sealed.length === 42);
    expect(got.sealed.slice(1).map((datagram) => transportCounterLow(datagram))).toEqual(
      Array.from({ length: 41 }, (_, n) => n),
    );
    expect(burst.takeKeys()).toBeUndefined(); // the ring was used: the keys went to the thread
  });
});

test('a crypto thread that dies is reported once, in one line', async () => {
  const exits: string[] = [];
  const threads = await CryptoThreads.start(2, DEFAULT_MTU, (line) => exits.push(line));
  try {
    // As a crash would: the thread ends while the node runs (reached through the pool's private list).
    const internals = threads as unknown as { threads: { worker: Worker }[] };
    await internals.threads[1]!.worker.terminate();
    await eventually('the report', () => exits.length === 1);
    expect(exits).toEqual(['crypto thread 1 exited with code 1']);
  } finally {
    await threads.close();
  }
});
