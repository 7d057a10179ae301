/**
 * StatsHub: the tracker's live picture of each channel, built from peer reports (pure: the wall
 * clock is injected, nothing here does I/O). Fed by the signaling plugin (join, leave, report),
 * read by the stats API, the live feed and /metrics.
 *
 * - Cumulative counters in reports become deltas (a counter that goes backwards restarted: its
 *   new value is the delta), spread over the interval since the peer's previous report into
 *   1-second buckets (BucketSeries), so charts are smooth whatever the report phase.
 * - Offload is over viewers (kind `browser`): bytes from peers / all bytes they received. Origin
 *   upload is the root peer's upload plus every peer's HTTP fetches.
 * - Edges: `from` -> `to` exists while either end's latest report shows bytes sent that way (or a
 *   declared upload link); both ends' figures are merged (the larger wins).
 * - QoS distributions are over the current viewers' latest figures.
 */
import type { ReportBan, ReportLink } from '../../peer/core/signaling.js';
import { distribution, ratio } from './percentiles.js';
import { BucketSeries } from './series.js';
import { parsePredicate, type EventPredicate } from './predicate.js';
import type {
  ChannelSnapshot, ChannelSummary, EventType, FeedEvent, GraphEdge, GraphNode, Kind, PeerRow, StatsOverview,
} from './types.js';

export interface StatsHubOptions {
  /** Wall clock, Unix ms. */
  now: () => number;
  /** Series resolution. Default 1000 ms. */
  bucketMs?: number;
  /** Series kept per channel. Default 30 min. */
  historyMs?: number;
  /** Series length in snapshots. Default 10 min. */
  snapshotHistoryMs?: number;
  /** The "recent" window of offload / origin upload figures. Default 30 s. */
  windowMs?: number;
  /**
   * The newest buckets are incomplete until every peer has reported its traffic for them (one
   * report period): series and windows end this long before now. Default 6000 ms.
   */
  settleMs?: number;
  /** Reports closer together than this are dropped (rate limit). Default 1000 ms. */
  minReportIntervalMs?: number;
  /** Feed events kept (all channels). Default 2000. */
  maxEvents?: number;
  /** Channels tracked at most (empty ones are forgotten first). Default 1000. */
  maxChannels?: number;
}

export interface ReportInput {
  stats: Record<string, number>;
  links?: ReportLink[];
  rendition?: string;
  nat?: string;
  region?: string;
  bans?: ReportBan[];
}

/** What one accepted report added (for Prometheus counters). */
export interface ReportOutcome {
  accepted: boolean;
  reason?: 'too frequent' | 'unknown peer';
  kind?: Kind;
  /** Viewers' received bytes by source (zero for other kinds). */
  fromPeers: number;
  fromOriginPeer: number;
  fromHttp: number;
  /** Origin upload: root peer upload (kind origin) and HTTP fetches (any kind). */
  originPeerUpload: number;
  httpFetched: number;
  stalledMs: number;
  watchMs: number;
  /** The viewer's startup time, the first time it is reported. */
  startupMs: number | null;
  latencyMs: number | null;
  badPieces: number;
  bans: number;
}

type SumField = 'peers' | 'originPeer' | 'http' | 'originUpload';
type GaugeField = 'viewers' | 'seeders';
const SUM_FIELDS: SumField[] = ['peers', 'originPeer', 'http', 'originUpload'];
const GAUGE_FIELDS: GaugeField[] = ['viewers', 'seeders'];

interface LinkState {
  sent: number;
  received: number;
  bad: number;
}

interface PeerState {
  peerId: string;
  kind: Kind;
  joinedAt: number;
  lastReportAt: number | null;
  c: { fromPeers: number; fromOriginPeer: number; fromHttp: number; uploaded: number; stalledMs: number; watchMs: number; stalls: number };
  upBps: number;
  downBps: number;
  neighbors: number;
  rendition: string | null;
  nat: string | null;
  region: string | null;
  capacityBps: number | null;
  startupMs: number | null;
  latencyMs: number | null;
  bufferMs: number | null;
  stalls: number | null;
  links: Map<string, LinkState>;
  /** Keys of the edges this peer's report vouches for. */
  vouched: Set<string>;
}

interface EdgeSide {
  bytes: number;
  bps: number;
  declared: boolean;
}

interface EdgeState {
  from: string;
  to: string;
  /** By vouching peer id (one of the two ends). */
  sides: Map<string, EdgeSide>;
}

interface ChannelState {
  name: string;
  peers: Map<string, PeerState>;
  series: BucketSeries<SumField | GaugeField>;
  totals: { fromPeers: number; fromOriginPeer: number; fromHttp: number; originUpload: number };
  edges: Map<string, EdgeState>;
  /** Edge keys touching each peer. */
  touching: Map<string, Set<string>>;
  badSentBy: Map<string, number>;
  bansAgainst: Map<string, number>;
  lastActive: number;
  /** When the hub first saw the channel (series start no earlier). */
  createdAt: number;
  /** Peers by kind, kept up to date on join/leave (counting them each time was O(peers)). */
  n: { viewers: number; seeders: number; origins: number };
}

type KindCount = keyof ChannelState['n'];
const countKey = (kind: Kind): KindCount => (kind === 'browser' ? 'viewers' : kind === 'seeder' ? 'seeders' : 'origins');

/** 1 for a peer that never misbehaved; 0.5 after 3 bad pieces (the engine's ban threshold) or a ban. */
export function trustScore(badPiecesSent: number, bans: number): number {
  const t = 1 / (1 + Math.max(0, badPiecesSent) / 3 + Math.max(0, bans));
  return Math.round(t * 100) / 100;
}

/**
 * The best offload viewers can get (DESIGN.md §7): the origin must send at least one copy of each
 * watched rendition into the swarm, so with V viewers on R renditions and no seeder, at most
 * 1 - R/V of their bytes can come from peers (1 - 1/N on one rendition). Seeders take those
 * copies off the viewers' hands: with any seeder the bound is 1. Null without viewers.
 */
export function offloadBound(viewers: number, seeders: number, renditionsWatched: number): number | null {
  if (viewers <= 0) return null;
  if (seeders > 0) return 1;
  return Math.max(0, 1 - Math.max(1, renditionsWatched) / viewers);
}

/** Increase of a cumulative counter; a counter that went backwards restarted (its value is the delta). */
export function counterDelta(cur: number, prev: number): number {
  if (!Number.isFinite(cur) || cur < 0) return 0;
  return cur >= prev ? cur - prev : cur;
}

const edgeKey = (from: string, to: string) => `${from}>${to}`;

function fmtBytes(n: number): string {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${Math.round(n)} B`;
}

export class StatsHub {
  readonly bucketMs: number;
  readonly windowMs: number;
  readonly settleMs: number;
  private readonly now: () => number;
  private readonly capacity: number;
  private readonly snapshotBuckets: number;
  private readonly minReportIntervalMs: number;
  private readonly maxEvents: number;
  private readonly maxChannels: number;
  private readonly channels = new Map<string, ChannelState>();
  private readonly feed: FeedEvent[] = [];
  private nextEventId = 1;
  private readonly listeners = new Set<(e: FeedEvent) => void>();

  constructor(opts: StatsHubOptions) {
    this.now = opts.now;
    this.bucketMs = opts.bucketMs ?? 1000;
    this.capacity = Math.max(1, Math.ceil((opts.historyMs ?? 30 * 60_000) / this.bucketMs));
    this.snapshotBuckets = Math.min(this.capacity, Math.max(1, Math.ceil((opts.snapshotHistoryMs ?? 10 * 60_000) / this.bucketMs)));
    this.windowMs = opts.windowMs ?? 30_000;
    this.settleMs = opts.settleMs ?? 6000;
    this.minReportIntervalMs = opts.minReportIntervalMs ?? 1000;
    this.maxEvents = opts.maxEvents ?? 2000;
    this.maxChannels = opts.maxChannels ?? 1000;
  }

  // ------------------------------------------------------------------ input

  peerJoined(channel: string, peerId: string, kind: Kind): void {
    const now = this.now();
    const ch = this.channel(channel, now);
    if (!ch) return;
    const prev = ch.peers.get(peerId);
    if (prev) ch.n[countKey(prev.kind)]--;
    ch.n[countKey(kind)]++;
    ch.peers.set(peerId, {
      peerId, kind, joinedAt: now, lastReportAt: null,
      c: { fromPeers: 0, fromOriginPeer: 0, fromHttp: 0, uploaded: 0, stalledMs: 0, watchMs: 0, stalls: 0 },
      upBps: 0, downBps: 0, neighbors: 0, rendition: null, nat: null, region: null, capacityBps: null,
      startupMs: null, latencyMs: null, bufferMs: null, stalls: null, links: new Map(), vouched: new Set(),
    });
    this.sampleCounts(ch, now);
    this.emit({ t: now, channel, type: 'join', peerId, kind, text: `${kind} ${peerId} joined` });
  }

  peerLeft(channel: string, peerId: string): void {
    const ch = this.channels.get(channel);
    const p = ch?.peers.get(peerId);
    if (!ch || !p) return;
    const now = this.now();
    for (const key of [...(ch.touching.get(peerId) ?? [])]) this.dropEdge(ch, key, false);
    ch.touching.delete(peerId);
    ch.peers.delete(peerId);
    ch.n[countKey(p.kind)]--;
    ch.lastActive = now;
    this.sampleCounts(ch, now);
    const secs = Math.round((now - p.joinedAt) / 1000);
    this.emit({ t: now, channel, type: 'leave', peerId, kind: p.kind, value: secs, text: `${p.kind} ${peerId} left after ${secs} s` });
  }

  /** Records one validated report. Reports closer than minReportIntervalMs are dropped. */
  report(channel: string, peerId: string, r: ReportInput): ReportOutcome {
    const out: ReportOutcome = {
      accepted: false, fromPeers: 0, fromOriginPeer: 0, fromHttp: 0, originPeerUpload: 0, httpFetched: 0,
      stalledMs: 0, watchMs: 0, startupMs: null, latencyMs: null, badPieces: 0, bans: 0,
    };
    const ch = this.channels.get(channel);
    const p = ch?.peers.get(peerId);
    if (!ch || !p) return { ...out, reason: 'unknown peer' };
    const now = this.now();
    out.kind = p.kind;
    if (p.lastReportAt !== null && now - p.lastReportAt < this.minReportIntervalMs) {
      this.emit({ t: now, channel, type: 'report-dropped', peerId, kind: p.kind, text: `report from ${peerId} dropped: too frequent` });
      return { ...out, reason: 'too frequent' };
    }
    out.accepted = true;
    ch.lastActive = now;
    const s = r.stats;
    const num = (k: string): number | undefined => (typeof s[k] === 'number' && Number.isFinite(s[k]) ? s[k] : undefined);
    const t0 = p.lastReportAt ?? p.joinedAt;
    const dtMs = Math.max(1, now - t0);
    const c = p.c;
    const cur = {
      fromPeers: num('bytesFromPeers') ?? c.fromPeers,
      fromOriginPeer: num('bytesFromOriginPeer') ?? c.fromOriginPeer,
      fromHttp: num('bytesFromHttp') ?? c.fromHttp,
      uploaded: num('bytesUploaded') ?? c.uploaded,
      stalledMs: num('stalledMs') ?? c.stalledMs,
      watchMs: num('watchMs') ?? c.watchMs,
      stalls: num('stalls') ?? c.stalls,
    };
    const d = {
      fromPeers: counterDelta(cur.fromPeers, c.fromPeers),
      fromOriginPeer: counterDelta(cur.fromOriginPeer, c.fromOriginPeer),
      fromHttp: counterDelta(cur.fromHttp, c.fromHttp),
      uploaded: counterDelta(cur.uploaded, c.uploaded),
      stalledMs: counterDelta(cur.stalledMs, c.stalledMs),
      watchMs: counterDelta(cur.watchMs, c.watchMs),
      stalls: counterDelta(cur.stalls, c.stalls),
    };
    p.c = cur;
    const viewer = p.kind === 'browser';
    const originUpload = (p.kind === 'origin' ? d.uploaded : 0) + d.fromHttp;
    ch.series.addSpread(t0, now, {
      ...(viewer ? { peers: d.fromPeers, originPeer: d.fromOriginPeer, http: d.fromHttp } : {}),
      originUpload,
    });
    if (viewer) {
      ch.totals.fromPeers += d.fromPeers;
      ch.totals.fromOriginPeer += d.fromOriginPeer;
      ch.totals.fromHttp += d.fromHttp;
      out.fromPeers = d.fromPeers;
      out.fromOriginPeer = d.fromOriginPeer;
      out.fromHttp = d.fromHttp;
      out.stalledMs = d.stalledMs;
      out.watchMs = d.watchMs;
    }
    ch.totals.originUpload += originUpload;
    out.originPeerUpload = p.kind === 'origin' ? d.uploaded : 0;
    out.httpFetched = d.fromHttp;

    p.upBps = (d.uploaded * 1000) / dtMs;
    p.downBps = ((d.fromPeers + d.fromOriginPeer + d.fromHttp) * 1000) / dtMs;
    p.neighbors = num('peers') ?? num('links') ?? p.neighbors;
    p.capacityBps = num('uploadCapacityBps') ?? p.capacityBps;
    p.bufferMs = num('bufferMs') ?? p.bufferMs;
    const latency = num('latencyMs');
    if (latency !== undefined && latency >= 0) {
      p.latencyMs = latency;
      out.latencyMs = latency;
    }
    const startup = num('startupMs');
    if (startup !== undefined && startup >= 0) {
      if (p.startupMs === null) out.startupMs = startup;
      p.startupMs = startup;
    }
    if (num('stalls') !== undefined) p.stalls = cur.stalls;
    if (r.rendition !== undefined) p.rendition = r.rendition;
    if (r.nat !== undefined) p.nat = r.nat;
    if (r.region !== undefined) p.region = r.region;

    if (d.stalls > 0 && p.lastReportAt !== null) {
      this.emit({ t: now, channel, type: 'stall', peerId, kind: p.kind, value: d.stalledMs, text: `${peerId} stalled ${d.stalls}× (${Math.round(d.stalledMs)} ms)` });
    }
    if (d.fromHttp > 0 && p.kind !== 'origin') {
      this.emit({ t: now, channel, type: 'repair', peerId, kind: p.kind, value: d.fromHttp, text: `${peerId} fetched ${fmtBytes(d.fromHttp)} over HTTP (deadline fallback)` });
    }
    if (r.links) out.badPieces = this.updateLinks(ch, p, r.links, dtMs, now);
    for (const b of r.bans ?? []) {
      out.bans++;
      ch.bansAgainst.set(b.peerId, (ch.bansAgainst.get(b.peerId) ?? 0) + 1);
      this.emit({ t: now, channel, type: 'ban', peerId, kind: p.kind, other: b.peerId, text: `${peerId} banned ${b.peerId}: ${b.reason}` });
    }
    p.lastReportAt = now;
    return out;
  }

  /** Records an event from another part of the tracker (e.g. an optimizer round and its gain). */
  recordEvent(e: Omit<FeedEvent, 'id' | 't'> & { t?: number }): FeedEvent {
    return this.emit({ ...e, t: e.t ?? this.now() });
  }

  // ------------------------------------------------------------------ output

  channelNames(): string[] {
    return [...this.channels.keys()].sort();
  }

  overview(): StatsOverview {
    const now = this.now();
    return { at: now, channels: this.channelNames().map((n) => this.summaryOf(this.channels.get(n)!, now)) };
  }

  summary(channel: string): ChannelSummary | null {
    const ch = this.channels.get(channel);
    return ch ? this.summaryOf(ch, this.now()) : null;
  }

  snapshot(channel: string): ChannelSnapshot | null {
    const ch = this.channels.get(channel);
    if (!ch) return null;
    const now = this.now();
    const summary = this.summaryOf(ch, now);
    const viewers = [...ch.peers.values()].filter((p) => p.kind === 'browser');
    return {
      ...summary,
      at: now,
      bucketMs: this.bucketMs,
      windowMs: this.windowMs,
      totals: { ...ch.totals },
      series: this.seriesOf(ch, now),
      qos: {
        startupMs: distribution(viewers.flatMap((p) => (p.startupMs === null ? [] : [p.startupMs]))),
        latencyMs: distribution(viewers.flatMap((p) => (p.latencyMs === null ? [] : [p.latencyMs]))),
        rebufferingRatio: distribution(viewers.flatMap((p) => (p.c.watchMs > 0 ? [Math.min(1, p.c.stalledMs / p.c.watchMs)] : []))),
        bufferMs: distribution(viewers.flatMap((p) => (p.bufferMs === null ? [] : [p.bufferMs]))),
      },
      graph: this.graphOf(ch),
      peers: this.rowsOf(ch),
    };
  }

  /** Feed events after `sinceId` (oldest first) that satisfy the predicate, at most `limit` (the newest). */
  events(opts: { sinceId?: number; channel?: string; filter?: string | EventPredicate; limit?: number } = {}): FeedEvent[] {
    let pred: EventPredicate | null = null;
    if (typeof opts.filter === 'function') pred = opts.filter;
    else if (opts.filter) {
      const parsed = parsePredicate(opts.filter);
      if (!parsed.ok) throw new RangeError(parsed.error);
      pred = parsed.test;
    }
    const since = opts.sinceId ?? 0;
    const out = this.feed.filter((e) => e.id > since && (!opts.channel || e.channel === opts.channel) && (!pred || pred(e)));
    const limit = opts.limit ?? 200;
    return out.length > limit ? out.slice(out.length - limit) : out;
  }

  /** Id of the newest event (0 before any). */
  get lastEventId(): number {
    return this.nextEventId - 1;
  }

  onEvent(listener: (e: FeedEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // ------------------------------------------------------------------ internals

  private channel(name: string, now: number): ChannelState | null {
    let ch = this.channels.get(name);
    if (ch) return ch;
    if (this.channels.size >= this.maxChannels) {
      // Forget the longest-idle empty channel; refuse when every channel has peers.
      let victim: ChannelState | null = null;
      for (const c of this.channels.values()) if (c.peers.size === 0 && (!victim || c.lastActive < victim.lastActive)) victim = c;
      if (!victim) return null;
      this.channels.delete(victim.name);
    }
    ch = {
      name,
      peers: new Map(),
      series: new BucketSeries<SumField | GaugeField>(this.bucketMs, this.capacity, SUM_FIELDS, GAUGE_FIELDS),
      totals: { fromPeers: 0, fromOriginPeer: 0, fromHttp: 0, originUpload: 0 },
      edges: new Map(),
      touching: new Map(),
      badSentBy: new Map(),
      bansAgainst: new Map(),
      lastActive: now,
      createdAt: now,
      n: { viewers: 0, seeders: 0, origins: 0 },
    };
    this.channels.set(name, ch);
    return ch;
  }

  private counts(ch: ChannelState): { viewers: number; seeders: number; origins: number } {
    return { ...ch.n };
  }

  private sampleCounts(ch: ChannelState, now: number): void {
    const c = this.counts(ch);
    ch.series.set(now, 'viewers', c.viewers);
    ch.series.set(now, 'seeders', c.seeders);
  }

  private emit(e: Omit<FeedEvent, 'id'>): FeedEvent {
    const ev: FeedEvent = { id: this.nextEventId++, ...e };
    this.feed.push(ev);
    if (this.feed.length > this.maxEvents) this.feed.splice(0, this.feed.length - this.maxEvents);
    for (const l of this.listeners) {
      try {
        l(ev);
      } catch {
        // a listener's failure is its own
      }
    }
    return ev;
  }

  /** Applies a report's links: per-link deltas, edges vouched by this peer, bad pieces by sender. */
  private updateLinks(ch: ChannelState, p: PeerState, links: ReportLink[], dtMs: number, now: number): number {
    const next = new Map<string, LinkState>();
    const vouched = new Set<string>();
    let badTotal = 0;
    for (const l of links) {
      if (l.peerId === p.peerId || next.has(l.peerId)) continue;
      const prev = p.links.get(l.peerId);
      const bad = l.bad ?? 0;
      next.set(l.peerId, { sent: l.sent, received: l.received, bad });
      const dBad = counterDelta(bad, prev?.bad ?? 0);
      if (dBad > 0) {
        badTotal += dBad;
        ch.badSentBy.set(l.peerId, (ch.badSentBy.get(l.peerId) ?? 0) + dBad);
        this.emit({ t: now, channel: ch.name, type: 'bad-piece', peerId: p.peerId, kind: p.kind, other: l.peerId, value: dBad, text: `${l.peerId} sent ${dBad} bad piece(s) to ${p.peerId}` });
      }
      if (!ch.peers.has(l.peerId)) continue; // the far end already left: no edge to draw
      const dSent = counterDelta(l.sent, prev?.sent ?? 0);
      const dRecv = counterDelta(l.received, prev?.received ?? 0);
      if (l.sent > 0 || l.child) {
        const key = edgeKey(p.peerId, l.peerId);
        this.vouch(ch, key, p.peerId, l.peerId, p.peerId, { bytes: l.sent, bps: (dSent * 1000) / dtMs, declared: l.child === true }, now);
        vouched.add(key);
      }
      if (l.received > 0 || l.parent) {
        const key = edgeKey(l.peerId, p.peerId);
        this.vouch(ch, key, l.peerId, p.peerId, p.peerId, { bytes: l.received, bps: (dRecv * 1000) / dtMs, declared: l.parent === true }, now);
        vouched.add(key);
      }
    }
    for (const key of p.vouched) {
      if (vouched.has(key)) continue;
      const e = ch.edges.get(key);
      if (!e) continue;
      e.sides.delete(p.peerId);
      if (e.sides.size === 0) this.dropEdge(ch, key, true, now);
    }
    p.vouched = vouched;
    p.links = next;
    return badTotal;
  }

  private vouch(ch: ChannelState, key: string, from: string, to: string, by: string, side: EdgeSide, now: number): void {
    let e = ch.edges.get(key);
    if (!e) {
      e = { from, to, sides: new Map() };
      ch.edges.set(key, e);
      for (const id of [from, to]) {
        let set = ch.touching.get(id);
        if (!set) ch.touching.set(id, (set = new Set()));
        set.add(key);
      }
      this.emit({ t: now, channel: ch.name, type: 'link-up', peerId: from, kind: ch.peers.get(from)?.kind, other: to, text: `${from} → ${to} carries video${side.declared ? ' (upload link)' : ''}` });
    }
    e.sides.set(by, side);
  }

  private dropEdge(ch: ChannelState, key: string, announce: boolean, now = this.now()): void {
    const e = ch.edges.get(key);
    if (!e) return;
    ch.edges.delete(key);
    for (const id of [e.from, e.to]) {
      ch.touching.get(id)?.delete(key);
      ch.peers.get(id)?.vouched.delete(key);
    }
    if (announce) this.emit({ t: now, channel: ch.name, type: 'link-down', peerId: e.from, kind: ch.peers.get(e.from)?.kind, other: e.to, text: `${e.from} → ${e.to} closed` });
  }

  private windowBuckets(now: number): { first: number; last: number } {
    const last = Math.floor((now - this.settleMs) / this.bucketMs) - 1;
    const n = Math.max(1, Math.round(this.windowMs / this.bucketMs));
    return { first: last - n + 1, last };
  }

  private summaryOf(ch: ChannelState, now: number): ChannelSummary {
    const counts = this.counts(ch);
    const { first, last } = this.windowBuckets(now);
    const peers = ch.series.total(first, last, 'peers');
    const received = peers + ch.series.total(first, last, 'originPeer') + ch.series.total(first, last, 'http');
    const windowSec = ((last - first + 1) * this.bucketMs) / 1000;
    const t = ch.totals;
    let stalled = 0, watched = 0;
    const startups: number[] = [];
    const latencies: number[] = [];
    const renditions = new Map<string, number>();
    for (const p of ch.peers.values()) {
      if (p.kind !== 'browser') continue;
      stalled += p.c.stalledMs;
      watched += p.c.watchMs;
      if (p.startupMs !== null) startups.push(p.startupMs);
      if (p.latencyMs !== null) latencies.push(p.latencyMs);
      if (p.rendition) renditions.set(p.rendition, (renditions.get(p.rendition) ?? 0) + 1);
    }
    return {
      channel: ch.name,
      ...counts,
      offload: ratio(peers, received),
      offloadTotal: ratio(t.fromPeers, t.fromPeers + t.fromOriginPeer + t.fromHttp),
      offloadBound: offloadBound(counts.viewers, counts.seeders, renditions.size),
      originUploadBps: ch.series.total(first, last, 'originUpload') / windowSec,
      rebufferingRatio: watched > 0 ? Math.min(1, stalled / watched) : null,
      startupMsP50: distribution(startups, 1).p50,
      latencyMsP50: distribution(latencies, 1).p50,
      renditions: [...renditions].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([rendition, viewers]) => ({ rendition, viewers })),
    };
  }

  private seriesOf(ch: ChannelState, now: number) {
    const { last } = this.windowBuckets(now);
    // From the channel's first appearance (no empty minutes before it), at most snapshotBuckets.
    const first = Math.min(last, Math.max(last - this.snapshotBuckets + 1, Math.floor(ch.createdAt / this.bucketMs)));
    const perSec = 1000 / this.bucketMs;
    const s = {
      t: [] as number[], offload: [] as Array<number | null>, peersBps: [] as number[], originPeerBps: [] as number[],
      httpBps: [] as number[], originUploadBps: [] as number[], viewers: [] as Array<number | null>, seeders: [] as Array<number | null>,
    };
    // Gauges: carry the last value set at or before each bucket (forward fill), null before any.
    let viewers: number | null = null, seeders: number | null = null;
    for (let b = first - 1; b >= Math.max(0, first - this.capacity) && (viewers === null || seeders === null); b--) {
      const v = ch.series.get(b, 'viewers'), sd = ch.series.get(b, 'seeders');
      if (viewers === null && !Number.isNaN(v)) viewers = v;
      if (seeders === null && !Number.isNaN(sd)) seeders = sd;
      if (first - b > 3600) break;
    }
    for (let b = first; b <= last; b++) {
      const peers = ch.series.get(b, 'peers'), op = ch.series.get(b, 'originPeer'), http = ch.series.get(b, 'http');
      s.t.push((b * this.bucketMs) / 1000);
      s.offload.push(ratio(peers, peers + op + http));
      s.peersBps.push(peers * perSec);
      s.originPeerBps.push(op * perSec);
      s.httpBps.push(http * perSec);
      s.originUploadBps.push(ch.series.get(b, 'originUpload') * perSec);
      const v = ch.series.get(b, 'viewers'), sd = ch.series.get(b, 'seeders');
      if (!Number.isNaN(v)) viewers = v;
      if (!Number.isNaN(sd)) seeders = sd;
      s.viewers.push(viewers);
      s.seeders.push(seeders);
    }
    return s;
  }

  private graphOf(ch: ChannelState): { nodes: GraphNode[]; edges: GraphEdge[] } {
    const edges: GraphEdge[] = [];
    const out = new Map<string, string[]>();
    for (const e of ch.edges.values()) {
      let bytes = 0, bps = 0, upload = false;
      for (const s of e.sides.values()) {
        bytes = Math.max(bytes, s.bytes);
        bps = Math.max(bps, s.bps);
        upload ||= s.declared;
      }
      edges.push({ from: e.from, to: e.to, bytes, bps: Math.round(bps), upload });
      let list = out.get(e.from);
      if (!list) out.set(e.from, (list = []));
      list.push(e.to);
    }
    // Depth: BFS from the origin peers along edges that carry video.
    const depth = new Map<string, number>();
    let frontier = [...ch.peers.values()].filter((p) => p.kind === 'origin').map((p) => p.peerId);
    for (const id of frontier) depth.set(id, 0);
    for (let d = 1; frontier.length > 0; d++) {
      const next: string[] = [];
      for (const id of frontier) for (const to of out.get(id) ?? []) if (!depth.has(to)) (depth.set(to, d), next.push(to));
      frontier = next;
    }
    const nodes: GraphNode[] = [...ch.peers.values()].map((p) => ({
      id: p.peerId, kind: p.kind, rendition: p.rendition, nat: p.nat, region: p.region,
      upBps: Math.round(p.upBps), capacityBps: p.capacityBps, depth: depth.get(p.peerId) ?? null,
    }));
    edges.sort((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : a.to < b.to ? -1 : a.to > b.to ? 1 : 0));
    return { nodes, edges };
  }

  private rowsOf(ch: ChannelState): PeerRow[] {
    const order: Record<Kind, number> = { origin: 0, seeder: 1, browser: 2 };
    return [...ch.peers.values()]
      .sort((a, b) => order[a.kind] - order[b.kind] || a.joinedAt - b.joinedAt)
      .map((p) => {
        const received = p.c.fromPeers + p.c.fromOriginPeer + p.c.fromHttp;
        const bad = ch.badSentBy.get(p.peerId) ?? 0;
        const bans = ch.bansAgainst.get(p.peerId) ?? 0;
        return {
          peerId: p.peerId, kind: p.kind, region: p.region, nat: p.nat, rendition: p.rendition, neighbors: p.neighbors,
          upBps: Math.round(p.upBps), downBps: Math.round(p.downBps), bytesShared: p.c.uploaded, bytesReceived: received,
          offload: ratio(p.c.fromPeers, received), badPiecesSent: bad, bans, trust: trustScore(bad, bans),
          bufferMs: p.bufferMs, latencyMs: p.latencyMs, stalls: p.stalls, joinedAt: p.joinedAt, lastReportAt: p.lastReportAt,
        };
      });
  }
}

export type { EventType };
