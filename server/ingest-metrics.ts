/**
 * Ingest figures (WHIP, RTMP, channels), registered in the origin's Prometheus registry next to
 * the figures of server/metrics.ts.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Channel, ChannelState } from './channel.js';

export type IngestProtocol = 'whip' | 'rtmp';

export class IngestMetrics {
  readonly sessions: Counter<'protocol'>;
  readonly rejected: Counter<'protocol' | 'reason'>;
  readonly rtpPackets: Counter<'kind'>;
  readonly rtpBytes: Counter<'kind'>;
  readonly goLive: Histogram;
  private readonly tracked = new Set<Channel>();

  constructor(registry: Registry) {
    const registers = [registry];
    this.sessions = new Counter({ name: 'starling_origin_ingest_sessions_total', help: 'Accepted ingest sessions', labelNames: ['protocol'], registers });
    this.rejected = new Counter({
      name: 'starling_origin_ingest_rejected_total', help: 'Refused ingest attempts (auth, bad SDP, codec, size, rate)', labelNames: ['protocol', 'reason'], registers,
    });
    this.rtpPackets = new Counter({ name: 'starling_origin_whip_rtp_packets_total', help: 'RTP packets received over WHIP', labelNames: ['kind'], registers });
    this.rtpBytes = new Counter({ name: 'starling_origin_whip_rtp_bytes_total', help: 'RTP bytes received over WHIP', labelNames: ['kind'], registers });
    this.goLive = new Histogram({
      name: 'starling_origin_go_live_seconds', help: 'From a publish to the first signed media segment', buckets: [1, 2, 3, 4, 6, 8, 12, 20, 40], registers,
    });
    const self = this;
    new Gauge({
      name: 'starling_origin_channels', help: 'Channels by state', labelNames: ['state'], registers,
      collect() {
        this.reset();
        const counts: Record<ChannelState, number> = { idle: 0, live: 0, reconnecting: 0, ended: 0 };
        for (const c of self.tracked) counts[c.state]++;
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
  }

  trackChannel(c: Channel): void {
    this.tracked.add(c);
    let reported = false;
    c.onSegmentPublished((e) => {
      const s = c.summary();
      if (e.ref.seq >= 0 && s.goLiveMs !== null && !reported) {
        reported = true;
        this.goLive.observe(s.goLiveMs / 1000);
      }
    });
    c.onState((st) => { if (st === 'ended' || st === 'idle') reported = false; });
  }

  untrack(c: Channel): void {
    this.tracked.delete(c);
  }
}
