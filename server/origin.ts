/**
 * The origin, composed: ffmpeg (ABR ladder -> HLS fMP4 on disk) -> watcher (manifests, signed)
 * -> segment window (memory) -> HTTP (playlists, segments, manifests, pages) and, optionally,
 * the root peer that injects every new segment into the P2P overlay.
 */
import { resolve, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger as PinoLogger } from 'pino';
import { DEFAULT_PIECE_SIZE } from '../peer/core/manifest.js';
import { isValidName, type ChannelInfo } from '../peer/core/paths.js';
import { registerChannelApi } from './api.js';
import { isValidStreamKey } from './auth.js';
import { Channel, type RootPeerFactory, type RootPeerHandle } from './channel.js';
import { DEFAULT_LADDER, findFfmpeg, type FfmpegBinary, type LadderRung, type SourceSpec } from './ffmpeg.js';
import { buildOriginHttp, type HttpChannel } from './http.js';
import { IngestMetrics } from './ingest-metrics.js';
import { OriginMetrics } from './metrics.js';
import { startRtmpServer, type RtmpServer } from './rtmp.js';
import type { SegmentWindow } from './segment-window.js';
import type { SegmentEvent } from './watcher.js';
import { registerWhip } from './whip.js';

export type { RootPeerFactory, RootPeerHandle, RootPeerOptions } from './channel.js';

/** One channel as configured (file, API): its own key, ladder, source and stream key. */
export interface ChannelConfig {
  channel: string;
  /** Publishing (WHIP/RTMP) needs it; absent: the channel cannot be published to. */
  streamKey?: string;
  /** Rendition names from LADDER_PRESETS (e.g. ['720p', '360p']) or full rungs. Default: the origin's ladder. */
  renditions?: (string | LadderRung)[];
  /** Default null: the channel waits for WHIP/RTMP. */
  source?: SourceSpec | null;
  /** 64 hex digits: the channel's Ed25519 seed (else <keyDir>/<channel>.key). */
  originKeyHex?: string;
  /** Keep the broadcast on disk for VoD after it ends. Default: true for ingest channels. */
  record?: boolean;
}

export interface OriginOptions {
  /** Channel name ([a-z0-9][a-z0-9_-]{0,31}). */
  channel: string;
  /** HTTP listen address. Default '0.0.0.0'. */
  host?: string;
  /** HTTP port; 0 picks a free one. Default 8080. */
  port?: number;
  /** State directory: <workDir>/origin/<channel>/<rung>/ (ffmpeg output), <workDir>/keys/. Default ./.starling */
  workDir?: string;
  /** Directory of <channel>.key; default <workDir>/keys. */
  keyDir?: string;
  /** 64 hex digits: the channel's Ed25519 seed (else the key file, created on first run). */
  originKeyHex?: string;
  /** Default channel's source; default the test pattern; null: it waits for WHIP/RTMP. */
  source?: SourceSpec | null;
  ladder?: LadderRung[];
  /** Segment duration, seconds. Default 2. */
  segmentDuration?: number;
  fps?: number;
  /** x264 preset. Default 'veryfast'. */
  preset?: string;
  /** ffmpeg binary; default findFfmpeg() (STARLING_FFMPEG, PATH, @ffmpeg-installer/ffmpeg). */
  ffmpegPath?: string;
  pieceSize?: number;
  /** Segments kept in memory per rendition. Default 30. */
  windowSegments?: number;
  /** Segments listed in the served media playlists. Default 6. */
  liveWindowSegments?: number;
  /** Playlist poll period. Default 150 ms. */
  pollMs?: number;
  /** Tracker for the root peer; absent: no root peer (HTTP only). */
  trackerUrl?: string;
  /** Publish key the tracker wants from an 'origin' peer. */
  publishKey?: string;
  /** Root peer's upload budget in neighbors. Default 4. */
  rootPeerMaxNeighbors?: number;
  /** Replaces the dynamic import of peer/node/node-peer.ts (tests, embedding). */
  rootPeerFactory?: RootPeerFactory;
  /** /config.json trackerUrl; default ws://<Host header's host>:<trackerPort>/ws. */
  publicTrackerUrl?: string;
  /** Default: the port of trackerUrl, else 8000. */
  trackerPort?: number;
  /** Built player pages; default <repo>/player/dist; null: no pages. */
  playerDir?: string | null;
  log?: PinoLogger;
  signal?: AbortSignal;
  /** The default channel's stream key: with it the default channel accepts WHIP/RTMP publishes. */
  streamKey?: string;
  /** Default channel: keep a VoD recording (default: only when it waits for an ingest). */
  record?: boolean;
  /** More channels, created at start. */
  channels?: ChannelConfig[];
  /** Bearer token of POST/DELETE /api/channels; absent: channels are created by configuration only. */
  adminToken?: string;
  /** Most channels one origin hosts (config + API). Default 16. */
  maxChannels?: number;
  /** A dropped publisher may reconnect this long and continue its broadcast. Default 15 s. */
  ingestGraceMs?: number;
  /** WHIP ingest (POST /whip/<channel>). Default true. */
  whip?: boolean;
  /** Extra werift options for WHIP sessions (tests). */
  whipPeerConfig?: Record<string, unknown>;
  /** RTMP ingest: listen port (0: any free port); null/absent: no RTMP. */
  rtmpPort?: number | null;
  /** RTMP listen address; default: the HTTP host. */
  rtmpHost?: string;
}

export interface OriginStats {
  segmentsPublished: number;
  httpBytesOut: number;
  lastSegmentAgeMs: number | null;
  ffmpegRestarts: number;
  rootPeer: boolean;
  newestSeq: Record<string, number | null>;
}

export interface Origin {
  /** http://<host>:<port> (127.0.0.1 when listening on every address). */
  readonly url: string;
  readonly port: number;
  readonly channel: string;
  readonly publicKey: Uint8Array;
  readonly publicKeyHex: string;
  readonly info: ChannelInfo;
  /** ffmpeg's output directory (one sub-directory per rung index). */
  readonly outDir: string;
  readonly ffmpeg: FfmpegBinary;
  readonly http: FastifyInstance;
  readonly window: SegmentWindow;
  readonly metrics: OriginMetrics;
  rootPeer(): RootPeerHandle | null;
  /** The default channel. */
  readonly defaultChannel: Channel;
  /** Every channel, by name. */
  channels(): Channel[];
  getChannel(name: string): Channel | null;
  /** Creates a channel (as the API does); throws ChannelError. */
  createChannel(cfg: ChannelConfig): Promise<Channel>;
  /** RTMP listen port, or null without RTMP. */
  readonly rtmpPort: number | null;
  /** Called for every published segment (init segments included), after it entered the window. */
  onSegment(handler: (e: SegmentEvent) => void): () => void;
  stats(): OriginStats;
  /** Stops ffmpeg (no orphans), the watcher, the root peer and the HTTP server. Idempotent. */
  stop(): Promise<void>;
}

export class ChannelError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

export async function startOrigin(opts: OriginOptions): Promise<Origin> {
  const channel = opts.channel;
  if (!isValidName(channel)) throw new Error(`invalid channel name ${JSON.stringify(channel)} (want ${'[a-z0-9][a-z0-9_-]{0,31}'})`);
  const ladder = opts.ladder ?? DEFAULT_LADDER;
  const log = opts.log ?? pino({ name: 'origin', level: process.env.LOG_LEVEL ?? 'info' });
  const workDir = resolve(opts.workDir ?? '.starling');
  const keyDir = opts.keyDir ?? join(workDir, 'keys');
  const binary: FfmpegBinary = opts.ffmpegPath ? { path: opts.ffmpegPath, origin: 'env' } : findFfmpeg();
  const metrics = new OriginMetrics();
  const ingestMetrics = new IngestMetrics(metrics.registry);
  const maxChannels = opts.maxChannels ?? 16;
  const channels = new Map<string, Channel>();
  const httpChannels = new Map<string, HttpChannel>();
  let stopping = false;

  const rootPeer = opts.trackerUrl
    ? { trackerUrl: opts.trackerUrl, publishKey: opts.publishKey, maxNeighbors: opts.rootPeerMaxNeighbors ?? 4, factory: opts.rootPeerFactory ?? defaultRootPeerFactory }
    : null;

  const creating = new Set<string>();
  const createChannel = async (cfg: ChannelConfig, defaults: { originKeyHex?: string; record?: boolean; ladder?: LadderRung[] } = {}): Promise<Channel> => {
    if (stopping) throw new ChannelError('origin stopping', 503);
    if (!isValidName(cfg.channel)) throw new ChannelError('invalid channel name (want [a-z0-9][a-z0-9_-]{0,31})', 400);
    if (channels.has(cfg.channel) || creating.has(cfg.channel)) throw new ChannelError('channel exists', 409);
    if (channels.size + creating.size >= maxChannels) throw new ChannelError(`channel limit reached (${maxChannels})`, 429);
    if (cfg.streamKey !== undefined && !isValidStreamKey(cfg.streamKey)) throw new ChannelError('invalid stream key (8-128 characters of [A-Za-z0-9._~+=:@!$*,;-])', 400);
    const rungs = defaults.ladder ?? (cfg.renditions ? resolveLadder(cfg.renditions) : ladder);
    const source = cfg.source === undefined ? null : cfg.source;
    creating.add(cfg.channel);
    try {
      const ch = await Channel.create({
        name: cfg.channel,
        workDir,
        keyDir,
        originKeyHex: cfg.originKeyHex ?? defaults.originKeyHex,
        ladder: rungs,
        source,
        streamKey: cfg.streamKey,
        segmentDuration: opts.segmentDuration ?? 2,
        fps: opts.fps ?? 25,
        preset: opts.preset,
        pieceSize: opts.pieceSize ?? DEFAULT_PIECE_SIZE,
        windowSegments: opts.windowSegments ?? 30,
        liveWindowSegments: opts.liveWindowSegments ?? 6,
        pollMs: opts.pollMs,
        graceMs: opts.ingestGraceMs ?? 15_000,
        record: cfg.record ?? defaults.record ?? source === null,
        binary,
        metrics,
        rootPeer,
        log: log.child({ channel: cfg.channel }),
      });
      if (stopping) {
        await ch.stop();
        throw new ChannelError('origin stopping', 503);
      }
      channels.set(cfg.channel, ch);
      httpChannels.set(cfg.channel, ch.http);
      ingestMetrics.trackChannel(ch);
      return ch;
    } finally {
      creating.delete(cfg.channel);
    }
  };

  const trackerPort = opts.trackerPort ?? (opts.trackerUrl ? portOf(opts.trackerUrl) : undefined) ?? 8000;
  const http = await buildOriginHttp({
    channels: httpChannels,
    defaultChannel: channel,
    metrics,
    publicTrackerUrl: opts.publicTrackerUrl,
    trackerPort,
    playerDir: opts.playerDir,
    logger: log.child({ component: 'http' }),
    health: () => {
      const def = channels.get(channel);
      return { channel, rootPeer: def?.rootPeer() != null, ffmpegRunning: def?.ffmpegPid !== undefined, channels: channels.size };
    },
  });
  registerChannelApi(http, {
    channels: () => [...channels.values()],
    get: (n) => channels.get(n) ?? null,
    create: (cfg) => createChannel(cfg),
    remove: async (n) => {
      const ch = channels.get(n);
      if (!ch) return false;
      channels.delete(n);
      httpChannels.delete(n);
      ingestMetrics.untrack(ch);
      await ch.stop();
      return true;
    },
    adminToken: opts.adminToken,
    log: log.child({ component: 'api' }),
  });
  const whip = opts.whip === false ? null : registerWhip(http, {
    channel: (n) => channels.get(n) ?? null,
    metrics: ingestMetrics,
    workDir: join(workDir, 'ingest'),
    peerConfig: opts.whipPeerConfig,
    log: log.child({ component: 'whip' }),
  });
  let rtmp: RtmpServer | null = null;

  let stopPromise: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    if (stopPromise) return stopPromise;
    stopping = true;
    stopPromise = (async () => {
      opts.signal?.removeEventListener('abort', onAbort);
      await rtmp?.close().catch((err) => log.error({ err: String(err) }, 'stopping RTMP failed'));
      await whip?.closeAll();
      await Promise.all([...channels.values()].map((c) => c.stop()));
      metrics.rootPeerUp.set(0);
      await http.close();
      log.info('origin stopped');
    })();
    return stopPromise;
  };
  const onAbort = () => void stop();

  let def: Channel;
  try {
    await http.listen({ host: opts.host ?? '0.0.0.0', port: opts.port ?? 8080 });
    def = await createChannel(
      { channel, streamKey: opts.streamKey, source: opts.source === undefined ? { type: 'testsrc' } : opts.source },
      { originKeyHex: opts.originKeyHex, record: opts.record, ladder },
    );
    for (const c of opts.channels ?? []) await createChannel(c);
    if (opts.rtmpPort !== undefined && opts.rtmpPort !== null) {
      rtmp = await startRtmpServer({
        host: opts.rtmpHost ?? opts.host ?? '0.0.0.0',
        port: opts.rtmpPort,
        channel: (n) => channels.get(n) ?? null,
        metrics: ingestMetrics,
        log: log.child({ component: 'rtmp' }),
      });
    }
  } catch (err) {
    await stop();
    throw err;
  }
  if (opts.signal?.aborted) await stop();
  else opts.signal?.addEventListener('abort', onAbort, { once: true });

  const addr = http.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : (opts.port ?? 8080);
  const listenHost = opts.host ?? '0.0.0.0';
  const urlHost = listenHost === '0.0.0.0' || listenHost === '::' ? '127.0.0.1' : listenHost.includes(':') ? `[${listenHost}]` : listenHost;
  log.info({
    url: `http://${urlHost}:${port}`, channel, channels: [...channels.keys()], ffmpeg: binary.path, ffmpegOrigin: binary.origin,
    whip: whip !== null, rtmpPort: rtmp?.port ?? null,
  }, 'origin listening');

  return {
    url: `http://${urlHost}:${port}`,
    port,
    channel,
    publicKey: def.publicKey,
    publicKeyHex: def.info.publicKey,
    info: def.info,
    outDir: def.outDir,
    ffmpeg: binary,
    http,
    window: def.window,
    metrics,
    defaultChannel: def,
    rtmpPort: rtmp?.port ?? null,
    channels: () => [...channels.values()],
    getChannel: (n) => channels.get(n) ?? null,
    createChannel: (cfg) => createChannel(cfg),
    rootPeer: () => def.rootPeer(),
    onSegment: (h) => def.onSegmentPublished(h),
    stats: () => ({
      ...metrics.snapshot(),
      ffmpegRestarts: def.restarts,
      rootPeer: def.rootPeer() !== null,
      newestSeq: Object.fromEntries(def.info.renditions.map((r) => [r.name, def.window.newest(r.name)?.ref.seq ?? null])),
    }),
    stop,
  };
}

/** Named rungs a channel may pick (POST /api/channels {renditions: ['720p', '360p']}). */
export const LADDER_PRESETS: Record<string, LadderRung> = {
  '1080p': { name: '1080p', width: 1920, height: 1080, videoBitrate: 4_500_000, audioBitrate: 128_000 },
  '720p': { name: '720p', width: 1280, height: 720, videoBitrate: 2_500_000, audioBitrate: 128_000 },
  '480p': { name: '480p', width: 854, height: 480, videoBitrate: 1_200_000, audioBitrate: 96_000 },
  '360p': DEFAULT_LADDER[0],
  '240p': DEFAULT_LADDER[1],
};

export function resolveLadder(list: (string | LadderRung)[]): LadderRung[] {
  if (!Array.isArray(list) || list.length === 0 || list.length > 5) throw new ChannelError('renditions: 1 to 5 entries', 400);
  const out = list.map((r) => {
    if (typeof r === 'string') {
      const p = LADDER_PRESETS[r];
      if (!p) throw new ChannelError(`unknown rendition ${JSON.stringify(r).slice(0, 40)} (one of ${Object.keys(LADDER_PRESETS).join(', ')})`, 400);
      return p;
    }
    return r;
  });
  if (new Set(out.map((r) => r.name)).size !== out.length) throw new ChannelError('duplicate renditions', 400);
  // Highest first: hls.js starts with the first listed variant.
  return out.slice().sort((a, b) => b.width * b.height - a.width * a.height);
}

function portOf(url: string): number | undefined {
  try {
    const p = new URL(url).port;
    return p ? Number(p) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The root peer: peer/node/node-peer.ts's startNodePeer, imported on first use so that an
 * HTTP-only origin never loads werift.
 */
export const defaultRootPeerFactory: RootPeerFactory = async (o) => {
  const { startNodePeer } = await import('../peer/node/node-peer.js');
  return startNodePeer({
    trackerUrl: o.trackerUrl,
    channel: o.channel,
    kind: o.kind,
    publicKey: o.publicKey,
    maxNeighbors: o.maxNeighbors,
    publishKey: o.publishKey,
    log: o.log,
  });
};
