/**
 * Relays (tracker/optimizer/relay.ts): a rendition short of upload slots gets relays from the
 * viewers of another rendition that have spare upload, only where that is a net gain and the
 * donor's own rendition can spare them; relays are sticky and released when no longer needed.
 */
import { describe, expect, it } from 'vitest';
import { RelayPlanner } from '../../../tracker/optimizer/relay.js';
import { buildOverlay, toOverlayPeer } from '../../../tracker/optimizer/overlay.js';
import type { OverlayPeer } from '../../../tracker/optimizer/loop.js';

const HI = '360p';
const LO = '240p';
const KBPS = { [HI]: 864, [LO]: 464 };

function origin(): OverlayPeer {
  return { peerId: 'origin-1', kind: 'origin', scope: 'default', parents: {}, slots: { [HI]: 1, [LO]: 1 } };
}

function viewer(id: string, rendition: string, slots: number, spareKbps?: number): OverlayPeer {
  return {
    peerId: id, kind: 'browser', scope: 'default', rendition, parents: {}, slots: { [rendition]: slots },
    kbps: { [rendition]: KBPS[rendition as keyof typeof KBPS] }, ...(spareKbps !== undefined ? { spareKbps } : {}),
  };
}

/** 6 viewers of 360p with no slots (low uploads), 6 of 240p with plenty. */
function population(): OverlayPeer[] {
  const peers = [origin()];
  for (let i = 0; i < 6; i++) peers.push(viewer(`hi-${i}`, HI, 0, 300));
  for (let i = 0; i < 6; i++) peers.push(viewer(`lo-${i}`, LO, 4, 4000 - i * 300)); // 4000, 3700, ... 2500
  return peers;
}

describe('RelayPlanner', () => {
  it('asks the 240p viewers with the most spare upload to relay 360p until it has its margin', () => {
    const planner = new RelayPlanner();
    const peers = population();
    const changes = planner.plan(peers);
    // 360p: 6 members, 1 slot (origin); a relay brings floor(spare / (864 * 1.05)) slots and
    // needs one: lo-0 and lo-1 (4 slots each), then the cap of a quarter of 6 watchers
    expect(changes).toEqual([{ peerId: 'lo-0', renditions: [HI] }, { peerId: 'lo-1', renditions: [HI] }]);
    expect([...planner.current()]).toEqual([['lo-0', HI], ['lo-1', HI]]);
    // the same overlay again: nothing new to say
    expect(planner.plan(peers)).toEqual([]);
  });

  it('never takes a donor whose own rendition would run short, nor one that brings less than three slots', () => {
    const planner = new RelayPlanner();
    const peers = [origin()];
    for (let i = 0; i < 6; i++) peers.push(viewer(`hi-${i}`, HI, 0, 300));
    // 240p has exactly its members' needs: no donor can leave it
    for (let i = 0; i < 4; i++) peers.push(viewer(`lo-${i}`, LO, 1, 3000));
    expect(planner.plan(peers)).toEqual([]);
    // plenty of 240p slots, but each donor would bring two 360p slots only (2,700 kbit/s spare)
    const weak = [origin(), ...Array.from({ length: 6 }, (_, i) => viewer(`hi-${i}`, HI, 0, 300)), ...Array.from({ length: 6 }, (_, i) => viewer(`lo-${i}`, LO, 4, 2700))];
    expect(new RelayPlanner().plan(weak)).toEqual([]);
    // without bitrate reports there is nothing to size a relay with
    const blind = population().map((p) => ({ ...p, kbps: undefined }));
    expect(new RelayPlanner().plan(blind)).toEqual([]);
  });

  it('keeps relays while needed, releases them after three rounds of plenty, and at once when they leave or switch', () => {
    const planner = new RelayPlanner();
    let peers = population();
    planner.plan(peers);
    // the relays now report their 360p slots
    const withRelaySlots = (ps: OverlayPeer[]) => ps.map((p) => (p.peerId === 'lo-0' ? { ...p, slots: { ...p.slots, [HI]: 3 } } : p.peerId === 'lo-1' ? { ...p, slots: { ...p.slots, [HI]: 2 } } : p));
    peers = withRelaySlots(peers);
    expect(planner.plan(peers)).toEqual([]);
    // five 360p viewers leave: 360p (hi-5 and the two relays) keeps its margin without lo-1
    // (6 slots - 2 + 1 for 2 members), not without lo-0; released on the third such round
    peers = peers.filter((p) => !['hi-0', 'hi-1', 'hi-2', 'hi-3', 'hi-4'].includes(p.peerId));
    expect(planner.plan(peers)).toEqual([]);
    expect(planner.plan(peers)).toEqual([]);
    expect(planner.plan(peers)).toEqual([{ peerId: 'lo-1', renditions: [] }]);
    expect([...planner.current()]).toEqual([['lo-0', HI]]);
    // a relay that leaves is forgotten; one that switches to the relayed rendition is released
    const p2 = new RelayPlanner();
    let q = population();
    p2.plan(q);
    q = q.filter((p) => p.peerId !== 'lo-0').map((p) => (p.peerId === 'lo-1' ? { ...p, rendition: HI } : p));
    const after = p2.plan(q);
    expect(after).toContainEqual({ peerId: 'lo-1', renditions: [] });
    expect(after.some((c) => c.peerId === 'lo-0')).toBe(false);
    expect(p2.current().has('lo-0')).toBe(false);
  });

  it('uses the median of the reported bitrates (one liar moves it little)', () => {
    const planner = new RelayPlanner();
    const peers = population();
    peers[1] = { ...peers[1], kbps: { [HI]: 1 } }; // claims 360p is 1 kbit/s
    peers[2] = { ...peers[2], kbps: { [HI]: 864 } };
    peers[3] = { ...peers[3], kbps: { [HI]: 870 } };
    expect(planner.plan(peers)).toEqual([{ peerId: 'lo-0', renditions: [HI] }, { peerId: 'lo-1', renditions: [HI] }]);
  });
});

describe('overlay: relay inputs from reports', () => {
  it('reads kbps.<r> and spareKbps, ignoring hostile values', () => {
    const p = toOverlayPeer({
      peerId: 'v-1', kind: 'browser',
      report: { rendition: HI, stats: { 'kbps.360p': 864, 'kbps.240p': -5, 'kbps.720p': Number.POSITIVE_INFINITY, 'kbps.BAD': 1, spareKbps: 1500, 'slots.360p': 1 } },
    });
    expect(p.kbps).toEqual({ [HI]: 864 });
    expect(p.spareKbps).toBe(1500);
    const q = toOverlayPeer({ peerId: 'v-2', kind: 'browser', report: { stats: { spareKbps: -1, 'kbps.360p': 'x' } } });
    expect(q.spareKbps).toBeUndefined();
    expect(q.kbps).toBeUndefined();
    expect(buildOverlay([{ peerId: 'v-3', kind: 'browser', report: { stats: { spareKbps: 1e12 } } }])[0].spareKbps).toBe(1_000_000);
  });

  it('a relay that reports no rendition label is still known by the one it plays (its relays do not count)', () => {
    const p = toOverlayPeer({
      peerId: 'v-1', kind: 'browser',
      report: { stats: {}, relays: [HI], links: [{ peerId: 'origin-1', sent: 0, received: 1, parent: true, rendition: HI }, { peerId: 'v-9', sent: 0, received: 1, parent: true, rendition: LO }] },
    });
    expect(p.rendition).toBe(LO);
    expect(p.relays).toEqual([HI]);
    expect(p.parents).toEqual({ [HI]: 'origin-1', [LO]: 'v-9' });
  });
});
