/**
 * The origin's bounded in-memory window: per rendition, the init segment and the last
 * `capacity` media segments, each with its signed manifest. Everything the origin serves over
 * HTTP comes from here, so a segment is served (and listed) only once its manifest exists.
 */
import type { Manifest } from '../peer/core/manifest.js';
import { INIT_SEQ, type SegmentRef } from '../peer/core/types.js';

export interface WindowEntry {
  ref: SegmentRef;
  manifest: Manifest;
  data: Uint8Array;
  /** First segment after an encoder restart (timestamps and possibly the init changed). */
  discontinuity: boolean;
}

interface RenditionWindow {
  init: WindowEntry | null;
  /** Ascending seq. */
  segments: WindowEntry[];
  /** Discontinuities among segments already evicted (for EXT-X-DISCONTINUITY-SEQUENCE). */
  evictedDiscontinuities: number;
}

export class SegmentWindow {
  private readonly r = new Map<string, RenditionWindow>();

  constructor(readonly capacity = 30) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error('capacity must be a positive integer');
  }

  private win(rendition: string): RenditionWindow {
    let w = this.r.get(rendition);
    if (!w) {
      w = { init: null, segments: [], evictedDiscontinuities: 0 };
      this.r.set(rendition, w);
    }
    return w;
  }

  /** Adds a segment (or replaces the init). Media segments must arrive in ascending seq. */
  add(entry: WindowEntry): void {
    const w = this.win(entry.ref.rendition);
    if (entry.ref.seq === INIT_SEQ) {
      w.init = entry;
      return;
    }
    const last = w.segments[w.segments.length - 1];
    if (last && entry.ref.seq <= last.ref.seq) throw new Error(`segment ${entry.ref.rendition}/${entry.ref.seq} is not newer than ${last.ref.seq}`);
    w.segments.push(entry);
    while (w.segments.length > this.capacity) {
      const gone = w.segments.shift()!;
      if (gone.discontinuity) w.evictedDiscontinuities++;
    }
  }

  get(ref: SegmentRef): WindowEntry | null {
    const w = this.r.get(ref.rendition);
    if (!w) return null;
    if (ref.seq === INIT_SEQ) return w.init;
    // Binary search: segments are ascending.
    let lo = 0;
    let hi = w.segments.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = w.segments[mid].ref.seq;
      if (s === ref.seq) return w.segments[mid];
      if (s < ref.seq) lo = mid + 1;
      else hi = mid - 1;
    }
    return null;
  }

  init(rendition: string): WindowEntry | null {
    return this.r.get(rendition)?.init ?? null;
  }

  /** The newest `n` media segments of a rendition, ascending. */
  latest(rendition: string, n = this.capacity): WindowEntry[] {
    const segs = this.r.get(rendition)?.segments ?? [];
    return segs.slice(Math.max(0, segs.length - n));
  }

  newest(rendition: string): WindowEntry | null {
    const segs = this.r.get(rendition)?.segments;
    return segs && segs.length ? segs[segs.length - 1] : null;
  }

  /** Discontinuities strictly before `seq` (EXT-X-DISCONTINUITY-SEQUENCE of a playlist starting at seq). */
  discontinuitiesBefore(rendition: string, seq: number): number {
    const w = this.r.get(rendition);
    if (!w) return 0;
    let n = w.evictedDiscontinuities;
    for (const s of w.segments) {
      if (s.ref.seq >= seq) break;
      if (s.discontinuity) n++;
    }
    return n;
  }

  renditions(): string[] {
    return [...this.r.keys()];
  }

  /** Every entry (inits first), e.g. to seed a root peer that starts late. */
  *entries(): Iterable<WindowEntry> {
    for (const w of this.r.values()) if (w.init) yield w.init;
    for (const w of this.r.values()) yield* w.segments;
  }
}
