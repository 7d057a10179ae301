/**
 * The P2P engine (EngineApi): one per channel. Pure: time comes from options.clock, randomness
 * from options.random, hashing/signatures from options.crypto, data channels are Links handed
 * over with addLink, and the host calls tick() every ~50 ms (every timeout is checked there).
 *
 * Wire protocol: codec.ts and docs/protocol.md ("Peer wire protocol v1").
 */
import { INIT_SEQ, silentLogger } from './types.js';
import type {
  Clock, CryptoProvider, EngineStats, HttpSource, Link, Logger, PeerKind, PieceSource, Random, SegmentRef,
} from './types.js';
import type { EngineApi, EngineEvents, EngineOptions, LoadOptions, LoadResult, NeighborStat } from './engine-api.js';
import { decodeManifest, pieceRange, verifyPiece, type Manifest } from './manifest.js';
import { isValidName } from './paths.js';
import {
  decodeFrame, encodeFrame, MAX_WIRE_MANIFEST_BYTES, NO_DEPTH, PEER_ID_PATTERN, PROTOCOL_VERSION, RevokeReason,
  type Frame, type HaveFrame, type HelloFrame, type PieceFrame, type RequestFrame, type CancelFrame,
  type SlotGrantFrame, type SlotRevokeFrame, type SlotRequestFrame, type StatusFrame,
} from './codec.js';
import { SegmentStore, segmentKey, type SegmentEntry } from './store.js';
import {
  coalesce, fallbackPieces, pushWillDeliver, requestWindow, HttpTimer, RequestTracker, schedule, type SchedNeighbor, type SchedSegment,
} from './scheduler.js';
import { getBit } from './bitfield.js';
import { childAncestors, emptyAncestors, filterKey, mayContain } from './ancestors.js';
import { capacityClass, deadlineBucket, LogicalClock, SlotTable, type SlotPriority } from './slots.js';

/** Defaults of the optional EngineOptions. */
export const ENGINE_DEFAULTS = {
  maxNeighbors: 8,
  windowSegments: 30,
  maxInflightPerNeighbor: 16,
  requestTimeoutMs: 2000,
  /**
   * Bytes a link may hold unsent before the engine stops feeding it. Shallow on purpose: what sits
   * in a transport's buffer is sent in arrival order and shares the uplink with every other
   * channel, so a deep buffer undoes the engine's own order (pushes to children before answers to
   * requests). Links with bufferedAmountLow (Link.onLow) are refilled at once; others each tick.
   * Simulator, 300 viewers: 54% from peers with 1 MiB, 68% with 64 KiB.
   */
  maxBufferedBytes: 64 * 1024,
  /** Upload cap of browser peers when none is given (kbit/s). */
  browserUploadKbps: 4000,
  /** Children of non-origin peers. */
  maxChildren: 8,
  /**
   * The origin's upload budget: children in all, and per rendition. One per rendition keeps small
   * swarms fed by peers (5 werift viewers: 61% from peers with one, 25% with two); large
   * audiences should configure two (maxChildrenPerRendition), so that the departure of a single
   * root does not orphan a whole rendition (simulator, 300 viewers with churn: 20-40 s near 40%
   * from peers with one root; bench/RESULTS.md "Where the last points go").
   */
  originMaxChildren: 2,
  originMaxChildrenPerRendition: 1,
} as const;

/** Engine limits (not options: part of the protocol's behaviour, see docs/protocol.md). */
export const ENGINE_LIMITS = {
  /** A neighbor that has not sent HELLO within this many ms is dropped. */
  helloTimeoutMs: 10_000,
  /** An open neighbor hears from us at least this often: KEEPALIVE when nothing else went out. */
  keepaliveMs: 1000,
  /**
   * An open neighbor silent this long is gone (closed tab, crash, dead path) and is closed. The
   * transport notices much later (browsers: ICE consent, 10-30 s), and until then a parent that
   * vanished starves its whole subtree. Four keepalive periods: a busy uplink or a throttled
   * background tab delays frames, it does not stop them.
   */
  silentNeighborMs: 4000,
  /**
   * An upload link (parent or child) silent this long ends, the neighbor stays until
   * silentNeighborMs: in a live stream a parent pushes pieces and a child announces them without
   * pause, so two keepalive periods of silence there mean a peer that is gone, and every
   * second of waiting is a second its whole subtree goes without a feed.
   */
  silentLinkMs: 2000,
  /** Bad pieces from one neighbor before it is banned. */
  maxBadPieces: 3,
  /** Penalised rejected frames from one neighbor before it is banned. */
  maxRejectedFrames: 50,
  /** Piece requests queued per neighbor; extras are dropped and counted. */
  maxQueuedRequests: 256,
  /** Renditions remembered per neighbor, announced by it (haveRenditions) and to it (toldRenditions). */
  maxRenditions: 16,
  /** HAVE entries remembered per neighbor. */
  maxHaveEntries: 1024,
  /** Piece keys remembered per neighbor (cancelled requests, pieces it sent bad). */
  maxRememberedPieces: 1024,
  /** Banned peer ids remembered. */
  maxBanned: 4096,
  /**
   * A neighbor's request window (scheduler.ts requestWindow): the pieces it delivers in this many
   * ms at its measured rate, at least minRequestWindow, initialRequestWindow before a measurement,
   * at most maxInflightPerNeighbor.
   */
  requestWindowMs: 1000,
  minRequestWindow: 2,
  initialRequestWindow: 2,
  /** A stale (timed-out) request is cancelled after this many request timeouts. */
  forgetAfterTimeouts: 4,
  /** Interest 'all' fetches the newest segment of each rendition and this many before it. */
  backlogSegments: 3,
  /**
   * A peer fed by a parent (upload link) waits this long after learning of a segment before it
   * pulls pieces the parent has not pushed yet from other neighbors (mesh repair): capped at one
   * segment duration...
   */
  pushWaitMs: 1500,
  /** ...unless a pending load's HTTP fallback time is this close: then it repairs at once. */
  urgentMs: 750,
  /**
   * What a last HTTP fetch is assumed to take before any was measured: the pieces a parent's push
   * is still delivering are waited for until deadline minus the fetch time (see pushLeft).
   */
  httpFetchGuessMs: 300,
  /**
   * A peer with no open neighbor fetches what no neighbor can serve over HTTP at once instead of
   * waiting for the deadline ("alone")... but not in its first joinGraceMs, before it ever had a
   * neighbor: a joiner's first connections open a few hundred ms after it asks for its catch-up
   * segments, which are complete at every neighbor. Counting it alone then fetched all of them
   * over HTTP at once, most of the HTTP bytes of a 3-minute swarm. Waiting is safe: the deadline
   * fallback still fetches at deadline - margin.
   */
  joinGraceMs: 3000,
  /** A SLOT_REQUEST unanswered this long counts as refused. */
  slotRequestTimeoutMs: 3000,
  /** A neighbor that refused or revoked a slot is not asked again for this long. */
  slotRefusedMs: 5000,
  /** After losing a parent, wait this long before choosing another (lets depths settle: no cycles). */
  parentHoldDownMs: 300,
  /**
   * A preempted child keeps being pushed to this long (its slot went to a higher priority), and
   * keeps its parent meanwhile, while it asks elsewhere: make-before-break for the preempted
   * side too. Preempting a child that feeds a subtree used to orphan the whole subtree at once.
   */
  handoverMs: 3000,
  /** A parent that has had no feed (depth NO_DEPTH) this long is given up. */
  parentNoFeedMs: 1500,
  /** Pieces pushed by a former parent are accepted this long after the link ended. */
  pushGraceMs: 3000,
  /** After a rendition switch the old rendition's parent is kept this long (make-before-break). */
  switchOverlapMs: 4000,
  /**
   * Depth at which a peer stops accepting children: a last guard against count-to-infinity (the
   * feasibility rule below prevents cycles). Trees grown by random attachment are about e·ln N
   * deep before upgrades flatten them, so this must sit well above log2 of the audience.
   */
  maxDepth: 40,
  /**
   * After losing its parent a peer only accepts a new parent shallower than it was itself (its
   * descendants still announce deeper, stale depths: picking one of them would close a cycle),
   * for this long; by then its descendants have learnt it has no feed.
   */
  feasibleMs: 3000,
  /** An optimizer assignment not honoured (granted) within this long is dropped: local choice resumes. */
  assignmentTimeoutMs: 8000,
  /** An assigned parent that refused is asked again after this long. */
  assignmentRetryMs: 1000,
  /** A fed peer looks for a parent at least two hops shallower this often (make-before-break upgrade). */
  upgradeEveryMs: 2000,
  /** A peer that feeds three or more climbs (asks its host for a link to a neighbor's parent) at most this often. */
  climbEveryMs: 5000,
  /** The same climb target is not asked for again within this long. */
  climbRetryMs: 30_000,
  /** A peer serving children only drops a non-child neighbor open this long when it is full. */
  idleNeighborMs: 10_000,
  /** worstNeighbor() considers neighbors open at least this long. */
  neighborMinAgeMs: 15_000,
  /** Token-bucket burst of the upload cap, ms of the rate (at least one 64 KiB piece). */
  uploadBurstMs: 100,
  /** Bitrate assumed for a rendition before any manifest tells (kbit/s). */
  defaultBitrateKbps: 1000,
  /** Slots are sized with this headroom over the rendition's measured bitrate. */
  slotHeadroom: 1.05,
} as const;

/** Rejection reasons that do not count towards a ban (benign races, forward compatibility). */
const BENIGN_REJECTIONS = new Set(['unknown-type', 'request-unheld', 'request-queue-full', 'request-not-child']);

type NeighborState = 'hello' | 'open' | 'closed';

interface HaveEntry { ref: SegmentRef; pieceCount: number; bitfield: Uint8Array }
interface QueuedRequest { ref: SegmentRef; index: number }
interface NeighborStatus {
  depth: number; free: number; capacity: number; noFeedSince: number | null; ancestors: Uint8Array | null;
  /** Its parent in the rendition, as its STATUS says (climbing). */
  parent: string | null;
}

interface Neighbor {
  id: string;
  link: Link;
  state: NeighborState;
  kind: PeerKind | null;
  addedAt: number;
  have: Map<string, HaveEntry>;
  /** Renditions it announced pieces of (HAVE with a piece set): the renditions it plays or relays. */
  haveRenditions: Set<string>;
  /** Renditions we announced pieces of to it (so it knows we are in them: see holdsAllWeHave). */
  toldRenditions: Set<string>;
  /** Segment keys whose manifest this neighbor has (it sent it, or we did). */
  knowsManifest: Set<string>;
  queue: QueuedRequest[];
  /** Piece keys we cancelled or whose request was dropped: a late PIECE is not a violation. */
  cancelled: Set<string>;
  /** Piece keys this neighbor sent corrupted: never ask it for them again. */
  badFor: Set<string>;
  badPieces: number;
  rejected: number;
  /** Piece payload bytes sent to / verified from this neighbor. */
  bytesSent: number;
  bytesReceived: number;
  /** bytesSent + bytesReceived at the previous worstNeighbor() call. */
  bytesMark: number;
  /** Pieces to push to this child (upload link), before answering its requests. */
  pushQueue: QueuedRequest[];
  /** Its STATUS per rendition. */
  status: Map<string, NeighborStatus>;
  /** Rendition -> clock time until which we do not ask it for a slot again. */
  refusedUntil: Map<string, number>;
  /** Rendition -> clock time until which its pushed pieces are still accepted (former parent). */
  pushGraceUntil: Map<string, number>;
  /** Measured delivery rate of our requests (bytes/ms, EWMA; 0 = unknown). */
  throughput: number;
  lastRecvAt: number;
  /** Segments whose progress this neighbor has not been told of yet (HAVE coalescing, flushed on tick). */
  haveDue: Map<string, SegmentEntry>;
  /** Clock time of its last frame, and of our last frame to it (liveness: keepaliveMs, silentNeighborMs). */
  lastHeardAt: number;
  lastSentAt: number;
  /** Its pushes to us: segment key of the last pushed piece, when it came, mean gap between pushed pieces of one segment (ms, EWMA; 0 = unknown). */
  pushKey: string;
  pushAt: number;
  pushGapMs: number;
}

interface PendingLoad {
  ref: SegmentRef;
  key: string;
  deadline: number;
  httpMarginMs: number;
  firstByteAt: number | null;
  promise: Promise<LoadResult>;
  resolve: (r: LoadResult) => void;
  reject: (e: Error) => void;
  manifestFetching: boolean;
  /** Piece indexes being fetched over HTTP. */
  httpPieces: Set<number>;
  /** The whole segment fetched alongside its manifest (HttpSource.fetchSegment): while pending, no ranges. */
  body: { pending: boolean; bytes: Uint8Array | null } | null;
  done: boolean;
}

type Handler<K extends keyof EngineEvents> = (e: EngineEvents[K]) => void;

function pieceKey(ref: SegmentRef, index: number): string {
  return `${ref.rendition}/${ref.seq}/${index}`;
}

function remember(set: Set<string>, key: string, cap: number): void {
  set.delete(key);
  set.add(key);
  if (set.size > cap) set.delete(set.values().next().value as string);
}

/** The neighbor has a REQUEST for this piece queued with us (it gets it that way, not pushed). */
/** The announced bitfield has a piece ours lacks. */
function offersMissing(theirs: Uint8Array, ours: Uint8Array): boolean {
  const len = Math.min(theirs.length, ours.length);
  for (let i = 0; i < len; i++) if (theirs[i] & ~ours[i]) return true;
  return false;
}

function requested(n: { queue: QueuedRequest[] }, ref: SegmentRef, index: number): boolean {
  for (const q of n.queue) if (q.index === index && q.ref.seq === ref.seq && q.ref.rendition === ref.rendition) return true;
  return false;
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class Engine implements EngineApi {
  readonly peerId: string;
  readonly kind: PeerKind;
  readonly channel: string;

  private readonly publicKey: Uint8Array;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly crypto: CryptoProvider;
  private readonly log: Logger;
  private readonly http: HttpSource | undefined;
  /** Segment key -> clock time its manifest became known here. */
  private readonly manifestAt = new Map<string, number>();
  /** Segment key -> clock times of its first and latest piece arrival. */
  private readonly arrivals = new Map<string, { first: number; last: number }>();
  /** Upload slots (children) and the Lamport clock of slot priorities. */
  private readonly slots: SlotTable;
  private readonly lamport = new LogicalClock();
  /** Rendition -> our parent's peer id (upload link into us). */
  private readonly parents = new Map<string, string>();
  /** Rendition -> the outstanding SLOT_REQUEST. */
  private readonly asking = new Map<string, { peerId: string; at: number; upgrade: boolean; assigned: boolean }>();
  /** Parent side: rendition -> preempted children still pushed to, and until when. */
  private readonly handover = new Map<string, Map<string, number>>();
  /** Child side: rendition -> our parent preempted us; we keep it until `until` while asking elsewhere. */
  private readonly preemptedBy = new Map<string, { peerId: string; until: number }>();
  /** Rendition -> the optimizer's assigned parent: when assigned, and when we last asked it. */
  private readonly assigned = new Map<string, { peerId: string; at: number; askedAt: number }>();
  /** Rendition -> the newest seq we knew when the current parent took us (it pushes from there on). */
  private readonly pushedFrom = new Map<string, number>();
  /** Rendition -> when we last lost (or gave up) a parent. */
  private readonly lostParentAt = new Map<string, number>();
  /** Rendition -> our depth when we lost our parent, and until when it bounds a new parent's depth. */
  private readonly feasible = new Map<string, { depth: number; until: number }>();
  /** Rendition -> when we last looked for a shallower parent. */
  private readonly upgradeAt = new Map<string, number>();
  /** Renditions relayed on the optimizer's request (setRelayRenditions). */
  private relay = new Set<string>();
  /** Rendition -> when it stopped being wanted (old rendition after a switch). */
  private readonly unwantedSince = new Map<string, number>();
  /** Rendition -> measured bitrate (kbit/s, EWMA over manifests). */
  private readonly bitrate = new Map<string, number>();
  /** Rendition -> the STATUS we last broadcast ("depth/free"). */
  private readonly lastStatus = new Map<string, string>();
  /** Scratch set of wanted() (segments already considered in this pass). */
  private readonly wantedSeen = new Set<string>();
  /** Climbing (maybeClimb): when we last asked for a link, and targets not to ask for again until. */
  private lastClimbAt = -Infinity;
  /** The tracker's optimizer has sent us an assignment: class-2 upgrades and climbing stay off. */
  private steered = false;
  private readonly climbTried = new Map<string, number>();
  private readonly httpTimer = new HttpTimer();
  private readonly uploadBytesPerMs: number;
  private readonly serveChildrenOnly: boolean;
  private readonly pushEnabled: boolean;
  private readonly maxChildren: number;
  private readonly maxChildrenPerRendition: number;
  private uploadAllowance = 0;
  private lastRefill: number;
  /** For the join grace (ENGINE_LIMITS.joinGraceMs): when this engine started, and whether it ever had an open neighbor. */
  private readonly createdAt: number;
  private hadNeighbor = false;
  private lastEviction = -Infinity;
  private pumpStart = 0;
  private readonly interest: EngineOptions['interest'];
  private readonly maxNeighbors: number;
  private readonly windowSegments: number;
  private readonly maxInflight: number;
  private readonly requestTimeoutMs: number;
  private readonly maxBufferedBytes: number;

  private readonly store: SegmentStore;
  private readonly requests = new RequestTracker();
  private readonly neighbors = new Map<string, Neighbor>();
  /** The neighbors as an array for pumpAll's rotation; rebuilt after a neighbor comes or goes (a fresh copy per pump was garbage on every piece). */
  private neighborArray: Neighbor[] | null = null;
  private readonly banned = new Set<string>();
  private readonly loads = new Map<string, PendingLoad>();
  private readonly handlers = new Map<keyof EngineEvents, Set<(e: never) => void>>();
  private position: SegmentRef | null = null;
  private closed = false;
  private scheduling = false;
  private rescheduleWanted = false;

  private readonly counters = {
    bytesFromPeers: 0,
    bytesFromOriginPeer: 0,
    bytesFromHttp: 0,
    bytesUploaded: 0,
    badPieces: 0,
    duplicatePieces: 0,
    /** Of the duplicates: pieces a parent pushed, and pieces whose held copy came over HTTP. */
    duplicatePushes: 0,
    duplicatesOfHttp: 0,
    latePieces: 0,
    requestsSent: 0,
    requestTimeouts: 0,
    piecesPushed: 0,
    pushedReceived: 0,
    slotGrants: 0,
    slotRevokes: 0,
    slotRefusals: 0,
    parentChanges: 0,
    climbs: 0,
    silentNeighbors: 0,
    /**
     * Pieces fetched over HTTP, by the state when the fallback took them: alone (no open neighbor),
     * the whole segment with its manifest (nothing known of it at the deadline), no parent in the
     * rendition, a parent pushing another segment, a parent pushing this one too slowly.
     */
    httpAlone: 0,
    httpUnknown: 0,
    httpNoParent: 0,
    httpParentElsewhere: 0,
    httpParentSlow: 0,
  };
  private readonly rejectedFrames: Record<string, number> = {};
  /** Parents lost, by why (debugStats; the swarm bench prints them): keys are ours, never network text. */
  private readonly parentLosses: Record<string, number> = {};

  constructor(options: EngineOptions) {
    if (!PEER_ID_PATTERN.test(options.peerId)) throw new TypeError('invalid peerId');
    if (!isValidName(options.channel)) throw new TypeError('invalid channel');
    if (!(options.publicKey instanceof Uint8Array) || options.publicKey.length !== 32) throw new TypeError('publicKey must be 32 bytes');
    if (!['origin', 'seeder', 'browser'].includes(options.kind)) throw new TypeError('invalid kind');
    if (!['all', 'following', 'none'].includes(options.interest)) throw new TypeError('invalid interest');
    const posInt = (v: number | undefined, d: number, name: string): number => {
      const x = v ?? d;
      if (!Number.isInteger(x) || x < 1) throw new TypeError(`${name} must be a positive integer`);
      return x;
    };
    this.peerId = options.peerId;
    this.kind = options.kind;
    this.channel = options.channel;
    this.publicKey = options.publicKey;
    this.clock = options.clock;
    this.random = options.random;
    this.crypto = options.crypto;
    this.log = options.log ?? silentLogger;
    this.http = options.http;
    this.interest = options.interest;
    this.maxNeighbors = posInt(options.maxNeighbors, ENGINE_DEFAULTS.maxNeighbors, 'maxNeighbors');
    this.windowSegments = posInt(options.windowSegments, ENGINE_DEFAULTS.windowSegments, 'windowSegments');
    this.maxInflight = posInt(options.maxInflightPerNeighbor, ENGINE_DEFAULTS.maxInflightPerNeighbor, 'maxInflightPerNeighbor');
    this.requestTimeoutMs = posInt(options.requestTimeoutMs, ENGINE_DEFAULTS.requestTimeoutMs, 'requestTimeoutMs');
    this.maxBufferedBytes = posInt(options.maxBufferedBytes, ENGINE_DEFAULTS.maxBufferedBytes, 'maxBufferedBytes');
    this.store = new SegmentStore({ windowSegments: this.windowSegments });
    const isOrigin = options.kind === 'origin';
    const limit = options.uploadLimitKbps ?? (options.kind === 'browser' ? ENGINE_DEFAULTS.browserUploadKbps : 0);
    if (!Number.isFinite(limit) || limit < 0) throw new TypeError('uploadLimitKbps must be >= 0');
    this.uploadBytesPerMs = limit > 0 ? limit / 8 : Infinity;
    this.maxChildren = options.maxChildren ?? (isOrigin ? ENGINE_DEFAULTS.originMaxChildren : ENGINE_DEFAULTS.maxChildren);
    if (!Number.isInteger(this.maxChildren) || this.maxChildren < 0) throw new TypeError('maxChildren must be an integer >= 0');
    this.maxChildrenPerRendition = options.maxChildrenPerRendition ?? (isOrigin ? ENGINE_DEFAULTS.originMaxChildrenPerRendition : Infinity);
    if (!(this.maxChildrenPerRendition >= 1)) throw new TypeError('maxChildrenPerRendition must be >= 1');
    this.serveChildrenOnly = options.serveChildrenOnly ?? isOrigin;
    this.pushEnabled = options.push ?? true;
    this.slots = new SlotTable({ maxSlots: this.maxChildren, capacityKbps: limit > 0 ? limit * 0.95 : Infinity });
    this.lastRefill = this.clock.now();
    this.createdAt = this.lastRefill;
    this.uploadAllowance = this.uploadBurst(); // a full bucket to start with
  }

  private uploadBurst(): number {
    return Math.max(65_536, this.uploadBytesPerMs * ENGINE_LIMITS.uploadBurstMs);
  }

  // ================================================================ public API

  wantsNeighbor(peerId: string): boolean {
    return !this.closed && peerId !== this.peerId && !this.banned.has(peerId) && !this.neighbors.has(peerId)
      && this.neighbors.size < this.maxNeighbors;
  }

  addLink(link: Link): void {
    if (this.closed || !this.wantsNeighbor(link.remoteId)) {
      this.log.debug({ peer: link.remoteId }, 'link refused');
      link.onMessage = null;
      link.onClose = null;
      try { link.close(); } catch { /* already closed */ }
      return;
    }
    const n: Neighbor = {
      id: link.remoteId, link, state: 'hello', kind: null, addedAt: this.clock.now(),
      have: new Map(), haveRenditions: new Set(), toldRenditions: new Set(), knowsManifest: new Set(), queue: [], cancelled: new Set(), badFor: new Set(),
      badPieces: 0, rejected: 0, bytesSent: 0, bytesReceived: 0, bytesMark: 0,
      pushQueue: [], status: new Map(), refusedUntil: new Map(), pushGraceUntil: new Map(), throughput: 0, lastRecvAt: 0,
      haveDue: new Map(), lastHeardAt: this.clock.now(), lastSentAt: this.clock.now(),
      pushKey: '', pushAt: 0, pushGapMs: 0,
    };
    this.neighbors.set(n.id, n);
    this.neighborArray = null;
    link.onClose = () => this.closeNeighbor(n, 'link closed');
    link.lowThreshold = this.maxBufferedBytes / 2;
    link.onLow = () => { if (n.state === 'open') this.pumpAll(); };
    // HELLO goes out before onMessage is installed: a Link may deliver frames it queued before
    // addLink synchronously from the onMessage setter, and our answer must follow our HELLO.
    if (!this.send(n, { type: 'hello', version: PROTOCOL_VERSION, peerId: this.peerId, kind: this.kind, channel: this.channel })) return;
    link.onMessage = (frame) => this.onFrame(n, frame);
  }

  tick(): void {
    if (this.closed) return;
    const now = this.clock.now();
    this.checkLiveness(now);
    const { timedOut, forgotten } = this.requests.expire(
      now, this.requestTimeoutMs, this.requestTimeoutMs * ENGINE_LIMITS.forgetAfterTimeouts);
    this.counters.requestTimeouts += timedOut.length;
    for (const r of timedOut) this.log.debug({ peer: r.neighborId, ref: r.ref, index: r.index }, 'request timed out');
    for (const r of forgotten) {
      const n = this.neighbors.get(r.neighborId);
      if (n && n.state === 'open') {
        remember(n.cancelled, pieceKey(r.ref, r.index), ENGINE_LIMITS.maxRememberedPieces);
        this.send(n, { type: 'cancel', rendition: r.ref.rendition, seq: r.ref.seq, index: r.index, count: 1 });
      }
    }
    this.flushHaves();
    for (const [r, h] of this.handover) for (const [id, until] of h) if (until <= now) this.endHandover(id, r);
    this.pumpAll();
    this.checkLoads();
    this.maintainParents();
    this.broadcastStatus();
    this.evictIdleNeighbor(now);
    this.runSchedule();
  }

  /**
   * Liveness of neighbors, on every tick: HELLO must come in time; an open neighbor silent for
   * silentNeighborMs is closed (its slots and its place among our neighbors go to live peers, and
   * a child of a vanished parent looks for another within seconds instead of waiting for the
   * transport); and every open neighbor hears from us at least every keepaliveMs.
   */
  private checkLiveness(now: number): void {
    // closeNeighbor deletes from the map: a Map iterator skips deleted entries, so no copy per tick
    for (const n of this.neighbors.values()) {
      if (n.state === 'hello') {
        if (now - n.addedAt >= ENGINE_LIMITS.helloTimeoutMs) this.closeNeighbor(n, 'hello timeout', 'hello timeout');
      } else if (n.state === 'open') {
        if (now - n.lastHeardAt >= ENGINE_LIMITS.silentNeighborMs) {
          this.counters.silentNeighbors++;
          this.closeNeighbor(n, 'silent', 'silent');
          continue;
        }
        if (now - n.lastHeardAt >= ENGINE_LIMITS.silentLinkMs) this.endSilentLinks(n);
        if (now - n.lastSentAt >= ENGINE_LIMITS.keepaliveMs) {
          this.send(n, { type: 'keepalive' });
        }
      }
    }
  }

  /** Ends the upload links with a silent neighbor: its slots here, and it as our parent. */
  private endSilentLinks(n: Neighbor): void {
    for (const [r, id] of [...this.parents]) if (id === n.id) this.releaseParent(r, 'parent silent');
    for (const h of this.slots.releasePeer(n.id)) this.revokeChild(n.id, h.rendition, RevokeReason.preempted);
  }

  publishSegment(manifest: Manifest, data: Uint8Array): void {
    if (this.closed) throw new Error('engine closed');
    const m = decodeManifest(manifest.encoded, this.publicKey, this.crypto);
    if (m.channel !== this.channel) throw new Error(`manifest is for channel ${m.channel}`);
    if (!(data instanceof Uint8Array) || data.length !== m.size) throw new Error('segment size does not match its manifest');
    const pieces: Uint8Array[] = [];
    for (let i = 0; i < m.pieceHashes.length; i++) {
      const [start, end] = pieceRange(m, i);
      const p = data.slice(start, end);
      if (!verifyPiece(this.crypto, m, i, p)) throw new Error(`piece ${i} does not match its manifest`);
      pieces.push(p);
    }
    const entry = this.addManifest(m);
    if (!entry) return; // older than the window: nothing to keep
    for (let i = 0; i < pieces.length; i++) this.storePiece(entry.ref, i, pieces[i], 'local', null);
    this.broadcastStatus();
  }

  loadSegment(ref: SegmentRef, opts: LoadOptions): Promise<LoadResult> {
    if (this.closed) return Promise.reject(new Error('engine closed'));
    if (!ref || typeof ref.rendition !== 'string' || !isValidName(ref.rendition) || !Number.isInteger(ref.seq)
      || ref.seq < INIT_SEQ || ref.seq > 0x7fffffff) {
      return Promise.reject(new TypeError('invalid segment ref'));
    }
    if (!opts || !Number.isFinite(opts.deadline)) return Promise.reject(new TypeError('deadline must be a finite number'));
    const margin = opts.httpMarginMs ?? 500;
    if (!Number.isFinite(margin) || margin < 0) return Promise.reject(new TypeError('invalid httpMarginMs'));
    const r: SegmentRef = { rendition: ref.rendition, seq: ref.seq };
    const key = segmentKey(r);
    const now = this.clock.now();
    if (this.store.isComplete(r)) {
      const entry = this.store.get(r)!;
      return Promise.resolve({
        data: this.store.assemble(r)!, manifest: entry.manifest, bytesBySource: this.store.bytesBySource(r),
        firstByteAt: now, completedAt: now, transferMs: this.transferMs(key),
      });
    }
    const existing = this.loads.get(key);
    if (existing) {
      existing.deadline = Math.min(existing.deadline, opts.deadline);
      existing.httpMarginMs = Math.max(existing.httpMarginMs, margin);
      this.maybeHttp(existing);
      this.runSchedule();
      return existing.promise;
    }
    let resolve!: (r: LoadResult) => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<LoadResult>((res, rej) => { resolve = res; reject = rej; });
    const load: PendingLoad = {
      ref: r, key, deadline: opts.deadline, httpMarginMs: margin, firstByteAt: null, promise, resolve, reject,
      manifestFetching: false, httpPieces: new Set(), body: null, done: false,
    };
    if ((this.store.get(r)?.held ?? 0) > 0) load.firstByteAt = now;
    this.loads.set(key, load);
    this.store.pin(r);
    this.maybeHttp(load);
    if (r.seq !== INIT_SEQ) this.maintainParents();
    this.runSchedule();
    return promise;
  }

  setPlaybackPosition(ref: SegmentRef): void {
    if (!ref || typeof ref.rendition !== 'string' || !isValidName(ref.rendition) || !Number.isInteger(ref.seq) || ref.seq < INIT_SEQ) {
      throw new TypeError('invalid segment ref');
    }
    this.position = { rendition: ref.rendition, seq: ref.seq };
    // slot requests go out from the next loadSegment or tick (a load right after this call gives
    // them their urgency)
    this.runSchedule();
  }

  stats(): EngineStats {
    let peers = 0;
    for (const n of this.neighbors.values()) if (n.state === 'open') peers++;
    return {
      bytesFromPeers: this.counters.bytesFromPeers,
      bytesFromOriginPeer: this.counters.bytesFromOriginPeer,
      bytesFromHttp: this.counters.bytesFromHttp,
      bytesUploaded: this.counters.bytesUploaded,
      peers,
      badPieces: this.counters.badPieces,
      rejectedFrames: { ...this.rejectedFrames },
      segmentsStored: this.store.stats().complete,
    };
  }

  neighborStats(): NeighborStat[] {
    const out: NeighborStat[] = [];
    for (const n of this.neighbors.values()) {
      if (n.state !== 'open') continue;
      let isParent = false;
      for (const p of this.parents.values()) if (p === n.id) isParent = true;
      out.push({
        peerId: n.id, kind: n.kind!, bytesSent: n.bytesSent, bytesReceived: n.bytesReceived,
        isParent, isChild: this.slots.hasPeer(n.id),
      });
    }
    return out;
  }

  worstNeighbor(minAgeMs: number = ENGINE_LIMITS.neighborMinAgeMs): string | null {
    const now = this.clock.now();
    let worst: Neighbor | null = null;
    let worstGain = Infinity;
    for (const n of this.neighbors.values()) {
      const total = n.bytesSent + n.bytesReceived;
      const gain = total - n.bytesMark;
      n.bytesMark = total;
      if (n.state !== 'open' || now - n.addedAt < minAgeMs) continue;
      if (this.slots.hasPeer(n.id) || this.isParentAnywhere(n.id) || n.kind === 'origin') continue;
      if (gain < worstGain) { worst = n; worstGain = gain; }
    }
    return worst?.id ?? null;
  }

  assignParent(rendition: string, peerId: string | null): void {
    if (!isValidName(rendition)) throw new TypeError('invalid rendition');
    if (peerId !== null && (typeof peerId !== 'string' || peerId.length === 0 || peerId.length > 64 || peerId === this.peerId)) {
      throw new TypeError('invalid parent peer id');
    }
    this.steered = true;
    if (peerId === null) this.assigned.delete(rendition);
    else if (this.assigned.get(rendition)?.peerId !== peerId) this.assigned.set(rendition, { peerId, at: this.clock.now(), askedAt: -Infinity });
    this.maintainParents();
  }

  setRelayRenditions(renditions: string[]): void {
    if (!Array.isArray(renditions) || renditions.length > 64 || !renditions.every((r) => typeof r === 'string' && isValidName(r))) {
      throw new TypeError('renditions must be up to 64 valid names');
    }
    this.relay = new Set(renditions);
    this.maintainParents();
  }

  dropNeighbor(peerId: string, reason: string): void {
    const n = this.neighbors.get(peerId);
    if (n) this.closeNeighbor(n, `dropped: ${reason}`, reason);
  }

  /** Upload-link view for tests and diagnostics: our parents and children per rendition. */
  links(): {
    parents: Record<string, string>; children: Array<{ peerId: string; rendition: string }>; depth: Record<string, number>;
    /** Children we could feed per rendition in all (free + held): the optimizer's upload slots. */
    capacity: Record<string, number>;
    /** Measured bitrate of the renditions we hold, kbit/s (the tracker sizes relays with it). */
    bitrateKbps: Record<string, number>;
    /** Upload left for more children, kbit/s; absent without an upload cap or push. */
    spareKbps?: number;
    /** The rendition being played (setPlaybackPosition), if any. */
    playing?: string;
  } {
    const depth: Record<string, number> = {};
    const capacity: Record<string, number> = {};
    for (const r of this.knownRenditions()) {
      depth[r] = this.depthOf(r);
      capacity[r] = this.capacityIn(r);
    }
    const spare = this.pushEnabled ? this.slots.spareKbps() : 0;
    return {
      parents: Object.fromEntries(this.parents),
      children: this.slots.list().map((h) => ({ peerId: h.peerId, rendition: h.rendition })),
      depth, capacity,
      bitrateKbps: Object.fromEntries(this.bitrate),
      ...(Number.isFinite(spare) ? { spareKbps: spare } : {}),
      ...(this.position ? { playing: this.position.rendition } : {}),
    };
  }

  /** Extra counters for diagnostics, tests and the simulator (not part of EngineApi). */
  debugStats(): {
    duplicatePieces: number; duplicatePushes: number; duplicatesOfHttp: number; latePieces: number; requestsSent: number; requestTimeouts: number;
    requestsInFlight: number; storedBytes: number; storedSegments: number; neighbors: number; banned: number; pendingLoads: number;
    piecesPushed: number; pushedReceived: number; slotGrants: number; slotRevokes: number; slotRefusals: number;
    parentChanges: number; climbs: number; silentNeighbors: number; httpMarginMs: number; parentLosses: Record<string, number>;
    httpAlone: number; httpUnknown: number; httpNoParent: number; httpParentElsewhere: number; httpParentSlow: number;
  } {
    const s = this.store.stats();
    return {
      duplicatePieces: this.counters.duplicatePieces,
      duplicatePushes: this.counters.duplicatePushes,
      duplicatesOfHttp: this.counters.duplicatesOfHttp,
      latePieces: this.counters.latePieces,
      requestsSent: this.counters.requestsSent,
      requestTimeouts: this.counters.requestTimeouts,
      requestsInFlight: this.requests.size,
      storedBytes: s.bytes,
      storedSegments: s.segments,
      neighbors: this.neighbors.size,
      banned: this.banned.size,
      pendingLoads: this.loads.size,
      piecesPushed: this.counters.piecesPushed,
      pushedReceived: this.counters.pushedReceived,
      slotGrants: this.counters.slotGrants,
      slotRevokes: this.counters.slotRevokes,
      slotRefusals: this.counters.slotRefusals,
      parentChanges: this.counters.parentChanges,
      climbs: this.counters.climbs,
      silentNeighbors: this.counters.silentNeighbors,
      httpMarginMs: this.httpTimer.margin(0),
      parentLosses: { ...this.parentLosses },
      httpAlone: this.counters.httpAlone,
      httpUnknown: this.counters.httpUnknown,
      httpNoParent: this.counters.httpNoParent,
      httpParentElsewhere: this.counters.httpParentElsewhere,
      httpParentSlow: this.counters.httpParentSlow,
    };
  }

  /** True if the whole segment is held and verified. */
  hasSegment(ref: SegmentRef): boolean {
    return this.store.isComplete(ref);
  }

  /** Ids and kinds of open neighbors. */
  neighborList(): Array<{ peerId: string; kind: PeerKind }> {
    const out: Array<{ peerId: string; kind: PeerKind }> = [];
    for (const n of this.neighbors.values()) if (n.state === 'open') out.push({ peerId: n.id, kind: n.kind! });
    return out;
  }

  on<K extends keyof EngineEvents>(event: K, handler: (e: EngineEvents[K]) => void): () => void {
    let set = this.handlers.get(event);
    if (!set) { set = new Set(); this.handlers.set(event, set); }
    set.add(handler as (e: never) => void);
    return () => { set!.delete(handler as (e: never) => void); };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const n of [...this.neighbors.values()]) this.closeNeighbor(n, 'engine closed', 'closing');
    for (const load of [...this.loads.values()]) this.failLoad(load, new Error('engine closed'));
  }

  // ================================================================ events, sending

  private emit<K extends keyof EngineEvents>(event: K, e: EngineEvents[K]): void {
    const set = this.handlers.get(event);
    if (!set) return;
    for (const h of [...set]) {
      try { (h as Handler<K>)(e); } catch (err) { this.log.error({ event, err: errorMessage(err) }, 'event handler threw'); }
    }
  }

  /** Sends a frame; a failing link closes the neighbor. Returns false if it could not be sent. */
  private send(n: Neighbor, f: Frame): boolean {
    if (n.state === 'closed') return false;
    try {
      n.link.send(encodeFrame(f));
      n.lastSentAt = this.clock.now();
      return true;
    } catch (err) {
      this.log.warn({ peer: n.id, err: errorMessage(err) }, 'send failed');
      this.closeNeighbor(n, 'send failed');
      return false;
    }
  }

  private closeNeighbor(n: Neighbor, reason: string, bye?: string): void {
    if (n.state === 'closed') return;
    n.state = 'closed';
    if (bye !== undefined) {
      try { n.link.send(encodeFrame({ type: 'bye', reason: bye })); } catch { /* closing anyway */ }
    }
    n.link.onMessage = null;
    n.link.onClose = null;
    n.link.onLow = null;
    try { n.link.close(); } catch { /* already closed */ }
    if (this.neighbors.get(n.id) === n) { this.neighbors.delete(n.id); this.neighborArray = null; }
    n.queue.length = 0;
    n.pushQueue.length = 0;
    this.requests.removeNeighbor(n.id);
    if (this.slots.releasePeer(n.id).length > 0) this.lastStatus.clear();
    const now = this.clock.now();
    for (const [r, p] of [...this.parents]) {
      if (p !== n.id) continue;
      // the kind of close only: a BYE's text comes from the network
      this.loseParent(r, `closed: ${reason.split(':')[0]}`);
      this.lastStatus.clear();
    }
    for (const [r, a] of [...this.asking]) if (a.peerId === n.id) this.asking.delete(r);
    for (const r of [...this.handover.keys()]) this.endHandover(n.id, r);
    for (const [r, pre] of [...this.preemptedBy]) if (pre.peerId === n.id) this.preemptedBy.delete(r);
    this.log.info({ peer: n.id, reason }, 'neighbor closed');
    this.emit('neighbor-closed', { peerId: n.id, reason });
    if (!this.closed) {
      // its requests are gone: re-issue them elsewhere, or fall back to HTTP for pending loads
      this.checkLoads();
      this.maintainParents();
      this.broadcastStatus();
      this.runSchedule();
    }
  }

  private reject(n: Neighbor, reason: string, close = false): void {
    this.rejectedFrames[reason] = (this.rejectedFrames[reason] ?? 0) + 1;
    this.log.warn({ peer: n.id, reason }, 'frame rejected');
    this.emit('frame-rejected', { peerId: n.id, reason });
    if (close) {
      this.closeNeighbor(n, `rejected: ${reason}`, reason);
      return;
    }
    if (BENIGN_REJECTIONS.has(reason)) return;
    n.rejected++;
    if (n.rejected >= ENGINE_LIMITS.maxRejectedFrames) this.ban(n, 'too many rejected frames');
  }

  private ban(n: Neighbor, reason: string): void {
    remember(this.banned, n.id, ENGINE_LIMITS.maxBanned);
    this.log.warn({ peer: n.id, reason }, 'neighbor banned');
    this.emit('neighbor-banned', { peerId: n.id, reason });
    this.closeNeighbor(n, `banned: ${reason}`, reason);
  }

  // ================================================================ incoming frames

  private onFrame(n: Neighbor, bytes: Uint8Array): void {
    if (this.closed || n.state === 'closed') return;
    n.lastHeardAt = this.clock.now();
    try {
      this.handleFrame(n, bytes);
    } catch (err) {
      // never let a frame throw into the transport
      this.log.error({ peer: n.id, err: errorMessage(err) }, 'frame handler failed');
      if ((n.state as NeighborState) !== 'closed') this.reject(n, 'internal-error');
    }
  }

  private handleFrame(n: Neighbor, bytes: Uint8Array): void {
    const r = decodeFrame(bytes);
    if (!r.ok) {
      this.reject(n, r.reason, n.state === 'hello');
      return;
    }
    const f = r.frame;
    if (n.state === 'hello') {
      if (f.type !== 'hello') this.reject(n, 'before-hello', true);
      else this.onHello(n, f);
      return;
    }
    switch (f.type) {
      case 'hello': this.reject(n, 'duplicate-hello'); return;
      case 'have': this.onHave(n, f); return;
      case 'request': this.onRequest(n, f); return;
      case 'piece': this.onPiece(n, f); return;
      case 'cancel': this.onCancel(n, f); return;
      case 'manifest': this.onManifest(n, f.manifest); return;
      case 'slot-request': this.onSlotRequest(n, f); return;
      case 'slot-grant': this.onSlotGrant(n, f); return;
      case 'slot-revoke': this.onSlotRevoke(n, f); return;
      case 'status': this.onStatus(n, f); return;
      case 'keepalive': return; // onFrame noted that it is alive
      case 'bye':
        this.log.info({ peer: n.id, reason: f.reason }, 'neighbor said bye');
        this.closeNeighbor(n, `bye: ${f.reason}`);
        return;
    }
  }

  private onHello(n: Neighbor, f: HelloFrame): void {
    if (f.version !== PROTOCOL_VERSION) return this.reject(n, 'bad-version', true);
    if (f.channel !== this.channel) return this.reject(n, 'wrong-channel', true);
    if (f.peerId !== n.link.remoteId) return this.reject(n, 'peer-id-mismatch', true);
    n.state = 'open';
    n.kind = f.kind;
    this.hadNeighbor = true;
    this.log.debug({ peer: n.id, kind: f.kind }, 'neighbor open');
    this.emit('neighbor-open', { peerId: n.id, kind: f.kind });
    // tell the new neighbor what we hold: init segments first, then by seq
    const held = [...this.store.entries()].filter((e) => e.held > 0 && e.pieces.length > 0)
      .sort((a, b) => a.ref.seq - b.ref.seq || (a.ref.rendition < b.ref.rendition ? -1 : 1));
    for (const e of held) {
      if (n.state !== 'open') return;
      this.announceTo(n, e);
    }
    // and where we stand in each rendition's tree
    for (const r of this.knownRenditions()) {
      if (n.state !== 'open') return;
      this.send(n, this.statusFrame(r));
    }
    this.maintainParents();
  }

  private onManifest(n: Neighbor, bytes: Uint8Array): void {
    let m: Manifest;
    const known = this.findManifestByBytes(bytes);
    if (known) {
      m = known;
    } else {
      try {
        m = decodeManifest(bytes, this.publicKey, this.crypto);
      } catch (err) {
        this.log.debug({ peer: n.id, err: errorMessage(err) }, 'bad manifest');
        return this.reject(n, 'bad-manifest');
      }
      if (m.channel !== this.channel) return this.reject(n, 'wrong-channel-manifest');
    }
    const ref = { rendition: m.rendition, seq: m.seq };
    remember(n.knowsManifest, segmentKey(ref), ENGINE_LIMITS.maxHaveEntries);
    if (!known) {
      this.addManifest(m);
      this.runSchedule();
    }
  }

  /** A stored manifest whose encoding is byte-identical (skips a signature check). */
  private findManifestByBytes(bytes: Uint8Array): Manifest | null {
    // the names sit at fixed offsets: version, channel, rendition, seq
    if (bytes.length < 8) return null;
    const chLen = bytes[1];
    const rnOff = 2 + chLen;
    if (rnOff >= bytes.length) return null;
    const rnLen = bytes[rnOff];
    const seqOff = rnOff + 1 + rnLen;
    if (seqOff + 4 > bytes.length) return null;
    let rendition = '';
    for (let i = 0; i < rnLen; i++) rendition += String.fromCharCode(bytes[rnOff + 1 + i]);
    const seq = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getInt32(seqOff);
    const e = this.store.get({ rendition, seq });
    if (!e) return null;
    const enc = e.manifest.encoded;
    if (enc.length !== bytes.length) return null;
    for (let i = 0; i < enc.length; i++) if (enc[i] !== bytes[i]) return null;
    return e.manifest;
  }

  private onHave(n: Neighbor, f: HaveFrame): void {
    const ref = { rendition: f.rendition, seq: f.seq };
    const key = segmentKey(ref);
    const entry = this.store.get(ref);
    if (entry && entry.pieces.length !== f.pieceCount) return this.reject(n, 'have-mismatch');
    if (!entry && !this.loads.has(key) && !this.store.inWindow(f.rendition, f.seq)) return; // too old to matter
    n.have.delete(key);
    n.have.set(key, { ref, pieceCount: f.pieceCount, bitfield: f.bitfield });
    if (!n.haveRenditions.has(f.rendition) && n.haveRenditions.size < ENGINE_LIMITS.maxRenditions && f.bitfield.some((b) => b !== 0)) {
      n.haveRenditions.add(f.rendition);
    }
    if (n.have.size > ENGINE_LIMITS.maxHaveEntries) n.have.delete(n.have.keys().next().value as string);
    // Only a HAVE for a segment the player is waiting for schedules at once; the rest wait for
    // the next tick's scheduling pass (one pass per tick instead of one per HAVE).
    if (this.loads.has(key) && (!entry || offersMissing(f.bitfield, entry.bitfield))) this.runSchedule();
  }

  private onRequest(n: Neighbor, f: RequestFrame): void {
    const ref = { rendition: f.rendition, seq: f.seq };
    if (this.serveChildrenOnly && !this.slots.has(n.id, f.rendition)) return this.reject(n, 'request-not-child');
    let unheld = 0;
    let dropped = 0;
    const child = this.slots.has(n.id, f.rendition);
    for (let i = f.index; i < f.index + f.count; i++) {
      // a child asking for what we pushed it (or are about to): it arrives anyway
      if (child && (this.neighborHas(n, ref, i) || n.pushQueue.some((q) => q.index === i && q.ref.seq === ref.seq && q.ref.rendition === ref.rendition))) continue;
      if (!this.store.hasPiece(ref, i)) unheld++;
      else if (n.queue.length >= ENGINE_LIMITS.maxQueuedRequests) dropped++;
      else n.queue.push({ ref, index: i });
    }
    if (unheld) this.reject(n, 'request-unheld');
    if (dropped && n.state === 'open') this.reject(n, 'request-queue-full');
    if (n.state === 'open') this.pumpAll();
  }

  /** Drops queued answers and pushes of these pieces (a child cancels pushes of what it fetches over HTTP). */
  private onCancel(n: Neighbor, f: CancelFrame): void {
    const end = f.index + f.count;
    const keep = (q: QueuedRequest) => !(q.ref.rendition === f.rendition && q.ref.seq === f.seq && q.index >= f.index && q.index < end);
    n.queue = n.queue.filter(keep);
    n.pushQueue = n.pushQueue.filter(keep);
  }

  private onPiece(n: Neighbor, f: PieceFrame): void {
    const ref = { rendition: f.rendition, seq: f.seq };
    const pk = pieceKey(ref, f.index);
    const wasCancelled = n.cancelled.has(pk);
    const entry = this.store.get(ref);
    if (!entry) {
      if (wasCancelled) { n.cancelled.delete(pk); this.counters.latePieces++; return; }
      return this.reject(n, 'unknown-manifest');
    }
    const rec = this.requests.get(n.id, ref, f.index);
    const pushed = !rec && this.acceptsPushFrom(n, f.rendition);
    if (!rec && !wasCancelled && !pushed) return this.reject(n, 'unrequested-piece');
    if (pushed) this.counters.pushedReceived++;
    n.cancelled.delete(pk);
    if (getBit(entry.bitfield, f.index)) {
      if (rec) this.requests.remove(n.id, ref, f.index);
      this.counters.duplicatePieces++;
      if (pushed) this.counters.duplicatePushes++;
      if (entry.sources[f.index] === 'http') this.counters.duplicatesOfHttp++;
      this.runSchedule();
      return;
    }
    if (!verifyPiece(this.crypto, entry.manifest, f.index, f.data)) {
      if (rec) this.requests.remove(n.id, ref, f.index);
      remember(n.badFor, pk, ENGINE_LIMITS.maxRememberedPieces);
      this.counters.badPieces++;
      n.badPieces++;
      this.log.warn({ peer: n.id, ref, index: f.index }, 'bad piece');
      this.emit('bad-piece', { peerId: n.id, ref, index: f.index });
      if (n.badPieces >= ENGINE_LIMITS.maxBadPieces) this.ban(n, 'bad pieces');
      this.checkLoads();
      this.runSchedule();
      return;
    }
    if (!rec && !pushed) this.counters.latePieces++;
    if (pushed) this.notePush(n, entry.key);
    n.bytesReceived += f.data.length;
    if (rec) {
      const now = this.clock.now();
      const since = Math.max(rec.sentAt, n.lastRecvAt);
      const sample = f.data.length / Math.max(1, now - since);
      n.throughput = n.throughput > 0 ? 0.8 * n.throughput + 0.2 * sample : sample;
      n.lastRecvAt = now;
    }
    this.storePiece(ref, f.index, f.data, n.kind === 'origin' ? 'origin-peer' : 'peer', n.id);
    this.runSchedule();
  }

  /** Push progress of a parent: the HTTP fallback leaves it what it will still deliver in time. */
  private notePush(n: Neighbor, key: string): void {
    const now = this.clock.now();
    if (n.pushKey === key) {
      const gap = now - n.pushAt;
      n.pushGapMs = n.pushGapMs > 0 ? 0.75 * n.pushGapMs + 0.25 * gap : gap;
    }
    n.pushKey = key;
    n.pushAt = now;
  }

  // ================================================================ store and announcements

  /** Stores a verified manifest; handles what the window evicts. */
  private addManifest(m: Manifest): SegmentEntry | undefined {
    const ref = { rendition: m.rendition, seq: m.seq };
    const isNew = !this.store.get(ref);
    const { entry, evicted } = this.store.addManifest(m);
    this.onEvicted(evicted);
    if (entry && isNew) {
      this.manifestAt.set(entry.key, this.clock.now());
      if (m.seq !== INIT_SEQ && m.durationMs > 0) {
        const kbps = (m.size * 8) / m.durationMs;
        const prev = this.bitrate.get(m.rendition);
        this.bitrate.set(m.rendition, prev === undefined ? kbps : 0.7 * prev + 0.3 * kbps);
      }
      // children learn of the segment at once (they need the manifest before pushed pieces)
      for (const id of this.pushTargets(m.rendition)) {
        const c = this.neighbors.get(id);
        if (c && c.state === 'open') this.sendManifest(c, entry);
      }
    }
    if (entry && isNew && !this.lastStatus.has(m.rendition)) { // a new rendition
      this.broadcastStatus();
      this.maintainParents();
    }
    if (entry && isNew && entry.pieces.length === 0) this.onComplete(entry, 'local');
    return entry;
  }

  private onEvicted(evicted: SegmentRef[]): void {
    for (const ref of evicted) {
      const key = segmentKey(ref);
      this.manifestAt.delete(key);
      this.arrivals.delete(key);
      for (const r of this.requests.removeSegment(ref)) {
        const n = this.neighbors.get(r.neighborId);
        if (!n || n.state !== 'open') continue;
        remember(n.cancelled, pieceKey(ref, r.index), ENGINE_LIMITS.maxRememberedPieces);
        this.send(n, { type: 'cancel', rendition: ref.rendition, seq: ref.seq, index: r.index, count: 1 });
      }
      for (const n of this.neighbors.values()) {
        n.have.delete(key);
        n.knowsManifest.delete(key);
      }
    }
  }

  /** Stores a verified piece, counts it, cancels duplicate requests, completes the segment. */
  private storePiece(ref: SegmentRef, index: number, data: Uint8Array, source: PieceSource, from: string | null): boolean {
    if (!this.store.addPiece(ref, index, data, source)) return false;
    if (source === 'peer') this.counters.bytesFromPeers += data.length;
    else if (source === 'origin-peer') this.counters.bytesFromOriginPeer += data.length;
    else if (source === 'http') this.counters.bytesFromHttp += data.length;
    this.cancelRequests(ref, index, from);
    const key = segmentKey(ref);
    const now = this.clock.now();
    const arr = this.arrivals.get(key);
    if (arr) arr.last = now; else this.arrivals.set(key, { first: now, last: now });
    const load = this.loads.get(key);
    if (load && load.firstByteAt === null) load.firstByteAt = now;
    const entry = this.store.get(ref)!;
    this.forwardPiece(entry, index);
    if (entry.held === entry.pieces.length) {
      const by = this.store.bytesBySource(ref);
      let best: PieceSource = source;
      for (const s of Object.keys(by) as PieceSource[]) if (by[s] > by[best]) best = s;
      this.onComplete(entry, best);
    }
    return true;
  }

  /**
   * Drops our requests for a piece (we hold it now, or fetch it over HTTP) and CANCELs them at
   * every neighbor but `except`: an answer still in its queue is not sent. Its answer may already
   * be on the wire: that PIECE is then expected (cancelled), not a violation.
   */
  private cancelRequests(ref: SegmentRef, index: number, except: string | null): void {
    for (const r of this.requests.removePiece(ref, index)) {
      if (r.neighborId === except) continue;
      const n = this.neighbors.get(r.neighborId);
      if (!n || n.state !== 'open') continue;
      remember(n.cancelled, pieceKey(ref, index), ENGINE_LIMITS.maxRememberedPieces);
      this.send(n, { type: 'cancel', rendition: ref.rendition, seq: ref.seq, index, count: 1 });
    }
  }

  /**
   * Asks whoever pushes the rendition to us (the parent, or one in its handover) not to push
   * these pieces: we fetch them over HTTP. What is already on the wire arrives as a duplicate.
   */
  private cancelPushes(ref: SegmentRef, index: number, count: number): void {
    for (const n of this.neighbors.values()) {
      if (n.state !== 'open' || !this.acceptsPushFrom(n, ref.rendition)) continue;
      this.send(n, { type: 'cancel', rendition: ref.rendition, seq: ref.seq, index, count });
    }
  }

  private onComplete(entry: SegmentEntry, source: PieceSource): void {
    const ref = entry.ref;
    this.log.debug({ ref, source }, 'segment complete');
    this.emit('segment-complete', { ref, source });
    const load = this.loads.get(entry.key);
    if (load && !load.done) {
      const now = this.clock.now();
      load.done = true;
      this.loads.delete(entry.key);
      const result: LoadResult = {
        data: this.store.assemble(ref)!, manifest: entry.manifest, bytesBySource: this.store.bytesBySource(ref),
        firstByteAt: load.firstByteAt ?? now, completedAt: now, transferMs: this.transferMs(entry.key),
      };
      this.onEvicted(this.store.unpin(ref));
      load.resolve(result);
    }
    if (this.store.get(ref) !== entry) return; // evicted at once (older than the window)
    if (entry.pieces.length === 0) for (const n of this.neighbors.values()) if (n.state === 'open') this.announceTo(n, entry);
  }

  private transferMs(key: string): number {
    const a = this.arrivals.get(key);
    return a ? a.last - a.first : 0;
  }

  /**
   * A verified piece arrived (or was published): cut-through push to our children in its
   * rendition that lack it, and HAVE to everybody else, at once.
   */
  private forwardPiece(entry: SegmentEntry, index: number): void {
    const ref = entry.ref;
    let pushedTo: string[] | null = null; // a few children at most; allocated only when pushing
    if (this.pushEnabled) {
      for (const id of this.pushTargets(ref.rendition)) {
        const c = this.neighbors.get(id);
        if (!c || c.state !== 'open' || this.neighborHas(c, ref, index) || requested(c, ref, index)) continue;
        if (!this.sendManifest(c, entry)) continue;
        c.pushQueue.push({ ref, index });
        (pushedTo ??= []).push(id);
      }
    }
    // A segment's first piece and its completion are announced at once (neighbors learn of new
    // segments without delay); progress in between is coalesced into one HAVE per tick, since
    // per-piece HAVEs to every neighbor were most of the frames and each one ran the scheduler.
    const complete = entry.held === entry.pieces.length;
    const now = entry.held === 1 || complete;
    for (const n of this.neighbors.values()) {
      if (n.state !== 'open' || pushedTo?.includes(n.id)) continue;
      // Neighbors that hold no piece of this rendition (they play another) learn of completed
      // segments only, enough to fetch one if they switch (progress to them was 41% of all
      // HAVEs in the simulated two-rendition swarm bench, bench-50-3min).
      if (!complete && !n.haveRenditions.has(ref.rendition)) continue;
      // coalesced progress is checked against what the neighbor holds once, at the flush
      if (!now) n.haveDue.set(entry.key, entry);
      else if (!this.holdsAllWeHave(n, entry)) this.announceTo(n, entry);
    }
    if (pushedTo) this.pumpAll();
  }

  /** Sends the coalesced HAVEs (one per neighbor and segment with unannounced progress). */
  private flushHaves(): void {
    for (const n of this.neighbors.values()) {
      if (n.haveDue.size === 0) continue;
      const due = [...n.haveDue.values()];
      n.haveDue.clear();
      if (n.state !== 'open') continue;
      for (const e of due) if (this.store.get(e.ref) === e && !this.holdsAllWeHave(n, e)) this.announceTo(n, e);
    }
  }

  /**
   * The neighbor announced every piece of the segment that we hold: our HAVE would tell it of
   * nothing it could ask us for. In a push tree many neighbors are as far along as we are, or
   * further (bench-50-3min: HAVEs were 6.5 frames per piece delivered; 21% of them went to such
   * neighbors). Except for our first pieces of a rendition: one HAVE tells it we are in the
   * rendition, and so that our progress there is worth sending us (haveRenditions).
   */
  private holdsAllWeHave(n: Neighbor, e: SegmentEntry): boolean {
    if (!n.toldRenditions.has(e.ref.rendition)) return false;
    const h = n.have.get(e.key);
    return !!h && h.pieceCount === e.pieces.length && !offersMissing(e.bitfield, h.bitfield);
  }

  /** MANIFEST unless the neighbor is known to have it. False if it cannot be sent. */
  private sendManifest(n: Neighbor, e: SegmentEntry): boolean {
    if (n.knowsManifest.has(e.key)) return true;
    if (e.manifest.encoded.length > MAX_WIRE_MANIFEST_BYTES) return false;
    if (!this.send(n, { type: 'manifest', manifest: e.manifest.encoded })) return false;
    remember(n.knowsManifest, e.key, ENGINE_LIMITS.maxHaveEntries);
    return true;
  }

  /** MANIFEST (unless the neighbor has it) + HAVE with our bitfield. */
  private announceTo(n: Neighbor, e: SegmentEntry): void {
    if (!n.knowsManifest.has(e.key) && e.manifest.encoded.length <= MAX_WIRE_MANIFEST_BYTES) {
      if (!this.send(n, { type: 'manifest', manifest: e.manifest.encoded })) return;
      remember(n.knowsManifest, e.key, ENGINE_LIMITS.maxHaveEntries);
    }
    n.haveDue.delete(e.key);
    if (!this.send(n, { type: 'have', rendition: e.ref.rendition, seq: e.ref.seq, pieceCount: e.pieces.length, bitfield: e.bitfield })) return;
    if (e.held > 0 && n.toldRenditions.size < ENGINE_LIMITS.maxRenditions) n.toldRenditions.add(e.ref.rendition);
  }

  // ================================================================ upload links and slots

  /** Renditions we hold segments of or are fed in. */
  private knownRenditions(): Set<string> {
    const out = new Set(this.store.renditions());
    for (const r of this.parents.keys()) out.add(r);
    return out;
  }

  private isParentAnywhere(id: string): boolean {
    for (const p of this.parents.values()) if (p === id) return true;
    return false;
  }

  private acceptsPushFrom(n: Neighbor, rendition: string): boolean {
    if (this.parents.get(rendition) === n.id) return true;
    const until = n.pushGraceUntil.get(rendition);
    return until !== undefined && this.clock.now() < until;
  }

  private bitrateOf(rendition: string): number {
    return this.bitrate.get(rendition) ?? ENGINE_LIMITS.defaultBitrateKbps;
  }

  private slotCost(rendition: string): number {
    return this.bitrateOf(rendition) * ENGINE_LIMITS.slotHeadroom;
  }

  /** Hops from the origin in this rendition's tree; NO_DEPTH without a feed. */
  private depthOf(rendition: string): number {
    if (this.kind === 'origin') return 0;
    const p = this.parents.get(rendition);
    if (!p) return NO_DEPTH;
    const d = this.neighbors.get(p)?.status.get(rendition)?.depth ?? NO_DEPTH;
    return d + 1 >= ENGINE_LIMITS.maxDepth ? NO_DEPTH : d + 1;
  }

  /**
   * Children we could still take in a rendition. Reported even without a feed: candidates filter
   * on depth, and the origin uses it to give its few slots to peers that can pass the stream on.
   */
  private freeSlots(rendition: string): number {
    if (!this.pushEnabled) return 0;
    const perRendition = this.maxChildrenPerRendition - this.slots.childrenOf(rendition).length;
    return Math.max(0, Math.min(255, perRendition, this.slots.free(this.slotCost(rendition))));
  }

  private statusFrame(rendition: string): StatusFrame {
    const parent = this.parents.get(rendition);
    return {
      type: 'status', rendition, depth: this.depthOf(rendition), freeSlots: this.freeSlots(rendition),
      capacity: this.capacityIn(rendition), ancestors: this.ancestorsOf(rendition),
      ...(parent !== undefined ? { parent } : {}),
    };
  }

  /** Children we could feed in a rendition in all: free slots plus the children we have. */
  private capacityIn(rendition: string): number {
    return Math.min(255, this.freeSlots(rendition) + this.slots.childrenOf(rendition).length);
  }

  /** Our ancestors in a rendition's tree (Bloom filter): our parent's plus our parent. */
  private ancestorsOf(rendition: string): Uint8Array {
    const p = this.parents.get(rendition);
    if (p === undefined) return emptyAncestors();
    return childAncestors(this.neighbors.get(p)?.status.get(rendition)?.ancestors ?? null, p);
  }

  /** STATUS to every open neighbor for each rendition whose depth or free slots changed. */
  private broadcastStatus(): void {
    if (this.closed) return;
    for (const r of this.knownRenditions()) {
      const f = this.statusFrame(r);
      const sig = `${f.depth}/${f.freeSlots}/${filterKey(f.ancestors!)}/${f.parent ?? ''}`;
      if (this.lastStatus.get(r) === sig) continue;
      this.lastStatus.set(r, sig);
      for (const n of [...this.neighbors.values()]) if (n.state === 'open') this.send(n, f);
    }
  }

  /** Renditions we want pushed to us. */
  private wantedRenditions(): Set<string> {
    const out = new Set<string>();
    if (!this.pushEnabled || this.kind === 'origin') return out;
    if (this.interest === 'all') {
      for (const r of this.store.renditions()) out.add(r);
      return out;
    }
    if (this.position) out.add(this.position.rendition);
    for (const l of this.loads.values()) if (l.ref.seq !== INIT_SEQ) out.add(l.ref.rendition);
    for (const r of this.relay) out.add(r);
    return out;
  }

  /** Playback slack for slot priorities: time left before the most urgent pending load of the rendition. */
  private slackMs(rendition: string): number {
    const now = this.clock.now();
    let slack = Infinity;
    for (const l of this.loads.values()) if (l.ref.rendition === rendition) slack = Math.min(slack, l.deadline - now);
    return deadlineBucket(slack);
  }

  /**
   * Follows the optimizer's assignment for a rendition. True when it is in hand (ours, or being
   * asked for): local choice then waits. False when there is none to follow (expired, or the
   * assigned peer is not an open neighbor yet): local choice goes on meanwhile.
   */
  private followAssignment(rendition: string, now: number): boolean {
    const a = this.assigned.get(rendition);
    if (!a) return false;
    if (this.parents.get(rendition) === a.peerId) return true;
    if (now - a.at >= ENGINE_LIMITS.assignmentTimeoutMs) {
      this.assigned.delete(rendition);
      this.log.debug({ rendition, parent: a.peerId }, 'assignment not honoured in time; local choice');
      return false;
    }
    const n = this.neighbors.get(a.peerId);
    if (!n || n.state !== 'open') return false;
    const ask = this.asking.get(rendition);
    if (ask?.peerId === a.peerId) return true;
    // Without a parent we never wait on a refusing assigned parent: between its retries local
    // choice may feed us (an ask of its own in flight is not overridden), and once fed the
    // assigned parent is asked again as a make-before-break switch. Waiting here left peers
    // parentless for as long as the tracker kept re-sending the plan.
    if (!this.parents.has(rendition)) {
      if (ask !== undefined) return false;
      if (now - a.askedAt < ENGINE_LIMITS.assignmentRetryMs) return (n.refusedUntil.get(rendition) ?? -Infinity) <= now;
    }
    if (now - a.askedAt < ENGINE_LIMITS.assignmentRetryMs) return true;
    a.askedAt = now;
    this.askForSlot(n, rendition, now, this.parents.has(rendition), true);
    return true;
  }

  /** Forgets our parent in a rendition, remembering our depth for the feasibility rule. */
  private loseParent(rendition: string, reason: string): void {
    this.parentLosses[reason] = (this.parentLosses[reason] ?? 0) + 1;
    const now = this.clock.now();
    const depth = this.depthOf(rendition);
    this.parents.delete(rendition);
    this.lostParentAt.set(rendition, now);
    if (depth !== NO_DEPTH) this.feasible.set(rendition, { depth, until: now + ENGINE_LIMITS.feasibleMs });
  }

  private releaseParent(rendition: string, reason: string): void {
    const id = this.parents.get(rendition);
    if (id === undefined) return;
    this.loseParent(rendition, reason);
    this.counters.parentChanges++;
    const n = this.neighbors.get(id);
    if (n && n.state === 'open') {
      n.pushGraceUntil.set(rendition, this.clock.now() + ENGINE_LIMITS.pushGraceMs);
      n.refusedUntil.set(rendition, this.clock.now() + ENGINE_LIMITS.slotRefusedMs);
      this.send(n, { type: 'slot-revoke', rendition, reason: RevokeReason.released });
    }
    this.log.debug({ rendition, parent: id, reason }, 'parent released');
  }

  /**
   * Child side of upload links, run on every tick and on membership/position changes: give up
   * parents we no longer want (after an overlap) or that lost their feed, and ask the best
   * candidate for a slot in each wanted rendition without a parent.
   */
  private maintainParents(): void {
    if (this.closed || !this.pushEnabled) return;
    const now = this.clock.now();
    const want = this.wantedRenditions();
    for (const r of [...this.parents.keys()]) {
      if (want.has(r)) { this.unwantedSince.delete(r); continue; }
      const since = this.unwantedSince.get(r);
      if (since === undefined) { this.unwantedSince.set(r, now); continue; }
      let othersFed = true;
      for (const w of want) if (!this.parents.has(w)) othersFed = false;
      if (othersFed || now - since >= ENGINE_LIMITS.switchOverlapMs) {
        this.unwantedSince.delete(r);
        this.releaseParent(r, 'rendition no longer wanted');
      }
    }
    for (const r of want) {
      const pre = this.preemptedBy.get(r);
      if (pre && (this.parents.get(r) !== pre.peerId || now >= pre.until)) {
        this.preemptedBy.delete(r);
        // the handover ran out before another parent took us
        if (this.parents.get(r) === pre.peerId) this.parentRevoked(r, pre.peerId, now, 'handover ran out');
      }
      if (this.followAssignment(r, now)) continue;
      const pid = this.parents.get(r);
      if (pid !== undefined && this.preemptedBy.has(r)) {
        // preempted, in the handover: ask another parent (urgent: we are about to lose the feed)
        if (this.askInFlight(r, now)) continue;
        const cand = this.pickParent(r, now, { exclude: pid });
        if (cand) this.askForSlot(cand, r, now, true, false, true);
        continue;
      }
      if (pid !== undefined) {
        const st = this.neighbors.get(pid)?.status.get(r);
        if (st && st.depth === NO_DEPTH && st.noFeedSince !== null && now - st.noFeedSince >= ENGINE_LIMITS.parentNoFeedMs) {
          this.releaseParent(r, 'parent has no feed');
        } else {
          this.maybeUpgradeParent(r, now);
          continue;
        }
      }
      if (this.askInFlight(r, now)) continue;
      const lost = this.lostParentAt.get(r);
      if (lost !== undefined && now - lost < ENGINE_LIMITS.parentHoldDownMs) continue;
      const cand = this.pickParent(r, now);
      if (!cand) continue;
      this.askForSlot(cand, r, now, false, false);
    }
  }

  /** Our SLOT_REQUEST in `rendition` is still awaited; one unanswered for too long counts as refused. */
  private askInFlight(rendition: string, now: number): boolean {
    const ask = this.asking.get(rendition);
    if (!ask) return false;
    if (now - ask.at < ENGINE_LIMITS.slotRequestTimeoutMs) return true;
    this.asking.delete(rendition);
    this.neighbors.get(ask.peerId)?.refusedUntil.set(rendition, now + ENGINE_LIMITS.slotRefusedMs);
    return false;
  }

  /** Our parent in `rendition` revoked our link (or its handover ran out): its late pushes are still taken. */
  private parentRevoked(rendition: string, parentId: string, now: number, reason: string): void {
    this.loseParent(rendition, reason);
    this.counters.parentChanges++;
    this.neighbors.get(parentId)?.pushGraceUntil.set(rendition, now + ENGINE_LIMITS.pushGraceMs);
    this.broadcastStatus();
  }

  /** `upgrade`: we keep our parent until granted (make-before-break); `urgent`: it is about to go (preempted). */
  private askForSlot(cand: Neighbor, rendition: string, now: number, upgrade: boolean, assigned: boolean, urgent = !upgrade): void {
    this.asking.set(rendition, { peerId: cand.id, at: now, upgrade, assigned });
    this.send(cand, {
      // an upgrade is not urgent (we are fed): it may displace only a lower capacity class
      type: 'slot-request', rendition, deadlineMs: urgent ? this.slackMs(rendition) : 0xffff, timestamp: this.lamport.tick(),
      capacity: this.capacityIn(rendition), assigned,
    });
  }

  /**
   * Random attachment grows trees about e·ln N deep; every upgradeEveryMs a fed peer asks a
   * neighbor with a free slot at least two hops shallower than its parent for a slot, and moves
   * there once granted (the old parent keeps pushing until then: make-before-break). Depths only
   * shrink this way, so the tree flattens.
   *
   * A peer that can feed three or more children (capacity class 2) may also ask a full neighbor
   * shallower than its parent: the slot table there lets it take the slot of a lower-class child (the
   * capacity class orders slots before urgency), never of an equal one, because an upgrade asks
   * as not urgent. Without this the first arrivals, often peers that feed nobody, keep the
   * shallow slots for good and trees stay deep whatever the capacity below (measured: mean
   * depth 14 in every upload class of a 1,000-viewer swarm). Each such move puts a higher class
   * above a lower one, so it converges. (Preempting equals for upgrades churned more than it
   * gained.)
   */
  private maybeUpgradeParent(rendition: string, now: number): void {
    if (this.asking.has(rendition)) return;
    if (now - (this.upgradeAt.get(rendition) ?? -Infinity) < ENGINE_LIMITS.upgradeEveryMs) return;
    this.upgradeAt.set(rendition, now);
    const mine = this.depthOf(rendition);
    if (mine === NO_DEPTH || mine <= 1) return;
    const parent = this.parents.get(rendition);
    let cand = mine > 2 ? this.pickParent(rendition, now, { belowDepth: mine - 2, freeOnly: true, exclude: parent }) : null;
    // under an optimizer the tracker sorts capacity itself: two controllers would fight over slots
    if (!cand && !this.steered && capacityClass(this.capacityIn(rendition)) >= 2) {
      // one hop up is enough here: only a lower class gives way, so these moves sort the tree
      cand = this.pickParent(rendition, now, { belowDepth: mine - 1, fullOnly: true, exclude: parent });
      if (!cand) this.maybeClimb(rendition, now, mine);
    }
    if (cand) this.askForSlot(cand, rendition, now, true, false);
  }

  /**
   * Climbing: a peer that feeds three or more, with no neighbor two hops shallower to move to,
   * looks one hop further, at the parents its neighbors name in STATUS. It asks its host
   * ('climb' event; the host connects as for an assignment) for a link to the shallowest one
   * that would lift it at least one hop (not a neighbor yet, not below us); once linked, the
   * upgrade above takes a slot there, free or a lower class's. Neighbor sets are random, so
   * without this a peer that could feed many may never meet a shallow parent.
   */
  private maybeClimb(rendition: string, now: number, mine: number): void {
    if (now - this.lastClimbAt < ENGINE_LIMITS.climbEveryMs) return;
    for (const [id, until] of this.climbTried) if (until <= now) this.climbTried.delete(id);
    let best: { id: string; depth: number } | null = null;
    for (const n of this.neighbors.values()) {
      if (n.state !== 'open') continue;
      const st = n.status.get(rendition);
      if (!st || st.parent === null || st.depth === NO_DEPTH || st.depth < 1) continue;
      const depth = st.depth - 1; // the parent's
      if (depth > mine - 2 || st.parent === this.peerId || this.neighbors.has(st.parent) || this.climbTried.has(st.parent)) continue;
      if (mayContain(st.ancestors, this.peerId)) continue; // below us
      if (!best || depth < best.depth) best = { id: st.parent, depth };
    }
    if (!best) return;
    this.lastClimbAt = now;
    this.climbTried.set(best.id, now + ENGINE_LIMITS.climbRetryMs);
    this.counters.climbs++;
    this.log.debug({ rendition, target: best.id, depth: best.depth, mine }, 'climbing');
    this.emit('climb', { peerId: best.id, rendition });
  }

  /**
   * The neighbor to ask for a slot: fed (depth below the limit), not refusing us lately, not our
   * own child in that rendition; direct neighbors before relayed ones (Link.relayed: a TURN relay
   * is used as parent only when no direct neighbor qualifies), then those with free slots, then
   * the shallowest, then the best measured throughput, then at random. A full one is asked too
   * (our priority may outrank its lowest holder).
   */
  private pickParent(
    rendition: string, now: number, opts: { belowDepth?: number; freeOnly?: boolean; fullOnly?: boolean; exclude?: string } = {},
  ): Neighbor | null {
    const f = this.feasible.get(rendition);
    const bound = Math.min(ENGINE_LIMITS.maxDepth - 1, opts.belowDepth ?? Infinity, f && now < f.until ? f.depth : Infinity);
    let best: Neighbor | null = null;
    let bestKey: number[] | null = null;
    for (const n of this.neighbors.values()) {
      if (n.state !== 'open') continue;
      const st = n.status.get(rendition);
      if (!st || st.depth >= bound || (opts.freeOnly && st.free <= 0) || (opts.fullOnly && st.free > 0) || n.id === opts.exclude) continue;
      if (mayContain(st.ancestors, this.peerId)) continue; // it is (or may be) our descendant
      if ((n.refusedUntil.get(rendition) ?? -Infinity) > now) continue;
      if (this.slots.has(n.id, rendition)) continue;
      const key = [n.link.relayed === true ? 1 : 0, st.free > 0 ? 0 : 1, st.depth, -n.throughput, this.random.next()];
      const i = bestKey ? key.findIndex((k, j) => k !== bestKey![j]) : -1;
      if (!bestKey || (i >= 0 && key[i] < bestKey[i])) {
        best = n;
        bestKey = key;
      }
    }
    return best;
  }

  private onSlotRequest(n: Neighbor, f: SlotRequestFrame): void {
    this.lamport.observe(f.timestamp);
    const r = f.rendition;
    const refuse = (reason: number) => {
      this.counters.slotRefusals++;
      this.send(n, { type: 'slot-revoke', rendition: r, reason });
    };
    if (!this.pushEnabled || this.depthOf(r) === NO_DEPTH) return refuse(RevokeReason.noFeed);
    if (this.parents.get(r) === n.id || mayContain(this.ancestorsOf(r), n.id)) return refuse(RevokeReason.cycle);
    if (!this.slots.has(n.id, r) && this.slots.childrenOf(r).length >= this.maxChildrenPerRendition) {
      // Per-rendition budget (the origin's few slots): each one roots a whole subtree, so it goes
      // to the peer that can feed the most others; a child is displaced only by a requester with
      // more capacity (a plain deadline priority would let every urgent newcomer unseat a
      // subtree's root).
      // The optimizer's assignment outranks both (it sees the whole overlay). Between two
      // assignments the asker wins unless the holder can feed more: a holder keeps its mark
      // after the plan moved on (the plan gives this budget's one slot to one root, and a peer
      // asks only for its latest assignment), and a later plan's root must not stay locked out
      // by an earlier one's (measured: a swap of two equal roots kept a rendition unfed).
      const capacity = (id: string) => this.neighbors.get(id)?.status.get(r)?.capacity ?? 0;
      let worst: { peerId: string; capacity: number; assigned: boolean } | null = null;
      for (const h of this.slots.list()) {
        if (h.rendition !== r) continue;
        const c = capacity(h.peerId);
        const assigned = h.priority.assigned === true;
        if (!worst || (worst.assigned && !assigned) || (worst.assigned === assigned && c < worst.capacity)) {
          worst = { peerId: h.peerId, capacity: c, assigned };
        }
      }
      const wins = !!worst && (f.assigned === true
        ? !worst.assigned || capacity(n.id) >= worst.capacity
        : !worst.assigned && capacity(n.id) > worst.capacity);
      if (!worst || !wins) return refuse(RevokeReason.full);
      this.slots.release(worst.peerId, r);
      this.preemptChild(worst.peerId, r);
    }
    const d = this.slots.request({
      peerId: n.id, rendition: r, costKbps: this.slotCost(r),
      priority: { assigned: f.assigned === true, capacityClass: capacityClass(f.capacity ?? 1), deadlineMs: f.deadlineMs, timestamp: f.timestamp, peerId: n.id },
    });
    if (!d.granted) return refuse(RevokeReason.full);
    if (d.revoked) this.preemptChild(d.revoked.peerId, d.revoked.rendition);
    this.endHandover(n.id, r);
    this.counters.slotGrants++;
    this.send(n, { type: 'slot-grant', rendition: r, depth: this.depthOf(r), timestamp: this.lamport.tick() });
    this.log.debug({ child: n.id, rendition: r }, 'slot granted');
    // cut-through from the segment in progress: push what we hold of the newest segment
    const newest = this.store.newestSeq(r);
    const e = newest !== undefined ? this.store.get({ rendition: r, seq: newest }) : undefined;
    if (e && e.held > 0 && this.sendManifest(n, e)) {
      for (let i = 0; i < e.pieces.length; i++) {
        if (getBit(e.bitfield, i) && !this.neighborHas(n, e.ref, i) && !requested(n, e.ref, i)) n.pushQueue.push({ ref: e.ref, index: i });
      }
      this.pumpAll();
    }
    this.broadcastStatus();
  }

  /**
   * A higher-priority request took this child's slot: it is told at once (it asks elsewhere) but
   * still pushed to for handoverMs, so that it, and the subtree it feeds, keep playing until it
   * is granted elsewhere (it then releases us) or the handover runs out.
   */
  private preemptChild(peerId: string, rendition: string): void {
    this.counters.slotRevokes++;
    const c = this.neighbors.get(peerId);
    if (!c || c.state !== 'open') return;
    let h = this.handover.get(rendition);
    if (!h) this.handover.set(rendition, (h = new Map()));
    h.set(peerId, this.clock.now() + ENGINE_LIMITS.handoverMs);
    this.send(c, { type: 'slot-revoke', rendition, reason: RevokeReason.preempted });
  }

  /** Parent side: do we push `rendition` to this neighbor (a slot holder, or a preempted child in its handover)? */
  private feeds(peerId: string, rendition: string): boolean {
    return this.slots.has(peerId, rendition) || (this.handover.get(rendition)?.get(peerId) ?? -Infinity) > this.clock.now();
  }

  /** Slot holders of a rendition, then preempted children in their handover. */
  private pushTargets(rendition: string): string[] {
    const ids = this.slots.childrenOf(rendition);
    const h = this.handover.get(rendition);
    if (!h) return ids;
    const now = this.clock.now();
    for (const [id, until] of h) if (until > now && !ids.includes(id)) ids.push(id);
    return ids;
  }

  private endHandover(peerId: string, rendition: string): void {
    const h = this.handover.get(rendition);
    if (h?.delete(peerId) && h.size === 0) this.handover.delete(rendition);
  }

  private revokeChild(peerId: string, rendition: string, reason: number): void {
    this.counters.slotRevokes++;
    const c = this.neighbors.get(peerId);
    if (!c || c.state !== 'open') return;
    c.pushQueue = c.pushQueue.filter((q) => q.ref.rendition !== rendition);
    this.send(c, { type: 'slot-revoke', rendition, reason });
  }

  private onSlotGrant(n: Neighbor, f: SlotGrantFrame): void {
    this.lamport.observe(f.timestamp);
    const r = f.rendition;
    const ask = this.asking.get(r);
    const st = n.status.get(r);
    n.status.set(r, {
      depth: f.depth, free: st?.free ?? 0, capacity: st?.capacity ?? 0,
      noFeedSince: f.depth === NO_DEPTH ? this.clock.now() : null, ancestors: st?.ancestors ?? null, parent: st?.parent ?? null,
    });
    const upgrade = !!ask && ask.peerId === n.id && ask.upgrade && this.parents.has(r) && f.depth !== NO_DEPTH;
    if (upgrade) {
      // make-before-break: the new parent is in place, the old one may go
      this.releaseParent(r, 'upgraded to a shallower parent');
      this.lostParentAt.delete(r);
      this.feasible.delete(r);
    }
    if (!ask || ask.peerId !== n.id || this.parents.has(r) || !this.wantedRenditions().has(r)) {
      // not (or no longer) wanted: give it back at once
      this.send(n, { type: 'slot-revoke', rendition: r, reason: RevokeReason.released });
      if (ask?.peerId === n.id) this.asking.delete(r);
      return;
    }
    this.asking.delete(r);
    this.parents.set(r, n.id);
    this.pushedFrom.set(r, this.store.newestSeq(r) ?? 0);
    n.pushGraceUntil.delete(r);
    this.counters.parentChanges++;
    this.log.debug({ parent: n.id, rendition: r, depth: f.depth }, 'slot granted to us');
    this.broadcastStatus();
  }

  private onSlotRevoke(n: Neighbor, f: SlotRevokeFrame): void {
    const r = f.rendition;
    const now = this.clock.now();
    if (f.reason === RevokeReason.released) {
      this.endHandover(n.id, r);
      if (this.slots.release(n.id, r)) {
        n.pushQueue = n.pushQueue.filter((q) => q.ref.rendition !== r);
        this.broadcastStatus();
      }
      return;
    }
    // from a parent (or a refusal of our request)
    const hold = f.reason === RevokeReason.noFeed ? ENGINE_LIMITS.slotRefusedMs / 5 : ENGINE_LIMITS.slotRefusedMs;
    n.refusedUntil.set(r, now + hold);
    if (this.asking.get(r)?.peerId === n.id) this.asking.delete(r);
    if (this.parents.get(r) === n.id && f.reason === RevokeReason.preempted && !this.preemptedBy.has(r)) {
      // the parent goes on pushing for handoverMs: keep it (and our depth, so our subtree stays
      // whole) while we ask elsewhere, make-before-break (maintainParents)
      this.preemptedBy.set(r, { peerId: n.id, until: now + ENGINE_LIMITS.handoverMs });
    } else if (this.parents.get(r) === n.id) {
      this.preemptedBy.delete(r);
      this.parentRevoked(r, n.id, now, `revoked (reason ${f.reason})`);
    }
    this.maintainParents();
  }

  private onStatus(n: Neighbor, f: StatusFrame): void {
    const prev = n.status.get(f.rendition);
    const noFeedSince = f.depth === NO_DEPTH ? (prev?.noFeedSince ?? this.clock.now()) : null;
    // an older peer sends no capacity: its free slots are the best lower bound
    n.status.set(f.rendition, {
      depth: f.depth, free: f.freeSlots, capacity: f.capacity ?? f.freeSlots, noFeedSince, ancestors: f.ancestors ?? null, parent: f.parent ?? null,
    });
    if (n.status.size > ENGINE_LIMITS.maxHaveEntries) n.status.delete(n.status.keys().next().value as string);
    if (this.parents.get(f.rendition) === n.id) this.broadcastStatus(); // our depth follows our parent's
    if (!this.parents.has(f.rendition) && this.wantedRenditions().has(f.rendition)) this.maintainParents();
  }

  /** A peer serving children only (the origin) makes room: drops one non-child neighbor when full. */
  private evictIdleNeighbor(now: number): void {
    if (!this.serveChildrenOnly || this.neighbors.size < this.maxNeighbors) return;
    if (now - this.lastEviction < ENGINE_LIMITS.idleNeighborMs / 2) return;
    for (const n of this.neighbors.values()) {
      if (n.state !== 'open' || this.slots.hasPeer(n.id) || now - n.addedAt < ENGINE_LIMITS.idleNeighborMs) continue;
      this.lastEviction = now;
      this.closeNeighbor(n, 'not a child', 'not a child');
      return;
    }
  }

  // ================================================================ uploading

  /**
   * Uploads: pushes to children first, then answers to requests, round-robin over neighbors, while
   * each link's buffer is below maxBufferedBytes and the upload cap's token bucket allows.
   */
  private pumpAll(): void {
    if (this.closed) return;
    const now = this.clock.now();
    if (Number.isFinite(this.uploadBytesPerMs)) {
      this.uploadAllowance = Math.min(this.uploadBurst(), this.uploadAllowance + (now - this.lastRefill) * this.uploadBytesPerMs);
    } else {
      this.uploadAllowance = Infinity;
    }
    this.lastRefill = now;
    // a snapshot: closeNeighbor replaces the cached array, never mutates it
    const list = this.neighborArray ??= [...this.neighbors.values()];
    if (list.length === 0) return;
    const start = this.pumpStart++ % list.length;
    for (let phase = 0; phase < 2; phase++) {
      const pushPhase = phase === 0;
      // Answers to requests only once the children are served: queued on other channels they
      // would share the uplink with the pushes (transports and networks share it per channel,
      // not by our priority), and a child's push then arrives late at every hop below it.
      if (!pushPhase && this.pushBacklogged()) break;
      let progress = true;
      while (progress && this.uploadAllowance > 0) {
        progress = false;
        for (let k = 0; k < list.length && this.uploadAllowance > 0; k++) {
          const n = list[(start + k) % list.length];
          if (n.state !== 'open' || n.link.bufferedAmount > this.maxBufferedBytes) continue;
          if (!pushPhase && this.answerWouldDelayPushes()) break;
          if (this.sendNext(n, pushPhase)) progress = true;
        }
      }
    }
  }

  /**
   * A peer that feeds children answers requests one piece at a time: an answer still in a
   * non-child channel's buffer holds the next one back. Answers queued on several channels (up to
   * maxBufferedBytes each) share the uplink with the next segment's pushes, which then reach every
   * hop below us late: in the simulated 1,000-viewer swarm (trees 7-8 deep of parents with one
   * slot) that lateness was three quarters of the steady state's HTTP. One answer in flight still
   * uses what the children leave of the uplink; peers without children answer as before.
   */
  private answerWouldDelayPushes(): boolean {
    if (this.slots.size === 0) return false;
    for (const n of this.neighbors.values()) {
      if (n.state === 'open' && !this.slots.hasPeer(n.id) && n.link.bufferedAmount > 0) return true;
    }
    return false;
  }

  /** Some child still has pushes waiting, in our queue or in its channel's buffer. */
  private pushBacklogged(): boolean {
    for (const n of this.neighbors.values()) {
      if (n.state !== 'open' || !this.slots.hasPeer(n.id)) continue;
      if (n.pushQueue.length > 0 || n.link.bufferedAmount > this.maxBufferedBytes / 2) return true;
    }
    return false;
  }

  /** Sends one queued piece to n (a push, or an answer to a request). False if none was sent. */
  private sendNext(n: Neighbor, push: boolean): boolean {
    const queue = push ? n.pushQueue : n.queue;
    while (queue.length > 0 && n.state === 'open') {
      const q = queue.shift()!;
      if (push && (!this.feeds(n.id, q.ref.rendition) || this.neighborHas(n, q.ref, q.index))) continue;
      const data = this.store.getPiece(q.ref, q.index);
      if (!data) continue; // evicted meanwhile
      // A push channel is refilled when it falls to half its buffer, so it never runs dry; an
      // answer channel when it is empty: answers go one piece at a time while we feed children
      // (answerWouldDelayPushes), and a piece smaller than half the buffer never crosses the higher
      // threshold, so the next answer waited for the next tick (100 ms) or some other event.
      const low = push ? this.maxBufferedBytes / 2 : 0;
      if (n.link.lowThreshold !== low) n.link.lowThreshold = low;
      if (!this.send(n, { type: 'piece', rendition: q.ref.rendition, seq: q.ref.seq, index: q.index, data })) return false;
      this.counters.bytesUploaded += data.length;
      n.bytesSent += data.length;
      this.uploadAllowance -= data.length;
      if (push) {
        this.counters.piecesPushed++;
        // the child has it now: don't push or serve it twice
        const k = segmentKey(q.ref);
        let h = n.have.get(k);
        if (!h) {
          const count = this.store.get(q.ref)?.pieces.length ?? 0;
          h = { ref: q.ref, pieceCount: count, bitfield: new Uint8Array((count + 7) >> 3) };
          n.have.set(k, h);
          if (n.have.size > ENGINE_LIMITS.maxHaveEntries) n.have.delete(n.have.keys().next().value as string);
        }
        if (q.index < h.pieceCount) h.bitfield[q.index >> 3] |= 0x80 >> (q.index & 7);
      }
      return true;
    }
    return false;
  }

  // ================================================================ downloading

  private neighborHas(n: Neighbor, ref: SegmentRef, index: number): boolean {
    const h = n.have.get(segmentKey(ref));
    return !!h && getBit(h.bitfield, index);
  }

  private hasOpenNeighbor(): boolean {
    for (const n of this.neighbors.values()) if (n.state === 'open') return true;
    return false;
  }

  /** Some open neighbor announced this piece and has not sent us a bad copy of it. */
  private anyNeighborCanServe(ref: SegmentRef, index: number): boolean {
    const pk = pieceKey(ref, index);
    for (const n of this.neighbors.values()) {
      if (n.state === 'open' && this.neighborHas(n, ref, index) && !n.badFor.has(pk)) return true;
    }
    return false;
  }

  /**
   * True while a segment is left to our parent's push: we have a parent in its rendition, learnt
   * of the segment less than a push time ago, and no pending load of it is close to its HTTP time.
   */
  private leftToPush(e: SegmentEntry, load: PendingLoad | undefined): boolean {
    if (!this.parentPushes(e.ref)) return false;
    const at = this.manifestAt.get(e.key);
    if (at === undefined) return false;
    const now = this.clock.now();
    if (now - at >= Math.max(ENGINE_LIMITS.pushWaitMs, e.manifest.durationMs)) return false;
    return !(load && load.deadline - this.marginFor(load) - now <= ENGINE_LIMITS.urgentMs);
  }

  /** Our parent in this rendition pushes this segment: a media segment not older than the link. */
  private parentPushes(ref: SegmentRef): boolean {
    if (!this.parents.has(ref.rendition) || ref.seq === INIT_SEQ) return false;
    return ref.seq >= (this.pushedFrom.get(ref.rendition) ?? Infinity);
  }

  /** The HTTP safety margin of a load: its own, or more if HTTP has been measured slower. */
  private marginFor(load: PendingLoad): number {
    return this.httpTimer.margin(load.httpMarginMs);
  }

  /**
   * Segments to fetch from peers, most urgent first. Runs on every scheduling pass (each HAVE of
   * a segment the player waits for, each tick): no per-call closures beyond one per segment
   * returned, and the common answer (nothing: the parent pushes it all) allocates next to nothing.
   */
  private wanted(): SchedSegment[] {
    const out: SchedSegment[] = [];
    const seen = this.wantedSeen;
    seen.clear();
    if (this.loads.size > 0) {
      for (const l of [...this.loads.values()].sort((a, b) => a.deadline - b.deadline)) {
        const e = this.store.get(l.ref);
        if (e) this.addWanted(out, seen, e, l);
      }
    }
    if (this.interest === 'all') {
      const bg: SegmentEntry[] = [];
      for (const r of this.store.renditions()) {
        const newest = this.store.newestSeq(r);
        for (const e of this.store.entriesOf(r)) {
          if (e.held === e.pieces.length) continue;
          if (e.ref.seq === INIT_SEQ || (newest !== undefined && e.ref.seq >= newest - ENGINE_LIMITS.backlogSegments)) bg.push(e);
        }
      }
      bg.sort((a, b) => a.ref.seq - b.ref.seq || (a.ref.rendition < b.ref.rendition ? -1 : 1));
      for (const e of bg) this.addWanted(out, seen, e, undefined);
    } else if (this.interest === 'following' && this.position) {
      const pos = this.position;
      let bg: SegmentEntry[] | null = null;
      for (const e of this.store.entriesOf(pos.rendition)) {
        if (e.held === e.pieces.length || (e.ref.seq !== INIT_SEQ && e.ref.seq < pos.seq)) continue;
        (bg ??= []).push(e);
      }
      if (bg) {
        bg.sort((a, b) => a.ref.seq - b.ref.seq);
        for (const e of bg) this.addWanted(out, seen, e, undefined);
      }
    }
    return out;
  }

  private addWanted(out: SchedSegment[], seen: Set<string>, e: SegmentEntry, load: PendingLoad | undefined): void {
    if (e.held === e.pieces.length || seen.has(e.key)) return;
    seen.add(e.key);
    if (this.leftToPush(e, load)) return;
    const pieces: number[] = [];
    // Our parent pushes this segment from the lowest index up: repair it from the top down, so
    // that the pulls and the push fill it from both ends. Pulled from the bottom, the repair asked
    // for the pieces the push was about to deliver and left the top of the segment to HTTP at the
    // deadline (simulator, chandelier-300's flash crowd, engine alone: 64.7% -> 70.2% from peers).
    const pushedToUs = this.parentPushes(e.ref);
    const noRequests = this.requests.noneFor(e.key);
    for (let i = 0; i < e.pieces.length; i++) {
      if (getBit(e.bitfield, i) || (!noRequests && this.requests.isActiveIn(e.key, i)) || load?.httpPieces.has(i)) continue;
      pieces.push(i);
    }
    if (pieces.length === 0) return;
    const ref = e.ref;
    const parent = this.parents.get(ref.rendition);
    out.push({
      ref, pieces, descending: pushedToUs,
      exclude: (id, index) => {
        if (this.requests.has(id, ref, index)) return true;
        const n = this.neighbors.get(id);
        // the origin serves its children only (its upload budget)
        if (n && n.kind === 'origin' && parent !== id) return true;
        return !!n && n.badFor.has(pieceKey(ref, index));
      },
    });
  }

  private runSchedule(): void {
    if (this.closed) return;
    if (this.scheduling) { this.rescheduleWanted = true; return; }
    this.scheduling = true;
    try {
      do {
        this.rescheduleWanted = false;
        this.scheduleOnce();
      } while (this.rescheduleWanted && !this.closed);
    } finally {
      this.scheduling = false;
    }
  }

  private scheduleOnce(): void {
    // what we want first: for a peer fed by its parent it is usually nothing, and then the
    // neighbor list below need not be built
    const wanted = this.wanted();
    if (wanted.length === 0) return;
    const open: SchedNeighbor[] = [];
    const pieceBytes = this.store.get(wanted[0].ref)?.manifest.pieceSize ?? 0;
    const windowLimits = {
      horizonMs: ENGINE_LIMITS.requestWindowMs, min: ENGINE_LIMITS.minRequestWindow,
      initial: ENGINE_LIMITS.initialRequestWindow, max: this.maxInflight,
    };
    for (const n of this.neighbors.values()) {
      if (n.state !== 'open' || n.have.size === 0) continue;
      const inflight = this.requests.countFor(n.id);
      const window = requestWindow(n.throughput, pieceBytes, windowLimits);
      if (inflight >= window) continue;
      open.push({
        id: n.id, isOrigin: n.kind === 'origin', inflight, throughput: n.throughput, window,
        has: (ref, i) => this.neighborHas(n, ref, i),
      });
    }
    if (open.length === 0) return;
    const now = this.clock.now();
    for (const req of schedule(wanted, open, { maxInflightPerNeighbor: this.maxInflight, random: this.random })) {
      const n = this.neighbors.get(req.neighborId);
      if (!n || n.state !== 'open') continue;
      for (let i = req.index; i < req.index + req.count; i++) this.requests.add(n.id, req.ref, i, now);
      this.counters.requestsSent++;
      this.send(n, { type: 'request', rendition: req.ref.rendition, seq: req.ref.seq, index: req.index, count: req.count });
    }
  }

  // ================================================================ loads and HTTP fallback

  private checkLoads(): void {
    for (const load of [...this.loads.values()]) this.maybeHttp(load);
  }

  /**
   * HTTP fallback for a pending load: at deadline - margin everything still missing; before that,
   * the manifest if no neighbor announced the segment, and pieces no neighbor can serve.
   */
  private maybeHttp(load: PendingLoad): void {
    if (load.done || this.closed) return;
    const now = this.clock.now();
    if (!this.http) {
      if (now >= load.deadline) this.failLoad(load, new Error('deadline passed (no HTTP source)'));
      return;
    }
    const margin = this.marginFor(load);
    const late = now >= load.deadline - margin;
    const entry = this.store.get(load.ref);
    if (!entry) {
      if (load.manifestFetching) return;
      let announced = false;
      for (const n of this.neighbors.values()) if (n.state === 'open' && n.have.has(load.key)) announced = true;
      if (late || !announced) this.fetchManifestHttp(load);
      // Due already and nothing known of it: all of it goes over HTTP anyway, so the body is
      // fetched alongside the manifest (startup and seeks: one round trip instead of two).
      if (late && !load.body && this.http.fetchSegment) this.fetchBodyHttp(load);
      return;
    }
    if (load.body?.pending) return; // the whole segment is on its way
    if (load.body?.bytes) {
      this.useBody(load, entry);
      return;
    }
    // Before the deadline, pieces go to HTTP only when no neighbor is open at all: a neighbor
    // that has not announced a new live segment yet usually will within the deadline.
    const { pieces } = fallbackPieces({
      now, deadline: load.deadline, marginMs: margin, pieceCount: entry.pieces.length, leaveToPush: this.pushLeft(load, now),
      pullCutoff: this.lastFetchAt(load),
      held: (i) => getBit(entry.bitfield, i),
      viaHttp: (i) => load.httpPieces.has(i),
      inFlight: (i) => this.requests.isActive(load.ref, i),
      announced: (i) => this.anyNeighborCanServe(load.ref, i),
      alone: !this.hasOpenNeighbor() && (this.hadNeighbor || now - this.createdAt >= ENGINE_LIMITS.joinGraceMs),
    });
    if (pieces.length > 0) {
      this.countHttpCause(load, late, pieces.length);
      this.fetchPiecesHttp(load, entry, pieces);
    }
  }

  /** Which state sent pieces to HTTP (debugStats): tells the simulator's and the bench's losses apart. */
  private countHttpCause(load: PendingLoad, late: boolean, pieces: number): void {
    const c = this.counters;
    if (!late) { c.httpAlone += pieces; return; }
    const id = this.parents.get(load.ref.rendition);
    const p = id === undefined ? undefined : this.neighbors.get(id);
    if (!p) c.httpNoParent += pieces;
    else if (p.pushKey !== load.key) c.httpParentElsewhere += pieces;
    else c.httpParentSlow += pieces;
  }

  /**
   * Pieces of a late load that the parent's push will still deliver in time: the fallback starts
   * at deadline - margin, and pieces a busy chain delivers a few hundred ms later were the bulk
   * of what viewers in deep trees fetched over HTTP. "In time" ends one measured HTTP fetch
   * before the deadline (mean + 2 deviations): whatever the push has not delivered by then is
   * fetched while a fetch still completes by the deadline, so the player's safety need not cover
   * an HTTP round trip as well (it did when the wait ran to the deadline itself).
   */
  private pushLeft(load: PendingLoad, now: number): number {
    const id = this.parents.get(load.ref.rendition);
    const p = id === undefined ? undefined : this.neighbors.get(id);
    if (!p || p.pushKey !== load.key) return 0;
    return pushWillDeliver({ now, deadline: this.lastFetchAt(load), lastPushAt: p.pushAt, gapMs: p.pushGapMs, minGapMs: 1 });
  }

  /**
   * The last moment a fetch still completes by the load's deadline: one measured HTTP fetch before
   * it. A late load leaves its parent's push (pushLeft) and the pieces it requested from neighbors
   * to them until then. The margin before
   * the deadline (at least the player's httpMarginMs, 500 ms) is for a fetch of unknown speed; what
   * is already on its way from a neighbor then has until the last moment a fetch still completes
   * in time. A joiner's second segment is due 1.5 s after its first, and its neighbors open during
   * that time: at deadline - margin most of its pieces were still in flight (simulator,
   * chandelier-1k's flash crowd: 12 of 14 missing pieces at the median).
   */
  private lastFetchAt(load: PendingLoad): number {
    return load.deadline - this.httpTimer.fetchTime(ENGINE_LIMITS.httpFetchGuessMs);
  }

  private fetchManifestHttp(load: PendingLoad): void {
    load.manifestFetching = true;
    this.log.debug({ ref: load.ref }, 'manifest over HTTP');
    let p: Promise<Uint8Array>;
    try { p = this.http!.fetchManifest(load.ref); } catch (err) { p = Promise.reject(err); }
    p.then((bytes) => {
      load.manifestFetching = false;
      if (this.closed) return;
      let m: Manifest;
      try {
        m = decodeManifest(bytes, this.publicKey, this.crypto);
      } catch (err) {
        this.failLoad(load, new Error(`bad manifest from HTTP: ${errorMessage(err)}`));
        return;
      }
      if (m.channel !== this.channel || m.rendition !== load.ref.rendition || m.seq !== load.ref.seq) {
        this.failLoad(load, new Error('HTTP manifest is for another segment'));
        return;
      }
      this.addManifest(m);
      if (load.done) return;
      this.maybeHttp(load);
      this.runSchedule();
    }, (err: unknown) => {
      load.manifestFetching = false;
      this.failLoad(load, new Error(`HTTP manifest fetch failed: ${errorMessage(err)}`));
    });
  }

  /** The whole segment over HTTP, alongside its manifest (see HttpSource.fetchSegment). */
  private fetchBodyHttp(load: PendingLoad): void {
    const body: { pending: boolean; bytes: Uint8Array | null } = { pending: true, bytes: null };
    load.body = body;
    this.log.debug({ ref: load.ref }, 'segment over HTTP with its manifest');
    const sentAt = this.clock.now();
    let p: Promise<Uint8Array>;
    try { p = this.http!.fetchSegment!(load.ref); } catch (err) { p = Promise.reject(err); }
    p.then((bytes) => {
      body.pending = false;
      if (this.closed || load.done) return;
      if (!(bytes instanceof Uint8Array)) throw new Error('not bytes');
      this.httpTimer.sample(this.clock.now() - sentAt);
      body.bytes = bytes;
      const entry = this.store.get(load.ref);
      if (entry) this.useBody(load, entry); // else: used when the manifest arrives
    }).catch((err: unknown) => {
      // The pieces are fetched as ranges instead (the manifest fetch goes on regardless).
      body.pending = false;
      body.bytes = null;
      this.log.debug({ ref: load.ref, err: errorMessage(err) }, 'segment fetch failed; ranges instead');
      if (!load.done && !this.closed) this.maybeHttp(load);
    });
  }

  /** Verifies and stores the pieces of a whole-segment body we do not hold yet. */
  private useBody(load: PendingLoad, entry: SegmentEntry): void {
    const bytes = load.body!.bytes!;
    load.body!.bytes = null; // used once; anything still missing goes to ranges
    const m = entry.manifest;
    const size = pieceRange(m, entry.pieces.length - 1)[1];
    if (bytes.length !== size) {
      this.log.warn({ ref: load.ref, got: bytes.length, size }, 'HTTP segment of the wrong size; ranges instead');
      this.maybeHttp(load);
      return;
    }
    for (let i = 0; i < entry.pieces.length; i++) {
      if (this.store.hasPiece(load.ref, i)) continue; // a peer was faster
      const [s, e] = pieceRange(m, i);
      const data = bytes.slice(s, e);
      if (!verifyPiece(this.crypto, m, i, data)) {
        this.counters.badPieces++;
        this.log.warn({ source: 'http', ref: load.ref, index: i }, 'bad piece');
        this.failLoad(load, new Error(`piece ${i} from HTTP failed verification`));
        return;
      }
      if (this.store.get(load.ref) !== entry) return; // evicted (the load ended)
      this.counters.httpUnknown++;
      this.storePiece(load.ref, i, data, 'http', null);
    }
    this.runSchedule();
  }

  /** Fetches the given missing pieces, one Range request per run of contiguous pieces. */
  private fetchPiecesHttp(load: PendingLoad, entry: SegmentEntry, pieces: number[]): void {
    const m = entry.manifest;
    for (const [first, count] of coalesce(pieces)) {
      const start = pieceRange(m, first)[0];
      const end = pieceRange(m, first + count - 1)[1];
      // What HTTP now fetches, neighbors need not upload, if it still waits in their queues. In
      // the real swarm bench most duplicates were answers and pushes arriving after the HTTP copy,
      // but already in werift's flight, beyond a CANCEL's reach (bench/RESULTS.md, session 14).
      for (let i = first; i < first + count; i++) {
        load.httpPieces.add(i);
        this.cancelRequests(load.ref, i, null);
      }
      this.cancelPushes(load.ref, first, count);
      this.log.debug({ ref: load.ref, start, end }, 'range over HTTP');
      let p: Promise<Uint8Array>;
      const sentAt = this.clock.now();
      try { p = this.http!.fetchRange(load.ref, start, end); } catch (err) { p = Promise.reject(err); }
      p.then((bytes) => {
        for (let i = first; i < first + count; i++) load.httpPieces.delete(i);
        if (this.closed) return;
        this.httpTimer.sample(this.clock.now() - sentAt);
        if (!(bytes instanceof Uint8Array) || bytes.length !== end - start) {
          this.failLoad(load, new Error(`HTTP range ${start}-${end} returned ${bytes?.length} bytes`));
          return;
        }
        let bad = -1;
        for (let i = first; i < first + count; i++) {
          if (this.store.hasPiece(load.ref, i)) continue; // a peer was faster
          const [s, e] = pieceRange(m, i);
          const data = bytes.slice(s - start, e - start);
          if (!verifyPiece(this.crypto, m, i, data)) { bad = i; continue; }
          if (this.store.get(load.ref) !== entry) break; // evicted (the load ended)
          this.storePiece(load.ref, i, data, 'http', null);
        }
        if (bad >= 0) {
          this.counters.badPieces++;
          this.log.warn({ source: 'http', ref: load.ref, index: bad }, 'bad piece');
          this.failLoad(load, new Error(`piece ${bad} from HTTP failed verification`));
        }
        this.runSchedule();
      }, (err: unknown) => {
        for (let i = first; i < first + count; i++) load.httpPieces.delete(i);
        this.failLoad(load, new Error(`HTTP range fetch failed: ${errorMessage(err)}`));
      });
    }
  }

  private failLoad(load: PendingLoad, err: Error): void {
    if (load.done) return;
    load.done = true;
    if (this.loads.get(load.key) === load) this.loads.delete(load.key);
    this.log.warn({ ref: load.ref, err: err.message }, 'segment load failed');
    this.onEvicted(this.store.unpin(load.ref));
    load.reject(err);
  }
}
