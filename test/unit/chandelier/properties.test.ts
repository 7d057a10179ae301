/** Invariants over seeded random instances (messy current links, offline peers, short capacity). */
import { describe, expect, it } from 'vitest';
import { optimize } from '../../../tracker/chandelier/index.js';
import { churn, synthetic } from '../../../tracker/chandelier/synthetic.js';
import { checkPlan, mulberry32, randomInstance } from './helpers.js';

describe('Chandelier optimizer: properties over random instances', () => {
  for (const short of [false, true]) {
    it(`plans are valid and monotone (${short ? 'capacity short' : 'enough capacity'})`, () => {
      for (let seed = 1; seed <= 25; seed++) {
        const n = 5 + ((seed * 37) % 120);
        const input = randomInstance(seed, n, short);
        const r = optimize({ renditions: [input] }).renditions[0];
        checkPlan(input, r); // no cycles, slots, depth order, diff, nobody left who could be placed
        expect(r.objectiveAfter).toBeGreaterThanOrEqual(r.objectiveStart - 1e-9);
        expect(r.objectiveStart).toBeGreaterThanOrEqual(r.objectiveBefore - 1e-9);
        // the same input gives the same plan
        const again = optimize({ renditions: [input] }).renditions[0];
        expect(again.links).toEqual(r.links);
        // and re-running on its own plan moves nothing
        const rerun = optimize({ renditions: [{ ...input, currentLinks: r.links }] }).renditions[0];
        checkPlan({ ...input, currentLinks: r.links }, rerun);
        expect(rerun.moves + rerun.swaps + rerun.placed, `seed ${seed}`).toBe(0);
      }
    });
  }

  it('a churn budget (maxSwitches) caps moves + swaps per round, keeps the plan valid, and the best gains go first', () => {
    let capped = 0;
    for (let seed = 1; seed <= 15; seed++) {
      const input = randomInstance(seed, 40 + seed * 5, false);
      const free = optimize({ renditions: [input] }).renditions[0];
      for (const budget of [0, 3]) {
        const r = optimize({ renditions: [input] }, { maxSwitches: budget }).renditions[0];
        checkPlan(input, r); // placement still completes: orphans are not budgeted
        expect(r.moves + r.swaps, `seed ${seed}`).toBeLessThanOrEqual(budget);
        expect(r.placed).toBe(free.placed);
        expect(r.objectiveAfter).toBeLessThanOrEqual(free.objectiveAfter + 1e-9);
        expect(r.objectiveAfter).toBeGreaterThanOrEqual(r.objectiveStart - 1e-9);
        if (free.moves + free.swaps > budget) capped++;
      }
    }
    expect(capped).toBeGreaterThan(5); // the budget did bind on these instances
    expect(() => optimize({ renditions: [randomInstance(1, 10, false)] }, { maxSwitches: -1 })).toThrow(/maxSwitches/);
    expect(() => optimize({ renditions: [randomInstance(1, 10, false)] }, { maxSwitches: 1.5 })).toThrow(/maxSwitches/);
  });

  it('stays valid over rounds of churn, and moves little', () => {
    const rnd = mulberry32(99);
    let s = synthetic({ peers: 400, scopes: 4 }, rnd);
    let r = optimize({ renditions: [s.input] }).renditions[0];
    checkPlan(s.input, r);
    for (let round = 0; round < 6; round++) {
      s = churn(s, r.links, 0.03, rnd);
      r = optimize({ renditions: [s.input] }).renditions[0];
      checkPlan(s.input, r);
      expect(r.unplaced).toEqual([]);
      // about 3% of the peers left and as many joined: the plan changes by a small share
      expect(r.added.length).toBeLessThan(0.2 * r.links.length);
    }
  });
});
