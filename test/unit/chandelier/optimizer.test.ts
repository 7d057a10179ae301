/** Hand-made cases: each checks one behaviour of the optimizer on a tree small enough to reason about. */
import { describe, expect, it } from 'vitest';
import { Chandelier, optimize, type OptimizeOptions, type RenditionInput } from '../../../tracker/chandelier/index.js';
import { checkPlan, links, origin, parentOf, peer, rendition } from './helpers.js';

function solve(input: RenditionInput, opts: OptimizeOptions = {}) {
  const res = optimize({ renditions: [input] }, opts);
  const r = res.renditions[0];
  checkPlan(input, r);
  return r;
}

describe('Chandelier optimizer: hand-made cases', () => {
  it('a high-capacity peer feeding many moves toward the origin', () => {
    // O feeds A and B (1 slot each); H (8 slots, 6 children) hangs under B at depth 2
    const peers = [
      origin(2),
      peer('A', { uploadSlots: 1 }),
      peer('B', { uploadSlots: 1 }),
      peer('H', { uploadSlots: 8 }),
      peer('a1'),
      ...['h1', 'h2', 'h3', 'h4', 'h5', 'h6'].map((id) => peer(id)),
    ];
    const cur = links('O>A,O>B,A>a1,B>H,H>h1,H>h2,H>h3,H>h4,H>h5,H>h6');
    const r = solve(rendition(peers, cur));
    expect(r.depth.get('H')).toBe(1);
    expect(parentOf(r, 'H')).toBe('O');
    expect(r.objectiveAfter).toBeGreaterThan(r.objectiveBefore);
    // its children moved up with it
    for (const h of ['h1', 'h2', 'h3', 'h4', 'h5', 'h6']) expect(r.depth.get(h)).toBe(2);
  });

  it('places a cold swarm with the high-capacity peers nearest the origin', () => {
    const peers = [origin(2), peer('big', { uploadSlots: 6 }), peer('mid', { uploadSlots: 2 })];
    for (let i = 0; i < 7; i++) peers.push(peer(`leaf${i}`));
    const r = solve(rendition(peers));
    expect(r.placed).toBe(9);
    expect(r.depth.get('big')).toBe(1);
    expect(Math.max(...r.depth.values())).toBeLessThanOrEqual(2);
  });

  it('avoids a symmetric<->symmetric pair when a direct alternative exists, uses it when not', () => {
    const peers = [
      origin(2),
      peer('sym', { uploadSlots: 1, natType: 'symmetric' }),
      peer('cone', { uploadSlots: 1, natType: 'full-cone' }),
      peer('child', { natType: 'symmetric' }),
    ];
    const r = solve(rendition(peers, links('O>sym,O>cone')));
    expect(parentOf(r, 'child')).toBe('cone');
    // the other way round: a port-restricted child next to a symmetric parent is a relay pair too
    const r2 = solve(rendition([...peers.slice(0, 3), peer('child', { natType: 'port-restricted' })], links('O>sym,O>cone')));
    expect(parentOf(r2, 'child')).toBe('cone');
    // no alternative: a relayed parent is better than none
    const only = [origin(1), peer('sym', { uploadSlots: 1, natType: 'symmetric' }), peer('child', { natType: 'symmetric' })];
    const r3 = solve(rendition(only, links('O>sym')));
    expect(parentOf(r3, 'child')).toBe('sym');
  });

  it('prefers a same-scope parent over a cross-scope one of equal quality', () => {
    // scope 'a' cannot serve itself (no slots of its own for its 2 children), so its children
    // see every scope; the scope bonus decides between two otherwise identical parents
    const peers = [
      origin(2),
      peer('Pa', { uploadSlots: 1, scope: 'a' }),
      peer('Pb', { uploadSlots: 1, scope: 'b' }),
      peer('c', { scope: 'a' }),
    ];
    const r = solve(rendition(peers, links('O>Pa,O>Pb')));
    expect(parentOf(r, 'c')).toBe('Pa');
    // and with the parents listed the other way round (no order effect)
    const r2 = solve(rendition([peers[0], peers[2], peers[1], peers[3]], links('O>Pb,O>Pa')));
    expect(parentOf(r2, 'c')).toBe('Pa');
  });

  it('widens to other scopes only when the own scope cannot serve', () => {
    // scope 'a' has enough slots for its children: a child of 'a' never even considers 'b'...
    const peers = [
      origin(1),
      peer('Pa', { uploadSlots: 3, scope: 'a' }),
      peer('a1', { scope: 'a' }),
      peer('a2', { scope: 'a' }),
      peer('Pb', { uploadSlots: 5, scope: 'b', kind: 'seeder' }),
    ];
    const r = solve(rendition(peers, links('O>Pa,Pa>Pb')));
    expect(parentOf(r, 'a1')).toBe('Pa');
    expect(parentOf(r, 'a2')).toBe('Pa');
    // ...but when 'a' has no free slot left, an orphan of 'a' is placed across scopes
    const full = [origin(1), peer('Pa', { uploadSlots: 1, scope: 'a' }), peer('a1', { scope: 'a' }), peer('Pb', { uploadSlots: 3, scope: 'b' }), peer('a2', { scope: 'a' })];
    const r2 = solve(rendition(full, links('O>Pa,Pa>Pb,Pb>a1')));
    expect(parentOf(r2, 'a2')).toBe('Pb');
  });

  it('gives the better parent to the child with the lower buffer', () => {
    const peers = [
      origin(2),
      peer('good', { uploadSlots: 1, trust: 1 }),
      peer('poor', { uploadSlots: 1, trust: 0.3 }),
      peer('calm', { bufferHealthMs: 9000 }),
      peer('starving', { bufferHealthMs: 200 }),
    ];
    const r = solve(rendition(peers, links('O>good,O>poor')));
    expect(parentOf(r, 'starving')).toBe('good');
    expect(parentOf(r, 'calm')).toBe('poor');
    // even when the calm one held the good parent before, the starving one ends up better
    // placed (here: it swaps into the origin's slot, shallower still)
    const r2 = solve(rendition(peers, links('O>good,O>poor,good>calm,poor>starving')), { weights: { stay: 0.5 } });
    expect(r2.depth.get('starving')!).toBeLessThan(r2.depth.get('calm')!);
    expect(parentOf(r2, 'starving')).not.toBe('poor');
  });

  it('re-running on an unchanged instance makes no move', () => {
    const peers = [origin(3)];
    for (let i = 0; i < 40; i++) peers.push(peer(`p${i}`, { uploadSlots: i % 4, scope: `s${i % 3}`, bufferHealthMs: (i * 997) % 9000, natType: i % 5 === 0 ? 'symmetric' : 'port-restricted' }));
    const rtt = (a: string, b: string) => 20 + Math.abs(a.length * 13 - b.length * 7) + ((a.charCodeAt(1) + b.charCodeAt(1)) % 40);
    const first = solve(rendition(peers, [], { rtt }));
    expect(first.converged).toBe(true);
    const again = solve(rendition(peers, first.links, { rtt }));
    expect(again.moves + again.swaps + again.placed).toBe(0);
    expect(again.added).toEqual([]);
    expect(again.removed).toEqual([]);
    expect(again.objectiveAfter).toBeCloseTo(again.objectiveBefore, 9);
  });

  it('a small improvement below the switching cost is not made', () => {
    // c sits under B (rtt 80); A (rtt 60) is free: 20 ms is 0.1 point, the switch costs 1
    const peers = [origin(2), peer('A', { uploadSlots: 1 }), peer('B', { uploadSlots: 1 }), peer('c')];
    const rtt = (a: string, b: string) => (a === 'A' || b === 'A' ? 60 : 80);
    const r = solve(rendition(peers, links('O>A,O>B,B>c'), { rtt }));
    expect(parentOf(r, 'c')).toBe('B');
    // without a current link, the better one is taken
    const r2 = solve(rendition(peers, links('O>A,O>B'), { rtt }));
    expect(parentOf(r2, 'c')).toBe('A');
  });

  it("re-places every child of a departed parent, subtree and all", () => {
    const peers = [
      origin(2),
      peer('A', { uploadSlots: 3 }),
      peer('B', { uploadSlots: 3 }),
      peer('x', { uploadSlots: 2 }),
      peer('y'),
      peer('z'),
      peer('x1'),
      peer('x2'),
    ];
    const cur = links('O>A,O>B,A>x,A>y,A>z,x>x1,x>x2');
    const gone = peers.map((p) => (p.id === 'A' ? { ...p, online: false } : p));
    const r = solve(rendition(gone, cur));
    for (const id of ['x', 'y', 'z', 'x1', 'x2', 'B']) expect(parentOf(r, id), id).toBeDefined();
    expect(r.links.some((l) => l.parent === 'A' || l.child === 'A')).toBe(false);
    expect(r.removed).toEqual(expect.arrayContaining(links('O>A,A>x,A>y,A>z')));
    expect(r.unplaced).toEqual([]);
    // x keeps its own children (re-attaching the subtree is one move, not three)
    expect(parentOf(r, 'x1')).toBe('x');
  });

  it('sanitizes current links: cycles, over-full parents, double parents, strangers', () => {
    const peers = [origin(1), peer('A', { uploadSlots: 1 }), peer('B', { uploadSlots: 1 }), peer('C', { uploadSlots: 1 }), peer('D')];
    const cur = links('O>A,B>C,C>B,A>D,A>B,ghost>C,D>D,X>Y,C>O');
    const r = solve(rendition(peers, cur));
    // kept in order: O>A, B>C, C>B (then cut: a cycle), A>D; dropped: A>B (B has a parent),
    // ghost>C, D>D, X>Y (unknown), C>O (the origin is nobody's child), and the cycle's link
    expect(r.dropped).toBe(6);
    // 4 children, 4 slots of 1: a chain, everybody placed (checked valid by solve)
    expect(r.unplaced).toEqual([]);
    expect(Math.max(...r.depth.values())).toBe(4);
  });

  it('leaves peers unplaced only when no slot anywhere could take them', () => {
    const peers = [origin(1), peer('A', { uploadSlots: 1 }), peer('b'), peer('c'), peer('d')];
    const r = solve(rendition(peers));
    expect(r.links.length).toBe(2);
    expect(r.unplaced.length).toBe(2);
    // an unplaced peer counts as HTTP-fed, deep
    for (const u of r.unplaced) expect(r.depth.get(u)).toBe(6);
  });

  it('re-attaches a detached subtree that holds the only free slots (displacement)', () => {
    // A left; its child X (2 slots, one child) is detached, and every attached slot is used:
    // X takes the place of the light leaf under O, which moves into X's free slot
    const peers = [origin(1), peer('A', { uploadSlots: 1, online: false }), peer('X', { uploadSlots: 2 }), peer('x1'), peer('leaf')];
    const r = solve(rendition(peers, links('O>leaf,O>A,A>X,X>x1')));
    expect(r.unplaced).toEqual([]);
    expect(parentOf(r, 'X')).toBe('O');
    expect(parentOf(r, 'leaf')).toBe('X');
  });

  it('honours the time budget with an injected clock, and still returns a valid plan', () => {
    const peers = [origin(4)];
    for (let i = 0; i < 600; i++) peers.push(peer(`p${i}`, { uploadSlots: i % 5, scope: `s${i % 4}`, bufferHealthMs: (i * 7919) % 10_000 }));
    let t = 0;
    let calls = 0;
    const now = () => { calls++; return (t += 1); }; // every reading costs 1 ms
    const input = rendition(peers, [], { rtt: (a, b) => 10 + ((a.charCodeAt(1) * 7 + b.charCodeAt(1) * 3) % 90) });
    const res = optimize({ renditions: [input] }, { now, budgetMs: 5 });
    const r = res.renditions[0];
    checkPlan(input, r);
    expect(res.budgetExhausted).toBe(true);
    expect(r.converged).toBe(false);
    expect(r.unplaced).toEqual([]); // placement is never cut short
    // the clock is read a bounded number of times past the deadline
    expect(res.solveMs!).toBeLessThanOrEqual(5 + 3);
    expect(calls).toBeLessThanOrEqual(5 + 4);
    // with time to spare it converges
    t = 0;
    const full = optimize({ renditions: [input] }, { now: () => (t += 0.001), budgetMs: 1e9 });
    expect(full.budgetExhausted).toBe(false);
    expect(full.renditions[0].converged).toBe(true);
    expect(full.renditions[0].objectiveAfter).toBeGreaterThanOrEqual(r.objectiveAfter - 1e-9);
  });

  it('places everyone even when placement alone outlasts the budget (then no switching)', () => {
    const peers = [origin(3)];
    for (let i = 0; i < 200; i++) peers.push(peer(`p${i}`, { uploadSlots: i % 4 }));
    const input = rendition(peers);
    let t = 0;
    const res = optimize({ renditions: [input] }, { now: () => (t += 50), budgetMs: 60 }); // 2nd reading is past it
    const r = res.renditions[0];
    checkPlan(input, r);
    expect(res.budgetExhausted).toBe(true);
    expect(r.unplaced).toEqual([]);
    expect(r.moves + r.swaps).toBe(0);
    expect(r.passes).toBe(0);
  });

  it('solves each rendition as its own tree, sharing the budget', () => {
    const a = rendition([origin(2), peer('x', { uploadSlots: 1 }), peer('y')], [], { rendition: '360p' });
    const b = rendition([origin(1, { id: 'O2' }), peer('x', { uploadSlots: 2 }), peer('z')], [], { rendition: '720p', originId: 'O2' });
    const res = optimize({ renditions: [a, b] });
    expect(res.renditions.map((r) => r.rendition)).toEqual(['360p', '720p']);
    checkPlan(a, res.renditions[0]);
    checkPlan(b, res.renditions[1]);
    expect(parentOf(res.renditions[1], 'x')).toBe('O2');
    expect(parentOf(res.renditions[1], 'z')).toBe('x');
  });

  it('Chandelier warm-starts each round from its previous plan', () => {
    const peers = [origin(2), peer('A', { uploadSlots: 2 }), peer('B', { uploadSlots: 2 }), peer('c'), peer('d'), peer('e')];
    const ch = new Chandelier();
    const input = { renditions: [{ rendition: '360p', originId: 'O', peers }] };
    const r1 = ch.round(input).renditions[0];
    expect(r1.placed).toBe(5);
    expect(ch.plan('360p')).toEqual(r1.links);
    const r2 = ch.round(input).renditions[0];
    expect(r2.placed + r2.moves + r2.swaps).toBe(0);
    expect(r2.links).toEqual(r1.links);
    // a departure: only the orphans move
    const r3 = ch.round({ renditions: [{ rendition: '360p', originId: 'O', peers: peers.filter((p) => p.id !== 'A') }] }).renditions[0];
    expect(r3.unplaced).toEqual([]);
    expect(r3.added.length).toBe(r1.links.filter((l) => l.parent === 'A').length);
    ch.forget('360p');
    expect(ch.plan('360p')).toEqual([]);
  });

  it('takes RTT as a function, a sparse table or coordinates, with the same result', () => {
    const peers = [origin(2), peer('A', { uploadSlots: 2 }), peer('B', { uploadSlots: 2 }), peer('c'), peer('d')];
    const cur = links('O>A,O>B');
    // c is near B, d near A
    const near: Record<string, number> = { 'A|c': 120, 'B|c': 10, 'A|d': 10, 'B|d': 120 };
    const fn = (a: string, b: string) => near[`${a}|${b}`] ?? 50;
    const table = { defaultMs: 50, samples: [['c', 'A', 120], ['c', 'B', 10], ['d', 'A', 10], ['d', 'B', 120]] as Array<[string, string, number]> };
    const coords = { defaultMs: 50, coords: { O: [0, 0], A: [0, 5], B: [5, 0], c: [5.5, 0], d: [0, 5.5] }, baseMs: 5, msPerUnit: 10 };
    for (const rtt of [fn, table, coords]) {
      const r = solve(rendition(peers, cur, { rtt }));
      expect(parentOf(r, 'c')).toBe('B');
      expect(parentOf(r, 'd')).toBe('A');
    }
  });

  it('rejects malformed input', () => {
    expect(() => optimize({ renditions: [rendition([peer('a')])] })).toThrow(/origin/);
    expect(() => optimize({ renditions: [rendition([origin(1), peer('a'), peer('a')])] })).toThrow(/duplicate/);
    expect(() => optimize({ renditions: [rendition([origin(1)])] }, { weights: { hop: -1 } })).toThrow(/weight/);
    expect(() => optimize({ renditions: [rendition([origin(1)])] }, { candidates: { top: 1.5 } })).toThrow(/limit/);
  });
});
