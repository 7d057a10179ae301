/**
 * The tracker's Prometheus metrics, in a registry of its own (never prom-client's global one),
 * so several trackers can live in one process (tests, the simulator).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { KindCounts } from './registry.js';

export interface PeerCountSource {
  channelNames(): string[];
  counts(channel: string): KindCounts;
}

export interface LeadershipSource {
  leading(): string[];
}

export class TrackerMetrics {
  readonly registry = new Registry();
  readonly peers: Gauge<'channel' | 'kind'>;
  readonly connectionsTotal: Counter;
  readonly connectionsOpen: Gauge;
  readonly received: Counter<'type'>;
  readonly rejected: Counter<'reason'>;
  readonly signalsRelayed: Counter;
  readonly parentRequests: Counter;
  readonly parentCandidates: Counter;
  readonly rateLimited: Counter;
  readonly floodClosed: Counter;
  readonly stunAnswered: Counter;
  readonly stunIgnored: Counter<'reason'>;
  /** The Chandelier loop (tracker/plugins/optimizer.ts); all zero while it is disabled. */
  readonly optimizer: OptimizerMetrics;

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
    this.parentRequests = new Counter({ name: 'starling_tracker_parent_requests_total', help: 'Peers requests from peers without a parent (parentFor)', registers });
    this.parentCandidates = new Counter({ name: 'starling_tracker_parent_candidates_total', help: 'Parent candidates named in answers to parentFor', registers });
    this.rateLimited = new Counter({ name: 'starling_tracker_rate_limited_total', help: 'Messages dropped by the per-connection rate limit', registers });
    this.floodClosed = new Counter({ name: 'starling_tracker_flood_closed_total', help: 'Connections closed (1008) for sustained flooding', registers });
    this.stunAnswered = new Counter({ name: 'starling_stun_binding_answered_total', help: 'STUN Binding requests answered', registers });
    this.stunIgnored = new Counter({
      name: 'starling_stun_ignored_total',
      help: 'UDP datagrams ignored by the STUN responder, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.optimizer = new OptimizerMetrics(this.registry);
    if (opts.defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'starling_tracker_' });
  }

  /** starling_tracker_optimizer_leader{channel}: 1 for each channel whose optimizer lease this tracker holds. */
  attachLeadership(source: LeadershipSource): void {
    new Gauge({
      name: 'starling_tracker_optimizer_leader',
      help: 'Channels whose optimizer this tracker runs (lease held): 1 per channel',
      labelNames: ['channel'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const channel of source.leading()) this.set({ channel }, 1);
      },
    });
  }
}

/** starling_optimizer_*: what the channel optimizers of this tracker did. */
export class OptimizerMetrics {
  readonly rounds: Counter;
  readonly moves: Counter;
  readonly assignments: Counter;
  readonly unhonoured: Counter;
  readonly errors: Counter;
  readonly solveSeconds: Histogram;
  readonly objective: Gauge<'channel'>;
  readonly relays: Gauge<'channel'>;
  readonly relayMessages: Counter;

  constructor(registry: Registry) {
    const registers = [registry];
    this.rounds = new Counter({ name: 'starling_optimizer_rounds_total', help: 'Optimizer rounds run (all channels this tracker leads)', registers });
    this.moves = new Counter({ name: 'starling_optimizer_moves_total', help: 'Re-parent moves and swaps applied by the optimizer (placements not included)', registers });
    this.assignments = new Counter({ name: 'starling_optimizer_assignments_total', help: 'Parent assignments sent to peers', registers });
    this.unhonoured = new Counter({ name: 'starling_optimizer_unhonoured_total', help: 'Assignments not followed by the peer within a few rounds', registers });
    this.errors = new Counter({ name: 'starling_optimizer_errors_total', help: 'Optimizer rounds that failed (caught; nothing sent)', registers });
    this.solveSeconds = new Histogram({
      name: 'starling_optimizer_solve_seconds',
      help: 'Solver time of one round (one channel)',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    });
    this.objective = new Gauge({
      name: 'starling_optimizer_objective',
      help: "Objective of the channel's overlay after the latest round (higher is better; points, tracker/chandelier/README.md)",
      labelNames: ['channel'],
      registers,
    });
    this.relays = new Gauge({
      name: 'starling_optimizer_relays',
      help: 'Viewers asked to relay a rendition they do not play (tracker/optimizer/relay.ts), per channel',
      labelNames: ['channel'],
      registers,
    });
    this.relayMessages = new Counter({ name: 'starling_optimizer_relay_messages_total', help: 'Relay requests sent to peers (a new set, or a release)', registers });
  }
}
