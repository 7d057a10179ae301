/**
 * Several seeds of one scenario, summarised per variant. One seed says little: the same
 * 300-viewer flash crowd gives 37–55% from peers across four seeds with the same engine, so a
 * change is judged by its paired differences over seeds, not by one run.
 */
import type { Report, VariantReport } from './report.js';

export interface SeedFigure { seed: number; value: number | null }

export interface Spread {
  perSeed: SeedFigure[];
  mean: number | null;
  /** Sample standard deviation (n - 1); null below two values. */
  sd: number | null;
  min: number | null;
  max: number | null;
}

export interface VariantSeedSummary {
  variant: string;
  /** Share of viewer bytes from peers over the whole run. */
  offload: Spread;
  /** Share from peers in the last sample (the state the swarm settled in). */
  offloadAtEnd: Spread;
  /** Mean per-viewer rebuffering ratio. */
  rebufferMean: Spread;
  /** Median distance behind the live edge, s. */
  latencyP50: Spread;
  /** Median startup time, s. */
  startupP50: Spread;
  /** Share of watching viewers fed by a parent in the last sample. */
  coverageAtEnd: Spread;
}

export interface SeedSummary {
  scenario: string;
  seeds: number[];
  variants: VariantSeedSummary[];
  /**
   * Paired differences against the first variant (offload, percentage points): per seed, and
   * how many seeds the variant did better on. Meaningful only when the variants share seeds.
   */
  pairedOffload: Array<{ variant: string; against: string; diffs: SeedFigure[]; mean: number | null; better: number; worse: number }>;
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;

export function spread(perSeed: SeedFigure[]): Spread {
  const xs = perSeed.map((s) => s.value).filter((v): v is number => v !== null && Number.isFinite(v));
  if (xs.length === 0) return { perSeed, mean: null, sd: null, min: null, max: null };
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1)) : null;
  return { perSeed, mean: r3(mean), sd: sd === null ? null : r3(sd), min: r3(Math.min(...xs)), max: r3(Math.max(...xs)) };
}

function last<T>(xs: T[]): T | undefined { return xs.length ? xs[xs.length - 1] : undefined; }

/** Reports of the same scenario, one per seed (each with the same variants). */
export function summarizeSeeds(reports: Report[]): SeedSummary {
  if (reports.length === 0) throw new Error('summarizeSeeds: no reports');
  const seeds = reports.map((r) => r.scenario.seed);
  const names = reports[0].variants.map((v) => v.variant);
  const pick = (name: string, f: (v: VariantReport) => number | null): SeedFigure[] => reports.map((r) => {
    const v = r.variants.find((x) => x.variant === name);
    return { seed: r.scenario.seed, value: v ? f(v) : null };
  });
  const variants = names.map((name): VariantSeedSummary => ({
    variant: name,
    offload: spread(pick(name, (v) => v.offload)),
    offloadAtEnd: spread(pick(name, (v) => last(v.series)?.offload ?? null)),
    rebufferMean: spread(pick(name, (v) => v.rebufferRatio.mean)),
    latencyP50: spread(pick(name, (v) => v.latencyS.p50)),
    startupP50: spread(pick(name, (v) => v.startupS.p50)),
    coverageAtEnd: spread(pick(name, (v) => last(v.series)?.treeCoverage ?? null)),
  }));
  const base = variants[0];
  const pairedOffload = variants.slice(1).map((v) => {
    const diffs = v.offload.perSeed.map((s, i): SeedFigure => {
      const b = base.offload.perSeed[i].value;
      return { seed: s.seed, value: s.value === null || b === null ? null : r3((s.value - b) * 100) };
    });
    const vals = diffs.map((d) => d.value).filter((x): x is number => x !== null);
    return {
      variant: v.variant, against: base.variant, diffs,
      mean: vals.length ? r3(vals.reduce((a, b) => a + b, 0) / vals.length) : null,
      better: vals.filter((x) => x > 0).length, worse: vals.filter((x) => x < 0).length,
    };
  });
  return { scenario: reports[0].scenario.name, seeds, variants, pairedOffload };
}

/** Plain-text table for the terminal (and bench/RESULTS.md). */
export function formatSeedSummary(s: SeedSummary): string {
  const pct = (x: number | null) => (x === null ? '–' : `${(x * 100).toFixed(1)}%`);
  const num = (x: number | null) => (x === null ? '–' : String(x));
  const lines = [
    `seeds ${s.seeds.join(', ')}: offload mean ± sd [min–max] | at the end | rebuffering mean | behind live p50 | startup p50 | fed at the end`,
  ];
  for (const v of s.variants) {
    lines.push(`${v.variant.padEnd(10)} ${pct(v.offload.mean)} ± ${v.offload.sd === null ? '–' : (v.offload.sd * 100).toFixed(1)} [${pct(v.offload.min)}–${pct(v.offload.max)}]`
      + ` (${v.offload.perSeed.map((x) => pct(x.value)).join(' / ')}) | ${pct(v.offloadAtEnd.mean)} | ${num(v.rebufferMean.mean)}`
      + ` | ${num(v.latencyP50.mean)} s | ${num(v.startupP50.mean)} s | ${pct(v.coverageAtEnd.mean)}`);
  }
  for (const p of s.pairedOffload) {
    lines.push(`${p.variant} vs ${p.against}: ${p.mean === null ? '–' : `${p.mean > 0 ? '+' : ''}${p.mean}`} points on average`
      + ` (${p.diffs.map((d) => (d.value === null ? '–' : `${d.value > 0 ? '+' : ''}${d.value}`)).join(' / ')}), better on ${p.better} of ${p.diffs.length} seeds, worse on ${p.worse}`);
  }
  return `${lines.join('\n')}\n`;
}
