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
import type { EngineApi, EngineEvents, EngineOptions, LoadOptions, LoadResult } from './engine-api.js';
import { decodeManifest, pieceRange, verifyPiece, type Manifest } from './manifest.js';
import { isValidName } from './paths.js';
import {
  decodeFrame, encodeFrame, MAX_WIRE_MANIFEST_BYTES, PEER_ID_PATTERN, PROTOCOL_VERSION, type Frame, type HaveFrame,
  type HelloFrame, type PieceFrame, type RequestFrame, type CancelFrame,
} from './codec.js';
import { SegmentStore, segmentKey, type SegmentEntry } from './store.js';
import { coalesce, RequestTracker, schedule, type SchedNeighbor, type SchedSegment } from './scheduler.js';
import { getBit } from './bitfield.js';

/** Defaults of the optional EngineOptions. */
export const ENGINE_DEFAULTS = {
  maxNeighbors: 8,
  windowSegments: 30,
  maxInflightPerNeighbor: 16,
  requestTimeoutMs: 2000,
  maxBufferedBytes: 1024 * 1024,
} as const;

/** Engine limits (not options: part of the protocol's behaviour, see docs/protocol.md). */
export const ENGINE_LIMITS = {
  /** A neighbor that has not sent HELLO within this many ms is dropped. */
  helloTimeoutMs: 10_000,
  /** Bad pieces from one neighbor before it is banned. */
  maxBadPieces: 3,
  /** Penalised rejected frames from one neighbor before it is banned. */
  maxRejectedFrames: 50,
  /** Piece requests queued per neighbor; extras are dropped and counted. */
  maxQueuedRequests: 256,
  /** HAVE entries remembered per neighbor. */
  maxHaveEntries: 1024,
  /** Piece keys remembered per neighbor (cancelled requests, pieces it sent bad). */
  maxRememberedPieces: 1024,
  /** Banned peer ids remembered. */
  maxBanned: 4096,
  /** A stale (timed-out) request is cancelled after this many request timeouts. */
  forgetAfterTimeouts: 4,
  /** Interest 'all' fetches the newest segment of each rendition and this many before it. */
  backlogSegments: 3,
  /**
   * Viewers (interest other than 'all') leave a new segment to other peers for a random time up to
   * this before pulling it from the origin's root peer: the first viewer to ask gets it from the
   * origin and the rest from that viewer, so the origin uploads about one copy instead of one per
   * neighbor. Seeders pull at once: they exist to carry the origin's copy into the swarm.
   */
  originPatienceMs: 1500,
  /** ...unless a pending load's HTTP fallback time is this close: then the origin may serve at once. */
  originUrgentMs: 1500,
} as const;

/** Rejection reasons that do not count towards a ban (benign races, forward compatibility). */
const BENIGN_REJECTIONS = new Set(['unknown-type', 'request-unheld', 'request-queue-full']);

type NeighborState = 'hello' | 'open' | 'closed';

interface HaveEntry { ref: SegmentRef; pieceCount: number; bitfield: Uint8Array }
interface QueuedRequest { ref: SegmentRef; index: number }

interface Neighbor {
  id: string;
  link: Link;
  state: NeighborState;
  kind: PeerKind | null;
  addedAt: number;
  have: Map<string, HaveEntry>;
  /** Segment keys whose manifest this neighbor has (it sent it, or we did). */
  knowsManifest: Set<string>;
  queue: QueuedRequest[];
  /** Piece keys we cancelled or whose request was dropped: a late PIECE is not a violation. */
  cancelled: Set<string>;
  /** Piece keys this neighbor sent corrupted: never ask it for them again. */
  badFor: Set<string>;
  badPieces: number;
  rejected: number;
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
  /** Segment key -> clock time from which a viewer may pull it from the origin (ENGINE_LIMITS.originPatienceMs). */
  private readonly originOkAt = new Map<string, number>();
  private readonly interest: EngineOptions['interest'];
  private readonly maxNeighbors: number;
  private readonly windowSegments: number;
  private readonly maxInflight: number;
  private readonly requestTimeoutMs: number;
  private readonly maxBufferedBytes: number;

  private readonly store: SegmentStore;
  private readonly requests = new RequestTracker();
  private readonly neighbors = new Map<string, Neighbor>();
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
    latePieces: 0,
    requestsSent: 0,
    requestTimeouts: 0,
  };
  private readonly rejectedFrames: Record<string, number> = {};

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
      have: new Map(), knowsManifest: new Set(), queue: [], cancelled: new Set(), badFor: new Set(),
      badPieces: 0, rejected: 0,
    };
    this.neighbors.set(n.id, n);
    link.onClose = () => this.closeNeighbor(n, 'link closed');
    // HELLO goes out before onMessage is installed: a Link may deliver frames it queued before
    // addLink synchronously from the onMessage setter, and our answer must follow our HELLO.
    if (!this.send(n, { type: 'hello', version: PROTOCOL_VERSION, peerId: this.peerId, kind: this.kind, channel: this.channel })) return;
    link.onMessage = (frame) => this.onFrame(n, frame);
  }

  tick(): void {
    if (this.closed) return;
    const now = this.clock.now();
    for (const n of this.neighbors.values()) {
      if (n.state === 'hello' && now - n.addedAt >= ENGINE_LIMITS.helloTimeoutMs) this.closeNeighbor(n, 'hello timeout', 'hello timeout');
    }
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
    for (const n of this.neighbors.values()) if (n.state === 'open') this.pump(n);
    this.checkLoads();
    this.runSchedule();
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
        firstByteAt: now, completedAt: now,
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
      manifestFetching: false, httpPieces: new Set(), done: false,
    };
    if ((this.store.get(r)?.held ?? 0) > 0) load.firstByteAt = now;
    this.loads.set(key, load);
    this.store.pin(r);
    this.maybeHttp(load);
    this.runSchedule();
    return promise;
  }

  setPlaybackPosition(ref: SegmentRef): void {
    if (!ref || typeof ref.rendition !== 'string' || !isValidName(ref.rendition) || !Number.isInteger(ref.seq) || ref.seq < INIT_SEQ) {
      throw new TypeError('invalid segment ref');
    }
    this.position = { rendition: ref.rendition, seq: ref.seq };
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

  /** Extra counters for diagnostics, tests and the simulator (not part of EngineApi). */
  debugStats(): {
    duplicatePieces: number; latePieces: number; requestsSent: number; requestTimeouts: number;
    requestsInFlight: number; storedBytes: number; storedSegments: number; neighbors: number; banned: number; pendingLoads: number;
  } {
    const s = this.store.stats();
    return {
      duplicatePieces: this.counters.duplicatePieces,
      latePieces: this.counters.latePieces,
      requestsSent: this.counters.requestsSent,
      requestTimeouts: this.counters.requestTimeouts,
      requestsInFlight: this.requests.size,
      storedBytes: s.bytes,
      storedSegments: s.segments,
      neighbors: this.neighbors.size,
      banned: this.banned.size,
      pendingLoads: this.loads.size,
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
    try { n.link.close(); } catch { /* already closed */ }
    if (this.neighbors.get(n.id) === n) this.neighbors.delete(n.id);
    n.queue.length = 0;
    this.requests.removeNeighbor(n.id);
    this.log.info({ peer: n.id, reason }, 'neighbor closed');
    this.emit('neighbor-closed', { peerId: n.id, reason });
    if (!this.closed) {
      // its requests are gone: re-issue them elsewhere, or fall back to HTTP for pending loads
      this.checkLoads();
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
    this.log.debug({ peer: n.id, kind: f.kind }, 'neighbor open');
    this.emit('neighbor-open', { peerId: n.id, kind: f.kind });
    // tell the new neighbor what we hold: init segments first, then by seq
    const held = [...this.store.entries()].filter((e) => e.held === e.pieces.length && e.pieces.length > 0)
      .sort((a, b) => a.ref.seq - b.ref.seq || (a.ref.rendition < b.ref.rendition ? -1 : 1));
    for (const e of held) {
      if (n.state !== 'open') return;
      this.announceTo(n, e);
    }
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
    if (n.have.size > ENGINE_LIMITS.maxHaveEntries) n.have.delete(n.have.keys().next().value as string);
    this.runSchedule();
  }

  private onRequest(n: Neighbor, f: RequestFrame): void {
    const ref = { rendition: f.rendition, seq: f.seq };
    let unheld = 0;
    let dropped = 0;
    for (let i = f.index; i < f.index + f.count; i++) {
      if (!this.store.hasPiece(ref, i)) unheld++;
      else if (n.queue.length >= ENGINE_LIMITS.maxQueuedRequests) dropped++;
      else n.queue.push({ ref, index: i });
    }
    if (unheld) this.reject(n, 'request-unheld');
    if (dropped && n.state === 'open') this.reject(n, 'request-queue-full');
    if (n.state === 'open') this.pump(n);
  }

  private onCancel(n: Neighbor, f: CancelFrame): void {
    const end = f.index + f.count;
    n.queue = n.queue.filter((q) => !(q.ref.rendition === f.rendition && q.ref.seq === f.seq && q.index >= f.index && q.index < end));
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
    if (!rec && !wasCancelled) return this.reject(n, 'unrequested-piece');
    n.cancelled.delete(pk);
    if (getBit(entry.bitfield, f.index)) {
      if (rec) this.requests.remove(n.id, ref, f.index);
      this.counters.duplicatePieces++;
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
    if (!rec) this.counters.latePieces++;
    this.storePiece(ref, f.index, f.data, n.kind === 'origin' ? 'origin-peer' : 'peer', n.id);
    this.runSchedule();
  }

  // ================================================================ store and announcements

  /** Stores a verified manifest; handles what the window evicts. */
  private addManifest(m: Manifest): SegmentEntry | undefined {
    const ref = { rendition: m.rendition, seq: m.seq };
    const isNew = !this.store.get(ref);
    const { entry, evicted } = this.store.addManifest(m);
    this.onEvicted(evicted);
    if (entry && isNew && this.interest !== 'all') {
      this.originOkAt.set(entry.key, this.clock.now() + this.random.next() * ENGINE_LIMITS.originPatienceMs);
    }
    if (entry && isNew && entry.pieces.length === 0) this.onComplete(entry, 'local');
    return entry;
  }

  private onEvicted(evicted: SegmentRef[]): void {
    for (const ref of evicted) {
      const key = segmentKey(ref);
      this.originOkAt.delete(key);
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
    for (const r of this.requests.removePiece(ref, index)) {
      if (r.neighborId === from) continue;
      const n = this.neighbors.get(r.neighborId);
      if (!n || n.state !== 'open') continue;
      remember(n.cancelled, pieceKey(ref, index), ENGINE_LIMITS.maxRememberedPieces);
      this.send(n, { type: 'cancel', rendition: ref.rendition, seq: ref.seq, index, count: 1 });
    }
    const key = segmentKey(ref);
    const load = this.loads.get(key);
    if (load && load.firstByteAt === null) load.firstByteAt = this.clock.now();
    const entry = this.store.get(ref)!;
    if (entry.held === entry.pieces.length) {
      const by = this.store.bytesBySource(ref);
      let best: PieceSource = source;
      for (const s of Object.keys(by) as PieceSource[]) if (by[s] > by[best]) best = s;
      this.onComplete(entry, best);
    }
    return true;
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
        firstByteAt: load.firstByteAt ?? now, completedAt: now,
      };
      this.onEvicted(this.store.unpin(ref));
      load.resolve(result);
    }
    if (this.store.get(ref) !== entry) return; // evicted at once (older than the window)
    for (const n of this.neighbors.values()) if (n.state === 'open') this.announceTo(n, entry);
  }

  /** MANIFEST (unless the neighbor has it) + HAVE with our bitfield. */
  private announceTo(n: Neighbor, e: SegmentEntry): void {
    if (!n.knowsManifest.has(e.key) && e.manifest.encoded.length <= MAX_WIRE_MANIFEST_BYTES) {
      if (!this.send(n, { type: 'manifest', manifest: e.manifest.encoded })) return;
      remember(n.knowsManifest, e.key, ENGINE_LIMITS.maxHaveEntries);
    }
    this.send(n, { type: 'have', rendition: e.ref.rendition, seq: e.ref.seq, pieceCount: e.pieces.length, bitfield: e.bitfield.slice() });
  }

  // ================================================================ uploading

  /** Serves queued requests while the link's buffer is below maxBufferedBytes. */
  private pump(n: Neighbor): void {
    while (n.queue.length > 0 && n.state === 'open') {
      if (n.link.bufferedAmount > this.maxBufferedBytes) return;
      const q = n.queue.shift()!;
      const data = this.store.getPiece(q.ref, q.index);
      if (!data) continue; // evicted meanwhile
      if (this.send(n, { type: 'piece', rendition: q.ref.rendition, seq: q.ref.seq, index: q.index, data })) {
        this.counters.bytesUploaded += data.length;
      }
    }
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

  /** True while the origin's root peer should not be asked for this segment yet (originPatienceMs). */
  private originWaits(e: SegmentEntry, load: PendingLoad | undefined): boolean {
    const okAt = this.originOkAt.get(e.key);
    if (okAt === undefined) return false;
    const now = this.clock.now();
    if (now >= okAt) return false;
    return !(load && load.deadline - load.httpMarginMs - now <= ENGINE_LIMITS.originUrgentMs);
  }

  /** Segments to fetch from peers, most urgent first. */
  private wanted(): SchedSegment[] {
    const out: SchedSegment[] = [];
    const seen = new Set<string>();
    const add = (e: SegmentEntry, load: PendingLoad | undefined): void => {
      if (seen.has(e.key) || e.held === e.pieces.length) return;
      seen.add(e.key);
      const pieces: number[] = [];
      for (let i = 0; i < e.pieces.length; i++) {
        if (getBit(e.bitfield, i) || this.requests.isActive(e.ref, i) || load?.httpPieces.has(i)) continue;
        pieces.push(i);
      }
      if (pieces.length === 0) return;
      const ref = e.ref;
      const originWaits = this.originWaits(e, load);
      out.push({
        ref, pieces,
        exclude: (id, index) => {
          if (this.requests.has(id, ref, index)) return true;
          const n = this.neighbors.get(id);
          if (n && originWaits && n.kind === 'origin') return true;
          return !!n && n.badFor.has(pieceKey(ref, index));
        },
      });
    };
    const loads = [...this.loads.values()].sort((a, b) => a.deadline - b.deadline);
    for (const l of loads) {
      const e = this.store.get(l.ref);
      if (e) add(e, l);
    }
    if (this.interest === 'all') {
      const bg: SegmentEntry[] = [];
      for (const r of this.store.renditions()) {
        const newest = this.store.newestSeq(r);
        for (const e of this.store.entries()) {
          if (e.ref.rendition !== r) continue;
          if (e.ref.seq === INIT_SEQ || (newest !== undefined && e.ref.seq >= newest - ENGINE_LIMITS.backlogSegments)) bg.push(e);
        }
      }
      bg.sort((a, b) => a.ref.seq - b.ref.seq || (a.ref.rendition < b.ref.rendition ? -1 : 1));
      for (const e of bg) add(e, undefined);
    } else if (this.interest === 'following' && this.position) {
      const pos = this.position;
      const bg: SegmentEntry[] = [];
      for (const e of this.store.entries()) {
        if (e.ref.rendition === pos.rendition && (e.ref.seq === INIT_SEQ || e.ref.seq >= pos.seq)) bg.push(e);
      }
      bg.sort((a, b) => a.ref.seq - b.ref.seq);
      for (const e of bg) add(e, undefined);
    }
    return out;
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
    const open: SchedNeighbor[] = [];
    for (const n of this.neighbors.values()) {
      if (n.state !== 'open' || n.have.size === 0) continue;
      const inflight = this.requests.countFor(n.id);
      if (inflight >= this.maxInflight) continue;
      open.push({ id: n.id, isOrigin: n.kind === 'origin', inflight, has: (ref, i) => this.neighborHas(n, ref, i) });
    }
    if (open.length === 0) return;
    const wanted = this.wanted();
    if (wanted.length === 0) return;
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
    const late = now >= load.deadline - load.httpMarginMs;
    const entry = this.store.get(load.ref);
    if (!entry) {
      if (load.manifestFetching) return;
      let announced = false;
      for (const n of this.neighbors.values()) if (n.state === 'open' && n.have.has(load.key)) announced = true;
      if (late || !announced) this.fetchManifestHttp(load);
      return;
    }
    // Before the deadline, pieces go to HTTP only when no neighbor is open at all: a neighbor
    // that has not announced a new live segment yet usually will within the deadline.
    const alone = !this.hasOpenNeighbor();
    const pieces: number[] = [];
    for (let i = 0; i < entry.pieces.length; i++) {
      if (getBit(entry.bitfield, i) || load.httpPieces.has(i)) continue;
      if (late || (alone && !this.requests.isActive(load.ref, i) && !this.anyNeighborCanServe(load.ref, i))) pieces.push(i);
    }
    if (pieces.length > 0) this.fetchPiecesHttp(load, entry, pieces);
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

  /** Fetches the given missing pieces, one Range request per run of contiguous pieces. */
  private fetchPiecesHttp(load: PendingLoad, entry: SegmentEntry, pieces: number[]): void {
    const m = entry.manifest;
    for (const [first, count] of coalesce(pieces)) {
      const start = pieceRange(m, first)[0];
      const end = pieceRange(m, first + count - 1)[1];
      for (let i = first; i < first + count; i++) load.httpPieces.add(i);
      this.log.debug({ ref: load.ref, start, end }, 'range over HTTP');
      let p: Promise<Uint8Array>;
      try { p = this.http!.fetchRange(load.ref, start, end); } catch (err) { p = Promise.reject(err); }
      p.then((bytes) => {
        for (let i = first; i < first + count; i++) load.httpPieces.delete(i);
        if (this.closed) return;
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
