/** The exact reference (Hungarian on the layered relaxation) and DGS measured against it. */
import { describe, expect, it } from 'vitest';
import { hungarianMin, measureGap } from '../../../tracker/chandelier/index.js';
import { churn, synthetic } from '../../../tracker/chandelier/synthetic.js';
import { mulberry32, randomInstance } from './helpers.js';

function bruteMin(n: number, m: number, cost: Float64Array): number {
  let best = Infinity;
  const used = new Array<boolean>(m).fill(false);
  const rec = (i: number, acc: number): void => {
    if (i === n) { best = Math.min(best, acc); return; }
    for (let j = 0; j < m; j++) {
      if (used[j]) continue;
      used[j] = true;
      rec(i + 1, acc + cost[i * m + j]);
      used[j] = false;
    }
  };
  rec(0, 0);
  return best;
}

describe('exact reference', () => {
  it('hungarianMin finds the minimum-cost assignment (against brute force)', () => {
    const rnd = mulberry32(7);
    for (let t = 0; t < 60; t++) {
      const n = 1 + Math.floor(rnd() * 5);
      const m = n + Math.floor(rnd() * 3);
      const cost = Float64Array.from({ length: n * m }, () => Math.round((rnd() * 20 - 10) * 100) / 100);
      const col = hungarianMin(n, m, cost);
      expect(new Set(col).size).toBe(n);
      let sum = 0;
      for (let i = 0; i < n; i++) sum += cost[i * m + col[i]];
      expect(sum).toBeCloseTo(bruteMin(n, m, cost), 9);
    }
  });

  it("the DGS plan's value in the relaxation is its objective, and the optimum bounds it", () => {
    for (let seed = 1; seed <= 12; seed++) {
      const input = randomInstance(seed, 20 + seed * 5, seed % 3 === 0);
      const { result, gap } = measureGap(input);
      expect(gap.dgs).toBeCloseTo(result.objectiveAfter, 6);
      expect(gap.gap).toBeGreaterThanOrEqual(-1e-6);
      expect(gap.exactUnscoped).toBeGreaterThanOrEqual(gap.exact - 1e-6); // fewer rules, no worse
    }
  });

  it('DGS ends within 3% of the exact optimum on small instances, cold and warm', () => {
    for (let seed = 1; seed <= 4; seed++) {
      const rnd = mulberry32(seed);
      const s = synthetic({ peers: 100 }, rnd);
      const cold = measureGap(s.input);
      expect(cold.result.unplaced).toEqual([]);
      expect(cold.gap.gapPct, `cold, seed ${seed}`).toBeLessThan(3);
      const warm = measureGap(churn(s, cold.result.links, 0.05, rnd).input);
      expect(warm.gap.gapPct, `warm, seed ${seed}`).toBeLessThan(3);
      // DGS never ends below where it started
      expect(warm.result.objectiveAfter).toBeGreaterThanOrEqual(warm.result.objectiveStart - 1e-9);
    }
  });

  it('refuses instances too large for the exact reference', () => {
    const s = synthetic({ peers: 50 }, mulberry32(1));
    expect(() => measureGap(s.input, { maxPeers: 10 })).toThrow(/small instances/);
  });
});
