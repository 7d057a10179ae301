/** Runs every variant of a scenario and builds the report (used by the CLI and the tests). */
import { buildReport, renderHtml, type Report } from './report.js';
import type { Scenario, Variant } from './scenario.js';
import { World, type Progress, type WorldResult } from './world.js';

export interface VariantPerf {
  variant: Variant; wallMs: number; simMs: number; ratio: number; events: number; peakRssMiB: number; peakHeapMiB: number;
  /** Frames delivered on data channels by message type: where the simulator's work per viewer goes. */
  frames: Record<string, number>;
  /** Variant chandelier: wall time of the optimizer's rounds (ms). */
  optimizerSolveMs?: { rounds: number; mean: number; p99: number; max: number };
}

export interface RunOutput { report: Report; json: string; html: string; perf: VariantPerf[] }

export async function runScenario(
  sc: Scenario,
  opts: {
    variants?: Variant[];
    onProgress?: (v: Variant, p: Progress, wallMs: number) => void;
    /** Between samples, every 65,536 events: simulated seconds, events, wall ms. */
    onTick?: (v: Variant, t: number, events: number, wallMs: number) => void;
  } = {},
): Promise<RunOutput> {
  const worlds: WorldResult[] = [];
  const perf: VariantPerf[] = [];
  for (const v of opts.variants ?? sc.variants) {
    const start = performance.now();
    let peakRss = process.memoryUsage().rss;
    let peakHeap = process.memoryUsage().heapUsed;
    const w = new World(sc, v, (p) => {
      const m = process.memoryUsage();
      if (m.rss > peakRss) peakRss = m.rss;
      if (m.heapUsed > peakHeap) peakHeap = m.heapUsed;
      opts.onProgress?.(v, p, performance.now() - start);
    });
    if (opts.onTick) w.onTick = (t, events) => opts.onTick!(v, t, events, performance.now() - start);
    const res = await w.run();
    const solve = [...w.optimizerWallMs].sort((a, b) => a - b);
    const r1 = (x: number) => Math.round(x * 10) / 10;
    const optimizerSolveMs = solve.length ? {
      rounds: solve.length, mean: r1(solve.reduce((a, b) => a + b, 0) / solve.length),
      p99: r1(solve[Math.min(solve.length - 1, Math.floor(0.99 * solve.length))]), max: r1(solve[solve.length - 1]),
    } : undefined;
    const m = process.memoryUsage();
    if (m.rss > peakRss) peakRss = m.rss;
    const wallMs = performance.now() - start;
    worlds.push(res);
    perf.push({
      variant: v, wallMs: Math.round(wallMs), simMs: sc.durationS * 1000, ratio: Math.round((sc.durationS * 1000 / wallMs) * 100) / 100,
      events: res.events, peakRssMiB: Math.round(peakRss / 1048576), peakHeapMiB: Math.round(peakHeap / 1048576), frames: res.frames, optimizerSolveMs,
    });
  }
  const report = buildReport(sc, worlds);
  return { report, json: `${JSON.stringify(report, null, 1)}\n`, html: renderHtml(report), perf };
}
