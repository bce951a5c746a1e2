// Crypto benchmark (not a test): AEAD seal/open throughput on 1420-byte packets for the engine's transport
// ciphers and for plain @stablelib/chacha20poly1305, measured side by side in one run, and full responder
// handshakes per second: the engine's on one core, and the node's end to end over loopback UDP, inline and
// with its handshake workers on every core; and what an initiation of a flood costs the responder under load.
// Prints a markdown report; scripts/bench-crypto writes it to bench-results/crypto.md.
import { randomBytes } from 'node:crypto';
import { execSync, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { cpus, loadavg } from 'node:os';
import { BLAKE2s } from '@stablelib/blake2s';
import { ChaCha20Poly1305 } from '@stablelib/chacha20poly1305';
import { XChaCha20Poly1305 } from '@stablelib/xchacha20poly1305';
import { x25519 as nobleX25519 } from '@noble/curves/ed25519.js';
import { fileURLToPath } from 'node:url';
import { getHeapSpaceStatistics } from 'node:v8';
import nacl from 'tweetnacl';
import { CookieChecker, MacSender, cookieSource } from '../crypto/cookie.js';
import {
  parseMessage,
  writeCookieReply,
  writeInitiation,
  writeResponse,
  type InitiationMessage,
} from '../crypto/messages.js';
import {
  INITIATION_MAC1_OFFSET,
  INITIATION_MAC2_OFFSET,
  LABEL_COOKIE,
  LABEL_MAC1,
  MESSAGE_RESPONSE,
  XAEAD_NONCE_LENGTH,
} from '../crypto/constants.js';
import { parseIpAddress } from '../crypto/ipaddr.js';
import { secureRandomBytes } from '../nodes/random.js';
import {
  WIREGUARD,
  consumeInitiation,
  createInitiation,
  createResponse,
  deriveTransportKeys,
  localStatic,
  peerKeys,
} from '../crypto/noise.js';
import {
  HASH,
  StablelibTransportCipher,
  TAI64N,
  constantTimeEqual,
  X25519,
  createTransportCipher,
  generatePrivateKey,
} from '../crypto/primitives.js';
import { x25519, x25519Base } from '../crypto/x25519.js';
import { ChaChaPolyTransportCipher, type TransportAEAD } from '../crypto/aead.js';
import { Tunnel, type TunnelAction } from '../crypto/tunnel.js';
import { countGcs } from './gc-count.js';

const PACKET = 1420;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const random = (n: number) => new Uint8Array(randomBytes(n));

/** This process's CPU seconds (user + system): other work on a shared machine does not count, waiting for it neither. */
function cpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** Runs `body` repeatedly for about SECONDS of CPU time after a warm-up; returns calls per CPU second. */
function measure(body: () => void): number {
  const warmupEnd = cpuSeconds() + 0.3;
  while (cpuSeconds() < warmupEnd) body();
  let calls = 0;
  const start = cpuSeconds();
  let elapsed = 0;
  while (elapsed < SECONDS) {
    for (let i = 0; i < 64; i++) body();
    calls += 64;
    elapsed = cpuSeconds() - start;
  }
  return calls / elapsed;
}

const mbps = (callsPerSecond: number) => (callsPerSecond * PACKET) / 1e6;

interface AeadRow {
  name: string;
  seal: number;
  open: number;
}

/** A transport cipher: into caller buffers, one instance per key, counter incrementing. */
function benchTransport(name: string, cipher: TransportAEAD): AeadRow {
  const plaintext = random(PACKET);
  const sealed = new Uint8Array(PACKET + 16);
  const opened = new Uint8Array(PACKET);
  let counter = 0;
  const seal = measure(() => cipher.seal(0, counter++, plaintext, sealed));
  cipher.seal(0, 7, plaintext, sealed);
  const open = measure(() => {
    if (!cipher.open(0, 7, sealed, opened)) throw new Error(`${name}: open failed`);
  });
  return { name, seal: mbps(seal), open: mbps(open) };
}

/** Baseline: @stablelib/chacha20poly1305 as documented (one instance, allocating results). */
function benchStablelibPlain(key: Uint8Array): AeadRow {
  const aead = new ChaCha20Poly1305(key);
  const plaintext = random(PACKET);
  const nonce = new Uint8Array(12);
  let sink = 0;
  const seal = measure(() => {
    nonce[4]!++;
    sink ^= aead.seal(nonce, plaintext)[0]!;
  });
  const sealed = aead.seal(nonce, plaintext);
  const open = measure(() => {
    if (aead.open(nonce, sealed) === null) throw new Error('baseline: open failed');
  });
  if (sink === 256) console.log(sink); // keeps the results observable
  return {
    name: '@stablelib/chacha20poly1305 (baseline: new buffers per call)',
    seal: mbps(seal),
    open: mbps(open),
  };
}

/** Responder side of a full handshake: parse, mac1 check, consume initiation, create response, derive keys. */
function benchHandshake(): number {
  const responder = localStatic(generatePrivateKey(random));
  const initiator = localStatic(generatePrivateKey(random));
  const initiatorView = peerKeys(initiator, responder.publicKey);
  const responderView = peerKeys(responder, initiator.publicKey);
  const init = createInitiation(
    WIREGUARD,
    initiator,
    initiatorView,
    generatePrivateKey(random),
    TAI64N(Date.now()),
    1,
  );
  if (!init.ok) throw new Error(init.reason);
  const initiation = writeInitiation({
    senderIndex: 1,
    ephemeral: init.fields.ephemeral,
    encryptedStatic: init.fields.encryptedStatic,
    encryptedTimestamp: init.fields.encryptedPayload,
  });
  new MacSender(responder.publicKey).addMacs(initiation, 0);
  const checker = new CookieChecker(responder.publicKey, random);
  const responseMacs = new MacSender(initiator.publicKey);
  return measure(() => {
    const message = parseMessage(initiation) as InitiationMessage;
    if (!checker.checkMac1(message)) throw new Error('mac1');
    const consumed = consumeInitiation(
      WIREGUARD,
      responder,
      {
        ephemeral: message.ephemeral,
        encryptedStatic: message.encryptedStatic,
        encryptedPayload: message.encryptedTimestamp,
      },
      () => responderView,
    );
    if (!consumed.ok) throw new Error(consumed.reason);
    const response = createResponse(consumed.state, generatePrivateKey(random), new Uint8Array(0));
    if (!response.ok) throw new Error(response.reason);
    const bytes = writeResponse({
      senderIndex: 2,
      receiverIndex: message.senderIndex,
      ephemeral: response.fields.ephemeral,
      encryptedNothing: response.fields.encryptedPayload,
    });
    responseMacs.addMacs(bytes, 0);
    deriveTransportKeys(response.result, false);
  });
}

/** Best of ROUNDS interleaved rounds of each candidate: JIT warm-up and GC pauses affect every one alike. */
function bestOf(candidates: (() => number)[]): number[] {
  const best = candidates.map(() => 0);
  for (let round = 0; round < ROUNDS; round++) {
    candidates.forEach((run, i) => (best[i] = Math.max(best[i]!, run())));
  }
  return best;
}

const ROUNDS = 3;
const key = random(32);
const engineName = createTransportCipher(key).constructor.name;
const candidates: (() => AeadRow)[] = [
  () => benchStablelibPlain(key),
  () =>
    benchTransport(
      'StablelibTransportCipher (stablelib, reused nonce, caller buffers)',
      new StablelibTransportCipher(key),
    ),
  () => benchTransport('ChaChaPolyTransportCipher (crypto/aead.ts)', new ChaChaPolyTransportCipher(key)),
];
// Interleaved rounds, best of each: JIT warm-up and GC pauses then affect every implementation alike.
const rows: AeadRow[] = candidates.map((run) => run());
for (let round = 1; round < ROUNDS; round++) {
  candidates.forEach((run, i) => {
    const row = run();
    const best = rows[i]!;
    rows[i] = { name: row.name, seal: Math.max(best.seal, row.seal), open: Math.max(best.open, row.open) };
  });
}
// ---- X25519: tweetnacl (the engine's until now, the baseline), @noble/curves, crypto/x25519.ts ----

const scalar = generatePrivateKey(random);
const point = nacl.scalarMult.base(generatePrivateKey(random));
const x25519Rows: [string, () => void, () => void][] = [
  ['tweetnacl 1.0.3 (baseline)', () => nacl.scalarMult(scalar, point), () => nacl.scalarMult.base(scalar)],
  [
    '@noble/curves x25519 (BigInt)',
    () => nobleX25519.getSharedSecret(scalar, point),
    () => nobleX25519.getPublicKey(scalar),
  ],
  ['crypto/x25519.ts', () => x25519(scalar, point), () => x25519Base(scalar)],
];
const x25519Rates = x25519Rows.map(([name, shared, base]) => {
  const [sharedRate, baseRate] = bestOf([() => measure(shared), () => measure(base)]);
  return { name, shared: sharedRate!, base: baseRate! };
});

// ---- Responder handshakes: the same engine code with tweetnacl's X25519 (today's baseline) and x25519.ts ----

const engineX25519 = { ...X25519 };
const tweetnaclX25519 = { scalarMult: nacl.scalarMult, scalarMultBase: nacl.scalarMult.base };
const withX25519 = (functions: typeof X25519, run: () => number) => (): number => {
  Object.assign(X25519, functions);
  try {
    return run();
  } finally {
    Object.assign(X25519, engineX25519);
  }
};
const [handshakesBaseline, handshakes] = bestOf([
  withX25519(tweetnaclX25519, benchHandshake),
  withX25519(engineX25519, benchHandshake),
]) as [number, number];
const baseline = rows[0]!;
const engine = rows.find((row) => row.name.startsWith(engineName))!;

// ---- Tunnel façade (crypto/tunnel.ts): two engines in memory, datagrams handed straight across ----

const TUNNEL_A = { address: '192.0.2.1', port: 1 };
const TUNNEL_B = { address: '192.0.2.2', port: 2 };

/** An IPv4 packet of PACKET bytes from 10.9.0.<from> to 10.9.0.<to> (only the header fields the engine reads). */
function innerPacket(from = 1, to = 2): Uint8Array {
  const packet = random(PACKET);
  packet.set([0x45, 0, PACKET >> 8, PACKET & 0xff], 0);
  packet.set([10, 9, 0, from, 10, 9, 0, to], 12);
  return packet;
}

/** The engine options the node runs with: decrypting in place, sealing into reused buffers, reusing results. */
const NODE_OPTIONS = {
  decryptInPlace: true,
  reuseSendBuffers: true,
  reuseActions: true,
  reusedMessages: true,
};
/** The engine's defaults, the baseline of the allocation rows: a fresh buffer and result for every packet. */
const FRESH_OPTIONS = {
  decryptInPlace: false,
  reuseSendBuffers: false,
  reuseActions: false,
  reusedMessages: false,
};

/** Two Tunnels that know each other, configured with `reuse`; `now` is the shared manual monotonic clock. */
function tunnelPair(clock: { now: number }, reuse = NODE_OPTIONS): { a: Tunnel; b: Tunnel } {
  const options = {
    randomBytes: random,
    wallClockMs: () => 1_700_000_000_000 + clock.now,
    ...reuse,
  };
  const a = new Tunnel({ privateKey: random(32), ...options });
  const b = new Tunnel({ privateKey: random(32), ...options });
  a.upsertPeer(b.publicKey, { allowedIps: ['10.9.0.2/32'], endpoint: TUNNEL_B }, 0);
  b.upsertPeer(a.publicKey, { allowedIps: ['10.9.0.1/32'] }, 0);
  return { a, b };
}

/**
 * Feeds a's sends to b and back until quiet; returns the number of packets b delivered. Actions and the
 * datagrams in them are copied as they are queued: the engines reuse both on their next call.
 */
function exchange(pair: { a: Tunnel; b: Tunnel }, actions: TunnelAction[], now: number): number {
  let delivered = 0;
  const copied = (list: TunnelAction[]): TunnelAction[] =>
    list.map((action) =>
      action.kind === 'send' ? { ...action, datagram: action.datagram.slice() } : action,
    );
  let queue: { to: Tunnel; from: typeof TUNNEL_A; actions: TunnelAction[] }[] = [
    { to: pair.b, from: TUNNEL_A, actions: copied(actions) },
  ];
  while (queue.length > 0) {
    const next: typeof queue = [];
    for (const { to, from, actions: batch } of queue) {
      for (const action of batch) {
        if (action.kind === 'deliver') delivered++;
        if (action.kind !== 'send') continue;
        const back = to === pair.b ? pair.a : pair.b;
        next.push({
          to: back,
          from: from === TUNNEL_A ? TUNNEL_B : TUNNEL_A,
          actions: copied(to.decapsulate(action.datagram, from, now)),
        });
      }
    }
    queue = next;
  }
  return delivered;
}

/**
 * What the responder spends on one initiation of a flood while under load, before any DH: a sender that knows
 * the node's public key (every client config holds it) but has no cookie, from ever-changing source ports
 * (spoofed sources: the per-source cap does not hold them back), so every one is answered with a cookie
 * reply. The engine's path (the device's mac1 screen, then Tunnel.admitInitiation, with the node's pooled
 * randomness) against the same steps as the engine took them before: a BLAKE2s object made per MAC, mac2
 * checked whatever it holds, @stablelib's XChaCha20Poly1305 and one randomBytes call per reply.
 */
function benchFloodedInitiations(): [baseline: number, engine: number] {
  const responder = localStatic(generatePrivateKey(random));
  const initiation = writeInitiation({
    senderIndex: 7,
    ephemeral: random(32),
    encryptedStatic: random(48),
    encryptedTimestamp: random(28),
  });
  new MacSender(responder.publicKey).addMacs(initiation, 0);
  const sources = Array.from({ length: 256 }, (_, i) => ({ address: '198.51.100.7', port: 1024 + i }));
  let turn = 0;
  const nextSource = () => sources[turn++ & 255]!;

  const tunnel = new Tunnel({
    privateKey: responder.privateKey,
    randomBytes: secureRandomBytes,
    wallClockMs: () => 1_700_000_000_000,
    ...NODE_OPTIONS,
  });
  const engine = () => {
    if (tunnel.screenInitiation(initiation) !== undefined) throw new Error('mac1');
    tunnel.markUnderLoad(1_000);
    const actions = tunnel.admitInitiation(initiation, nextSource(), 1_000);
    if (actions?.[0]?.kind !== 'send') throw new Error('no cookie reply');
  };

  const mac = (key: Uint8Array, data: Uint8Array) => new BLAKE2s(16, { key }).update(data).digest();
  const mac1Key = HASH(LABEL_MAC1, responder.publicKey);
  const cookieKey = HASH(LABEL_COOKIE, responder.publicKey);
  const secret = random(32);
  const checkMac1 = (message: InitiationMessage) =>
    constantTimeEqual(mac(mac1Key, message.bytes.subarray(0, INITIATION_MAC1_OFFSET)), message.mac1);
  const before = () => {
    if (!checkMac1(parseMessage(initiation) as InitiationMessage)) throw new Error('mac1'); // the screen
    const message = parseMessage(initiation) as InitiationMessage;
    if (!checkMac1(message)) throw new Error('mac1');
    const from = nextSource();
    const address = parseIpAddress(from.address);
    if (!address.ok) throw new Error('address');
    const source = cookieSource(address.value, from.port);
    const mac2 = mac(mac(secret, source), message.bytes.subarray(0, INITIATION_MAC2_OFFSET));
    if (constantTimeEqual(mac2, message.mac2)) throw new Error('mac2');
    const cookie = mac(secret, source);
    const nonce = new Uint8Array(randomBytes(XAEAD_NONCE_LENGTH));
    const encryptedCookie = new XChaCha20Poly1305(cookieKey).seal(nonce, cookie, message.mac1);
    writeCookieReply({ receiverIndex: message.senderIndex, nonce, encryptedCookie });
  };
  return bestOf([() => measure(before), () => measure(engine)]) as [number, number];
}

/**
 * Complete handshakes per second through the façade, both ends in this one thread: initiation, response,
 * then the staged packet on the new keypair. The clock jumps 200 s each time, expiring the last keypair.
 */
function benchTunnelHandshake(): number {
  const clock = { now: 0 };
  const pair = tunnelPair(clock);
  const packet = innerPacket();
  return measure(() => {
    clock.now += 200_000;
    if (exchange(pair, pair.a.encapsulate(packet, clock.now), clock.now) !== 1) throw new Error('handshake');
  });
}

/**
 * encapsulate on one engine + decapsulate on the other, per PACKET-byte packet (after the handshake), a to b
 * and b to a in turn, so both directions of both engines run.
 */
function tunnelTransportBody(reuse = NODE_OPTIONS): () => void {
  const clock = { now: 0 };
  const pair = tunnelPair(clock, reuse);
  const ways = [
    { from: pair.a, to: pair.b, source: TUNNEL_A, packet: innerPacket(1, 2) },
    { from: pair.b, to: pair.a, source: TUNNEL_B, packet: innerPacket(2, 1) },
  ];
  exchange(pair, pair.a.encapsulate(ways[0]!.packet, 0), 0);
  let turn = 0;
  // Fractional milliseconds, as the node's performance.now() clock gives them.
  const clockStep = 0.0137;
  return () => {
    const way = ways[turn++ & 1]!;
    // One clock reading for both calls, as the node reads its clock once per batch: a double read out of a
    // field is a new heap number each time, the only bytes this loop itself allocates.
    const now = (clock.now += clockStep);
    const sent = way.from.encapsulate(way.packet, now)[0];
    if (sent?.kind !== 'send') throw new Error('encapsulate');
    const delivered = way.to.decapsulate(sent.datagram, way.source, now)[0];
    if (delivered?.kind !== 'deliver') throw new Error('decapsulate');
  };
}

const { gcs } = countGcs();

/** Minor and major collections per GB of PACKET-byte packets while `body` (one packet) runs GC_PACKETS times. */
const GC_PACKETS = 100_000;
async function gcsPerGB(body: () => void): Promise<{ minor: number; major: number }> {
  const turn = () => new Promise((resolve) => setTimeout(resolve, 10));
  // Warmed up first: code the JIT has not optimized yet boxes intermediate numbers on the heap.
  for (let i = 0; i < GC_PACKETS / 4; i++) body();
  await turn();
  const before = { ...gcs };
  for (let i = 0; i < GC_PACKETS; i++) body();
  await turn();
  const gigabytes = (GC_PACKETS * PACKET) / 1e9;
  return { minor: (gcs.minor - before.minor) / gigabytes, major: (gcs.major - before.major) / gigabytes };
}

// The heap spaces JavaScript objects and typed arrays are allocated in (code and maps are the JIT's).
const OBJECT_SPACES = new Set(['new_space', 'old_space', 'new_large_object_space', 'large_object_space']);
// Objects only: the contents of typed arrays above 64 bytes live outside the heap, and the heap's count of
// that external memory is updated too lazily to measure one sample by; the GC rows above count them.
const objectHeapUsed = (): number =>
  getHeapSpaceStatistics().reduce(
    (sum, space) => sum + (OBJECT_SPACES.has(space.space_name) ? space.space_used_size : 0),
    0,
  );

/**
 * Bytes allocated per call of `body`: the growth of the object heap over samples of 1,000 calls, keeping only
 * samples the heap did not shrink in (no collection ran), less what reading the heap costs; the median.
 */
function bytesPerCall(body: () => void): number {
  const median = (values: number[]) => values.sort((x, y) => x - y)[values.length >> 1] ?? NaN;
  const sample = (calls: number): number | undefined => {
    const before = objectHeapUsed();
    for (let i = 0; i < calls; i++) body();
    const growth = objectHeapUsed() - before;
    return growth >= 0 ? growth : undefined;
  };
  for (let i = 0; i < GC_PACKETS / 4; i++) body(); // optimized code, as in gcsPerGB
  const reading: number[] = [];
  const samples: number[] = [];
  for (let round = 0; round < 400 && samples.length < 50; round++) {
    const idle = sample(0);
    if (idle !== undefined) reading.push(idle);
    const grown = sample(1000);
    if (grown !== undefined) samples.push(grown);
  }
  return Math.max(0, (median(samples) - median(reading)) / 1000);
}

const [tunnelTransport] = bestOf([() => measure(tunnelTransportBody())]) as [number];
// The node's options run first: the engine defaults' run, after it, makes the shared engine code polymorphic
// (fresh and reused results, copies and views), as it never is in a node, which runs one configuration.
const nodeBytesPerPacket = bytesPerCall(tunnelTransportBody());
const nodeGcs = await gcsPerGB(tunnelTransportBody());
const bytesPerPacket = {
  node: nodeBytesPerPacket,
  fresh: bytesPerCall(tunnelTransportBody(FRESH_OPTIONS)),
};
const allocation = {
  tunnel: nodeGcs,
  fresh: await gcsPerGB(tunnelTransportBody(FRESH_OPTIONS)),
  baseline: await gcsPerGB(
    (() => {
      const aead = new ChaCha20Poly1305(key);
      const nonce = new Uint8Array(12);
      const plaintext = random(PACKET);
      return () => aead.open(nonce, aead.seal(nonce, plaintext));
    })(),
  ),
  engineCipher: await gcsPerGB(
    (() => {
      const cipher = createTransportCipher(key);
      const plaintext = random(PACKET);
      const sealed = new Uint8Array(PACKET + 16);
      return () => {
        cipher.seal(0, 1, plaintext, sealed);
        cipher.open(0, 1, sealed, plaintext);
      };
    })(),
  ),
};
const tunnelHandshakes = benchTunnelHandshake();
const [floodBaseline, floodEngine] = benchFloodedInitiations();
// The cipher alone, for the same work (one seal + one open per packet): the façade's overhead is the gap.
const cipherOnly = 1 / (1 / engine.seal + 1 / engine.open);

// ---- Responder handshakes of the node, end to end: initiations over loopback UDP, responses counted ----

const NODE_PEERS = 256; // each peer's initiations far more than 20 ms apart (the flood rule)
// Initiations in flight: under the node's under-load backlog (16), so each is answered, none gets a cookie.
const NODE_WINDOW = 12;
// Warm-up: every thread's JIT optimizes its own copy of the handshake code, which takes handshakes, not
// time (a loaded machine gives a second little CPU).
const NODE_WARMUP_HANDSHAKES = 3_000;
const NODE_MAX_RATE = 4_000; // initiations made beforehand per measured second (making them costs DHs too)
const NODE_BENCH = new URL('./bench-handshake-node.js', import.meta.url);
// The machine's cores (this process may be pinned to one: availableParallelism() would say 1).
const cores = Number(process.env.BENCH_NPROC) || cpus().length;

interface NodeHandshakes {
  /** Responses received per wall-clock second. */
  rate: number;
  /** CPU milliseconds of the node process (every thread) per response. */
  cpuMsPerHandshake: number;
  udp: string;
  /** Initiations unanswered after 500 ms or refused with a cookie, and the node's drops, while measured. */
  lost: number;
  drops: Record<string, number>;
}

/**
 * The node (scripts/bench-handshake-node.ts, a child process on every core) with `handshakeThreads`
 * workers (0: inline), and NODE_PEERS initiators here sending prebuilt initiations, NODE_WINDOW at a time,
 * for NODE_WARMUP_HANDSHAKES then SECONDS; counts the responses that come back.
 */
async function nodeHandshakes(handshakeThreads: number): Promise<NodeHandshakes> {
  const command = [process.execPath, fileURLToPath(NODE_BENCH)];
  // This process may be pinned to one core; the node gets them all.
  const child = process.env.BENCH_PINNED?.startsWith('pinned')
    ? spawn('taskset', ['-c', `0-${cores - 1}`, ...command], { stdio: ['pipe', 'pipe', 'inherit'] })
    : spawn(command[0]!, command.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const tell = (value: unknown) => child.stdin.write(`${JSON.stringify(value)}\n`);
  const hear = async <T>(): Promise<T> => {
    const { value, done } = await lines.next();
    if (done) throw new Error('the benchmark node exited');
    return JSON.parse(value as string) as T;
  };
  const initiators = Array.from({ length: NODE_PEERS }, () => localStatic(generatePrivateKey(random)));
  tell({ handshakeThreads, peers: initiators.map((i) => Buffer.from(i.publicKey).toString('base64')) });
  const node = await hear<{ port: number; publicKey: string; udp: string }>();

  // Each initiator's initiations carry timestamps a second apart: every one is newer than the last.
  const responder = new Uint8Array(Buffer.from(node.publicKey, 'base64'));
  const views = initiators.map((initiator) => peerKeys(initiator, responder));
  const macs = new MacSender(responder);
  const initiations = Array.from(
    { length: NODE_WARMUP_HANDSHAKES + Math.ceil(NODE_MAX_RATE * SECONDS) },
    (_, k) => {
      const created = createInitiation(
        WIREGUARD,
        initiators[k % NODE_PEERS]!,
        views[k % NODE_PEERS]!,
        generatePrivateKey(random),
        TAI64N(Date.now() + Math.floor(k / NODE_PEERS) * 1000),
        k,
      );
      if (!created.ok) throw new Error(created.reason);
      const datagram = writeInitiation({
        senderIndex: k,
        ephemeral: created.fields.ephemeral,
        encryptedStatic: created.fields.encryptedStatic,
        encryptedTimestamp: created.fields.encryptedPayload,
      });
      macs.addMacs(datagram, 0);
      return datagram;
    },
  );

  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  // Initiations in flight by sender index, with when each went; one unanswered for 500 ms is lost.
  const inFlight = new Map<number, number>();
  let sent = 0;
  let responses = 0;
  let lost = 0;
  const refill = () => {
    while (inFlight.size < NODE_WINDOW && sent < initiations.length) {
      inFlight.set(sent, performance.now());
      socket.send(initiations[sent++]!, node.port, '127.0.0.1');
    }
  };
  socket.on('message', (message) => {
    // A response names our index as its receiver (offset 8), a cookie reply at offset 4.
    const isResponse = message[0] === MESSAGE_RESPONSE;
    const waiting = inFlight.delete(message.readUInt32LE(isResponse ? 8 : 4));
    if (isResponse) responses++;
    else if (waiting) lost++; // a cookie reply: the node took itself to be under load
    refill();
  });
  const watchdog = setInterval(() => {
    const expired = performance.now() - 500;
    for (const [index, at] of inFlight) {
      if (at < expired) {
        inFlight.delete(index);
        lost++;
      }
    }
    refill();
  }, 100);
  refill();
  const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  while (responses < NODE_WARMUP_HANDSHAKES) await wait(50);
  tell('start');
  const start = { at: performance.now(), responses, lost };
  await wait(SECONDS * 1000);
  const seconds = (performance.now() - start.at) / 1000;
  const measured = { responses: responses - start.responses, lost: lost - start.lost };
  tell('stop');
  const usage = await hear<{ cpuSeconds: number; drops: Record<string, number> }>();
  clearInterval(watchdog);
  socket.close();
  await once(child, 'exit');
  if (sent === initiations.length) throw new Error('ran out of initiations: raise NODE_MAX_RATE');
  return {
    rate: measured.responses / seconds,
    cpuMsPerHandshake: (usage.cpuSeconds * 1000) / measured.responses,
    udp: node.udp,
    lost: measured.lost,
    drops: usage.drops,
  };
}

const nodeInline = await nodeHandshakes(0);
const nodeWorkers = await nodeHandshakes(cores);

const fmt = (n: number) => n.toFixed(1);
const lines = [
  '# Crypto benchmark',
  '',
  `- date: ${new Date().toISOString()}`,
  `- command: \`bash scripts/bench-crypto\` (${process.env.BENCH_PINNED ?? 'not pinned'}; best of ${ROUNDS} interleaved rounds of ${SECONDS} CPU seconds after 0.3 s warm-up; rates are per CPU second of this process)`,
  `- machine: nproc ${process.env.BENCH_NPROC ?? execSync('nproc').toString().trim()}, ${cpus()[0]?.model ?? 'unknown CPU'}, node ${process.version}`,
  `- load average at the end (1/5/15 min): ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ')}: other work on the machine lowers every number alike`,
  '',
  `ChaCha20-Poly1305 on ${PACKET}-byte packets, no associated data (MB/s = 10^6 bytes of plaintext per second):`,
  '',
  '| implementation | seal MB/s | open MB/s | seal ratio vs baseline | open ratio vs baseline |',
  '| --- | ---: | ---: | ---: | ---: |',
  ...rows.map(
    (r) =>
      `| ${r.name} | ${fmt(r.seal)} | ${fmt(r.open)} | ${(r.seal / baseline.seal).toFixed(2)} | ${(r.open / baseline.open).toFixed(2)} |`,
  ),
  '',
  `Engine transport cipher (createTransportCipher): **${engineName}**, seal ${fmt(engine.seal)} MB/s, open ${fmt(engine.open)} MB/s,`,
  `ratio to the baseline: seal ${(engine.seal / baseline.seal).toFixed(2)}×, open ${(engine.open / baseline.open).toFixed(2)}×.`,
  '',
  "X25519 (operations per CPU second; DH = a scalar times a peer's point, public key = a scalar times the base point):",
  '',
  '| implementation | DH /s | public key /s | DH ratio vs baseline | public key ratio vs baseline |',
  '| --- | ---: | ---: | ---: | ---: |',
  ...x25519Rates.map(
    (r) =>
      `| ${r.name} | ${r.shared.toFixed(0)} | ${r.base.toFixed(0)} | ${(r.shared / x25519Rates[0]!.shared).toFixed(2)} | ${(r.base / x25519Rates[0]!.base).toFixed(2)} |`,
  ),
  '',
  'Responder handshakes on one core (parse + mac1 check + consume initiation + create response + mac1 + derive keys; 4 X25519 operations each):',
  '',
  '| responder | handshakes /s | ratio vs baseline |',
  '| --- | ---: | ---: |',
  `| tweetnacl X25519 (baseline: the responder before x25519.ts) | ${handshakesBaseline.toFixed(0)} | 1.00 |`,
  `| crypto/x25519.ts (the engine's) | ${handshakes.toFixed(0)} | ${(handshakes / handshakesBaseline).toFixed(2)} |`,
  '',
  `Responder handshakes of the node, end to end (scripts/bench-handshake-node.ts, on all ${cores} cores: initiations from ${NODE_PEERS} peers over loopback UDP, ${NODE_WINDOW} in flight, responses counted per wall-clock second over ${SECONDS} s; the baseline is the tweetnacl row above, per CPU second of one core):`,
  '',
  '| node | handshakes /s | ratio vs baseline | node CPU ms per handshake (all threads) | CPU-bound: cores used × 1000 / CPU ms | its ratio vs baseline | unanswered | node drops | UDP |',
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |',
  ...(
    [
      ['responder handshakes/s, node inline (`--threads 1`)', nodeInline, 1],
      [`responder handshakes/s, node handshake worker (${cores} cores)`, nodeWorkers, cores],
    ] as const
  ).map(([name, row, used]) => {
    const bound = (used * 1000) / row.cpuMsPerHandshake;
    return `| ${name} | ${row.rate.toFixed(0)} | ${(row.rate / handshakesBaseline).toFixed(2)} | ${row.cpuMsPerHandshake.toFixed(2)} | ${bound.toFixed(0)} | ${(bound / handshakesBaseline).toFixed(2)} | ${row.lost} | ${JSON.stringify(row.drops)} | ${row.udp} |`;
  }),
  '',
  'On a busy machine the wall-clock rate is what the node got of it; the CPU-bound column is what the node would answer with its cores to itself at the CPU cost measured (the inline node answers on one).',
  '',
  "Initiations of a flood while under load, each from a new source port and without a cookie, so each gets a cookie reply: what the responder spends before any DH (the device's mac1 screen, then mac1, mac2 and the reply), on one core:",
  '',
  '| responder | initiations /s | µs each | ratio vs baseline |',
  '| --- | ---: | ---: | ---: |',
  `| the same steps as before (baseline: a BLAKE2s per MAC, mac2 always checked, @stablelib XChaCha20Poly1305, randomBytes per reply) | ${floodBaseline.toFixed(0)} | ${(1e6 / floodBaseline).toFixed(2)} | 1.00 |`,
  `| Tunnel.screenInitiation + admitInitiation (the engine's, the node's pooled randomness) | ${floodEngine.toFixed(0)} | ${(1e6 / floodEngine).toFixed(2)} | ${(floodEngine / floodBaseline).toFixed(2)} |`,
  '',
  `Tunnel façade (crypto/tunnel.ts), two engines in memory on one core:`,
  '',
  `- encapsulate + decapsulate of ${PACKET}-byte IPv4 packets: **${fmt(mbps(tunnelTransport))} MB/s** (${(mbps(tunnelTransport) / cipherOnly).toFixed(2)}× the engine cipher's seal+open alone, ${fmt(cipherOnly)} MB/s, measured above)`,
  `- complete handshakes (initiation + response + first data packet, both ends): **${tunnelHandshakes.toFixed(0)} /s**`,
  '',
  `Allocation on the data path: garbage collections per GB of ${PACKET}-byte packets (${GC_PACKETS} packets each; none is the goal):`,
  '',
  '| path | minor GCs per GB | major GCs per GB |',
  '| --- | ---: | ---: |',
  ...(
    [
      ['@stablelib/chacha20poly1305 seal + open (baseline: new buffers per call)', allocation.baseline],
      [`${engineName} seal + open into caller buffers`, allocation.engineCipher],
      [
        'Tunnel encapsulate + decapsulate, engine defaults (baseline: fresh buffers and results)',
        allocation.fresh,
      ],
      ['Tunnel encapsulate + decapsulate, the node’s options (in place, reused)', allocation.tunnel],
    ] as const
  ).map(([path, count]) => `| ${path} | ${count.minor.toFixed(1)} | ${count.major.toFixed(1)} |`),
  '',
  `Bytes of heap objects allocated per packet through a pair of Tunnels (encapsulate on one, decapsulate on the other, both directions in turn, a fractional-millisecond clock as the node's; heap growth over 1,000-packet samples in which no collection ran, median; contents of typed arrays above 64 bytes live outside the heap and are not in these bytes):`,
  '',
  '| Tunnel options | heap bytes per packet |',
  '| --- | ---: |',
  `| engine defaults (baseline: fresh buffers and results) | ${bytesPerPacket.fresh.toFixed(0)} |`,
  `| the node’s (decryptInPlace, reuseSendBuffers, reuseActions, reusedMessages) | ${bytesPerPacket.node.toFixed(0)} |`,
  '',
];
console.log(lines.join('\n'));
