/**
 * Pure piece-request scheduling (mesh pull). No I/O, no time source: callers pass `now`.
 *
 * - schedule(): given the wanted segments in urgency order with the pieces still to request, and
 *   the neighbors with what they have and how busy they are, decides which piece requests to send
 *   to whom, earliest deadline first (the caller passes segments in urgency order). Per piece:
 *   among neighbors that have it, are not excluded for it and have a free request slot, prefer
 *   non-origin neighbors (the origin's upload stays small), then the one that would deliver it
 *   soonest by its measured throughput ((requests in flight + 1) / throughput: requests spread
 *   across neighbors in proportion to what each delivers), ties broken with the injected Random.
 *   A neighbor takes at most its window of requests (requestWindow: what it delivers in about a
 *   second), so a slow one does not sit on a segment's pieces while faster ones stay idle.
 *   Neighbors without a measurement count with the average of the measured ones (all unmeasured:
 *   fewest requests in flight). Contiguous pieces of one segment assigned to one neighbor are
 *   coalesced into one request.
 * - RequestTracker: the requests in flight, their timeouts (a timed-out request turns stale: the
 *   piece may be re-requested elsewhere while a late answer is still accepted), and the duplicates
 *   to CANCEL once a piece arrives.
 */
import type { Random, SegmentRef } from './types.js';
import { segmentKey } from './store.js';

export interface SchedNeighbor {
  id: string;
  /** The origin's root peer: used only when no other neighbor can serve a piece. */
  isOrigin: boolean;
  /** Requests already outstanding on this neighbor (stale ones included). */
  inflight: number;
  /** Measured delivery rate (any unit, e.g. bytes/ms); absent or <= 0 when unknown. */
  throughput?: number;
  /** Requests this neighbor may have outstanding (its window); maxInflightPerNeighbor when absent. */
  window?: number;
  has(ref: SegmentRef, index: number): boolean;
}

export interface SchedSegment {
  ref: SegmentRef;
  /** Pieces to request now: not held, not actively in flight, not being fetched over HTTP. */
  pieces: number[];
  /** Neighbors that must not be asked for this piece (timed out or sent a bad copy). */
  exclude?: (neighborId: string, index: number) => boolean;
  /**
   * Visit the pieces from the highest index down (when requests run out, the top ones are asked
   * for): the repair of a segment our parent pushes from the lowest index up.
   */
  descending?: boolean;
}

export interface PieceRequest {
  neighborId: string;
  ref: SegmentRef;
  index: number;
  count: number;
}

export interface ScheduleOptions {
  maxInflightPerNeighbor: number;
  random: Random;
}

export function schedule(segments: SchedSegment[], neighbors: SchedNeighbor[], opts: ScheduleOptions): PieceRequest[] {
  const load = new Map<string, number>();
  let capacity = 0;
  const limit = new Map<string, number>();
  for (const n of neighbors) {
    load.set(n.id, n.inflight);
    const max = Math.min(opts.maxInflightPerNeighbor, n.window ?? opts.maxInflightPerNeighbor);
    limit.set(n.id, max);
    capacity += Math.max(0, max - n.inflight);
  }
  const out: PieceRequest[] = [];
  if (capacity === 0) return out;
  let known = 0;
  let sum = 0;
  for (const n of neighbors) if (n.throughput !== undefined && n.throughput > 0) { known++; sum += n.throughput; }
  const avg = known > 0 ? sum / known : 1;
  const rate = new Map<string, number>();
  for (const n of neighbors) rate.set(n.id, n.throughput !== undefined && n.throughput > 0 ? n.throughput : avg);
  const candidates: SchedNeighbor[] = [];
  for (const seg of segments) {
    // neighbor id -> indexes assigned in this segment, in visiting order (reversed to ascending below when descending)
    const assigned = new Map<string, number[]>();
    const order: string[] = [];
    const pieces = [...seg.pieces].sort(seg.descending ? (a, b) => b - a : (a, b) => a - b);
    for (const index of pieces) {
      if (capacity === 0) break;
      candidates.length = 0;
      let anyNonOrigin = false;
      for (const n of neighbors) {
        if (load.get(n.id)! >= limit.get(n.id)!) continue;
        if (!n.has(seg.ref, index)) continue;
        if (seg.exclude?.(n.id, index)) continue;
        candidates.push(n);
        if (!n.isOrigin) anyNonOrigin = true;
      }
      if (candidates.length === 0) continue;
      let best: SchedNeighbor | null = null;
      let bestCost = Infinity;
      let ties = 0;
      for (const n of candidates) {
        if (anyNonOrigin && n.isOrigin) continue;
        const cost = (load.get(n.id)! + 1) / rate.get(n.id)!;
        if (cost < bestCost - 1e-12) { best = n; bestCost = cost; ties = 1; }
        else if (Math.abs(cost - bestCost) <= 1e-12) {
          // reservoir sampling among equally good neighbors: uniform tie-break
          ties++;
          if (opts.random.next() * ties < 1) best = n;
        }
      }
      const chosen = best!;
      load.set(chosen.id, load.get(chosen.id)! + 1);
      capacity--;
      let list = assigned.get(chosen.id);
      if (!list) { list = []; assigned.set(chosen.id, list); order.push(chosen.id); }
      list.push(index);
    }
    for (const id of order) {
      const list = assigned.get(id)!;
      if (seg.descending) list.reverse();
      for (const [index, count] of coalesce(list)) {
        out.push({ neighborId: id, ref: seg.ref, index, count });
      }
    }
    if (capacity === 0) break;
  }
  return out;
}

/**
 * How many piece requests a neighbor may have outstanding: what it delivers in `horizonMs` at its
 * measured rate (bytes/ms), at least `min`; `initial` before any measurement. Requests beyond it
 * wait in the neighbor's queue and tie up pieces that other neighbors could deliver: a joiner's
 * first open neighbor took a whole segment's requests (16) and, feeding children of its own,
 * answered one piece every few hundred ms, while the neighbors that opened next stayed idle and
 * the segment went to HTTP at its deadline (simulator, chandelier-1k: 81% of a joiner's second
 * segment).
 */
export function requestWindow(throughput: number, pieceBytes: number, p: { horizonMs: number; min: number; initial: number; max: number }): number {
  if (!(throughput > 0) || !(pieceBytes > 0)) return Math.min(p.max, p.initial);
  return Math.min(p.max, Math.max(p.min, Math.ceil((throughput * p.horizonMs) / pieceBytes)));
}

/** Runs of consecutive integers in an ascending list, as [first, length]. */
export function coalesce(sorted: number[]): Array<[number, number]> {
  const runs: Array<[number, number]> = [];
  for (const i of sorted) {
    const last = runs[runs.length - 1];
    if (last && last[0] + last[1] === i) last[1]++;
    else runs.push([i, 1]);
  }
  return runs;
}

// ---------------------------------------------------------------- requests in flight

export interface RequestRecord {
  neighborId: string;
  ref: SegmentRef;
  index: number;
  sentAt: number;
  /** Timed out: the piece may be requested elsewhere; a late answer is still accepted. */
  stale: boolean;
}

export class RequestTracker {
  /** segment key -> piece index -> neighbor id -> record */
  private readonly bySegment = new Map<string, Map<number, Map<string, RequestRecord>>>();
  private readonly perNeighbor = new Map<string, number>();

  add(neighborId: string, ref: SegmentRef, index: number, now: number): void {
    const key = segmentKey(ref);
    let seg = this.bySegment.get(key);
    if (!seg) { seg = new Map(); this.bySegment.set(key, seg); }
    let recs = seg.get(index);
    if (!recs) { recs = new Map(); seg.set(index, recs); }
    if (!recs.has(neighborId)) this.perNeighbor.set(neighborId, (this.perNeighbor.get(neighborId) ?? 0) + 1);
    recs.set(neighborId, { neighborId, ref, index, sentAt: now, stale: false });
  }

  /** Outstanding requests (active and stale) on one neighbor. */
  countFor(neighborId: string): number {
    return this.perNeighbor.get(neighborId) ?? 0;
  }

  get(neighborId: string, ref: SegmentRef, index: number): RequestRecord | undefined {
    return this.bySegment.get(segmentKey(ref))?.get(index)?.get(neighborId);
  }

  /** Some neighbor was asked and has not timed out yet. */
  /** True if some request for this piece is not stale; `key` is segmentKey(ref), computed once per segment by callers in loops. */
  isActiveIn(key: string, index: number): boolean {
    const recs = this.bySegment.get(key)?.get(index);
    if (!recs) return false;
    for (const r of recs.values()) if (!r.stale) return true;
    return false;
  }

  /** No request at all (active or stale) for any piece of this segment. */
  noneFor(key: string): boolean {
    const seg = this.bySegment.get(key);
    return !seg || seg.size === 0;
  }

  isActive(ref: SegmentRef, index: number): boolean {
    const recs = this.bySegment.get(segmentKey(ref))?.get(index);
    if (!recs) return false;
    for (const r of recs.values()) if (!r.stale) return true;
    return false;
  }

  /** Any record (active or stale) of this neighbor for this piece. */
  has(neighborId: string, ref: SegmentRef, index: number): boolean {
    return !!this.get(neighborId, ref, index);
  }

  remove(neighborId: string, ref: SegmentRef, index: number): boolean {
    const key = segmentKey(ref);
    const seg = this.bySegment.get(key);
    const recs = seg?.get(index);
    if (!recs || !recs.delete(neighborId)) return false;
    this.dec(neighborId);
    if (recs.size === 0) seg!.delete(index);
    if (seg!.size === 0) this.bySegment.delete(key);
    return true;
  }

  /** Removes every record for a piece; returns them (e.g. to CANCEL the others). */
  removePiece(ref: SegmentRef, index: number): RequestRecord[] {
    const key = segmentKey(ref);
    const seg = this.bySegment.get(key);
    const recs = seg?.get(index);
    if (!recs) return [];
    const out = [...recs.values()];
    for (const r of out) this.dec(r.neighborId);
    seg!.delete(index);
    if (seg!.size === 0) this.bySegment.delete(key);
    return out;
  }

  removeSegment(ref: SegmentRef): RequestRecord[] {
    const key = segmentKey(ref);
    const seg = this.bySegment.get(key);
    if (!seg) return [];
    const out: RequestRecord[] = [];
    for (const recs of seg.values()) for (const r of recs.values()) { out.push(r); this.dec(r.neighborId); }
    this.bySegment.delete(key);
    return out;
  }

  removeNeighbor(neighborId: string): RequestRecord[] {
    const out: RequestRecord[] = [];
    for (const [key, seg] of this.bySegment) {
      for (const [index, recs] of seg) {
        const r = recs.get(neighborId);
        if (!r) continue;
        out.push(r);
        recs.delete(neighborId);
        if (recs.size === 0) seg.delete(index);
      }
      if (seg.size === 0) this.bySegment.delete(key);
    }
    this.perNeighbor.delete(neighborId);
    return out;
  }

  /**
   * Marks active requests older than timeoutMs stale (returned: the pieces to re-request) and
   * removes stale ones older than forgetMs (returned as `forgotten`: the caller CANCELs them).
   */
  expire(now: number, timeoutMs: number, forgetMs: number): { timedOut: RequestRecord[]; forgotten: RequestRecord[] } {
    const timedOut: RequestRecord[] = [];
    const forgotten: RequestRecord[] = [];
    for (const seg of this.bySegment.values()) {
      for (const recs of seg.values()) {
        for (const r of recs.values()) {
          if (!r.stale && now - r.sentAt >= timeoutMs) { r.stale = true; timedOut.push(r); }
          else if (r.stale && now - r.sentAt >= forgetMs) forgotten.push(r);
        }
      }
    }
    for (const r of forgotten) this.remove(r.neighborId, r.ref, r.index);
    return { timedOut, forgotten };
  }

  get size(): number {
    let n = 0;
    for (const v of this.perNeighbor.values()) n += v;
    return n;
  }

  private dec(neighborId: string): void {
    const n = (this.perNeighbor.get(neighborId) ?? 0) - 1;
    if (n <= 0) this.perNeighbor.delete(neighborId); else this.perNeighbor.set(neighborId, n);
  }
}

// ---------------------------------------------------------------- HTTP fallback timing

/**
 * Keeps a running estimate of how long an HTTP fallback fetch takes (EWMA of the mean and of the
 * mean deviation, like TCP's RTO), so the engine starts the fallback early enough: the margin is
 * max(base, mean + 4 * deviation), capped. Pure: callers pass durations they measured.
 */
export class HttpTimer {
  private mean = -1;
  private dev = 0;
  samples = 0;
  constructor(private readonly maxMarginMs = 5000) {}

  /** One fetch took `ms` (request to last byte). */
  sample(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    this.samples++;
    if (this.mean < 0) { this.mean = ms; this.dev = ms / 2; return; }
    const err = ms - this.mean;
    this.mean += err / 8;
    this.dev += (Math.abs(err) - this.dev) / 4;
  }

  /** The estimated fetch time (ms), or null before the first sample. */
  estimate(): number | null {
    return this.mean < 0 ? null : this.mean;
  }

  /** A fetch's expected time with some slack (mean + 2 deviations, capped), `guessMs` before any sample. */
  fetchTime(guessMs: number): number {
    return this.mean < 0 ? guessMs : this.upper(2);
  }

  /** The safety margin to use before a deadline, at least `baseMs`. */
  margin(baseMs: number): number {
    return this.mean < 0 ? baseMs : Math.max(baseMs, this.upper(4));
  }

  /** mean + `devs` deviations, capped at maxMarginMs (only once a sample exists). */
  private upper(devs: number): number {
    return Math.min(this.maxMarginMs, this.mean + devs * this.dev);
  }
}

/**
 * Fallback decision for one pending load (pure, unit-tested): which missing pieces go to HTTP
 * now. At `deadline - margin` every missing piece not already being fetched over HTTP, except
 * the first `leaveToPush` of them (the engine's estimate of what the parent's push will still
 * deliver before the deadline: pushes go in index order, so those are the lowest indexes) and,
 * until `pullCutoff`, those requested from neighbors and on their way;
 * before that, only when no neighbor is open at all, the pieces nobody in flight or announced
 * can serve.
 */
export function fallbackPieces(p: {
  now: number;
  deadline: number;
  marginMs: number;
  pieceCount: number;
  held(index: number): boolean;
  viaHttp(index: number): boolean;
  /** A request for this piece is in flight (not timed out) to some neighbor. */
  inFlight(index: number): boolean;
  /** Some open neighbor announced this piece. */
  announced(index: number): boolean;
  alone: boolean;
  /** Missing pieces (lowest indexes first) left to an active push although late; 0 at or after the deadline. */
  leaveToPush?: number;
  /**
   * Clock time until which a late load leaves the pieces requested from neighbors (in flight) to
   * those requests: one HTTP fetch before the deadline. Absent: no such wait.
   */
  pullCutoff?: number;
}): { late: boolean; pieces: number[] } {
  const late = p.now >= p.deadline - p.marginMs;
  let leave = late && p.now < p.deadline ? Math.max(0, Math.floor(p.leaveToPush ?? 0)) : 0;
  const waitPulls = late && p.pullCutoff !== undefined && p.now < p.pullCutoff;
  const pieces: number[] = [];
  for (let i = 0; i < p.pieceCount; i++) {
    if (p.held(i) || p.viaHttp(i)) continue;
    if (late && leave > 0) { leave--; continue; }
    if (waitPulls && p.inFlight(i)) continue;
    if (late || (p.alone && !p.inFlight(i) && !p.announced(i))) pieces.push(i);
  }
  return { late, pieces };
}

/**
 * How many more pieces a push will deliver before `deadline` (pure, unit-tested): none unless
 * the push is active (its last piece came within two gaps, and at least `minGapMs`), then one per
 * measured gap left. Used to leave the tail of a segment that is arriving to the parent instead
 * of fetching over HTTP what is a few hundred milliseconds away.
 */
export function pushWillDeliver(p: { now: number; deadline: number; lastPushAt: number; gapMs: number; minGapMs: number }): number {
  if (!(p.gapMs > 0) || p.now >= p.deadline) return 0;
  const gap = Math.max(p.gapMs, p.minGapMs);
  if (p.now - p.lastPushAt > 2 * gap) return 0;
  return Math.floor((p.deadline - p.lastPushAt) / gap);
}
