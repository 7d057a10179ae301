/**
 * Watches ffmpeg's media playlist of every rendition (polling: fs.watch misses renames on some
 * file systems and coalesces events) and turns every newly listed segment, and the init segment,
 * into a signed manifest: the file is read once, cut into pieces, every piece hashed, the
 * manifest signed. Emits 'segment' in seq order per rendition, the init before any media segment.
 *
 * ffmpeg lists a segment only after it has closed (and, with -hls_flags temp_file, renamed) the
 * file, so a listed segment is complete.
 */
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { describeSegment, signManifest, DEFAULT_PIECE_SIZE, type Manifest } from '../peer/core/manifest.js';
import { INIT_SEQ, silentLogger, type CryptoProvider, type Logger, type SegmentRef } from '../peer/core/types.js';
import { parseMediaPlaylist } from './playlist.js';
import { nodeCrypto } from './signer.js';

export interface SegmentEvent {
  ref: SegmentRef;
  manifest: Manifest;
  data: Uint8Array;
  /** First media segment after markRestart() (encoder restarted: timestamps reset). */
  discontinuity: boolean;
}

export interface WatchedRendition {
  /** Rendition name used in refs and URLs. */
  name: string;
  /** Directory holding ffmpeg's playlist, init and segments of this rendition. */
  dir: string;
}

export interface WatcherOptions {
  channel: string;
  renditions: WatchedRendition[];
  sign: (message: Uint8Array) => Uint8Array;
  /** ffmpeg's playlist file name in each directory. Default 'index.m3u8'. */
  playlistName?: string;
  pieceSize?: number;
  /** Poll period. Default 150 ms. */
  pollMs?: number;
  crypto?: Pick<CryptoProvider, 'sha256'>;
  /** Wall clock for createdAt. Default Date.now. */
  now?: () => number;
  log?: Logger;
  signal?: AbortSignal;
}

interface RState {
  r: WatchedRendition;
  lastSeq: number | null;
  initDone: boolean;
  lastInit: Uint8Array | null;
  pendingDiscontinuity: boolean;
}

const SEG_RE = /^seg_(\d{1,9})\.m4s$/;

export class PlaylistWatcher {
  private readonly handlers = new Set<(e: SegmentEvent) => void>();
  private readonly states: RState[];
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<void> | null = null;
  private stopped = false;
  private readonly log: Logger;
  private readonly onAbort = () => void this.stop();

  constructor(private readonly o: WatcherOptions) {
    this.log = o.log ?? silentLogger;
    this.states = o.renditions.map((r) => ({ r, lastSeq: null, initDone: false, lastInit: null, pendingDiscontinuity: false }));
  }

  on(event: 'segment', handler: (e: SegmentEvent) => void): () => void {
    if (event !== 'segment') throw new Error(`unknown event ${String(event)}`);
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  /** Highest media seq published so far over all renditions, or null. */
  lastSeq(): number | null {
    let m: number | null = null;
    for (const s of this.states) if (s.lastSeq !== null && (m === null || s.lastSeq > m)) m = s.lastSeq;
    return m;
  }

  /** The encoder restarted: re-read the init segments, flag the next segment of each rendition. */
  markRestart(): void {
    for (const s of this.states) {
      s.initDone = false;
      if (s.lastSeq !== null) s.pendingDiscontinuity = true;
    }
  }

  start(): void {
    if (this.stopped || this.timer) return;
    if (this.o.signal?.aborted) return;
    this.o.signal?.addEventListener('abort', this.onAbort, { once: true });
    const loop = () => {
      if (this.stopped) return;
      this.polling = this.pollOnce().finally(() => {
        this.polling = null;
        if (!this.stopped) this.timer = setTimeout(loop, this.o.pollMs ?? 150);
      });
    };
    this.timer = setTimeout(loop, 0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.o.signal?.removeEventListener('abort', this.onAbort);
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.polling;
  }

  /** One scan of every rendition (exposed for tests). */
  async pollOnce(): Promise<void> {
    await Promise.all(this.states.map((s) => this.pollRendition(s).catch((err) => {
      this.log.error({ rendition: s.r.name, err: String(err) }, 'watcher: scanning the playlist failed');
    })));
  }

  private async pollRendition(s: RState): Promise<void> {
    const text = await readIfExists(join(s.r.dir, this.o.playlistName ?? 'index.m3u8'));
    if (text === null) return;
    const pl = parseMediaPlaylist(text.toString('utf8'));
    if (!s.initDone) {
      if (!pl.mapUri) return;
      const init = await readIfExists(join(s.r.dir, basename(pl.mapUri)));
      if (init === null || this.stopped) return;
      s.initDone = true;
      if (!s.lastInit || !Buffer.from(s.lastInit).equals(init)) {
        if (s.lastInit) this.log.warn({ rendition: s.r.name }, 'watcher: the init segment changed after an encoder restart');
        s.lastInit = new Uint8Array(init);
        this.publish(s, INIT_SEQ, 0, s.lastInit, false);
      }
    }
    for (const seg of pl.segments) {
      if (this.stopped) return;
      const m = SEG_RE.exec(basename(seg.uri));
      if (!m) continue;
      const seq = Number(m[1]);
      if (s.lastSeq !== null && seq <= s.lastSeq) continue;
      const data = await readIfExists(join(s.r.dir, basename(seg.uri)));
      s.lastSeq = seq;
      if (data === null) {
        this.log.warn({ rendition: s.r.name, seq }, 'watcher: a listed segment is gone (fell behind?); skipped');
        continue;
      }
      const disc = s.pendingDiscontinuity;
      s.pendingDiscontinuity = false;
      this.publish(s, seq, Math.max(0, Math.round(seg.durationSec * 1000)), new Uint8Array(data.buffer, data.byteOffset, data.byteLength), disc);
    }
  }

  private publish(s: RState, seq: number, durationMs: number, data: Uint8Array, discontinuity: boolean): void {
    let manifest: Manifest;
    try {
      const unsigned = describeSegment(this.o.crypto ?? nodeCrypto, {
        channel: this.o.channel,
        rendition: s.r.name,
        seq,
        pieceSize: this.o.pieceSize ?? DEFAULT_PIECE_SIZE,
        durationMs,
        createdAt: (this.o.now ?? Date.now)(),
      }, data);
      manifest = signManifest(unsigned, this.o.sign);
    } catch (err) {
      this.log.error({ rendition: s.r.name, seq, size: data.length, err: String(err) }, 'watcher: could not build the manifest; segment skipped');
      return;
    }
    const e: SegmentEvent = { ref: { rendition: s.r.name, seq }, manifest, data, discontinuity };
    for (const h of this.handlers) {
      try {
        h(e);
      } catch (err) {
        this.log.error({ err: String(err) }, 'watcher: a segment handler threw');
      }
    }
  }
}

async function readIfExists(path: string): Promise<Buffer | null> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}
