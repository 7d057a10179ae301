/**
 * Parent candidates for a peer without a parent (the `peers` request's `parentFor`). Pure: no
 * I/O, no clock; the caller passes the overlay built from peer reports and its random source.
 *
 * Why the tracker: neighbor sets are random and bounded, so a peer with no parent often has no
 * neighbor that could feed it, while elsewhere in the channel fed peers keep free slots, or hold
 * a child that feeds nobody in the one slot a stronger peer could use. Measured in the
 * simulator on the swarm bench's population (50 viewers, 2 renditions, caps 0.3-4 Mbit/s): a
 * tree rooted at the origin stalled at 18% of viewers for the whole run, because the origin's one
 * slot per rendition went to the first arrival (a peer that feeds nobody) and no stronger peer
 * was ever its neighbor. The tracker, which has every peer's report, names the peers worth asking.
 *
 * A candidate, in the requester's rendition, is fed (reports a depth), is neither the requester
 * nor below it, and either has a free slot (reported slots minus the children that report it as
 * their parent) or feeds a child of a lower capacity class than the requester's (the engine's
 * slot table gives that slot to the requester: the capacity class orders slots first). The
 * shallowest come first; the pick is random among the best few, so seekers asking at the same
 * time do not all crowd the same peer on reports that are seconds old.
 */
import { capacityClass } from '../peer/core/slots.js';
import type { PeerKind, Random } from '../peer/core/types.js';
import { MAX_PARENT_CANDIDATES } from '../peer/core/signaling.js';

/** What the candidate choice reads of a channel member (OverlayPeer has all of it). */
export interface ParentView {
  peerId: string;
  kind: PeerKind;
  /** Current parent per rendition. */
  parents: Record<string, string>;
  /** Children it could feed per rendition. */
  slots: Record<string, number>;
  /** Hops from the origin per rendition it is fed in. */
  depth?: Record<string, number>;
}

export interface ParentCandidate {
  peerId: string;
  kind: PeerKind;
  depth: number;
  /** Slots left (reported slots minus children reporting it as parent). */
  free: number;
  /** Lowest capacity class among its children (3 when it has none). */
  weakestChildClass: number;
}

/** Fed peers of one rendition with what makes them worth asking, shallowest first. */
export interface RenditionCandidates {
  list: ParentCandidate[];
  /** peerId -> parent in this rendition (to keep a requester's descendants out). */
  parentOf: Map<string, string>;
}

export const PARENT_CANDIDATE_LIMITS = {
  /** Candidates returned at most per request (what a peer accepts in a `peers` answer). */
  maxReturned: MAX_PARENT_CANDIDATES,
  /** The pick is random among this many of the best (per candidate returned). */
  spreadPerPick: 3,
  /** Ancestors walked to keep a requester's descendants out (trees are shallower than this). */
  maxAncestorWalk: 64,
} as const;

/** Indexes a channel's overlay by rendition: build once, answer many requests. */
export function indexParentCandidates(peers: readonly ParentView[]): Map<string, RenditionCandidates> {
  const byId = new Map(peers.map((p) => [p.peerId, p]));
  const out = new Map<string, RenditionCandidates>();
  const entry = (r: string): RenditionCandidates => {
    let e = out.get(r);
    if (!e) out.set(r, (e = { list: [], parentOf: new Map() }));
    return e;
  };
  // children per parent and rendition, with the weakest child's class
  const kids = new Map<string, { count: number; weakest: number }>();
  for (const p of peers) {
    for (const [r, parent] of Object.entries(p.parents)) {
      entry(r).parentOf.set(p.peerId, parent);
      if (!byId.has(parent)) continue;
      const key = `${parent}\u0000${r}`;
      const k = kids.get(key) ?? { count: 0, weakest: 3 };
      k.count++;
      k.weakest = Math.min(k.weakest, capacityClass(p.slots[r] ?? 0));
      kids.set(key, k);
    }
  }
  for (const p of peers) {
    for (const [r, depth] of Object.entries(p.depth ?? {})) {
      const k = kids.get(`${p.peerId}\u0000${r}`);
      const free = Math.max(0, (p.slots[r] ?? 0) - (k?.count ?? 0));
      const weakest = k?.weakest ?? 3;
      // nothing to offer anybody: no free slot, no child that a stronger peer could displace
      if (free === 0 && weakest >= 2) continue;
      entry(r).list.push({ peerId: p.peerId, kind: p.kind, depth, free, weakestChildClass: weakest });
    }
  }
  for (const e of out.values()) e.list.sort((a, b) => a.depth - b.depth || b.free - a.free || (a.peerId < b.peerId ? -1 : 1));
  return out;
}

/** True if `id` is `requester` or below it in the rendition's tree (as reported). */
function isBelow(index: RenditionCandidates, id: string, requester: string): boolean {
  let cur: string | undefined = id;
  for (let i = 0; cur !== undefined && i < PARENT_CANDIDATE_LIMITS.maxAncestorWalk; i++) {
    if (cur === requester) return true;
    cur = index.parentOf.get(cur);
  }
  return false;
}

/**
 * Up to `max` parents for `requester` in `rendition`, whose own capacity there is
 * `requesterSlots` children: the shallowest eligible candidates, picked at random among the best
 * few (spreadPerPick per pick), returned shallowest first. `reachable`: false for peers the
 * requester is not expected to reach directly (the NAT pair table; a parent behind a TURN relay
 * costs the relay every byte, and the requester's own neighbors still offer relayed parents).
 */
export function pickParentCandidates(
  index: Map<string, RenditionCandidates>,
  requester: { peerId: string; rendition: string; slots: number },
  max: number,
  random: Random,
  reachable: (peerId: string) => boolean = () => true,
): ParentCandidate[] {
  const e = index.get(requester.rendition);
  const want = Math.min(Math.max(0, Math.floor(max)), PARENT_CANDIDATE_LIMITS.maxReturned);
  if (!e || want === 0) return [];
  const mine = capacityClass(requester.slots);
  const pool: ParentCandidate[] = [];
  const poolSize = want * PARENT_CANDIDATE_LIMITS.spreadPerPick;
  for (const c of e.list) {
    if (pool.length >= poolSize) break;
    if (c.free === 0 && c.weakestChildClass >= mine) continue;
    if (!reachable(c.peerId) || isBelow(e, c.peerId, requester.peerId)) continue;
    pool.push(c);
  }
  // partial Fisher-Yates: `want` random members of the pool, then shallowest first again
  const n = Math.min(want, pool.length);
  for (let i = 0; i < n; i++) {
    const j = i + Math.min(pool.length - i - 1, Math.floor(random.next() * (pool.length - i)));
    const t = pool[i]; pool[i] = pool[j]; pool[j] = t;
  }
  return pool.slice(0, n).sort((a, b) => a.depth - b.depth || b.free - a.free);
}
