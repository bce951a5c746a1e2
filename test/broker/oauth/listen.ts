// A broker listening on a real loopback port whose TB_PUBLIC_URL is that port, for clients that speak
// HTTP themselves (an OAuth library, a browser, the CLI).
import type { Server } from 'node:http';
import { freePort } from '../../helpers/redis.js';
import { startBroker, type TestBroker } from '../helpers.js';

export interface ListeningBroker {
  broker: TestBroker;
  url: string;
  close(): Promise<void>;
}

/**
 * `host` names the broker in its URL; it listens on 127.0.0.1 whatever the name (a browser maps a name
 * other than 127.0.0.1 there with --host-resolver-rules).
 */
export async function listenBroker(
  env: Record<string, string> = {},
  host = '127.0.0.1',
): Promise<ListeningBroker> {
  // Free right now on 127.0.0.1; the broker binds it right after.
  const port = await freePort();
  const url = `http://${host}:${port}`;
  const broker = await startBroker({
    env: {
      TB_PUBLIC_URL: url,
      PUBLIC_BURST: '1000000',
      TB_TIERS: JSON.stringify({ pro: { requestsPerMinute: 1000000 } }),
      ...env,
    },
  });
  const server: Server = await new Promise((resolve) => {
    const s = broker.app.listen(port, '127.0.0.1', () => resolve(s));
  });
  return {
    broker,
    url,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await broker.close();
    },
  };
}
