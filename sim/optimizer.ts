/**
 * The tracker's Chandelier loop inside the simulator: every round, the overlay as the tracker
 * would know it from peer reports (who watches what, upload slots, NAT type, scope, buffer,
 * current parents) goes into the tracker's REAL loop (tracker/optimizer/loop.ts: the
 * optimizer, pending assignments counted as links until reported, trust weights), and the
 * parents it assigns come back, for the world to deliver to the peers' engines
 * (Engine.assignParent) one tracker hop later.
 *
 * Deterministic: no time budget (the budget would make the plan depend on the machine's speed);
 * rounds are bounded by maxPasses instead, and the solve's wall time is measured outside the
 * report (perf.json). RTTs: the modelled ones when given (what RTT reports from peers would
 * give the tracker; the real tracker has none yet and uses the optimizer's default).
 */
import { seededRandom } from '../tracker/chandelier/index.js';
import { HONOUR_WINDOW_MS, OptimizerLoop, type Assignment, type OverlayPeer, type RoundFigures } from '../tracker/optimizer/loop.js';
import type { NatType } from '../tracker/nat.js';

export type { Assignment, RoundFigures };

export interface OptimizerPeerView {
  id: string;
  /** The rendition played (viewers); null for the origin (root of every rendition). */
  rendition: string | null;
  /** Children it could feed per rendition (the engine's capacity, as reported). */
  slots: Record<string, number>;
  nat: NatType;
  scope: string;
  bufferMs: number;
  /** The engine's current parent in its rendition (from its reports). */
  parent: string | undefined;
}


export class SimOptimizer {
  private readonly loop: OptimizerLoop;

  constructor(seed: number, maxPasses: number, periodMs: number, private readonly rtt?: (a: string, b: string) => number) {
    this.loop = new OptimizerLoop({ random: seededRandom(seed), maxPasses }, { honourRounds: Math.max(1, Math.ceil(HONOUR_WINDOW_MS / periodMs)) });
  }

  round(origin: OptimizerPeerView, viewers: readonly OptimizerPeerView[], renditions: readonly string[]): { assignments: Assignment[]; figures: RoundFigures } {
    const overlay: OverlayPeer[] = [
      { peerId: origin.id, kind: 'origin', nat: origin.nat, scope: origin.scope, parents: {}, slots: origin.slots },
      ...viewers.map((v): OverlayPeer => ({
        peerId: v.id, kind: 'browser', nat: v.nat, scope: v.scope, rendition: v.rendition ?? undefined,
        parents: v.parent !== undefined && v.rendition ? { [v.rendition]: v.parent } : {},
        slots: v.slots, bufferMs: v.bufferMs,
      })),
    ];
    return this.loop.run(overlay, renditions, this.rtt);
  }
}
