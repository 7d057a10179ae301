/**
 * Prometheus figures of the channels (viewers, offload, origin upload, QoS), fed by StatsHub
 * report outcomes and read from the hub at scrape time. Registered in the tracker's own registry.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ReportOutcome, StatsHub } from './stats/hub.js';

/** Every metric name this module registers (docs/stats-api.md lists them). */
export const STATS_METRIC_NAMES = [
  'starling_channel_viewers',
  'starling_channel_seeders',
  'starling_channel_offload_ratio',
  'starling_channel_offload_bound',
  'starling_channel_origin_upload_bytes_per_second',
  'starling_channel_rebuffering_ratio',
  'starling_channel_viewers_by_rendition',
  'starling_channel_received_bytes_total',
  'starling_channel_origin_upload_bytes_total',
  'starling_channel_stalled_seconds_total',
  'starling_channel_watched_seconds_total',
  'starling_channel_startup_seconds',
  'starling_channel_live_latency_seconds',
  'starling_channel_bad_pieces_total',
  'starling_channel_bans_total',
  'starling_tracker_reports_total',
  'starling_tracker_reports_dropped_total',
  'starling_tracker_events_total',
  'starling_tracker_dashboard_clients',
] as const;

export class StatsMetrics {
  readonly received: Counter<'channel' | 'source'>;
  readonly originUpload: Counter<'channel' | 'path'>;
  readonly stalled: Counter<'channel'>;
  readonly watched: Counter<'channel'>;
  readonly startup: Histogram<'channel'>;
  readonly latency: Histogram<'channel'>;
  readonly badPieces: Counter<'channel'>;
  readonly bans: Counter<'channel'>;
  readonly reports: Counter<'kind'>;
  readonly reportsDropped: Counter<'reason'>;
  readonly events: Counter<'type'>;
  readonly dashboardClients: Gauge;

  constructor(registry: Registry, hub: StatsHub) {
    const registers = [registry];
    const perChannel = (name: string, help: string, read: (s: ReturnType<StatsHub['overview']>['channels'][number]) => number | null) =>
      new Gauge({
        name, help, labelNames: ['channel'], registers,
        collect() {
          this.reset();
          for (const s of hub.overview().channels) {
            const v = read(s);
            if (v !== null && Number.isFinite(v)) this.set({ channel: s.channel }, v);
          }
        },
      });
    perChannel('starling_channel_viewers', 'Viewers (browser peers) now', (s) => s.viewers);
    perChannel('starling_channel_seeders', 'Seeding peers now', (s) => s.seeders);
    perChannel('starling_channel_offload_ratio', "Share of viewers' video bytes that came from peers, over the recent window", (s) => s.offload);
    perChannel('starling_channel_offload_bound', 'Best possible offload for this swarm size: 1 - 1/N', (s) => s.offloadBound);
    perChannel('starling_channel_origin_upload_bytes_per_second', 'Origin upload (root peer + HTTP) over the recent window', (s) => s.originUploadBps);
    perChannel('starling_channel_rebuffering_ratio', 'Stalled time / watched time of the current viewers', (s) => s.rebufferingRatio);
    new Gauge({
      name: 'starling_channel_viewers_by_rendition', help: 'Viewers by the rendition they play', labelNames: ['channel', 'rendition'], registers,
      collect() {
        this.reset();
        for (const s of hub.overview().channels) for (const r of s.renditions) this.set({ channel: s.channel, rendition: r.rendition }, r.viewers);
      },
    });
    this.received = new Counter({
      name: 'starling_channel_received_bytes_total', help: 'Video bytes viewers received, by source (peers, origin_peer, http)',
      labelNames: ['channel', 'source'], registers,
    });
    this.originUpload = new Counter({
      name: 'starling_channel_origin_upload_bytes_total', help: 'Bytes the origin uploaded, by path (peer: root peer, http: fallback fetches)',
      labelNames: ['channel', 'path'], registers,
    });
    this.stalled = new Counter({ name: 'starling_channel_stalled_seconds_total', help: 'Time viewers spent stalled', labelNames: ['channel'], registers });
    this.watched = new Counter({ name: 'starling_channel_watched_seconds_total', help: 'Time viewers spent watching since their startup', labelNames: ['channel'], registers });
    this.startup = new Histogram({
      name: 'starling_channel_startup_seconds', help: 'Viewer startup time (page start to first frame), once per viewer',
      labelNames: ['channel'], buckets: [0.25, 0.5, 1, 1.5, 2, 3, 5, 8, 13, 20], registers,
    });
    this.latency = new Histogram({
      name: 'starling_channel_live_latency_seconds', help: 'Distance behind the live edge, one sample per viewer report',
      labelNames: ['channel'], buckets: [2, 4, 6, 8, 10, 12, 15, 20, 30, 60], registers,
    });
    this.badPieces = new Counter({ name: 'starling_channel_bad_pieces_total', help: 'Pieces that failed verification, as reported by receivers', labelNames: ['channel'], registers });
    this.bans = new Counter({ name: 'starling_channel_bans_total', help: 'Neighbors banned, as reported by the banning peers', labelNames: ['channel'], registers });
    this.reports = new Counter({ name: 'starling_tracker_reports_total', help: 'Peer reports accepted, by peer kind', labelNames: ['kind'], registers });
    this.reportsDropped = new Counter({ name: 'starling_tracker_reports_dropped_total', help: 'Peer reports dropped, by reason', labelNames: ['reason'], registers });
    this.events = new Counter({ name: 'starling_tracker_events_total', help: 'Self-management feed events, by type', labelNames: ['type'], registers });
    this.dashboardClients = new Gauge({ name: 'starling_tracker_dashboard_clients', help: 'Live feed (SSE) connections open', registers });
    hub.onEvent((e) => this.events.inc({ type: e.type }));
  }

  /** Counts what one report added. */
  observe(channel: string, o: ReportOutcome): void {
    if (!o.accepted) {
      this.reportsDropped.inc({ reason: o.reason ?? 'unknown' });
      return;
    }
    this.reports.inc({ kind: o.kind ?? 'unknown' });
    const add = (c: Counter<string>, labels: Record<string, string>, v: number) => {
      if (v > 0 && Number.isFinite(v)) c.inc(labels, v);
    };
    add(this.received, { channel, source: 'peers' }, o.fromPeers);
    add(this.received, { channel, source: 'origin_peer' }, o.fromOriginPeer);
    add(this.received, { channel, source: 'http' }, o.fromHttp);
    add(this.originUpload, { channel, path: 'peer' }, o.originPeerUpload);
    add(this.originUpload, { channel, path: 'http' }, o.httpFetched);
    add(this.stalled, { channel }, o.stalledMs / 1000);
    add(this.watched, { channel }, o.watchMs / 1000);
    add(this.badPieces, { channel }, o.badPieces);
    add(this.bans, { channel }, o.bans);
    if (o.startupMs !== null) this.startup.observe({ channel }, o.startupMs / 1000);
    if (o.latencyMs !== null) this.latency.observe({ channel }, o.latencyMs / 1000);
  }
}
