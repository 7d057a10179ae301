/**
 * One rendition, one round: input -> indexed instance -> candidates -> placement -> DGS ->
 * plan and diff. index.ts shares the time budget among renditions; exact.ts reuses the
 * internals to measure the round against the exact relaxation.
 */
import { CandidateBuilder, type Candidates } from './candidates.js';
import { Dgs, type DgsStats } from './dgs.js';
import { isCurrent, pairStatic, prepare, type Instance } from './instance.js';
import { Tree } from './tree.js';
import type { CandidateLimits, LinkSpec, RenditionInput, RenditionResult, RttInput, Weights } from './types.js';
import { spareTotal } from './utility.js';

export interface RoundContext {
  w: Weights;
  limits: CandidateLimits;
  random: () => number;
  minGain: number;
  maxPasses: number;
  maxSwitches: number;
  swaps: boolean;
  outOfTime: () => boolean;
  /** For the phase timings only. */
  now?: () => number;
  fallbackRtt?: RttInput;
}

export interface RoundInternals {
  inst: Instance;
  cands: Candidates;
  tree: Tree;
  stats: DgsStats;
}

/** F of utility.ts for the forest in `tree` (depths from the tree). */
export function objective(inst: Instance, cands: Candidates, tree: Tree): number {
  const { n, isChild, hopW, w, slots } = inst;
  const depth = tree.depth;
  let f = 0;
  for (let c = 0; c < n; c++) {
    if (!isChild[c]) continue;
    const p = tree.parent[c];
    if (p < 0) { f -= w.orphan; continue; }
    const ci = cands.cur[c];
    const st = ci >= 0 && cands.parent[c * cands.stride + ci] === p ? cands.stat[c * cands.stride + ci] : pairStatic(inst, p, c);
    f += st - hopW[c] * depth[c];
  }
  for (let p = 0; p < n; p++) f -= spareTotal(w, tree.load[p], slots[p]);
  return f;
}

export function solveRendition(input: RenditionInput, ctx: RoundContext): { result: RenditionResult; internals: RoundInternals } {
  const { w } = ctx;
  const clock = ctx.now ?? (() => 0);
  const t0 = clock();
  const inst = prepare(input, w, ctx.fallbackRtt);
  const tree = Tree.from(inst.initialParent, inst.root, inst.hopW, w.detachedDepth);
  const t1 = clock();
  // placement needs the orphans' lists only; everybody else's are built if switching gets to run
  const builder = new CandidateBuilder(inst, ctx.limits, ctx.random);
  const cands = builder.cands;
  for (let c = 0; c < inst.n; c++) if (inst.isChild[c] && tree.parent[c] < 0) builder.build(c, tree.parent);
  const t2 = clock();
  const objectiveBefore = objective(inst, cands, tree);
  const dgs = new Dgs(inst, cands, tree, {
    minGain: ctx.minGain,
    maxPasses: ctx.maxPasses,
    maxSwitches: ctx.maxSwitches,
    swaps: ctx.swaps,
    limits: ctx.limits,
    outOfTime: ctx.outOfTime,
  });
  dgs.place();
  const objectiveStart = objective(inst, cands, tree);
  const t3 = clock();
  let candidatesMs = t2 - t1;
  if (ctx.maxPasses > 0 && !ctx.outOfTime()) {
    builder.buildAll(tree.parent);
    const t = clock();
    candidatesMs += t - t3;
    dgs.improve();
    // switches can free a slot an unplaced peer could use (only when capacity is short)
    if (hasUnplaced(inst, tree)) dgs.place();
  } else if (ctx.maxPasses > 0) {
    dgs.stats.exhausted = true;
  }
  const t4 = clock();
  const objectiveAfter = objective(inst, cands, tree);

  const { ids, n, isChild, root } = inst;
  const links: LinkSpec[] = [];
  const added: LinkSpec[] = [];
  const unplaced: string[] = [];
  const depth = new Map<string, number>();
  const d = tree.depth;
  for (let v = 0; v < n; v++) {
    depth.set(ids[v], d[v]);
    if (!isChild[v]) continue;
    const p = tree.parent[v];
    if (p < 0) { unplaced.push(ids[v]); continue; }
    const l = { parent: ids[p], child: ids[v] };
    links.push(l);
    if (!isCurrent(inst, p, v)) added.push(l);
  }
  const removed: LinkSpec[] = [];
  for (const l of inst.rawLinks) {
    const c = inst.index.get(l.child);
    const p = inst.index.get(l.parent);
    if (c === undefined || p === undefined || c === root || tree.parent[c] !== p) removed.push({ parent: l.parent, child: l.child });
  }
  const s = dgs.stats;
  return {
    result: {
      rendition: inst.rendition,
      links, added, removed, depth, unplaced,
      objectiveBefore, objectiveStart, objectiveAfter,
      dropped: inst.dropped, placed: s.placed, moves: s.moves, swaps: s.swaps, passes: s.passes, evaluations: s.evaluations,
      converged: s.converged, peers: n,
      phaseMs: ctx.now ? { prepare: t1 - t0, candidates: candidatesMs, place: t3 - t2, improve: t4 - t3 - (candidatesMs - (t2 - t1)) } : null,
    },
    internals: { inst, cands, tree, stats: s },
  };
}

function hasUnplaced(inst: Instance, tree: Tree): boolean {
  for (let c = 0; c < inst.n; c++) if (inst.isChild[c] && tree.parent[c] < 0) return true;
  return false;
}
