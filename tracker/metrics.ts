/**
 * The tracker's Prometheus metrics, in a registry of its own (never prom-client's global one),
 * so several trackers can live in one process (tests, the simulator).
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { KindCounts } from './registry.js';

export interface PeerCountSource {
  channelNames(): string[];
  counts(channel: string): KindCounts;
}

export class TrackerMetrics {
  readonly registry = new Registry();
  readonly peers: Gauge<'channel' | 'kind'>;
  readonly connectionsTotal: Counter;
  readonly connectionsOpen: Gauge;
  readonly received: Counter<'type'>;
  readonly rejected: Counter<'reason'>;
  readonly signalsRelayed: Counter;
  readonly rateLimited: Counter;
  readonly floodClosed: Counter;
  readonly stunAnswered: Counter;
  readonly stunIgnored: Counter<'reason'>;

  constructor(source: PeerCountSource, opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.peers = new Gauge({
      name: 'starling_tracker_peers',
      help: 'Joined peers by channel and kind',
      labelNames: ['channel', 'kind'],
      registers,
      collect() {
        this.reset();
        for (const channel of source.channelNames()) {
          const c = source.counts(channel);
          for (const kind of ['origin', 'seeder', 'browser'] as const) this.set({ channel, kind }, c[kind]);
        }
      },
    });
    this.connectionsTotal = new Counter({ name: 'starling_tracker_connections_total', help: 'WebSocket connections accepted', registers });
    this.connectionsOpen = new Gauge({ name: 'starling_tracker_connections_open', help: 'WebSocket connections open now', registers });
    this.received = new Counter({
      name: 'starling_tracker_messages_received_total',
      help: 'Valid signaling messages received, by type',
      labelNames: ['type'],
      registers,
    });
    this.rejected = new Counter({
      name: 'starling_tracker_messages_rejected_total',
      help: 'Signaling messages (or frames) rejected, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.signalsRelayed = new Counter({ name: 'starling_tracker_signals_relayed_total', help: 'Signal messages relayed to another peer', registers });
    this.rateLimited = new Counter({ name: 'starling_tracker_rate_limited_total', help: 'Messages dropped by the per-connection rate limit', registers });
    this.floodClosed = new Counter({ name: 'starling_tracker_flood_closed_total', help: 'Connections closed (1008) for sustained flooding', registers });
    this.stunAnswered = new Counter({ name: 'starling_stun_binding_answered_total', help: 'STUN Binding requests answered', registers });
    this.stunIgnored = new Counter({
      name: 'starling_stun_ignored_total',
      help: 'UDP datagrams ignored by the STUN responder, by reason',
      labelNames: ['reason'],
      registers,
    });
    if (opts.defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'starling_tracker_' });
  }
}
