/**
 * The tracker's Chandelier loop inside the simulator: every round, the overlay as the tracker
 * would know it from peer reports (who watches what, upload slots, NAT type, scope, buffer,
 * current parents) goes into the REAL optimizer (tracker/chandelier), and the links it changes
 * come back as parent assignments, which the world delivers to the peers' engines
 * (Engine.assignParent) one tracker hop later.
 *
 * Deterministic: no time budget (the budget would make the plan depend on the machine's speed);
 * rounds are bounded by maxPasses instead, and the solve's wall time is measured outside the
 * report (perf.json).
 */
import { Chandelier, seededRandom, type LinkSpec, type PeerInput, type RenditionInput } from '../tracker/chandelier/index.js';
import type { NatType } from '../tracker/nat.js';

export interface OptimizerPeerView {
  id: string;
  /** The rendition played (viewers); null for the origin (root of every rendition). */
  rendition: string | null;
  uploadSlots: number;
  nat: NatType;
  scope: string;
  bufferMs: number;
  /** The engine's current parent in its rendition (from its reports). */
  parent: string | undefined;
}

export interface Assignment { child: string; rendition: string; parent: string | null }

export interface RoundFigures {
  peers: number;
  moves: number;
  swaps: number;
  placed: number;
  unplaced: number;
  objectiveBefore: number;
  objectiveAfter: number;
  assignments: number;
}

export class SimOptimizer {
  private readonly chandelier: Chandelier;

  constructor(seed: number, maxPasses: number, private readonly rtt: (a: string, b: string) => number) {
    this.chandelier = new Chandelier({ random: seededRandom(seed), maxPasses });
  }

  round(origin: OptimizerPeerView, viewers: readonly OptimizerPeerView[], renditions: readonly string[]): { assignments: Assignment[]; figures: RoundFigures } {
    const inputs: RenditionInput[] = [];
    for (const r of renditions) {
      const watchers = viewers.filter((v) => v.rendition === r);
      if (watchers.length === 0) continue;
      const ids = new Set(watchers.map((v) => v.id));
      ids.add(origin.id);
      const peers: PeerInput[] = [origin, ...watchers].map((v) => ({
        id: v.id, kind: v === origin ? 'origin' : 'browser', uploadSlots: v.uploadSlots, natType: v.nat,
        scope: v.scope, bufferHealthMs: v.bufferMs, trust: 1, online: true,
      }));
      const currentLinks: LinkSpec[] = [];
      for (const v of watchers) if (v.parent !== undefined && ids.has(v.parent)) currentLinks.push({ parent: v.parent, child: v.id });
      inputs.push({ rendition: r, originId: origin.id, peers, currentLinks });
    }
    const res = this.chandelier.round({ renditions: inputs, rtt: this.rtt });
    const assignments: Assignment[] = [];
    const figures: RoundFigures = { peers: 0, moves: res.moves, swaps: res.swaps, placed: res.placed, unplaced: 0, objectiveBefore: 0, objectiveAfter: 0, assignments: 0 };
    for (const rr of res.renditions) {
      figures.peers += rr.peers;
      figures.unplaced += rr.unplaced.length;
      figures.objectiveBefore += rr.objectiveBefore;
      figures.objectiveAfter += rr.objectiveAfter;
      const newParent = new Map<string, string>();
      for (const l of rr.added) newParent.set(l.child, l.parent);
      for (const [child, parent] of newParent) assignments.push({ child, rendition: rr.rendition, parent });
      for (const child of rr.unplaced) assignments.push({ child, rendition: rr.rendition, parent: null });
    }
    figures.assignments = assignments.length;
    return { assignments, figures };
  }
}
