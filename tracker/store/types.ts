/**
 * The tracker's state behind one interface: peers and channels (the Registry every plugin reads),
 * signaling routes (a peer's connection handle, local or on another tracker), peer reports (the
 * optimizer's input) and leases (one optimizer per channel). Two implementations:
 *
 * - MemoryStore (tracker/store/memory.ts): one tracker process, everything in this process; the
 *   pure Registry as it always was. The default.
 * - RedisStore (tracker/store/redis.ts): several tracker processes share channels through Redis.
 *   Each keeps the peers of every tracker in its Registry (remote ones carry a handle that relays
 *   signals through Redis pub/sub), writes its own peers and reports to Redis, and takes leases
 *   there.
 */
import type { PeerKind } from '../../peer/core/types.js';
import type { ReportBan, ReportLink } from '../../peer/core/signaling.js';
import type { PeerConn } from '../context.js';
import type { PeerRecord, Registry } from '../registry.js';

/** A peer's latest accepted report, as the optimizer reads it (from any tracker). */
export interface StoredReport {
  peerId: string;
  kind: PeerKind;
  /** Wall-clock ms of the report. */
  at: number;
  stats: Record<string, number>;
  links?: ReportLink[];
  rendition?: string;
  nat?: string;
  region?: string;
  bans?: ReportBan[];
  /** Renditions it relays on the optimizer's request. */
  relays?: string[];
  /**
   * The peer's address prefix (IPv4 /16, IPv6 /32) as seen by the tracker holding its
   * connection: the optimizer's locality scope when the peer reports no region.
   */
  net?: string;
}

/** Leases with expiry: the owner holds `name` until ttl passes without a renewal. */
export interface LeaseStore {
  /** Takes the lease if free (or expired), renews it if `owner` holds it; true when `owner` holds it now. */
  acquireLease(name: string, owner: string, ttlMs: number): Promise<boolean>;
  /** Renews only if `owner` holds it; false when lost. */
  renewLease(name: string, owner: string, ttlMs: number): Promise<boolean>;
  /** Gives it up if `owner` holds it. */
  releaseLease(name: string, owner: string): Promise<boolean>;
  /** Current holder, or null. */
  leaseOwner(name: string): Promise<string | null>;
}

export interface StoreHealth {
  backend: 'memory' | 'redis';
  /** False while the Redis connection is down (signals to other trackers are lost meanwhile). */
  connected: boolean;
  /** Live trackers sharing this store (1 for memory). */
  trackers: number;
}

export interface TrackerStore extends LeaseStore {
  readonly backend: 'memory' | 'redis';
  /** This tracker's id (lease owner, route of its peers). */
  readonly trackerId: string;
  /**
   * Every peer of every tracker sharing this store. Local peers' conn is their Session; peers of
   * other trackers have a conn whose sendJson relays through the store (isRemote(conn)).
   */
  readonly registry: Registry<PeerConn>;
  /** Connects and loads the shared state; called once by buildTracker. */
  start(): Promise<void>;
  /** Flushes and disconnects (after every local peer has left). */
  close(): Promise<void>;
  /** A local peer was added to the registry. */
  peerJoined(rec: PeerRecord<PeerConn>): void;
  /** A local peer was removed from the registry. */
  peerLeft(rec: PeerRecord<PeerConn>): void;
  /** A local peer's accepted report. */
  putReport(rec: PeerRecord<PeerConn>, report: Omit<StoredReport, 'peerId' | 'kind' | 'at'>, at: number): void;
  /** The latest reports of a channel's peers, whichever tracker they are connected to. */
  reports(channel: string): Promise<StoredReport[]>;
  /** Channels with at least one peer connected to this tracker. */
  localChannels(): string[];
  /** Peers connected to this tracker. */
  readonly localSize: number;
  /** A secret shared by every tracker of the store (resume tokens), or null (memory). */
  sharedSecret(): Promise<Uint8Array | null>;
  health(): StoreHealth;
}

/** Connection handle of a peer held by another tracker. */
export interface RemoteConn extends PeerConn {
  readonly remoteTracker: string;
}

export function isRemote(conn: PeerConn): conn is RemoteConn {
  return typeof (conn as Partial<RemoteConn>).remoteTracker === 'string';
}

/** Lease name of a channel's optimizer. */
export const optimizerLeaseName = (channel: string): string => `optimizer:${channel}`;
