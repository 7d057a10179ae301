/**
 * Data shaping of the dashboard, separated from the DOM (pure; unit-tested): snapshots from the
 * tracker's live feed -> uPlot data arrays, Cytoscape element diffs, sorted table rows, filtered
 * events, formatted figures.
 */
import type { ChannelSeries, Distribution, FeedEvent, GraphEdge, GraphNode, Kind, PeerRow } from '../../../tracker/stats/types.js';
import { parsePredicate } from '../../../tracker/stats/predicate.js';

// ---------------------------------------------------------------- formatting

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Math.max(0, n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? Math.round(v) : v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}

/** Bytes per second as bits per second (how links are usually quoted). */
export function formatBps(bytesPerSec: number | null | undefined): string {
  if (bytesPerSec === null || bytesPerSec === undefined || !Number.isFinite(bytesPerSec)) return '–';
  const bits = Math.max(0, bytesPerSec) * 8;
  if (bits >= 1e9) return `${(bits / 1e9).toFixed(1)} Gbit/s`;
  if (bits >= 1e6) return `${(bits / 1e6).toFixed(bits >= 1e8 ? 0 : 1)} Mbit/s`;
  if (bits >= 1e3) return `${(bits / 1e3).toFixed(bits >= 1e5 ? 0 : 1)} kbit/s`;
  return `${Math.round(bits)} bit/s`;
}

export function formatPercent(r: number | null | undefined, digits = 1): string {
  if (r === null || r === undefined || !Number.isFinite(r)) return '–';
  return `${(r * 100).toFixed(digits)} %`;
}

export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  if (Math.abs(ms) >= 10_000) return `${(ms / 1000).toFixed(0)} s`;
  if (Math.abs(ms) >= 1000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms)} ms`;
}

export function shortId(id: string, n = 8): string {
  return id.length > n + 1 ? `${id.slice(0, n)}…` : id;
}

// ---------------------------------------------------------------- connection

/** The tracker's HTTP base from its WebSocket URL (ws://h:p/ws -> http://h:p). */
export function trackerHttpBase(trackerUrl: string): string {
  const u = new URL(trackerUrl);
  const proto = u.protocol === 'wss:' || u.protocol === 'https:' ? 'https:' : 'http:';
  return `${proto}//${u.host}`;
}

export type AuthState = 'ok' | 'missing' | 'wrong' | 'error';

/** What an HTTP status of the stats API means for the token prompt. */
export function authStateOf(status: number): AuthState {
  if (status === 401) return 'missing';
  if (status === 403) return 'wrong';
  return status >= 200 && status < 300 ? 'ok' : 'error';
}

export function authMessage(state: AuthState): string {
  switch (state) {
    case 'missing': return 'This tracker requires an admin token. Enter it to see the swarm.';
    case 'wrong': return 'The admin token was refused: it is wrong. Check it and try again.';
    case 'error': return 'The tracker could not be reached.';
    default: return '';
  }
}

/** Live feed URL (EventSource cannot send headers: the token goes in the query). */
export function liveUrl(base: string, channel: string, token: string | null, filter = ''): string {
  const q = new URLSearchParams({ channel });
  if (token) q.set('token', token);
  if (filter) q.set('filter', filter);
  return `${base}/api/live?${q}`;
}

// ---------------------------------------------------------------- charts (uPlot data)

/**
 * Stacked bytes/s by source, as uPlot wants it: [t, total, originPeer+peers, peers] (drawn in
 * that order, each filled, so the bands read peers / origin peer / HTTP from the bottom up).
 */
export function stackedSourceData(s: ChannelSeries): [number[], number[], number[], number[]] {
  const total: number[] = [], mid: number[] = [], low: number[] = [];
  for (let i = 0; i < s.t.length; i++) {
    const p = s.peersBps[i] ?? 0, o = s.originPeerBps[i] ?? 0, h = s.httpBps[i] ?? 0;
    low.push(p);
    mid.push(p + o);
    total.push(p + o + h);
  }
  return [s.t.slice(), total, mid, low];
}

/** [t, offload %, bound %, origin upload bytes/s]. */
export function offloadData(s: ChannelSeries, bound: number | null): [number[], Array<number | null>, Array<number | null>, number[]] {
  return [
    s.t.slice(),
    s.offload.map((v) => (v === null ? null : v * 100)),
    s.t.map(() => (bound === null ? null : bound * 100)),
    s.originUploadBps.slice(),
  ];
}

export function audienceData(s: ChannelSeries): [number[], Array<number | null>, Array<number | null>] {
  return [s.t.slice(), s.viewers.slice(), s.seeders.slice()];
}

/** CDF of a distribution as [x (scaled), y (% of viewers)], with a leading 0 point. */
export function cdfData(d: Distribution, scale = 1): [number[], number[]] {
  if (d.count === 0) return [[], []];
  const xs = [d.cdf[0][0] * scale];
  const ys = [0];
  for (const [x, f] of d.cdf) {
    xs.push(x * scale);
    ys.push(f * 100);
  }
  return [xs, ys];
}

// ---------------------------------------------------------------- graph (Cytoscape elements)

export const KIND_COLORS: Record<Kind, string> = { origin: '#5cc8ff', seeder: '#b48cff', browser: '#3ecf8e' };

export interface NodeData {
  id: string;
  kind: Kind;
  label: string;
  color: string;
  /** Diameter in px: grows with upload used. */
  size: number;
  /** 0..1: upload used / capacity (border); -1 when the capacity is unknown. */
  load: number;
  depth: number;
  title: string;
}

export interface EdgeData {
  id: string;
  source: string;
  target: string;
  width: number;
  upload: boolean;
  active: boolean;
  title: string;
}

export function nodeData(n: GraphNode): NodeData {
  const mbit = (n.upBps * 8) / 1e6;
  const base = n.kind === 'origin' ? 34 : n.kind === 'seeder' ? 26 : 18;
  const label = n.kind === 'origin' ? 'origin' : `${shortId(n.id, 6)}${n.rendition ? ` · ${n.rendition}` : ''}`;
  const load = n.capacityBps && n.capacityBps > 0 ? Math.min(1, n.upBps / n.capacityBps) : -1;
  const parts = [`${n.kind} ${n.id}`, n.rendition ? `rendition ${n.rendition}` : null, `NAT ${n.nat ?? 'unknown'}`,
    `upload ${formatBps(n.upBps)}${n.capacityBps ? ` of ${formatBps(n.capacityBps)}` : ''}`, n.region ? `region ${n.region}` : null];
  return {
    id: n.id, kind: n.kind, label, color: KIND_COLORS[n.kind],
    size: Math.round(base + Math.min(22, Math.sqrt(Math.max(0, mbit)) * 6)),
    load, depth: n.depth ?? 99, title: parts.filter(Boolean).join('\n'),
  };
}

export function edgeData(e: GraphEdge): EdgeData {
  const mbit = (e.bps * 8) / 1e6;
  return {
    id: `${e.from}>${e.to}`, source: e.from, target: e.to,
    width: Math.round((1 + Math.min(7, Math.sqrt(Math.max(0, mbit)) * 2)) * 10) / 10,
    upload: e.upload, active: e.bps > 0,
    title: `${e.from} → ${e.to}: ${formatBps(e.bps)}, ${formatBytes(e.bytes)} total${e.upload ? ' (upload link)' : ''}`,
  };
}

export interface GraphDiff {
  addNodes: NodeData[];
  updateNodes: NodeData[];
  removeNodes: string[];
  addEdges: EdgeData[];
  updateEdges: EdgeData[];
  removeEdges: string[];
  /** The node set or the depths changed: the layout must run again. */
  relayout: boolean;
}

/** What to change in the drawn graph (current: id -> data as drawn) to show `next`. */
export function diffGraph(
  current: { nodes: Map<string, NodeData>; edges: Map<string, EdgeData> },
  next: { nodes: GraphNode[]; edges: GraphEdge[] },
): GraphDiff {
  const d: GraphDiff = { addNodes: [], updateNodes: [], removeNodes: [], addEdges: [], updateEdges: [], removeEdges: [], relayout: false };
  const nodeIds = new Set<string>();
  for (const n of next.nodes) {
    const nd = nodeData(n);
    nodeIds.add(nd.id);
    const cur = current.nodes.get(nd.id);
    if (!cur) {
      d.addNodes.push(nd);
      d.relayout = true;
    } else if (!sameData(cur, nd)) {
      d.updateNodes.push(nd);
      if (cur.depth !== nd.depth) d.relayout = true;
    }
  }
  for (const id of current.nodes.keys()) if (!nodeIds.has(id)) (d.removeNodes.push(id), (d.relayout = true));
  const edgeIds = new Set<string>();
  for (const e of next.edges) {
    if (!nodeIds.has(e.from) || !nodeIds.has(e.to)) continue;
    const ed = edgeData(e);
    edgeIds.add(ed.id);
    const cur = current.edges.get(ed.id);
    if (!cur) d.addEdges.push(ed);
    else if (!sameData(cur, ed)) d.updateEdges.push(ed);
  }
  for (const id of current.edges.keys()) if (!edgeIds.has(id)) d.removeEdges.push(id);
  return d;
}

function sameData(a: object, b: object): boolean {
  const ra = a as Record<string, unknown>, rb = b as Record<string, unknown>;
  for (const k of Object.keys(rb)) if (ra[k] !== rb[k]) return false;
  return true;
}

// ---------------------------------------------------------------- table

export type SortKey = keyof PeerRow;
export interface SortState {
  key: SortKey;
  dir: 'asc' | 'desc';
}

/** Sorted copy; nulls last whatever the direction; ties by peer id. */
export function sortRows(rows: readonly PeerRow[], s: SortState): PeerRow[] {
  const sign = s.dir === 'asc' ? 1 : -1;
  return rows.slice().sort((a, b) => {
    const x = a[s.key], y = b[s.key];
    if (x === null || x === undefined) return y === null || y === undefined ? a.peerId.localeCompare(b.peerId) : 1;
    if (y === null || y === undefined) return -1;
    const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
    return c !== 0 ? sign * c : a.peerId.localeCompare(b.peerId);
  });
}

/** Clicking a column: same key flips the direction, a new key starts descending for numbers. */
export function nextSort(cur: SortState, key: SortKey, numeric: boolean): SortState {
  if (cur.key === key) return { key, dir: cur.dir === 'asc' ? 'desc' : 'asc' };
  return { key, dir: numeric ? 'desc' : 'asc' };
}

// ---------------------------------------------------------------- event feed

/** Events satisfying the filter (newest first), or the parse error. */
export function filterEvents(events: readonly FeedEvent[], filter: string, limit = 300): { events: FeedEvent[]; error: string | null } {
  const p = parsePredicate(filter);
  if (!p.ok) return { events: [], error: p.error };
  const out: FeedEvent[] = [];
  for (let i = events.length - 1; i >= 0 && out.length < limit; i--) if (p.test(events[i])) out.push(events[i]);
  return { events: out, error: null };
}

/** Appends new events (by id, no duplicates), keeping the newest `max`. */
export function mergeEvents(have: FeedEvent[], incoming: readonly FeedEvent[], max = 1000): FeedEvent[] {
  const last = have.length ? have[have.length - 1].id : 0;
  const fresh = incoming.filter((e) => e.id > last);
  const all = fresh.length ? have.concat(fresh) : have;
  return all.length > max ? all.slice(all.length - max) : all;
}
