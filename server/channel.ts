/**
 * One channel of the origin: its signing key, its ladder, ffmpeg (fed by a test pattern, a file,
 * or an ingest: WHIP or RTMP), the watcher that signs every segment, the live window, the
 * recording (VoD after the broadcast) and its root peer in the overlay.
 *
 * Lifecycle of a broadcast (state):
 *   idle ──publish──▶ live ──publisher dropped──▶ reconnecting ──publish within graceMs──▶ live
 *                       │                              │ grace over
 *                       └──────── end (DELETE, file ended, stop) ─────▶ ended (EXT-X-ENDLIST, VoD)
 * A configured source (test pattern, file) makes the channel live at creation. A new publish on an
 * ended channel starts a new live broadcast on it (the recording goes on, with a discontinuity).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger as PinoLogger } from 'pino';
import type { Manifest } from '../peer/core/manifest.js';
import { isValidName, type ChannelInfo } from '../peer/core/paths.js';
import type { Logger, SegmentRef } from '../peer/core/types.js';
import {
  buildFfmpegArgs, fileHasAudio, FfmpegSupervisor, prepareOutputDirs, rungDir, type FfmpegBinary, type LadderRung, type SourceSpec,
} from './ffmpeg.js';
import type { HttpChannel } from './http.js';
import type { OriginMetrics, RootPeerFigures } from './metrics.js';
import { AAC_LC_CODEC, avcCodecFromInit, contiguousTail, DEFAULT_VIDEO_CODEC, masterPlaylist, mediaPlaylist } from './playlist.js';
import { Recording } from './recording.js';
import { SegmentWindow } from './segment-window.js';
import { loadOrCreateSigner, type ChannelSigner } from './signer.js';
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

export type ChannelState = 'idle' | 'live' | 'reconnecting' | 'ended';
export type IngestKind = 'testsrc' | 'file' | 'whip' | 'rtmp';

export interface ChannelOptions {
  name: string;
  /** <workDir>/origin/<name>/ holds ffmpeg's output and the recording. */
  workDir: string;
  keyDir: string;
  /** 64 hex digits: the channel's Ed25519 seed (else the key file). */
  originKeyHex?: string;
  ladder: LadderRung[];
  /** Started at creation; null: the channel waits for an ingest (WHIP/RTMP). */
  source: SourceSpec | null;
  /** Publishing (WHIP/RTMP) needs this key; absent: publishing is refused. Never logged. */
  streamKey?: string;
  segmentDuration: number;
  fps: number;
  preset?: string;
  pieceSize: number;
  windowSegments: number;
  liveWindowSegments: number;
  pollMs?: number;
  /** A dropped publisher may come back this long and continue the broadcast. */
  graceMs: number;
  /** Keep every segment on disk for VoD after the end. */
  record: boolean;
  /** Segments kept per rendition in the recording. */
  recordMaxSegments?: number;
  binary: FfmpegBinary;
  metrics: OriginMetrics;
  rootPeer: { trackerUrl: string; publishKey?: string; maxNeighbors: number; factory: RootPeerFactory } | null;
  log: PinoLogger;
}

/** A running publication (one ffmpeg process fed by one ingest session). */
export interface Publication {
  readonly id: number;
  readonly kind: IngestKind;
  readonly startedAt: number;
  /** Set when the publication is over (replaced, dropped, ended). */
  closed: boolean;
}

export interface PublishOptions {
  kind: IngestKind;
  source: SourceSpec;
  /** Called if the channel ends or replaces this publication (close the ingest session). */
  onClosed?: (reason: 'replaced' | 'ended' | 'stopped') => void;
}

/** Segment numbers continue across process restarts: start at the slot of the wall clock since 2024. */
const SEQ_EPOCH = Date.UTC(2024, 0, 1);

/**
 * The first segment number of an encoder (re)start. Within one process it is always the next
 * number: HLS numbers a playlist's segments implicitly (EXT-X-MEDIA-SEQUENCE + position), so a
 * gap (e.g. a publisher away for 9 s, an encoder restarted after a crash) would make players
 * number the same segment differently from one playlist reload to the next, and hls.js would
 * then place segments seconds away from their media (a viewer stuck before the end of a
 * recording). Only a fresh process starts from the wall clock, above anything an earlier run
 * of the origin published (so peers never hold an older segment under a reused number).
 */
export function nextStartNumber(lastSeq: number | null, nowMs: number, segmentDurationS: number): number {
  if (lastSeq !== null) return lastSeq + 1;
  return Math.floor((nowMs - SEQ_EPOCH) / (segmentDurationS * 1000));
}

export class Channel {
  readonly name: string;
  readonly info: ChannelInfo;
  readonly window: SegmentWindow;
  readonly recording: Recording | null;
  readonly outDir: string;
  readonly http: HttpChannel;
  readonly createdAt = Date.now();
  private readonly signer: ChannelSigner;
  private readonly watcher: PlaylistWatcher;
  private readonly log: PinoLogger;
  private readonly handlers = new Set<(e: SegmentEvent) => void>();
  private readonly stateHandlers = new Set<(s: ChannelState) => void>();
  private _state: ChannelState = 'idle';
  private supervisor: FfmpegSupervisor | null = null;
  private publication: (Publication & { onClosed?: PublishOptions['onClosed'] }) | null = null;
  private nextPublicationId = 1;
  private graceTimer: NodeJS.Timeout | null = null;
  private root: RootPeerHandle | null = null;
  private rootTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  private stopPromise: Promise<void> | null = null;
  private ffmpegRestarts = 0;
  /** Time of the last publish() and of the first segment after it (go-live figure). */
  private liveSince: number | null = null;
  private firstSegmentAfterLive: number | null = null;
  private ending: Promise<void> | null = null;

  private constructor(private readonly o: ChannelOptions, signer: ChannelSigner) {
    this.name = o.name;
    this.signer = signer;
    this.log = o.log;
    this.outDir = join(o.workDir, 'origin', o.name);
    this.window = new SegmentWindow(o.windowSegments);
    this.recording = o.record ? new Recording(join(this.outDir, 'recording'), o.recordMaxSegments, o.log.child({ component: 'recording' })) : null;
    const bandwidth = (r: LadderRung) => Math.round((r.videoBitrate + r.audioBitrate) * 1.1);
    this.info = {
      channel: o.name,
      publicKey: signer.publicKeyHex,
      renditions: o.ladder.map((r) => ({ name: r.name, width: r.width, height: r.height, bandwidth: bandwidth(r) })),
      segmentDuration: o.segmentDuration,
      pieceSize: o.pieceSize,
    };
    const ladder = o.ladder;
    const win = this.window;
    this.http = {
      info: () => this.info,
      masterPlaylist: () => {
        if (ladder.some((r) => !win.init(r.name) || !win.newest(r.name))) return null;
        return masterPlaylist(ladder.map((r) => ({
          name: r.name, width: r.width, height: r.height, bandwidth: bandwidth(r), frameRate: o.fps,
          codecs: `${avcCodecFromInit(win.init(r.name)!.data) ?? DEFAULT_VIDEO_CODEC},${AAC_LC_CODEC}`,
        })));
      },
      mediaPlaylist: (rendition) => this.mediaPlaylist(rendition),
      segment: (ref: SegmentRef) => {
        const e = win.get(ref);
        if (e) return e;
        return this.recording ? this.recording.read(ref) : null;
      },
    };
    this.watcher = new PlaylistWatcher({
      channel: o.name,
      renditions: ladder.map((r, i) => ({ name: r.name, dir: rungDir(this.outDir, i) })),
      sign: signer.sign,
      pieceSize: o.pieceSize,
      pollMs: o.pollMs,
      log: o.log.child({ component: 'watcher' }),
    });
    this.watcher.on('segment', (e) => this.onSegment(e));
    // The root peer's upload, neighbors and bad pieces in /metrics, by channel.
    this.untrackRoot = o.metrics.trackRootPeer(o.name, () => (this.root?.engine.stats?.() as RootPeerFigures | undefined) ?? null);
  }

  private readonly untrackRoot: () => void;

  static async create(o: ChannelOptions): Promise<Channel> {
    if (!isValidName(o.name)) throw new Error(`invalid channel name ${JSON.stringify(o.name)} (want [a-z0-9][a-z0-9_-]{0,31})`);
    if (!o.ladder.length) throw new Error('empty ladder');
    for (const r of o.ladder) if (!isValidName(r.name)) throw new Error(`invalid rendition name ${JSON.stringify(r.name)}`);
    if (new Set(o.ladder.map((r) => r.name)).size !== o.ladder.length) throw new Error('duplicate rendition names');
    const { signer, created, file } = await loadOrCreateSigner({ channel: o.name, keyDir: o.keyDir, seedHex: o.originKeyHex });
    o.log.info({ channel: o.name, publicKey: signer.publicKeyHex, keyFile: file, created }, created ? 'generated a new channel key' : 'channel key loaded');
    const ch = new Channel(o, signer);
    await mkdir(ch.outDir, { recursive: true });
    // Files a previous run left must not pass for new segments.
    await prepareOutputDirs(ch.outDir, o.ladder.length);
    ch.watcher.start();
    void ch.startRootPeer();
    if (o.source) {
      try {
        await ch.publish({ kind: o.source.type === 'file' ? 'file' : 'testsrc', source: o.source });
      } catch (err) {
        await ch.stop();
        throw err;
      }
    }
    return ch;
  }

  get publicKey(): Uint8Array {
    return this.signer.publicKey;
  }

  get state(): ChannelState {
    return this._state;
  }

  get hasStreamKey(): boolean {
    return typeof this.o.streamKey === 'string' && this.o.streamKey.length > 0;
  }

  /** The configured stream key (for auth checks only; never log it). */
  streamKey(): string | undefined {
    return this.o.streamKey;
  }

  get ffmpegPid(): number | undefined {
    return this.supervisor?.pid;
  }

  get restarts(): number {
    return this.ffmpegRestarts;
  }

  rootPeer(): RootPeerHandle | null {
    return this.root;
  }

  currentPublication(): Publication | null {
    return this.publication;
  }

  onSegmentPublished(h: (e: SegmentEvent) => void): () => void {
    this.handlers.add(h);
    return () => this.handlers.delete(h);
  }

  onState(h: (s: ChannelState) => void): () => void {
    this.stateHandlers.add(h);
    return () => this.stateHandlers.delete(h);
  }

  summary(): {
    channel: string; state: ChannelState; ingest: IngestKind | null; renditions: string[]; live: boolean; vod: boolean;
    newestSeq: number | null; goLiveMs: number | null;
  } {
    const top = this.o.ladder[0].name;
    return {
      channel: this.name,
      state: this._state,
      ingest: this.publication && !this.publication.closed ? this.publication.kind : null,
      renditions: this.o.ladder.map((r) => r.name),
      live: this._state === 'live' || this._state === 'reconnecting',
      vod: this._state === 'ended' && (this.recording ? this.recording.list(top).length > 0 : this.window.newest(top) !== null),
      newestSeq: this.window.newest(top)?.ref.seq ?? null,
      goLiveMs: this.liveSince !== null && this.firstSegmentAfterLive !== null ? this.firstSegmentAfterLive - this.liveSince : null,
    };
  }

  private setState(s: ChannelState): void {
    if (this._state === s) return;
    this._state = s;
    this.log.info({ channel: this.name, state: s }, 'channel state');
    for (const h of this.stateHandlers) {
      try { h(s); } catch (err) { this.log.error({ err: String(err) }, 'state handler threw'); }
    }
  }

  private mediaPlaylist(rendition: string): string | null {
    if (!this.o.ladder.some((r) => r.name === rendition) || !this.window.init(rendition)) return null;
    const ended = this._state === 'ended';
    if (ended && this.recording && this.recording.list(rendition).length > 0) {
      // VoD: the whole recording.
      const segs = this.recording.list(rendition);
      return mediaPlaylist({
        segments: segs.map((s, i) => ({ seq: s.seq, durationMs: s.durationMs, createdAt: s.createdAt, discontinuity: i > 0 && s.discontinuity })),
        segmentDuration: this.o.segmentDuration,
        ended: true,
        vod: true,
      });
    }
    // Only the run of consecutive numbers at the live edge: a gap cannot be said in HLS (see
    // nextStartNumber; a rendition whose encoder died mid-segment may still have one).
    const segs = contiguousTail(this.window.latest(rendition, this.o.liveWindowSegments), (s) => s.ref.seq);
    if (!segs.length) return null;
    return mediaPlaylist({
      segments: segs.map((s) => ({ seq: s.ref.seq, durationMs: s.manifest.durationMs, createdAt: s.manifest.createdAt, discontinuity: s.discontinuity })),
      segmentDuration: this.o.segmentDuration,
      discontinuitySequence: this.window.discontinuitiesBefore(rendition, segs[0].ref.seq),
      ended,
    });
  }

  private onSegment(e: SegmentEvent): void {
    try {
      this.window.add({ ref: e.ref, manifest: e.manifest, data: e.data, discontinuity: e.discontinuity });
    } catch (err) {
      this.log.error({ err: String(err), rendition: e.ref.rendition, seq: e.ref.seq }, 'segment out of order; dropped');
      return;
    }
    this.recording?.add({ ref: e.ref, manifest: e.manifest, data: e.data, discontinuity: e.discontinuity });
    this.o.metrics.segmentPublished(e.ref.rendition);
    if (e.ref.seq >= 0 && this.liveSince !== null && this.firstSegmentAfterLive === null) {
      this.firstSegmentAfterLive = Date.now();
      this.log.info({ channel: this.name, goLiveMs: this.firstSegmentAfterLive - this.liveSince }, 'first segment after going live');
    }
    if (this.root) this.publishToPeer(this.root, e.manifest, e.data);
    for (const h of this.handlers) {
      try { h(e); } catch (err) { this.log.error({ err: String(err) }, 'segment handler threw'); }
    }
  }

  private publishToPeer(peer: RootPeerHandle, manifest: Manifest, data: Uint8Array): void {
    try {
      peer.engine.publishSegment(manifest, data);
    } catch (err) {
      this.log.error({ err: String(err), rendition: manifest.rendition, seq: manifest.seq }, 'root peer rejected a segment');
    }
  }

  /**
   * Starts (or takes over) the broadcast with a new ffmpeg reading `source`. A publication already
   * running is closed ('replaced'): the newest authenticated publisher wins, which is also how a
   * publisher that reconnects before its old session timed out continues the channel.
   */
  async publish(p: PublishOptions): Promise<Publication> {
    if (this.stopping) throw new Error('channel stopped');
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = null;
    if (this.ending) await this.ending;
    const old = this.publication;
    if (old && !old.closed) {
      old.closed = true;
      this.log.info({ channel: this.name, kind: old.kind, id: old.id }, 'publication replaced');
      try { old.onClosed?.('replaced'); } catch { /* ignore */ }
    }
    await this.stopFfmpeg();
    const pub: Publication & { onClosed?: PublishOptions['onClosed'] } = {
      id: this.nextPublicationId++, kind: p.kind, startedAt: Date.now(), closed: false, onClosed: p.onClosed,
    };
    this.publication = pub;
    if (this._state !== 'live' && this._state !== 'reconnecting') {
      this.liveSince = Date.now();
      this.firstSegmentAfterLive = null;
    }
    // A new encoder after earlier segments: new timestamps, maybe a new init.
    if (this.watcher.lastSeq() !== null) this.watcher.markRestart();
    const source = p.source;
    const sourceHasAudio = source.type === 'file' ? fileHasAudio(this.o.binary.path, source.path) : true;
    const sup = new FfmpegSupervisor({
      binary: this.o.binary,
      log: this.log.child({ component: 'ffmpeg', kind: p.kind }),
      prepare: () => prepareOutputDirs(this.outDir, this.o.ladder.length),
      args: () => {
        const startNumber = nextStartNumber(this.watcher.lastSeq(), Date.now(), this.o.segmentDuration);
        return buildFfmpegArgs({
          ladder: this.o.ladder, source, sourceHasAudio, outDir: this.outDir, segmentDuration: this.o.segmentDuration, fps: this.o.fps,
          preset: this.o.preset, startNumber, listSize: Math.max(6, this.o.liveWindowSegments + 4),
        });
      },
      onSpawn: ({ restart }) => {
        if (!restart) return;
        this.ffmpegRestarts++;
        this.o.metrics.ffmpegRestarts.inc();
        this.watcher.markRestart();
      },
      // A file that ends, or an FLV stream whose publisher left, is not restarted.
      shouldRestart: ({ code }) => (source.type === 'flv' ? false : source.type === 'file' && !source.loop ? code !== 0 : true),
      onFinished: () => {
        if (this.supervisor !== sup || pub.closed) return;
        if (source.type === 'file') void this.end('source file ended');
        else this.dropped(pub);
      },
    });
    this.supervisor = sup;
    this.setState('live');
    try {
      await sup.start();
    } catch (err) {
      pub.closed = true;
      this.supervisor = null;
      this.setState(this.watcher.lastSeq() === null ? 'idle' : 'ended');
      throw err;
    }
    this.log.info({ channel: this.name, kind: p.kind, id: pub.id }, 'publication started');
    return pub;
  }

  /** The publisher of `pub` vanished: wait graceMs for it to come back, then end. */
  dropped(pub: Publication): void {
    if (pub !== this.publication || pub.closed || this.stopping) return;
    pub.closed = true;
    this.log.warn({ channel: this.name, kind: pub.kind, graceMs: this.o.graceMs }, 'publisher dropped; waiting for it to reconnect');
    void this.stopFfmpeg().then(() => this.watcher.pollOnce());
    this.setState('reconnecting');
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = setTimeout(() => {
      this.graceTimer = null;
      if (this._state === 'reconnecting') void this.end('publisher did not come back');
    }, this.o.graceMs);
    this.graceTimer.unref?.();
  }

  /** Ends the broadcast of `pub` (e.g. WHIP DELETE) if it is still the current one. */
  async unpublish(pub: Publication, reason: string): Promise<void> {
    if (pub !== this.publication) return;
    pub.closed = true;
    await this.end(reason);
  }

  /** Ends the broadcast: ffmpeg stops (its last segment is published), playlists get EXT-X-ENDLIST. */
  end(reason: string): Promise<void> {
    if (this.ending) return this.ending;
    this.ending = (async () => {
      if (this.graceTimer) clearTimeout(this.graceTimer);
      this.graceTimer = null;
      const pub = this.publication;
      if (pub && !pub.closed) {
        pub.closed = true;
        try { pub.onClosed?.('ended'); } catch { /* ignore */ }
      }
      await this.stopFfmpeg();
      await this.watcher.pollOnce();
      await this.recording?.flush();
      if (this.watcher.lastSeq() === null) this.setState('idle');
      else this.setState('ended');
      this.log.info({ channel: this.name, reason }, 'broadcast ended');
    })().finally(() => { this.ending = null; });
    return this.ending;
  }

  private async stopFfmpeg(): Promise<void> {
    const sup = this.supervisor;
    this.supervisor = null;
    if (sup) await sup.stop().catch((err) => this.log.error({ err: String(err) }, 'stopping ffmpeg failed'));
  }

  private async startRootPeer(): Promise<void> {
    const rp = this.o.rootPeer;
    if (!rp || this.stopping) return;
    try {
      const peer = await rp.factory({
        trackerUrl: rp.trackerUrl, channel: this.name, kind: 'origin', publicKey: this.signer.publicKey,
        maxNeighbors: rp.maxNeighbors, publishKey: rp.publishKey, log: this.log.child({ component: 'root-peer' }),
      });
      if (this.stopping) {
        await peer.stop();
        return;
      }
      this.root = peer;
      this.o.metrics.rootPeerUp.set(1);
      for (const e of this.window.entries()) this.publishToPeer(peer, e.manifest, e.data);
      this.log.info({ channel: this.name, trackerUrl: rp.trackerUrl, maxNeighbors: rp.maxNeighbors }, 'root peer started');
    } catch (err) {
      this.log.error({ channel: this.name, err: String(err), retryInMs: 5000 }, 'root peer could not start; retrying');
      this.rootTimer = setTimeout(() => { this.rootTimer = null; void this.startRootPeer(); }, 5000);
    }
  }

  /** Stops ffmpeg (no orphans), the watcher and the root peer. Idempotent. */
  stop(): Promise<void> {
    if (this.stopPromise) return this.stopPromise;
    this.stopping = true;
    this.stopPromise = (async () => {
      if (this.rootTimer) clearTimeout(this.rootTimer);
      if (this.graceTimer) clearTimeout(this.graceTimer);
      const pub = this.publication;
      if (pub && !pub.closed) {
        pub.closed = true;
        try { pub.onClosed?.('stopped'); } catch { /* ignore */ }
      }
      await this.stopFfmpeg();
      await this.watcher.stop();
      await this.recording?.flush();
      const peer = this.root;
      this.root = null;
      this.untrackRoot();
      if (peer) await Promise.resolve(peer.stop()).catch((err) => this.log.error({ err: String(err) }, 'stopping the root peer failed'));
    })();
    return this.stopPromise;
  }
}
