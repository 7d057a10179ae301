/** What the tracker's plugins share: built once by buildTracker and passed in plugin options. */
import type { Clock, Random } from '../peer/core/types.js';
import type { IceConfig } from './ice.js';
import type { TrackerMetrics } from './metrics.js';
import type { Registry } from './registry.js';
import type { StatsHub } from './stats/hub.js';
import type { StatsMetrics } from './stats-metrics.js';
import type { OptimizerElection } from './store/election.js';
import type { TrackerStore } from './store/types.js';
import type { ParentIndexCache } from './parent-index.js';

export interface TrackerLimits {
  /** Peers in a welcome. */
  welcomePeers: number;
  /** Cap of a `peers` request. */
  maxPeersPerRequest: number;
  /** At most this many origin/seeder peers per sample. */
  maxInfraPerSample: number;
  ratePerSec: number;
  burst: number;
  /** Rate-limited drops on one connection after which it is closed with 1008. */
  floodDropLimit: number;
  /** WebSocket ping period; a connection that missed a pong by the next ping is terminated. 0: off. */
  pingIntervalMs: number;
  /** A signal to a peer whose socket has more than this many bytes queued is refused. */
  maxBufferedBytes: number;
}

/** The per-connection handle stored in the registry. */
export interface PeerConn {
  sendJson(msg: object): boolean;
  /** Closes the connection (e.g. when its peer id is resumed by a newer connection). */
  close(code: number, reason: string): void;
  readonly bufferedAmount: number;
}

export interface TrackerContext {
  /** Every peer of every tracker sharing the store (store.registry). */
  registry: Registry<PeerConn>;
  /** Peers, reports, signaling routes and leases: in memory, or shared through Redis. */
  store: TrackerStore;
  /** One optimizer per channel across trackers (lease-based). */
  election: OptimizerElection;
  /** Whether this tracker runs the optimizer of `channel` now (election.isLeader). */
  optimizerLeader(channel: string): boolean;
  /** The optimizer is enabled here (told to peers in the welcome: joiners wait for its plan). */
  optimizerEnabled: boolean;
  metrics: TrackerMetrics;
  ice: IceConfig;
  publishKey?: string;
  /** HMAC key for resume tokens (random per process unless configured; shared by trackers that share peers). */
  resumeSecret: Uint8Array;
  limits: TrackerLimits;
  random: Random;
  /** Monotonic milliseconds (rate limiting). */
  clock: Clock;
  /** Wall-clock milliseconds since the Unix epoch (joinedAt, TURN expiry). */
  now(): number;
  /** Live per-channel figures from peer reports (dashboard, stats API, /metrics). */
  stats: StatsHub;
  statsMetrics: StatsMetrics;
  /** Parent candidates per channel, from the store's reports (peers requests with parentFor). */
  parentIndex: ParentIndexCache;
  /** When set, the stats API, the live feed and the per-peer API require this token. */
  adminToken?: string;
}
