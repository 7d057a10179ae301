/**
 * Seeded randomness for the simulator. Every stream derives from the scenario seed, so a run is a
 * pure function of (scenario, seed): same seed, same report, byte for byte.
 */
import type { Random } from '../peer/core/types.js';

/** splitmix32-style hash: mixes a seed and a stream id into a 32-bit seed. */
export function mixSeed(seed: number, stream: number): number {
  let h = (seed ^ Math.imul(stream + 0x9e3779b9, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** mulberry32: fast, 32-bit state, good enough for simulation. */
export class Rng implements Random {
  private a: number;
  constructor(seed: number) { this.a = seed >>> 0; }
  next(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number { return Math.min(n - 1, Math.floor(this.next() * n)); }
  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number { return lo + (hi - lo) * this.next(); }
  /** Exponential with the given mean. */
  exp(mean: number): number { return -Math.log(1 - this.next()) * mean; }
  /** Picks an entry by its `share` weight. */
  pick<T extends { share: number }>(items: readonly T[]): T {
    let total = 0;
    for (const it of items) total += it.share;
    let x = this.next() * total;
    for (const it of items) { x -= it.share; if (x < 0) return it; }
    return items[items.length - 1];
  }
}
