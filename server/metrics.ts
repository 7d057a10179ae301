/** The origin's Prometheus metrics, in their own Registry (several origins may share a process in tests). */
import { Counter, Gauge, Registry } from 'prom-client';

/** The part of an engine's stats() the origin exports for its root peer. */
export interface RootPeerFigures {
  bytesUploaded?: number;
  peers?: number;
  badPieces?: number;
}

export type ServedKind = 'segment' | 'manifest' | 'playlist' | 'other';

export class OriginMetrics {
  readonly registry = new Registry();
  readonly segmentsPublished: Counter<'rendition'>;
  readonly httpBytes: Counter<'kind'>;
  readonly rangeRequests: Counter;
  readonly httpRequests: Counter<'route' | 'status'>;
  readonly ffmpegRestarts: Counter;
  readonly rootPeerUp: Gauge;
  private lastSegmentAt: number | null = null;
  private readonly rootPeers = new Map<string, () => RootPeerFigures | null | undefined>();
  /** Plain counters for progress logs and stats() (prom-client reads are async). */
  private published = 0;
  private bytesOut = 0;

  constructor() {
    const registers = [this.registry];
    this.segmentsPublished = new Counter({
      name: 'starling_origin_segments_published_total', help: 'Signed segments published (init segments included)', labelNames: ['rendition'], registers,
    });
    this.httpBytes = new Counter({
      name: 'starling_origin_http_bytes_total', help: 'Body bytes served over HTTP (the origin\'s HTTP upload)', labelNames: ['kind'], registers,
    });
    this.rangeRequests = new Counter({ name: 'starling_origin_http_range_requests_total', help: 'Segment requests with a satisfiable Range', registers });
    this.httpRequests = new Counter({
      name: 'starling_origin_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['route', 'status'], registers,
    });
    this.ffmpegRestarts = new Counter({ name: 'starling_origin_ffmpeg_restarts_total', help: 'Times ffmpeg was restarted after exiting', registers });
    this.rootPeerUp = new Gauge({ name: 'starling_origin_root_peer_up', help: '1 while the root peer runs', registers });
    const self = this;
    // Root peer figures, read at scrape time from the engines (trackRootPeer).
    const fromRoots = (metric: Gauge<'channel'> | Counter<'channel'>, pick: (f: RootPeerFigures) => number | undefined) => {
      metric.reset();
      for (const { channel, figures } of self.rootPeerFigures()) {
        const v = pick(figures);
        if (typeof v !== 'number' || !Number.isFinite(v)) continue;
        if (metric instanceof Counter) metric.inc({ channel }, v);
        else metric.set({ channel }, v);
      }
    };
    new Counter({
      name: 'starling_origin_peer_upload_bytes_total',
      help: "Piece bytes the origin's root peer uploaded into the overlay (its P2P upload), by channel",
      labelNames: ['channel'], registers,
      collect() { fromRoots(this, (f) => f.bytesUploaded); },
    });
    new Gauge({
      name: 'starling_origin_peer_neighbors',
      help: "Open neighbors of the origin's root peer, by channel",
      labelNames: ['channel'], registers,
      collect() { fromRoots(this, (f) => f.peers); },
    });
    new Counter({
      name: 'starling_origin_peer_bad_pieces_total',
      help: "Pieces the root peer received that failed verification, by channel",
      labelNames: ['channel'], registers,
      collect() { fromRoots(this, (f) => f.badPieces); },
    });
    new Gauge({
      name: 'starling_origin_last_segment_age_seconds',
      help: 'Seconds since the last segment was published (-1 before the first)',
      registers,
      collect() {
        this.set(self.lastSegmentAt === null ? -1 : (Date.now() - self.lastSegmentAt) / 1000);
      },
    });
  }

  /**
   * Reports a channel's root peer in /metrics (its upload, neighbors, bad pieces) until the
   * returned function is called. `stats` is the engine's stats() (EngineStats) or null while down.
   */
  trackRootPeer(channel: string, stats: () => RootPeerFigures | null | undefined): () => void {
    this.rootPeers.set(channel, stats);
    return () => {
      if (this.rootPeers.get(channel) === stats) this.rootPeers.delete(channel);
    };
  }

  /** Latest root peer figures per channel (what the collect callbacks export). */
  rootPeerFigures(): Array<{ channel: string; figures: RootPeerFigures }> {
    const out: Array<{ channel: string; figures: RootPeerFigures }> = [];
    for (const [channel, fn] of this.rootPeers) {
      try {
        const f = fn();
        if (f && typeof f === 'object') out.push({ channel, figures: f });
      } catch {
        // a stopped engine: nothing to export
      }
    }
    return out;
  }

  segmentPublished(rendition: string): void {
    this.segmentsPublished.inc({ rendition });
    this.published++;
    this.lastSegmentAt = Date.now();
  }

  served(kind: ServedKind, bytes: number): void {
    if (bytes <= 0) return;
    this.httpBytes.inc({ kind }, bytes);
    this.bytesOut += bytes;
  }

  snapshot(): { segmentsPublished: number; httpBytesOut: number; lastSegmentAgeMs: number | null } {
    return {
      segmentsPublished: this.published,
      httpBytesOut: this.bytesOut,
      lastSegmentAgeMs: this.lastSegmentAt === null ? null : Date.now() - this.lastSegmentAt,
    };
  }
}
