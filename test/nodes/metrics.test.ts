import { NodeMetrics, serveMetrics, type MetricsServer } from '../../nodes/metrics.js';
import { GroCoalescer, GsoSplitter } from '../../nodes/offload.js';
import { ALONE_RECORDS, CryptoThreads } from '../../nodes/threads/pool.js';
import { sample } from '../helpers/metrics.js';

const NOW = 1_800_000_000_000;

describe('node metrics over HTTP', () => {
  let server: MetricsServer;
  let metrics: NodeMetrics;
  const peers = [
    { lastHandshakeUnixMs: NOW - 1000 },
    { lastHandshakeUnixMs: NOW - 200_000 },
    { lastHandshakeUnixMs: 0 },
  ];

  beforeEach(async () => {
    metrics = new NodeMetrics(
      { peerCount: peers.length, forEachPeer: (visit) => peers.forEach(visit) },
      () => NOW,
    );
    server = await serveMetrics(metrics, '127.0.0.1', 0);
  });
  afterEach(() => server.close());

  const scrape = async () => {
    const response = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    expect(response.status).toBe(200);
    return response.text();
  };

  test('peers, handshakes, traffic and drops, counted across scrapes', async () => {
    const initiation = new Uint8Array(148).fill(0);
    initiation[0] = 1;
    const response = new Uint8Array(92);
    response[0] = 2;
    const data = new Uint8Array(128);
    data[0] = 4;
    metrics.datagramReceived(initiation);
    metrics.datagramSending(response);
    metrics.datagramReceived(data);
    // Starts like an initiation, one byte short: a malformed datagram, not a handshake message.
    metrics.datagramReceived(initiation.subarray(0, 147));
    // The socket counts in place what reached the kernel (the response) and what it refused (nodes/udp.ts).
    Object.assign(metrics.udpSends, { datagrams: 1, bytes: 92, refused: 1 });
    metrics.innerPacket('rx', new Uint8Array(84));
    metrics.drop('replay');
    metrics.drop('replay');

    let text = await scrape();
    expect(sample(text, 'tunnelbyte_node_peers')).toBe(3);
    expect(sample(text, 'tunnelbyte_node_peers_active')).toBe(1);
    expect(sample(text, 'tunnelbyte_node_udp_packets_total{direction="rx"}')).toBe(3);
    expect(sample(text, 'tunnelbyte_node_udp_bytes_total{direction="rx"}')).toBe(423);
    expect(sample(text, 'tunnelbyte_node_udp_packets_total{direction="tx"}')).toBe(1);
    expect(sample(text, 'tunnelbyte_node_udp_bytes_total{direction="tx"}')).toBe(92);
    expect(sample(text, 'tunnelbyte_node_udp_send_drops_total')).toBe(1);
    expect(sample(text, 'tunnelbyte_node_handshake_messages_total{type="initiation",direction="rx"}')).toBe(
      1,
    );
    expect(sample(text, 'tunnelbyte_node_handshake_messages_total{type="response",direction="tx"}')).toBe(1);
    expect(sample(text, 'tunnelbyte_node_tunnel_bytes_total{direction="rx"}')).toBe(84);
    expect(sample(text, 'tunnelbyte_node_drops_total{reason="replay"}')).toBe(2);
    expect(sample(text, 'tunnelbyte_node_drops_total{reason="mac1_invalid"}')).toBe(0);
    expect(text).toContain('tunnelbyte_node_process_resident_memory_bytes');
    // The event loop as read at the scrape (src/lib/process-metrics.ts), not sampled by a timer.
    expect(sample(text, 'tunnelbyte_node_nodejs_eventloop_busy_seconds_total')).toBeGreaterThan(0);
    expect(text).toContain('tunnelbyte_node_nodejs_eventloop_lag_seconds ');
    expect(text).not.toContain('tunnelbyte_node_nodejs_eventloop_lag_p99_seconds');

    metrics.drop('replay');
    metrics.datagramReceived(data);
    metrics.udpSends.refused++;
    text = await scrape();
    expect(sample(text, 'tunnelbyte_node_drops_total{reason="replay"}')).toBe(3);
    expect(sample(text, 'tunnelbyte_node_udp_packets_total{direction="rx"}')).toBe(4);
    expect(sample(text, 'tunnelbyte_node_udp_send_drops_total')).toBe(2);
  });

  test('offload counters: super-segments each way and drops by reason, as the TUN reports them', async () => {
    const splitter = new GsoSplitter();
    const coalescer = new GroCoalescer();
    metrics.countOffload({
      offloadDrops: () => splitter.drops,
      superSegments: () => ({ rx: coalescer.superSegments, tx: splitter.superSegments }),
    });
    splitter.split([new Uint8Array(4), new Uint8Array(10)], []); // two frames too short for a packet
    let text = await scrape();
    expect(sample(text, 'tunnelbyte_node_offload_drops_total{reason="vnet_header_short"}')).toBe(2);
    expect(sample(text, 'tunnelbyte_node_offload_drops_total{reason="gso_malformed"}')).toBe(0);
    expect(sample(text, 'tunnelbyte_node_offload_super_segments_total{direction="rx"}')).toBe(0);
    splitter.split([new Uint8Array(3)], []);
    text = await scrape();
    expect(sample(text, 'tunnelbyte_node_offload_drops_total{reason="vnet_header_short"}')).toBe(3);
  });

  test('crypto threads: transport messages handed to a thread and done inline, as the pool decided them', async () => {
    const threads = await CryptoThreads.start(2, 1420, (line) => {
      throw new Error(line);
    });
    try {
      metrics.countCryptoThreads(threads);
      const series = (path: string) => `tunnelbyte_node_crypto_messages_total{path="${path}"}`;
      let text = await scrape();
      expect([sample(text, series('inline')), sample(text, series('handed_over'))]).toEqual([0, 0]);
      // One turn of a few more messages than the main thread does alone.
      for (let n = 0; n < ALONE_RECORDS + 2; n++) threads.takes({ name: 'peer' });
      text = await scrape();
      expect([sample(text, series('inline')), sample(text, series('handed_over'))]).toEqual([
        ALONE_RECORDS,
        2,
      ]);
    } finally {
      await threads.close();
    }
  });

  test("the kernel's receive drops as the device reads them at each scrape", async () => {
    // 0 once the device is closed (no socket): the counter keeps what it had, and the scrape succeeds.
    const reads = [0, 5, 5, 12, 0, 14];
    metrics.countUdpReceiveDrops(() => reads.shift()!);
    const totals: Array<number | undefined> = [];
    for (let i = 0; i < 6; i++)
      totals.push(sample(await scrape(), 'tunnelbyte_node_udp_receive_drops_total'));
    expect(totals).toEqual([0, 5, 5, 12, 12, 14]);
  });

  test('without process metrics (the warm-up devices): the traffic counters only', async () => {
    const bare = new NodeMetrics({ peerCount: 0, forEachPeer: () => undefined }, () => NOW, false);
    bare.datagramReceived(new Uint8Array(128));
    const text = await bare.registry.metrics();
    expect(sample(text, 'tunnelbyte_node_udp_packets_total{direction="rx"}')).toBe(1);
    expect(text).not.toContain('tunnelbyte_node_process_');
    expect(text).not.toContain('tunnelbyte_node_nodejs_');
  });

  test('anything but GET /metrics is 404', async () => {
    expect((await fetch(`http://127.0.0.1:${server.port}/`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${server.port}/metrics`, { method: 'POST' })).status).toBe(404);
  });
});
