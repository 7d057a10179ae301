/**
 * Input and output of the Chandelier optimizer (DESIGN.md §4). Plain data in, plain data out:
 * the tracker fills the input from peer reports, the simulator from its world. Nothing here
 * holds a socket, a timer or a clock; time and randomness come in as functions (OptimizeOptions).
 */
import type { NatType } from '../nat.js';
import type { PeerKind } from '../../peer/core/types.js';

export type { NatType, PeerKind };

/** One peer as seen by one rendition's tree. */
export interface PeerInput {
  id: string;
  kind: PeerKind;
  /**
   * Upload slots this peer can give to this rendition: a slot is one rendition bitrate of
   * measured upload (a peer serving several renditions has its upload divided among them by the
   * caller). Non-integers are floored, negatives count as 0.
   */
  uploadSlots: number;
  natType: NatType;
  /** Locality scope (ISP, region...). Candidate parents come from the same scope first. */
  scope: string;
  /** Playback buffer ahead of the playhead, ms. Low buffers get priority for good parents. */
  bufferHealthMs: number;
  /** 0..1: how well this peer has served as a parent (1 = never failed, 0 = do not use). */
  trust: number;
  /** Offline peers are ignored: their links are dropped and their children re-placed. */
  online: boolean;
}

/** An upload link: `parent` pushes this rendition's pieces to `child`. */
export interface LinkSpec {
  parent: string;
  child: string;
}

/** RTT estimate as a function (simulator: coordinates; tracker: anything it derives). */
export type RttFn = (a: string, b: string) => number;

/**
 * RTT estimate as sparse data: measured samples (peers report RTTs to their neighbors; symmetric)
 * and defaults for pairs never measured.
 */
export interface RttTable {
  defaultMs: number;
  /** Default for unmeasured pairs in the same scope (defaults to defaultMs). */
  sameScopeMs?: number;
  samples?: ReadonlyArray<readonly [a: string, b: string, ms: number]>;
}

/**
 * RTT from network coordinates (Vivaldi-style, which peers can compute and report): baseMs +
 * msPerUnit * euclidean distance. Resolved once per peer, so pairs cost no lookups.
 */
export interface RttCoordinates {
  coords: ReadonlyMap<string, readonly number[]> | Readonly<Record<string, readonly number[]>>;
  baseMs?: number;
  msPerUnit?: number;
  /** For pairs where a peer has no coordinates. */
  defaultMs: number;
}

export type RttInput = RttFn | RttTable | RttCoordinates;

/** One rendition of a channel: one tree rooted at the origin. */
export interface RenditionInput {
  rendition: string;
  /** The origin's root peer for this rendition; must be in `peers`. */
  originId: string;
  peers: ReadonlyArray<PeerInput>;
  /**
   * Links in place now (parent -> child). Invalid ones (a party offline or unknown, a parent
   * over its slots, a second parent for the same child, cycles) are dropped on input. Omitted in
   * `Chandelier.round`: the previous round's plan is used.
   */
  currentLinks?: ReadonlyArray<LinkSpec>;
  /** Overrides OptimizeInput.rtt for this rendition. */
  rtt?: RttInput;
}

export interface OptimizeInput {
  channel?: string;
  renditions: ReadonlyArray<RenditionInput>;
  /** Default RTT source (100 ms everywhere when absent). */
  rtt?: RttInput;
}

/**
 * Utility weights, in "points": 1 point = one extra hop of delay for an ordinary healthy leaf
 * child. See utility.ts for what each term means and why it has its default value.
 */
export interface Weights {
  hop: number;
  massPerSlot: number;
  massSlotCap: number;
  rttPer100ms: number;
  relay: number;
  natUnknown: number;
  sameScope: number;
  distrust: number;
  browserParent: number;
  spare: number;
  urgency: number;
  bufferTargetMs: number;
  stay: number;
  orphan: number;
  detachedDepth: number;
}

/** Sizes of each child's candidate-parent list (the solver never looks at all pairs). */
export interface CandidateLimits {
  /** Best pre-ranked parents of the child's own scope (for its NAT type). */
  top: number;
  /** Parents sampled from the child's scope in proportion to their slots (diversity). */
  random: number;
  /** Same two, over all scopes, added only when the child's scope cannot serve its demand. */
  wideTop: number;
  wideRandom: number;
  /** Measured neighbors (RttTable samples), lowest RTT first. */
  neighbors: number;
  /** Placement only: free parents looked at from the shallow end of the scope's frontier. */
  frontier: number;
  /** Each random draw keeps the best (RTT + NAT) of this many tries. */
  choices: number;
}

export interface OptimizeOptions {
  /** Monotonic ms (for the budget and solveMs). Without it there is no time budget. */
  now?: () => number;
  /** Time budget for the whole call (all renditions), ms. Default 50. */
  budgetMs?: number;
  /** Uniform [0,1). Default: a fixed-seed PRNG, so the same input gives the same plan. */
  random?: () => number;
  weights?: Partial<Weights>;
  candidates?: Partial<CandidateLimits>;
  /** A switch must gain more than this many points. Default 0.05. */
  minGain?: number;
  /** Upper bound on DGS passes per rendition. Default 50. */
  maxPasses?: number;
  /**
   * Upper bound on DGS switches (moves + swaps) applied per rendition and round, best gains
   * first; placing orphans does not count. Each switch costs a child a parent change (a new
   * connection, a slot grant, a gap), so a churn budget. Default: none.
   */
  maxSwitches?: number;
  /** Consider swaps (two children exchange parents). Default true. */
  swaps?: boolean;
}

export interface RenditionResult {
  rendition: string;
  /** The new plan: one parent per placed child; every parent's depth is below its child's. */
  links: LinkSpec[];
  /** Links in the plan that were not in currentLinks. */
  added: LinkSpec[];
  /** Links of currentLinks not in the plan (including those to departed peers). */
  removed: LinkSpec[];
  /**
   * Hops from the origin per online peer. An unplaced peer (no free slot anywhere it could go)
   * is fed over HTTP and counts as Weights.detachedDepth; its own children (if it keeps any)
   * count from there.
   */
  depth: Map<string, number>;
  /** Online non-origin peers without a parent (capacity shortage only). */
  unplaced: string[];
  /** Objective of currentLinks as given (invalid links dropped, orphans unplaced). */
  objectiveBefore: number;
  /** Objective after orphans were placed: the point DGS starts from. */
  objectiveStart: number;
  objectiveAfter: number;
  /** Links of currentLinks dropped as invalid. */
  dropped: number;
  /** Orphans attached by placement. */
  placed: number;
  /** DGS re-parent moves and swaps applied. */
  moves: number;
  swaps: number;
  passes: number;
  /** Children's best switches evaluated: the solver's unit of work (steadier than time on a busy machine). */
  evaluations: number;
  /** DGS stopped because no switch gained more than minGain (false: stopped by the budget). */
  converged: boolean;
  peers: number;
  /** Where the time went, by the injected clock (null without one). */
  phaseMs: { prepare: number; candidates: number; place: number; improve: number } | null;
}

export interface OptimizeResult {
  renditions: RenditionResult[];
  /** Wall time of the call by the injected clock (null without a clock). */
  solveMs: number | null;
  budgetExhausted: boolean;
  moves: number;
  swaps: number;
  placed: number;
}
