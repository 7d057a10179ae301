/**
 * The tracker, composed from plugins: signaling WebSocket (/ws), read-only API (/healthz,
 * /api/...), Prometheus metrics (/metrics). buildTracker returns the instance without listening.
 */
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import websocket from '@fastify/websocket';
import { SIGNAL_BURST, SIGNAL_MAX_BYTES, SIGNAL_RATE_PER_SEC, type IceServer } from '../peer/core/signaling.js';
import type { Clock, Random } from '../peer/core/types.js';
import type { PeerConn, TrackerContext, TrackerLimits } from './context.js';
import type { TurnConfig } from './ice.js';
import { TrackerMetrics } from './metrics.js';
import { apiPlugin } from './plugins/api.js';
import { metricsPlugin } from './plugins/metrics.js';
import { CLOSE_GOING_AWAY, signalingPlugin } from './plugins/signaling.js';
import type { Registry } from './registry.js';
import { MemoryStore } from './store/memory.js';
import { RedisStore } from './store/redis.js';
import { OptimizerElection } from './store/election.js';
import type { TrackerStore } from './store/types.js';
import { StatsHub, type StatsHubOptions } from './stats/hub.js';
import { StatsMetrics } from './stats-metrics.js';
import { statsPlugin } from './plugins/stats.js';
import { optimizerPlugin, type OptimizerSettings } from './plugins/optimizer.js';
import { ParentIndexCache } from './parent-index.js';

export interface TrackerOptions {
  /** When set, joining as kind 'origin' requires this key (else error + close 1008). */
  publishKey?: string;
  /** Key for resume tokens; random per process by default. */
  resumeSecret?: Uint8Array;
  /** Host put into the ICE server URLs; default: the Host header of the WebSocket upgrade. */
  publicHost?: string;
  /** Port of the STUN responder (tracker/stun.ts) advertised in welcomes; 0/undefined: none. */
  stunPort?: number;
  /** TURN server with coturn's shared-secret REST credentials. */
  turn?: TurnConfig;
  /** Extra ICE servers appended verbatim to every welcome. */
  extraIceServers?: IceServer[];
  /** Fastify logger option (pino options or boolean). Default false (silent). */
  logger?: FastifyServerOptions['logger'];
  /** An existing pino logger instance (takes precedence over `logger`). */
  loggerInstance?: FastifyBaseLogger;
  /** Also collect prom-client's default process metrics. Default false. */
  defaultMetrics?: boolean;
  /** Overrides of the limits (defaults from peer/core/signaling.ts and below). */
  limits?: Partial<TrackerLimits>;
  /** Injected randomness for peer sampling. Default Math.random. */
  random?: Random;
  /** Monotonic clock (ms) for rate limiting. Default performance.now. */
  clock?: Clock;
  /** Wall clock (ms since epoch) for joinedAt and TURN expiry. Default Date.now. */
  now?: () => number;
  /** Admin token for the stats API, the live feed and the per-peer API; none: open. */
  adminToken?: string;
  /** StatsHub tuning (bucket size, windows, report rate limit). */
  stats?: Omit<StatsHubOptions, 'now'>;
  /** Live feed (SSE) period. Default 2000 ms. */
  liveIntervalMs?: number;
  /** This tracker's id in a shared store (lease owner, signal route). Default: random. */
  trackerId?: string;
  /**
   * Share peers, signaling and leases with other trackers through Redis. Without it the state is
   * in memory (one tracker). A resume secret not given explicitly is then shared through Redis.
   */
  redis?: { url: string; prefix?: string; aliveTtlMs?: number; reportFlushMs?: number };
  /** Optimizer lease timing (ms). Defaults: tracker/store/election.ts. */
  lease?: { ttlMs?: number; tickMs?: number };
  /** The Chandelier loop (tracker/plugins/optimizer.ts): enabled (default true), periodMs (1000), budgetMs (50). */
  optimizer?: Partial<OptimizerSettings>;
}

export const DEFAULT_LIMITS: TrackerLimits = {
  welcomePeers: 10,
  maxPeersPerRequest: 20,
  maxInfraPerSample: 2,
  ratePerSec: SIGNAL_RATE_PER_SEC,
  burst: SIGNAL_BURST,
  floodDropLimit: 1000,
  pingIntervalMs: 30_000,
  maxBufferedBytes: 1024 * 1024,
};

export interface TrackerState {
  registry: Registry<PeerConn>;
  store: TrackerStore;
  election: OptimizerElection;
  metrics: TrackerMetrics;
  /** Live figures per channel (feed optimizer rounds in with stats.recordEvent). */
  stats: StatsHub;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The tracker's peer registry and metrics (for main.ts, tests and embedding). */
    tracker: TrackerState;
  }
}

export async function buildTracker(opts: TrackerOptions = {}): Promise<FastifyInstance> {
  const app: FastifyInstance = opts.loggerInstance
    ? Fastify({ loggerInstance: opts.loggerInstance })
    : Fastify({ logger: opts.logger ?? false });

  const clock = opts.clock ?? { now: () => performance.now() };
  const trackerId = opts.trackerId ?? `t-${randomBytes(6).toString('hex')}`;
  const store: TrackerStore = opts.redis
    ? new RedisStore({
        url: opts.redis.url,
        prefix: opts.redis.prefix,
        aliveTtlMs: opts.redis.aliveTtlMs,
        reportFlushMs: opts.redis.reportFlushMs,
        trackerId,
        log: app.log.child({ part: 'store' }),
        maxBufferedBytes: opts.limits?.maxBufferedBytes ?? DEFAULT_LIMITS.maxBufferedBytes,
      })
    : new MemoryStore({ trackerId, now: () => clock.now() });
  const registry = store.registry;
  const metrics = new TrackerMetrics(registry, { defaultMetrics: opts.defaultMetrics });
  if (store instanceof RedisStore) store.attachMetrics(metrics.registry);
  try {
    await store.start();
  } catch (err) {
    await store.close().catch(() => {});
    throw err;
  }
  const resumeSecret = opts.resumeSecret ?? (await store.sharedSecret()) ?? randomBytes(32);
  const election = new OptimizerElection({
    store,
    owner: trackerId,
    channels: () => store.localChannels(),
    now: () => clock.now(),
    ttlMs: opts.lease?.ttlMs,
    tickMs: opts.lease?.tickMs,
    onError: (err) => app.log.warn({ err: String(err) }, 'optimizer lease round failed'),
  });
  metrics.attachLeadership(election);
  election.onChange((channel, leader) => app.log.info({ channel, leader, trackerId }, leader ? 'optimizer leadership taken' : 'optimizer leadership lost'));
  const now = opts.now ?? Date.now;
  const stats = new StatsHub({ ...opts.stats, now });
  const statsMetrics = new StatsMetrics(metrics.registry, stats);
  const ctx: TrackerContext = {
    registry,
    store,
    election,
    optimizerLeader: (channel) => election.isLeader(channel),
    optimizerEnabled: opts.optimizer?.enabled ?? true,
    metrics,
    ice: { publicHost: opts.publicHost, stunPort: opts.stunPort, turn: opts.turn, extra: opts.extraIceServers },
    publishKey: opts.publishKey,
    resumeSecret,
    limits: { ...DEFAULT_LIMITS, ...opts.limits },
    random: opts.random ?? { next: Math.random },
    clock,
    now,
    stats,
    statsMetrics,
    parentIndex: new ParentIndexCache({ store, registry, clock }),
    adminToken: opts.adminToken || undefined,
  };
  election.start();
  app.addHook('onClose', async () => {
    await election.stop();
    await store.close();
  });
  app.decorate('tracker', { registry, store, election, metrics, stats });

  await app.register(websocket, {
    options: { maxPayload: SIGNAL_MAX_BYTES },
    errorHandler(error, socket, request) {
      const code = (error as { code?: string }).code ?? '';
      if (code.startsWith('WS_ERR_')) {
        // ws has already sent the close frame (1009 for oversize, 1002/1007 otherwise).
        metrics.rejected.inc({ reason: code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'oversize' : 'protocol error' });
        request.log.debug({ code }, 'websocket protocol error');
        return;
      }
      request.log.warn({ err: error }, 'websocket error');
      socket.terminate();
    },
    preClose(done) {
      const wss = this.websocketServer;
      for (const client of wss.clients) client.close(CLOSE_GOING_AWAY, 'tracker shutting down');
      // Clients that do not complete the closing handshake are cut off shortly after.
      const t = setTimeout(() => {
        for (const client of wss.clients) client.terminate();
      }, 2000);
      t.unref();
      wss.close(() => clearTimeout(t));
      done();
    },
  });
  await app.register(signalingPlugin, { ctx });
  await app.register(apiPlugin, { ctx });
  await app.register(metricsPlugin, { ctx });
  await app.register(statsPlugin, { ctx, liveIntervalMs: opts.liveIntervalMs });
  await app.register(optimizerPlugin, { ctx, settings: opts.optimizer });
  return app;
}
