/**
 * Parent candidates (tracker/parent-candidates.ts): which fed peers the tracker names to a peer
 * without a parent, and the `peers` request's `parentFor` over a real tracker.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { indexParentCandidates, pickParentCandidates, type ParentView } from '../../../tracker/parent-candidates.js';
import { Rng } from '../../../sim/rng.js';
import { Client, getMetrics, metricValue, startTracker, until, type Started } from './helpers.js';

const view = (peerId: string, r: Record<string, { depth?: number; slots: number; parent?: string }>, kind: ParentView['kind'] = 'browser'): ParentView => {
  const v: ParentView = { peerId, kind, parents: {}, slots: {}, depth: {} };
  for (const [name, x] of Object.entries(r)) {
    v.slots[name] = x.slots;
    if (x.depth !== undefined) v.depth![name] = x.depth;
    if (x.parent) v.parents[name] = x.parent;
  }
  return v;
};
const ids = (cs: Array<{ peerId: string }>) => cs.map((c) => c.peerId);
const rng = () => new Rng(7);

describe('parent candidates', () => {
  // origin (1 slot) -> weak (feeds nobody); strong-1 (depth 1, 3 slots, 2 children); deep (depth 3, 1 free)
  const overlay = [
    view('origin', { '360p': { depth: 0, slots: 1 } }, 'origin'),
    view('weak', { '360p': { depth: 1, slots: 0, parent: 'origin' } }),
    view('strong-1', { '360p': { depth: 1, slots: 3, parent: 'origin' } }),
    view('kid-a', { '360p': { depth: 2, slots: 2, parent: 'strong-1' } }),
    view('kid-b', { '360p': { depth: 2, slots: 2, parent: 'strong-1' } }),
    view('deep', { '360p': { depth: 3, slots: 1, parent: 'kid-a' } }),
    view('unfed', { '360p': { slots: 4 } }),
    view('other-rendition', { '240p': { depth: 1, slots: 5, parent: 'origin' } }),
  ];
  // (the origin's one slot is held by both weak and strong-1 here: reports can disagree for a while)

  it('names fed peers with a free slot, shallowest first, never unfed ones or another rendition', () => {
    const index = indexParentCandidates(overlay);
    const got = pickParentCandidates(index, { peerId: 'me', rendition: '360p', slots: 0 }, 4, rng());
    expect(ids(got)).toEqual(['strong-1', 'kid-b', 'kid-a', 'deep']); // same depth: more free slots first
    expect(got[0]).toMatchObject({ depth: 1, free: 1 });
    expect(pickParentCandidates(index, { peerId: 'me', rendition: '720p', slots: 3 }, 4, rng())).toEqual([]);
  });

  it('names a full parent only to a peer of a higher capacity class than its weakest child', () => {
    const index = indexParentCandidates(overlay);
    // the origin's slot is held by a child that feeds nobody (class 0): a class-1 requester may take it
    expect(ids(pickParentCandidates(index, { peerId: 'me', rendition: '360p', slots: 1 }, 4, rng()))).toContain('origin');
    expect(ids(pickParentCandidates(index, { peerId: 'me', rendition: '360p', slots: 0 }, 4, rng()))).not.toContain('origin');
    const full = indexParentCandidates([
      view('p', { '360p': { depth: 0, slots: 1 } }, 'origin'),
      view('c', { '360p': { depth: 1, slots: 3, parent: 'p' } }),
    ]);
    // p's only child is class 2: nobody outranks it
    expect(ids(pickParentCandidates(full, { peerId: 'me', rendition: '360p', slots: 200 }, 4, rng()))).toEqual(['c']);
  });

  it('never names the requester or a peer below it', () => {
    const index = indexParentCandidates(overlay);
    // strong-1 asks (it lost its parent, its reported subtree still hangs below it)
    const got = ids(pickParentCandidates(index, { peerId: 'strong-1', rendition: '360p', slots: 3 }, 4, rng()));
    expect(got).not.toContain('strong-1');
    expect(got).not.toContain('kid-a');
    expect(got).not.toContain('deep');
    expect(got).toContain('origin');
  });

  it('spreads seekers over the best few instead of sending all to the same peer, within max', () => {
    const many = [view('origin', { r: { depth: 0, slots: 0 } }, 'origin')];
    for (let i = 0; i < 20; i++) many.push(view(`p${i}`, { r: { depth: 1 + (i % 5), slots: 2 } }));
    const index = indexParentCandidates(many);
    const r = rng();
    const seen = new Set<string>();
    for (let k = 0; k < 50; k++) {
      const got = pickParentCandidates(index, { peerId: 'me', rendition: 'r', slots: 0 }, 2, r);
      expect(got).toHaveLength(2);
      expect(got[0].depth).toBeLessThanOrEqual(got[1].depth);
      for (const c of got) { seen.add(c.peerId); expect(c.depth).toBeLessThanOrEqual(2); }
    }
    // the 6 best (2 picks x spread 3) are depth 1 and 2: p0, p5, p10, p15, then two of depth 2
    expect(seen.size).toBeGreaterThan(2);
    expect(seen.size).toBeLessThanOrEqual(6);
    expect(pickParentCandidates(index, { peerId: 'me', rendition: 'r', slots: 0 }, 100, r)).toHaveLength(4);
    expect(pickParentCandidates(index, { peerId: 'me', rendition: 'r', slots: 0 }, 0, r)).toEqual([]);
  });

  it('leaves out peers the requester is not expected to reach directly', () => {
    const index = indexParentCandidates(overlay);
    const got = ids(pickParentCandidates(index, { peerId: 'me', rendition: '360p', slots: 0 }, 4, rng(), (id) => id !== 'strong-1'));
    expect(got).toEqual(['kid-b', 'kid-a', 'deep']);
  });

  it('is deterministic for a given random source', () => {
    const index = indexParentCandidates(overlay);
    const a = pickParentCandidates(index, { peerId: 'me', rendition: '360p', slots: 2 }, 2, new Rng(3));
    const b = pickParentCandidates(index, { peerId: 'me', rendition: '360p', slots: 2 }, 2, new Rng(3));
    expect(a).toEqual(b);
  });
});

describe('peers request with parentFor, on a real tracker', () => {
  let tracker: Started | null = null;
  const clients: Client[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.ws.terminate();
    await tracker?.app.close();
    tracker = null;
  });
  const client = async () => {
    const c = await Client.connect(tracker!.ws);
    clients.push(c);
    return c;
  };

  it('names fed peers with a slot from their reports, and rejects a malformed parentFor', async () => {
    tracker = await startTracker();
    const parent = await client();
    await parent.join('demo', 'browser', { peerId: 'parent-aaaa' });
    parent.send({ type: 'report', stats: { 'slots.360p': 2, 'depth.360p': 1 }, rendition: '360p' });
    const unfed = await client();
    await unfed.join('demo', 'browser', { peerId: 'unfed-bbbb' });
    unfed.send({ type: 'report', stats: { 'slots.360p': 3, 'depth.360p': 255 }, rendition: '360p' });
    const me = await client();
    await me.join('demo', 'browser', { peerId: 'seeker-cccc' });
    await until(async () => (await tracker!.app.tracker.store.reports('demo')).length === 2);

    me.send({ type: 'peers', parentFor: { rendition: '360p', slots: 1 } });
    const answer = await me.next('peers');
    expect(answer.parents).toEqual([{ peerId: 'parent-aaaa', kind: 'browser' }]);
    expect(answer.peers.map((p: any) => p.peerId).sort()).toEqual(['parent-aaaa', 'unfed-bbbb']);
    // nobody fed in 240p: a plain answer
    me.send({ type: 'peers', parentFor: { rendition: '240p', slots: 1 } });
    expect((await me.next('peers')).parents).toBeUndefined();

    for (const bad of [{ rendition: '../x', slots: 1 }, { rendition: '360p', slots: 256 }, { rendition: '360p' }, { rendition: '360p', slots: 1, extra: 1 }]) {
      me.send({ type: 'peers', parentFor: bad });
      expect((await me.next('error')).reason).toMatch(/^invalid/);
    }
    const m = await getMetrics(tracker.http);
    expect(metricValue(m, 'starling_tracker_parent_requests_total')).toBe(2);
    expect(metricValue(m, 'starling_tracker_parent_candidates_total')).toBe(1);
  });
});
