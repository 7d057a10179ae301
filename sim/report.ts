/**
 * Turns WorldResults into the report: a JSON document (deterministic: no wall-clock figures) and
 * a self-contained HTML page with SVG charts. Performance figures (wall time, memory) are kept
 * apart (perf.json) so that the same seed gives the same report byte for byte.
 */
import type { Scenario } from './scenario.js';
import type { DisseminationRow, PeerFinal, SeriesRow, WorldResult } from './world.js';

export interface Dist { n: number; mean: number | null; p10: number | null; p50: number | null; p90: number | null; p99: number | null; max: number | null }

export interface UploadClassRow {
  uploadKbps: number;
  viewers: number;
  /** Bytes from non-origin peers / all bytes the class received. */
  offload: number | null;
  /** HTTP bytes / all bytes the class received. */
  httpShare: number | null;
  /** Bytes the class uploaded / bytes it received. */
  uploadRatio: number | null;
  /** Share of the class with a parent at the end, and their mean depth. */
  fed: number | null;
  depthMean: number | null;
}

/** One row per distinct upload capacity, ascending. */
function byUploadClass(f: PeerFinal[]): UploadClassRow[] {
  const classes = [...new Set(f.map((x) => x.uploadKbps))].sort((a, b) => a - b);
  return classes.map((u) => {
    const c = f.filter((x) => x.uploadKbps === u);
    const got = c.reduce((a, x) => a + x.fromPeers + x.fromOriginPeer + x.fromHttp, 0);
    const fed = c.filter((x) => x.depth !== null);
    return {
      uploadKbps: u,
      viewers: c.length,
      offload: got > 0 ? r3(c.reduce((a, x) => a + x.fromPeers, 0) / got) : null,
      httpShare: got > 0 ? r3(c.reduce((a, x) => a + x.fromHttp, 0) / got) : null,
      uploadRatio: got > 0 ? r3(c.reduce((a, x) => a + x.uploaded, 0) / got) : null,
      fed: c.length ? r3(fed.length / c.length) : null,
      depthMean: fed.length ? r3(fed.reduce((a, x) => a + x.depth!, 0) / fed.length) : null,
    };
  });
}

export interface VariantReport {
  variant: string;
  viewersCreated: number;
  viewersStarted: number;
  offload: number | null;
  bytesMB: { fromPeers: number; fromOriginPeer: number; fromHttp: number; originPeerUpload: number; httpUpload: number; originTotal: number; turn: number };
  /** HTTP bytes of completed loads by the viewer's load (WorldResult.httpByLoad), MB. */
  httpByLoadMB: { init: number; first: number; second: number; third: number; later: number };
  /** Time averages over the samples (watching viewers). */
  fluidBound: number | null;
  offloadBound: number | null;
  startupS: Dist;
  rebufferRatio: Dist;
  /** Share of viewers that ever stalled after starting. */
  viewersWithStalls: number | null;
  latencyS: Dist;
  dissemination: {
    segmentsMeasured: number;
    /** Medians over tracked segments of the time (s) for piece 0 / the whole segment to reach 50/90/99% of the viewers. */
    piece: [number | null, number | null, number | null];
    segment: [number | null, number | null, number | null];
    /** Segments whose piece 0 did not reach 99% within the horizon. */
    piece99Missed: number;
    /** ceil(log2(N+1)) x (piece transmission time at the median viewer upload + median one-way latency), s. */
    log2Bound: number | null;
    log2BoundNoLatency: number | null;
    meanEligible: number | null;
  };
  totals: WorldResult['totals'];
  /**
   * Per upload class (the population's upload values): how each class was served and where it
   * sat in the trees when it left; shows whether capacity drifted toward the origin.
   */
  byUpload: UploadClassRow[];
  /** Variant chandelier: what the tracker's loop did (rounds, moves, assignments, relays). */
  optimizer?: WorldResult['optimizer'];
  events: number;
  series: SeriesRow[];
  disseminationRows: DisseminationRow[];
  cdf: { startupS: Array<[number, number]>; rebufferRatio: Array<[number, number]>; latencyS: Array<[number, number]> };
}

export interface Report {
  scenario: Scenario;
  notes: string[];
  variants: VariantReport[];
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;

export function dist(xs: number[]): Dist {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const q = (f: number) => (s.length ? r3(s[Math.min(s.length - 1, Math.floor(f * s.length))]) : null);
  return {
    n: s.length,
    mean: s.length ? r3(s.reduce((a, b) => a + b, 0) / s.length) : null,
    p10: q(0.1), p50: q(0.5), p90: q(0.9), p99: q(0.99), max: s.length ? r3(s[s.length - 1]) : null,
  };
}

/** At most `points` points of the empirical CDF. */
function cdf(xs: number[], points = 60): Array<[number, number]> {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return [];
  const out: Array<[number, number]> = [];
  const step = Math.max(1, Math.floor(s.length / points));
  for (let i = 0; i < s.length; i += step) out.push([r3(s[i]), r3((i + 1) / s.length)]);
  out.push([r3(s[s.length - 1]), 1]);
  return out;
}

function median(xs: Array<number | null>): number | null {
  const s = xs.filter((x): x is number => x !== null).sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : null;
}

function avg(xs: Array<number | null>): number | null {
  const s = xs.filter((x): x is number => x !== null);
  return s.length ? r3(s.reduce((a, b) => a + b, 0) / s.length) : null;
}

export function variantReport(sc: Scenario, w: WorldResult): VariantReport {
  const f: PeerFinal[] = w.finals;
  const started = f.filter((x) => x.startupMs !== null);
  const t = w.totals;
  const total = t.fromPeers + t.fromOriginPeer + t.fromHttp;
  const MB = (x: number) => r3(x / 1e6);
  const rebuf = started.map((x) => (x.watchMs > 0 ? x.stallMs / x.watchMs : 0));
  const rows = w.dissemination;
  const eligible = avg(rows.map((r) => r.eligible));
  const pieceBits = sc.stream.pieceKiB * 1024 * 8;
  const tau = w.medians.uploadKbps > 0 ? pieceBits / (w.medians.uploadKbps * 1000) : null;
  const hops = eligible !== null ? Math.ceil(Math.log2(eligible + 1)) : null;
  return {
    variant: w.variant,
    viewersCreated: w.viewersCreated,
    viewersStarted: started.length,
    offload: total > 0 ? r3(t.fromPeers / total) : null,
    bytesMB: {
      fromPeers: MB(t.fromPeers), fromOriginPeer: MB(t.fromOriginPeer), fromHttp: MB(t.fromHttp),
      originPeerUpload: MB(t.originPeerUpload), httpUpload: MB(t.httpUpload), originTotal: MB(t.originPeerUpload + t.httpUpload),
      turn: MB(t.turnBytes),
    },
    httpByLoadMB: {
      init: MB(w.httpByLoad.init), first: MB(w.httpByLoad.first), second: MB(w.httpByLoad.second),
      third: MB(w.httpByLoad.third), later: MB(w.httpByLoad.later),
    },
    fluidBound: avg(w.series.map((s) => s.fluidBound)),
    offloadBound: avg(w.series.map((s) => s.offloadBound)),
    startupS: dist(started.map((x) => x.startupMs! / 1000)),
    rebufferRatio: dist(rebuf),
    viewersWithStalls: started.length ? r3(started.filter((x) => x.stalls > 0).length / started.length) : null,
    latencyS: dist(f.map((x) => x.latencyS ?? NaN)),
    dissemination: {
      segmentsMeasured: rows.length,
      piece: [0, 1, 2].map((i) => { const m = median(rows.map((r) => r.piece[i])); return m === null ? null : r3(m / 1000); }) as [number | null, number | null, number | null],
      segment: [0, 1, 2].map((i) => { const m = median(rows.map((r) => r.segment[i])); return m === null ? null : r3(m / 1000); }) as [number | null, number | null, number | null],
      piece99Missed: rows.filter((r) => r.piece[2] === null).length,
      log2Bound: hops !== null && tau !== null ? r3(hops * (tau + w.medians.oneWayMs / 1000)) : null,
      log2BoundNoLatency: hops !== null && tau !== null ? r3(hops * tau) : null,
      meanEligible: eligible,
    },
    totals: t,
    byUpload: byUploadClass(f),
    ...(w.optimizer ? { optimizer: w.optimizer } : {}),
    events: w.events,
    series: w.series,
    disseminationRows: rows,
    cdf: { startupS: cdf(started.map((x) => x.startupMs! / 1000)), rebufferRatio: cdf(rebuf), latencyS: cdf(f.map((x) => x.latencyS ?? NaN)) },
  };
}

export const REPORT_NOTES = [
  'Every viewer runs the real peer/core Engine; frames are encoded and decoded by the real codec. Links, NATs, HTTP and the tracker transport are simulated; the tracker\'s peer sampling is the real tracker/registry.ts.',
  'Crypto is replaced by a cheap CryptoProvider (sim/crypto.ts): a fast non-cryptographic 32-byte digest instead of SHA-256 and a digest-based signature that only the sim origin makes instead of Ed25519. Every verification path of the engine still runs.',
  'byteScale K: engine pieces carry 1/K of the modelled bytes; the network charges each PIECE payload byte K times, and byte figures here are modelled bytes (engine bytes x K). Engine upload caps and buffer thresholds are scaled by 1/K accordingly.',
  'Offload = bytes viewers got from non-origin peers / all bytes viewers got (peers + origin root peer + HTTP). Fluid bound = min(1, (u_s + sum u_i) / (N r)); offload bound = min(sum u_i / (N r), 1 - renditions watched / N).',
  'Dissemination: time from the origin publishing a segment until piece 0 (and the whole segment) reached 50/90/99% of the viewers of that rendition that had been in the swarm >= 10 s and stayed until the horizon; log2 bound = ceil(log2(N+1)) x (16 KiB at the median viewer upload + median one-way latency to the origin).',
  'Baselines: mesh-pull = the same engine with push (upload slots) off and the origin acting as a plain seeding peer: random neighbors exchange HAVE buffer maps and pull pieces (CoolStreaming-like). http-only = the same engine without neighbors (every piece over HTTP).',
];

export function buildReport(sc: Scenario, worlds: WorldResult[]): Report {
  return { scenario: sc, notes: REPORT_NOTES, variants: worlds.map((w) => variantReport(sc, w)) };
}

// ================================================================ HTML / SVG

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

interface Line { name: string; points: Array<[number, number]>; dashed?: boolean }

function fmt(x: number): string {
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toFixed(3);
}

export function svgChart(title: string, xLabel: string, yLabel: string, lines: Line[], opts: { yMin?: number; yMax?: number } = {}): string {
  const W = 560, H = 300, L = 60, R = 10, T = 28, B = 42;
  const pts = lines.flatMap((l) => l.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (pts.length === 0) return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="60"><text x="10" y="30">${esc(title)}: no data</text></svg>`;
  let x0 = Math.min(...pts.map((p) => p[0])), x1 = Math.max(...pts.map((p) => p[0]));
  let y0 = opts.yMin ?? Math.min(0, ...pts.map((p) => p[1])), y1 = opts.yMax ?? Math.max(...pts.map((p) => p[1]));
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) y1 = y0 + 1;
  const sx = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y: number) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<text x="${W / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">${esc(title)}</text>`);
  out.push(`<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#333"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#333"/>`);
  for (let i = 0; i <= 4; i++) {
    const yv = y0 + ((y1 - y0) * i) / 4, xv = x0 + ((x1 - x0) * i) / 4;
    out.push(`<line x1="${L}" y1="${sy(yv).toFixed(1)}" x2="${W - R}" y2="${sy(yv).toFixed(1)}" stroke="#eee"/>`);
    out.push(`<text x="${L - 4}" y="${(sy(yv) + 4).toFixed(1)}" text-anchor="end">${fmt(yv)}</text>`);
    out.push(`<text x="${sx(xv).toFixed(1)}" y="${H - B + 14}" text-anchor="middle">${fmt(xv)}</text>`);
  }
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle">${esc(xLabel)}</text>`);
  out.push(`<text x="12" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 12 ${(T + H - B) / 2})">${esc(yLabel)}</text>`);
  lines.forEach((l, i) => {
    const c = COLORS[i % COLORS.length];
    const p = l.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)).map(([x, y]) => `${sx(x).toFixed(1)},${sy(Math.min(y1, Math.max(y0, y))).toFixed(1)}`);
    if (p.length > 0) out.push(`<polyline fill="none" stroke="${c}" stroke-width="1.6"${l.dashed ? ' stroke-dasharray="5,3"' : ''} points="${p.join(' ')}"/>`);
    out.push(`<rect x="${L + 8}" y="${T + 4 + i * 14}" width="10" height="3" fill="${c}"/><text x="${L + 22}" y="${T + 9 + i * 14}">${esc(l.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('');
}

function pct(x: number | null): string { return x === null ? '–' : `${(x * 100).toFixed(1)}%`; }
function num(x: number | null, unit = ''): string { return x === null ? '–' : `${fmt(x)}${unit}`; }

export function renderHtml(rep: Report): string {
  const v = rep.variants;
  const sc = rep.scenario;
  const series = (key: keyof SeriesRow, scale = 1) => v.map((x) => ({
    name: x.variant, points: x.series.map((s) => [s.t, (s[key] as number | null) === null ? NaN : (s[key] as number) * scale] as [number, number]),
  }));
  const rows = v.map((x) => `<tr><td>${x.variant}</td><td>${pct(x.offload)}</td><td>${pct(x.offloadBound)}</td><td>${pct(x.fluidBound)}</td>`
    + `<td>${num(x.bytesMB.originTotal)} MB</td><td>${num(x.bytesMB.originPeerUpload)} / ${num(x.bytesMB.httpUpload)}</td>`
    + `<td>${num(x.startupS.p50)} / ${num(x.startupS.p90)} s</td><td>${num(x.rebufferRatio.mean)} (${pct(x.viewersWithStalls)} stalled)</td>`
    + `<td>${num(x.latencyS.p50)} / ${num(x.latencyS.p90)} s</td>`
    + `<td>${x.dissemination.piece.map((d) => num(d)).join(' / ')} s</td><td>${num(x.dissemination.log2Bound)} s</td></tr>`).join('\n');
  const diss = v.filter((x) => x.disseminationRows.length > 0).map((x) => svgChart(
    `${x.variant}: time for piece 0 to reach 50/90/99% (s) vs log2 N bound`, 'segment published at (s)', 's', [
      ...[0, 1, 2].map((i) => ({ name: `${[50, 90, 99][i]}%`, points: x.disseminationRows.map((r) => [r.t / 1000, r.piece[i] === null ? NaN : r.piece[i]! / 1000] as [number, number]) })),
      { name: 'log2 N bound', dashed: true, points: x.disseminationRows.map((r) => [r.t / 1000, x.dissemination.log2Bound ?? NaN] as [number, number]) },
    ])).join('\n');
  const starling = v.find((x) => x.variant === 'starling') ?? v[0];
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Starling simulation: ${esc(sc.name)}</title>
<style>body{font-family:sans-serif;margin:20px;max-width:1200px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 7px;font-size:13px}
.charts{display:flex;flex-wrap:wrap;gap:8px}pre{background:#f6f6f6;padding:8px;font-size:12px;overflow:auto}</style></head><body>
<h1>Starling simulation: ${esc(sc.name)}</h1>
<p>${sc.population.viewers} viewers (${sc.population.join.pattern} join), ${sc.durationS} s simulated, seed ${sc.seed}, byteScale ${sc.byteScale},
renditions ${sc.stream.renditions.map((r) => `${esc(r.name)} ${r.kbps} kbit/s`).join(', ')}, ${sc.stream.segmentS} s segments, origin upload ${sc.origin.uploadKbps} kbit/s.</p>
<table><tr><th>variant</th><th>offload</th><th>offload bound</th><th>fluid bound</th><th>origin upload</th><th>root peer / HTTP (MB)</th>
<th>startup p50/p90</th><th>rebuffering ratio mean</th><th>behind live p50/p90</th><th>piece 0 to 50/90/99%</th><th>log2 N bound</th></tr>
${rows}</table>
<h2>Per upload class</h2>
${v.filter((x) => x.variant !== 'http-only').map((x) => `<h3>${x.variant}</h3><table><tr><th>upload (kbit/s)</th><th>viewers</th><th>offload</th><th>HTTP share</th><th>uploaded / received</th><th>fed at the end</th><th>mean depth</th></tr>
${x.byUpload.map((c) => `<tr><td>${c.uploadKbps}</td><td>${c.viewers}</td><td>${pct(c.offload)}</td><td>${pct(c.httpShare)}</td><td>${num(c.uploadRatio)}</td><td>${pct(c.fed)}</td><td>${num(c.depthMean)}</td></tr>`).join('\n')}</table>`).join('\n')}
<h2>Over time</h2><div class="charts">
${svgChart('Offload (share of viewer bytes from peers)', 'time (s)', 'share', [...series('offload'), { name: 'offload bound (starling)', dashed: true, points: starling.series.map((s) => [s.t, s.offloadBound ?? NaN] as [number, number]) }, { name: 'fluid bound', dashed: true, points: starling.series.map((s) => [s.t, s.fluidBound ?? NaN] as [number, number]) }], { yMin: 0, yMax: 1 })}
${svgChart('Origin upload: root peer + HTTP (Mbit/s)', 'time (s)', 'Mbit/s', v.map((x) => ({ name: x.variant, points: x.series.map((s) => [s.t, s.originPeerMbps + s.httpMbps] as [number, number]) })))}
${svgChart('Viewers stalled (share of watching)', 'time (s)', 'share', v.map((x) => ({ name: x.variant, points: x.series.map((s) => [s.t, s.watching ? s.stalled / s.watching : NaN] as [number, number]) })), { yMin: 0 })}
${svgChart('Distance behind the live edge, mean (s)', 'time (s)', 's', series('latencyMeanS'))}
${svgChart('Viewers online', 'time (s)', 'viewers', series('online'))}
${svgChart('Neighbors per viewer (mean)', 'time (s)', 'neighbors', series('neighborsMean'))}
</div>
<h2>Distributions per viewer</h2><div class="charts">
${svgChart('Startup time CDF', 'startup (s)', 'share of viewers', v.map((x) => ({ name: x.variant, points: x.cdf.startupS })), { yMin: 0, yMax: 1 })}
${svgChart('Rebuffering ratio CDF', 'stall time / watch time', 'share of viewers', v.map((x) => ({ name: x.variant, points: x.cdf.rebufferRatio })), { yMin: 0, yMax: 1 })}
${svgChart('Distance behind live edge CDF (per-viewer mean)', 's', 'share of viewers', v.map((x) => ({ name: x.variant, points: x.cdf.latencyS })), { yMin: 0, yMax: 1 })}
</div>
<h2>Dissemination</h2><div class="charts">${diss}</div>
<h2>Notes</h2><ul>${rep.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>
<h2>Figures (JSON)</h2><pre>${esc(JSON.stringify(v.map((x) => ({ ...x, series: undefined, disseminationRows: undefined, cdf: undefined })), null, 1))}</pre>
</body></html>
`;
}
