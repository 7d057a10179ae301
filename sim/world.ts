/**
 * One simulated world: an origin (root peer + HTTP fallback server), a tracker (the real
 * tracker/registry.ts peer sampling), TURN, and viewers, each viewer running the REAL peer/core
 * Engine behind a simulated host (neighbor management modelled on peer/host/peer-host.ts) and a
 * simulated hls.js-like player (the real deadline policy of player/src/p2p-loader.ts).
 *
 * The simulator is the clock: engines read EventQueue.now, all randomness comes from seeded
 * streams, and the run loop drains promise callbacks (engine loads, HTTP answers) before the
 * clock moves on, so a run is a pure function of (scenario, variant, seed).
 */
import { Engine, ENGINE_DEFAULTS } from '../peer/core/engine.js';
import { MsgType, NO_DEPTH } from '../peer/core/codec.js';
import type { EngineOptions, LoadResult } from '../peer/core/engine-api.js';
import { describeSegment, signManifest, type Manifest } from '../peer/core/manifest.js';
import { INIT_SEQ, type HttpSource, type PieceSource, type SegmentRef } from '../peer/core/types.js';
import { MAX_PARENT_CANDIDATES, PARENT_REQUEST_MAX_SLOTS, type PeerInfo } from '../peer/core/signaling.js';
import { HOST_DEFAULTS } from '../peer/host/peer-host.js';
import { indexParentCandidates, pickParentCandidates, type ParentView, type RenditionCandidates } from '../tracker/parent-candidates.js';
import { PARENT_INDEX_DEFAULTS } from '../tracker/parent-index.js';
import { Registry, type PeerRecord } from '../tracker/registry.js';
import { NatTracker, predictPair, toNatType } from '../tracker/nat.js';
import { computeDeadline } from '../player/src/p2p-loader.js';
import { simCrypto, simSign } from './crypto.js';
import { canConnectDirect, Network, SimNode, type NodeSpec, type Place, type SimLink } from './net.js';
import { EventQueue } from './queue.js';
import { SimOptimizer, type OptimizerPeerView, type RoundFigures } from './optimizer.js';
import { CHURN_ROUND_DELAY_MS, CHURN_ROUND_GAP_MS } from '../tracker/optimizer/loop.js';
import { mixSeed, Rng } from './rng.js';
import type { Scenario, Variant } from './scenario.js';

export const CHANNEL = 'sim';
const PUBLIC_KEY = new Uint8Array(32).map((_, i) => i + 1);
const ORIGIN_ID = 'origin-root';
/** HTTP request/response header bytes. */
const HTTP_OVERHEAD = 400;
/** Connection attempts that get no answer (or whose ICE fails) fail after this long. */
const CONNECT_TIMEOUT_MS = 10_000;
/** A viewer counts in the dissemination denominators once it has been in the swarm this long. */
const SETTLE_MS = 10_000;

interface Rendition { name: string; kbps: number; share: number; index: number }

interface Backoff { failures: number; until: number }

/** Hops from the origin in a rendition's push tree, or null without a parent there. */
function fedDepth(links: { parents: Record<string, string>; depth: Record<string, number> }, rendition: string): number | null {
  const d = links.depth[rendition];
  return links.parents[rendition] !== undefined && d !== undefined && d < NO_DEPTH ? d : null;
}

export interface PeerFinal {
  startupMs: number | null;
  stallMs: number;
  watchMs: number;
  stalls: number;
  latencyS: number | null;
  fromPeers: number;
  fromOriginPeer: number;
  fromHttp: number;
  uploaded: number;
  /** The rendition it watched. */
  rendition: string;
  /** Effective upload capacity (kbit/s): the population class it was drawn from. */
  uploadKbps: number;
  /** Hops from the origin in its rendition's push tree when it left (null: no parent). */
  depth: number | null;
}

class SimPeer {
  readonly conns = new Map<string, 'out' | 'in' | 'open'>();
  /** Renditions relayed on the tracker's request (the last relay message applied). */
  relaying: string[] = [];
  readonly known = new Map<string, PeerInfo>();
  readonly backoff = new Map<string, Backoff>();
  welcomed = false;
  trackerBackoffMs = 1000;
  joining = false;
  lastPeersRequest = -Infinity;
  trackerRec: PeerRecord<number> | null = null;
  alive = true;
  /** Since when it has had no parent in its rendition (null: it has one), and its last parent request (PeerHost.seekParent). */
  parentlessSince: number | null = null;
  lastSeekAt = -Infinity;
  /** It has had a parent in the rendition it plays (PeerHost: no longer a joiner). */
  hadParent = false;
  /** Last time it made room for an incoming offer for an assigned link (PeerHost.makeRoomForIncoming). */
  lastIncomingRoomAt = -Infinity;
  /** Effective upload capacity: min(uplink, engine cap), kbit/s (fluid bound). */
  uploadKbps = 0;
  readonly joinT: number;
  leaveT = Infinity;
  // player
  started = false;
  startT = 0;
  startupMs: number | null = null;
  initDone = false;
  nextSeq = -1;
  loading = false;
  loadingSeq = -2;
  bufEnd = 0;
  playhead = 0;
  playT = 0;
  playing = false;
  stallStart = 0;
  stallMs = 0;
  stalls = 0;
  waitUntil: number | null = null;
  wakeAt = -1;
  wakeGen = 0;
  latencySum = 0;
  latencyN = 0;
  /** The first media segment it loaded (httpByLoad), or null. */
  firstSeq: number | null = null;
  /** Dissemination dedupe: seq of the piece-0 arrival last recorded, per seq mod 64. */
  readonly seen0 = new Int32Array(64).fill(-9);

  constructor(
    readonly idx: number,
    readonly id: string,
    readonly node: SimNode,
    readonly engine: Engine,
    readonly rendition: Rendition,
    readonly isOrigin: boolean,
    /** Delay between a segment's publication and this player seeing it in its playlist. */
    readonly playlistDelay: number,
    now: number,
  ) {
    this.joinT = now;
  }
}

interface TrackedSeg {
  key: string;
  rendition: number;
  seq: number;
  publishT: number;
  piecePeers: number[];
  pieceDelays: number[];
  segPeers: number[];
  segDelays: number[];
}

export interface DisseminationRow {
  seq: number;
  t: number;
  eligible: number;
  piece: [number | null, number | null, number | null];
  segment: [number | null, number | null, number | null];
}

export interface SeriesRow {
  t: number;
  online: number;
  watching: number;
  stalled: number;
  /** Share of the interval's viewer bytes that came from peers. */
  offload: number | null;
  originPeerMbps: number;
  httpMbps: number;
  /** min(1, (u_s + sum u_i) / (N r)) over the viewers watching at that moment. */
  fluidBound: number | null;
  /** Upper bound of offload: min(sum u_i / (N r), 1 - renditions/N). */
  offloadBound: number | null;
  latencyMeanS: number | null;
  latencyP95S: number | null;
  neighborsMean: number | null;
  /** Share of watching viewers fed by an upload link (a parent) in their rendition. */
  treeCoverage: number | null;
  /** Mean depth (hops from the origin) of the fed viewers. */
  depthMean: number | null;
}

export interface WorldResult {
  variant: Variant;
  viewersCreated: number;
  finals: PeerFinal[];
  series: SeriesRow[];
  dissemination: DisseminationRow[];
  totals: {
    fromPeers: number; fromOriginPeer: number; fromHttp: number;
    originPeerUpload: number; httpUpload: number; turnBytes: number;
    rejectedFrames: Record<string, number>; badPieces: number;
    connectAttempts: number; connectFailures: number; relayedLinks: number; directLinks: number;
    trackerJoins: number; trackerSamples: number;
    /** Connections opened because an engine climbed toward a shallower parent. */
    climbConnects: number;
    /** Parent requests to the tracker (no parent for a while), and connections opened to the candidates named. */
    parentSeeks: number;
    parentSeekConnects: number;
  };
  medians: { uploadKbps: number; oneWayMs: number };
  events: number;
  /** Frames delivered on data channels, by message type (hello, have, piece, ...). */
  frames: Record<string, number>;
  /**
   * Bytes fetched over HTTP by the loads that completed, by the viewer's load: init segment, the
   * first media segment it played, the second, the third, any later one. Where the HTTP goes: a
   * viewer's first segment comes over HTTP by design (start-up), its next two are catch-up pulls
   * (it starts liveSyncSegments behind the edge, its parent pushes from the newest on), later
   * loads are the tree's misses. Loads cut short by a departure are not counted.
   */
  httpByLoad: { init: number; first: number; second: number; third: number; later: number };
  /** Variant chandelier: per-round figures summed (deterministic), null otherwise. */
  optimizer: { rounds: number; moves: number; swaps: number; placed: number; assignments: number; unhonoured: number; unplacedMean: number; relayRequests: number; relaysAtEnd: number } | null;
}

export interface Progress { t: number; online: number; watching: number; offload: number | null; events: number }

export class World {
  readonly q = new EventQueue();
  readonly net: Network;
  private readonly rng: Rng;
  private readonly trackerRng: Rng;
  private readonly hostRng: Rng;
  private registry = new Registry<number>();
  /** The tracker's NAT-aware sample ordering (tracker/nat.ts), fed with the viewers' reported NAT types. */
  private readonly nat = new NatTracker({ registry: { get: (c, id) => this.registry.get(c, id) } });
  private readonly peers: SimPeer[] = [];
  private readonly byId = new Map<string, SimPeer>();
  private readonly tickGroups: SimPeer[][];
  private origin!: SimPeer;
  private readonly httpNode: SimNode;
  private readonly turnNode: SimNode;
  private readonly trackerPlace: Place;
  private readonly renditions: Rendition[];
  private readonly segMs: number;
  private readonly K: number;
  private readonly pieceReal: number;
  private readonly segments = new Map<string, { manifest: Manifest; data: Uint8Array }>();
  private readonly tracked = new Map<string, TrackedSeg>();
  private readonly dissemination: DisseminationRow[] = [];
  private readonly series: SeriesRow[] = [];
  private readonly finals: PeerFinal[] = [];
  private dirty = false;
  private outage = false;
  private partitioned: Set<number> | null = null;
  private nodeCount = 0;
  private viewerCount = 0;
  private readonly endMs: number;
  private readonly departed = { fromPeers: 0, fromOriginPeer: 0, fromHttp: 0, uploaded: 0, badPieces: 0 };
  private readonly rejected: Record<string, number> = {};
  private httpBytes = 0;
  private last = { fromPeers: 0, fromOriginPeer: 0, fromHttp: 0, originUp: 0, http: 0, t: 0 };
  private readonly counters = {
    connectAttempts: 0, connectFailures: 0, relayedLinks: 0, directLinks: 0, trackerJoins: 0, trackerSamples: 0, climbConnects: 0, parentSeeks: 0, parentSeekConnects: 0,
  };
  private readonly upSamples: number[] = [];
  private readonly owSamples: number[] = [];

  private optimizer: SimOptimizer | null = null;
  /** Churn rounds (noteChurn): one is scheduled; when the last one ran. */
  private churnRoundDue = false;
  private lastChurnRoundAt = -Infinity;
  private parentIdx: { at: number; index: Map<string, RenditionCandidates> } | null = null;
  private readonly optRounds: RoundFigures[] = [];
  private relayRequests = 0;
  private relaysInForce = 0;
  private readonly httpByLoad = { init: 0, first: 0, second: 0, third: 0, later: 0 };
  /** Wall ms of each optimizer round (machine-dependent: perf.json only, never the report). */
  readonly optimizerWallMs: number[] = [];

  /** Called every 65,536 events with the simulated time (s) and the event count. */
  onTick: ((t: number, events: number) => void) | null = null;

  constructor(readonly sc: Scenario, readonly variant: Variant, private readonly onProgress?: (p: Progress) => void) {
    this.rng = new Rng(mixSeed(sc.seed, 1));
    this.trackerRng = new Rng(mixSeed(sc.seed, 2));
    this.hostRng = new Rng(mixSeed(sc.seed, 3));
    this.K = sc.byteScale;
    this.segMs = sc.stream.segmentS * 1000;
    this.endMs = sc.durationS * 1000;
    this.pieceReal = Math.max(1, Math.round((sc.stream.pieceKiB * 1024) / this.K));
    this.renditions = sc.stream.renditions.map((r, index) => ({ ...r, index }));
    const g = sc.geography;
    this.net = new Network(this.q, {
      byteScale: this.K, loss: sc.network.loss, rng: new Rng(mixSeed(sc.seed, 4)),
      geography: { coreMs: g.coreMs, sameIspMs: g.sameIspMs, crossIspMs: g.crossIspMs },
    });
    const region = (name: string) => g.regions.findIndex((r) => r.name === name);
    const infra = (regionName: string, upKbps: number): NodeSpec => ({
      region: region(regionName), isp: 0, accessMs: 1, upKbps, downKbps: Infinity, nat: 'open',
    });
    this.httpNode = this.newNode(infra(sc.http.region, sc.http.uploadKbps));
    this.turnNode = this.newNode(infra(sc.network.turnRegion, Infinity));
    this.trackerPlace = { region: region(sc.tracker.region), isp: 0, accessMs: 1 };
    this.tickGroups = Array.from({ length: Math.max(1, sc.tickGroups) }, () => []);
  }

  private newNode(spec: NodeSpec): SimNode {
    return new SimNode(this.nodeCount++, spec);
  }

  private get now(): number { return this.q.now; }
  private readonly clock = { now: () => this.q.now };

  // ================================================================ run

  async run(): Promise<WorldResult> {
    const sc = this.sc;
    this.createOrigin();
    this.q.at(0, () => this.publishInit());
    for (let k = 0; (k + 1) * this.segMs <= this.endMs; k++) this.q.at((k + 1) * this.segMs, () => this.publish(k));
    this.scheduleJoins();
    for (let gi = 0; gi < this.tickGroups.length; gi++) {
      this.q.at((gi * sc.tickMs) / this.tickGroups.length, () => this.tickGroup(gi));
    }
    if (this.variant !== 'http-only') {
      const m = sc.host.maintainMs;
      for (let gi = 0; gi < this.tickGroups.length; gi++) this.q.at(m + (gi * m) / this.tickGroups.length, () => this.maintainGroup(gi, m));
      if (sc.host.seekParents && this.variant !== 'mesh-pull') {
        for (let gi = 0; gi < this.tickGroups.length; gi++) this.q.at(HOST_DEFAULTS.seekParentCheckMs + (gi * HOST_DEFAULTS.seekParentCheckMs) / this.tickGroups.length, () => this.seekGroup(gi));
      }
      for (const o of sc.tracker.outages) {
        this.q.at(o.atS * 1000, () => this.trackerDown());
        this.q.at((o.atS + o.forS) * 1000, () => { this.outage = false; });
      }
    }
    if (this.variant === 'chandelier') {
      const period = sc.optimizer.periodMs;
      this.optimizer = new SimOptimizer(mixSeed(sc.seed, 5), sc.optimizer.maxPasses, period, sc.optimizer.relays, (a, b) => {
        const x = this.byId.get(a)?.node, y = this.byId.get(b)?.node;
        return x && y ? 2 * this.net.oneWay(x, y) : 200;
      }, {
        weights: sc.optimizer.weights,
        ...(sc.optimizer.minGain !== null ? { minGain: sc.optimizer.minGain } : {}),
        ...(sc.optimizer.maxSwitches !== null ? { maxSwitches: sc.optimizer.maxSwitches } : {}),
      });
      const tick = () => { this.optimizerRound(); this.q.at(this.now + period, tick); };
      this.q.at(period, tick);
    }
    for (const p of sc.partitions) {
      this.q.at(p.atS * 1000, () => this.partitionStart(p.regions));
      this.q.at(p.healS * 1000, () => this.partitionHeal());
    }
    const sampleMs = sc.metrics.sampleS * 1000;
    for (let t = sampleMs; t <= this.endMs; t += sampleMs) this.q.at(t, () => this.sample());
    let nextCheck = 1 << 16;
    while (this.q.peekTime() <= this.endMs) {
      this.q.step();
      if (this.q.processed >= nextCheck) {
        // progress between samples on big runs (does not touch the simulation)
        nextCheck += 1 << 16;
        this.onTick?.(this.now / 1000, this.q.processed);
      }
      if (this.dirty) {
        this.dirty = false;
        await new Promise<void>((r) => setImmediate(r));
      }
    }
    this.q.now = this.endMs;
    return this.finish();
  }

  // ================================================================ origin and HTTP

  private createOrigin(): void {
    const sc = this.sc;
    const node = this.newNode({
      region: this.sc.geography.regions.findIndex((r) => r.name === sc.origin.region), isp: 0, accessMs: 1,
      upKbps: sc.origin.uploadKbps, downKbps: Infinity, nat: 'open',
    });
    const mesh = this.variant === 'mesh-pull';
    const engine = new Engine({
      peerId: ORIGIN_ID,
      // mesh-pull baseline: the source is a plain peer that answers every neighbor's requests
      kind: mesh ? 'seeder' : 'origin',
      channel: CHANNEL,
      publicKey: PUBLIC_KEY,
      clock: this.clock,
      random: new Rng(mixSeed(sc.seed, 999)),
      crypto: simCrypto,
      interest: 'none',
      maxNeighbors: sc.origin.maxNeighbors,
      ...(sc.origin.maxChildrenPerRendition > 0 && !mesh ? {
        maxChildrenPerRendition: sc.origin.maxChildrenPerRendition,
        maxChildren: sc.origin.maxChildrenPerRendition * sc.stream.renditions.length,
      } : {}),
      maxBufferedBytes: Math.max(4096, Math.round(ENGINE_DEFAULTS.maxBufferedBytes / this.K)),
      ...(mesh ? { push: false, serveChildrenOnly: false } : {}),
    });
    this.origin = new SimPeer(-1, ORIGIN_ID, node, engine, this.renditions[0], true, 0, 0);
    this.byId.set(ORIGIN_ID, this.origin);
    if (this.variant !== 'http-only') this.trackerJoin(this.origin);
  }

  private makeSegment(r: Rendition, seq: number): { manifest: Manifest; data: Uint8Array } {
    const bytes = seq === INIT_SEQ
      ? Math.max(1, Math.round((this.sc.stream.initKiB * 1024) / this.K))
      : Math.max(1, Math.round((r.kbps * this.sc.stream.segmentS * 1000) / 8 / this.K));
    const data = new Uint8Array(bytes);
    for (let i = 0, p = 0; p < bytes; i++, p += this.pieceReal) {
      const v = [seq & 255, (seq >> 8) & 255, (seq >> 16) & 255, i & 255, i >> 8, r.index];
      for (let j = 0; j < v.length && p + j < bytes; j++) data[p + j] = v[j];
    }
    const unsigned = describeSegment(simCrypto, {
      channel: CHANNEL, rendition: r.name, seq, pieceSize: this.pieceReal,
      durationMs: seq === INIT_SEQ ? 0 : this.segMs, createdAt: this.now,
    }, data);
    return { manifest: signManifest(unsigned, (msg) => simSign(msg, PUBLIC_KEY)), data };
  }

  private publishInit(): void {
    for (const r of this.renditions) {
      const s = this.makeSegment(r, INIT_SEQ);
      this.segments.set(`${r.name}/${INIT_SEQ}`, s);
      this.origin.engine.publishSegment(s.manifest, s.data);
    }
  }

  private publish(seq: number): void {
    for (const r of this.renditions) {
      const s = this.makeSegment(r, seq);
      const key = `${r.name}/${seq}`;
      this.segments.set(key, s);
      // the HTTP server keeps 90 segments; the init segment (INIT_SEQ = -1) for good: deleting
      // `seq - 90` at seq 89 used to remove it, and no viewer joining after 3 minutes could start
      if (seq - 90 >= 0) this.segments.delete(`${r.name}/${seq - 90}`);
      if (seq % this.sc.metrics.trackEverySegments === 0) {
        this.tracked.set(key, { key, rendition: r.index, seq, publishT: this.now, piecePeers: [], pieceDelays: [], segPeers: [], segDelays: [] });
        this.q.at(this.now + this.sc.metrics.horizonS * 1000, () => this.finalizeTracked(key));
      }
      this.origin.engine.publishSegment(s.manifest, s.data);
    }
  }

  private httpReachable(p: SimPeer): boolean { return p.node.side === 0; }

  /** The HTTP fallback as one viewer sees it: request latency, the server's shared uplink, the viewer's downlink. */
  private httpSource(holder: { p: SimPeer | null }): HttpSource {
    const get = (ref: SegmentRef, w: (s: { manifest: Manifest; data: Uint8Array }) => number, body: (s: { manifest: Manifest; data: Uint8Array }) => Uint8Array, isPiece0: boolean) =>
      new Promise<Uint8Array>((resolve, reject) => {
        const p = holder.p!;
        const fail = (msg: string, after: number) => this.q.at(this.now + after, () => { this.dirty = true; reject(new Error(msg)); });
        if (!this.httpReachable(p)) { fail('network unreachable', CONNECT_TIMEOUT_MS); return; }
        const reqOneWay = this.net.oneWay(p.node, this.httpNode);
        this.q.at(this.now + reqOneWay, () => {
          if (!p.alive) return;
          const s = this.segments.get(`${ref.rendition}/${ref.seq}`);
          if (!s) { fail('HTTP 404', reqOneWay); return; }
          const bytes = w(s);
          this.net.transfer(this.httpNode, p.node, bytes, () => {
            if (!p.alive) return;
            this.httpBytes += bytes;
            if (isPiece0) this.recordPiece0(p, ref.rendition, ref.seq);
            this.dirty = true;
            resolve(body(s));
          });
        });
      });
    return {
      fetchManifest: (ref) => get(ref, (s) => s.manifest.encoded.length + HTTP_OVERHEAD, (s) => s.manifest.encoded.slice(), false),
      fetchRange: (ref, start, end) => get(ref, () => (end - start) * this.K + HTTP_OVERHEAD, (s) => s.data.slice(start, end), start === 0),
    };
  }

  // ================================================================ viewers

  private scheduleJoins(): void {
    const { viewers, join } = this.sc.population;
    const at = join.atS * 1000;
    const over = join.overS * 1000;
    if (join.pattern === 'steady') {
      for (let i = 0; i < viewers; i++) this.q.at(at + (viewers > 1 ? (over * i) / viewers : 0), () => this.addViewer());
    } else {
      // flash crowd: exponential inter-arrivals compressed into `over`
      const gaps: number[] = [];
      let sum = 0;
      for (let i = 0; i < viewers; i++) { const x = this.rng.exp(1); gaps.push(x); sum += x; }
      let t = at;
      for (let i = 0; i < viewers; i++) { this.q.at(t, () => this.addViewer()); t += (gaps[i] / sum) * over; }
    }
  }

  private addViewer(): void {
    const sc = this.sc;
    const pop = sc.population;
    const idx = this.viewerCount++;
    const region = this.rng.pick(sc.geography.regions.map((r, i) => ({ share: r.share, i }))).i;
    const spec: NodeSpec = {
      region,
      isp: this.rng.int(Math.max(1, sc.geography.ispsPerRegion)),
      accessMs: this.rng.uniform(sc.geography.accessMs[0], sc.geography.accessMs[1]),
      upKbps: pop.assign === 'cycle' ? pop.uploadKbps[idx % pop.uploadKbps.length].value : this.rng.pick(pop.uploadKbps).value,
      downKbps: this.rng.pick(pop.downloadKbps).value,
      nat: this.rng.pick(pop.nat).value,
    };
    const caps = pop.engineUploadKbps;
    const engineCap = caps.length === 0 ? spec.upKbps : pop.assign === 'cycle' ? caps[idx % caps.length].value : this.rng.pick(caps).value;
    const rendition = pop.assign === 'cycle' ? this.renditions[idx % this.renditions.length] : this.rng.pick(this.renditions);
    const playlistDelay = this.rng.uniform(0, sc.player.playlistRefreshMs > 0 ? sc.player.playlistRefreshMs : this.segMs);
    const session = sc.churn.meanSessionS > 0 ? this.rng.exp(sc.churn.meanSessionS * 1000) : Infinity;
    const abrupt = this.rng.next() < sc.churn.abruptShare;
    const node = this.newNode(spec);
    if (this.partitioned?.has(region)) node.side = 1;
    const id = `v${idx.toString(36).padStart(6, '0')}`;
    const p2p = this.variant !== 'http-only';
    const options: EngineOptions = {
      peerId: id,
      kind: 'browser',
      channel: CHANNEL,
      publicKey: PUBLIC_KEY,
      clock: this.clock,
      random: new Rng(mixSeed(sc.seed, 10_000 + idx)),
      crypto: simCrypto,
      interest: 'following',
      // the host knows its uplink: the engine's cap (and so its upload slots) follow it
      uploadLimitKbps: Math.max(1, engineCap / this.K),
      maxBufferedBytes: Math.max(4096, Math.round(ENGINE_DEFAULTS.maxBufferedBytes / this.K)),
      push: this.variant === 'starling' || this.variant === 'chandelier',
      ...(sc.engine as Partial<EngineOptions>),
    };
    const holder: { p: SimPeer | null } = { p: null };
    options.http = this.httpSource(holder);
    const engine = new Engine(options);
    const p = new SimPeer(idx, id, node, engine, rendition, false, playlistDelay + this.net.oneWay(node, this.httpNode), this.now);
    p.uploadKbps = Math.min(spec.upKbps, engineCap);
    holder.p = p;
    // climbing (as PeerHost.onClimb): connect as for an assignment; the target decides as usual
    engine.on('climb', (e) => {
      if (!p.alive || !p.welcomed || p.conns.has(e.peerId)) return;
      const b = p.backoff.get(e.peerId);
      if (b && b.until > this.now) return;
      this.counters.climbConnects++;
      this.connect(p, e.peerId, true, false);
    });
    engine.on('segment-complete', (e) => {
      if (p.loading && p.loadingSeq === e.ref.seq) this.dirty = true;
      const tr = this.tracked.get(`${e.ref.rendition}/${e.ref.seq}`);
      if (tr) { tr.segPeers.push(p.idx); tr.segDelays.push(this.now - tr.publishT); }
    });
    this.peers.push(p);
    this.byId.set(id, p);
    this.tickGroups[idx % this.tickGroups.length].push(p);
    this.upSamples.push(p.uploadKbps);
    if (this.owSamples.length < 2000) this.owSamples.push(this.net.oneWay(node, this.origin.node));
    if (p2p) this.trackerJoin(p);
    if (p2p && this.sc.host.seekParents && this.variant === 'starling') {
      const until = this.now + HOST_DEFAULTS.seekParentEagerMs;
      this.q.at(this.now + HOST_DEFAULTS.seekParentEagerCheckMs, () => this.seekEagerly(p, until));
    }
    // the player fetches the master and media playlists (2 round trips), then starts
    this.q.at(this.now + 4 * this.net.oneWay(node, this.httpNode), () => this.playerStart(p));
    if (session < Infinity) this.q.at(this.now + session, () => this.leave(p, abrupt));
  }

  private leave(p: SimPeer, abrupt: boolean): void {
    if (!p.alive) return;
    this.finalizePeer(p);
    p.alive = false;
    p.leaveT = this.now;
    const detect = this.sc.churn.detectMs;
    if (abrupt) {
      this.net.kill(p.node, detect);
      const rec = p.trackerRec;
      if (rec) this.q.at(this.now + detect, () => this.trackerRemove(rec));
    } else {
      p.engine.close();
      if (p.trackerRec) this.trackerRemove(p.trackerRec);
    }
    p.trackerRec = null;
    this.q.at(this.now + detect + 1000, () => { if (this.byId.get(p.id) === p) this.byId.delete(p.id); });
    if (this.sc.churn.replace && this.now < this.endMs) this.q.at(this.now + 1000, () => this.addViewer());
  }

  private finalizePeer(p: SimPeer): void {
    this.updatePlayhead(p);
    if (p.started && !p.playing) p.stallMs += this.now - p.stallStart;
    const s = p.engine.stats();
    const K = this.K;
    this.departed.fromPeers += s.bytesFromPeers;
    this.departed.fromOriginPeer += s.bytesFromOriginPeer;
    this.departed.fromHttp += s.bytesFromHttp;
    this.departed.uploaded += s.bytesUploaded;
    this.departed.badPieces += s.badPieces;
    for (const [k, v] of Object.entries(s.rejectedFrames)) this.rejected[k] = (this.rejected[k] ?? 0) + v;
    this.finals.push({
      startupMs: p.startupMs,
      stallMs: p.stallMs,
      watchMs: p.started ? this.now - p.startT : 0,
      stalls: p.stalls,
      latencyS: p.latencyN > 0 ? p.latencySum / p.latencyN / 1000 : null,
      fromPeers: s.bytesFromPeers * K,
      fromOriginPeer: s.bytesFromOriginPeer * K,
      fromHttp: s.bytesFromHttp * K,
      uploaded: s.bytesUploaded * K,
      rendition: p.rendition.name,
      uploadKbps: p.uploadKbps,
      depth: fedDepth(p.engine.links(), p.rendition.name),
    });
  }

  // ================================================================ player (hls.js-like)

  /** When this player sees segment `seq` in its live playlist. */
  private visibleAt(p: SimPeer, seq: number): number {
    return (seq + 1) * this.segMs + p.playlistDelay;
  }

  private playerStart(p: SimPeer): void {
    if (!p.alive) return;
    // newest segment in the player's playlist
    const newest = Math.floor((this.now - p.playlistDelay) / this.segMs) - 1;
    if (newest < 0) {
      p.waitUntil = this.visibleAt(p, 0);
      this.plan(p);
      p.nextSeq = -1;
      return;
    }
    p.nextSeq = Math.max(0, newest - (this.sc.player.liveSyncSegments - 1));
    this.load(p, INIT_SEQ, this.now);
  }

  private updatePlayhead(p: SimPeer): void {
    if (!p.playing) return;
    p.playhead = Math.min(p.bufEnd, p.playhead + (this.now - p.playT));
    p.playT = this.now;
  }

  private requestNext(p: SimPeer): void {
    if (!p.alive || p.loading) return;
    if (p.nextSeq < 0) { this.playerStart(p); return; }
    if (!p.initDone) { this.load(p, INIT_SEQ, this.now); return; }
    const k = p.nextSeq;
    const vis = this.visibleAt(p, k);
    if (vis > this.now) { p.waitUntil = vis; this.plan(p); return; }
    this.updatePlayhead(p);
    const ahead = p.started ? p.bufEnd - p.playhead : 0;
    if (ahead > this.sc.player.maxBufferS * 1000) { p.waitUntil = this.now + ahead - this.sc.player.maxBufferS * 1000; this.plan(p); return; }
    const deadline = computeDeadline(this.now, ahead / 1000, this.sc.stream.segmentS, {
      safetyMs: this.sc.player.safetyMs, maxWaitMs: this.sc.player.maxWaitSegments * this.sc.stream.segmentS * 1000,
    });
    this.load(p, k, deadline);
  }

  private load(p: SimPeer, seq: number, deadline: number): void {
    const ref = { rendition: p.rendition.name, seq };
    if (seq !== INIT_SEQ) p.engine.setPlaybackPosition(ref);
    p.loading = true;
    p.loadingSeq = seq;
    this.dirty = true;
    p.engine.loadSegment(ref, { deadline, httpMarginMs: this.sc.player.httpMarginMs }).then(
      (r) => this.onLoaded(p, seq, r),
      () => this.onLoadFailed(p),
    );
  }

  private onLoaded(p: SimPeer, seq: number, r: LoadResult): void {
    if (!p.alive) return;
    this.countHttp(p, seq, r.bytesBySource.http * this.K);
    p.loading = false;
    if (seq === INIT_SEQ) { p.initDone = true; this.requestNext(p); return; }
    this.updatePlayhead(p);
    p.bufEnd = (seq + 1) * this.segMs;
    p.nextSeq = seq + 1;
    if (!p.started) {
      p.started = true;
      p.startT = this.now;
      p.startupMs = this.now - p.joinT;
      p.playhead = seq * this.segMs;
      p.playT = this.now;
      p.playing = true;
    } else if (!p.playing) {
      p.stallMs += this.now - p.stallStart;
      p.playing = true;
      p.playT = this.now;
    }
    this.requestNext(p);
    this.plan(p);
  }

  private countHttp(p: SimPeer, seq: number, bytes: number): void {
    const h = this.httpByLoad;
    if (seq === INIT_SEQ) { h.init += bytes; return; }
    p.firstSeq ??= seq;
    const i = seq - p.firstSeq;
    if (i === 0) h.first += bytes;
    else if (i === 1) h.second += bytes;
    else if (i === 2) h.third += bytes;
    else h.later += bytes;
  }

  private onLoadFailed(p: SimPeer): void {
    if (!p.alive) return;
    p.loading = false;
    p.waitUntil = this.now + this.sc.player.retryMs;
    this.plan(p);
  }

  /** One wake-up per player: the earlier of "buffer runs dry" and "retry / next segment visible". */
  private plan(p: SimPeer): void {
    let t = Infinity;
    if (p.playing) t = p.playT + (p.bufEnd - p.playhead);
    if (p.waitUntil !== null && p.waitUntil < t) t = p.waitUntil;
    if (t === Infinity || t === p.wakeAt) return;
    p.wakeAt = t;
    const gen = ++p.wakeGen;
    this.q.at(t, () => this.wake(p, gen));
  }

  private wake(p: SimPeer, gen: number): void {
    if (gen !== p.wakeGen || !p.alive) return;
    p.wakeAt = -1;
    this.updatePlayhead(p);
    if (p.playing && p.playhead >= p.bufEnd - 1e-6) {
      p.playing = false;
      p.stallStart = this.now;
      p.stalls++;
    }
    if (p.waitUntil !== null && this.now >= p.waitUntil) {
      p.waitUntil = null;
      this.requestNext(p);
    }
    this.plan(p);
  }

  // ================================================================ engine ticks

  private tickGroup(gi: number): void {
    const g = this.tickGroups[gi];
    let w = 0;
    for (let i = 0; i < g.length; i++) {
      const p = g[i];
      if (!p.alive) continue;
      g[w++] = p;
      p.engine.tick();
    }
    g.length = w;
    if (gi === 0 && this.origin.alive) this.origin.engine.tick();
    this.q.at(this.now + this.sc.tickMs, () => this.tickGroup(gi));
  }

  // ================================================================ tracker and host

  private trackerReachable(p: SimPeer): boolean { return !this.outage && p.node.side === 0; }

  /** The tracker sees a peer go (its WebSocket closed, or it said goodbye). */
  private trackerRemove(rec: NonNullable<SimPeer['trackerRec']>): void {
    this.registry.remove(rec);
    this.noteChurn();
  }

  /**
   * A join or leave reached the tracker: with churn rounds on, a round CHURN_ROUND_DELAY_MS later,
   * at most one such round every CHURN_ROUND_GAP_MS (tracker/plugins/optimizer.ts noteChurn).
   */
  private noteChurn(): void {
    if (!this.optimizer || !this.sc.optimizer.churnRounds || this.churnRoundDue) return;
    this.churnRoundDue = true;
    const at = Math.max(this.now + CHURN_ROUND_DELAY_MS, this.lastChurnRoundAt + CHURN_ROUND_GAP_MS);
    this.q.at(at, () => {
      this.churnRoundDue = false;
      this.lastChurnRoundAt = this.now;
      this.optimizerRound();
    });
  }

  /**
   * One Chandelier round, as the tracker runs it: the overlay from what peers report (their
   * latest state; real reports are up to 5 s old, a documented optimism), the real optimizer,
   * then each changed parent sent to its child one tracker hop later. A tracker outage skips
   * rounds: peers keep their links and local repair goes on.
   */
  private optimizerRound(): void {
    if (!this.optimizer || this.outage) return;
    const view = (p: SimPeer, rendition: string | null): OptimizerPeerView => {
      const l = p.engine.links();
      const slots: Record<string, number> = {};
      for (const r of this.renditions) slots[r.name] = l.capacity[r.name] ?? 0;
      return {
        id: p.id, rendition, slots, nat: p.node.nat,
        scope: `${p.node.region}/${p.node.isp}`,
        bufferMs: p.started ? Math.max(0, p.bufEnd - p.playhead) : 0,
        parents: { ...l.parents },
        ...(l.spareKbps !== undefined ? { spareKbps: l.spareKbps } : {}),
        kbps: l.bitrateKbps,
        relays: p.relaying,
      };
    };
    const viewers: OptimizerPeerView[] = [];
    for (const p of this.peers) {
      if (!p.alive || !p.welcomed || !this.trackerReachable(p)) continue;
      this.updatePlayhead(p);
      viewers.push(view(p, p.rendition.name));
    }
    if (!this.origin.alive) return;
    const wall = performance.now();
    const { assignments, figures, relayChanges, relays } = this.optimizer.round(view(this.origin, null), viewers, this.renditions.map((r) => r.name));
    this.optimizerWallMs.push(performance.now() - wall);
    this.optRounds.push(figures);
    this.relayRequests += relayChanges.length;
    this.relaysInForce = relays;
    for (const c of relayChanges) {
      const p = this.byId.get(c.peerId);
      if (!p) continue;
      this.q.at(this.now + this.net.oneWay(this.trackerPlace, p.node), () => {
        if (!p.alive || !this.trackerReachable(p)) return;
        p.engine.setRelayRenditions(c.renditions);
        p.relaying = c.renditions.slice();
      });
    }
    for (const a of assignments) {
      const child = this.byId.get(a.peerId);
      if (!child) continue;
      this.q.at(this.now + this.net.oneWay(this.trackerPlace, child.node), () => {
        if (!child.alive || !this.trackerReachable(child)) return;
        child.engine.assignParent(a.rendition, a.parent);
        // the host connects to an assigned parent it is not linked with yet
        if (a.parent !== null && !child.conns.has(a.parent)) this.connect(child, a.parent, true);
      });
    }
  }

  private trackerJoin(p: SimPeer): void {
    if (!p.alive || p.welcomed || p.joining) return;
    p.joining = true;
    const rtt = 2 * this.net.oneWay(p.node, this.trackerPlace);
    const retry = () => {
      p.joining = false;
      const wait = p.trackerBackoffMs * (0.75 + 0.5 * this.hostRng.next());
      p.trackerBackoffMs = Math.min(30_000, p.trackerBackoffMs * 2);
      this.q.at(this.now + wait, () => this.trackerJoin(p));
    };
    if (!this.trackerReachable(p)) { this.q.at(this.now + rtt, retry); return; }
    this.q.at(this.now + rtt, () => {
      if (!p.alive) return;
      if (!this.trackerReachable(p)) { retry(); return; }
      p.joining = false;
      p.welcomed = true;
      p.trackerBackoffMs = 1000;
      this.counters.trackerJoins++;
      p.trackerRec = this.registry.add({
        peerId: p.id, kind: p.isOrigin ? (this.variant === 'mesh-pull' ? 'seeder' : 'origin') : 'browser',
        channel: CHANNEL, joinedAt: this.now, conn: p.idx,
      });
      this.noteChurn();
      // the NAT type travels in the peer's first report (PeerHost reports every 5 s)
      const rec = p.trackerRec;
      if (this.sc.tracker.natAware) this.q.at(this.now + 5000, () => { if (p.trackerRec === rec) this.nat.noteReport(rec, { nat: p.node.nat }); });
      if (p.isOrigin) return;
      // welcome: a plain sample, as tracker/plugins/signaling.ts does
      this.counters.trackerSamples++;
      this.onPeers(p, this.registry.sample(CHANNEL, { exclude: p.id, max: 10, maxInfra: 2, random: this.trackerRng }));
    });
  }

  /** A `peers` answer: NAT-ordered (NatTracker.prefer), as tracker/plugins/signaling.ts does. */
  private sampleFor(p: SimPeer, max: number): PeerInfo[] {
    this.counters.trackerSamples++;
    const sampler = (n: number) => this.registry.sample(CHANNEL, { exclude: p.id, max: n, maxInfra: 2, random: this.trackerRng });
    return this.sc.tracker.natAware && p.trackerRec ? this.nat.prefer(p.trackerRec, max, sampler) : sampler(max);
  }

  private trackerDown(): void {
    this.outage = true;
    this.registry = new Registry<number>();
    const all = [this.origin, ...this.peers];
    for (const p of all) {
      if (!p.alive) continue;
      p.welcomed = false;
      p.trackerRec = null;
      p.trackerBackoffMs = 1000;
      this.q.at(this.now + 1000 * (0.5 + this.hostRng.next()), () => this.trackerJoin(p));
    }
  }

  private requestPeers(p: SimPeer): void {
    if (!p.welcomed || this.now - p.lastPeersRequest < 2000) return;
    p.lastPeersRequest = this.now;
    const rtt = 2 * this.net.oneWay(p.node, this.trackerPlace);
    this.q.at(this.now + rtt, () => {
      if (!p.alive || !this.trackerReachable(p) || !p.welcomed) return;
      this.onPeers(p, this.sampleFor(p, Math.min(20, Math.max(this.sc.host.targetNeighbors * 2, 8))));
    });
  }

  private onPeers(p: SimPeer, peers: PeerInfo[]): void {
    for (const x of peers) {
      if (x.peerId === p.id) continue;
      p.known.delete(x.peerId);
      p.known.set(x.peerId, x);
    }
    while (p.known.size > 500) p.known.delete(p.known.keys().next().value as string);
    this.fill(p, peers.map((x) => x.peerId));
  }

  private inBackoff(p: SimPeer, id: string): boolean {
    const b = p.backoff.get(id);
    return b !== undefined && b.until > this.now;
  }

  private fill(p: SimPeer, preferred: string[] = []): void {
    if (!p.alive || !p.welcomed || p.isOrigin) return;
    const target = this.sc.host.targetNeighbors;
    if (p.conns.size >= target) return;
    const rest = [...p.known.keys()];
    for (let i = rest.length - 1; i > 0; i--) {
      const j = this.hostRng.int(i + 1);
      const t = rest[i]; rest[i] = rest[j]; rest[j] = t;
    }
    const seen = new Set<string>();
    for (const id of [...preferred, ...rest]) {
      if (p.conns.size >= target) break;
      if (seen.has(id)) continue;
      seen.add(id);
      if (id === p.id || p.conns.has(id) || this.inBackoff(p, id) || !p.known.has(id)) continue;
      if (!p.engine.wantsNeighbor(id)) continue;
      this.connect(p, id);
    }
  }

  private maintainGroup(gi: number, period: number): void {
    for (const p of this.tickGroups[gi]) {
      if (!p.alive) continue;
      for (const [id, b] of p.backoff) {
        if (b.until <= this.now && b.failures === 0) p.backoff.delete(id);
        else if (b.failures >= 6 && b.until <= this.now) { p.backoff.delete(id); p.known.delete(id); }
      }
      if (p.conns.size < this.sc.host.targetNeighbors) {
        this.fill(p);
        if (p.conns.size < this.sc.host.targetNeighbors) this.requestPeers(p);
      }
    }
    this.q.at(this.now + period, () => this.maintainGroup(gi, period));
  }

  /** PeerHost.seekParent for a group of viewers, every HOST_DEFAULTS.seekParentCheckMs as the host checks. */
  private seekGroup(gi: number): void {
    for (const p of this.tickGroups[gi]) if (p.alive) this.seekParent(p);
    this.q.at(this.now + HOST_DEFAULTS.seekParentCheckMs, () => this.seekGroup(gi));
  }

  /** PeerHost's eager checks in a joiner's first seekParentEagerMs, until its first parent request. */
  private seekEagerly(p: SimPeer, until: number): void {
    if (!p.alive || p.lastSeekAt !== -Infinity || p.hadParent || this.now >= until) return;
    this.seekParent(p);
    this.q.at(this.now + HOST_DEFAULTS.seekParentEagerCheckMs, () => this.seekEagerly(p, until));
  }

  /** No parent in its rendition for seekParentAfterMs: a peers request with parentFor, as PeerHost sends it. */
  private seekParent(p: SimPeer): void {
    if (!p.welcomed || this.now - p.lastSeekAt < HOST_DEFAULTS.seekParentEveryMs) return;
    const l = p.engine.links();
    const r = l.playing;
    if (r === undefined || l.parents[r] !== undefined) {
      if (r !== undefined) p.hadParent = true;
      p.parentlessSince = null;
      return;
    }
    p.parentlessSince ??= this.now;
    // PeerHost: not a joiner that asks at once when the tracker's optimizer places peers (welcome.optimizer)
    const joiner = p.lastSeekAt === -Infinity && !p.hadParent && this.variant !== 'chandelier';
    if (!joiner && this.now - p.parentlessSince < HOST_DEFAULTS.seekParentAfterMs) return;
    p.lastSeekAt = this.now;
    this.counters.parentSeeks++;
    const slots = Math.min(PARENT_REQUEST_MAX_SLOTS, l.capacity[r] ?? 0);
    const ow = this.net.oneWay(p.node, this.trackerPlace);
    this.q.at(this.now + ow, () => {
      if (!p.alive || !p.welcomed || !this.trackerReachable(p)) return;
      // still in the channel (the index may be a second old), and not relay-only by the NAT
      // table, which the tracker knows from reports only when natAware (as sampleFor)
      const mine = toNatType(p.node.nat);
      const reachable = (id: string) => {
        const q = this.byId.get(id);
        return q !== undefined && q.alive && (!this.sc.tracker.natAware || predictPair(mine, toNatType(q.node.nat)) !== 'relay');
      };
      const parents = pickParentCandidates(this.parentIndex(), { peerId: p.id, rendition: r, slots }, MAX_PARENT_CANDIDATES, this.trackerRng, reachable);
      const sample = this.sampleFor(p, Math.min(20, Math.max(this.sc.host.targetNeighbors * 2, 8)));
      this.q.at(this.now + ow, () => {
        if (!p.alive) return;
        this.onPeers(p, sample);
        // PeerHost.onParentCandidates -> connectToParent: as for an assignment, unless backed off after a failure
        for (const c of parents.slice(0, HOST_DEFAULTS.seekParentCandidates)) {
          if (p.conns.has(c.peerId)) continue;
          const b = p.backoff.get(c.peerId);
          if (b && b.failures > 0 && b.until > this.now) continue;
          this.counters.parentSeekConnects++;
          this.connect(p, c.peerId, true);
        }
      });
    });
  }

  /**
   * The tracker's parent-candidate index (tracker/parent-index.ts), rebuilt at most every
   * PARENT_INDEX_DEFAULTS.maxAgeMs from what the peers would report (their state now: real
   * reports are up to 5 s old, the same documented optimism as the optimizer's input).
   */
  private parentIndex(): Map<string, RenditionCandidates> {
    if (this.parentIdx && this.now - this.parentIdx.at < PARENT_INDEX_DEFAULTS.maxAgeMs) return this.parentIdx.index;
    const views: ParentView[] = [];
    for (const q of [this.origin, ...this.peers]) {
      if (!q.alive || !q.welcomed) continue;
      const l = q.engine.links();
      const depth: Record<string, number> = {};
      for (const [r, d] of Object.entries(l.depth)) if (d < NO_DEPTH) depth[r] = d;
      views.push({ peerId: q.id, kind: q.isOrigin ? 'origin' : 'browser', parents: l.parents, slots: l.capacity, depth });
    }
    this.parentIdx = { at: this.now, index: indexParentCandidates(views) };
    return this.parentIdx.index;
  }

  private setBackoff(p: SimPeer, id: string, failed: boolean): void {
    const b = p.backoff.get(id);
    const failures = (b?.failures ?? 0) + (failed ? 1 : 0);
    const ms = failed ? Math.min(300_000, 5000 * 2 ** Math.min(failures - 1, 20)) * (0.75 + 0.5 * this.hostRng.next()) : 3000;
    p.backoff.set(id, { failures, until: this.now + ms });
  }

  private afterChurn(p: SimPeer): void {
    if (!p.alive || p.isOrigin) return;
    this.fill(p);
    if (p.conns.size < this.sc.host.targetNeighbors) this.requestPeers(p);
  }

  /**
   * a offers to b through the tracker; b answers or rejects; ICE; the data channel opens.
   * `assigned`: the optimizer linked them (or a climbs toward b); a makes room (drops its least
   * useful neighbor) rather than refuse for being full, and so does b when `roomAtRemote`.
   */
  private connect(a: SimPeer, bId: string, assigned = false, roomAtRemote = assigned): void {
    if (assigned) this.makeRoom(a);
    this.counters.connectAttempts++;
    a.conns.set(bId, 'out');
    const started = this.now;
    const failA = (at: number) => this.q.at(at, () => {
      if (a.conns.get(bId) !== 'out') return;
      a.conns.delete(bId);
      this.counters.connectFailures++;
      if (!a.alive) return;
      this.setBackoff(a, bId, true);
      this.afterChurn(a);
    });
    const b = this.byId.get(bId);
    if (!this.trackerReachable(a) || !b) { failA(started + CONNECT_TIMEOUT_MS); return; }
    const toB = this.net.oneWay(a.node, this.trackerPlace) + this.net.oneWay(this.trackerPlace, b.node);
    this.q.at(this.now + toB, () => {
      if (!b.alive || !this.trackerReachable(b) || !a.alive) { failA(started + CONNECT_TIMEOUT_MS); return; }
      const back = toB;
      let pendingIn = 0;
      for (const v of b.conns.values()) if (v === 'in') pendingIn++;
      // PeerHost.makeRoomForIncoming: the claim is the offerer's own, so at most once per assignedRoomEveryMs
      if (roomAtRemote && !b.conns.has(a.id) && this.now - b.lastIncomingRoomAt >= HOST_DEFAULTS.assignedRoomEveryMs) {
        b.lastIncomingRoomAt = this.now;
        this.makeRoom(b);
      }
      if (b.conns.has(a.id) || !b.engine.wantsNeighbor(a.id) || (!assigned && pendingIn >= this.sc.host.maxPendingIncoming)) {
        failA(this.now + back);
        return;
      }
      b.conns.set(a.id, 'in');
      const direct = canConnectDirect(a.node.nat, b.node.nat) && a.node.side === b.node.side;
      const relay = !direct && this.sc.network.turn && a.node.side === 0 && b.node.side === 0 ? this.turnNode : undefined;
      const failB = (at: number) => this.q.at(at, () => {
        if (b.conns.get(a.id) !== 'in') return;
        b.conns.delete(a.id);
        if (b.alive) this.afterChurn(b);
      });
      if (!direct && !relay) { failA(started + CONNECT_TIMEOUT_MS); failB(started + CONNECT_TIMEOUT_MS); return; }
      const ow = relay ? this.net.oneWay(a.node, relay) + this.net.oneWay(relay, b.node) : this.net.oneWay(a.node, b.node);
      // answer back to a, then ICE check + DTLS + SCTP: about 3 round trips on the path, plus the stack's own setup time
      this.q.at(this.now + back + 6 * ow + this.sc.network.connectSetupMs, () => {
        const ok = a.alive && b.alive && a.conns.get(bId) === 'out' && b.conns.get(a.id) === 'in'
          && (relay ? a.node.side === 0 && b.node.side === 0 : a.node.side === b.node.side);
        if (!ok) { failA(this.now); failB(this.now); return; }
        this.openLink(a, b, relay);
      });
    });
  }

  /** Drops the least useful neighbor when the engine is full (as PeerHost's membership does). */
  private makeRoom(p: SimPeer): void {
    // the origin's maximum is its own (scenario origin.maxNeighbors), not the viewers'
    const max = p === this.origin ? this.sc.origin.maxNeighbors : (this.sc.engine.maxNeighbors as number | undefined) ?? ENGINE_DEFAULTS.maxNeighbors;
    if (p.conns.size < max) return;
    // an assigned link outranks any neighbor without an upload link, however young: the origin's
    // few neighbor places are always full of newcomers, and an assigned root could not get in
    const worst = p.engine.worstNeighbor(0);
    if (worst) p.engine.dropNeighbor(worst, 'room for an assigned link');
  }

  private openLink(a: SimPeer, b: SimPeer, relay: SimNode | undefined): void {
    if (relay) this.counters.relayedLinks++; else this.counters.directLinks++;
    const [la, lb] = this.net.connect(a.node, a.id, b.node, b.id, relay);
    a.conns.set(b.id, 'open');
    b.conns.set(a.id, 'open');
    a.backoff.delete(b.id);
    b.backoff.delete(a.id);
    this.wire(a, b.id, la);
    this.wire(b, a.id, lb);
    a.engine.addLink(la);
    b.engine.addLink(lb);
  }

  private wire(p: SimPeer, remoteId: string, l: SimLink): void {
    l.hostOnClose = () => {
      if (p.conns.get(remoteId) !== 'open') return;
      p.conns.delete(remoteId);
      if (!p.alive) return;
      this.setBackoff(p, remoteId, false);
      this.afterChurn(p);
    };
    if (!p.isOrigin) l.tap = (f) => this.tap(p, f);
  }

  // ================================================================ partitions

  private partitionStart(regions: string[]): void {
    const names = this.sc.geography.regions.map((r) => r.name);
    this.partitioned = new Set(regions.map((r) => names.indexOf(r)));
    for (const p of this.peers) {
      if (!p.alive || !this.partitioned.has(p.node.region)) continue;
      p.node.side = 1;
      // the tracker sees the far side's WebSockets die
      p.welcomed = false;
      const rec = p.trackerRec;
      p.trackerRec = null;
      if (rec) this.q.at(this.now + this.sc.churn.detectMs, () => this.trackerRemove(rec));
      if (this.variant !== 'http-only') this.q.at(this.now + this.sc.churn.detectMs, () => this.trackerJoin(p));
    }
    for (const p of this.peers) {
      if (!p.alive) continue;
      for (const l of [...p.node.links]) {
        if (l.peer.node.side !== p.node.side && !l.flow.cut) this.net.cutPath(l, this.sc.churn.detectMs);
      }
    }
    for (const l of [...this.origin.node.links]) if (l.peer.node.side !== 0 && !l.flow.cut) this.net.cutPath(l, this.sc.churn.detectMs);
  }

  private partitionHeal(): void {
    this.partitioned = null;
    for (const p of this.peers) if (p.alive) p.node.side = 0;
  }

  // ================================================================ metrics

  /** Piece frames delivered to viewers: records piece 0 of tracked segments. */
  private tap(p: SimPeer, f: Uint8Array): void {
    if (f[0] !== 0x04) return;
    const rl = f[1];
    const o = 2 + rl;
    if (f[o + 4] !== 0 || f[o + 5] !== 0) return; // index != 0
    const seq = (f[o] << 24) | (f[o + 1] << 16) | (f[o + 2] << 8) | f[o + 3];
    let name = '';
    for (let i = 0; i < rl; i++) name += String.fromCharCode(f[2 + i]);
    this.recordPiece0(p, name, seq);
  }

  private recordPiece0(p: SimPeer, rendition: string, seq: number): void {
    if (p.seen0[seq & 63] === seq || rendition !== p.rendition.name) return;
    p.seen0[seq & 63] = seq;
    const tr = this.tracked.get(`${rendition}/${seq}`);
    if (!tr) return;
    tr.piecePeers.push(p.idx);
    tr.pieceDelays.push(this.now - tr.publishT);
  }

  private finalizeTracked(key: string): void {
    const tr = this.tracked.get(key);
    if (!tr) return;
    this.tracked.delete(key);
    const horizon = this.now;
    const eligible = new Set<number>();
    for (const p of this.peers) {
      if (p.alive && p.rendition.index === tr.rendition && p.joinT + SETTLE_MS <= tr.publishT && p.leaveT > horizon) eligible.add(p.idx);
    }
    const q3 = (peers: number[], delays: number[]): [number | null, number | null, number | null] => {
      const d: number[] = [];
      for (let i = 0; i < peers.length; i++) if (eligible.has(peers[i])) d.push(delays[i]);
      d.sort((x, y) => x - y);
      const at = (f: number) => {
        const need = Math.max(1, Math.ceil(f * eligible.size));
        return need <= d.length ? Math.round(d[need - 1] * 10) / 10 : null;
      };
      return [at(0.5), at(0.9), at(0.99)];
    };
    if (eligible.size === 0) return;
    this.dissemination.push({
      seq: tr.seq, t: Math.round(tr.publishT), eligible: eligible.size,
      piece: q3(tr.piecePeers, tr.pieceDelays), segment: q3(tr.segPeers, tr.segDelays),
    });
  }

  private sample(): void {
    const K = this.K;
    let fromPeers = this.departed.fromPeers, fromOriginPeer = this.departed.fromOriginPeer, fromHttp = this.departed.fromHttp;
    let online = 0, watching = 0, stalled = 0, sumUp = 0, sumR = 0, neighbors = 0, fed = 0, depthSum = 0;
    const lat: number[] = [];
    const watched = new Set<number>();
    w: for (const p of this.peers) {
      if (!p.alive) continue w;
      online++;
      const s = p.engine.stats();
      fromPeers += s.bytesFromPeers;
      fromOriginPeer += s.bytesFromOriginPeer;
      fromHttp += s.bytesFromHttp;
      neighbors += s.peers;
      if (!p.started) continue;
      watching++;
      this.updatePlayhead(p);
      if (!p.playing) stalled++;
      const l = this.now - p.playhead;
      lat.push(l);
      p.latencySum += l;
      p.latencyN++;
      sumUp += p.uploadKbps;
      sumR += p.rendition.kbps;
      watched.add(p.rendition.index);
      const depth = fedDepth(p.engine.links(), p.rendition.name);
      if (depth !== null) {
        fed++;
        depthSum += depth;
      }
    }
    const originUp = this.origin.engine.stats().bytesUploaded;
    if (this.variant === 'mesh-pull') { fromPeers -= originUp; fromOriginPeer += originUp; }
    const dt = (this.now - this.last.t) / 1000;
    const dPeers = fromPeers - this.last.fromPeers;
    const dTotal = dPeers + (fromOriginPeer - this.last.fromOriginPeer) + (fromHttp - this.last.fromHttp);
    lat.sort((x, y) => x - y);
    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    this.series.push({
      t: Math.round(this.now / 1000),
      online, watching, stalled,
      offload: dTotal > 0 ? r3(dPeers / dTotal) : null,
      originPeerMbps: r3(((originUp - this.last.originUp) * K * 8) / 1e6 / dt),
      httpMbps: r3(((this.httpBytes - this.last.http) * 8) / 1e6 / dt),
      fluidBound: watching > 0 ? r3(Math.min(1, (this.sc.origin.uploadKbps + sumUp) / sumR)) : null,
      offloadBound: watching > 0 ? r3(Math.max(0, Math.min(sumUp / sumR, 1 - watched.size / watching))) : null,
      latencyMeanS: lat.length ? r3(lat.reduce((a, b) => a + b, 0) / lat.length / 1000) : null,
      latencyP95S: lat.length ? r3(lat[Math.min(lat.length - 1, Math.floor(0.95 * lat.length))] / 1000) : null,
      neighborsMean: online > 0 ? r3(neighbors / online) : null,
      treeCoverage: watching > 0 ? r3(fed / watching) : null,
      depthMean: fed > 0 ? r3(depthSum / fed) : null,
    });
    this.last = { fromPeers, fromOriginPeer, fromHttp, originUp, http: this.httpBytes, t: this.now };
    // Drop departed peers from the scan list at every sample: every loop over it skips them, and
    // each one kept its engine and that engine's store alive (with churn, the population turned
    // over before they went, so up to twice the live engines were held).
    if (online < this.peers.length) {
      let w = 0;
      for (const p of this.peers) if (p.alive) this.peers[w++] = p;
      this.peers.length = w;
    }
    this.onProgress?.({ t: this.now / 1000, online, watching, offload: dTotal > 0 ? dPeers / dTotal : null, events: this.q.processed });
  }

  private finish(): WorldResult {
    for (const p of this.peers) if (p.alive) this.finalizePeer(p);
    const o = this.origin.engine.stats();
    const sum = (f: (x: PeerFinal) => number) => this.finals.reduce((a, x) => a + f(x), 0);
    // mesh-pull: the origin is a plain seeding peer, so viewers count its bytes as "from peers"
    const reclass = this.variant === 'mesh-pull' ? o.bytesUploaded * this.K : 0;
    const med = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : 0; };
    const rounds = this.optRounds;
    const total = (f: (r: RoundFigures) => number) => rounds.reduce((a, r) => a + f(r), 0);
    return {
      optimizer: this.optimizer ? {
        rounds: rounds.length, moves: total((r) => r.moves), swaps: total((r) => r.swaps), placed: total((r) => r.placed),
        assignments: total((r) => r.assignments), unhonoured: total((r) => r.unhonoured),
        unplacedMean: rounds.length ? Math.round((total((r) => r.unplaced) / rounds.length) * 10) / 10 : 0,
        relayRequests: this.relayRequests, relaysAtEnd: this.relaysInForce,
      } : null,
      variant: this.variant,
      viewersCreated: this.viewerCount,
      finals: this.finals,
      series: this.series,
      dissemination: this.dissemination,
      totals: {
        fromPeers: sum((x) => x.fromPeers) - reclass,
        fromOriginPeer: sum((x) => x.fromOriginPeer) + reclass,
        fromHttp: sum((x) => x.fromHttp),
        originPeerUpload: o.bytesUploaded * this.K,
        httpUpload: this.httpBytes,
        turnBytes: this.net.turnBytes,
        rejectedFrames: this.rejected,
        badPieces: this.departed.badPieces,
        ...this.counters,
      },
      httpByLoad: { ...this.httpByLoad },
      medians: { uploadKbps: med(this.upSamples), oneWayMs: Math.round(med(this.owSamples) * 10) / 10 },
      events: this.q.processed,
      frames: framesByName(this.net.framesByType),
    };
  }
}

export type { PieceSource };

/** Frame counts by the protocol's message names (lower case), in type order; types never seen are left out. */
function framesByName(byType: readonly number[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, type] of Object.entries(MsgType).sort((a, b) => a[1] - b[1])) {
    if (byType[type] > 0) out[name.toLowerCase().replace(/_/g, '-')] = byType[type];
  }
  return out;
}
