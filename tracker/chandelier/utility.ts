/**
 * The utility of an upload link parent -> child, in points (1 point = one extra hop of delay
 * for an ordinary healthy leaf). The objective of a plan is
 *
 *   F = sum over placed children c of  u(parent(c), c)
 *     - sum over parents p of  spareTotal(load(p), slots(p))
 *     - orphan * (number of unplaced children)
 *
 *   u(p, c) = stat(p, c) - hopWeight(c) * depth(c)             with depth(c) = depth(p) + 1
 *   stat(p, c) = - prio(c) * (rttPer100ms * rtt(p,c)/100 + nat(p,c) + parentCost(p))
 *                + sameScope * [scope(p) = scope(c)] + stay * [p -> c is a current link]
 *   hopWeight(c) = hop * prio(c) * mass(c),   mass(c) = 1 + massPerSlot * min(slots(c), massSlotCap)
 *   prio(c) = 1 + urgency * max(0, 1 - buffer(c) / bufferTargetMs)
 *   parentCost(p) = distrust * (1 - trust(p)) + browserParent * [p is a browser]
 *
 * Only the depth term depends on the rest of the tree; everything else of a link is fixed for a
 * round and is computed once per candidate pair ("stat"). Moving a child moves its whole
 * subtree, so a switch that changes c's depth by D changes F by -D * (sum of hopWeight over
 * c's subtree): parents that feed many pay their depth on behalf of all they feed.
 */
import { predictPair, type NatType } from '../nat.js';
import type { Weights } from './types.js';

/**
 * Defaults and why:
 * - hop 1: the unit. One hop costs a piece time (~90 ms for 16 KiB at 1.5 Mbit/s) plus half an RTT.
 * - massPerSlot 0.25 (cap 16): a peer's own depth weighs more the more slots it has, standing
 *   for the children it could feed; that is the gradient that makes high-capacity peers drift
 *   toward the origin even before their subtree fills up (8 slots: mass 3).
 * - rttPer100ms 0.5: half an RTT is added per hop, so 100 ms RTT ~ 50 ms ~ half a hop.
 * - relay 4: a TURN-relayed link costs relay bandwidth, extra RTT and often fails to set up;
 *   worth ~4 hops, so it is taken only when nothing direct is available.
 * - natUnknown 0.3: unmeasured NATs usually connect, but not always.
 * - sameScope 1: keep traffic inside an ISP/region (cost, and usually RTT); one hop's worth.
 * - distrust 3: a parent that failed before (trust 0) is as bad as three hops.
 * - browserParent 0.3: a tab can close any moment; seeders and the origin do not churn.
 * - spare 1: the k-th of s slots of a parent costs spare * k/s: loading a parent to its last
 *   slot leaves it no headroom for mesh repair or rate dips; spreads load over parents.
 * - urgency 1, bufferTargetMs 6000: a child with an empty buffer weighs everything about its
 *   parent twice (so in a contest for a good parent it wins); 3 segments counts as healthy.
 * - stay 1: switching a link costs a new connection and a make-before-break overlap; a switch
 *   must gain more than that, which keeps a stable overlay stable (no oscillation).
 * - orphan 1000: placing every child comes first (lexicographic in effect).
 * - detachedDepth 6: an unplaced child is fed by HTTP near its deadline; counted as 6 hops.
 */
export const DEFAULT_WEIGHTS: Readonly<Weights> = Object.freeze({
  hop: 1,
  massPerSlot: 0.25,
  massSlotCap: 16,
  rttPer100ms: 0.5,
  relay: 4,
  natUnknown: 0.3,
  sameScope: 1,
  distrust: 3,
  browserParent: 0.3,
  spare: 1,
  urgency: 1,
  bufferTargetMs: 6000,
  stay: 1,
  orphan: 1000,
  detachedDepth: 6,
});

export function resolveWeights(partial?: Partial<Weights>): Weights {
  const w = { ...DEFAULT_WEIGHTS, ...partial };
  for (const [k, v] of Object.entries(w)) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new TypeError(`weight ${k} must be a finite number >= 0`);
  }
  if (w.bufferTargetMs <= 0) throw new TypeError('weight bufferTargetMs must be > 0');
  w.detachedDepth = Math.max(1, Math.round(w.detachedDepth));
  return w;
}

/** 1 (healthy) .. 1 + urgency (empty buffer). */
export function childPriority(w: Weights, bufferHealthMs: number): number {
  const b = bufferHealthMs >= 0 ? bufferHealthMs : 0; // NaN and negatives: treat as empty
  return 1 + w.urgency * Math.max(0, 1 - b / w.bufferTargetMs);
}

/** How much a child's own depth weighs, standing for the children it could feed. */
export function capacityMass(w: Weights, slots: number): number {
  return 1 + w.massPerSlot * Math.min(slots, w.massSlotCap);
}

export function hopWeight(w: Weights, prio: number, slots: number): number {
  return w.hop * prio * capacityMass(w, slots);
}

/** NAT term of a pair (before the child's priority factor). */
export function natCost(w: Weights, a: NatType, b: NatType): number {
  const p = predictPair(a, b);
  return p === 'relay' ? w.relay : p === 'unknown' ? w.natUnknown : 0;
}

/** Parent-only cost (before the child's priority factor). */
export function parentCost(w: Weights, trust: number, isBrowser: boolean): number {
  const t = trust >= 0 ? Math.min(1, trust) : 0;
  return w.distrust * (1 - t) + (isBrowser ? w.browserParent : 0);
}

/** Cost of the k-th (0-based) used slot of a parent with `slots` slots. */
export function spareCost(w: Weights, k: number, slots: number): number {
  return slots > 0 ? (w.spare * k) / slots : 0;
}

/** Sum of spareCost over the first `load` slots. */
export function spareTotal(w: Weights, load: number, slots: number): number {
  return slots > 0 && load > 1 ? (w.spare * load * (load - 1)) / (2 * slots) : 0;
}

/** The depth-free part of a link's utility (see the header). */
export function staticUtility(
  w: Weights,
  prio: number,
  rttMs: number,
  nat: number,
  parentCostValue: number,
  sameScope: boolean,
  current: boolean,
): number {
  return -prio * ((w.rttPer100ms * rttMs) / 100 + nat + parentCostValue) + (sameScope ? w.sameScope : 0) + (current ? w.stay : 0);
}

/** Everything a readable, one-link evaluation needs (tests and the docs use this form). */
export interface LinkFacts {
  parent: { kind: string; natType: NatType; scope: string; trust: number };
  child: { natType: NatType; scope: string; bufferHealthMs: number; uploadSlots: number };
  rttMs: number;
  parentDepth: number;
  current: boolean;
}

/** u(p, c) for one link, the same numbers the solver uses. */
export function linkUtility(w: Weights, f: LinkFacts): number {
  const prio = childPriority(w, f.child.bufferHealthMs);
  const s = staticUtility(
    w,
    prio,
    f.rttMs,
    natCost(w, f.parent.natType, f.child.natType),
    parentCost(w, f.parent.trust, f.parent.kind === 'browser'),
    f.parent.scope === f.child.scope,
    f.current,
  );
  return s - hopWeight(w, prio, Math.max(0, Math.floor(f.child.uploadSlots))) * (f.parentDepth + 1);
}
