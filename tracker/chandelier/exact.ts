/**
 * The exact reference: the Hungarian algorithm on the layered relaxation of a round's instance.
 *
 * What is compared, precisely. Fix a layer L(v) for every peer: the depths of the plan DGS
 * ended with (origin 0, an unplaced peer detachedDepth, everyone else depth(parent) + 1). The
 * relaxation assigns every child c either to one slot (p, k) of a parent p with L(p) < L(c),
 * k < slots(p), at utility
 *     stat(p, c) - hopWeight(c) * (L(p) + 1) - spareCost(k, slots(p)),
 * or to nothing at -orphan; each slot takes at most one child. Every parent (all scopes, not just
 * the candidate lists DGS looks at) is allowed. Since layers strictly decrease toward the root,
 * every assignment is acyclic, and it is a pure linear sum assignment (children x slots): the
 * Hungarian algorithm solves it exactly. The DGS plan itself is feasible in it (each parent sits
 * exactly one layer above its child) and its relaxed value equals its objective F, so
 *     gap = optimum of the relaxation - F(DGS plan) >= 0
 * is what DGS leaves on the table against ANY assignment that keeps its layering: longer
 * exchange chains than one move or swap, and parents outside the candidate lists. It does not
 * count plans with a different layering (those would change the relaxation itself).
 * Two variants (measureGap in index.ts reports both): "scoped" allows only the pairs the scoping
 * rule allows (candidates.ts scopeRule, plus the parent DGS ended with: placement may have
 * had to cross a scope to enter it), which isolates the search (bounded candidate lists, local
 * switches); "unscoped" allows all pairs, which adds what the scoping rule itself costs in
 * utility. O(n^2 m) with m = slots + n columns: for instances up to a few hundred peers.
 */
import { pairStatic, type Instance } from './instance.js';
import { spareCost, spareTotal } from './utility.js';

const FORBIDDEN = 1e9;

/**
 * Minimum-cost assignment of n rows to m >= n columns (cost row-major n x m); returns the column
 * of each row. Kuhn-Munkres with potentials (shortest augmenting paths), O(n^2 m).
 */
export function hungarianMin(n: number, m: number, cost: Float64Array): Int32Array {
  if (m < n) throw new RangeError('hungarianMin needs at least as many columns as rows');
  const u = new Float64Array(n + 1);
  const v = new Float64Array(m + 1);
  const p = new Int32Array(m + 1); // row (1-based) assigned to column j, 0 = none
  const way = new Int32Array(m + 1);
  const minv = new Float64Array(m + 1);
  const used = new Uint8Array(m + 1);
  for (let i = 1; i <= n; i++) {
    p[0] = i;
    let j0 = 0;
    minv.fill(Infinity);
    used.fill(0);
    do {
      used[j0] = 1;
      const i0 = p[j0];
      const row = (i0 - 1) * m;
      let delta = Infinity;
      let j1 = 0;
      const ui0 = u[i0];
      for (let j = 1; j <= m; j++) {
        if (used[j]) continue;
        const cur = cost[row + j - 1] - ui0 - v[j];
        if (cur < minv[j]) { minv[j] = cur; way[j] = j0; }
        if (minv[j] < delta) { delta = minv[j]; j1 = j; }
      }
      for (let j = 0; j <= m; j++) {
        if (used[j]) { u[p[j]] += delta; v[j] -= delta; }
        else minv[j] -= delta;
      }
      j0 = j1;
    } while (p[j0] !== 0);
    do {
      const j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0 !== 0);
  }
  const col = new Int32Array(n).fill(-1);
  for (let j = 1; j <= m; j++) if (p[j] > 0) col[p[j] - 1] = j - 1;
  return col;
}

/** Value of an assignment (parent per peer, -1 none) in the relaxation with layers `layer`. */
export function relaxedObjective(inst: Instance, layer: Int32Array, parent: Int32Array): number {
  const { n, isChild, hopW, w, slots } = inst;
  const load = new Int32Array(n);
  let f = 0;
  for (let c = 0; c < n; c++) {
    if (!isChild[c]) continue;
    const p = parent[c];
    if (p < 0) { f -= w.orphan; continue; }
    if (!(layer[p] < layer[c])) throw new RangeError(`assignment breaks the layering at ${inst.ids[c]}`);
    load[p]++;
    f += pairStatic(inst, p, c) - hopW[c] * (layer[p] + 1);
  }
  for (let p = 0; p < n; p++) {
    if (load[p] > slots[p]) throw new RangeError(`assignment overloads ${inst.ids[p]}`);
    f -= spareTotal(w, load[p], slots[p]);
  }
  return f;
}

export interface RelaxedSolution {
  objective: number;
  /** Parent per peer (-1: unassigned or the origin). */
  parent: Int32Array;
}

/**
 * Optimum of the layered relaxation (see the header), over the pairs `allowed` admits (default:
 * all pairs).
 */
export function solveRelaxed(inst: Instance, layer: Int32Array, allowed?: (p: number, c: number) => boolean): RelaxedSolution {
  const { n, isChild, slots, hopW, w } = inst;
  const rows: number[] = [];
  for (let c = 0; c < n; c++) if (isChild[c]) rows.push(c);
  const nr = rows.length;
  const colParent: number[] = [];
  const colCost: number[] = [];
  for (let p = 0; p < n; p++) {
    const k = Math.min(slots[p], nr);
    for (let s = 0; s < k; s++) { colParent.push(p); colCost.push(spareCost(w, s, slots[p])); }
  }
  const slotCols = colParent.length;
  const m = slotCols + nr; // one "unassigned" column per row
  const cost = new Float64Array(nr * m).fill(FORBIDDEN);
  for (let r = 0; r < nr; r++) {
    const c = rows[r];
    const row = r * m;
    let lastP = -1;
    let link = 0;
    for (let j = 0; j < slotCols; j++) {
      const p = colParent[j];
      if (p === c || !(layer[p] < layer[c]) || (allowed && !allowed(p, c))) continue;
      if (p !== lastP) { link = pairStatic(inst, p, c) - hopW[c] * (layer[p] + 1); lastP = p; }
      cost[row + j] = -(link - colCost[j]);
    }
    cost[row + slotCols + r] = w.orphan;
  }
  const col = hungarianMin(nr, m, cost);
  const parent = new Int32Array(n).fill(-1);
  for (let r = 0; r < nr; r++) if (col[r] < slotCols) parent[rows[r]] = colParent[col[r]];
  return { objective: relaxedObjective(inst, layer, parent), parent };
}
