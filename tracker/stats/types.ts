/**
 * Shapes of the tracker's stats API and live feed (docs/stats-api.md). Types only: shared by the
 * tracker (tracker/stats/hub.ts) and the dashboard page (player/src/dashboard/).
 */
export type Kind = 'origin' | 'seeder' | 'browser';

/** Percentiles of one figure over the channel's current viewers. */
export interface Distribution {
  count: number;
  min: number | null;
  max: number | null;
  mean: number | null;
  p10: number | null;
  p25: number | null;
  p50: number | null;
  p75: number | null;
  p90: number | null;
  p99: number | null;
  /** Empirical CDF, at most ~50 points: [value, fraction of viewers at or below it]. */
  cdf: Array<[number, number]>;
}

export interface GraphNode {
  id: string;
  kind: Kind;
  rendition: string | null;
  nat: string | null;
  region: string | null;
  /** Upload used now (bytes/s, from the last two reports). */
  upBps: number;
  /** Upload capacity when the peer reports one (`uploadCapacityBps`), else null. */
  capacityBps: number | null;
  /** Hops from an origin peer along edges that carried bytes; null if not reached. */
  depth: number | null;
}

/** A directed edge: `from` sent video bytes to `to` (or holds an upload link to it). */
export interface GraphEdge {
  from: string;
  to: string;
  /** Bytes sent on this link (cumulative, as counted by either end). */
  bytes: number;
  /** Rate over the last report period (bytes/s). */
  bps: number;
  /** A declared upload link (parent pushes to child), as opposed to pulls only. */
  upload: boolean;
}

export interface PeerRow {
  peerId: string;
  kind: Kind;
  region: string | null;
  nat: string | null;
  rendition: string | null;
  /** Open neighbors (last report). */
  neighbors: number;
  upBps: number;
  downBps: number;
  /** Bytes uploaded to other peers (cumulative). */
  bytesShared: number;
  /** Bytes received from every source (cumulative). */
  bytesReceived: number;
  /** This peer's own offload (bytes from peers / all bytes received), null before any byte. */
  offload: number | null;
  /** Pieces this peer sent that failed verification at a neighbor (reported by the neighbors). */
  badPiecesSent: number;
  /** Times neighbors banned this peer. */
  bans: number;
  /** 0..1, 1 = never misbehaved (trustScore()). */
  trust: number;
  bufferMs: number | null;
  latencyMs: number | null;
  stalls: number | null;
  joinedAt: number;
  lastReportAt: number | null;
}

export const EVENT_TYPES = [
  'join', 'leave', 'ban', 'bad-piece', 'repair', 'stall', 'link-up', 'link-down', 'optimizer', 'report-dropped',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** One entry of the self-management event feed. */
export interface FeedEvent {
  /** Increasing per tracker process. */
  id: number;
  /** Unix ms. */
  t: number;
  channel: string;
  type: EventType;
  peerId?: string;
  kind?: Kind;
  /** The other peer involved (the banned one, the far end of a link, the bad piece's sender). */
  other?: string;
  /** A figure of the event (bytes, ms, gain, count). */
  value?: number;
  text: string;
}

export interface ChannelCounts {
  viewers: number;
  seeders: number;
  origins: number;
}

export interface ChannelSummary extends ChannelCounts {
  channel: string;
  /** Offload over the recent window (null before any byte). */
  offload: number | null;
  /** Offload since the tracker started. */
  offloadTotal: number | null;
  /** The best viewers' offload possible here (hub.ts offloadBound: 1 - R/V, or 1 with seeders); null without viewers. */
  offloadBound: number | null;
  /** Origin upload (root peer + HTTP) over the recent window, bytes/s. */
  originUploadBps: number;
  /** Aggregate rebuffering ratio of the current viewers (stalled / watched), null before data. */
  rebufferingRatio: number | null;
  startupMsP50: number | null;
  latencyMsP50: number | null;
  renditions: Array<{ rendition: string; viewers: number }>;
}

export interface ChannelSeries {
  /** Bucket start times, Unix seconds (uPlot's time axis). */
  t: number[];
  offload: Array<number | null>;
  /** What viewers received, bytes/s, by source. */
  peersBps: number[];
  originPeerBps: number[];
  httpBps: number[];
  /** Origin upload (root peer upload + every peer's HTTP fetches), bytes/s. */
  originUploadBps: number[];
  viewers: Array<number | null>;
  seeders: Array<number | null>;
}

export interface ChannelSnapshot extends ChannelSummary {
  /** Unix ms of the snapshot. */
  at: number;
  bucketMs: number;
  /** Length of the "recent" window used by offload / originUploadBps (ms). */
  windowMs: number;
  totals: {
    /** Bytes viewers received, by source, since the tracker started. */
    fromPeers: number;
    fromOriginPeer: number;
    fromHttp: number;
    /** Origin upload since the tracker started: root peer upload + every HTTP fetch. */
    originUpload: number;
  };
  series: ChannelSeries;
  qos: {
    startupMs: Distribution;
    latencyMs: Distribution;
    rebufferingRatio: Distribution;
    bufferMs: Distribution;
  };
  graph: { nodes: GraphNode[]; edges: GraphEdge[] };
  peers: PeerRow[];
}

/** GET /api/stats */
export interface StatsOverview {
  at: number;
  channels: ChannelSummary[];
}
