/**
 * Segment store: per (rendition, seq) the verified manifest, which pieces are held (bitfield),
 * the piece bytes and where each came from. Memory is bounded by keeping only the
 * `windowSegments` newest media segments per rendition (by seq) plus the rendition's init segment;
 * a caller may pin segments (pending loads) so they survive eviction until unpinned.
 *
 * The store trusts its caller: manifests must already be verified (decodeManifest) and pieces
 * checked with verifyPiece before addPiece.
 */
import { INIT_SEQ, type PieceSource, type SegmentRef } from './types.js';
import { pieceRange, type Manifest } from './manifest.js';
import { countBits, getBit, newBitfield, setBit } from './bitfield.js';

export function segmentKey(ref: SegmentRef): string {
  return `${ref.rendition}/${ref.seq}`;
}

export interface SegmentEntry {
  readonly ref: SegmentRef;
  readonly key: string;
  readonly manifest: Manifest;
  /** Held pieces. */
  readonly bitfield: Uint8Array;
  /**
   * The segment's bytes, allocated with its first piece (a manifest alone, e.g. of a rendition we
   * do not play, costs nothing); a piece's range is valid once its bit is set.
   */
  data: Uint8Array | null;
  /** Views into `data` of the held pieces. */
  readonly pieces: (Uint8Array | null)[];
  readonly sources: (PieceSource | null)[];
  held: number;
}

export interface StoreOptions {
  /** Media segments kept per rendition (newest by seq). */
  windowSegments: number;
}

export class SegmentStore {
  private readonly byRendition = new Map<string, Map<number, SegmentEntry>>();
  private readonly pins = new Map<string, number>();
  private completeCount = 0;
  private bytes = 0;

  constructor(private readonly opts: StoreOptions) {
    if (!Number.isInteger(opts.windowSegments) || opts.windowSegments < 1) throw new Error('windowSegments must be >= 1');
  }

  get(ref: SegmentRef): SegmentEntry | undefined {
    return this.byRendition.get(ref.rendition)?.get(ref.seq);
  }

  /**
   * Adds a verified manifest (no-op if already known) and evicts segments that fall outside the retention window (see evict).
   * Returns the entry (undefined if it was itself evicted at once: older than the window) and
   * the refs of evicted segments.
   */
  addManifest(m: Manifest): { entry: SegmentEntry | undefined; evicted: SegmentRef[] } {
    const existing = this.get(m);
    if (existing) return { entry: existing, evicted: [] };
    const n = m.pieceHashes.length;
    const ref = { rendition: m.rendition, seq: m.seq };
    const entry: SegmentEntry = {
      ref,
      key: segmentKey(ref),
      manifest: m,
      bitfield: newBitfield(n),
      data: null,
      pieces: new Array<Uint8Array | null>(n).fill(null),
      sources: new Array<PieceSource | null>(n).fill(null),
      held: 0,
    };
    let map = this.byRendition.get(m.rendition);
    if (!map) { map = new Map(); this.byRendition.set(m.rendition, map); }
    map.set(m.seq, entry);
    if (n === 0) this.completeCount++;
    const evicted = this.evict(m.rendition);
    return { entry: this.get(ref), evicted };
  }

  hasPiece(ref: SegmentRef, index: number): boolean {
    const e = this.get(ref);
    return !!e && getBit(e.bitfield, index);
  }

  getPiece(ref: SegmentRef, index: number): Uint8Array | null {
    const e = this.get(ref);
    return e && index >= 0 && index < e.pieces.length ? e.pieces[index] : null;
  }

  /** Stores a verified piece. Returns true if it was new (false: unknown segment or already held). */
  addPiece(ref: SegmentRef, index: number, data: Uint8Array, source: PieceSource): boolean {
    const e = this.get(ref);
    if (!e || index < 0 || index >= e.pieces.length || getBit(e.bitfield, index)) return false;
    const [start, end] = pieceRange(e.manifest, index);
    if (data.length !== end - start) return false;
    // Copied into the segment's one buffer: the frame it came in is garbage at once. Kept as the
    // frame's own buffer, every piece was a backing store of its own (at 10,000 simulated
    // viewers, nearly a million of them, most of the memory outside the JS heap).
    const buf = e.data ??= new Uint8Array(e.manifest.size);
    buf.set(data, start);
    e.pieces[index] = buf.subarray(start, end);
    e.sources[index] = source;
    setBit(e.bitfield, index);
    e.held++;
    this.bytes += data.length;
    if (e.held === e.pieces.length) this.completeCount++;
    return true;
  }

  isComplete(ref: SegmentRef): boolean {
    const e = this.get(ref);
    return !!e && e.held === e.pieces.length;
  }

  /** Indexes of pieces not held (empty if complete; null if the manifest is unknown). */
  missing(ref: SegmentRef): number[] | null {
    const e = this.get(ref);
    if (!e) return null;
    const out: number[] = [];
    if (e.held === e.pieces.length) return out;
    for (let i = 0; i < e.pieces.length; i++) if (!getBit(e.bitfield, i)) out.push(i);
    return out;
  }

  /** The whole segment, or null unless complete. */
  assemble(ref: SegmentRef): Uint8Array | null {
    const e = this.get(ref);
    if (!e || e.held !== e.pieces.length) return null;
    // a copy: the player may transfer it or keep it beyond the window
    return e.data ? e.data.slice() : new Uint8Array(0);
  }

  /** Bytes of a segment by the source of each held piece. */
  bytesBySource(ref: SegmentRef): Record<PieceSource, number> {
    const out: Record<PieceSource, number> = { peer: 0, 'origin-peer': 0, http: 0, local: 0 };
    const e = this.get(ref);
    if (!e) return out;
    for (let i = 0; i < e.pieces.length; i++) {
      const s = e.sources[i];
      if (s) out[s] += e.pieces[i]!.length;
    }
    return out;
  }

  /** Newest media seq with a manifest in this rendition (undefined if none). */
  newestSeq(rendition: string): number | undefined {
    const map = this.byRendition.get(rendition);
    if (!map) return undefined;
    let best: number | undefined;
    for (const s of map.keys()) if (s !== INIT_SEQ && (best === undefined || s > best)) best = s;
    return best;
  }

  renditions(): string[] {
    return [...this.byRendition.keys()];
  }

  /** One rendition's entries (any order); empty when none are stored. */
  entriesOf(rendition: string): Iterable<SegmentEntry> {
    return this.byRendition.get(rendition)?.values() ?? [];
  }

  *entries(): IterableIterator<SegmentEntry> {
    for (const map of this.byRendition.values()) yield* map.values();
  }

  /** True if `seq` would be kept in `rendition`'s window (init segments always are). */
  inWindow(rendition: string, seq: number): boolean {
    if (seq === INIT_SEQ) return true;
    const map = this.byRendition.get(rendition);
    if (!map) return true;
    let newer = 0;
    for (const s of map.keys()) if (s !== INIT_SEQ && s > seq) newer++;
    return newer < this.opts.windowSegments;
  }

  pin(ref: SegmentRef): void {
    const k = segmentKey(ref);
    this.pins.set(k, (this.pins.get(k) ?? 0) + 1);
  }

  /** Removes one pin and evicts what the pin kept. Returns the evicted refs. */
  unpin(ref: SegmentRef): SegmentRef[] {
    const k = segmentKey(ref);
    const n = this.pins.get(k) ?? 0;
    if (n <= 1) this.pins.delete(k); else this.pins.set(k, n - 1);
    return this.evict(ref.rendition);
  }

  /** Keeps the `windowSegments` newest media segments of `rendition` (plus init and pinned ones). */
  evict(rendition: string): SegmentRef[] {
    const map = this.byRendition.get(rendition);
    if (!map) return [];
    const seqs = [...map.keys()].filter((s) => s !== INIT_SEQ).sort((a, b) => b - a);
    const evicted: SegmentRef[] = [];
    for (const s of seqs.slice(this.opts.windowSegments)) {
      const e = map.get(s)!;
      if (this.pins.has(e.key)) continue;
      this.remove(map, e);
      evicted.push(e.ref);
    }
    return evicted;
  }

  private remove(map: Map<number, SegmentEntry>, e: SegmentEntry): void {
    map.delete(e.ref.seq);
    if (e.held === e.pieces.length) this.completeCount--;
    for (const p of e.pieces) if (p) this.bytes -= p.length;
  }

  stats(): { segments: number; complete: number; bytes: number } {
    let segments = 0;
    for (const m of this.byRendition.values()) segments += m.size;
    return { segments, complete: this.completeCount, bytes: this.bytes };
  }
}
