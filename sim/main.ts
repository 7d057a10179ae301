/**
 * npm run sim -- sim/scenarios/<name>.json [--out DIR] [--variants starling,mesh-pull]
 *   [--seed N | --seeds N,M,...] [--viewers N] [--duration S] [--quiet]
 * Prints progress, writes DIR/report.json + DIR/report.html (deterministic) and DIR/perf.json
 * (wall time, simulated/wall ratio, peak memory, frames delivered by message type). DIR defaults to sim/out/<scenario name>.
 * With --seeds: DIR/seed-<N>/ for each seed, and DIR/seeds.json, the summary over seeds
 * (mean, spread, paired differences against the first variant), printed as a table.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Report } from './report.js';
import { runScenario } from './run.js';
import { parseScenario, type Scenario, type Variant } from './scenario.js';
import { formatSeedSummary, summarizeSeeds } from './seeds.js';

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      out: { type: 'string' }, variants: { type: 'string' }, seed: { type: 'string' }, seeds: { type: 'string' },
      viewers: { type: 'string' }, duration: { type: 'string' }, quiet: { type: 'boolean' },
    },
  });
  const file = positionals[0];
  if (!file) {
    process.stderr.write(`${USAGE}\n`);
    process.exit(2);
  }
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const sc = parseScenario(raw);
  if (values.seed) sc.seed = intArg(values.seed, '--seed');
  if (values.viewers) sc.population.viewers = intArg(values.viewers, '--viewers');
  if (values.duration) sc.durationS = intArg(values.duration, '--duration');
  const variants = values.variants ? (values.variants.split(',') as Variant[]) : sc.variants;
  const out = values.out ?? join('sim', 'out', sc.name || basename(file, '.json'));
  const quiet = values.quiet === true;
  if (!values.seeds) {
    await runOne(sc, variants, out, quiet);
    return;
  }
  // several seeds: one report directory per seed, then the summary over them
  const seeds = values.seeds.split(',').map((x) => intArg(x, '--seeds'));
  const reports: Report[] = [];
  for (const seed of seeds) reports.push(await runOne({ ...sc, seed }, variants, join(out, `seed-${seed}`), quiet));
  const summary = summarizeSeeds(reports);
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'seeds.json'), `${JSON.stringify(summary, null, 1)}\n`);
  process.stdout.write(`\n${formatSeedSummary(summary)}summary: ${join(out, 'seeds.json')}\n`);
}

const USAGE = 'usage: npm run sim -- sim/scenarios/<name>.json [--out DIR] [--variants a,b] [--seed N | --seeds N,M,...] [--viewers N] [--duration S] [--quiet]';

function intArg(v: string, what: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    process.stderr.write(`${what}: not a non-negative integer: ${v}\n${USAGE}\n`);
    process.exit(2);
  }
  return n;
}

async function runOne(sc: Scenario, variants: Variant[], out: string, quiet: boolean): Promise<Report> {
  mkdirSync(out, { recursive: true });
  process.stdout.write(`scenario ${sc.name}: ${sc.population.viewers} viewers, ${sc.durationS} s, seed ${sc.seed}, variants ${variants.join(', ')}\n`);
  let lastPrint = 0;
  let lastTick = 0;
  const res = await runScenario(sc, {
    variants,
    onTick: (v, t, events, wall) => {
      if (quiet || wall - lastTick < 15_000) return;
      lastTick = wall;
      const rss = Math.round(process.memoryUsage().rss / 1048576);
      process.stdout.write(`[${v}] t=${t.toFixed(1)}s wall=${(wall / 1000).toFixed(1)}s events=${events} rss=${rss}MiB\n`);
    },
    onProgress: (v, p, wall) => {
      if (quiet || (wall - lastPrint < 2000 && p.t < sc.durationS)) return;
      lastPrint = wall;
      const rss = Math.round(process.memoryUsage().rss / 1048576);
      process.stdout.write(`[${v}] t=${p.t.toFixed(0)}s/${sc.durationS}s wall=${(wall / 1000).toFixed(1)}s ratio=${(p.t * 1000 / wall).toFixed(2)}x `
        + `online=${p.online} watching=${p.watching} offload=${p.offload === null ? '-' : (p.offload * 100).toFixed(1) + '%'} events=${p.events} rss=${rss}MiB\n`);
    },
  });
  writeFileSync(join(out, 'report.json'), res.json);
  writeFileSync(join(out, 'report.html'), res.html);
  writeFileSync(join(out, 'perf.json'), `${JSON.stringify(res.perf, null, 1)}\n`);
  for (const v of res.report.variants) {
    const d = v.dissemination;
    process.stdout.write(`${v.variant.padEnd(9)} offload ${pct(v.offload)} (bound ${pct(v.offloadBound)}, fluid ${pct(v.fluidBound)})  origin ${v.bytesMB.originTotal} MB  `
      + `startup p50 ${v.startupS.p50}s p90 ${v.startupS.p90}s  rebuffer mean ${v.rebufferRatio.mean}  behind live p50 ${v.latencyS.p50}s  `
      + `piece→50/90/99% ${d.piece.join('/')}s (log2 bound ${d.log2Bound}s)\n`);
    if (v.variant === 'http-only') continue;
    const h = v.httpByLoadMB;
    process.stdout.write(`  HTTP by the viewer's load: first ${h.first} MB, second ${h.second}, third ${h.third}, later ${h.later} (init ${h.init})\n`);
    for (const c of v.byUpload) {
      process.stdout.write(`  upload ${String(c.uploadKbps).padStart(6)} kbit/s: ${String(c.viewers).padStart(6)} viewers  offload ${pct(c.offload)}  http ${pct(c.httpShare)}  `
        + `up/down ${c.uploadRatio ?? '-'}  fed ${pct(c.fed)}  depth ${c.depthMean ?? '-'}\n`);
    }
  }
  for (const p of res.perf) {
    const frames = Object.entries(p.frames).map(([k, n]) => `${k} ${n}`).join(', ');
    if (frames) process.stdout.write(`frames ${p.variant}: ${frames}\n`);
    process.stdout.write(`perf ${p.variant}: ${(p.wallMs / 1000).toFixed(1)} s wall for ${p.simMs / 1000} s simulated = ${p.ratio}x real time, ${p.events} events, peak RSS ${p.peakRssMiB} MiB${p.optimizerSolveMs ? `, optimizer ${p.optimizerSolveMs.rounds} rounds: mean ${p.optimizerSolveMs.mean} ms, p99 ${p.optimizerSolveMs.p99} ms, max ${p.optimizerSolveMs.max} ms` : ''}\n`);
  }
  process.stdout.write(`report: ${join(out, 'report.html')}\n`);
  return res.report;
}

function pct(x: number | null): string { return x === null ? '-' : `${(x * 100).toFixed(1)}%`; }

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
