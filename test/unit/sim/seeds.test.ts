/** Summaries over seeds (sim/seeds.ts): hand-computed spreads, and real reports of a tiny scenario. */
import { describe, expect, it } from 'vitest';
import { runScenario } from '../../../sim/run.js';
import { parseScenario } from '../../../sim/scenario.js';
import { formatSeedSummary, spread, summarizeSeeds } from '../../../sim/seeds.js';

describe('spread', () => {
  it('gives mean, sample standard deviation, min and max, ignoring missing values', () => {
    const s = spread([{ seed: 1, value: 0.4 }, { seed: 2, value: 0.6 }, { seed: 3, value: null }, { seed: 4, value: 0.5 }]);
    expect(s.mean).toBe(0.5);
    expect(s.sd).toBe(0.1); // sqrt((0.01 + 0.01 + 0) / 2)
    expect([s.min, s.max]).toEqual([0.4, 0.6]);
    expect(spread([{ seed: 1, value: 0.3 }]).sd).toBeNull();
    expect(spread([{ seed: 1, value: null }]).mean).toBeNull();
  });
});

describe('summarizeSeeds', () => {
  it('summarises real reports per variant and pairs the variants seed by seed', async () => {
    const tiny = {
      name: 'tiny-seeds', durationS: 16,
      population: { viewers: 6, join: { pattern: 'steady', atS: 4, overS: 2 } },
      metrics: { sampleS: 4, trackEverySegments: 1, horizonS: 6 },
      variants: ['starling', 'http-only'],
    };
    const reports = [];
    for (const seed of [5, 6]) reports.push((await runScenario(parseScenario({ ...tiny, seed }))).report);
    const s = summarizeSeeds(reports);
    expect(s.seeds).toEqual([5, 6]);
    expect(s.variants.map((v) => v.variant)).toEqual(['starling', 'http-only']);
    const st = s.variants[0];
    expect(st.offload.perSeed).toEqual(reports.map((r) => ({ seed: r.scenario.seed, value: r.variants[0].offload })));
    expect(st.offload.mean).toBeGreaterThan(0);
    expect(s.variants[1].offload.mean).toBe(0);
    const paired = s.pairedOffload[0];
    expect(paired).toMatchObject({ variant: 'http-only', against: 'starling', worse: 2, better: 0 });
    expect(paired.diffs.map((d) => d.value)).toEqual(reports.map((r) => Math.round(-r.variants[0].offload! * 100 * 1000) / 1000));
    const text = formatSeedSummary(s);
    expect(text).toContain('seeds 5, 6');
    expect(text).toContain('http-only vs starling');
  }, 30_000);
});
