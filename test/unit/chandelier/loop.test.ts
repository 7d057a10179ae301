/**
 * The tracker's optimizer loop (tracker/optimizer/loop.ts): reports in, assignments out, trust.
 */
import { describe, expect, it } from 'vitest';
import { LOOP_LIMITS, OptimizerLoop, type OverlayPeer } from '../../../tracker/optimizer/loop.js';

const R = '360p';

function peer(id: string, extra: Partial<OverlayPeer> = {}): OverlayPeer {
  return { peerId: id, kind: 'browser', nat: 'open', scope: 'eu', rendition: R, parents: {}, slots: { [R]: 2 }, bufferMs: 6000, ...extra };
}

const origin = (): OverlayPeer => peer('origin', { kind: 'origin', rendition: undefined, slots: { [R]: 1 } });

describe('optimizer loop', () => {
  it('assigns every viewer a parent, the origin feeding one, no cycles', () => {
    const loop = new OptimizerLoop();
    const peers = [origin(), ...Array.from({ length: 20 }, (_, i) => peer(`v${i}`))];
    const { assignments, figures } = loop.run(peers);
    expect(figures.unplaced).toBe(0);
    const parentOf = new Map(assignments.map((a) => [a.peerId, a.parent]));
    expect(parentOf.size).toBe(20);
    expect([...parentOf.values()].filter((p) => p === 'origin')).toHaveLength(1);
    for (const id of parentOf.keys()) {
      const seen = new Set<string>();
      let x: string | null | undefined = id;
      while (x && x !== 'origin') { expect(seen.has(x)).toBe(false); seen.add(x); x = parentOf.get(x); }
      expect(x).toBe('origin');
    }
  });

  it('sends nothing when the overlay already matches its plan (stable links stay stable)', () => {
    const loop = new OptimizerLoop();
    const peers = [origin(), ...Array.from({ length: 10 }, (_, i) => peer(`v${i}`))];
    const first = loop.run(peers).assignments;
    const applied = peers.map((p) => {
      const a = first.find((x) => x.peerId === p.peerId);
      return a?.parent ? { ...p, parents: { [R]: a.parent } } : p;
    });
    expect(loop.run(applied).assignments).toEqual([]);
  });

  it('lowers the trust of a parent whose assignments are not honoured, and raises it when they are', () => {
    const loop = new OptimizerLoop();
    const peers = [origin(), peer('big', { slots: { [R]: 6 } }), ...Array.from({ length: 6 }, (_, i) => peer(`v${i}`, { slots: { [R]: 0 } }))];
    const { assignments } = loop.run(peers);
    const toBig = assignments.filter((a) => a.parent === 'big').length;
    expect(toBig).toBeGreaterThan(0);
    for (let i = 0; i < LOOP_LIMITS.honourRounds; i++) loop.run(peers); // nobody ever moves
    expect(loop.trustOf('big')).toBeLessThan(1);
    const low = loop.trustOf('big');
    // now everyone follows the latest plan: honoured assignments raise trust again
    let current = peers;
    for (let i = 0; i < 4; i++) {
      const res = loop.run(current);
      current = current.map((p) => {
        const a = res.assignments.find((x) => x.peerId === p.peerId);
        return a?.parent ? { ...p, parents: { [R]: a.parent } } : p;
      });
    }
    expect(loop.trustOf('big')).toBeGreaterThanOrEqual(low);
  });

  it('a child stalling under its parent costs the parent trust', () => {
    const loop = new OptimizerLoop();
    const peers = [origin(), peer('p', { parents: { [R]: 'origin' } }), peer('c', { parents: { [R]: 'p' }, stalls: 0 })];
    loop.run(peers);
    loop.run([peers[0], peers[1], { ...peers[2], stalls: 2 }]);
    expect(loop.trustOf('p')).toBeCloseTo(1 - LOOP_LIMITS.trustPenaltyStall);
  });

  it('does nothing without an origin, and ignores reported parents that are not in the channel', () => {
    const loop = new OptimizerLoop();
    expect(loop.run([peer('a'), peer('b')]).assignments).toEqual([]);
    const res = loop.run([origin(), peer('a', { parents: { [R]: 'ghost' } })]);
    expect(res.assignments).toEqual([{ peerId: 'a', rendition: R, parent: 'origin' }]);
  });
});
