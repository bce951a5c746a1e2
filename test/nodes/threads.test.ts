// The crypto threads (nodes/threads) on their own: real threads and rings, driven as the device drives
// them, checked against the engine's own Keypair on the other end.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
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
import { ALONE_RECORDS, BUSY_TURNS, CryptoThreads, type CryptoResults } from '../../nodes/threads/pool.js';
import { createRing, recordSize, ringViews, type RingViews } from '../../nodes/threads/ring.js';
import { eventually } from '../helpers/eventually.js';
import { builtProgram } from '../helpers/repo.js';

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
  /** Seals not done, as `peer: plaintext bytes`. */
  readonly unsealed: string[];
  batches: number;
}

/** Results as the device gets them, copied (they are views into the ring). */
function collector(): { results: CryptoResults; got: Collected } {
  const got: Collected = { sealed: [], opened: [], rejected: [], unsealed: [], batches: 0 };
  return {
    got,
    results: {
      sealed: (datagram, to) => {
        expect(to).toBe(TO);
        got.sealed.push(datagram.slice());
      },
      opened: (_keypair, message, plainLength) => got.opened.push(message.slice(16, 16 + plainLength)),
      rejected: (reason) => got.rejected.push(reason),
      unsealed: (peer, plainLength) => got.unsealed.push(`${peer.name}: ${plainLength}`),
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

/** Packet `n` of `length` bytes for `peer`, sealed with the keypair's next counter, as the engine hands it over. */
const sealOf = (keypair: Keypair, peer: string, n = 0, length = 1400): SealAction => ({
  kind: 'seal',
  keypair,
  counter: keypair.reserveCounter(),
  packet: packet(n, length),
  to: TO,
  peer: { name: peer },
});

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
      threads.makeRoom(1400, true);
      const action: SealAction = {
        kind: 'seal',
        keypair: ours,
        counter: ours.reserveCounter(),
        packet: packet(n),
        to: TO,
        peer: { name: 'peer-a' },
      };
      // On a loaded host the thread can lag a whole wait slice behind: makeRoom then stops waiting for it
      // until it is seen moving again (asynchronously), and the device would drop the packet. Here the
      // producer yields and offers it again, so every counter is sealed.
      while (!threads.seal(action)) await new Promise((resolve) => setTimeout(resolve, 5));
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
      peer: { name: 'peer-b' },
    });
    // The forgery first: it must not move the window, so the authentic message 49 still opens after it.
    threads.open(open(forged));
    for (const datagram of sent) threads.open(open(datagram));
    threads.open(open(sent[3]!));
    await eventually('every result', () => got.opened.length + got.rejected.length === 52);
    expect(got.opened.map((p) => (p[0]! << 8) | p[1]!)).toEqual(sent.map((_d, n) => n));
    expect(got.rejected).toEqual(['decrypt_failed', 'replay']);
  });

  test('3. a retired keypair’s keys are gone from its thread: later messages for it are not sealed, and named back', async () => {
    const { ours } = keypairs(11, 5);
    const seal = (): SealAction => ({
      kind: 'seal',
      keypair: ours,
      counter: ours.reserveCounter(),
      packet: packet(1, 100),
      to: TO,
      peer: { name: 'peer-c' },
    });
    // Sealed before it is retired: one still in the ring then is sealed or dropped, whoever claims it (pool.ts).
    threads.seal(seal());
    await eventually('the first', () => got.sealed.length === 1);
    threads.retired(ours);
    ours.zero(); // as the engine does right after
    threads.seal(seal());
    await eventually('the second', () => got.sealed.length + got.unsealed.length === 2);
    expect(got.sealed).toHaveLength(1);
    // The peer and plaintext length its txBytes gives back (Tunnel.sealDropped).
    expect(got.unsealed).toEqual(['peer-c: 100']);
    expect(got.rejected).toEqual([]);
  });

  test('4. peers are spread over the threads, the fewest first, and their places freed on removal', () => {
    const peers = ['p1', 'p2', 'p3'];
    peers.forEach((peer, i) => {
      const { ours } = keypairs(20 + i, 7 + 2 * i);
      threads.seal({
        kind: 'seal',
        keypair: ours,
        counter: 0,
        packet: packet(0, 60),
        to: TO,
        peer: { name: peer },
      });
    });
    expect(threads.peersPerThread()).toEqual([2, 1]);
    threads.peerRemoved('p1');
    threads.peerRemoved('p3');
    expect(threads.peersPerThread()).toEqual([0, 1]);
  });

  test('5. a small batch is sealed and opened by the main thread as it publishes; a large one is shared, in order', async () => {
    const { ours, theirs } = keypairs(13, 9);
    const seal = (n: number) => sealOf(ours, 'peer-d', n, 100);
    // The keypair's first message carries its keys, which only the thread takes: it is woken for that.
    threads.seal(seal(0));
    await eventually('the first', () => got.sealed.length === 1);
    // A lone seal and a lone open: done and read back in the very turn they were handed over (the end of
    // its microtasks), which a thread nobody woke cannot do.
    threads.seal(seal(1));
    const reply = new Uint8Array(transportLength(100, DEFAULT_MTU));
    theirs.seal(packet(2, 100), DEFAULT_MTU, reply);
    threads.open({ kind: 'open', keypair: ours, datagram: reply, from: TO, peer: { name: 'peer-d' } });
    expect(got.sealed).toHaveLength(1);
    await Promise.resolve();
    expect(got.sealed).toHaveLength(2);
    expect(got.opened.map((p) => p[1])).toEqual([2]);
    expect(theirs.open(got.sealed[1]!)).toBe(112); // sealed under the main thread's copy of the keys

    // A burst of 400 seals and 400 opens in one turn (the thread woken, both claiming), then one more seal
    // in the next: every counter goes out in order, and the openings come back in order.
    for (let n = 0; n < 400; n++) threads.seal(seal(n));
    const replies = Array.from({ length: 400 }, (_, n) => {
      const datagram = new Uint8Array(transportLength(1400, DEFAULT_MTU));
      theirs.seal(packet(n), DEFAULT_MTU, datagram);
      return datagram;
    });
    for (const datagram of replies)
      threads.open({ kind: 'open', keypair: ours, datagram, from: TO, peer: { name: 'peer-d' } });
    await Promise.resolve();
    threads.seal(seal(400));
    await eventually('the burst', () => got.sealed.length === 403 && got.opened.length === 401);
    expect(got.sealed.map((datagram) => transportCounterLow(datagram))).toEqual(
      Array.from({ length: 403 }, (_, n) => n),
    );
    expect(got.opened.slice(1).map((p) => (p[0]! << 8) | p[1]!)).toEqual(replies.map((_d, n) => n));
    expect(got.rejected).toEqual([]);

    // 300 turns of 20 seals each, handed over while the thread is still claiming the turns before: the
    // two claimants never take a record twice nor one not yet published, and the order holds.
    for (let turn = 0; turn < 300; turn++) {
      for (let n = 0; n < 20; n++) threads.seal(seal(n));
      await Promise.resolve();
    }
    await eventually('the turns', () => got.sealed.length === 403 + 6000);
    const counters = got.sealed.map((datagram) => transportCounterLow(datagram));
    expect(counters.filter((counter, n) => counter !== n)).toEqual([]);
  });

  test('6. takes: a lone message is left to the engine; one behind a message of its peer still in the ring is handed over, and so is bulk traffic', async () => {
    const { ours } = keypairs(15, 11);
    const [a, b] = [{ name: 'peer-a' }, { name: 'peer-b' }];
    const asked = (peer: { name: string }, count = 1) =>
      Array.from({ length: count }, () => threads.takes(peer));
    const nextTurn = () => new Promise((resolve) => setImmediate(resolve)); // the turn's microtasks run
    const all = (value: boolean, count: number) => Array<boolean>(count).fill(value);

    // 1. A lone message: the engine's (takes is false), as a node without threads does it.
    expect(asked(a)).toEqual([false]);
    await nextTurn();

    // 2. One of a's messages in its ring, not read back yet: a's next goes behind it (overtaking it inline
    //    would reorder a's packets and skip its replay window); another peer's does not wait for it.
    expect(asked(a)).toEqual([false]);
    expect(
      threads.seal({ kind: 'seal', keypair: ours, counter: 0, packet: packet(0, 100), to: TO, peer: a }),
    ).toBe(true);
    expect(asked(a)).toEqual([true]);
    expect(asked(b)).toEqual([false]);
    await eventually('the record read back', () => got.sealed.length === 1);
    await nextTurn();
    expect(asked(a)).toEqual([false]); // nothing of a's in the ring any more

    // 3. A turn of more messages than the main thread does alone, across peers (as several peers' datagrams
    //    in one read): the first few inline, the rest handed over; so is every message of the next
    //    BUSY_TURNS turns, however lone (a bulk flow's turns alternate with small ones); then lone ones are
    //    the engine's again.
    await nextTurn();
    const peers = Array.from({ length: ALONE_RECORDS + 2 }, (_, i) => ({ name: `peer-${i}` }));
    expect(peers.map((peer) => threads.takes(peer))).toEqual([...all(false, ALONE_RECORDS), true, true]);
    for (let turn = 0; turn < BUSY_TURNS; turn++) {
      await nextTurn();
      expect(asked(b)).toEqual([true]);
    }
    await nextTurn();
    expect(asked(b)).toEqual([false]);
    expect(threads.messages).toEqual({ inline: 2 * ALONE_RECORDS + 1, handedOver: 3 + BUSY_TURNS });
  });

  test('7. a read batch ends its turn: nothing is published before its end (no callback scheduled), and its end seals and reads back a small batch at once', async () => {
    const { ours, theirs } = keypairs(17, 11);
    const seal = (n: number) => sealOf(ours, 'peer-e', n, 100);
    threads.seal(seal(0)); // carries the keys, which only the thread takes
    await eventually('the first', () => got.sealed.length === 1);
    // 1. Inside the device's read batch (a TUN read) the turn stays open, past its microtasks too.
    threads.readBatchBegan(false);
    threads.seal(seal(1));
    threads.seal(seal(2));
    await Promise.resolve();
    expect(got.sealed).toHaveLength(1);
    // 2. The batch's end publishes them, and the main thread seals and reads them back before it returns.
    threads.readBatchEnded();
    expect(got.sealed.map((datagram) => transportCounterLow(datagram))).toEqual([0, 1, 2]);
    expect(theirs.open(got.sealed[2]!)).toBe(112);
  });
  test('8. results are handed over in views made once per ring slot: a flow of full-size seals mixed with small opens gets no new view lap after lap', async () => {
    const { ours, theirs } = keypairs(19, 13);
    const sealedViews = new Set<Uint8Array>();
    const openedViews = new Set<Uint8Array>();
    let sealed = 0;
    let opened = 0;
    threads.attach({
      sealed: (datagram) => {
        sealed++;
        sealedViews.add(datagram);
      },
      opened: (_keypair, message) => {
        opened++;
        openedViews.add(message);
      },
      rejected: (reason) => got.rejected.push(reason),
      unsealed: (peer, plainLength) => got.unsealed.push(`${peer.name}: ${plainLength}`),
      flushed: () => undefined,
    });
    const internals = threads as unknown as { threads: { ring: RingViews }[] };
    const slots = Math.floor(
      internals.threads[0]!.ring.capacity / recordSize(transportLength(DEFAULT_MTU, DEFAULT_MTU)),
    );
    const peer = { name: 'peer-f' };
    const ack = new Uint8Array(transportLength(40, DEFAULT_MTU));
    // About five laps of the ring: two full-size seals, then one small open, and so on. Packed records
    // would start at other offsets every lap (the mix shifts them), each result a new view.
    const records = 5 * slots;
    for (let n = 0; n < records; n++) {
      threads.makeRoom(1400, true);
      const handedOver =
        n % 3 === 2
          ? (theirs.seal(packet(n, 40), DEFAULT_MTU, ack),
            threads.open({ kind: 'open', keypair: ours, datagram: ack, from: TO, peer }))
          : threads.seal({
              kind: 'seal',
              keypair: ours,
              counter: ours.reserveCounter(),
              packet: packet(n),
              to: TO,
              peer,
            });
      if (!handedOver) throw new Error(`record ${n} found no room`);
      if (n % 100 === 99) await Promise.resolve(); // turns of 100 records
    }
    await eventually('every result', () => sealed + opened === records, { timeoutMs: 60_000 });
    expect(got.rejected).toEqual([]);
    expect(sealedViews.size).toBeLessThanOrEqual(slots);
    expect(openedViews.size).toBeLessThanOrEqual(slots);
  }, 90_000);
});

test('a retirement with room for itself but not for the retirements pending before it (written first) waits with them: the ring stays whole', async () => {
  const exits: string[] = [];
  const pool = await CryptoThreads.start(2, DEFAULT_MTU, (line) => exits.push(line));
  try {
    // White-box, as a full ring leaves it: room for one record between written and freed, one retirement
    // already pending. Nothing is published, so the thread never sees this state.
    const [thread] = (pool as unknown as { threads: RingInternals[] }).threads;
    const { slot, lap } = thread!;
    Object.assign(thread!, { written: 0, freed: 2 * slot });
    thread!.pendingRetires.push(7);
    thread!.retire(8);
    expect([thread!.written, thread!.lap, thread!.pendingRetires]).toEqual([0, lap, [7, 8]]);
    Object.assign(thread!, { written: 0, freed: 0, pendingRetires: [] }); // empty again before closing
    expect(exits).toEqual([]);
  } finally {
    await pool.close();
  }
});

interface RingInternals {
  readonly slot: number;
  readonly lap: number;
  written: number;
  freed: number;
  pendingRetires: number[];
  retire(index: number): void;
}

test("takes with --hand-over auto: bulk traffic stays with the engine while the main thread has time to spare, goes to the threads once it is CPU-bound (unless kept inline), and a peer's message behind its own in a ring goes after them either way", async () => {
  let cpuBound = false;
  const asked: number[] = [];
  const load = {
    cpuBound: (now: number) => {
      asked.push(now);
      return cpuBound;
    },
  };
  const exits: string[] = [];
  const pool = await CryptoThreads.start(2, DEFAULT_MTU, (line) => exits.push(line), false, 'auto', load);
  try {
    const { results, got } = collector();
    pool.attach(results);
    const { ours } = keypairs(21, 31);
    const bulkTurn = async () => {
      await new Promise((resolve) => setImmediate(resolve)); // the turn's microtasks run
      return Array.from({ length: ALONE_RECORDS + 2 }, (_, i) => pool.takes({ name: `peer-${i}` }));
    };
    const all = (value: boolean) => Array<boolean>(ALONE_RECORDS + 2).fill(value);

    // 1. Not CPU-bound: a bulk turn is the engine's, however many messages (the load asked once per turn).
    expect(await bulkTurn()).toEqual(all(false));
    expect(await bulkTurn()).toEqual(all(false));
    expect(asked).toHaveLength(2);
    // 2. A message of peer-0 in its ring: peer-0's next goes behind it, the others' stay with the engine.
    const a = { name: 'peer-0' };
    expect(
      pool.seal({ kind: 'seal', keypair: ours, counter: 0, packet: packet(0, 100), to: TO, peer: a }),
    ).toBe(true);
    expect(pool.takes(a)).toBe(true);
    await eventually('the record read back', () => got.sealed.length === 1);
    // 3. CPU-bound: the bulk turn goes to the threads, all of it (the turns before it carried bulk traffic
    //    too), as with 'bulk'.
    cpuBound = true;
    expect(await bulkTurn()).toEqual(all(true));
    // 4. No longer: the engine's again.
    cpuBound = false;
    expect(await bulkTurn()).toEqual(all(false));
    // 5. Kept inline (the node's warm-up): the engine's even while CPU-bound, the load still asked (so the
    //    warm-up runs that code too); let go, the threads' again.
    cpuBound = true;
    pool.keepInline(true);
    const askedBefore = asked.length;
    expect(await bulkTurn()).toEqual(all(false));
    expect(asked).toHaveLength(askedBefore + 1);
    pool.keepInline(false);
    expect(await bulkTurn()).toEqual(all(true));
    expect(exits).toEqual([]);
  } finally {
    await pool.close();
  }
});

test('a result callback that throws (a socket send) stops nothing: its batch ends, the rest of it and later messages are sealed, in order', async () => {
  // In a process of its own: the throw is the process's uncaught exception, which it records.
  const run = await promisify(execFile)('node', [
    '-e',
    THROWING_RESULTS,
    builtProgram('nodes/threads/pool.js'),
    builtProgram('crypto/keypair.js'),
  ]);
  const total = ALONE_RECORDS + 1 + 20;
  expect(JSON.parse(run.stdout)).toEqual({
    // The batch that threw ended (the device's socket uncorked) before anything else was read back.
    first: ['threw', 'flushed'],
    uncaught: ['send failed'],
    sealed: Array.from({ length: total - 1 }, (_, n) => n + 1),
    // None of the peer's records is counted as still in the ring: its lone message is the engine's.
    takes: false,
  });
});

// Seals for one peer, whose first result's callback throws: a turn of ALONE_RECORDS (sealed as published),
// a lone one, then a burst for the thread. Prints what came back. (Not --input-type=module: the crypto
// threads would inherit it.)
const THROWING_RESULTS = `(async () => {
const { CryptoThreads, ALONE_RECORDS, BUSY_TURNS } = await import(process.argv[1]);
const { Keypair } = await import(process.argv[2]);
const events = [];
const threads = await CryptoThreads.start(2, 1420, (line) => events.push(line));
const keypair = new Keypair({ sendKey: new Uint8Array(32).fill(1), receiveKey: new Uint8Array(32).fill(2) },
  7, 1007, 0, true, true);
const peer = { name: 'p' };
const uncaught = [];
const sealed = [];
process.on('uncaughtException', (error) => uncaught.push(error.message));
process.on('unhandledRejection', (error) => uncaught.push(error.message));
let throws = 1;
threads.attach({
  sealed: (datagram) => {
    if (throws-- > 0) { events.push('threw'); throw new Error('send failed'); }
    events.push('sealed');
    sealed.push(new DataView(datagram.buffer, datagram.byteOffset).getUint32(8, true));
  },
  unsealed: () => events.push('unsealed'),
  opened: () => events.push('opened'),
  rejected: () => events.push('rejected'),
  flushed: () => events.push('flushed'),
});
const seal = () => threads.seal({ kind: 'seal', keypair, counter: keypair.reserveCounter(),
  packet: new Uint8Array(100), to: { address: '192.0.2.1', port: 51820 }, peer });
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));
const until = async (count) => {
  for (const deadline = Date.now() + 5000; sealed.length < count && Date.now() < deadline; )
    await new Promise((resolve) => setTimeout(resolve, 5));
};
for (let n = 0; n < ALONE_RECORDS; n++) seal();
await until(ALONE_RECORDS - 1);
seal();
await nextTurn();
for (let n = 0; n < 20; n++) seal();
await until(ALONE_RECORDS + 20);
// The burst's turn made the node busy for BUSY_TURNS turns of messages; after them, the peer's lone
// message is the engine's unless a record of its own is still counted in the ring.
for (let turn = 0; turn <= BUSY_TURNS; turn++) {
  await nextTurn();
  threads.takes({ name: 'other' });
}
await nextTurn();
const takes = threads.takes(peer);
await threads.close();
console.log(JSON.stringify({ first: events.slice(0, 2), uncaught, sealed, takes }));
})();`;

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

test('a crypto thread that hangs is reported once, in one line, without blocking the main thread meanwhile', async () => {
  const exits: string[] = [];
  // What had run on the main thread by the time the thread was taken for dead.
  let ticks = 0;
  let ticksAtReport = -1;
  let otherSealedAtReport = -1;
  const { results, got } = collector();
  const threads = await CryptoThreads.start(2, DEFAULT_MTU, (line) => {
    exits.push(line);
    ticksAtReport = ticks;
    otherSealedAtReport = got.sealed.length;
  });
  threads.attach(results);
  const ticker = setInterval(() => ticks++, 20);
  const wait = Atomics.wait;
  try {
    // As a hang would: thread 0 stays alive but its ring is never served again (the pool's private list
    // is given a fresh ring the thread does not watch). The first record is a keypair's keys, which only
    // the thread takes, so the main thread cannot finish the seals behind it either.
    const internals = threads as unknown as { threads: { ring: RingViews }[] };
    internals.threads[0]!.ring = ringViews(createRing(internals.threads[0]!.ring.capacity));
    const seal = (keypair: Keypair, peer: string) => sealOf(keypair, peer);
    const hung = keypairs(31, 11).ours;
    let queued = 0;
    while (threads.seal(seal(hung, 'peer-hung'))) queued++;
    expect(queued).toBeGreaterThan(1000); // the ring filled up
    threads.makeRoom(1400, true); // waits one slice for the thread, in vain, and gives up: the ring stays full
    expect(exits).toEqual([]);
    expect(threads.seal(seal(hung, 'peer-hung'))).toBe(false); // dropped as queue_full
    // Meanwhile the event loop turns and the other thread's peer is served, a turn at a time, and the hung
    // thread is not waited for again (Atomics.wait counted as it is called).
    const other = keypairs(32, 21).ours;
    let waits = 0;
    Atomics.wait = ((array: Int32Array, index: number, value: number, timeout?: number) => {
      waits++;
      return wait(array, index, value, timeout);
    }) as typeof Atomics.wait;
    for (let turn = 0; turn < 20; turn++) {
      threads.makeRoom(1400, true);
      expect(threads.seal(seal(other, 'peer-alive'))).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(waits).toBe(0);
    await eventually('the other peer’s messages', () => got.sealed.length === 20);
    await eventually('the report', () => exits.length === 1);
    expect(exits).toEqual(['crypto thread 0 stopped making progress for 5 s']);
    // Before the report (which came from makeRoom itself, before anything else ran, when it blocked).
    expect(ticksAtReport).toBeGreaterThan(0);
    expect(otherSealedAtReport).toBeGreaterThan(0);
    threads.makeRoom(1400, true);
    expect(threads.seal(seal(hung, 'peer-hung'))).toBe(false); // still dropped, never waited for
    expect(exits).toHaveLength(1);
  } finally {
    Atomics.wait = wait;
    clearInterval(ticker);
    await threads.close();
  }
}, 20_000);
