/** Percentiles and distributions (pure). */
import type { Distribution } from './types.js';

/**
 * The q-quantile (0..1) of ascending `sorted` values, linearly interpolated between closest
 * ranks (Hyndman & Fan type 7, as numpy's default); null when empty.
 */
export function quantile(sorted: readonly number[], q: number): number | null {
  const n = sorted.length;
  if (n === 0) return null;
  if (!(q >= 0)) q = 0;
  if (q > 1) q = 1;
  const h = (n - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

/** Sorted copy of the finite values. */
export function sortedFinite(values: Iterable<number>): number[] {
  const out: number[] = [];
  for (const v of values) if (Number.isFinite(v)) out.push(v);
  return out.sort((a, b) => a - b);
}

/** Percentiles, mean and a downsampled empirical CDF (at most maxPoints points). */
export function distribution(values: Iterable<number>, maxPoints = 50): Distribution {
  const s = sortedFinite(values);
  const n = s.length;
  let sum = 0;
  for (const v of s) sum += v;
  const cdf: Array<[number, number]> = [];
  if (n > 0) {
    const step = Math.max(1, Math.ceil(n / maxPoints));
    for (let i = step - 1; i < n; i += step) cdf.push([s[i], (i + 1) / n]);
    if (cdf.length === 0 || cdf[cdf.length - 1][1] !== 1) cdf.push([s[n - 1], 1]);
  }
  return {
    count: n,
    min: n ? s[0] : null,
    max: n ? s[n - 1] : null,
    mean: n ? sum / n : null,
    p10: quantile(s, 0.1),
    p25: quantile(s, 0.25),
    p50: quantile(s, 0.5),
    p75: quantile(s, 0.75),
    p90: quantile(s, 0.9),
    p99: quantile(s, 0.99),
    cdf,
  };
}

/** a / b, or null when b is 0. */
export function ratio(a: number, b: number): number | null {
  return b > 0 ? a / b : null;
}
