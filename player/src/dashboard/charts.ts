/** uPlot charts of the dashboard (DOM side; the data comes from shape.ts). */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { ChannelSeries, Distribution } from '../../../tracker/stats/types.js';
import { audienceData, cdfData, formatBps, formatMs, formatPercent, offloadData, stackedSourceData } from './shape.js';

const C = { peers: '#3ecf8e', originPeer: '#f5b942', http: '#ef6f6c', accent: '#5cc8ff', muted: '#9aa3b2', grid: '#262c36', seeder: '#b48cff' };
const axis = (extra: Partial<uPlot.Axis> = {}): uPlot.Axis => ({
  stroke: C.muted, grid: { stroke: C.grid, width: 1 }, ticks: { stroke: C.grid, width: 1 }, font: '11px system-ui, sans-serif', ...extra,
});
const fill = (hex: string, a: number) => `${hex}${Math.round(a * 255).toString(16).padStart(2, '0')}`;
/** Time axes span at least 45 s, so a young channel's first points are not stretched wide. */
const timeScale: uPlot.Scale = { time: true, range: (_u, min, max) => [Math.min(min, max - 45), max] };
const noPoints = { show: false } as const;
const bpsAxis = (u: uPlot, vals: number[]) => vals.map((v) => formatBps(v).replace('bit/s', 'b/s'));

/** A uPlot that follows its container's width. */
class Chart {
  readonly plot: uPlot;
  constructor(private readonly el: HTMLElement, opts: Omit<uPlot.Options, 'width' | 'height'>, data: uPlot.AlignedData) {
    const size = () => ({ width: Math.max(120, el.clientWidth), height: Math.max(80, el.clientHeight - legendHeight(el)) });
    this.plot = new uPlot({ ...opts, ...size() } as uPlot.Options, data, el);
    new ResizeObserver(() => this.plot.setSize(size())).observe(el);
  }
  set(data: uPlot.AlignedData): void {
    this.plot.setData(data);
  }
}

function legendHeight(el: HTMLElement): number {
  const legend = el.querySelector('.u-legend') as HTMLElement | null;
  return legend ? legend.offsetHeight + 4 : 26;
}

export class DashboardCharts {
  private readonly sources: Chart;
  private readonly offload: Chart;
  private readonly audience: Chart;
  private readonly cdfs: Record<'startup' | 'latency' | 'rebuffer', Chart>;
  private raw: [number[], number[], number[], number[]] = [[], [], [], []];

  constructor(els: { sources: HTMLElement; offload: HTMLElement; audience: HTMLElement; startup: HTMLElement; latency: HTMLElement; rebuffer: HTMLElement }) {
    // Stacked bands: each series is drawn over the previous one; the legend shows each source's own rate.
    const own = (i: number) => (_u: uPlot, _v: number | null, _si: number, idx: number | null) => {
      if (idx === null) return '–';
      const [, total, mid, low] = this.raw;
      const v = i === 1 ? total[idx] - mid[idx] : i === 2 ? mid[idx] - low[idx] : low[idx];
      return formatBps(v);
    };
    this.sources = new Chart(els.sources, {
      scales: { x: timeScale, y: { range: (_u, _min, max) => [0, Math.max(max, 1000)] } },
      axes: [axis(), axis({ values: bpsAxis, size: 72 })],
      series: [
        {},
        { label: 'HTTP', points: noPoints, stroke: C.http, fill: fill(C.http, 0.55), width: 1, value: own(1) },
        { label: 'origin peer', points: noPoints, stroke: C.originPeer, fill: fill(C.originPeer, 0.6), width: 1, value: own(2) },
        { label: 'peers', points: noPoints, stroke: C.peers, fill: fill(C.peers, 0.65), width: 1, value: own(3) },
      ],
      cursor: { points: { show: false } },
    }, [[], [], [], []]);
    this.offload = new Chart(els.offload, {
      scales: { x: timeScale, pct: { range: [0, 100] }, bps: { range: (_u, _min, max) => [0, Math.max(max, 1000)] } },
      axes: [axis(), axis({ scale: 'pct', values: (_u, v) => v.map((x) => `${x}%`), size: 44 }), axis({ scale: 'bps', side: 1, values: bpsAxis, size: 72, grid: { show: false } })],
      series: [
        {},
        { label: 'offload', points: noPoints, scale: 'pct', stroke: C.peers, width: 2, value: (_u, v) => (v === null ? '–' : `${v.toFixed(1)} %`) },
        { label: 'best possible', points: noPoints, scale: 'pct', stroke: C.muted, width: 1, dash: [4, 4], value: (_u, v) => (v === null ? '–' : `${v.toFixed(0)} %`) },
        { label: 'origin up', points: noPoints, scale: 'bps', stroke: C.http, width: 1.5, value: (_u, v) => formatBps(v) },
      ],
    }, [[], [], [], []]);
    this.audience = new Chart(els.audience, {
      scales: { x: timeScale, y: { range: (_u, _min, max) => [0, Math.max(4, Math.ceil(max * 1.2))] } },
      axes: [axis(), axis({ size: 36 })],
      series: [
        {},
        { label: 'viewers', points: noPoints, stroke: C.peers, width: 2, paths: uPlot.paths.stepped!({ align: 1 }) },
        { label: 'seeders', points: noPoints, stroke: C.seeder, width: 2, paths: uPlot.paths.stepped!({ align: 1 }) },
      ],
    }, [[], [], []]);
    const cdf = (el: HTMLElement, unit: string, fmt: (v: number) => string) =>
      new Chart(el, {
        legend: { show: false },
        scales: { x: { time: false }, y: { range: [0, 100] } },
        axes: [axis({ values: (_u, v) => v.map(fmt), size: 28 }), axis({ values: (_u, v) => v.map((x) => `${x}%`), size: 48 })],
        series: [{ label: unit }, { label: 'viewers', points: noPoints, stroke: C.accent, fill: fill(C.accent, 0.15), width: 2, paths: uPlot.paths.stepped!({ align: 1 }) }],
      }, [[], []]);
    this.cdfs = {
      startup: cdf(els.startup, 's', (v) => `${+v.toFixed(2)}s`),
      latency: cdf(els.latency, 's', (v) => `${+v.toFixed(1)}s`),
      rebuffer: cdf(els.rebuffer, '%', (v) => `${+v.toFixed(1)}%`),
    };
  }

  update(series: ChannelSeries, bound: number | null, qos: { startupMs: Distribution; latencyMs: Distribution; rebufferingRatio: Distribution }): void {
    this.raw = stackedSourceData(series);
    this.sources.set(this.raw);
    this.offload.set(offloadData(series, bound));
    this.audience.set(audienceData(series));
    this.cdfs.startup.set(cdfData(qos.startupMs, 1 / 1000));
    this.cdfs.latency.set(cdfData(qos.latencyMs, 1 / 1000));
    this.cdfs.rebuffer.set(cdfData(qos.rebufferingRatio, 100));
  }
}

/** Percentile table cells of one distribution. */
export function percentileTable(d: Distribution, fmt: (v: number | null) => string): string {
  const cols: Array<[string, number | null]> = [['n', d.count], ['p10', d.p10], ['p50', d.p50], ['p90', d.p90], ['p99', d.p99], ['max', d.max]];
  return `<tr>${cols.map(([k]) => `<th>${k}</th>`).join('')}</tr><tr>${cols.map(([k, v]) => `<td>${k === 'n' ? String(v) : fmt(v)}</td>`).join('')}</tr>`;
}

export const fmtMs = (v: number | null) => formatMs(v);
export const fmtRatio = (v: number | null) => formatPercent(v, 2);
