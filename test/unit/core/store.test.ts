import { describe, expect, it } from 'vitest';
import { SegmentStore } from '../../../peer/core/store.js';
import { pieceRange } from '../../../peer/core/manifest.js';
import { INIT_SEQ } from '../../../peer/core/types.js';
import { equalBytes, makeKey, makeSegment } from './helpers.js';

const key = makeKey();

function pieces(seg: ReturnType<typeof makeSegment>): Uint8Array[] {
  return seg.manifest.pieceHashes.map((_, i) => {
    const [s, e] = pieceRange(seg.manifest, i);
    return seg.data.slice(s, e);
  });
}

describe('SegmentStore', () => {
  it('adds pieces, tracks completion and assembles', () => {
    const store = new SegmentStore({ windowSegments: 5 });
    const seg = makeSegment(key, { rendition: 'r', seq: 1 }, 5000, 1024);
    const ps = pieces(seg);
    expect(store.missing(seg.ref)).toBeNull();
    store.addManifest(seg.manifest);
    expect(store.missing(seg.ref)).toEqual([0, 1, 2, 3, 4]);
    expect(store.addPiece(seg.ref, 4, ps[4], 'peer')).toBe(true);
    expect(store.addPiece(seg.ref, 4, ps[4], 'peer')).toBe(false); // duplicate
    expect(store.addPiece(seg.ref, 0, ps[1].subarray(0, 10), 'peer')).toBe(false); // wrong length
    expect(store.addPiece(seg.ref, 9, ps[0], 'peer')).toBe(false); // out of range
    expect(store.hasPiece(seg.ref, 4)).toBe(true);
    expect(store.isComplete(seg.ref)).toBe(false);
    expect(store.assemble(seg.ref)).toBeNull();
    store.addPiece(seg.ref, 0, ps[0], 'http');
    store.addPiece(seg.ref, 1, ps[1], 'peer');
    store.addPiece(seg.ref, 2, ps[2], 'origin-peer');
    expect(store.missing(seg.ref)).toEqual([3]);
    store.addPiece(seg.ref, 3, ps[3], 'peer');
    expect(store.isComplete(seg.ref)).toBe(true);
    expect(equalBytes(store.assemble(seg.ref)!, seg.data)).toBe(true);
    expect(store.bytesBySource(seg.ref)).toEqual({ peer: 1024 * 2 + ps[4].length, 'origin-peer': 1024, http: 1024, local: 0 });
    expect(store.stats()).toEqual({ segments: 1, complete: 1, bytes: 5000 });
  });

  it('keeps its own copy of each piece and hands out a segment the caller may change', () => {
    const store = new SegmentStore({ windowSegments: 5 });
    const seg = makeSegment(key, { rendition: 'r', seq: 1 }, 3000, 1024);
    store.addManifest(seg.manifest);
    // the frames the pieces came in are reused or changed by their owner afterwards
    const frames = pieces(seg).map((p) => { const f = new Uint8Array(p.length + 7); f.set(p, 7); return f; });
    frames.forEach((f, i) => store.addPiece(seg.ref, i, f.subarray(7), 'peer'));
    for (const f of frames) f.fill(0xee);
    const first = store.assemble(seg.ref)!;
    expect(equalBytes(first, seg.data)).toBe(true);
    expect(equalBytes(store.getPiece(seg.ref, 1)!, seg.data.subarray(1024, 2048))).toBe(true);
    first.fill(0); // the player owns what assemble returned
    expect(equalBytes(store.assemble(seg.ref)!, seg.data)).toBe(true);
  });

  it('keeps the windowSegments newest per rendition, init segments and pinned ones', () => {
    const store = new SegmentStore({ windowSegments: 3 });
    const init = makeSegment(key, { rendition: 'r', seq: INIT_SEQ }, 100);
    store.addManifest(init.manifest);
    const other = makeSegment(key, { rendition: 'q', seq: 1 }, 100);
    store.addManifest(other.manifest);
    store.pin({ rendition: 'r', seq: 2 });
    const evictedAll: number[] = [];
    for (let seq = 1; seq <= 6; seq++) {
      const s = makeSegment(key, { rendition: 'r', seq }, 100);
      const { evicted } = store.addManifest(s.manifest);
      store.addPiece(s.ref, 0, s.data, 'local');
      evictedAll.push(...evicted.map((r) => r.seq));
    }
    expect(evictedAll.sort()).toEqual([1, 3]);
    expect(store.get({ rendition: 'r', seq: INIT_SEQ })).toBeDefined();
    expect(store.get({ rendition: 'q', seq: 1 })).toBeDefined();
    expect(store.get({ rendition: 'r', seq: 2 })).toBeDefined(); // pinned
    expect(store.unpin({ rendition: 'r', seq: 2 }).map((r) => r.seq)).toEqual([2]);
    expect([...store.entries()].filter((e) => e.ref.rendition === 'r').map((e) => e.ref.seq).sort()).toEqual([-1, 4, 5, 6]);
    expect(store.newestSeq('r')).toBe(6);
    expect(store.inWindow('r', 3)).toBe(false);
    expect(store.inWindow('r', 4)).toBe(true);
    expect(store.inWindow('r', INIT_SEQ)).toBe(true);
    // an old segment is evicted at once
    const old = makeSegment(key, { rendition: 'r', seq: 2 }, 100);
    const res = store.addManifest(old.manifest);
    expect(res.entry).toBeUndefined();
    expect(res.evicted.map((r) => r.seq)).toEqual([2]);
    expect(store.stats().complete).toBe(3 + 0);
    expect(store.stats().bytes).toBe(300);
  });

  it('treats an empty segment as complete', () => {
    const store = new SegmentStore({ windowSegments: 3 });
    const s = makeSegment(key, { rendition: 'r', seq: 1 }, 0);
    store.addManifest(s.manifest);
    expect(store.isComplete(s.ref)).toBe(true);
    expect(store.assemble(s.ref)!.length).toBe(0);
  });
});
