/**
 * Starts a listening tracker plus its STUN responder: what tracker/main.ts runs, reusable by
 * scripts and network tests.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { TrackerMetrics } from './metrics.js';
import { urlHost } from './ice.js';
import { buildTracker, type TrackerOptions } from './server.js';
import { startStunServer, type StunServer } from './stun.js';

export interface LaunchOptions extends Omit<TrackerOptions, 'stunPort'> {
  /** HTTP/WebSocket port (0: any free port). */
  port: number;
  /** Bind address. Default '0.0.0.0'. */
  host?: string;
  /** UDP port of the STUN responder; 0 disables it; 'any' picks a free port. Default 3478. */
  stunPort?: number | 'any';
  /**
   * TCP accept queue. Default 4096 (the kernel caps it at net.core.somaxconn): when a tracker
   * dies its peers all reconnect to the others within a second or two, and a short queue drops
   * their SYNs (each drop costs the peer a 1 s, then 3 s, retransmission).
   */
  backlog?: number;
}

export interface LaunchedTracker {
  app: FastifyInstance;
  stun: StunServer | null;
  /** http://ADDR:PORT for each listening address. */
  httpUrls: string[];
  /** ws://ADDR:PORT/ws for each listening address. */
  wsUrls: string[];
  close(): Promise<void>;
}

export async function launchTracker(opts: LaunchOptions): Promise<LaunchedTracker> {
  const host = opts.host ?? '0.0.0.0';
  const stunPort = opts.stunPort ?? 3478;
  let stun: StunServer | null = null;
  let app: FastifyInstance | null = null;
  try {
    // STUN first (its actual port goes into the welcomes); its counters land in the tracker's
    // registry once the tracker exists.
    let metrics: TrackerMetrics | null = null;
    let log: FastifyBaseLogger | null = null;
    if (stunPort === 'any' || stunPort > 0) {
      stun = await startStunServer({
        port: stunPort === 'any' ? 0 : stunPort,
        host,
        onAnswered: () => metrics?.stunAnswered.inc(),
        onIgnored: (reason) => metrics?.stunIgnored.inc({ reason }),
        onError: (err) => log?.warn({ err }, 'stun socket error'),
      });
    }
    app = await buildTracker({ ...opts, stunPort: stun?.port ?? 0 });
    metrics = app.tracker.metrics;
    log = app.log;
    await app.listen({ port: opts.port, host, backlog: opts.backlog ?? 4096 });
  } catch (err) {
    await stun?.close();
    await app?.close();
    throw err;
  }
  const started = app;
  const port = (started.server.address() as AddressInfo).port;
  const addrs = started
    .addresses()
    .flatMap((a) => (typeof a === 'string' ? [] : [`${urlHost(a.address)}:${a.port}`]));
  if (addrs.length === 0) addrs.push(`${urlHost(host)}:${port}`);
  const runningStun = stun;
  return {
    app: started,
    stun: runningStun,
    httpUrls: addrs.map((a) => `http://${a}`),
    wsUrls: addrs.map((a) => `ws://${a}/ws`),
    async close() {
      await started.close();
      await runningStun?.close();
    },
  };
}
