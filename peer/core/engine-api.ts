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
  on<K extends keyof EngineEvents>(event: K, handler: (e: EngineEvents[K]) => void): () => void;
  /** Says BYE to every neighbor, closes links, rejects pending loads. */
  close(): void;
}
