/**
 * The Chandelier optimizer (DESIGN.md §4): one call rearranges the upload trees of a channel's
 * renditions. Pure: plain data in, plain data out; time and randomness are injected.
 *
 *   const plan = optimize({ renditions: [{ rendition: '360p', originId, peers, currentLinks }] },
 *                         { now: monotonicMs, budgetMs: 50 });   // the caller injects its clock
 *   plan.renditions[0].added / .removed  -> what to tell the peers
 *
 * `Chandelier` keeps the last plan per rendition and warm-starts the next round from it when a
 * round's input carries no currentLinks.
 */
import { resolveLimits, scopeRule } from './candidates.js';
import { relaxedObjective, solveRelaxed } from './exact.js';
import { solveRendition, type RoundContext } from './round.js';
import type { LinkSpec, OptimizeInput, OptimizeOptions, OptimizeResult, RenditionInput, RenditionResult } from './types.js';
import { resolveWeights } from './utility.js';

export * from './types.js';
export { DEFAULT_WEIGHTS, linkUtility, type LinkFacts } from './utility.js';
export { DEFAULT_LIMITS } from './candidates.js';
export { hungarianMin } from './exact.js';

const DEFAULT_BUDGET_MS = 50;
const DEFAULT_SEED = 0x5eed_c4a1;

/** mulberry32: the default randomness, seeded (same input, same plan). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function context(opts: OptimizeOptions, random: () => number, outOfTime: () => boolean, input: OptimizeInput | null): RoundContext {
  const minGain = opts.minGain ?? 0.05;
  const maxPasses = opts.maxPasses ?? 50;
  const maxSwitches = opts.maxSwitches ?? Infinity;
  if (!(maxSwitches === Infinity || (Number.isInteger(maxSwitches) && maxSwitches >= 0))) throw new TypeError('maxSwitches must be an integer >= 0');
  if (!(minGain >= 0 && Number.isFinite(minGain))) throw new TypeError('minGain must be a finite number >= 0');
  if (!(Number.isInteger(maxPasses) && maxPasses >= 0)) throw new TypeError('maxPasses must be an integer >= 0');
  return {
    w: resolveWeights(opts.weights),
    limits: resolveLimits(opts.candidates),
    random,
    minGain,
    maxPasses,
    maxSwitches,
    swaps: opts.swaps ?? true,
    outOfTime,
    now: opts.now,
    fallbackRtt: input?.rtt,
  };
}

/**
 * One round over every rendition of the input. The budget (opts.budgetMs, by opts.now) is
 * shared among renditions in proportion to their peers; placement of orphans always completes
 * (a valid plan matters more than the budget: budgetExhausted tells when that alone took longer),
 * switching stops when the budget is spent.
 */
export function optimize(input: OptimizeInput, opts: OptimizeOptions = {}): OptimizeResult {
  if (!input || !Array.isArray(input.renditions)) throw new TypeError('input.renditions must be an array');
  const now = opts.now;
  const budget = opts.budgetMs ?? DEFAULT_BUDGET_MS;
  if (!(budget >= 0)) throw new TypeError('budgetMs must be >= 0');
  const random = opts.random ?? seededRandom(DEFAULT_SEED);
  const t0 = now ? now() : 0;
  const total = input.renditions.reduce((s, r) => s + (Array.isArray(r?.peers) ? r.peers.length : 0), 0);
  let before = 0;
  let exhausted = false;
  const results: RenditionResult[] = [];
  for (const r of input.renditions) {
    before += Array.isArray(r?.peers) ? r.peers.length : 0;
    const deadline = t0 + (total > 0 ? (budget * before) / total : budget);
    const outOfTime = now ? () => now() >= deadline : () => false;
    const ctx = context(opts, random, outOfTime, input);
    const { result, internals } = solveRendition(r, ctx);
    if (internals.stats.exhausted) exhausted = true;
    results.push(result);
  }
  const solveMs = now ? now() - t0 : null;
  if (now && solveMs! > budget) exhausted = true;
  return {
    renditions: results,
    solveMs,
    budgetExhausted: exhausted,
    moves: results.reduce((s, r) => s + r.moves, 0),
    swaps: results.reduce((s, r) => s + r.swaps, 0),
    placed: results.reduce((s, r) => s + r.placed, 0),
  };
}

/** Keeps the previous plan per rendition for warm starts. */
export class Chandelier {
  private readonly plans = new Map<string, LinkSpec[]>();
  private readonly random: () => number;

  constructor(private readonly opts: OptimizeOptions = {}) {
    // one stream across rounds: each round samples fresh random candidates (exploration),
    // and the stay bonus keeps that from moving anything that is fine where it is
    this.random = opts.random ?? seededRandom(DEFAULT_SEED);
  }

  /** One round; a rendition without currentLinks starts from this object's last plan for it. */
  round(input: OptimizeInput): OptimizeResult {
    const renditions = input.renditions.map((r) =>
      r.currentLinks !== undefined ? r : { ...r, currentLinks: this.plans.get(r.rendition) ?? [] },
    );
    const res = optimize({ ...input, renditions }, { ...this.opts, random: this.random });
    for (const r of res.renditions) this.plans.set(r.rendition, r.links);
    return res;
  }

  /** The last plan of a rendition (empty before the first round). */
  plan(rendition: string): readonly LinkSpec[] {
    return this.plans.get(rendition) ?? [];
  }

  /** Forgets a rendition (it ended) or everything. */
  forget(rendition?: string): void {
    if (rendition === undefined) this.plans.clear();
    else this.plans.delete(rendition);
  }
}

/** How far a DGS round ends from the exact optimum of its layered relaxation (exact.ts). */
export interface GapReport {
  peers: number;
  children: number;
  /** F of the DGS plan, recomputed in the relaxation (equals result.objectiveAfter). */
  dgs: number;
  /** Optimum of the relaxation with DGS's layers, under the scoping rule (Hungarian). */
  exact: number;
  /** exact - dgs (>= 0 up to rounding): what the search leaves. */
  gap: number;
  gapPerChild: number;
  /** 100 * gap / |exact|. */
  gapPct: number;
  /** The same without the scoping rule (all pairs allowed): search + the price of scoping. */
  exactUnscoped: number;
  gapUnscopedPct: number;
  dgsUnplaced: number;
  /** Time of the two exact solves by opts.now (null without a clock). */
  exactMs: number | null;
}

/**
 * Runs one DGS round on a rendition and the exact reference on the same instance. For small
 * instances only (the Hungarian algorithm is O(n^2 m)): throws above `maxPeers` (default 1000).
 */
export function measureGap(
  input: RenditionInput,
  opts: OptimizeOptions & { fallbackRtt?: OptimizeInput['rtt']; maxPeers?: number } = {},
): { result: RenditionResult; gap: GapReport } {
  const max = opts.maxPeers ?? 1000;
  if (input.peers.length > max) throw new RangeError(`measureGap is for small instances (${input.peers.length} > ${max} peers)`);
  const now = opts.now;
  const budget = opts.budgetMs ?? DEFAULT_BUDGET_MS;
  const t0 = now ? now() : 0;
  const outOfTime = now ? () => now() >= t0 + budget : () => false;
  const ctx = context(opts, opts.random ?? seededRandom(DEFAULT_SEED), outOfTime, { renditions: [], rtt: opts.fallbackRtt });
  const { result, internals } = solveRendition(input, ctx);
  const { inst, tree } = internals;
  const layer = tree.depth.slice();
  const dgsParent = tree.parent.slice();
  const rule = scopeRule(inst);
  const t1 = now ? now() : 0;
  const scoped = solveRelaxed(inst, layer, (p, c) => p === dgsParent[c] || rule(p, c));
  const unscoped = solveRelaxed(inst, layer);
  const exactMs = now ? now() - t1 : null;
  let children = 0;
  for (let c = 0; c < inst.n; c++) if (inst.isChild[c]) children++;
  const dgs = relaxedObjective(inst, layer, dgsParent);
  const gap = scoped.objective - dgs;
  const pct = (x: number, ref: number): number => (ref !== 0 ? (100 * x) / Math.abs(ref) : 0);
  return {
    result,
    gap: {
      peers: inst.n,
      children,
      dgs,
      exact: scoped.objective,
      gap,
      gapPerChild: children > 0 ? gap / children : 0,
      gapPct: pct(gap, scoped.objective),
      exactUnscoped: unscoped.objective,
      gapUnscopedPct: pct(unscoped.objective - dgs, unscoped.objective),
      dgsUnplaced: result.unplaced.length,
      exactMs,
    },
  };
}
