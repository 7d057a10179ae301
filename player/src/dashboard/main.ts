/**
 * The dashboard page: the tracker's live view of a channel (docs/stats-api.md). One Server-Sent
 * Events stream from the tracker (`/api/live`) pushes a snapshot and new events every ~2 s: no
 * polling. Everything but DOM wiring lives in shape.ts (pure, unit-tested).
 *
 * Query parameters: channel=<name>, tracker=<http(s)://host:port> (default: from /config.json's
 * trackerUrl), token=<admin token> (remembered in localStorage, then removed from the URL).
 */
import type { ChannelSnapshot, EventType, FeedEvent, PeerRow, StatsOverview } from '../../../tracker/stats/types.js';
import { EVENT_TYPES } from '../../../tracker/stats/types.js';
import { DashboardCharts, fmtMs, fmtRatio, percentileTable } from './charts.js';
import { OverlayGraph } from './graph.js';
import {
  authMessage, authStateOf, filterEvents, formatBps, formatBytes, formatMs, formatPercent, liveUrl, mergeEvents, nextSort,
  sortRows, trackerHttpBase, type SortKey, type SortState,
} from './shape.js';

const TOKEN_KEY = 'starling.adminToken';
const params = new URLSearchParams(location.search);
const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
};
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

// ---- state
let base = '';
let defaultChannel = '';
let channel = params.get('channel') ?? '';
let token: string | null = params.get('token') ?? localStorage.getItem(TOKEN_KEY);
if (params.has('token')) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  params.delete('token');
  history.replaceState(null, '', `${location.pathname}${params.size ? `?${params}` : ''}`);
}
let source: EventSource | null = null;
let snapshot: ChannelSnapshot | null = null;
let events: FeedEvent[] = [];
let sort: SortState = { key: 'kind', dir: 'asc' };
let selectedTypes = new Set<EventType>();
let selectedPeer: string | null = null;
let retryTimer: ReturnType<typeof setTimeout> | null = null;

const charts = new DashboardCharts({
  sources: $('chart-sources'), offload: $('chart-offload'), audience: $('chart-audience'),
  startup: $('cdf-startup'), latency: $('cdf-latency'), rebuffer: $('cdf-rebuffer'),
});
const graph = new OverlayGraph($('graph'), (title) => ($('graph-info').textContent = title), (peerId) => selectPeer(peerId));

declare global {
  interface Window {
    starlingDashboard?: {
      snapshot(): ChannelSnapshot | null;
      events(): FeedEvent[];
      drawnEdges(): Array<{ from: string; to: string }>;
      drawnNodes(): Array<{ id: string; kind: string }>;
      connection(): string;
    };
  }
}
window.starlingDashboard = {
  snapshot: () => snapshot,
  events: () => events,
  drawnEdges: () => graph.drawnEdges(),
  drawnNodes: () => graph.drawnNodes(),
  connection: () => $('conn').dataset.state ?? '',
};

// ---- connection
function setConn(state: 'connecting' | 'live' | 'reconnecting' | 'error' | 'auth', text?: string): void {
  const el = $('conn');
  el.dataset.state = state;
  el.textContent = text ?? { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', error: 'offline', auth: 'token needed' }[state];
}

function notice(text: string, kind: 'info' | 'error' = 'info'): void {
  const el = $('notice');
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = text === '';
}

function showAuth(message: string | null): void {
  $('auth').hidden = message === null;
  $('auth-msg').textContent = message ?? '';
  if (message !== null) {
    const input = $<HTMLInputElement>('auth-token');
    input.value = token ?? '';
    input.focus();
  }
}

function retry(ms: number): void {
  if (retryTimer) clearTimeout(retryTimer);
  retryTimer = setTimeout(() => void connect(), ms);
}

async function connect(): Promise<void> {
  source?.close();
  source = null;
  setConn('connecting');
  let res: Response;
  try {
    res = await fetch(`${base}/api/stats`, { cache: 'no-store', headers: token ? { authorization: `Bearer ${token}` } : {} });
  } catch {
    setConn('error');
    notice(`Cannot reach the tracker at ${base}; retrying…`, 'error');
    retry(3000);
    return;
  }
  const auth = authStateOf(res.status);
  if (auth === 'missing' || auth === 'wrong') {
    setConn('auth', auth === 'wrong' ? 'wrong token' : 'token needed');
    showAuth(authMessage(auth));
    notice('');
    return;
  }
  if (auth !== 'ok') {
    setConn('error');
    notice(`The tracker answered HTTP ${res.status}; retrying…`, 'error');
    retry(5000);
    return;
  }
  showAuth(null);
  const overview = (await res.json()) as StatsOverview;
  fillChannels(overview);
  if (!channel) channel = defaultChannel || overview.channels[0]?.channel || '';
  if (!channel) {
    notice('No channel has peers yet. Waiting…');
    retry(3000);
    return;
  }
  openLive();
}

function openLive(): void {
  source?.close();
  const es = new EventSource(liveUrl(base, channel, token));
  source = es;
  es.addEventListener('open', () => setConn('live'));
  es.addEventListener('overview', (e) => fillChannels(JSON.parse((e as MessageEvent).data) as StatsOverview));
  es.addEventListener('snapshot', (e) => {
    setConn('live');
    const snap = JSON.parse((e as MessageEvent).data) as ChannelSnapshot | null;
    if (!snap) {
      notice(`Channel “${channel}” has no peers yet. Waiting for them…`);
      return;
    }
    notice('');
    snapshot = snap;
    render(snap);
  });
  es.addEventListener('events', (e) => {
    events = mergeEvents(events, JSON.parse((e as MessageEvent).data) as FeedEvent[]);
    renderFeed();
  });
  es.addEventListener('error', () => {
    if (es.readyState === EventSource.CLOSED) {
      // A refused stream (e.g. the token changed on the tracker): find out why.
      setConn('error');
      retry(2000);
    } else setConn('reconnecting');
  });
}

function fillChannels(o: StatsOverview): void {
  const sel = $<HTMLSelectElement>('channel');
  const names = new Set(o.channels.map((c) => c.channel));
  if (channel) names.add(channel);
  if (defaultChannel) names.add(defaultChannel);
  const list = [...names].sort();
  if (list.join('\n') !== [...sel.options].map((x) => x.value).join('\n')) {
    sel.innerHTML = list.map((n) => `<option value="${esc(n)}">${esc(n)}</option>`).join('');
  }
  sel.value = channel;
}

// ---- rendering
function setText(id: string, text: string): void {
  const el = document.getElementById(id);
  if (el && el.textContent !== text) el.textContent = text;
}

function render(s: ChannelSnapshot): void {
  setText('k-viewers', String(s.viewers));
  setText('k-seeders', String(s.seeders));
  setText('k-offload', formatPercent(s.offload));
  setText('k-window', `(last ${Math.round(s.windowMs / 1000)} s)`);
  setText('k-bound', s.offloadBound === null ? 'best possible –' : `best possible ${formatPercent(s.offloadBound, 0)}`);
  setText('k-offload-total', formatPercent(s.offloadTotal));
  setText('k-origin-up', formatBps(s.originUploadBps));
  setText('k-rebuffer', formatPercent(s.rebufferingRatio, 2));
  setText('k-startup', formatMs(s.startupMsP50));
  setText('k-latency', formatMs(s.latencyMsP50));
  charts.update(s.series, s.offloadBound, s.qos);
  $('q-startup').innerHTML = percentileTable(s.qos.startupMs, fmtMs);
  $('q-latency').innerHTML = percentileTable(s.qos.latencyMs, fmtMs);
  $('q-rebuffer').innerHTML = percentileTable(s.qos.rebufferingRatio, fmtRatio);
  const maxR = Math.max(1, ...s.renditions.map((r) => r.viewers));
  $('renditions').innerHTML = s.renditions.length
    ? s.renditions.map((r) => `<li><span>${esc(r.rendition)}</span><span class="rbar" style="width:${(100 * r.viewers) / maxR}%"></span><b>${r.viewers}</b></li>`).join('')
    : '<li class="muted">no viewer reported a rendition yet</li>';
  graph.update(s.graph);
  renderTable();
}

const COLUMNS: Array<{ key: SortKey; label: string; num: boolean; cell: (r: PeerRow) => string }> = [
  { key: 'peerId', label: 'peer', num: false, cell: (r) => `<td class="id" title="${esc(r.peerId)}">${esc(r.peerId)}</td>` },
  { key: 'kind', label: 'kind', num: false, cell: (r) => `<td><span class="kind ${r.kind}">${r.kind}</span></td>` },
  { key: 'region', label: 'region', num: false, cell: (r) => `<td>${esc(r.region ?? '–')}</td>` },
  { key: 'nat', label: 'NAT', num: false, cell: (r) => `<td>${esc(r.nat ?? '–')}</td>` },
  { key: 'rendition', label: 'rendition', num: false, cell: (r) => `<td>${esc(r.rendition ?? '–')}</td>` },
  { key: 'neighbors', label: 'neighbors', num: true, cell: (r) => `<td>${r.neighbors}</td>` },
  { key: 'upBps', label: 'up', num: true, cell: (r) => `<td>${formatBps(r.upBps)}</td>` },
  { key: 'downBps', label: 'down', num: true, cell: (r) => `<td>${formatBps(r.downBps)}</td>` },
  { key: 'bytesShared', label: 'shared', num: true, cell: (r) => `<td>${formatBytes(r.bytesShared)}</td>` },
  { key: 'offload', label: 'offload', num: true, cell: (r) => `<td>${formatPercent(r.offload, 0)}</td>` },
  { key: 'badPiecesSent', label: 'bad sent', num: true, cell: (r) => `<td>${r.badPiecesSent}</td>` },
  { key: 'trust', label: 'trust', num: true, cell: (r) => `<td>${r.trust.toFixed(2)}</td>` },
  { key: 'bufferMs', label: 'buffer', num: true, cell: (r) => `<td>${formatMs(r.bufferMs)}</td>` },
  { key: 'latencyMs', label: 'behind live', num: true, cell: (r) => `<td>${formatMs(r.latencyMs)}</td>` },
  { key: 'stalls', label: 'stalls', num: true, cell: (r) => `<td>${r.stalls ?? '–'}</td>` },
];

function renderHead(): void {
  const tr = document.querySelector('#peers thead tr')!;
  tr.innerHTML = COLUMNS.map((c) => `<th data-key="${c.key}"${sort.key === c.key ? ` data-sort="${sort.dir === 'asc' ? '▲' : '▼'}"` : ''} scope="col">${c.label}</th>`).join('');
}

function renderTable(): void {
  if (!snapshot) return;
  const rows = sortRows(snapshot.peers, sort);
  setText('peer-count', `${snapshot.viewers} viewers · ${snapshot.seeders} seeders · ${snapshot.origins} origin`);
  document.querySelector('#peers tbody')!.innerHTML = rows
    .map((r) => `<tr data-peer="${esc(r.peerId)}"${r.trust < 1 ? ' class="warn"' : ''}${r.peerId === selectedPeer ? ' aria-selected="true"' : ''}>${COLUMNS.map((c) => c.cell(r)).join('')}</tr>`)
    .join('');
}

function effectiveFilter(): string {
  const parts: string[] = [];
  if (selectedTypes.size) parts.push(`type:${[...selectedTypes].join(',')}`);
  if (selectedPeer) parts.push(`peer:${selectedPeer}`);
  parts.push($<HTMLInputElement>('feed-filter').value);
  return parts.join(' ').trim();
}

function renderFeed(): void {
  const { events: shown, error } = filterEvents(events, effectiveFilter(), 300);
  const err = $('feed-error');
  err.hidden = error === null;
  err.textContent = error ? `Filter: ${error}` : '';
  const fmtTime = (t: number) => new Date(t).toLocaleTimeString([], { hour12: false });
  $('feed').innerHTML = shown.length
    ? shown.map((e) => `<li><time>${fmtTime(e.t)}</time><span class="t t-${e.type}">${e.type}</span><span class="msg" title="${esc(e.text)}">${esc(e.text)}</span></li>`).join('')
    : `<li class="muted"><span></span><span></span><span>${events.length ? 'no event matches the filter' : 'no events yet'}</span></li>`;
}

function renderChips(): void {
  const shownTypes: EventType[] = EVENT_TYPES.filter((t) => t !== 'report-dropped');
  $('feed-chips').innerHTML =
    shownTypes.map((t) => `<button type="button" class="chip" data-type="${t}" aria-pressed="${selectedTypes.has(t)}">${t}</button>`).join('') +
    (selectedPeer ? `<button type="button" class="chip" data-peer="1" aria-pressed="true">peer ${esc(selectedPeer.slice(0, 8))} ✕</button>` : '');
}

function selectPeer(peerId: string | null): void {
  selectedPeer = peerId;
  graph.select(peerId);
  renderChips();
  renderFeed();
  renderTable();
}

// ---- interactions
$('peers').addEventListener('click', (e) => {
  const th = (e.target as HTMLElement).closest('th');
  if (th?.dataset.key) {
    const col = COLUMNS.find((c) => c.key === th.dataset.key)!;
    sort = nextSort(sort, col.key, col.num);
    renderHead();
    renderTable();
    return;
  }
  const tr = (e.target as HTMLElement).closest('tr');
  if (tr?.dataset.peer) selectPeer(tr.dataset.peer === selectedPeer ? null : tr.dataset.peer);
});
$('feed-chips').addEventListener('click', (e) => {
  const b = (e.target as HTMLElement).closest('button');
  if (!b) return;
  if (b.dataset.peer) selectPeer(null);
  else if (b.dataset.type) {
    const t = b.dataset.type as EventType;
    if (selectedTypes.has(t)) selectedTypes.delete(t);
    else selectedTypes.add(t);
    selectedTypes = new Set(selectedTypes);
    renderChips();
    renderFeed();
  }
});
$('feed-filter').addEventListener('input', () => renderFeed());
$<HTMLSelectElement>('channel').addEventListener('change', (e) => {
  channel = (e.target as HTMLSelectElement).value;
  const q = new URLSearchParams(location.search);
  q.set('channel', channel);
  history.replaceState(null, '', `${location.pathname}?${q}`);
  $<HTMLAnchorElement>('watch-link').href = `./watch.html?channel=${encodeURIComponent(channel)}`;
  events = [];
  snapshot = null;
  selectPeer(null);
  openLive();
});
$('auth-form').addEventListener('submit', (e) => {
  e.preventDefault();
  token = $<HTMLInputElement>('auth-token').value.trim() || null;
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
  void connect();
});
$('token-btn').addEventListener('click', () => showAuth($('auth').hidden ? 'Admin token for this tracker (leave empty if none is configured):' : null));

// ---- start
async function main(): Promise<void> {
  renderHead();
  renderChips();
  renderFeed();
  let trackerParam = params.get('tracker');
  try {
    const res = await fetch(new URL('/config.json', location.origin).href, { cache: 'no-store' });
    if (res.ok) {
      const cfg = (await res.json()) as { trackerUrl?: string; defaultChannel?: string };
      defaultChannel = cfg.defaultChannel ?? '';
      trackerParam ??= cfg.trackerUrl ?? null;
    }
  } catch {
    // no origin config: need ?tracker=
  }
  if (!trackerParam) {
    setConn('error');
    notice('No tracker configured: open this page from the origin, or add ?tracker=http://HOST:8000', 'error');
    return;
  }
  base = trackerHttpBase(trackerParam);
  if (channel) $<HTMLAnchorElement>('watch-link').href = `./watch.html?channel=${encodeURIComponent(channel)}`;
  await connect();
}

main().catch((err: unknown) => {
  setConn('error');
  notice(`Dashboard failed: ${err instanceof Error ? err.message : String(err)}`, 'error');
});
