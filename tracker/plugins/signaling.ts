/**
 * GET /ws: the signaling WebSocket (peer/core/signaling.ts). One Session per connection:
 * rate limit -> size/type checks -> JSON schema -> dispatch. Never throws out of a handler.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyBaseLogger, FastifyPluginAsync } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import {
  MAX_PARENT_CANDIDATES,
  SIGNAL_MAX_BYTES,
  type ClientMessage,
  type JoinMessage,
  type ParentRequest,
  type PeerInfo,
  type SignalOut,
  type TrackerMessage,
} from '../../peer/core/signaling.js';
import { isValidName } from '../../peer/core/paths.js';
import type { PeerConn, TrackerContext } from '../context.js';
import { hostFromHeader, iceServersFor, urlHost } from '../ice.js';
import { TokenBucket } from '../rate-limit.js';
import type { PeerRecord } from '../registry.js';
import { parseClientMessage, type RejectReason } from '../schemas.js';
import { natTrackerFor, predictPair } from '../nat.js';
import { isRemote } from '../store/types.js';
import { addressPrefix } from '../optimizer/overlay.js';
import { pickParentCandidates } from '../parent-candidates.js';

/** WebSocket close codes used by the tracker. */
export const CLOSE_NORMAL = 1000;
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_POLICY = 1008;
export const CLOSE_TOO_BIG = 1009;

const OPEN = 1;

export function randomPeerId(): string {
  return randomBytes(12).toString('base64url');
}

function keyMatches(expected: string, given: string | undefined): boolean {
  if (given === undefined) return false;
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(given).digest();
  return timingSafeEqual(a, b);
}

/** Stateless proof that a connection was once welcomed as `peerId` in `channel`. */
export function resumeTokenFor(secret: Uint8Array, channel: string, peerId: string): string {
  return createHmac('sha256', secret).update(`${channel}\n${peerId}`).digest('base64url');
}

export const CLOSE_RESUMED = 4000;

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

export class Session implements PeerConn {
  peer: PeerRecord<PeerConn> | null = null;
  alive = true;
  /** The peer's address prefix (IPv4 /16, IPv6 /32): the optimizer's default locality scope. Never the address. */
  net: string | null = null;
  private closing = false;
  private drops = 0;
  private readonly bucket: TokenBucket;

  constructor(
    private readonly socket: WebSocket,
    /** URL-ready host the peer reached us at (for ICE server URLs). */
    private readonly host: string,
    private readonly ctx: TrackerContext,
    private readonly log: FastifyBaseLogger,
  ) {
    this.bucket = new TokenBucket({ ratePerSec: ctx.limits.ratePerSec, burst: ctx.limits.burst, clock: ctx.clock });
  }

  get bufferedAmount(): number {
    return this.socket.bufferedAmount;
  }

  sendJson(msg: object): boolean {
    if (this.socket.readyState !== OPEN) return false;
    this.socket.send(JSON.stringify(msg));
    return true;
  }

  private send(msg: TrackerMessage): boolean {
    return this.sendJson(msg);
  }

  close(code: number, reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.leaveChannel();
    this.socket.close(code, reason);
  }

  /** Counts a rejection and tells the client (the reason code first, then any detail). */
  private reject(reason: RejectReason, detail?: string): void {
    this.ctx.metrics.rejected.inc({ reason });
    this.log.debug({ reason, detail, peerId: this.peer?.peerId }, 'signaling message rejected');
    this.send({ type: 'error', reason: detail ? `${reason}: ${detail}` : reason });
  }

  onMessage(data: RawData, isBinary: boolean): void {
    if (this.closing) return;
    const { metrics, limits } = this.ctx;
    if (!this.bucket.tryTake()) {
      metrics.rateLimited.inc();
      if (++this.drops > limits.floodDropLimit) {
        metrics.floodClosed.inc();
        this.log.warn({ peerId: this.peer?.peerId, drops: this.drops }, 'closing flooding connection');
        this.close(CLOSE_POLICY, 'rate limit exceeded');
      }
      return;
    }
    try {
      const buf = toBuffer(data);
      if (buf.length > SIGNAL_MAX_BYTES) return this.reject('oversize');
      if (isBinary) return this.reject('binary frame');
      const parsed = parseClientMessage(buf.toString('utf8'));
      if (!parsed.ok) return this.reject(parsed.reason, parsed.detail);
      metrics.received.inc({ type: parsed.msg.type });
      this.dispatch(parsed.msg);
    } catch (err) {
      this.log.error({ err }, 'signaling handler failed');
      this.reject('internal error');
    }
  }

  private dispatch(msg: ClientMessage): void {
    if (msg.type === 'join') return this.join(msg);
    const peer = this.peer;
    if (!peer) return this.reject('not joined');
    const { registry, limits, random } = this.ctx;
    switch (msg.type) {
      case 'signal':
        return this.relay(peer, msg);
      case 'peers': {
        const max = Math.min(msg.max ?? limits.maxPeersPerRequest, limits.maxPeersPerRequest);
        // NAT traversal: likely-direct neighbors first (tracker/nat.ts).
        const peers = natTrackerFor(this.ctx).prefer(peer, max, (n) =>
          registry.sample(peer.channel, { exclude: peer.peerId, max: n, maxInfra: limits.maxInfraPerSample, random }));
        if (!msg.parentFor) {
          this.send({ type: 'peers', peers });
          return;
        }
        void this.answerWithParents(peer, msg.parentFor, peers);
        return;
      }
      case 'report': {
        natTrackerFor(this.ctx).noteReport(peer, msg);
        const outcome = this.ctx.stats.report(peer.channel, peer.peerId, msg);
        this.ctx.statsMetrics.observe(peer.channel, outcome);
        if (!outcome.accepted) return; // too frequent: dropped (counted), no answer
        peer.lastReport = msg.stats;
        peer.lastReportAt = this.ctx.now();
        // The optimizer's input, readable by every tracker sharing the store.
        this.ctx.store.putReport(peer, {
          stats: msg.stats,
          ...(msg.links ? { links: msg.links } : {}),
          ...(msg.rendition ? { rendition: msg.rendition } : {}),
          ...(msg.nat ? { nat: msg.nat } : {}),
          ...(msg.region ? { region: msg.region } : {}),
          ...(msg.bans ? { bans: msg.bans } : {}),
          ...(msg.relays ? { relays: msg.relays } : {}),
          ...(this.net ? { net: this.net } : {}),
        }, peer.lastReportAt);
        return;
      }
      case 'leave':
        this.log.debug({ peerId: peer.peerId, channel: peer.channel }, 'peer left');
        this.close(CLOSE_NORMAL, 'bye');
        return;
    }
  }

  /** A `peers` answer that also names parent candidates (tracker/parent-candidates.ts) for a peer without a parent. */
  private async answerWithParents(peer: PeerRecord<PeerConn>, want: ParentRequest, peers: PeerInfo[]): Promise<void> {
    this.ctx.metrics.parentRequests.inc();
    let parents: PeerInfo[] = [];
    try {
      const index = await this.ctx.parentIndex.get(peer.channel);
      const nat = natTrackerFor(this.ctx);
      const mine = nat.natOf(peer);
      // still in the channel (the index may be a second old), and not relay-only by the NAT table
      const reachable = (id: string) => {
        const rec = this.ctx.registry.get(peer.channel, id);
        return rec !== undefined && predictPair(mine, nat.natOf(rec)) !== 'relay';
      };
      parents = pickParentCandidates(index, { peerId: peer.peerId, rendition: want.rendition, slots: want.slots }, MAX_PARENT_CANDIDATES, this.ctx.random, reachable)
        .map((c) => ({ peerId: c.peerId, kind: c.kind }));
    } catch (err) {
      // the store failed (Redis down): a plain sample is still an answer
      this.log.debug({ err: String(err), channel: peer.channel }, 'parent candidates unavailable');
    }
    if (this.closing || this.peer !== peer) return;
    this.ctx.metrics.parentCandidates.inc(parents.length);
    this.send({ type: 'peers', peers, ...(parents.length > 0 ? { parents } : {}) });
  }

  private join(msg: JoinMessage): void {
    if (this.peer) return this.reject('already joined');
    if (!isValidName(msg.channel)) return this.reject('invalid channel');
    const { registry, limits, random, publishKey } = this.ctx;
    if (msg.kind === 'origin' && publishKey !== undefined && !keyMatches(publishKey, msg.publishKey)) {
      this.reject('bad publish key');
      this.log.warn({ channel: msg.channel }, 'origin join with a wrong publish key');
      this.close(CLOSE_POLICY, 'bad publish key');
      return;
    }
    if (msg.peerId !== undefined && msg.resumeToken !== undefined) {
      // A reconnecting peer proves it owns its id; its old connection may not have died yet here.
      const old = registry.get(msg.channel, msg.peerId);
      if (old && keyMatches(resumeTokenFor(this.ctx.resumeSecret, msg.channel, msg.peerId), msg.resumeToken)) {
        // The old connection may be on another tracker (it died, or the balancer moved us):
        // our join, once announced, makes that tracker close it.
        registry.remove(old);
        if (!isRemote(old.conn)) this.ctx.stats.peerLeft(old.channel, old.peerId);
        this.ctx.store.peerLeft(old);
        old.conn.close(CLOSE_RESUMED, 'resumed by a newer connection');
        this.log.info({ peerId: msg.peerId }, 'peer id resumed by a new connection');
      }
    }
    let peerId = msg.peerId !== undefined && !registry.has(msg.channel, msg.peerId) ? msg.peerId : randomPeerId();
    while (registry.has(msg.channel, peerId)) peerId = randomPeerId();
    const now = this.ctx.now();
    this.peer = registry.add({ peerId, kind: msg.kind, channel: msg.channel, joinedAt: now, conn: this });
    this.ctx.store.peerJoined(this.peer);
    this.ctx.stats.peerJoined(msg.channel, peerId, msg.kind);
    const peers = registry.sample(msg.channel, { exclude: peerId, max: limits.welcomePeers, maxInfra: limits.maxInfraPerSample, random });
    const resumeToken = resumeTokenFor(this.ctx.resumeSecret, msg.channel, peerId);
    this.send({
      type: 'welcome', peerId, iceServers: iceServersFor(this.ctx.ice, this.host, peerId, now), peers, resumeToken,
      ...(this.ctx.optimizerEnabled ? { optimizer: true } : {}),
    });
    this.log.info({ peerId, kind: msg.kind, channel: msg.channel, assigned: peerId !== msg.peerId }, 'peer joined');
  }

  private relay(peer: PeerRecord<PeerConn>, msg: SignalOut): void {
    const target = msg.to === peer.peerId ? undefined : this.ctx.registry.get(peer.channel, msg.to);
    if (!target) return this.reject('unknown peer');
    if (target.conn.bufferedAmount > this.ctx.limits.maxBufferedBytes) return this.reject('peer congested');
    if (target.conn.sendJson({ type: 'signal', from: peer.peerId, fromKind: peer.kind, data: msg.data })) {
      this.ctx.metrics.signalsRelayed.inc();
      if ('sdp' in msg.data && msg.data.sdp.type === 'offer') natTrackerFor(this.ctx).noteOffer(peer, target);
    } else {
      this.reject('unknown peer');
    }
  }

  private leaveChannel(): void {
    if (this.peer) {
      if (this.ctx.registry.remove(this.peer)) {
        this.ctx.stats.peerLeft(this.peer.channel, this.peer.peerId);
        this.ctx.store.peerLeft(this.peer);
      }
      this.peer = null;
    }
  }

  onClose(): void {
    this.closing = true;
    this.leaveChannel();
  }

  /** Heartbeat: returns false when the previous ping went unanswered (the socket is terminated). */
  heartbeat(): boolean {
    if (!this.alive) {
      this.log.debug({ peerId: this.peer?.peerId }, 'terminating unresponsive connection');
      this.onClose();
      this.socket.terminate();
      return false;
    }
    this.alive = false;
    if (this.socket.readyState === OPEN) this.socket.ping();
    return true;
  }
}

export interface SignalingPluginOptions {
  ctx: TrackerContext;
}

export const signalingPlugin: FastifyPluginAsync<SignalingPluginOptions> = async (app, { ctx }) => {
  const sessions = new Set<Session>();

  if (ctx.limits.pingIntervalMs > 0) {
    // Every connection is pinged once per pingIntervalMs, in slices spread over the interval:
    // pinging 50,000 sockets in one go would stall the event loop (and every join) for a while.
    const steps = Math.max(1, Math.min(30, Math.floor(ctx.limits.pingIntervalMs / 100)));
    let cursor: Iterator<Session> | null = null;
    let perStep = 1;
    const timer = setInterval(() => {
      if (cursor === null) {
        cursor = sessions.values();
        perStep = Math.max(1, Math.ceil(sessions.size / steps));
      }
      for (let i = 0; i < perStep; i++) {
        const next: IteratorResult<Session> = cursor.next();
        if (next.done) {
          cursor = null;
          break;
        }
        if (!next.value.heartbeat()) sessions.delete(next.value);
      }
    }, ctx.limits.pingIntervalMs / steps);
    timer.unref();
    app.addHook('onClose', async () => clearInterval(timer));
  }

  app.get('/ws', { websocket: true }, (socket, req) => {
    const host = hostFromHeader(req.headers.host) ?? urlHost(req.socket.localAddress ?? '127.0.0.1');
    const session = new Session(socket, host, ctx, req.log);
    session.net = addressPrefix(req.socket.remoteAddress);
    sessions.add(session);
    ctx.metrics.connectionsTotal.inc();
    ctx.metrics.connectionsOpen.inc();
    socket.on('message', (data, isBinary) => session.onMessage(data, isBinary));
    socket.on('pong', () => {
      session.alive = true;
    });
    socket.on('close', () => {
      sessions.delete(session);
      session.onClose();
      ctx.metrics.connectionsOpen.dec();
    });
  });
};
