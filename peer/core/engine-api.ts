/**
 * The public face of the P2P engine (implemented by peer/core/engine.ts). Hosts (the Node
 * seeder, the origin's root peer, the browser loader, the simulator) build one Engine per channel,
 * hand it Links as data channels open, call tick() periodically, and read stats.
 */
import type {
  Clock, CryptoProvider, EngineStats, HttpSource, Link, Logger, PeerKind, PieceSource, Random, SegmentRef,
} from './types.js';
import type { Manifest } from './manifest.js';

export interface EngineOptions {
  peerId: string;
  kind: PeerKind;
  channel: string;
  /** The channel's Ed25519 public key (32 bytes): every manifest must verify against it. */
  publicKey: Uint8Array;
  clock: Clock;
  random: Random;
  crypto: CryptoProvider;
  log?: Logger;
  /** HTTP fallback; absent for the origin (which has everything) and in some tests. */
  http?: HttpSource;
  /**
   * Which segments this peer fetches on its own as soon as neighbors announce them:
   * 'all' (seeders: every rendition), 'following' (viewers: the rendition and position last set
   * with setPlaybackPosition, and newer), 'none' (origin: publishes only).
   */
  interest: 'all' | 'following' | 'none';
  /** Most neighbors this peer keeps (origin: its upload budget). Default 8. */
  maxNeighbors?: number;
  /** Segments kept per rendition behind the newest one (memory bound). Default 30. */
  windowSegments?: number;
  /** Piece requests outstanding per neighbor. Default 16. */
  maxInflightPerNeighbor?: number;
  /** A piece request unanswered after this many ms is re-issued elsewhere. Default 2000. */
  requestTimeoutMs?: number;
  /** Stop serving a neighbor while its link's bufferedAmount exceeds this. Default 1 MiB. */
  maxBufferedBytes?: number;
  /**
   * Upload cap for piece payloads, kbit/s (token bucket). Default: browsers
   * ENGINE_DEFAULTS.browserUploadKbps, others unlimited. 0 = unlimited.
   */
  uploadLimitKbps?: number;
  /**
   * Upload slots: most children pushed to at once (all renditions). Default: origin 2, others 8
   * (with an upload cap, also bounded by the cap divided by each rendition's bitrate).
   */
  maxChildren?: number;
  /** Most children per rendition. Default: origin 1 (one copy per rendition; large audiences: 2, no single root), others unlimited. */
  maxChildrenPerRendition?: number;
  /**
   * Answer REQUESTs only from children (the origin's upload budget). Default true for the origin.
   * Peers never send REQUESTs to an origin neighbor that is not their parent in that rendition.
   */
  serveChildrenOnly?: boolean;
  /** Live push on upload links (ask parents for slots, accept and forward pushed pieces). Default true. */
  push?: boolean;
}

export interface LoadOptions {
  /**
   * Clock time (ms) by which the segment must be complete. Pieces still missing at
   * deadline - httpMarginMs are fetched over HTTP (byte ranges), never the ones already held.
   */
  deadline: number;
  /** Default 500. */
  httpMarginMs?: number;
}

export interface LoadResult {
  data: Uint8Array;
  manifest: Manifest;
  /** Verified bytes of this segment by source (sums to data.length). */
  bytesBySource: Record<PieceSource, number>;
  /** Clock time when the first byte became available to this load and when it completed. */
  firstByteAt: number;
  completedAt: number;
  /**
   * Network time of this segment (ms): from its first piece's arrival to its last one, whenever
   * that was (also before the load was asked for: pushed segments). With `data.length` this is
   * the rate the network delivered it at, for hls.js's bandwidth estimate.
   */
  transferMs?: number;
}

export interface EngineEvents {
  'neighbor-open': { peerId: string; kind: PeerKind };
  'neighbor-closed': { peerId: string; reason: string };
  'segment-complete': { ref: SegmentRef; source: PieceSource };
  /** A piece failed verification: it was dropped and its sender penalised. */
  'bad-piece': { peerId: string; ref: SegmentRef; index: number };
  /** A frame was rejected (malformed, oversize, out of order, unknown type). */
  'frame-rejected': { peerId: string; reason: string };
  /** A neighbor was disconnected for misbehaviour (too many bad pieces / rejected frames). */
  'neighbor-banned': { peerId: string; reason: string };
  /**
   * The engine wants a link to this peer: a shallower potential parent in `rendition`, named by
   * a neighbor's STATUS (climbing). Hosts connect to it as for an optimizer assignment (making
   * room at the engine's maximum); it is advice, and a failed connection needs no answer.
   */
  'climb': { peerId: string; rendition: string };
}

/** Per-neighbor figures for the dashboard (EngineApi.neighborStats). Shape is stable. */
export interface NeighborStat {
  peerId: string;
  kind: PeerKind;
  /** Piece payload bytes we sent to this neighbor. */
  bytesSent: number;
  /** Verified piece payload bytes we received from this neighbor. */
  bytesReceived: number;
  /** This neighbor pushes a rendition to us on an upload link (we hold one of its upload slots). */
  isParent?: boolean;
  /** We push a rendition to this neighbor on an upload link (it holds one of our upload slots). */
  isChild?: boolean;
}

export interface EngineApi {
  readonly peerId: string;
  /** Takes ownership of an open Link; sends HELLO; the neighbor counts once HELLO is answered. */
  addLink(link: Link): void;
  /** True if another neighbor would be accepted (below maxNeighbors, not already linked, not banned). */
  wantsNeighbor(peerId: string): boolean;
  /** Drive timeouts, scheduling and HTTP fallback; hosts call it every 50-100 ms. */
  tick(): void;
  /** Origin / tests: inject a segment the caller vouches for (the manifest is still verified). */
  publishSegment(manifest: Manifest, data: Uint8Array): void;
  /** Player: get a whole verified segment by its deadline (peers first, HTTP for what's missing). */
  loadSegment(ref: SegmentRef, opts: LoadOptions): Promise<LoadResult>;
  /** Player: the rendition/segment being played, which drives 'following' interest. */
  setPlaybackPosition(ref: SegmentRef): void;
  stats(): EngineStats;
  /** Open neighbors with their payload byte counters and upload-link relation to us. */
  neighborStats(): NeighborStat[];
  /**
   * Membership: the open neighbor least useful to us lately (not a parent or child, open for a
   * while, fewest payload bytes exchanged since the previous call), or null. Hosts drop it to
   * make room for a fresh candidate. `minAgeMs` (default ENGINE_LIMITS.neighborMinAgeMs): how
   * long a neighbor must have been open to count; 0 when making room for an optimizer-assigned
   * link, which outranks any neighbor without an upload link however young.
   */
  worstNeighbor?(minAgeMs?: number): string | null;
  /** Closes one neighbor (BYE with the reason). */
  dropNeighbor?(peerId: string, reason: string): void;
  /**
   * Renditions to take an upload link in (and so to relay to children) although this peer does
   * not play them: the optimizer asks a peer with spare upload to carry a rendition. [] stops.
   */
  setRelayRenditions?(renditions: string[]): void;
  /**
   * The tracker's optimizer (Chandelier) assigns our parent in a rendition; null withdraws the
   * assignment. Advice, applied make-before-break: the engine asks that neighbor for a slot with
   * the assigned flag (it outranks every unassigned holder there) and moves once granted; if the
   * peer is not an open neighbor or does not grant within a few seconds, local choice goes on.
   * The host connects to an assigned peer that is not yet a neighbor.
   */
  assignParent?(rendition: string, peerId: string | null): void;
  on<K extends keyof EngineEvents>(event: K, handler: (e: EngineEvents[K]) => void): () => void;
  /** Says BYE to every neighbor, closes links, rejects pending loads. */
  close(): void;
}
