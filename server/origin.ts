/**
 * The origin, composed: ffmpeg (ABR ladder -> HLS fMP4 on disk) -> watcher (manifests, signed)
 * -> segment window (memory) -> HTTP (playlists, segments, manifests, pages) and, optionally,
 * the root peer that injects every new segment into the P2P overlay.
 */
import { mkdir } from 'node:fs/promises';
import { resolve, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger as PinoLogger } from 'pino';
import { DEFAULT_PIECE_SIZE, type Manifest } from '../peer/core/manifest.js';
import { isValidName, type ChannelInfo } from '../peer/core/paths.js';
import type { Logger, SegmentRef } from '../peer/core/types.js';
import {
  buildFfmpegArgs, DEFAULT_LADDER, fileHasAudio, findFfmpeg, FfmpegSupervisor, prepareOutputDirs, rungDir,
  type FfmpegBinary, type LadderRung, type SourceSpec,
} from './ffmpeg.js';
import { buildOriginHttp, type HttpChannel } from './http.js';
import { OriginMetrics } from './metrics.js';
import { AAC_LC_CODEC, avcCodecFromInit, DEFAULT_VIDEO_CODEC, masterPlaylist, mediaPlaylist } from './playlist.js';
import { SegmentWindow } from './segment-window.js';
import { loadOrCreateSigner } from './signer.js';
import { PlaylistWatcher, type SegmentEvent } from './watcher.js';

/** What the origin needs from a running root peer (peer/node/node-peer.ts's startNodePeer). */
export interface RootPeerHandle {
  engine: { publishSegment(manifest: Manifest, data: Uint8Array): void; stats?(): unknown };
  stop(): Promise<void> | void;
}

export interface RootPeerOptions {
  trackerUrl: string;
  channel: string;
  kind: 'origin';
  /** The channel's raw 32-byte Ed25519 public key. */
  publicKey: Uint8Array;
  maxNeighbors: number;
  publishKey?: string;
  log: Logger;
}

export type RootPeerFactory = (o: RootPeerOptions) => Promise<RootPeerHandle>;

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
  source?: SourceSpec;
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
  /** Called for every published segment (init segments included), after it entered the window. */
  onSegment(handler: (e: SegmentEvent) => void): () => void;
  stats(): OriginStats;
  /** Stops ffmpeg (no orphans), the watcher, the root peer and the HTTP server. Idempotent. */
  stop(): Promise<void>;
}

/** Segment numbers continue across restarts: start at the 2 s slot of the wall clock since 2024. */
const SEQ_EPOCH = Date.UTC(2024, 0, 1);

export async function startOrigin(opts: OriginOptions): Promise<Origin> {
  const channel = opts.channel;
  if (!isValidName(channel)) throw new Error(`invalid channel name ${JSON.stringify(channel)} (want ${'[a-z0-9][a-z0-9_-]{0,31}'})`);
  const ladder = opts.ladder ?? DEFAULT_LADDER;
  if (!ladder.length) throw new Error('empty ladder');
  for (const r of ladder) if (!isValidName(r.name)) throw new Error(`invalid rendition name ${JSON.stringify(r.name)}`);
  if (new Set(ladder.map((r) => r.name)).size !== ladder.length) throw new Error('duplicate rendition names');
  const log = opts.log ?? pino({ name: 'origin', level: process.env.LOG_LEVEL ?? 'info' });
  const segDur = opts.segmentDuration ?? 2;
  const fps = opts.fps ?? 25;
  const pieceSize = opts.pieceSize ?? DEFAULT_PIECE_SIZE;
  const liveWindow = opts.liveWindowSegments ?? 6;
  const workDir = resolve(opts.workDir ?? '.starling');
  const outDir = join(workDir, 'origin', channel);
  const source: SourceSpec = opts.source ?? { type: 'testsrc' };

  const binary: FfmpegBinary = opts.ffmpegPath ? { path: opts.ffmpegPath, origin: 'env' } : findFfmpeg();
  const sourceHasAudio = source.type === 'file' ? fileHasAudio(binary.path, source.path) : true;
  const { signer, created, file: keyFile } = await loadOrCreateSigner({
    channel, keyDir: opts.keyDir ?? join(workDir, 'keys'), seedHex: opts.originKeyHex,
  });
  log.info({ channel, publicKey: signer.publicKeyHex, keyFile, created }, created ? 'generated a new channel key' : 'channel key loaded');
  await mkdir(outDir, { recursive: true });

  const metrics = new OriginMetrics();
  const window = new SegmentWindow(opts.windowSegments ?? 30);
  let ended = false;
  const bandwidth = (r: LadderRung) => Math.round((r.videoBitrate + r.audioBitrate) * 1.1);
  const info: ChannelInfo = {
    channel,
    publicKey: signer.publicKeyHex,
    renditions: ladder.map((r) => ({ name: r.name, width: r.width, height: r.height, bandwidth: bandwidth(r) })),
    segmentDuration: segDur,
    pieceSize,
  };

  const httpChannel: HttpChannel = {
    info: () => info,
    masterPlaylist: () => {
      if (ladder.some((r) => !window.init(r.name) || !window.newest(r.name))) return null;
      return masterPlaylist(ladder.map((r) => ({
        name: r.name, width: r.width, height: r.height, bandwidth: bandwidth(r), frameRate: fps,
        codecs: `${avcCodecFromInit(window.init(r.name)!.data) ?? DEFAULT_VIDEO_CODEC},${AAC_LC_CODEC}`,
      })));
    },
    mediaPlaylist: (rendition) => {
      if (!ladder.some((r) => r.name === rendition) || !window.init(rendition)) return null;
      const segs = window.latest(rendition, liveWindow);
      if (!segs.length) return null;
      return mediaPlaylist({
        segments: segs.map((s) => ({
          seq: s.ref.seq, durationMs: s.manifest.durationMs, createdAt: s.manifest.createdAt, discontinuity: s.discontinuity,
        })),
        segmentDuration: segDur,
        discontinuitySequence: window.discontinuitiesBefore(rendition, segs[0].ref.seq),
        ended,
      });
    },
    segment: (ref: SegmentRef) => window.get(ref),
  };

  const trackerPort = opts.trackerPort ?? (opts.trackerUrl ? portOf(opts.trackerUrl) : undefined) ?? 8000;
  const http = await buildOriginHttp({
    channels: new Map([[channel, httpChannel]]),
    defaultChannel: channel,
    metrics,
    publicTrackerUrl: opts.publicTrackerUrl,
    trackerPort,
    playerDir: opts.playerDir,
    logger: log.child({ component: 'http' }),
    health: () => ({ channel, rootPeer: rootPeer !== null, ffmpegRunning: supervisor.pid !== undefined }),
  });

  // ---- watcher -> window -> (root peer)
  const watcher = new PlaylistWatcher({
    channel,
    renditions: ladder.map((r, i) => ({ name: r.name, dir: rungDir(outDir, i) })),
    sign: signer.sign,
    pieceSize,
    pollMs: opts.pollMs,
    log: log.child({ component: 'watcher' }),
  });
  const handlers = new Set<(e: SegmentEvent) => void>();
  let rootPeer: RootPeerHandle | null = null;
  watcher.on('segment', (e) => {
    window.add({ ref: e.ref, manifest: e.manifest, data: e.data, discontinuity: e.discontinuity });
    metrics.segmentPublished(e.ref.rendition);
    log.debug({ rendition: e.ref.rendition, seq: e.ref.seq, size: e.data.length }, 'segment published');
    if (rootPeer) publishToPeer(rootPeer, e.manifest, e.data);
    for (const h of handlers) h(e);
  });
  const publishToPeer = (peer: RootPeerHandle, manifest: Manifest, data: Uint8Array) => {
    try {
      peer.engine.publishSegment(manifest, data);
    } catch (err) {
      log.error({ err: String(err), rendition: manifest.rendition, seq: manifest.seq }, 'root peer rejected a segment');
    }
  };

  // ---- ffmpeg
  const supervisor = new FfmpegSupervisor({
    binary,
    log: log.child({ component: 'ffmpeg' }),
    prepare: () => prepareOutputDirs(outDir, ladder.length),
    args: () => {
      const last = watcher.lastSeq();
      const clockSeq = Math.floor((Date.now() - SEQ_EPOCH) / (segDur * 1000));
      const startNumber = Math.max(clockSeq, last === null ? 0 : last + 1);
      return buildFfmpegArgs({
        ladder, source, sourceHasAudio, outDir, segmentDuration: segDur, fps, preset: opts.preset, startNumber,
        listSize: Math.max(6, liveWindow + 4),
      });
    },
    onSpawn: ({ restart }) => {
      if (!restart) return;
      metrics.ffmpegRestarts.inc();
      watcher.markRestart();
    },
    shouldRestart: ({ code }) => !(source.type === 'file' && !source.loop && code === 0),
    onFinished: () => {
      // A non-looping file ended: publish what is left, then end the playlists.
      void watcher.pollOnce().then(() => {
        ended = true;
        log.info('source file ended; playlists closed with EXT-X-ENDLIST');
      });
    },
  });

  // ---- root peer (optional)
  let stopping = false;
  let rootTimer: NodeJS.Timeout | null = null;
  const startRootPeer = async (): Promise<void> => {
    if (!opts.trackerUrl || stopping) return;
    const factory = opts.rootPeerFactory ?? defaultRootPeerFactory;
    try {
      const peer = await factory({
        trackerUrl: opts.trackerUrl,
        channel,
        kind: 'origin',
        publicKey: signer.publicKey,
        maxNeighbors: opts.rootPeerMaxNeighbors ?? 4,
        publishKey: opts.publishKey,
        log: log.child({ component: 'root-peer' }),
      });
      if (stopping) {
        await peer.stop();
        return;
      }
      rootPeer = peer;
      metrics.rootPeerUp.set(1);
      for (const e of window.entries()) publishToPeer(peer, e.manifest, e.data);
      log.info({ trackerUrl: opts.trackerUrl, maxNeighbors: opts.rootPeerMaxNeighbors ?? 4 }, 'root peer started');
    } catch (err) {
      log.error({ err: String(err), retryInMs: 5000 }, 'root peer could not start; retrying');
      rootTimer = setTimeout(() => { rootTimer = null; void startRootPeer(); }, 5000);
    }
  };

  let stopPromise: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    if (stopPromise) return stopPromise;
    stopping = true;
    stopPromise = (async () => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (rootTimer) clearTimeout(rootTimer);
      await supervisor.stop().catch((err) => log.error({ err: String(err) }, 'stopping ffmpeg failed'));
      await watcher.stop();
      const peer = rootPeer;
      rootPeer = null;
      metrics.rootPeerUp.set(0);
      if (peer) await Promise.resolve(peer.stop()).catch((err) => log.error({ err: String(err) }, 'stopping the root peer failed'));
      await http.close();
      log.info('origin stopped');
    })();
    return stopPromise;
  };
  const onAbort = () => void stop();

  try {
    await http.listen({ host: opts.host ?? '0.0.0.0', port: opts.port ?? 8080 });
    await supervisor.start();
    watcher.start();
  } catch (err) {
    await stop();
    throw err;
  }
  if (opts.signal?.aborted) await stop();
  else opts.signal?.addEventListener('abort', onAbort, { once: true });
  void startRootPeer();

  const addr = http.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : (opts.port ?? 8080);
  const listenHost = opts.host ?? '0.0.0.0';
  const urlHost = listenHost === '0.0.0.0' || listenHost === '::' ? '127.0.0.1' : listenHost.includes(':') ? `[${listenHost}]` : listenHost;
  log.info({ url: `http://${urlHost}:${port}`, channel, ffmpeg: binary.path, ffmpegOrigin: binary.origin, outDir, source: source.type }, 'origin listening');

  return {
    url: `http://${urlHost}:${port}`,
    port,
    channel,
    publicKey: signer.publicKey,
    publicKeyHex: signer.publicKeyHex,
    info,
    outDir,
    ffmpeg: binary,
    http,
    window,
    metrics,
    rootPeer: () => rootPeer,
    onSegment: (h) => { handlers.add(h); return () => handlers.delete(h); },
    stats: () => ({
      ...metrics.snapshot(),
      ffmpegRestarts: supervisor.restarts,
      rootPeer: rootPeer !== null,
      newestSeq: Object.fromEntries(ladder.map((r) => [r.name, window.newest(r.name)?.ref.seq ?? null])),
    }),
    stop,
  };
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
