/**
 * Contracts shared by every part of the P2P engine. peer/core is pure: everything that touches
 * time, randomness, crypto or the network comes in through these interfaces, so the same engine
 * runs in Node (werift), in browsers (RTCPeerConnection) and in the simulator.
 */

/** Monotonic milliseconds. Hosts pass the platform's monotonic clock; the simulator its own. */
export interface Clock {
  now(): number;
}

/** Uniform random in [0, 1). Seeded in the simulator and in tests. */
export interface Random {
  next(): number;
}

/** Synchronous hashing and signature checks (noble in browsers, node:crypto in Node). */
export interface CryptoProvider {
  sha256(data: Uint8Array): Uint8Array;
  ed25519Verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
}

/** Minimal structured logger (pino-compatible subset). */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export type PeerKind = 'origin' | 'seeder' | 'browser';

/**
 * One open, reliable, ordered, binary message channel to one remote peer (a WebRTC data channel
 * in production, an in-memory or simulated pipe in tests). The engine owns a Link once it is
 * handed over with `Engine.addLink`: it sets the handlers and calls close().
 */
export interface Link {
  /** The remote peer's id as learned from signaling (HELLO must confirm it). */
  readonly remoteId: string;
  /** Bytes queued but not yet sent; the engine stops uploading above a threshold. */
  readonly bufferedAmount: number;
  /**
   * The connection goes through a TURN relay (its selected ICE candidate pair has a relay
   * candidate); false when direct; undefined when not known (yet), or not a WebRTC link. May
   * change over the link's life (an ICE restart can find another path).
   */
  readonly relayed?: boolean;
  send(frame: Uint8Array): void;
  close(): void;
  /** Set by the engine. Called once per received message. */
  onMessage: ((frame: Uint8Array) => void) | null;
  /** Set by the engine. Called once when the channel closes for any reason. */
  onClose: (() => void) | null;
  /**
   * Optional (like RTCDataChannel's bufferedAmountLowThreshold / bufferedamountlow): set by the
   * engine; a transport that supports it calls onLow when bufferedAmount falls to lowThreshold
   * or below, so the engine refills a shallow buffer at once instead of on its next tick (a
   * shallow buffer keeps the engine's own order, pushes before answers, on the wire).
   */
  lowThreshold?: number;
  onLow?: (() => void) | null;
}

/** Identifies one segment of a channel. `seq === INIT_SEQ` is the rendition's init segment. */
export interface SegmentRef {
  rendition: string;
  seq: number;
}

export const INIT_SEQ = -1;

/** HTTP fallback (origin). Paths are built with peer/core/paths.ts. */
export interface HttpSource {
  /** The signed manifest's binary encoding (see manifest.ts). */
  fetchManifest(ref: SegmentRef): Promise<Uint8Array>;
  /** Bytes [start, endExclusive) of the segment, via an HTTP Range request. */
  fetchRange(ref: SegmentRef, start: number, endExclusive: number): Promise<Uint8Array>;
  /**
   * Optional: the whole segment (a plain GET). With it, a load whose deadline is already due
   * and whose manifest is unknown (startup, after a seek) fetches the body alongside the
   * manifest: one round trip instead of two; the pieces are verified once the manifest is in.
   */
  fetchSegment?(ref: SegmentRef): Promise<Uint8Array>;
}

/** Where a verified piece came from; offload counts only 'peer'. */
export type PieceSource = 'peer' | 'origin-peer' | 'http' | 'local';

/** Counters every engine exposes (the watch page's starling.stats() builds on these). */
export interface EngineStats {
  /** Verified bytes received from non-origin peers over data channels. */
  bytesFromPeers: number;
  /** Verified bytes received from the origin's root peer over data channels. */
  bytesFromOriginPeer: number;
  /** Verified bytes fetched over HTTP fallback. */
  bytesFromHttp: number;
  /** Piece payload bytes sent to neighbors. */
  bytesUploaded: number;
  /** Open neighbors (HELLO exchanged). */
  peers: number;
  /** Pieces that failed verification, by any sender. */
  badPieces: number;
  /** Wire frames rejected as malformed/oversize/out-of-order, by reason. */
  rejectedFrames: Record<string, number>;
  /** Segments completely held and verified. */
  segmentsStored: number;
}
