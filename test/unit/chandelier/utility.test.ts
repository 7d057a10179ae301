/** The utility terms, one at a time, and their agreement with what the solver computes. */
import { describe, expect, it } from 'vitest';
import { DEFAULT_WEIGHTS, linkUtility, type LinkFacts } from '../../../tracker/chandelier/index.js';
import { pairStatic, prepare } from '../../../tracker/chandelier/instance.js';
import { resolveWeights } from '../../../tracker/chandelier/utility.js';
import { links, origin, peer, rendition } from './helpers.js';

const w = DEFAULT_WEIGHTS;
const base: LinkFacts = {
  parent: { kind: 'browser', natType: 'open', scope: 'a', trust: 1 },
  child: { natType: 'open', scope: 'a', bufferHealthMs: 10_000, uploadSlots: 0 },
  rttMs: 50,
  parentDepth: 1,
  current: false,
};
const u = (o: Partial<LinkFacts> & { p?: Partial<LinkFacts['parent']>; c?: Partial<LinkFacts['child']> } = {}) =>
  linkUtility(w, { ...base, ...o, parent: { ...base.parent, ...o.p }, child: { ...base.child, ...o.c } });

describe('link utility', () => {
  it('each term points the right way', () => {
    expect(u({ rttMs: 20 })).toBeGreaterThan(u({ rttMs: 200 }));
    expect(u({ parentDepth: 0 })).toBeGreaterThan(u({ parentDepth: 3 }));
    expect(u({ p: { natType: 'symmetric' }, c: { natType: 'symmetric' } })).toBeCloseTo(u() - w.relay, 9);
    expect(u({ c: { natType: 'unknown' } })).toBeCloseTo(u() - w.natUnknown, 9);
    expect(u({ p: { scope: 'b' } })).toBeCloseTo(u() - w.sameScope, 9);
    expect(u({ p: { trust: 0 } })).toBeCloseTo(u() - w.distrust, 9);
    expect(u({ p: { kind: 'seeder' } })).toBeCloseTo(u() + w.browserParent, 9);
    expect(u({ current: true })).toBeCloseTo(u() + w.stay, 9);
  });

  it('a peer with many slots pays more per hop (it pulls toward the origin)', () => {
    const loss = (slots: number) => u({ parentDepth: 0, c: { uploadSlots: slots } }) - u({ parentDepth: 1, c: { uploadSlots: slots } });
    expect(loss(8)).toBeCloseTo(w.hop * (1 + 8 * w.massPerSlot), 9);
    expect(loss(8)).toBeGreaterThan(loss(0));
  });

  it('a child with an empty buffer weighs its parent twice', () => {
    const starving = { c: { bufferHealthMs: 0 } };
    const diff = (o: Partial<LinkFacts>) => u({ ...o, ...starving }) - u(starving);
    const calmDiff = (o: Partial<LinkFacts>) => u(o) - u();
    expect(diff({ rttMs: 250 })).toBeCloseTo(2 * calmDiff({ rttMs: 250 }), 9);
    expect(diff({ parentDepth: 3 })).toBeCloseTo(2 * calmDiff({ parentDepth: 3 }), 9);
  });

  it("agrees with the solver's indexed computation", () => {
    const ww = resolveWeights();
    const peers = [origin(2), peer('P', { uploadSlots: 2, natType: 'symmetric', trust: 0.7, scope: 'x' }), peer('c', { natType: 'firewall', bufferHealthMs: 1500, uploadSlots: 3, scope: 'x' })];
    const inst = prepare(rendition(peers, links('O>P,P>c'), { rtt: () => 73 }), ww, undefined);
    const p = inst.index.get('P')!;
    const c = inst.index.get('c')!;
    const facts: LinkFacts = {
      parent: { kind: 'browser', natType: 'symmetric', scope: 'x', trust: 0.7 },
      child: { natType: 'firewall', scope: 'x', bufferHealthMs: 1500, uploadSlots: 3 },
      rttMs: 73,
      parentDepth: 1,
      current: true,
    };
    expect(pairStatic(inst, p, c) - inst.hopW[c] * 2).toBeCloseTo(linkUtility(ww, facts), 9);
  });
});
