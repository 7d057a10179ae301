/**
 * PeerHost: glues an Engine to the tracker (SignalingClient), a WebRTC Transport and timers.
 * Isomorphic: no node:* imports; the WebSocket ctor, Transport and (optionally) timers are injected.
 *
 * Neighbor management
 * - On welcome/peers, connect as initiator to sampled peers the engine wantsNeighbor() for, until
 *   targetNeighbors links are open or connecting.
 * - An incoming offer from a peer we have no connection with is accepted if
 *   engine.wantsNeighbor(from) (and fewer than maxPendingIncoming answers are in progress),
 *   else answered with {reject: 'full'}.
 * - Glare (both sides offer at once): the lower peerId stays initiator; the higher one drops its
 *   own attempt (no failure, no back-off) and answers the other's offer.
 * - A connector's Link goes to engine.addLink() wrapped, so the host learns when it closes even
 *   though the engine owns the Link's handlers.
 * - ICE restart (issue 8): the transports repair an open connection whose path died by
 *   restarting ICE (ice-restart.ts). The remote's restart offer arrives here as an offer from a
 *   peer we hold an open connection with: when the connector recognises it as a renegotiation of
 *   that connection (isRenegotiation: same DTLS certificate), it is handed to it and answered in
 *   place (the Link stays open); any other offer on an open connection still replaces it (the
 *   remote restarted). A restart that gives up closes the Link: the usual back-off and reconnect.
 *   When a link goes down the host probes the tracker (a peers request; no answer within
 *   trackerProbeTimeoutMs: the tracker connection died with our old network, reconnect now);
 *   after every welcome, links still in an outage restart at once (their earlier offers may have
 *   been lost with the old tracker connection).
 * - Failed attempts back a peer off exponentially (5 s -> 5 min, jittered); a closed link backs
 *   it off briefly (linkClosedBackoffMs). Below target, the host asks the tracker for peers
 *   (rate-limited: at most every peersRequestMinMs after churn, and every peersIntervalMs).
 * - Membership: the neighbor set is bounded (targetNeighbors initiated, the engine's maxNeighbors
 *   in all). Every replaceIntervalMs, when at target and the tracker's samples hold a candidate we
 *   are not connected to, the engine's least useful neighbor (worstNeighbor(): no upload link,
 *   fewest bytes exchanged lately) is dropped and the candidate takes its place.
 * - Without a tracker (unreachable, restarting) existing links stay up and the engine keeps
 *   streaming from them; the host reconnects in the background.
 * - engine.tick() every tickMs (from start(), even before the tracker answers, so the HTTP
 *   fallback keeps working without a tracker); engine.stats() reported every reportMs.
 */
import type { EngineApi } from '../core/engine-api.js';
import type { Link, Logger, PeerKind } from '../core/types.js';
import { silentLogger } from '../core/types.js';
import { PARENT_REQUEST_MAX_SLOTS, REPORT_MAX_BANS, REPORT_MAX_LINKS, type IceServer, type PeerInfo, type ReportBan, type ReportLink, type SignalData, type WelcomeMessage } from '../core/signaling.js';
import type { PeerConnector, Transport } from '../transport/transport-api.js';
import type { PeerHostOptions, PeerHostStats } from './host-api.js';
import { SignalingClient, type ReportExtra, type SignalingClientStats } from './signaling-client.js';
import { globalTimers, type TimerHandle, type Timers } from './timers.js';
import { renditionStats, tagLinkRenditions, uploadLinksOf, type UploadLinksView } from './optimizer-report.js';

export const HOST_DEFAULTS = {
  targetNeighbors: 6,
  tickMs: 50,
  reportMs: 5000,
  peersIntervalMs: 5000,
  peersRequestMinMs: 2000,
  failureBackoffMs: 5000,
  maxFailureBackoffMs: 300_000,
  linkClosedBackoffMs: 3000,
  /** A peer that failed giveUpAfterFailures times in a row is left alone this long, however often proposed. */
  giveUpMs: 30 * 60_000,
  giveUpAfterFailures: 6,
  maxPendingIncoming: 8,
  maxKnownPeers: 500,
  replaceIntervalMs: 20_000,
  /**
   * After a link outage the host asks the tracker for peers; no answer within this long means
   * the tracker connection died too (our network moved: its packets vanish, nothing resets it),
   * and the host reconnects to the tracker at once (ICE restarts need signaling).
   */
  trackerProbeTimeoutMs: 2500,
  /** A full host makes room for an offer that says it is for an assigned link at most this often. */
  assignedRoomEveryMs: 1000,
  /**
   * Without a parent in the rendition it plays for this long, the host asks the tracker for
   * parent candidates (peers request with parentFor), at most every seekParentEveryMs, and
   * connects to up to seekParentCandidates of them as for an assignment (tracker/parent-candidates.ts).
   */
  seekParentAfterMs: 2000,
  seekParentEveryMs: 2000,
  seekParentCandidates: 2,
  /** How often the host looks whether the engine has a parent (engine.links() is not free: not every tick). */
  seekParentCheckMs: 500,
  /**
   * A joiner (never had a parent, never asked) asks at once, without seekParentAfterMs, as soon
   * as it plays a rendition, unless the tracker's optimizer places peers (welcome.optimizer: in a
   * flash crowd, eager joiners took the free slots in arrival order and the optimizer had to undo
   * it; simulator chandelier-300, Chandelier: 84.0% from peers without, 79.0% with), looking
   * every seekParentEagerCheckMs during its first seekParentEagerMs: the tracker's welcome sample
   * is blind to renditions (in a two-rendition channel half of it plays the other one), and the
   * catch-up segments a joiner loads first are due within a second or two.
   */
  seekParentEagerMs: 10_000,
  seekParentEagerCheckMs: 100,
} as const;

/** Extra knobs beyond the PeerHostOptions contract (tests, tuning). */
export interface PeerHostExtraOptions {
  timers?: Timers;
  /** Uniform [0,1): jitter and candidate shuffling. Default Math.random. */
  random?: () => number;
  peersIntervalMs?: number;
  peersRequestMinMs?: number;
  failureBackoffMs?: number;
  maxFailureBackoffMs?: number;
  linkClosedBackoffMs?: number;
  maxPendingIncoming?: number;
  /** Drop-the-worst period (0 = never). */
  replaceIntervalMs?: number;
  /** Tracker reconnect back-off bounds (default 1 s -> 30 s). */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
}

export interface PeerHostStatsDetail extends PeerHostStats {
  /** Links handed to the engine and still open. */
  links: number;
  incomingAccepted: number;
  rejectsSent: number;
  glareResolved: number;
  linksClosed: number;
  /** Neighbors dropped to make room for fresh candidates. */
  neighborsReplaced: number;
  /** ICE restart attempts on open links, outages they repaired, and outages given up (link closed). */
  iceRestarts: number;
  iceRecoveries: number;
  iceRestartGiveUps: number;
  /** Tracker reconnections because it did not answer a probe after a link outage. */
  trackerProbeReconnects: number;
  /** Optimizer assignments handed to the engine, and connections opened to an assigned parent. */
  assignments: number;
  assignConnects: number;
  /** Full, we made room for an incoming offer that said it was for an assigned link. */
  assignedRoomMade: number;
  /** Connections opened because the engine climbs toward a shallower parent (EngineEvents 'climb'). */
  climbConnects: number;
  /** Parent candidates asked of the tracker (no parent for seekParentAfterMs), and connections opened to them. */
  parentSeeks: number;
  parentSeekConnects: number;
  /** Renditions relayed on the optimizer's request (besides the one played). */
  relaying: string[];
  knownPeers: number;
  tracker: SignalingClientStats;
}

interface Conn {
  remoteId: string;
  initiator: boolean;
  connector: PeerConnector;
  state: 'connecting' | 'open';
  startedAt: number;
  /** The transport's Link once open (its `relayed` goes into reports). */
  link?: Link;
  /** Opened for an optimizer assignment: on open, room is made for it at the engine's maximum. */
  assigned?: boolean;
}

interface Backoff {
  failures: number;
  until: number;
  /** Set once the peer failed too often: no attempts until `until`, then a fresh start. */
  givenUp?: boolean;
  /**
   * The last failure was the peer answering `reject: full` to a plain offer: it is reachable, and
   * an offer for an assigned link makes it make room, so an assignment does not wait this out.
   */
  fullToPlainOffer?: boolean;
}

export class PeerHost {
  private readonly engine: EngineApi;
  private readonly transport: Transport;
  private readonly log: Logger;
  private readonly timers: Timers;
  private readonly random: () => number;
  private readonly target: number;
  private readonly tickMs: number;
  private readonly reportMs: number;
  private readonly cfg: Required<Omit<PeerHostExtraOptions, 'timers' | 'random'>>;
  private readonly client: SignalingClient;
  private readonly myId: string;
  private readonly extraReport: (() => Record<string, number | string>) | null;
  /** Bad pieces per sending neighbor, and bans since the last report (for the tracker's dashboard). */
  private readonly badBy = new Map<string, number>();
  private pendingBans: ReportBan[] = [];

  private readonly conns = new Map<string, Conn>();
  private readonly known = new Map<string, PeerInfo>();
  /** Renditions relayed on the optimizer's request (the last relay message applied). */
  private relaying: string[] = [];
  private readonly backoff = new Map<string, Backoff>();
  private iceServers: IceServer[] = [];
  private running = false;
  private stopped = false;
  private tickTimer: TimerHandle | null = null;
  private reportTimer: TimerHandle | null = null;
  private maintainTimer: TimerHandle | null = null;
  private lastPeersRequest = -Infinity;
  private startPromise: Promise<void> | null = null;
  private resolveStart: (() => void) | null = null;
  private rejectStart: ((err: Error) => void) | null = null;
  private readonly counters = {
    connectAttempts: 0,
    connectFailures: 0,
    incomingAccepted: 0,
    rejectsSent: 0,
    glareResolved: 0,
    linksClosed: 0,
    neighborsReplaced: 0,
    iceRestarts: 0,
    iceRecoveries: 0,
    iceRestartGiveUps: 0,
    trackerProbeReconnects: 0,
    assignments: 0,
    assignConnects: 0,
    assignedRoomMade: 0,
    climbConnects: 0,
    parentSeeks: 0,
    parentSeekConnects: 0,
  };
  /** Since when the engine has had no parent in the rendition it plays (null: it has one), and the last seek. */
  private parentlessSince: number | null = null;
  private lastSeekAt = -Infinity;
  private lastSeekCheckAt = -Infinity;
  private startedAt = 0;
  private hadParent = false;
  /** The tracker runs the optimizer (welcome.optimizer): joiners wait for its plan. */
  private trackerPlaces = false;
  private lastIncomingRoomAt = -Infinity;
  /** Last message from the tracker (any), and the pending probe (see probeTracker). */
  private trackerHeardAt = -Infinity;
  private probeTimer: TimerHandle | null = null;
  private lastReplace = 0;

  constructor(opts: PeerHostOptions & PeerHostExtraOptions) {
    if (!opts || !opts.engine || !opts.transport || !opts.webSocket) throw new TypeError('engine, transport and webSocket are required');
    if (typeof opts.trackerUrl !== 'string' || !/^wss?:\/\//i.test(opts.trackerUrl)) throw new TypeError('trackerUrl must be ws:// or wss://');
    const posInt = (v: number | undefined, d: number, name: string, min = 1): number => {
      const x = v ?? d;
      if (!Number.isInteger(x) || x < min) throw new TypeError(`${name} must be an integer >= ${min}`);
      return x;
    };
    this.engine = opts.engine;
    this.myId = opts.engine.peerId;
    this.transport = opts.transport;
    this.log = opts.log ?? silentLogger;
    this.timers = opts.timers ?? globalTimers;
    this.random = opts.random ?? Math.random;
    this.target = posInt(opts.targetNeighbors, HOST_DEFAULTS.targetNeighbors, 'targetNeighbors', 0);
    this.tickMs = posInt(opts.tickMs, HOST_DEFAULTS.tickMs, 'tickMs');
    this.reportMs = posInt(opts.reportMs, HOST_DEFAULTS.reportMs, 'reportMs');
    this.extraReport = typeof opts.extraReport === 'function' ? opts.extraReport : null;
    this.engine.on('bad-piece', (e) => {
      if (this.badBy.size < 1000 || this.badBy.has(e.peerId)) this.badBy.set(e.peerId, (this.badBy.get(e.peerId) ?? 0) + 1);
    });
    this.engine.on('neighbor-banned', (e) => {
      if (this.pendingBans.length < REPORT_MAX_BANS) this.pendingBans.push({ peerId: e.peerId, reason: e.reason });
    });
    this.engine.on('climb', (e) => this.onClimb(e.peerId));
    this.cfg = {
      peersIntervalMs: posInt(opts.peersIntervalMs, HOST_DEFAULTS.peersIntervalMs, 'peersIntervalMs'),
      peersRequestMinMs: posInt(opts.peersRequestMinMs, HOST_DEFAULTS.peersRequestMinMs, 'peersRequestMinMs', 0),
      failureBackoffMs: posInt(opts.failureBackoffMs, HOST_DEFAULTS.failureBackoffMs, 'failureBackoffMs'),
      maxFailureBackoffMs: posInt(opts.maxFailureBackoffMs, HOST_DEFAULTS.maxFailureBackoffMs, 'maxFailureBackoffMs'),
      linkClosedBackoffMs: posInt(opts.linkClosedBackoffMs, HOST_DEFAULTS.linkClosedBackoffMs, 'linkClosedBackoffMs', 0),
      maxPendingIncoming: posInt(opts.maxPendingIncoming, HOST_DEFAULTS.maxPendingIncoming, 'maxPendingIncoming'),
      replaceIntervalMs: posInt(opts.replaceIntervalMs, HOST_DEFAULTS.replaceIntervalMs, 'replaceIntervalMs', 0),
      reconnectMinMs: posInt(opts.reconnectMinMs, 1000, 'reconnectMinMs'),
      reconnectMaxMs: posInt(opts.reconnectMaxMs, 30_000, 'reconnectMaxMs'),
    };
    this.client = new SignalingClient(
      {
        url: opts.trackerUrl,
        channel: opts.channel,
        kind: opts.kind,
        peerId: this.myId,
        publishKey: opts.publishKey,
        webSocket: opts.webSocket,
        log: this.log,
        timers: this.timers,
        random: this.random,
        minBackoffMs: this.cfg.reconnectMinMs,
        maxBackoffMs: this.cfg.reconnectMaxMs,
      },
      {
        onWelcome: (m) => ((this.trackerHeardAt = this.timers.now()), this.onWelcome(m)),
        onPeers: (peers, parents) => ((this.trackerHeardAt = this.timers.now()), this.onPeers(peers), this.onParentCandidates(parents ?? [])),
        onSignal: (from, kind, data) => ((this.trackerHeardAt = this.timers.now()), this.onSignal(from, kind, data)),
        onDisconnected: () => this.log.info({}, 'tracker disconnected; links stay up, reconnecting'),
        onAssign: (rendition, parent) => ((this.trackerHeardAt = this.timers.now()), this.onAssign(rendition, parent)),
        onRelay: (renditions) => ((this.trackerHeardAt = this.timers.now()), this.onRelay(renditions)),
      },
    );
  }

  get peerId(): string {
    return this.myId;
  }

  /**
   * Connects to the tracker and starts ticking the engine. Resolves after the first welcome
   * (idempotent: later calls return the same promise); rejects if stop() comes first. The host
   * keeps reconnecting to the tracker in the background either way.
   */
  start(): Promise<void> {
    if (this.startPromise) return this.startPromise;
    this.startPromise = new Promise<void>((resolve, reject) => {
      this.resolveStart = resolve;
      this.rejectStart = reject;
    });
    if (this.stopped) {
      this.rejectStart?.(new Error('PeerHost stopped'));
      return this.startPromise;
    }
    this.running = true;
    this.startedAt = this.timers.now();
    this.tickTimer = this.timers.setInterval(() => this.safeTick(), this.tickMs);
    this.reportTimer = this.timers.setInterval(() => this.report(), this.reportMs);
    this.maintainTimer = this.timers.setInterval(() => this.maintain(), this.cfg.peersIntervalMs);
    this.client.start();
    return this.startPromise;
  }

  /** Leaves the tracker, closes every connection (the engine sees its links close), stops timers. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.running = false;
    for (const t of [this.tickTimer, this.reportTimer, this.maintainTimer]) if (t !== null) this.timers.clearInterval(t);
    this.tickTimer = this.reportTimer = this.maintainTimer = null;
    if (this.probeTimer !== null) this.timers.clearTimeout(this.probeTimer);
    this.probeTimer = null;
    this.client.stop();
    for (const c of [...this.conns.values()]) {
      this.conns.delete(c.remoteId);
      try {
        c.connector.close();
      } catch (err) {
        this.log.debug({ err: String(err) }, 'connector close failed');
      }
    }
    this.known.clear();
    this.backoff.clear();
    if (this.rejectStart) this.rejectStart(new Error('PeerHost stopped before the tracker answered'));
    this.resolveStart = this.rejectStart = null;
  }

  /** ICE servers from the latest welcome (empty before the first one). */
  getIceServers(): IceServer[] {
    return this.iceServers.map((s) => ({ ...s }));
  }

  stats(): PeerHostStatsDetail {
    let connecting = 0;
    let links = 0;
    for (const c of this.conns.values()) c.state === 'open' ? links++ : connecting++;
    return {
      trackerConnected: this.client.isWelcomed,
      connecting,
      connectAttempts: this.counters.connectAttempts,
      connectFailures: this.counters.connectFailures,
      links,
      incomingAccepted: this.counters.incomingAccepted,
      rejectsSent: this.counters.rejectsSent,
      glareResolved: this.counters.glareResolved,
      linksClosed: this.counters.linksClosed,
      neighborsReplaced: this.counters.neighborsReplaced,
      iceRestarts: this.counters.iceRestarts,
      iceRecoveries: this.counters.iceRecoveries,
      iceRestartGiveUps: this.counters.iceRestartGiveUps,
      trackerProbeReconnects: this.counters.trackerProbeReconnects,
      assignments: this.counters.assignments,
      assignConnects: this.counters.assignConnects,
      assignedRoomMade: this.counters.assignedRoomMade,
      climbConnects: this.counters.climbConnects,
      parentSeeks: this.counters.parentSeeks,
      parentSeekConnects: this.counters.parentSeekConnects,
      relaying: [...this.relaying],
      knownPeers: this.known.size,
      tracker: this.client.stats(),
    };
  }

  // ------------------------------------------------------------------ tracker events

  private onWelcome(m: WelcomeMessage): void {
    if (this.stopped) return;
    this.iceServers = m.iceServers;
    this.trackerPlaces = m.optimizer === true;
    this.log.info({ peerId: m.peerId, peers: m.peers.length, iceServers: m.iceServers.length }, 'joined tracker');
    const resolve = this.resolveStart;
    this.resolveStart = this.rejectStart = null;
    resolve?.();
    // Links in an ICE restart outage: restart offers sent while the tracker was unreachable were
    // lost (our own network moved, typically): try again at once, through the new connection.
    for (const c of this.conns.values()) {
      if (c.state !== 'open') continue;
      try {
        if (c.connector.restartIce?.('tracker reconnected', true)) this.log.debug({ remoteId: c.remoteId }, 'ICE restart after tracker reconnect');
      } catch (err) {
        this.log.debug({ err: String(err) }, 'restartIce threw');
      }
    }
    this.onPeers(m.peers);
  }

  private onPeers(peers: PeerInfo[]): void {
    if (this.stopped) return;
    for (const p of peers) {
      if (p.peerId === this.myId) continue;
      this.known.delete(p.peerId); // re-insert: most recently seen last
      this.known.set(p.peerId, p);
    }
    while (this.known.size > HOST_DEFAULTS.maxKnownPeers) {
      const oldest = this.known.keys().next().value as string;
      this.known.delete(oldest);
    }
    this.fillNeighbors(peers.map((p) => p.peerId));
  }

  private onSignal(from: string, _kind: PeerKind, data: SignalData): void {
    if (this.stopped || from === this.myId) return;
    const existing = this.conns.get(from);
    const isOffer = 'sdp' in data && data.sdp.type === 'offer';
    if (existing) {
      if (isOffer) {
        if (existing.initiator && existing.state === 'connecting') {
          // Glare: both offered. The lower peerId stays initiator.
          if (this.myId < from) return; // they will drop theirs and answer ours
          this.counters.glareResolved++;
          this.log.debug({ remoteId: from }, 'glare: dropping our offer, answering theirs');
          this.conns.delete(from);
          existing.connector.close();
          this.accept(from, data);
          return;
        }
        if (existing.state === 'open' && existing.connector.isRenegotiation?.(data) === true) {
          // An ICE restart of this very connection: answered in place, the link stays open.
          void existing.connector.handleSignal(data).catch((err: unknown) => this.log.debug({ err: String(err) }, 'handleSignal(restart offer) failed'));
          return;
        }
        // A fresh offer on a live or answering connection: the remote restarted. Replace it.
        this.log.debug({ remoteId: from, state: existing.state }, 'new offer replaces an existing connection');
        this.conns.delete(from);
        existing.connector.close();
        this.accept(from, data);
        return;
      }
      void existing.connector.handleSignal(data).catch((err: unknown) => this.log.debug({ err: String(err) }, 'handleSignal failed'));
      return;
    }
    if (isOffer) this.accept(from, data);
    // Candidates/answers/rejects for connections we no longer have are stale: ignore them.
  }

  // ------------------------------------------------------------------ connections

  private pendingIncoming(): number {
    let n = 0;
    for (const c of this.conns.values()) if (!c.initiator && c.state === 'connecting') n++;
    return n;
  }

  /** An offer from a peer we hold no connection with (any old one was closed just before). */
  private accept(from: string, offer: SignalData): void {
    if ('assigned' in offer && offer.assigned === true && !this.engine.wantsNeighbor(from)) this.makeRoomForIncoming(from);
    if (!this.engine.wantsNeighbor(from) || this.pendingIncoming() >= this.cfg.maxPendingIncoming) {
      this.counters.rejectsSent++;
      this.client.signal(from, { reject: 'full' });
      return;
    }
    this.counters.incomingAccepted++;
    const conn = this.createConn(from, false);
    if (!conn) {
      this.client.signal(from, { reject: 'error' });
      return;
    }
    void conn.connector.handleSignal(offer).catch((err: unknown) => this.log.debug({ err: String(err) }, 'handleSignal(offer) failed'));
  }

  /** Creates a connector; null (counted as a failed attempt, peer backed off) if the transport throws. */
  private createConn(remoteId: string, initiator: boolean, assigned = false): Conn | null {
    this.counters.connectAttempts++;
    let conn: Conn | null = null;
    let connector: PeerConnector;
    try {
      connector = this.makeConnector(remoteId, initiator, assigned, () => conn);
    } catch (err) {
      this.log.warn({ remoteId, err: String(err) }, 'transport.connect threw');
      this.counters.connectFailures++;
      const b = this.backoff.get(remoteId);
      const failures = (b?.failures ?? 0) + 1;
      this.backoff.set(remoteId, { failures, until: this.timers.now() + this.cfg.maxFailureBackoffMs });
      return null;
    }
    conn = { remoteId, initiator, connector, state: 'connecting', startedAt: this.timers.now(), ...(assigned ? { assigned } : {}) };
    this.conns.set(remoteId, conn);
    return conn;
  }

  private makeConnector(remoteId: string, initiator: boolean, assigned: boolean, current: () => Conn | null): PeerConnector {
    return this.transport.connect({
      remoteId,
      initiator,
      iceServers: this.iceServers,
      sendSignal: (signal) => {
        // our offers for an assigned link say so: a full remote makes room rather than refuse
        const data: SignalData = assigned && 'sdp' in signal && signal.sdp.type === 'offer' ? { ...signal, assigned: true } : signal;
        const conn = current();
        if (conn && this.conns.get(remoteId) === conn) this.client.signal(remoteId, data);
        else if (!conn && !this.stopped) this.client.signal(remoteId, data); // synchronous send during connect()
      },
      onLink: (link) => {
        const conn = current();
        if (!conn || this.conns.get(remoteId) !== conn || this.stopped) {
          link.close();
          return;
        }
        this.onLinkOpen(conn, link);
      },
      onFailed: (reason) => {
        const conn = current();
        if (!conn || this.conns.get(remoteId) !== conn) return;
        this.onConnectFailed(conn, reason);
      },
      onIceRestart: (e) => {
        if (e.type === 'down') this.probeTracker();
        if (e.type === 'restart') this.counters.iceRestarts++;
        else if (e.type === 'recovered' && e.attempt > 0) this.counters.iceRecoveries++;
        else if (e.type === 'gave-up') this.counters.iceRestartGiveUps++;
        if (e.type !== 'down') this.log.debug({ remoteId, ...e }, `ICE restart ${e.type}`);
      },
    });
  }

  private onLinkOpen(conn: Conn, link: Link): void {
    conn.state = 'open';
    conn.link = link;
    this.backoff.delete(conn.remoteId);
    this.log.debug({ remoteId: conn.remoteId, ms: Math.round(this.timers.now() - conn.startedAt), initiator: conn.initiator }, 'link open');
    if (conn.assigned && !this.engine.wantsNeighbor(conn.remoteId)) this.makeRoomFor(conn.remoteId);
    const wrapped = new HostLink(link, () => this.onLinkClosed(conn));
    this.engine.addLink(wrapped);
  }

  private onLinkClosed(conn: Conn): void {
    if (this.conns.get(conn.remoteId) !== conn) return;
    this.conns.delete(conn.remoteId);
    this.counters.linksClosed++;
    if (this.stopped) return;
    this.setBackoff(conn.remoteId, this.cfg.linkClosedBackoffMs, false);
    this.log.debug({ remoteId: conn.remoteId }, 'link closed');
    this.afterChurn();
  }

  private onConnectFailed(conn: Conn, reason: string): void {
    this.conns.delete(conn.remoteId);
    this.counters.connectFailures++;
    if (this.stopped) return;
    const b = this.backoff.get(conn.remoteId);
    const failures = (b?.failures ?? 0) + 1;
    const base = Math.min(this.cfg.maxFailureBackoffMs, this.cfg.failureBackoffMs * 2 ** Math.min(failures - 1, 20));
    const fullToPlainOffer = !conn.assigned && conn.initiator && reason === 'rejected: full';
    this.backoff.set(conn.remoteId, { failures, until: this.timers.now() + base * (0.75 + 0.5 * this.random()), ...(fullToPlainOffer ? { fullToPlainOffer } : {}) });
    this.log.debug({ remoteId: conn.remoteId, reason, failures }, 'connect failed');
    this.afterChurn();
  }

  /**
   * The tracker's optimizer assigned our parent in a rendition (advice): the engine applies it
   * make-before-break; we connect to the parent if it is not a neighbor yet, beyond
   * targetNeighbors if need be (an assigned parent is worth more than a random neighbor).
   */
  private onAssign(rendition: string, parent: string | null): void {
    if (this.stopped || typeof this.engine.assignParent !== 'function') return;
    try {
      this.engine.assignParent(rendition, parent);
    } catch (err) {
      this.log.debug({ rendition, parent, err: String(err) }, 'engine.assignParent threw');
      return;
    }
    this.counters.assignments++;
    if (parent === null) return;
    // A recent failure backs the peer off as usual (the assignment then expires in the engine and
    // the optimizer notices it was not honoured); a closed link's short back-off does not count.
    if (!this.connectToParent(parent, false)) return;
    this.counters.assignConnects++;
    this.log.debug({ rendition, parent }, 'connecting to the assigned parent');
  }

  /**
   * Opens a link to a would-be parent (an assignment or a climb) unless we hold one or it is
   * backed off: after a failure only, or after any close too (`anyBackoff`). On open, room is
   * made for it at the engine's maximum (Conn.assigned). True if a connection was started.
   */
  private connectToParent(peerId: string, anyBackoff: boolean): boolean {
    if (this.stopped || !this.running || !this.client.isWelcomed || peerId === this.myId || this.conns.has(peerId)) return false;
    const b = this.backoff.get(peerId);
    const waitOut = anyBackoff || (b !== undefined && b.failures > 0 && !b.fullToPlainOffer);
    if (b && waitOut && b.until > this.timers.now()) return false;
    return this.createConn(peerId, true, true) !== null;
  }

  /**
   * The engine climbs toward the origin: it asks for a link to a shallower peer a neighbor named
   * as its parent. Connected as for an assignment (room is made at the engine's maximum), unless
   * that peer is backed off after a failure.
   */
  private onClimb(peerId: string): void {
    if (!this.connectToParent(peerId, true)) return;
    this.counters.climbConnects++;
    this.log.debug({ peerId }, 'connecting to a shallower peer (climb)');
  }

  /**
   * The optimizer asks us to relay renditions we do not play: the engine then takes a parent in
   * them and offers their slots (the optimizer's assignments place it in their trees).
   */
  private onRelay(renditions: string[]): void {
    if (this.stopped || typeof this.engine.setRelayRenditions !== 'function') return;
    try {
      this.engine.setRelayRenditions(renditions);
      this.relaying = renditions.slice();
    } catch (err) {
      this.log.debug({ renditions, err: String(err) }, 'engine.setRelayRenditions threw');
      return;
    }
    this.log.info({ renditions }, renditions.length ? 'relaying on the optimizer\'s request' : 'relaying stopped');
  }

  /**
   * An offer for a link the optimizer assigned us as parent, while we are at the engine's
   * maximum: room is made as on the child's side. The claim is the offerer's own, so at most one
   * neighbor goes per assignedRoomEveryMs (and never one with an upload link, see worstNeighbor).
   */
  private makeRoomForIncoming(from: string): void {
    const now = this.timers.now();
    if (now - this.lastIncomingRoomAt < HOST_DEFAULTS.assignedRoomEveryMs) return;
    this.lastIncomingRoomAt = now;
    this.counters.assignedRoomMade++;
    this.makeRoomFor(from);
  }

  /** At the engine's maximum: drop its least useful neighbor so an assigned parent fits. */
  private makeRoomFor(peerId: string): void {
    const worst = this.engine.worstNeighbor?.(0) ?? null; // however young: the assignment outranks it
    if (worst === null || worst === peerId || !this.engine.dropNeighbor) return;
    this.counters.neighborsReplaced++;
    this.log.debug({ remoteId: worst, for: peerId }, 'dropping the least useful neighbor for an assigned parent');
    this.engine.dropNeighbor(worst, 'replaced');
  }

  /**
   * A link outage may mean that our own network moved: then the tracker connection is dead as
   * well, silently (its packets vanish; TCP notices after minutes), and ICE restart offers would
   * go nowhere. Ask the tracker something it answers; silence for trackerProbeTimeoutMs -> drop
   * the connection and reconnect now (the resume token keeps our id; after the welcome, links
   * still in an outage restart at once, see onWelcome).
   */
  private probeTracker(): void {
    if (this.probeTimer !== null || this.stopped || !this.client.isWelcomed) return;
    const sentAt = this.timers.now();
    if (!this.client.requestPeers(1)) return;
    this.probeTimer = this.timers.setTimeout(() => {
      this.probeTimer = null;
      if (this.stopped || this.trackerHeardAt >= sentAt) return;
      this.counters.trackerProbeReconnects++;
      this.log.info({ ms: HOST_DEFAULTS.trackerProbeTimeoutMs }, 'tracker silent after a link outage; reconnecting');
      this.client.stop();
      this.client.start();
    }, HOST_DEFAULTS.trackerProbeTimeoutMs);
  }

  private setBackoff(peerId: string, ms: number, countFailure: boolean): void {
    const b = this.backoff.get(peerId);
    this.backoff.set(peerId, { failures: (b?.failures ?? 0) + (countFailure ? 1 : 0), until: this.timers.now() + ms });
  }

  private inBackoff(peerId: string, now: number): boolean {
    const b = this.backoff.get(peerId);
    return b !== undefined && b.until > now;
  }

  /** After a failure or a closed link: try known peers, and ask the tracker (rate-limited). */
  private afterChurn(): void {
    if (!this.running) return;
    this.fillNeighbors();
    if (this.conns.size < this.target) this.requestPeers();
  }

  private requestPeers(): void {
    const now = this.timers.now();
    if (now - this.lastPeersRequest < this.cfg.peersRequestMinMs) return;
    if (!this.client.isWelcomed) return;
    this.lastPeersRequest = now;
    this.client.requestPeers(Math.max(this.target * 2, 8));
  }

  /** Initiates connections until target is reached; `preferred` (a fresh sample) first. */
  private fillNeighbors(preferred: string[] = []): void {
    if (!this.running || !this.client.isWelcomed) return;
    const now = this.timers.now();
    const seen = new Set<string>();
    const order = [...preferred];
    // Then the other known peers, shuffled so that peers don't all pick the same ones.
    const rest = [...this.known.keys()];
    for (let i = rest.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [rest[i], rest[j]] = [rest[j], rest[i]];
    }
    order.push(...rest);
    for (const id of order) {
      if (this.conns.size >= this.target) break;
      if (seen.has(id)) continue;
      seen.add(id);
      if (id === this.myId || this.conns.has(id) || this.inBackoff(id, now)) continue;
      if (!this.known.has(id)) continue;
      if (!this.engine.wantsNeighbor(id)) continue;
      this.createConn(id, true);
    }
  }

  /** Periodic: ask for peers while below target, retry known peers whose back-off expired. */
  private maintain(): void {
    if (!this.running) return;
    const now = this.timers.now();
    for (const [id, b] of this.backoff) {
      if (b.until <= now && b.failures === 0) this.backoff.delete(id);
      if (b.until > now) continue;
      if (b.givenUp) {
        // The give-up period is over: the peer gets a fresh cycle of attempts if proposed again.
        this.backoff.delete(id);
      } else if (b.failures >= HOST_DEFAULTS.giveUpAfterFailures) {
        // Give up on peers that keep failing; the back-off entry outlives the tracker's re-proposals.
        this.backoff.set(id, { failures: b.failures, until: now + HOST_DEFAULTS.giveUpMs, givenUp: true });
        this.known.delete(id);
        this.log.debug({ remoteId: id, failures: b.failures }, 'giving up on peer');
      }
    }
    if (this.conns.size < this.target) {
      this.fillNeighbors();
      if (this.conns.size < this.target) this.requestPeers();
    } else {
      this.replaceWorst(now);
    }
  }

  /** Drop the least useful neighbor when a fresh candidate is waiting (bounded, gradual). */
  private replaceWorst(now: number): void {
    if (this.cfg.replaceIntervalMs === 0 || now - this.lastReplace < this.cfg.replaceIntervalMs) return;
    if (!this.client.isWelcomed || !this.engine.worstNeighbor || !this.engine.dropNeighbor) return;
    let candidate = false;
    for (const id of this.known.keys()) {
      if (id !== this.myId && !this.conns.has(id) && !this.inBackoff(id, now)) { candidate = true; break; }
    }
    if (!candidate) {
      this.lastReplace = now;
      this.requestPeers(); // fresh samples for the next round
      return;
    }
    const worst = this.engine.worstNeighbor();
    this.lastReplace = now;
    if (worst === null) return;
    this.counters.neighborsReplaced++;
    this.log.debug({ remoteId: worst }, 'replacing the least useful neighbor');
    this.engine.dropNeighbor(worst, 'replaced');
    // the link closes -> onLinkClosed -> afterChurn connects a candidate
  }

  private safeTick(): void {
    try {
      this.engine.tick();
    } catch (err) {
      this.log.error({ err: String(err) }, 'engine.tick threw');
    }
    this.seekParent();
  }

  /**
   * No parent in the rendition we play for seekParentAfterMs (a joiner: at once): our neighbors
   * cannot feed us (none is fed with a slot for us), so ask the tracker, which has every peer's
   * report, for some that can. Neighbor sets are random: without this a peer may never meet a
   * parent.
   */
  private seekParent(): void {
    if (!this.running || !this.client.isWelcomed) return;
    const now = this.timers.now();
    // a joiner: it never had a parent and never asked (and the tracker's optimizer does not place it)
    const joiner = this.lastSeekAt === -Infinity && !this.hadParent && !this.trackerPlaces;
    const checkEvery = joiner && now - this.startedAt < HOST_DEFAULTS.seekParentEagerMs ? HOST_DEFAULTS.seekParentEagerCheckMs : HOST_DEFAULTS.seekParentCheckMs;
    if (now - this.lastSeekCheckAt < checkEvery || now - this.lastSeekAt < HOST_DEFAULTS.seekParentEveryMs) return;
    this.lastSeekCheckAt = now;
    let view: UploadLinksView | null;
    try {
      view = uploadLinksOf(this.engine);
    } catch {
      view = null;
    }
    const r = view?.playing;
    if (!view || r === undefined || view.parents[r] !== undefined) {
      if (r !== undefined && view?.parents[r] !== undefined) this.hadParent = true;
      this.parentlessSince = null;
      return;
    }
    this.parentlessSince ??= now;
    if (!joiner && now - this.parentlessSince < HOST_DEFAULTS.seekParentAfterMs) return;
    this.lastSeekAt = now;
    this.counters.parentSeeks++;
    const slots = Math.max(0, Math.min(PARENT_REQUEST_MAX_SLOTS, Math.floor(view.capacity[r] ?? 0)));
    this.client.requestPeers(Math.max(this.target * 2, 8), { rendition: r, slots });
  }

  /** The tracker's parent candidates: connected to as for an assignment (the engine asks them for a slot once linked). */
  private onParentCandidates(parents: PeerInfo[]): void {
    if (this.stopped) return;
    for (const p of parents.slice(0, HOST_DEFAULTS.seekParentCandidates)) {
      if (!this.connectToParent(p.peerId, false)) continue;
      this.counters.parentSeekConnects++;
      this.log.debug({ peerId: p.peerId }, 'connecting to a parent candidate');
    }
  }

  private report(): void {
    if (!this.client.isWelcomed) return;
    let s;
    try {
      s = this.engine.stats();
    } catch (err) {
      this.log.error({ err: String(err) }, 'engine.stats threw');
      return;
    }
    const h = this.stats();
    const rejected = Object.values(s.rejectedFrames ?? {}).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
    const stats: Record<string, number> = {
      bytesFromPeers: s.bytesFromPeers,
      bytesFromOriginPeer: s.bytesFromOriginPeer,
      bytesFromHttp: s.bytesFromHttp,
      bytesUploaded: s.bytesUploaded,
      peers: s.peers,
      badPieces: s.badPieces,
      rejectedFrames: rejected,
      segmentsStored: s.segmentsStored,
      links: h.links,
      connecting: h.connecting,
      connectAttempts: h.connectAttempts,
      connectFailures: h.connectFailures,
      iceRestarts: h.iceRestarts,
      iceRecoveries: h.iceRecoveries,
    };
    for (const k of Object.keys(stats)) if (!Number.isFinite(stats[k])) delete stats[k];
    // The optimizer's inputs: slots and depth per rendition, and the rendition of each upload link.
    let view: UploadLinksView | null = null;
    try {
      view = uploadLinksOf(this.engine);
      if (view) Object.assign(stats, renditionStats(view));
    } catch (err) {
      this.log.debug({ err: String(err) }, 'engine.links threw');
    }
    const extra: ReportExtra = {};
    try {
      const links = this.engine.neighborStats().slice(0, REPORT_MAX_LINKS).map((n) => {
        const l: ReportLink = { peerId: n.peerId, sent: n.bytesSent, received: n.bytesReceived };
        if (n.isParent) l.parent = true;
        if (n.isChild) l.child = true;
        const relayed = this.conns.get(n.peerId)?.link?.relayed;
        if (typeof relayed === 'boolean') l.relayed = relayed;
        const bad = this.badBy.get(n.peerId);
        if (bad) l.bad = bad;
        return l;
      });
      extra.links = tagLinkRenditions(links, view);
    } catch (err) {
      this.log.debug({ err: String(err) }, 'engine.neighborStats threw');
    }
    if (this.pendingBans.length > 0) {
      extra.bans = this.pendingBans;
      this.pendingBans = [];
    }
    if (this.relaying.length > 0) extra.relays = this.relaying.slice();
    // What the engine plays (a Node viewer has no page to say it; a page's own label wins below):
    // the optimizer places a viewer in its rendition's tree from its first report.
    if (view?.playing) extra.rendition = view.playing;
    if (this.extraReport) {
      try {
        for (const [k, v] of Object.entries(this.extraReport())) {
          if (typeof v === 'number') stats[k] = v;
          else if (k === 'rendition' || k === 'nat' || k === 'region') extra[k] = v;
        }
      } catch (err) {
        this.log.debug({ err: String(err) }, 'extraReport threw');
      }
    }
    this.client.report(stats, extra);
  }
}

/**
 * The Link handed to the engine: forwards everything to the transport's Link, and tells the host
 * when it closes (the engine owns onMessage/onClose, so the host cannot use them itself).
 */
class HostLink implements Link {
  onClose: (() => void) | null = null;
  private closedOnce = false;

  constructor(private readonly inner: Link, private readonly hostOnClose: () => void) {
    inner.onClose = () => this.closed();
  }

  get remoteId(): string {
    return this.inner.remoteId;
  }

  /** The transport's ConnectionInfo (direct or relayed), when it has one. */
  get connection(): unknown {
    return (this.inner as { connection?: unknown }).connection;
  }

  /** Link.relayed of the transport's Link (live: an ICE restart may change it). */
  get relayed(): boolean | undefined {
    return this.inner.relayed;
  }

  get bufferedAmount(): number {
    return this.inner.bufferedAmount;
  }

  get onMessage(): ((frame: Uint8Array) => void) | null {
    return this.inner.onMessage;
  }

  set onMessage(h: ((frame: Uint8Array) => void) | null) {
    this.inner.onMessage = h;
  }

  send(frame: Uint8Array): void {
    this.inner.send(frame);
  }

  close(): void {
    this.inner.close();
    // Transports call onClose from close(); make sure the host hears about it regardless.
    this.closed();
  }

  private closed(): void {
    if (this.closedOnce) return;
    this.closedOnce = true;
    this.hostOnClose();
    const cb = this.onClose;
    this.onClose = null;
    cb?.();
  }
}
