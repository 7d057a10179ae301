/** The origin's Prometheus metrics, in their own Registry (several origins may share a process in tests). */
import { Counter, Gauge, Registry } from 'prom-client';

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
    new Gauge({
      name: 'starling_origin_last_segment_age_seconds',
      help: 'Seconds since the last segment was published (-1 before the first)',
      registers,
      collect() {
        this.set(self.lastSegmentAt === null ? -1 : (Date.now() - self.lastSegmentAt) / 1000);
      },
    });
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
