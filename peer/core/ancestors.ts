/**
 * Loop prevention for upload trees: every STATUS carries a 256-bit Bloom filter of the sender's
 * ancestors in that rendition's tree (its parent, its parent's parent, ... up to the origin).
 * A peer never takes as parent a neighbor whose filter contains its own id (that neighbor is,
 * or may be, its descendant), and never grants a slot to a peer in its own filter. A false
 * positive only skips a candidate; depths stay the last guard against transient races.
 *
 * Pure: FNV-1a over the id's characters, two bit positions per id.
 */
import { ANCESTOR_FILTER_BYTES } from './codec.js';

const BITS = ANCESTOR_FILTER_BYTES * 8;

function positions(peerId: string): [number, number] {
  let h = 0x811c9dc5;
  for (let i = 0; i < peerId.length; i++) {
    h ^= peerId.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return [h % BITS, (h >>> 16) % BITS];
}

export function emptyAncestors(): Uint8Array {
  return new Uint8Array(ANCESTOR_FILTER_BYTES);
}

/** The filter of a child of `parentId`: the parent's own filter plus the parent. */
export function childAncestors(parentFilter: Uint8Array | null, parentId: string): Uint8Array {
  const out = parentFilter && parentFilter.length === ANCESTOR_FILTER_BYTES ? parentFilter.slice() : emptyAncestors();
  for (const b of positions(parentId)) out[b >> 3] |= 1 << (b & 7);
  return out;
}

/** True if `peerId` may be in the filter (false positives possible, no false negatives). */
export function mayContain(filter: Uint8Array | null | undefined, peerId: string): boolean {
  if (!filter || filter.length !== ANCESTOR_FILTER_BYTES) return false;
  for (const b of positions(peerId)) if ((filter[b >> 3] & (1 << (b & 7))) === 0) return false;
  return true;
}

/** A stable string key of a filter (to detect changes cheaply). */
export function filterKey(filter: Uint8Array): string {
  return String.fromCharCode(...filter);
}
