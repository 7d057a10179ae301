/**
 * Placement of orphans: children with no parent (their parent left, or they are new), each with
 * its subtree. Not optional and not budgeted: the plan must give every child a parent it can
 * have. Greedy, heaviest subtree first (it loses most per hop), each on the best attached parent
 * with a free slot among its candidates and the shallow end of its scope's frontier (attached
 * parents with free slots, in BFS order); only when its scope has no free slot left does it look
 * at every scope's frontier (widening). When nothing attached is free but the orphan's own
 * detached subtree has a free slot, it takes the place of the lightest child of a full
 * candidate parent, which moves into that free slot (so the count of attached peers only grows).
 * Last resort: a free slot of another detached tree.
 */
import { ensureCandidate, type Candidates } from './candidates.js';
import { pairStatic, type Instance } from './instance.js';
import type { Tree } from './tree.js';
import type { CandidateLimits } from './types.js';
import { spareCost } from './utility.js';

/** Places every orphan that can have a parent; returns how many were placed. */
export function placeOrphans(inst: Instance, cands: Candidates, tree: Tree, limits: CandidateLimits): number {
  const { n, root, isChild, slots, scope } = inst;
  const orphans: number[] = [];
  for (let c = 0; c < n; c++) if (isChild[c] && tree.parent[c] < 0) orphans.push(c);
  if (orphans.length === 0) return 0;
  orphans.sort((a, b) => tree.msub[b] - tree.msub[a] || a - b);

  // frontiers: attached parents with free slots, shallow first (BFS from the origin)
  const load = tree.load;
  const global = new Frontier();
  const byScope = Array.from({ length: inst.scopeCount }, () => new Frontier());
  const push = (v: number): void => {
    if (load[v] < slots[v]) { global.push(v); byScope[scope[v]].push(v); }
  };
  for (const v of tree.subtree(root)) push(v);
  const sub: number[] = [];
  let anyFree: Frontier | null = null;
  const F = Math.max(1, limits.frontier);
  let placed = 0;
  let c = -1;
  let bestQ = -1;
  let bestV = -Infinity;
  let mc = 0;
  const consider = (q: number, st: number): void => {
    if (load[q] >= slots[q] || q === c) return;
    if (!tree.att[q] || tree.inSubtree(q, c)) return;
    const v = st - mc * (tree.depth[q] + 1) - spareCost(inst.w, load[q], slots[q]);
    if (v > bestV) { bestV = v; bestQ = q; }
  };
  const scan = (fr: Frontier): void => {
    const items = fr.items;
    for (let i = fr.find(0), found = 0; i < items.length && found < F; i = fr.find(i + 1)) {
      const q = items[i];
      if (load[q] >= slots[q]) { fr.kill(i); continue; } // slots only fill up during placement
      found++;
      consider(q, pairStatic(inst, q, c));
    }
  };

  for (const orphan of orphans) {
    c = orphan;
    bestQ = -1;
    bestV = -Infinity;
    mc = tree.msub[c];
    const base = c * cands.stride;
    for (let i = 0; i < cands.count[c]; i++) consider(cands.parent[base + i], cands.stat[base + i]);
    scan(byScope[scope[c]]);
    if (bestQ < 0) scan(global); // the scope cannot serve: widen

    if (bestQ < 0 && displace(inst, cands, tree, c, sub)) {
      placed++;
      for (const v of tree.subtree(c, sub)) push(v);
      continue;
    }
    if (bestQ < 0) {
      // last resort: a free slot in another detached tree (still a P2P feed, if HTTP-fed at its top)
      if (!anyFree) {
        anyFree = new Frontier();
        for (let v = 0; v < n; v++) if (load[v] < slots[v]) anyFree.push(v);
      }
      const items = anyFree.items;
      for (let i = anyFree.find(0); i < items.length; i = anyFree.find(i + 1)) {
        const q = items[i];
        if (load[q] >= slots[q]) { anyFree.kill(i); continue; }
        if (!tree.inSubtree(q, c)) { bestQ = q; break; }
      }
    }
    if (bestQ < 0) continue;
    tree.move(c, bestQ);
    cands.cur[c] = ensureCandidate(inst, cands, c, bestQ);
    placed++;
    if (tree.att[c]) for (const v of tree.subtree(c, sub)) push(v);
  }
  return placed;
}

/**
 * Nothing attached has a free slot, but c's detached subtree does (at y): c takes the place of
 * the lightest child x of its best full attached candidate, and x moves to y.
 */
function displace(inst: Instance, cands: Candidates, tree: Tree, c: number, sub: number[]): boolean {
  const { slots } = inst;
  let y = -1;
  for (const v of tree.subtree(c, sub)) if (tree.load[v] < slots[v]) { y = v; break; }
  if (y < 0) return false;
  let bestQ = -1;
  let bestV = -Infinity;
  const base = c * cands.stride;
  for (let i = 0; i < cands.count[c]; i++) {
    const q = cands.parent[base + i];
    if (tree.firstChild[q] < 0) continue;
    if (!tree.att[q] || tree.inSubtree(q, c)) continue;
    const v = cands.stat[base + i] - tree.msub[c] * (tree.depth[q] + 1);
    if (v > bestV) { bestV = v; bestQ = q; }
  }
  if (bestQ < 0) return false;
  let x = -1;
  for (let k = tree.firstChild[bestQ]; k >= 0; k = tree.nextSib[k]) if (x < 0 || tree.msub[k] < tree.msub[x]) x = k;
  tree.move(x, y);
  cands.cur[x] = ensureCandidate(inst, cands, x, y);
  tree.move(c, bestQ);
  cands.cur[c] = ensureCandidate(inst, cands, c, bestQ);
  return true;
}

/**
 * An append-only list of parents that had a free slot when added, scanned from the front;
 * entries found full are skipped for good (during placement slots only fill up) through
 * path-compressed next pointers, so repeated scans do not walk over them again.
 */
class Frontier {
  readonly items: number[] = [];
  private readonly next: number[] = [];

  push(v: number): void {
    this.next.push(this.items.length);
    this.items.push(v);
  }

  /** First index >= i not known to be full (items.length if none). */
  find(i: number): number {
    const next = this.next;
    let r = i;
    while (r < next.length && next[r] !== r) r = next[r];
    while (i < next.length && next[i] !== i) { const t = next[i]; next[i] = r; i = t; }
    return r;
  }

  kill(i: number): void {
    this.next[i] = i + 1;
  }
}
