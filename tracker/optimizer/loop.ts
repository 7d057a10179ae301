/**
 * The tracker's Chandelier feedback loop for one channel, pure: peer reports in, parent
 * assignments out. The tracker plugin (tracker/plugins/optimizer.ts) runs it every few seconds
 * and on churn, and sends each assignment to its peer; peers apply them make-before-break
 * (Engine.assignParent). No timers, sockets or clocks here: `now` comes in with each round.
 *
 * Self-protection: every parent has a trust weight in [0, 1] that the optimizer's utility uses
 * (an untrusted parent is as bad as several hops). Trust falls when an assignment to a parent is
 * not honoured within a few rounds (the parent refused or never answered: it may be lying about
 * its capacity or failing), and when a parent's children stall while attached to it; it
 * recovers slowly while its assignments are honoured and its children play.
 *
 * Reports lag (a peer reports every few seconds): an assignment sent but not visible in the
 * reports yet is taken as the child's current link until it is honoured or its time is up, so the
 * next round warm-starts from the plan it sent rather than re-deciding from stale links (which
 * would send the child elsewhere before it could follow). Such pending assignments are re-sent
 * each round (idempotent at the engine; a lost message costs one round).
 */
import { Chandelier, type LinkSpec, type OptimizeOptions, type PeerInput, type RenditionInput, type RttInput } from '../chandelier/index.js';
import { toNatType } from '../nat.js';
import type { PeerKind } from '../../peer/core/types.js';

/** What the tracker knows of one peer from its latest report. */
export interface OverlayPeer {
  peerId: string;
  kind: PeerKind;
  /** NAT type label as reported (unknown labels count as 'unknown'). */
  nat?: string;
  /** Locality scope (reported region, or derived from the peer's address). */
  scope: string;
  /** The rendition played (browsers); seeders and the origin take part in every rendition. */
  rendition?: string;
  /** Current parent per rendition (from report links flagged parent). */
  parents: Record<string, string>;
  /** Children it could feed per rendition (engine capacity, from the report). */
  slots: Record<string, number>;
  /** Hops from the origin per rendition it is fed in (from the report; unfed renditions absent). */
  depth?: Record<string, number>;
  /** Buffer ahead of the playhead, ms (watch page); absent for seeders. */
  bufferMs?: number;
  /** Cumulative stalls (watch page), to notice children stalling under a parent. */
  stalls?: number;
  /** Upload left after its current children, kbit/s (capped peers only). */
  spareKbps?: number;
  /** Measured bitrate per rendition it holds, kbit/s. */
  kbps?: Record<string, number>;
  /** Renditions it relays for the channel besides the one it plays (tracker/optimizer/relay.ts). */
  relays?: readonly string[];
}

export interface Assignment { peerId: string; rendition: string; parent: string | null }

export interface RoundFigures {
  renditions: number;
  peers: number;
  moves: number;
  swaps: number;
  placed: number;
  unplaced: number;
  objectiveBefore: number;
  objectiveAfter: number;
  solveMs: number | null;
  budgetExhausted: boolean;
  assignments: number;
  unhonoured: number;
}

/**
 * Time a peer gets to show an assignment in its reports before it counts as not honoured (and
 * the parent's trust drops): a report period (5 s by default), connecting to the parent, the
 * parent's own feed and the slot grant. 10 s was measured too short in a flash crowd (simulator,
 * 1,000 viewers: good parents lost trust and the plan drifted: 38.8% from peers, 50.4% with
 * 30 s). In rounds: honourRounds, derived by the caller from its period.
 */
export const HONOUR_WINDOW_MS = 30_000;

/**
 * Rounds on churn, besides the periodic ones: a join or leave brings a round forward by this
 * delay (a burst of joins or leaves becomes one round), at most one such round per channel every
 * CHURN_ROUND_GAP_MS. The tracker's plugin and the simulator both schedule them from these.
 */
export const CHURN_ROUND_DELAY_MS = 200;
/**
 * Periodic round, per channel. 1 s rather than 2 s: in a flash crowd the plan a joiner waits for
 * came up to a period later (simulator, chandelier-300 60 s, seeds 21-30, with churn rounds:
 * 83.5% from peers against 81.0% with 2 s periodic rounds only, every seed higher). A warm round
 * for 10,000 peers costs ~65 ms (bench/RESULTS.md "Chandelier optimizer").
 */
export const DEFAULT_ROUND_PERIOD_MS = 1000;
export const CHURN_ROUND_GAP_MS = 1000;

export const LOOP_LIMITS = {
  /** Rounds an assignment may take before it counts as not honoured. */
  honourRounds: 3,
  trustPenaltyUnhonoured: 0.25,
  trustPenaltyStall: 0.1,
  trustRecovery: 0.05,
} as const;

interface Pending { parent: string; round: number }

export interface LoopLimits {
  /** Rounds an assignment may take before it counts as not honoured (and is no longer assumed). */
  honourRounds: number;
}

export class OptimizerLoop {
  private readonly chandelier: Chandelier;
  private readonly trust = new Map<string, number>();
  private readonly pending = new Map<string, Pending>();
  private readonly lastStalls = new Map<string, number>();
  private round = 0;
  private readonly honourRounds: number;

  constructor(opts: OptimizeOptions = {}, limits: Partial<LoopLimits> = {}) {
    this.chandelier = new Chandelier(opts);
    this.honourRounds = limits.honourRounds ?? LOOP_LIMITS.honourRounds;
    if (!(Number.isInteger(this.honourRounds) && this.honourRounds >= 1)) throw new RangeError('honourRounds must be an integer >= 1');
  }

  trustOf(peerId: string): number {
    return this.trust.get(peerId) ?? 1;
  }

  private adjustTrust(peerId: string, delta: number): void {
    this.trust.set(peerId, Math.max(0, Math.min(1, this.trustOf(peerId) + delta)));
  }

  /** One round over a channel's overlay. `renditions`: the channel's renditions (from its peers' reports if omitted). */
  run(peers: readonly OverlayPeer[], renditions?: readonly string[], rtt?: RttInput): { assignments: Assignment[]; figures: RoundFigures } {
    this.round++;
    const byId = new Map(peers.map((p) => [p.peerId, p]));
    const origin = peers.find((p) => p.kind === 'origin');
    const figures: RoundFigures = {
      renditions: 0, peers: 0, moves: 0, swaps: 0, placed: 0, unplaced: 0, objectiveBefore: 0, objectiveAfter: 0,
      solveMs: null, budgetExhausted: false, assignments: 0, unhonoured: 0,
    };
    this.checkPromises(byId, figures);
    this.checkStalls(peers, byId);
    for (const id of [...this.trust.keys()]) if (!byId.has(id)) this.trust.delete(id);
    if (!origin) return { assignments: [], figures };
    const names = renditions ?? [...new Set(peers.flatMap((p) => (p.rendition ? [p.rendition] : [])))].sort();
    const inputs: RenditionInput[] = [];
    for (const r of names) {
      const members = peers.filter((p) => p.kind !== 'browser' || p.rendition === r || p.relays?.includes(r));
      if (!members.some((p) => p.kind !== 'origin')) continue;
      const ids = new Set(members.map((p) => p.peerId));
      const input: PeerInput[] = members.map((p) => ({
        id: p.peerId, kind: p.kind, uploadSlots: Math.max(0, Math.floor(p.slots[r] ?? 0)), natType: toNatType(p.nat),
        scope: p.scope, bufferHealthMs: p.bufferMs ?? 6000, trust: this.trustOf(p.peerId), online: true,
      }));
      const currentLinks: LinkSpec[] = [];
      for (const p of members) {
        // an assignment on its way counts as done (see the header); else what the peer reported
        const parent = this.pending.get(pendingKey(p.peerId, r))?.parent ?? p.parents[r];
        if (parent !== undefined && ids.has(parent) && p.kind !== 'origin') currentLinks.push({ parent, child: p.peerId });
      }
      inputs.push({ rendition: r, originId: origin.peerId, peers: input, currentLinks });
    }
    if (inputs.length === 0) return { assignments: [], figures };
    const res = this.chandelier.round({ renditions: inputs, ...(rtt ? { rtt } : {}) });
    figures.solveMs = res.solveMs;
    figures.budgetExhausted = res.budgetExhausted;
    figures.moves = res.moves;
    figures.swaps = res.swaps;
    figures.placed = res.placed;
    const assignments: Assignment[] = [];
    for (const rr of res.renditions) {
      figures.renditions++;
      figures.peers += rr.peers;
      figures.unplaced += rr.unplaced.length;
      figures.objectiveBefore += rr.objectiveBefore;
      figures.objectiveAfter += rr.objectiveAfter;
      const added = new Set<string>();
      for (const l of rr.added) {
        assignments.push({ peerId: l.child, rendition: rr.rendition, parent: l.parent });
        // the clock of the promise starts at the first time this parent was assigned
        const key = pendingKey(l.child, rr.rendition);
        added.add(key);
        if (this.pending.get(key)?.parent !== l.parent) this.pending.set(key, { parent: l.parent, round: this.round });
      }
      // pending assignments the plan kept: re-sent until honoured (a lost message costs one round)
      for (const l of rr.links) {
        const key = pendingKey(l.child, rr.rendition);
        if (!added.has(key) && this.pending.get(key)?.parent === l.parent) assignments.push({ peerId: l.child, rendition: rr.rendition, parent: l.parent });
      }
      for (const child of rr.unplaced) {
        assignments.push({ peerId: child, rendition: rr.rendition, parent: null });
        this.pending.delete(pendingKey(child, rr.rendition));
      }
    }
    figures.assignments = assignments.length;
    return { assignments, figures };
  }

  /** Assignments honoured raise the parent's trust a little; those left unhonoured lower it. */
  private checkPromises(byId: ReadonlyMap<string, OverlayPeer>, figures: RoundFigures): void {
    for (const [key, p] of [...this.pending]) {
      const [child, rendition] = key.split('\u0000');
      const c = byId.get(child);
      if (!c || !byId.has(p.parent)) { this.pending.delete(key); continue; }
      if (c.parents[rendition] === p.parent) {
        this.pending.delete(key);
        this.adjustTrust(p.parent, LOOP_LIMITS.trustRecovery);
      } else if (this.round - p.round >= this.honourRounds) {
        this.pending.delete(key);
        figures.unhonoured++;
        this.adjustTrust(p.parent, -LOOP_LIMITS.trustPenaltyUnhonoured);
      }
    }
  }

  /** A child that stalled since the previous round costs its parent some trust. */
  private checkStalls(peers: readonly OverlayPeer[], byId: ReadonlyMap<string, OverlayPeer>): void {
    for (const p of peers) {
      if (p.stalls === undefined) continue;
      const prev = this.lastStalls.get(p.peerId);
      this.lastStalls.set(p.peerId, p.stalls);
      if (prev === undefined || p.stalls <= prev || !p.rendition) continue;
      const parent = p.parents[p.rendition];
      if (parent !== undefined && byId.has(parent)) this.adjustTrust(parent, -LOOP_LIMITS.trustPenaltyStall);
    }
    for (const id of [...this.lastStalls.keys()]) if (!byId.has(id)) this.lastStalls.delete(id);
  }
}

const pendingKey = (child: string, rendition: string): string => `${child}\u0000${rendition}`;
