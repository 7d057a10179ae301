/**
 * Deep Greedy Switching on the upload tree of one rendition, warm-started from the current links.
 *
 * 1. Placement of orphans (placement.ts): not optional, not budgeted.
 * 2. Switching. In passes: each child's best switch is evaluated (move to a candidate with a
 *    free slot, or swap parents with a child of a full candidate: that child need not list the
 *    first one's parent, its utility there is computed when a bound says it could pay); the
 *    improving ones are applied best first, each re-evaluated just before (earlier switches may
 *    have changed it). The first pass looks at every child, later ones only at the children
 *    around what changed ("dirty"); when those run dry a full pass checks, and a full pass that
 *    finds nothing above minGain ends the round: a local optimum of the move/swap neighborhood.
 *    So does the time budget, checked every few evaluations (the plan is valid at any point).
 * Both keep the forest acyclic (a parent may not be in its new child's subtree: with exact
 * depths that is a walk only when the parent is deeper than the child), respect slots, and
 * never detach an attached child.
 */
import { candIndex, ensureCandidate, type Candidates } from './candidates.js';
import { placeOrphans } from './placement.js';
import { isCurrent, pairStatic, type Instance } from './instance.js';
import type { Tree } from './tree.js';
import type { CandidateLimits } from './types.js';
import { spareCost } from './utility.js';

/** Dirty marking does not walk moved subtrees larger than this. */
const SUBTREE_MARK = 64;

const NONE = 0;
const MOVE = 1;
const SWAP = 2;

export interface DgsOptions {
  minGain: number;
  maxPasses: number;
  /** Moves + swaps applied at most (Infinity: no budget). */
  maxSwitches: number;
  swaps: boolean;
  limits: CandidateLimits;
  /** Returns true when the time budget is spent. */
  outOfTime: () => boolean;
}

export interface DgsStats {
  placed: number;
  moves: number;
  swaps: number;
  passes: number;
  /** Passes that evaluated every child (the others only the dirty ones). */
  fullPasses: number;
  /** Children's best switches evaluated (the solver's unit of work). */
  evaluations: number;
  converged: boolean;
  exhausted: boolean;
}

export class Dgs {
  private bestKind = NONE;
  private bestGain = 0;
  private bestI = -1; // c's entry of its new parent
  private bestX = -1; // swap partner
  private bestJ = -1; // partner's entry of c's old parent
  private ticks = 0;
  readonly stats: DgsStats = { placed: 0, moves: 0, swaps: 0, passes: 0, fullPasses: 0, evaluations: 0, converged: false, exhausted: false };

  /** 1: the child has a current link (stay bonus) to a parent that is not on its list. */
  private strangerStay = new Uint8Array(0);

  constructor(
    private readonly inst: Instance,
    private readonly cands: Candidates,
    private readonly tree: Tree,
    private readonly opts: DgsOptions,
  ) {}

  private timeUp(every: number): boolean {
    if (this.stats.exhausted) return true;
    if (++this.ticks % every === 0 && this.opts.outOfTime()) this.stats.exhausted = true;
    return this.stats.exhausted;
  }

  /** Places every orphan that can have a parent (placement.ts); returns how many were placed. */
  place(): number {
    const placed = placeOrphans(this.inst, this.cands, this.tree, this.opts.limits);
    this.stats.placed += placed;
    return placed;
  }

  // ------------------------------------------------------------------------------- switching

  /**
   * Per parent q, bounds on what one of its children x can gain by taking a swap partner's
   * parent p, one hop shift D = -(c's shift): gain_x <= a(x) + D * msub(x), where
   * a(x) = max(best(x), sameScope [+ stay]) - stat(cur x) bounds x's link terms with any parent
   * (the stay bonus when x has a current link off its list). Over q's
   * children: swapUp[q * 3 + k - 1] = max of a(x) - k * msub(x) for D = -1, -2, -3 (the usual
   * case: c moves up, x down), and for any other D: swapA(q) + D * (D < 0 ? min : max) msub.
   * Computed at each full pass; a child joining q loosens them; anything else going stale can
   * only hide a swap until the next full pass, whose fresh evaluation decides convergence.
   */
  private swapA = new Float64Array(0);
  private swapUp = new Float64Array(0);
  private swapMinM = new Float64Array(0);
  private swapMaxM = new Float64Array(0);

  private swapBounds(): void {
    const { n } = this.inst;
    const { tree } = this;
    if (this.swapA.length !== n) {
      this.swapA = new Float64Array(n);
      this.swapUp = new Float64Array(3 * n);
      this.swapMinM = new Float64Array(n);
      this.swapMaxM = new Float64Array(n);
    }
    this.swapA.fill(-Infinity);
    this.swapUp.fill(-Infinity);
    this.swapMinM.fill(Infinity);
    this.swapMaxM.fill(-Infinity);
    for (let x = 0; x < n; x++) {
      const q = tree.parent[x];
      if (q >= 0) this.loosen(q, x);
    }
  }

  private loosen(q: number, x: number): void {
    const { cands, tree } = this;
    const ci = cands.cur[x];
    // the best stat x could get from any parent: its list's best, or a same-scope stranger
    // (with the stay bonus if x has a current link to a parent not on its list)
    const w = this.inst.w;
    const stranger = w.sameScope + (this.strangerStay[x] ? w.stay : 0);
    const a = ci >= 0 ? Math.max(cands.best[x], stranger) - cands.stat[x * cands.stride + ci] : Infinity;
    if (a > this.swapA[q]) this.swapA[q] = a;
    const m = tree.msub[x];
    if (m < this.swapMinM[q]) this.swapMinM[q] = m;
    if (m > this.swapMaxM[q]) this.swapMaxM[q] = m;
    const up = this.swapUp;
    for (let k = 1; k <= 3; k++) if (a - k * m > up[q * 3 + k - 1]) up[q * 3 + k - 1] = a - k * m;
  }

  /** Upper bound on the gain of a child of q moved by shift D (see swapBounds). */
  private partnerBound(q: number, d: number): number {
    if (d < 0 && d >= -3) return this.swapUp[q * 3 - d - 1];
    return this.swapA[q] + d * (d < 0 ? this.swapMinM[q] : this.swapMaxM[q]);
  }

  /**
   * The best switch for child c (into bestKind/bestGain/...), counting only gains above minGain.
   * Gain of moving c from p to q (depth change D = depth(q) + 1 - depth(c)):
   *   stat(q,c) - stat(p,c) - D * msub(c) + spareCost(load(p) - 1, p) - spareCost(load(q), q)
   * Gain of a swap with x (child of q): both link terms, c's subtree shifts by D and x's by -D;
   * loads do not change.
   */
  private evalBest(c: number): void {
    const { inst, tree, cands, opts } = this;
    const { slots, w } = inst;
    const load = tree.load;
    const msub = tree.msub;
    const stat = cands.stat;
    const cpar = cands.parent;
    const stride = cands.stride;
    this.bestKind = NONE;
    this.bestGain = opts.minGain;
    this.stats.evaluations++;
    const p = tree.parent[c];
    const ci = cands.cur[c];
    if (p < 0 || ci < 0) return;
    const depth = tree.depth;
    const att = tree.att;
    const dc = depth[c];
    const attachedC = att[c] === 1;
    const base = c * stride;
    const sp = stat[base + ci];
    const mc = msub[c];
    const leaveP = spareCost(w, load[p] - 1, slots[p]);
    const half = opts.minGain / 2;
    const cnt = cands.count[c];
    const pScope = inst.scope[p];
    const pc = inst.pcost[p];
    for (let i = 0; i < cnt; i++) {
      if (i === ci) continue;
      const q = cpar[base + i];
      const free = load[q] < slots[q];
      if (!free && (!opts.swaps || !attachedC)) continue;
      if (!att[q]) continue; // not fed from the origin
      const dq = depth[q];
      if (dq > dc && tree.inSubtree(q, c)) continue; // q in c's subtree: a cycle
      const delta = dq + 1 - dc;
      const lg = stat[base + i] - sp - delta * mc;
      if (free) {
        const g = lg + leaveP - spareCost(w, load[q], slots[q]);
        if (g > this.bestGain) { this.bestKind = MOVE; this.bestGain = g; this.bestI = i; }
        continue;
      }
      // a swap gains > minGain only if one side gains > minGain/2: the other side's own
      // evaluation finds the swaps where only it does (when it lists this side's parent; the
      // neighborhood is the candidate lists' anyway)
      if (lg <= half) continue;
      const need = this.bestGain - lg;
      if (this.partnerBound(q, delta) <= need) continue;
      // partners: q's children. x need not list p (a good parent is on few lists, and the
      // children best served by it are rarely the ones that list it): stat(p, x) is then
      // computed on the spot, after a bound from p's parent-only terms says it could pay.
      for (let x = tree.firstChild[q]; x >= 0; x = tree.nextSib[x]) {
        const xs = stat[x * stride + cands.cur[x]];
        const shift = delta * msub[x];
        const ub = (inst.scope[x] === pScope ? w.sameScope : 0) - inst.prio[x] * pc + (isCurrent(inst, p, x) ? w.stay : 0);
        if (ub - xs + shift <= need) continue;
        const j = candIndex(cands, x, p);
        const sx = j >= 0 ? stat[x * stride + j] : pairStatic(inst, p, x);
        const g = lg + sx - xs + shift;
        if (g <= this.bestGain) continue;
        if (tree.inSubtree(p, x)) continue; // p in x's subtree
        this.bestKind = SWAP; this.bestGain = g; this.bestI = i; this.bestX = x; this.bestJ = j;
      }
    }
  }

  private apply(c: number): void {
    const { tree, cands } = this;
    const stride = cands.stride;
    const q = cands.parent[c * stride + this.bestI];
    const p = tree.parent[c];
    if (this.bestKind === MOVE) {
      tree.move(c, q);
      cands.cur[c] = this.bestI;
      this.stats.moves++;
      this.loosen(q, c);
      this.touched(c, p, q, -1);
    } else {
      const x = this.bestX;
      tree.move(c, q);
      tree.move(x, p);
      cands.cur[c] = this.bestI;
      cands.cur[x] = this.bestJ >= 0 ? this.bestJ : ensureCandidate(this.inst, cands, x, p);
      this.stats.swaps++;
      this.loosen(q, c);
      this.loosen(p, x);
      this.touched(c, p, q, x);
    }
  }

  // ---------------------------------------------------------------------------- dirty marks

  /**
   * Which children to look at again after some switches, instead of everybody: the moved
   * children and their subtrees (their depths changed) with every child listing one of them as
   * a candidate (that candidate's depth changed), both parents with their children and every
   * child listing them (a parent's load or its set of children, i.e. of swap partners,
   * changed). Not tracked: mass changes up the ancestor paths, subtrees of more than
   * SUBTREE_MARK nodes. So dirty passes are not complete: when they run dry a full pass
   * follows, and only a full pass that finds nothing declares convergence. Once half the
   * peers are dirty, the next pass is a full one anyway and marking stops.
   */
  private dirty = new Uint8Array(0);
  private dirtyList: number[] = [];
  private saturated = false;
  private refStart: Int32Array | null = null;
  /** Children listing each parent (CSR over the candidate lists as switching starts). */
  private refs = new Int32Array(0);
  private scratch: number[] = [];

  private buildRefs(): void {
    const { n } = this.inst;
    const { cands } = this;
    const start = new Int32Array(n + 1);
    for (let c = 0; c < n; c++) {
      const base = c * cands.stride;
      for (let i = 0; i < cands.count[c]; i++) start[cands.parent[base + i] + 1]++;
    }
    for (let v = 0; v < n; v++) start[v + 1] += start[v];
    const fill = start.slice(0, n);
    const refs = new Int32Array(start[n]);
    for (let c = 0; c < n; c++) {
      const base = c * cands.stride;
      for (let i = 0; i < cands.count[c]; i++) refs[fill[cands.parent[base + i]]++] = c;
    }
    this.refStart = start;
    this.refs = refs;
  }

  private mark(v: number): void {
    if (this.dirty[v] || !this.inst.isChild[v]) return;
    this.dirty[v] = 1;
    this.dirtyList.push(v);
  }

  private markReferrers(v: number): void {
    if (this.saturated) return;
    const start = this.refStart!;
    for (let k = start[v]; k < start[v + 1]; k++) this.mark(this.refs[k]);
    if (this.dirtyList.length > this.inst.n >> 1) this.saturated = true;
  }

  private markFamily(v: number): void {
    this.mark(v);
    for (let x = this.tree.firstChild[v]; x >= 0; x = this.tree.nextSib[x]) this.mark(x);
  }

  private touched(c: number, p: number, q: number, x: number): void {
    if (this.saturated) return;
    this.markFamily(p);
    this.markFamily(q);
    this.markReferrers(p);
    this.markReferrers(q);
    for (const m of x >= 0 ? [c, x] : [c]) {
      const sub = this.tree.subtree(m, this.scratch);
      if (sub.length > SUBTREE_MARK) { this.mark(m); continue; }
      for (const v of sub) { this.mark(v); this.markReferrers(v); }
    }
  }

  /** Switching passes until a local optimum, maxPasses, or the budget. Every list must be built. */
  improve(): void {
    const { inst, tree, opts } = this;
    const { n, isChild } = inst;
    if (this.dirty.length !== n) this.dirty = new Uint8Array(n);
    this.buildRefs(); // the lists do not change while switching
    const { inputParent, extraInput } = inst;
    this.strangerStay = new Uint8Array(n);
    for (let x = 0; x < n; x++) if (inputParent[x] >= 0 && candIndex(this.cands, x, inputParent[x]) < 0) this.strangerStay[x] = 1;
    if (extraInput) for (const key of extraInput) this.strangerStay[key % n] = 1;
    const who: number[] = [];
    const gain: number[] = [];
    const order: number[] = [];
    const pending: number[] = [];
    let full = true;
    while (this.stats.passes < opts.maxPasses) {
      if (this.timeUp(1)) return;
      this.stats.passes++;
      if (full) {
        this.stats.fullPasses++;
        tree.recompute(); // float drift in msub
        this.swapBounds();
      }
      who.length = 0;
      gain.length = 0;
      // the children to evaluate: everybody, or last pass's dirty ones
      pending.length = 0;
      if (!full) for (const v of this.dirtyList) pending.push(v);
      for (const v of this.dirtyList) this.dirty[v] = 0;
      this.dirtyList.length = 0;
      this.saturated = false;
      const count = full ? n : pending.length;
      for (let k = 0; k < count; k++) {
        const c = full ? k : pending[k];
        if (!isChild[c]) continue;
        if (this.timeUp(256)) return;
        this.evalBest(c);
        if (this.bestKind !== NONE) { who.push(c); gain.push(this.bestGain); }
      }
      order.length = 0;
      for (let i = 0; i < who.length; i++) order.push(i);
      order.sort((a, b) => gain[b] - gain[a] || who[a] - who[b]);
      let applied = 0;
      for (const k of order) {
        if (this.timeUp(16)) return;
        if (this.stats.moves + this.stats.swaps >= opts.maxSwitches) return; // the churn budget: best gains went first
        const c = who[k];
        this.evalBest(c);
        if (this.bestKind === NONE) continue;
        this.apply(c);
        applied++;
      }
      if (applied === 0) {
        if (full) { this.stats.converged = true; return; }
        full = true; // dirty passes ran dry: a full pass decides
      } else {
        full = this.saturated;
      }
    }
  }
}
