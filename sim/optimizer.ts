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
import { seededRandom, type OptimizeOptions } from '../tracker/chandelier/index.js';
import { HONOUR_WINDOW_MS, OptimizerLoop, type Assignment, type OverlayPeer, type RoundFigures } from '../tracker/optimizer/loop.js';
import { RelayPlanner, type RelayChange } from '../tracker/optimizer/relay.js';
import type { NatType } from '../tracker/nat.js';

export type { Assignment, RelayChange, RoundFigures };

export interface OptimizerPeerView {
  id: string;
  /** The rendition played (viewers); null for the origin (root of every rendition). */
  rendition: string | null;
  /** Children it could feed per rendition (the engine's capacity, as reported). */
  slots: Record<string, number>;
  nat: NatType;
  scope: string;
  bufferMs: number;
  /** The engine's current parents per rendition (from its reports). */
  parents: Record<string, string>;
  /** Upload left for more children, kbit/s, and measured bitrates (relay inputs, as reported). */
  spareKbps?: number;
  kbps?: Record<string, number>;
  /** Renditions it relays on the tracker's request. */
  relays?: string[];
}


export class SimOptimizer {
  private readonly loop: OptimizerLoop;
  private readonly relays = new RelayPlanner();

  constructor(
    seed: number, maxPasses: number, periodMs: number, private readonly withRelays: boolean,
    private readonly rtt?: (a: string, b: string) => number,
    /** Solver settings a scenario may change (weights, minGain); the tracker's defaults otherwise. */
    tuning: Pick<OptimizeOptions, 'weights' | 'minGain' | 'maxSwitches'> = {},
  ) {
    this.loop = new OptimizerLoop({ random: seededRandom(seed), maxPasses, ...tuning }, { honourRounds: Math.max(1, Math.ceil(HONOUR_WINDOW_MS / periodMs)) });
  }

  /** One round as the tracker plugin runs it: relays first (tracker/optimizer/relay.ts), then the loop. */
  round(origin: OptimizerPeerView, viewers: readonly OptimizerPeerView[], renditions: readonly string[]): { assignments: Assignment[]; figures: RoundFigures; relayChanges: RelayChange[]; relays: number } {
    const overlay: OverlayPeer[] = [
      { peerId: origin.id, kind: 'origin', nat: origin.nat, scope: origin.scope, parents: {}, slots: origin.slots },
      ...viewers.map((v): OverlayPeer => ({
        peerId: v.id, kind: 'browser', nat: v.nat, scope: v.scope, rendition: v.rendition ?? undefined,
        parents: v.parents, slots: v.slots, bufferMs: v.bufferMs,
        ...(v.spareKbps !== undefined ? { spareKbps: v.spareKbps } : {}),
        ...(v.kbps ? { kbps: v.kbps } : {}),
        ...(v.relays && v.relays.length > 0 ? { relays: v.relays } : {}),
      })),
    ];
    const relayChanges = this.withRelays ? this.relays.plan(overlay) : [];
    const relaying = this.relays.current();
    for (const p of overlay) {
      const r = relaying.get(p.peerId);
      if (r !== undefined) p.relays = [r];
      else delete p.relays;
    }
    return { ...this.loop.run(overlay, renditions, this.rtt), relayChanges, relays: relaying.size };
  }
}
