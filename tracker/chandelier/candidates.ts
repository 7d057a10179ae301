/**
 * Candidate parents per child: a bounded list (never all pairs), scoped. A child's list holds
 *   1. its current parent (staying must always be possible), and the origin;
 *   2. the best pre-ranked parents of its own scope for its NAT type ("top");
 *   3. parents of its own scope sampled in proportion to their slots ("random": spreads the
 *      children over all the scope's capacity, so the best few parents are not everybody's only
 *      options);
 *   4. only if its scope cannot serve its own demand (fewer slots than children in the scope):
 *      the same two over all scopes ("wide");
 *   5. measured neighbors (RttTable samples), lowest RTT first: already connected, cheap to use.
 * The pre-rank is parent-only (trust, churn, slots) plus the NAT pair term, so one sorted list
 * per scope serves every child of that scope and NAT type. The stat part of each candidate's
 * utility is computed once here (one RTT lookup per pair).
 */
import { isCurrent, NAT_COUNT, pairStatic, type Instance } from './instance.js';
import { staticUtility } from './utility.js';
import type { CandidateLimits } from './types.js';

export const DEFAULT_LIMITS: Readonly<CandidateLimits> = Object.freeze({
  top: 4,
  random: 6,
  wideTop: 2,
  wideRandom: 4,
  neighbors: 4,
  frontier: 4,
  choices: 1,
});

export function resolveLimits(partial?: Partial<CandidateLimits>): CandidateLimits {
  const l = { ...DEFAULT_LIMITS, ...partial };
  for (const [k, v] of Object.entries(l)) {
    if (!Number.isInteger(v) || v < (k === 'choices' ? 1 : 0) || v > 64) throw new TypeError(`candidate limit ${k} must be an integer 0..64`);
  }
  return l;
}

export interface Candidates {
  readonly stride: number;
  readonly count: Uint16Array;
  /** Candidate parents of child c at [c * stride, c * stride + count[c]). */
  readonly parent: Int32Array;
  /** stat(p, c) of each entry. */
  readonly stat: Float64Array;
  /** Entry of c's current parent (-1: none). */
  readonly cur: Int32Array;
  /** Largest stat in c's list (bounds what c can gain from any parent: prunes swaps). */
  readonly best: Float64Array;
}

/** Entry index of p in c's list, or -1. */
export function candIndex(cands: Candidates, c: number, p: number): number {
  const base = c * cands.stride;
  const cnt = cands.count[c];
  const par = cands.parent;
  for (let i = 0; i < cnt; i++) if (par[base + i] === p) return i;
  return -1;
}

/** Entry of p in c's list, adding it (over the last entry that is not the current parent) if missing. */
export function ensureCandidate(inst: Instance, cands: Candidates, c: number, p: number): number {
  const found = candIndex(cands, c, p);
  if (found >= 0) return found;
  const base = c * cands.stride;
  let i = cands.count[c];
  if (i < cands.stride) cands.count[c] = i + 1;
  else {
    i = cands.stride - 1;
    if (cands.cur[c] === i) i--;
  }
  cands.parent[base + i] = p;
  const st = (cands.stat[base + i] = pairStatic(inst, p, c));
  // an overwritten entry may have been the best: recompute
  let b = -Infinity;
  for (let k = 0; k < cands.count[c]; k++) b = Math.max(b, cands.stat[base + k]);
  cands.best[c] = Math.max(b, st);
  return i;
}

/** Per scope: 1 if its peers have at least as many slots as it has children (it can serve itself). */
export function scopeServes(inst: Instance): Uint8Array {
  const { n, isChild, scope, slots } = inst;
  const supply = new Float64Array(inst.scopeCount);
  const demand = new Float64Array(inst.scopeCount);
  for (let v = 0; v < n; v++) {
    if (!isChild[v]) continue;
    supply[scope[v]] += slots[v];
    demand[scope[v]]++;
  }
  const out = new Uint8Array(inst.scopeCount);
  for (let s = 0; s < inst.scopeCount; s++) out[s] = supply[s] >= demand[s] ? 1 : 0;
  return out;
}

/**
 * The scoping rule as a predicate (what any candidate list may hold): the origin, the child's
 * scope, any scope when the child's scope cannot serve itself, its current parent, a measured
 * neighbor. The exact reference uses it to compare DGS with the best plan under the same rule.
 */
export function scopeRule(inst: Instance): (p: number, c: number) => boolean {
  const serves = scopeServes(inst);
  const { root, scope, nbr } = inst;
  return (p, c) => {
    if (p === root || scope[p] === scope[c] || !serves[scope[c]] || isCurrent(inst, p, c)) return true;
    if (!nbr) return false;
    for (let k = nbr.start[c]; k < nbr.start[c + 1]; k++) if (nbr.idx[k] === p) return true;
    return false;
  };
}

/**
 * Builds candidate lists child by child: the orphans first (placement needs them, and it is
 * not budgeted), everybody else only if switching gets to run. Each child's random draws come
 * from its own stream (seeded by one draw of the injected randomness and a hash of its id), so
 * a child's list does not depend on which children were built before it, nor on the order of
 * the input: an unchanged instance gets the same lists.
 */
export class CandidateBuilder {
  readonly cands: Candidates;
  private readonly built: Uint8Array;
  private readonly rank: Float64Array;
  private readonly global: Int32Array;
  private readonly byScope: Int32Array[];
  private readonly globalCum: Float64Array;
  private readonly scopeCum: Float64Array[];
  private readonly serves: Uint8Array;
  private readonly tops = new Map<number, Int32Array>();
  private readonly list: ListBuilder;
  private readonly seed: number;
  private state = 0;
  private readonly next = (): number => {
    // mulberry32 on this builder's current child stream
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };

  constructor(
    private readonly inst: Instance,
    private readonly limits: CandidateLimits,
    random: () => number,
  ) {
    const { n, root, slots, scope, w } = inst;
    // +2: current parent and origin; +1: room for one parent found by placement
    const stride = Math.max(3, 2 + limits.top + limits.random + limits.wideTop + limits.wideRandom + limits.neighbors + 1);
    this.cands = {
      stride,
      count: new Uint16Array(n),
      parent: new Int32Array(n * stride),
      stat: new Float64Array(n * stride),
      cur: new Int32Array(n).fill(-1),
      best: new Float64Array(n).fill(-Infinity),
    };
    this.built = new Uint8Array(n);
    this.seed = Math.floor(random() * 4294967296) >>> 0;

    // parent pool, pre-ranked by what makes a parent good for anyone: trusted, not a browser,
    // many slots (they end up shallow). Deliberately not by the current tree (depth, load): the
    // lists must not change when only the links did, or re-running a round on an unchanged
    // instance would find "new" switches instead of standing still.
    const rank = (this.rank = new Float64Array(n));
    const pool: number[] = [];
    for (let p = 0; p < n; p++) {
      if (p === root || slots[p] <= 0) continue;
      rank[p] = -inst.pcost[p] + 0.5 * w.hop * Math.log2(1 + slots[p]);
      pool.push(p);
    }
    pool.sort((a, b) => rank[b] - rank[a] || a - b);
    this.global = Int32Array.from(pool);
    const sizes = new Int32Array(inst.scopeCount);
    for (const p of pool) sizes[scope[p]]++;
    this.byScope = Array.from({ length: inst.scopeCount }, (_, k) => new Int32Array(sizes[k]));
    const fill = new Int32Array(inst.scopeCount);
    for (const p of pool) this.byScope[scope[p]][fill[scope[p]]++] = p;
    const cumulative = (list: Int32Array): Float64Array => {
      const cum = new Float64Array(list.length);
      let t = 0;
      for (let i = 0; i < list.length; i++) cum[i] = t += slots[list[i]];
      return cum;
    };
    this.globalCum = cumulative(this.global);
    this.scopeCum = this.byScope.map(cumulative);
    this.serves = scopeServes(inst);
    this.list = new ListBuilder(n, stride, this.cands.parent);
  }

  /** Top list per (scope or global, child NAT type), made on first use. */
  private topOf(list: Int32Array, key: number, childNat: number, want: number): Int32Array {
    let t = this.tops.get(key);
    if (t) return t;
    t = topList(list, this.rank, this.inst.nat, this.inst.natTable, childNat, want + 1); // +1: the child itself may be in it
    this.tops.set(key, t);
    return t;
  }

  /** Builds c's list (once) around its parent in `parent` (-1: none). */
  build(c: number, parent: Int32Array): void {
    if (this.built[c] || !this.inst.isChild[c]) return;
    this.built[c] = 1;
    const { inst, limits, list, cands } = this;
    const { root, scope, nat, w, prio, pcost, natTable } = inst;
    this.state = (this.seed ^ hashId(inst.ids[c])) >>> 0;
    list.start(c);
    cands.cur[c] = -1;
    const p0 = parent[c];
    if (p0 >= 0) { list.add(p0); cands.cur[c] = 0; }
    list.add(root);
    const s = scope[c];
    const own = this.byScope[s];
    const ownTop = this.topOf(own, (s + 1) * NAT_COUNT + nat[c], nat[c], limits.top);
    for (let i = 0, k = 0; i < ownTop.length && k < limits.top; i++) if (ownTop[i] !== c) { list.add(ownTop[i]); k++; }
    sample(inst, c, own, this.scopeCum[s], limits.random, limits.choices, this.next, list);
    if (!this.serves[s]) {
      const wideTop = this.topOf(this.global, nat[c], nat[c], limits.wideTop);
      for (let i = 0, k = 0; i < wideTop.length && k < limits.wideTop; i++) if (wideTop[i] !== c) { list.add(wideTop[i]); k++; }
      sample(inst, c, this.global, this.globalCum, limits.wideRandom, limits.choices, this.next, list);
    }
    if (inst.nbr && limits.neighbors > 0) addNeighbors(inst, c, limits.neighbors, list);
    const cnt = (cands.count[c] = list.count);
    const base = c * cands.stride;
    let b = -Infinity;
    for (let i = 0; i < cnt; i++) {
      const p = cands.parent[base + i];
      const st = staticUtility(w, prio[c], inst.rtt(p, c), natTable[nat[p] * NAT_COUNT + nat[c]], pcost[p], scope[p] === scope[c], isCurrent(inst, p, c));
      cands.stat[base + i] = st;
      if (st > b) b = st;
    }
    cands.best[c] = b;
  }

  /** Builds every list not built yet, each around the child's parent in `parent`. */
  buildAll(parent: Int32Array): void {
    for (let c = 0; c < this.inst.n; c++) this.build(c, parent);
  }

  isBuilt(c: number): boolean {
    return this.built[c] === 1;
  }
}

/** Every child's list at once (tests and tools; the round builds lazily). */
export function buildCandidates(inst: Instance, parent0: Int32Array, limits: CandidateLimits, random: () => number): Candidates {
  const b = new CandidateBuilder(inst, limits, random);
  b.buildAll(parent0);
  return b.cands;
}

/** FNV-1a of an id: the per-child random stream's seed. */
function hashId(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * The `want` best of a rank-sorted list for a child of NAT type childNat (rank - NAT term).
 * Stops once `want` direct (NAT term 0) entries were seen: nothing after them can rank higher.
 */
function topList(list: Int32Array, rank: Float64Array, nat: Uint8Array, natTable: Float64Array, childNat: number, want: number): Int32Array {
  const best: number[] = [];
  const score: number[] = [];
  let direct = 0;
  for (let i = 0; i < list.length && direct < want; i++) {
    const p = list[i];
    const cost = natTable[nat[p] * NAT_COUNT + childNat];
    if (cost === 0) direct++;
    const s = rank[p] - cost;
    if (best.length === want && s <= score[want - 1]) continue;
    let j = best.length < want ? best.length : want - 1;
    while (j > 0 && score[j - 1] < s) { best[j] = best[j - 1]; score[j] = score[j - 1]; j--; }
    best[j] = p;
    score[j] = s;
  }
  return Int32Array.from(best);
}

/**
 * `k` draws from a list in proportion to slots (cumulative array, binary search); each draw is
 * the better of `choices` tries by the pair terms (RTT and NAT), "power of choices": the
 * lists get close parents without looking at all of them.
 */
function sample(inst: Instance, c: number, list: Int32Array, cum: Float64Array, k: number, choices: number, random: () => number, out: ListBuilder): void {
  const len = list.length;
  if (len === 0 || k === 0) return;
  const total = cum[len - 1];
  const w = inst.w;
  for (let t = 0; t < k; t++) {
    let best = -1;
    let bestCost = Infinity;
    for (let h = 0; h < choices; h++) {
      const x = random() * total;
      let lo = 0;
      let hi = len - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cum[mid] > x) hi = mid;
        else lo = mid + 1;
      }
      const p = list[lo];
      if (choices === 1) { best = p; break; }
      const cost = (w.rttPer100ms * inst.rtt(p, c)) / 100 + inst.natTable[inst.nat[p] * NAT_COUNT + inst.nat[c]];
      if (cost < bestCost) { bestCost = cost; best = p; }
    }
    out.add(best);
  }
}

/** Up to k measured neighbors with slots, lowest RTT first. */
function addNeighbors(inst: Instance, c: number, k: number, out: ListBuilder): void {
  const { start, idx, ms } = inst.nbr!;
  const lo = start[c];
  const hi = start[c + 1];
  if (hi === lo) return;
  const pick: number[] = [];
  for (let i = lo; i < hi; i++) if (inst.slots[idx[i]] > 0 && idx[i] !== inst.root) pick.push(i);
  pick.sort((a, b) => ms[a] - ms[b] || idx[a] - idx[b]);
  for (let i = 0; i < pick.length && i < k; i++) out.add(idx[pick[i]]);
}

/** Appends distinct parents to one child's list (one object for all children: no closures). */
class ListBuilder {
  private readonly seen: Int32Array;
  private c = -1;
  private base = 0;
  count = 0;
  constructor(n: number, private readonly stride: number, private readonly out: Int32Array) {
    this.seen = new Int32Array(n).fill(-1);
  }
  start(c: number): void {
    this.c = c;
    this.base = c * this.stride;
    this.count = 0;
  }
  /** Keeps the last entry free for a parent placement may add. */
  add(p: number): void {
    if (p < 0 || p === this.c || this.seen[p] === this.c || this.count >= this.stride - 1) return;
    this.seen[p] = this.c;
    this.out[this.base + this.count++] = p;
  }
}
