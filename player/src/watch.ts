/**
 * The watch page: hls.js playing a Starling channel, with segments fetched through the P2P
 * engine (peers first, HTTP from the origin for what is missing at the deadline).
 *
 * Query parameters:
 *   channel=<name>   channel to play (default: /config.json's defaultChannel)
 *   p2p=0            HTTP-only baseline: plain hls.js, no engine, no tracker (for comparisons)
 *   tracker=<url>    override /config.json's trackerUrl (ws://host:port/ws)
 *   debug=1          engine/host debug logs in the console
 *   upload=<kbit/s>  this page's upload cap for the swarm (default: the engine's browser cap, 4000)
 *
 * window.starling = { stats(), engine, hls, host, info, config } for tests and the curious.
 */
import Hls, { type ErrorData, type HlsConfig } from 'hls.js';
import { Engine } from '../../peer/core/engine.js';
import { PeerHost } from '../../peer/host/peer-host.js';
import { createBrowserTransport } from '../../peer/transport/browser-transport.js';
import { nobleCrypto, hexToBytes, warmUpCrypto } from '../../peer/core/crypto.js';
import { channelInfoPath, isValidName, masterPlaylistPath, parseSegmentUrl, type ChannelInfo } from '../../peer/core/paths.js';
import type { Clock, EngineStats, Logger } from '../../peer/core/types.js';
import type { WebSocketCtor } from '../../peer/host/host-api.js';
import { mountChannelList } from './channel-list.js';
import { FetchHttpSource } from './http-source.js';
import { createP2PFragmentLoader } from './p2p-loader.js';
import { StallMonitor, watchStalls } from './stall-monitor.js';
import { bufferAheadSeconds, formatBytes, formatPercent, formatSeconds, liveLatencySeconds, offloadRatio } from './media-time.js';

interface OriginConfig {
  trackerUrl: string;
  defaultChannel: string;
}

/** What window.starling.stats() returns. */
export interface StarlingStats {
  channel: string;
  peerId: string | null;
  /** false in the ?p2p=0 baseline. */
  p2p: boolean;
  /** Verified bytes received from other peers (browsers, seeders) over data channels. */
  bytesFromPeers: number;
  /** Verified bytes received from the origin's root peer over data channels. */
  bytesFromOriginPeer: number;
  /** Bytes fetched over HTTP (engine fallback; in the baseline, every fragment). */
  bytesFromHttp: number;
  /** bytesFromPeers / (bytesFromPeers + bytesFromOriginPeer + bytesFromHttp), 0..1. */
  offload: number;
  /** Piece payload bytes this page uploaded to neighbors. */
  bytesUploaded: number;
  /** Open neighbors. */
  peers: number;
  /** Pieces that failed verification. */
  badPieces: number;
  segmentsStored: number;
  /** Stalls ('waiting' after playback started, seeks excluded) and total stalled time. */
  stalls: number;
  stalledMs: number;
  stalled: boolean;
  /** ms from page start to the first 'playing'; null before. */
  startupMs: number | null;
  /**
   * Distance behind the live edge (s): hls.latency (newest playlist's end + its age -
   * currentTime), falling back to playlist end - currentTime; null for VoD / before known.
   */
  latencySeconds: number | null;
  /** Seconds buffered contiguously ahead of the playhead. */
  bufferAheadSeconds: number;
  currentTime: number;
  /** Rendition of the fragment being played (e.g. '360p'); null before playback. */
  rendition: string | null;
  /** hls.js's bandwidth estimate, bit/s. */
  bandwidthEstimate: number;
  segmentsLoaded: number;
  segmentErrors: number;
  trackerConnected: boolean | null;
}

declare global {
  interface Window {
    starling?: {
      stats(): StarlingStats;
      engine: Engine | null;
      hls: Hls | null;
      host: PeerHost | null;
      info: ChannelInfo | null;
      config: OriginConfig | null;
    };
  }
}

const clock: Clock = { now: () => performance.now() };
const params = new URLSearchParams(location.search);
const p2pEnabled = params.get('p2p') !== '0';
const debug = params.get('debug') === '1';
const uploadParam = Number(params.get('upload'));
const uploadLimitKbps = Number.isFinite(uploadParam) && uploadParam > 0 ? uploadParam : undefined;

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
};

const video = $<HTMLVideoElement>('video');
const statusEl = $('status');
const channelEl = $('channel-name');

function setStatus(text: string, kind: 'info' | 'error' = 'info'): void {
  statusEl.textContent = text;
  statusEl.dataset.kind = kind;
  statusEl.hidden = text === '';
}

function consoleLogger(prefix: string): Logger {
  const line = (fn: (...a: unknown[]) => void) => (obj: object, msg?: string) => fn(`[${prefix}]`, msg ?? '', obj);
  return {
    debug: debug ? line(console.debug) : () => {},
    info: debug ? line(console.info) : () => {},
    warn: line(console.warn),
    error: line(console.error),
  };
}

function randomPeerId(): string {
  const bytes = new Uint8Array(9);
  crypto.getRandomValues(bytes);
  let s = 'b';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s; // 19 chars of [0-9a-f]: within the tracker's [A-Za-z0-9_-]{8,64}
}

async function getJson<T>(path: string): Promise<T> {
  const url = new URL(path, location.origin).href;
  const res = await fetch(url, { cache: 'no-store' });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

// ---- state ---------------------------------------------------------------------------------
const monitor = new StallMonitor(clock);
watchStalls(video, monitor);
let engine: Engine | null = null;
let host: PeerHost | null = null;
let hls: Hls | null = null;
let http: FetchHttpSource | null = null;
let info: ChannelInfo | null = null;
let config: OriginConfig | null = null;
let channel = '';
let peerId: string | null = null;
let rendition: string | null = null;
let baselineHttpBytes = 0;
let segmentsLoaded = 0;
let segmentErrors = 0;
let fallbackTicker: ReturnType<typeof setInterval> | null = null;

const emptyEngineStats: EngineStats = {
  bytesFromPeers: 0,
  bytesFromOriginPeer: 0,
  bytesFromHttp: 0,
  bytesUploaded: 0,
  peers: 0,
  badPieces: 0,
  rejectedFrames: {},
  segmentsStored: 0,
};

function stats(): StarlingStats {
  const e = engine ? engine.stats() : emptyEngineStats;
  const bytesFromHttp = engine ? e.bytesFromHttp : baselineHttpBytes;
  const s = monitor.stats();
  const details = hls?.latestLevelDetails ?? null;
  return {
    channel,
    peerId,
    p2p: engine !== null,
    bytesFromPeers: e.bytesFromPeers,
    bytesFromOriginPeer: e.bytesFromOriginPeer,
    bytesFromHttp,
    offload: offloadRatio(e.bytesFromPeers, e.bytesFromOriginPeer, bytesFromHttp),
    bytesUploaded: e.bytesUploaded,
    peers: e.peers,
    badPieces: e.badPieces,
    segmentsStored: e.segmentsStored,
    stalls: s.stalls,
    stalledMs: Math.round(s.stalledMs),
    stalled: s.stalled,
    startupMs: s.startupMs === null ? null : Math.round(s.startupMs),
    latencySeconds: liveLatencySeconds({
      hlsLatency: hls?.latency,
      playlistEdge: details?.edge,
      currentTime: video.currentTime,
      live: details ? details.live : true,
    }),
    bufferAheadSeconds: bufferAheadSeconds(video.buffered, video.currentTime),
    currentTime: video.currentTime,
    rendition,
    bandwidthEstimate: hls ? Math.round(hls.bandwidthEstimate) : 0,
    segmentsLoaded,
    segmentErrors,
    trackerConnected: host ? host.stats().trackerConnected : null,
  };
}

window.starling = {
  stats,
  get engine() {
    return engine;
  },
  get hls() {
    return hls;
  },
  get host() {
    return host;
  },
  get info() {
    return info;
  },
  get config() {
    return config;
  },
};

// ---- figures on the page -----------------------------------------------------------------
const figures: Array<[string, (s: StarlingStats) => string]> = [
  ['offload', (s) => (s.p2p ? formatPercent(s.offload) : 'HTTP only')],
  ['from-peers', (s) => formatBytes(s.bytesFromPeers)],
  ['from-origin-peer', (s) => formatBytes(s.bytesFromOriginPeer)],
  ['from-http', (s) => formatBytes(s.bytesFromHttp)],
  ['uploaded', (s) => formatBytes(s.bytesUploaded)],
  ['peers', (s) => String(s.peers)],
  ['buffer', (s) => formatSeconds(s.bufferAheadSeconds)],
  ['latency', (s) => formatSeconds(s.latencySeconds)],
  ['stalls', (s) => `${s.stalls} · ${formatSeconds(s.stalledMs / 1000)}${s.stalled ? ' (now)' : ''}`],
  ['rendition', (s) => s.rendition ?? '–'],
  ['startup', (s) => (s.startupMs === null ? '–' : `${(s.startupMs / 1000).toFixed(2)} s`)],
  ['bad-pieces', (s) => String(s.badPieces)],
  ['tracker', (s) => (s.trackerConnected === null ? '–' : s.trackerConnected ? 'connected' : 'offline')],
];

function render(): void {
  const s = stats();
  for (const [id, fmt] of figures) {
    const el = document.getElementById(`f-${id}`);
    if (el) el.textContent = fmt(s);
  }
  document.getElementById('f-offload')?.toggleAttribute('data-off', !s.p2p);
  const bar = document.getElementById('offload-bar');
  if (bar) {
    const total = s.bytesFromPeers + s.bytesFromOriginPeer + s.bytesFromHttp;
    const pct = (n: number) => (total > 0 ? (100 * n) / total : 0);
    bar.style.setProperty('--w-peers', `${pct(s.bytesFromPeers)}%`);
    bar.style.setProperty('--w-origin-peer', `${pct(s.bytesFromOriginPeer)}%`);
    bar.style.setProperty('--w-http', `${pct(s.bytesFromHttp)}%`);
  }
  const pid = document.getElementById('peer-id');
  if (pid) pid.textContent = peerId ? `peer ${peerId}` : s.p2p ? '' : 'HTTP-only baseline';
}

// ---- start ---------------------------------------------------------------------------------
async function main(): Promise<void> {
  setStatus('Loading…');
  const configLoading = getJson<OriginConfig>('/config.json');
  if (p2pEnabled) warmUpCrypto(); // while the request is in flight: not when the first segments are due
  config = await configLoading;
  const requested = params.get('channel') ?? config.defaultChannel;
  if (!isValidName(requested)) throw new Error(`invalid channel name: ${requested}`);
  channel = requested;
  channelEl.textContent = channel;
  mountChannelList(channel, { video });
  document.title = `${channel} · Starling`;
  info = await getJson<ChannelInfo>(channelInfoPath(channel));

  const src = new URL(masterPlaylistPath(channel), location.origin).href;

  if (!Hls.isSupported()) {
    // No MSE (iOS Safari before 17.1): native HLS, no P2P.
    if (video.canPlayType('application/vnd.apple.mpegurl')) {
      setStatus('This browser has no Media Source Extensions: playing over plain HTTP (no P2P).');
      video.src = src;
      void video.play().catch(() => {});
      return;
    }
    throw new Error('This browser cannot play HLS (no Media Source Extensions).');
  }

  const hlsConfig: Partial<HlsConfig> = {
    // Live, close to the edge; the same values in both modes so the baseline compares fairly.
    lowLatencyMode: false, // no LL-HLS parts: the origin publishes whole 2 s segments
    liveSyncDurationCount: 3, // start/hold 3 target durations (≈6 s) behind the edge, hls.js's default
    liveMaxLatencyDurationCount: 10, // fell >10 segments behind (long stall): jump back to the sync point
    maxBufferLength: 12, // s of forward buffer hls.js aims for (the live window allows ~6 s anyway)
    maxMaxBufferLength: 20,
    backBufferLength: 10, // evict played media: memory stays flat on long sessions
    // The ESM build of hls.js has no inline worker (it needs workerPath); fMP4 passthrough
    // remuxing is cheap; and keeping buffers on the main thread avoids transfer-detach hazards.
    enableWorker: false,
    startFragPrefetch: false,
  };

  if (p2pEnabled) {
    const trackerUrl = params.get('tracker') ?? config.trackerUrl;
    peerId = randomPeerId();
    http = new FetchHttpSource({ channel, baseUrl: location.origin });
    const e = new Engine({
      peerId,
      kind: 'browser',
      channel,
      publicKey: hexToBytes(info.publicKey),
      clock,
      random: { next: () => Math.random() },
      crypto: nobleCrypto,
      log: consoleLogger('engine'),
      http,
      interest: 'following',
      uploadLimitKbps,
    });
    engine = e;
    host = new PeerHost({
      trackerUrl,
      channel,
      kind: 'browser',
      engine: e,
      transport: createBrowserTransport({ log: consoleLogger('rtc') }),
      webSocket: globalThis.WebSocket as unknown as WebSocketCtor,
      log: consoleLogger('host'),
      // QoS figures for the tracker's dashboard (docs/stats-api.md); nulls are left out.
      extraReport: () => {
        const s = stats();
        const r: Record<string, number | string> = { stalls: s.stalls, stalledMs: s.stalledMs, bufferMs: Math.round(s.bufferAheadSeconds * 1000) };
        if (s.startupMs !== null) Object.assign(r, { startupMs: s.startupMs, watchMs: Math.max(0, Math.round(clock.now() - s.startupMs)) });
        if (s.latencySeconds !== null) r.latencyMs = Math.round(s.latencySeconds * 1000);
        if (s.rendition) r.rendition = s.rendition;
        return r;
      },
    });
    host.start().catch((err: unknown) => {
      console.warn('[host] could not start; playing from HTTP only', err);
      // The host drives engine.tick(); without it, keep the engine's HTTP fallback moving.
      fallbackTicker ??= setInterval(() => e.tick(), 100);
    });
    hlsConfig.fLoader = createP2PFragmentLoader({
      engine: e,
      channel,
      clock,
      bufferAheadSeconds: () => bufferAheadSeconds(video.buffered, video.currentTime),
      segmentDurationSeconds: info.segmentDuration > 0 ? info.segmentDuration : 2,
      fallbackLoader: Hls.DefaultConfig.loader,
      onSegmentLoaded: () => {
        segmentsLoaded++;
      },
      onSegmentError: (ref, err) => {
        segmentErrors++;
        console.warn('[loader] segment failed', ref, err);
      },
    });
  }

  const h = new Hls(hlsConfig);
  hls = h;
  h.on(Hls.Events.FRAG_CHANGED, (_ev, data) => {
    const parsed = parseSegmentUrl(data.frag.url);
    const level = h.levels[data.frag.level];
    rendition = parsed?.ref.rendition ?? (level ? `${level.height}p` : null);
  });
  h.on(Hls.Events.FRAG_LOADED, (_ev, data) => {
    if (!engine) {
      baselineHttpBytes += data.frag.stats.loaded;
      segmentsLoaded++;
    }
  });
  h.on(Hls.Events.ERROR, (_ev, data: ErrorData) => {
    if (!data.fatal) return;
    if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
      setStatus(`Network error (${data.details}); retrying…`, 'error');
      h.startLoad();
    } else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      setStatus(`Media error (${data.details}); recovering…`, 'error');
      h.recoverMediaError();
    } else {
      setStatus(`Playback failed: ${data.details}`, 'error');
    }
  });
  video.addEventListener('playing', () => setStatus(''));
  h.loadSource(src);
  h.attachMedia(video);
  h.once(Hls.Events.MANIFEST_PARSED, () => {
    void video.play().catch(() => setStatus('Press play to start.'));
  });
}

window.addEventListener('pagehide', () => {
  if (fallbackTicker) clearInterval(fallbackTicker);
  void host?.stop();
  engine?.close();
  hls?.destroy();
});

setInterval(render, 1000);
render();
main().catch((err: unknown) => {
  console.error(err);
  setStatus(`Cannot start: ${err instanceof Error ? err.message : String(err)}`, 'error');
});
