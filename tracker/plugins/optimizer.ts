/**
 * The Chandelier loop in the tracker (DESIGN.md §4, issue 6): every periodMs, for each channel
 * this tracker leads (lease, tracker/store/election.ts), the channel's latest peer reports (from
 * the store, whichever tracker holds the peer) become the optimizer's overlay
 * (tracker/optimizer/overlay.ts), one round of OptimizerLoop runs under a time budget, and each
 * assignment goes to its peer as `{type:'assign', channel, rendition, parent}` through the
 * peer's registry handle (a local socket, or relayed through the store to the tracker holding
 * it, like signals). A join or leave brings the next round forward (debounced: at most one extra
 * round per second per channel).
 *
 * Failure is cheap by design: a round that throws is caught, logged and counted, and sends
 * nothing; with the optimizer disabled or failing, peers keep their links and the engine's local
 * choice and repair go on (the assignments are advice).
 */
import { performance } from 'node:perf_hooks';
import type { FastifyBaseLogger, FastifyPluginAsync } from 'fastify';
import type { AssignMessage, RelayMessage } from '../../peer/core/signaling.js';
import type { OptimizerMetrics } from '../metrics.js';
import type { PeerConn, TrackerContext } from '../context.js';
import type { Registry } from '../registry.js';
import type { FeedEvent } from '../stats/types.js';
import { CHURN_ROUND_DELAY_MS, CHURN_ROUND_GAP_MS, DEFAULT_ROUND_PERIOD_MS, HONOUR_WINDOW_MS, OptimizerLoop, type Assignment, type RoundFigures } from '../optimizer/loop.js';
import { buildOverlay, type MemberReport } from '../optimizer/overlay.js';
import { RelayPlanner, type RelayChange } from '../optimizer/relay.js';
import type { TrackerStore } from '../store/types.js';
import { channelMembers } from '../parent-index.js';

export interface OptimizerSettings {
  /** Run the loop at all. Default true. */
  enabled: boolean;
  /** Round period per channel, ms. Default 1000 (DEFAULT_ROUND_PERIOD_MS). */
  periodMs: number;
  /** Solver time budget per round (one channel), ms. Default 50. */
  budgetMs: number;
  /** Ask viewers with spare upload to relay short renditions (tracker/optimizer/relay.ts). Default false. */
  relays: boolean;
}

export const OPTIMIZER_DEFAULTS: OptimizerSettings & { churnDelayMs: number; churnGapMs: number } = {
  enabled: true,
  periodMs: DEFAULT_ROUND_PERIOD_MS,
  budgetMs: 50,
  relays: false,
  /** A churn round waits this long (a burst of leaves becomes one round). */
  churnDelayMs: CHURN_ROUND_DELAY_MS,
  /** At most one churn round per channel this often. */
  churnGapMs: CHURN_ROUND_GAP_MS,
};

export { HONOUR_WINDOW_MS };

/** Checks user-given settings (CLI, embedding); throws RangeError on nonsense. */
export function resolveOptimizerSettings(o: Partial<OptimizerSettings> = {}): OptimizerSettings {
  const s = { ...OPTIMIZER_DEFAULTS, ...o };
  if (typeof s.enabled !== 'boolean') throw new RangeError('optimizer.enabled must be a boolean');
  if (!(Number.isFinite(s.periodMs) && s.periodMs >= 100 && s.periodMs <= 3_600_000)) throw new RangeError('optimizer.periodMs must be 100..3600000');
  if (!(Number.isFinite(s.budgetMs) && s.budgetMs > 0 && s.budgetMs <= 10_000)) throw new RangeError('optimizer.budgetMs must be in (0, 10000]');
  if (typeof s.relays !== 'boolean') throw new RangeError('optimizer.relays must be a boolean');
  return { enabled: s.enabled, periodMs: s.periodMs, budgetMs: s.budgetMs, relays: s.relays };
}

type Log = Pick<FastifyBaseLogger, 'info' | 'warn' | 'error' | 'debug'>;

/** What the optimizer needs from the tracker (a TrackerContext provides all of it). */
export interface OptimizerDeps {
  store: Pick<TrackerStore, 'reports' | 'localChannels'>;
  registry: Pick<Registry<PeerConn>, 'peers' | 'get'>;
  isLeader(channel: string): boolean;
  metrics: OptimizerMetrics;
  log: Log;
  /** Monotonic ms for the solver's budget. Default performance.now. */
  now?: () => number;
  /** Feed for the dashboard (StatsHub.recordEvent), and churn notices (StatsHub.onEvent). */
  stats?: {
    recordEvent(e: Omit<FeedEvent, 'id' | 't'>): unknown;
    onEvent?(listener: (e: FeedEvent) => void): () => void;
  };
  /** Skip a peer whose socket has more than this many bytes queued. Default 1 MiB. */
  maxBufferedBytes?: number;
  /** The per-channel loop (tests inject failing ones). */
  createLoop?: (settings: OptimizerSettings, now: () => number) => Pick<OptimizerLoop, 'run'>;
}

/** One round's outcome, as logged. */
export interface ChannelRound extends RoundFigures {
  channel: string;
  /** Assignments delivered to a peer's handle / not (peer gone, congested, socket closed). */
  sent: number;
  undelivered: number;
  /** Viewers relaying a rendition they do not play after this round, and relay requests sent. */
  relays: number;
  relayMessages: number;
}

export class TrackerOptimizer {
  readonly settings: OptimizerSettings;
  private readonly now: () => number;
  private readonly loops = new Map<string, Pick<OptimizerLoop, 'run'>>();
  /** Per channel, who relays which rendition (tracker/optimizer/relay.ts). */
  private readonly planners = new Map<string, RelayPlanner>();
  /** Per channel, the last parent sent per `peer\0rendition` (a withdrawal is sent only after an assignment). */
  private readonly lastSent = new Map<string, Map<string, string | null>>();
  private readonly running = new Set<string>();
  private readonly churnTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly lastChurnRound = new Map<string, number>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private unsubscribe: (() => void) | null = null;
  private stopped = false;

  constructor(private readonly deps: OptimizerDeps, settings: Partial<OptimizerSettings> = {}) {
    this.settings = resolveOptimizerSettings(settings);
    this.now = deps.now ?? (() => performance.now());
  }

  /** Starts the period timer and listens for churn; no-op when disabled. */
  start(): void {
    if (!this.settings.enabled || this.timer || this.stopped) return;
    this.timer = setInterval(() => void this.tick(), this.settings.periodMs);
    this.timer.unref?.();
    this.unsubscribe = this.deps.stats?.onEvent?.((e) => {
      if (e.type === 'join' || e.type === 'leave') this.noteChurn(e.channel);
    }) ?? null;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.unsubscribe?.();
    this.unsubscribe = null;
    for (const t of this.churnTimers.values()) clearTimeout(t);
    this.churnTimers.clear();
  }

  /** One round for every channel led here; forgets the loops of channels no longer led. */
  async tick(): Promise<void> {
    const led = this.deps.store.localChannels().filter((c) => this.deps.isLeader(c));
    const ledSet = new Set(led);
    for (const c of [...this.loops.keys()]) {
      if (ledSet.has(c)) continue;
      this.loops.delete(c);
      this.planners.delete(c);
      this.deps.metrics.relays.remove({ channel: c });
      this.lastSent.delete(c);
      this.lastChurnRound.delete(c);
      this.deps.metrics.objective.remove({ channel: c });
    }
    for (const c of led) await this.runChannel(c);
  }

  /** A join or leave in `channel`: a round soon, at most one such round per churnGapMs. */
  noteChurn(channel: string): void {
    if (!this.settings.enabled || this.stopped || this.churnTimers.has(channel)) return;
    const last = this.lastChurnRound.get(channel) ?? -Infinity;
    const delay = Math.max(OPTIMIZER_DEFAULTS.churnDelayMs, last + OPTIMIZER_DEFAULTS.churnGapMs - this.now());
    const t = setTimeout(() => {
      this.churnTimers.delete(channel);
      this.lastChurnRound.set(channel, this.now());
      if (this.deps.isLeader(channel)) void this.runChannel(channel);
    }, delay);
    t.unref?.();
    this.churnTimers.set(channel, t);
  }

  /**
   * One round over `channel` if this tracker leads it (and no round of it is running). Never
   * throws: a failure is logged and counted and sends nothing. Null when nothing ran.
   */
  async runChannel(channel: string): Promise<ChannelRound | null> {
    if (!this.settings.enabled || this.stopped || this.running.has(channel) || !this.deps.isLeader(channel)) return null;
    this.running.add(channel);
    const { metrics, log } = this.deps;
    try {
      const members = await this.members(channel);
      // the lease may have moved while the reports were read: a non-leader sends nothing
      if (this.stopped || !this.deps.isLeader(channel)) return null;
      const loop = this.loopOf(channel);
      const overlay = buildOverlay(members);
      // Relays first: a viewer asked to relay a short rendition joins that rendition's tree in
      // this very round (a tracker that just took the lead adopts the relays peers report).
      const planner = this.plannerOf(channel);
      const relayChanges: RelayChange[] = this.settings.relays ? planner.plan(overlay) : [];
      const relaying = planner.current();
      for (const p of overlay) {
        const r = relaying.get(p.peerId);
        if (r !== undefined) p.relays = [r];
        else delete p.relays; // reported, but released: not a member of that tree any more
      }
      const { assignments, figures } = loop.run(overlay);
      const round: ChannelRound = { channel, ...figures, sent: 0, undelivered: 0, relays: relaying.size, relayMessages: 0 };
      for (const c of relayChanges) if (this.sendRelay(channel, c)) round.relayMessages++;
      metrics.relays.set({ channel }, relaying.size);
      metrics.relayMessages.inc(round.relayMessages);
      const last = this.lastSentOf(channel, members);
      for (const a of assignments) {
        const key = `${a.peerId}\u0000${a.rendition}`;
        // an unplaced peer is told `null` once, to withdraw what it was told before; never again
        // every round (a capacity-short channel would hear it from every peer each period)
        if (a.parent === null && (last.get(key) ?? null) === null) continue;
        if (this.send(channel, a)) {
          round.sent++;
          last.set(key, a.parent);
        } else {
          round.undelivered++;
        }
      }
      metrics.rounds.inc();
      metrics.moves.inc(figures.moves + figures.swaps);
      metrics.assignments.inc(round.sent);
      metrics.unhonoured.inc(figures.unhonoured);
      if (figures.solveMs !== null) metrics.solveSeconds.observe(figures.solveMs / 1000);
      if (figures.renditions > 0) metrics.objective.set({ channel }, figures.objectiveAfter);
      this.logRound(round, assignments);
      return round;
    } catch (err) {
      metrics.errors.inc();
      log.error({ channel, err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) }, 'optimizer round failed');
      return null;
    } finally {
      this.running.delete(channel);
    }
  }

  /** The channel's sent-parents map, without the peers that left. */
  private lastSentOf(channel: string, members: readonly MemberReport[]): Map<string, string | null> {
    let m = this.lastSent.get(channel);
    if (!m) this.lastSent.set(channel, (m = new Map()));
    const ids = new Set(members.map((x) => x.peerId));
    for (const key of m.keys()) if (!ids.has(key.slice(0, key.indexOf('\u0000')))) m.delete(key);
    return m;
  }

  private plannerOf(channel: string): RelayPlanner {
    let p = this.planners.get(channel);
    if (!p) this.planners.set(channel, (p = new RelayPlanner()));
    return p;
  }

  private sendRelay(channel: string, c: RelayChange): boolean {
    const rec = this.deps.registry.get(channel, c.peerId);
    if (!rec || rec.conn.bufferedAmount > (this.deps.maxBufferedBytes ?? 1024 * 1024)) return false;
    const msg: RelayMessage = { type: 'relay', channel, renditions: c.renditions };
    try {
      return rec.conn.sendJson(msg);
    } catch (err) {
      this.deps.log.debug({ channel, peerId: c.peerId, err: String(err) }, 'relay request not delivered');
      return false;
    }
  }

  private loopOf(channel: string): Pick<OptimizerLoop, 'run'> {
    let loop = this.loops.get(channel);
    if (!loop) {
      loop = this.deps.createLoop
        ? this.deps.createLoop(this.settings, this.now)
        : new OptimizerLoop(
          { now: this.now, budgetMs: this.settings.budgetMs },
          { honourRounds: Math.max(2, Math.ceil(HONOUR_WINDOW_MS / this.settings.periodMs)) },
        );
      this.loops.set(channel, loop);
    }
    return loop;
  }

  private members(channel: string): Promise<MemberReport[]> {
    return channelMembers(this.deps.store, this.deps.registry, channel);
  }

  private send(channel: string, a: Assignment): boolean {
    const rec = this.deps.registry.get(channel, a.peerId);
    if (!rec || rec.conn.bufferedAmount > (this.deps.maxBufferedBytes ?? 1024 * 1024)) return false;
    const msg: AssignMessage = { type: 'assign', channel, rendition: a.rendition, parent: a.parent };
    try {
      return rec.conn.sendJson(msg);
    } catch (err) {
      this.deps.log.debug({ channel, peerId: a.peerId, err: String(err) }, 'assignment not delivered');
      return false;
    }
  }

  /** One structured line per round (info when it changed something), and a feed event for the dashboard. */
  private logRound(r: ChannelRound, assignments: readonly Assignment[]): void {
    const line = {
      channel: r.channel, peers: r.peers, renditions: r.renditions, moves: r.moves, swaps: r.swaps, placed: r.placed,
      unplaced: r.unplaced, objectiveBefore: round2(r.objectiveBefore), objectiveAfter: round2(r.objectiveAfter),
      solveMs: r.solveMs === null ? null : round2(r.solveMs), budgetExhausted: r.budgetExhausted,
      assignments: r.assignments, sent: r.sent, undelivered: r.undelivered, unhonoured: r.unhonoured,
      relays: r.relays, relayMessages: r.relayMessages,
      // the decisions themselves, bounded (a big churn round would otherwise flood the log)
      plan: assignments.slice(0, 20).map((a) => `${a.peerId}@${a.rendition}->${a.parent ?? '-'}`),
    };
    const busy = r.sent > 0 || r.undelivered > 0 || r.unhonoured > 0 || r.relayMessages > 0;
    if (busy) this.deps.log.info(line, 'optimizer round');
    else this.deps.log.debug(line, 'optimizer round');
    if (!busy || !this.deps.stats) return;
    try {
      this.deps.stats.recordEvent({
        channel: r.channel,
        type: 'optimizer',
        value: round2(r.objectiveAfter - r.objectiveBefore),
        text: `optimizer: ${r.sent} assignment(s) sent, ${r.moves} move(s), ${r.swaps} swap(s), ${r.placed} placed, ` +
          `${r.unplaced} unplaced, ${r.unhonoured} unhonoured; objective ${round2(r.objectiveBefore)} -> ${round2(r.objectiveAfter)}`,
      });
    } catch (err) {
      this.deps.log.debug({ err: String(err) }, 'stats.recordEvent threw');
    }
  }
}

const round2 = (x: number): number => Math.round(x * 100) / 100;

export interface OptimizerPluginOptions {
  ctx: TrackerContext;
  settings?: Partial<OptimizerSettings>;
}

/** Registers the loop on the tracker: started at once (a round needs a lease, so nothing runs before peers join), stopped on close. */
export const optimizerPlugin: FastifyPluginAsync<OptimizerPluginOptions> = async (app, { ctx, settings }) => {
  const optimizer = new TrackerOptimizer({
    store: ctx.store,
    registry: ctx.registry,
    isLeader: (c) => ctx.optimizerLeader(c),
    metrics: ctx.metrics.optimizer,
    log: app.log.child({ part: 'optimizer' }),
    stats: ctx.stats,
    maxBufferedBytes: ctx.limits.maxBufferedBytes,
  }, settings);
  if (!optimizer.settings.enabled) app.log.info('optimizer disabled: peers choose their parents locally');
  optimizer.start();
  app.addHook('onClose', async () => optimizer.stop());
};
