/**
 * Scenario files (JSON): the workload of one simulation. Every field has a default; a scenario
 * file only says what differs. See sim/README.md for the meaning of each field.
 */
import type { NatType } from './net.js';
import { DEFAULT_WEIGHTS, type Weights } from '../tracker/chandelier/index.js';
import { DEFAULT_ROUND_PERIOD_MS } from '../tracker/optimizer/loop.js';
import { DEFAULT_MAX_WAIT_SEGMENTS, DEFAULT_SAFETY_MS } from '../player/src/p2p-loader.js';

/**
 * starling: the engine alone (push trees it builds itself + mesh repair + HTTP at the deadline);
 * chandelier: the same with the tracker's optimizer assigning parents; mesh-pull: a
 * CoolStreaming-like random mesh; http-only: no peers.
 */
export type Variant = 'starling' | 'chandelier' | 'mesh-pull' | 'http-only';
export const VARIANTS: readonly Variant[] = ['starling', 'chandelier', 'mesh-pull', 'http-only'];

export interface Share<T> { share: number; value: T }

export interface Scenario {
  name: string;
  seed: number;
  /** Simulated seconds. */
  durationS: number;
  /** Each engine piece byte stands for this many modelled bytes (memory/CPU); 1 = exact. */
  byteScale: number;
  /** engine.tick() period per peer (ms); peers are spread over tickGroups phases. */
  tickMs: number;
  tickGroups: number;
  stream: {
    segmentS: number;
    pieceKiB: number;
    initKiB: number;
    renditions: Array<{ name: string; kbps: number; share: number }>;
  };
  population: {
    viewers: number;
    /** steady: arrivals spread evenly over [atS, atS+overS]; flash: all within overS of atS (exponential gaps). */
    join: { pattern: 'steady' | 'flash'; atS: number; overS: number };
    uploadKbps: Array<Share<number>>;
    /**
     * The engine's upload cap (uploadLimitKbps) per viewer; empty = the viewer's uplink capacity
     * (the host knows its uplink). Benchmarks on loopback cap the engine, not the network.
     */
    engineUploadKbps: Array<Share<number>>;
    downloadKbps: Array<Share<number>>;
    nat: Array<Share<NatType>>;
    /** random: draw upload capacity and rendition by share; cycle: viewer i gets entry i mod length (benchmarks). */
    assign: 'random' | 'cycle';
  };
  churn: {
    /** Mean session length (s, exponential); 0 = viewers stay until the end. */
    meanSessionS: number;
    /** Share of departures that are abrupt (no BYE; neighbors notice after detectMs). */
    abruptShare: number;
    /** A departed viewer is replaced by a new one (keeps the population steady). */
    replace: boolean;
    detectMs: number;
  };
  geography: {
    regions: Array<{ name: string; share: number }>;
    /** One-way core latency between regions, ms (square, symmetric). */
    coreMs: number[][];
    ispsPerRegion: number;
    sameIspMs: number;
    crossIspMs: number;
    /** Access (last-mile) one-way latency range, ms. */
    accessMs: [number, number];
  };
  network: {
    /** Loss probability per packet. */
    loss: number;
    /** TURN relay available for pairs that cannot connect directly. */
    turn: boolean;
    turnRegion: string;
    /**
     * A connection's setup time beyond its round trips (ms): the WebRTC stack's own work (ICE
     * gathering, DTLS handshake, SCTP). werift on loopback opens a first neighbor 170-290 ms after
     * joining (bench/swarm.ts, "first neighbor"), where round trips alone give ~15 ms.
     */
    connectSetupMs: number;
  };
  /** maxChildrenPerRendition: the origin root peer's upload budget per rendition (0: the engine's default). */
  origin: { region: string; uploadKbps: number; maxNeighbors: number; maxChildrenPerRendition: number };
  http: { region: string; uploadKbps: number };
  /** natAware: samples go through tracker/nat.ts NatTracker.prefer (viewers report their NAT type on join). */
  tracker: { region: string; outages: Array<{ atS: number; forS: number }>; natAware: boolean };
  /** The regions listed are cut off from the others (origin, tracker, HTTP stay on the other side). */
  partitions: Array<{ atS: number; healS: number; regions: string[] }>;
  /** Extra EngineOptions for viewers (windowSegments, maxNeighbors, requestTimeoutMs, ...). */
  engine: Record<string, number | boolean>;
  /** seekParents: a viewer without a parent asks the tracker for parent candidates (PeerHost.seekParent). */
  host: { targetNeighbors: number; maintainMs: number; maxPendingIncoming: number; seekParents: boolean };
  player: {
    liveSyncSegments: number; httpMarginMs: number; safetyMs: number; maxBufferS: number; retryMs: number;
    /** Live playlist reload period (hls.js: the target duration); 0 = one segment duration. */
    playlistRefreshMs: number;
    /** Longest wait for peers before a segment's deadline, in segments (computeDeadline maxWaitMs; default the loader's). */
    maxWaitSegments: number;
  };
  variants: Variant[];
  metrics: { sampleS: number; trackEverySegments: number; horizonS: number };
  /**
   * The tracker's Chandelier loop (variant chandelier): round period, DGS passes per round, and
   * whether it asks viewers to relay short renditions (tracker/optimizer/relay.ts).
   */
  optimizer: {
    periodMs: number; maxPasses: number; relays: boolean;
    /** Solver experiments: weights (tracker/chandelier DEFAULT_WEIGHTS names) and minGain; empty = the tracker's defaults. */
    weights: Partial<Weights>; minGain: number | null;
    /** Churn budget: DGS switches per rendition and round (OptimizeOptions.maxSwitches); null = none. */
    maxSwitches: number | null;
    /**
     * Rounds on churn as the tracker runs them (tracker/optimizer/loop.ts CHURN_ROUND_*): a join or
     * leave brings a round forward, at most one extra per second. false: periodic rounds only.
     */
    churnRounds: boolean;
  };
}

export const DEFAULT_SCENARIO: Scenario = {
  name: 'unnamed',
  seed: 1,
  durationS: 120,
  byteScale: 16,
  tickMs: 100,
  tickGroups: 10,
  stream: { segmentS: 2, pieceKiB: 16, initKiB: 1, renditions: [{ name: '720p', kbps: 1000, share: 1 }] },
  population: {
    viewers: 100,
    join: { pattern: 'steady', atS: 0, overS: 20 },
    uploadKbps: [
      { share: 0.3, value: 800 }, { share: 0.4, value: 2000 }, { share: 0.2, value: 5000 }, { share: 0.1, value: 20000 },
    ],
    engineUploadKbps: [],
    downloadKbps: [{ share: 0.5, value: 20000 }, { share: 0.5, value: 50000 }],
    nat: [
      { share: 0.15, value: 'open' }, { share: 0.15, value: 'full-cone' }, { share: 0.15, value: 'restricted-cone' },
      { share: 0.4, value: 'port-restricted' }, { share: 0.15, value: 'symmetric' },
    ],
    assign: 'random',
  },
  churn: { meanSessionS: 0, abruptShare: 0.5, replace: true, detectMs: 10_000 },
  geography: {
    regions: [{ name: 'eu', share: 0.45 }, { name: 'us', share: 0.35 }, { name: 'asia', share: 0.2 }],
    coreMs: [[0, 40, 110], [40, 0, 80], [110, 80, 0]],
    ispsPerRegion: 3,
    sameIspMs: 3,
    crossIspMs: 8,
    accessMs: [2, 15],
  },
  network: { loss: 0.002, turn: true, turnRegion: 'eu', connectSetupMs: 0 },
  origin: { region: 'eu', uploadKbps: 20_000, maxNeighbors: 4, maxChildrenPerRendition: 0 },
  http: { region: 'eu', uploadKbps: 10_000_000 },
  tracker: { region: 'eu', outages: [], natAware: true },
  partitions: [],
  engine: {},
  host: { targetNeighbors: 6, maintainMs: 5000, maxPendingIncoming: 8, seekParents: true },
  player: { liveSyncSegments: 3, httpMarginMs: 500, safetyMs: DEFAULT_SAFETY_MS, maxBufferS: 30, retryMs: 1000, playlistRefreshMs: 0, maxWaitSegments: DEFAULT_MAX_WAIT_SEGMENTS },
  variants: ['starling', 'mesh-pull', 'http-only'],
  metrics: { sampleS: 5, trackEverySegments: 1, horizonS: 20 },
  optimizer: { periodMs: DEFAULT_ROUND_PERIOD_MS, maxPasses: 20, relays: false, weights: {}, minGain: null, maxSwitches: null, churnRounds: true },
};

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep merge of plain objects; arrays and scalars replace. */
function merge<T>(base: T, over: unknown, path: string): T {
  if (over === undefined) return base;
  if (isObj(base) && isObj(over)) {
    const out: Record<string, unknown> = { ...base };
    for (const [k, v] of Object.entries(over)) {
      if (!(k in base) && path !== 'engine' && path !== 'optimizer.weights') throw new Error(`scenario: unknown field ${path ? `${path}.` : ''}${k}`);
      out[k] = merge((base as Record<string, unknown>)[k], v, path ? `${path}.${k}` : k);
    }
    return out as T;
  }
  return over as T;
}

export function parseScenario(json: unknown): Scenario {
  if (!isObj(json)) throw new Error('scenario: not an object');
  const s = merge(DEFAULT_SCENARIO, json, '');
  const pos = (v: number, what: string) => { if (!(Number.isFinite(v) && v > 0)) throw new Error(`scenario: ${what} must be > 0`); };
  pos(s.durationS, 'durationS');
  pos(s.byteScale, 'byteScale');
  pos(s.tickMs, 'tickMs');
  pos(s.stream.segmentS, 'stream.segmentS');
  if (!(Number.isFinite(s.network.connectSetupMs) && s.network.connectSetupMs >= 0)) throw new Error('scenario: network.connectSetupMs must be >= 0');
  if (!Number.isInteger(s.population.viewers) || s.population.viewers < 0) throw new Error('scenario: population.viewers');
  if (s.stream.renditions.length === 0) throw new Error('scenario: no renditions');
  const nr = s.geography.regions.length;
  if (s.geography.coreMs.length !== nr || s.geography.coreMs.some((r) => r.length !== nr)) throw new Error('scenario: geography.coreMs must be regions x regions');
  for (const v of s.variants) if (!VARIANTS.includes(v)) throw new Error(`scenario: unknown variant ${v}`);
  const regionNames = s.geography.regions.map((r) => r.name);
  for (const r of [s.origin.region, s.http.region, s.tracker.region, s.network.turnRegion, ...s.partitions.flatMap((p) => p.regions)]) {
    if (!regionNames.includes(r)) throw new Error(`scenario: unknown region ${r}`);
  }
  for (const [k, v] of Object.entries(s.optimizer.weights)) {
    if (!(k in DEFAULT_WEIGHTS)) throw new Error(`scenario: unknown optimizer weight ${k}`);
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`scenario: optimizer.weights.${k} must be a number >= 0`);
  }
  if (s.optimizer.maxSwitches !== null && !(Number.isInteger(s.optimizer.maxSwitches) && s.optimizer.maxSwitches >= 0)) throw new Error('scenario: optimizer.maxSwitches must be an integer >= 0');
  if (typeof s.optimizer.churnRounds !== 'boolean') throw new Error('scenario: optimizer.churnRounds must be a boolean');
  if (s.optimizer.minGain !== null && !(Number.isFinite(s.optimizer.minGain) && s.optimizer.minGain >= 0)) throw new Error('scenario: optimizer.minGain must be >= 0');
  return s;
}
