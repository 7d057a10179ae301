/**
 * Isomorphic tracker client (browsers' WebSocket or `ws` in Node, injected). Speaks the
 * protocol of peer/core/signaling.ts: sends `join` on every (re)connection with the same peerId,
 * validates every incoming frame (hostile until validated: malformed ones are dropped and
 * counted), relays signals, asks for peers, sends reports, and reconnects after a drop with
 * exponential back-off (1 s -> 30 s, with jitter), reset by the next welcome.
 *
 * Several trackers (sharing channels through Redis, docs/operations.md): `url` may be a list (or
 * one string with comma-separated URLs). The client starts with the first one and, whenever a
 * connection fails, drops or is not welcomed within welcomeTimeoutMs, moves on to the next; the
 * back-off doubles once per full turn of the list, so a dead tracker costs one short delay. The
 * resume token of the last welcome goes along, so the peer keeps its id on the next tracker (the
 * trackers share the token key); the engine keeps its links meanwhile.
 *
 * A client-side token bucket keeps us under the tracker's rate limit (SIGNAL_RATE_PER_SEC,
 * SIGNAL_BURST) with a margin: excess messages are dropped and counted rather than getting the
 * socket closed with 1008.
 */
import type { Logger, PeerKind } from '../core/types.js';
import { silentLogger } from '../core/types.js';
import {
  SIGNAL_BURST, SIGNAL_MAX_BYTES, SIGNAL_RATE_PER_SEC,
  REPORT_MAX_BANS, REPORT_MAX_LINKS, RELAY_MAX_RENDITIONS, MAX_PARENT_CANDIDATES,
  type ClientMessage, type IceServer, type PeerInfo, type ReportBan, type ReportLink, type ReportMessage, type SignalData,
  type ParentRequest, type TrackerMessage, type WelcomeMessage,
} from '../core/signaling.js';
import { isValidName } from '../core/paths.js';
import type { WebSocketCtor, WebSocketLike } from './host-api.js';
import { globalTimers, type TimerHandle, type Timers } from './timers.js';

export const RECONNECT_MIN_MS = 1_000;
export const RECONNECT_MAX_MS = 30_000;
const WS_OPEN = 1;
const PEER_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const KINDS: readonly PeerKind[] = ['origin', 'seeder', 'browser'];
const MAX_PEERS_IN_MESSAGE = 1000;
const MAX_ICE_SERVERS = 16;

// ------------------------------------------------------------------ validation

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isShortString(v: unknown, max: number): v is string {
  return typeof v === 'string' && v.length <= max;
}

function isKind(v: unknown): v is PeerKind {
  return typeof v === 'string' && (KINDS as readonly string[]).includes(v);
}

export function isPeerId(v: unknown): v is string {
  return typeof v === 'string' && PEER_ID_RE.test(v);
}

function validPeerInfo(v: unknown): PeerInfo | null {
  if (!isObj(v) || !isPeerId(v.peerId) || !isKind(v.kind)) return null;
  return { peerId: v.peerId, kind: v.kind };
}

function validPeers(v: unknown): PeerInfo[] | null {
  if (!Array.isArray(v) || v.length > MAX_PEERS_IN_MESSAGE) return null;
  const out: PeerInfo[] = [];
  for (const p of v) {
    const info = validPeerInfo(p);
    if (!info) return null;
    out.push(info);
  }
  return out;
}

function validIceServer(v: unknown): IceServer | null {
  if (!isObj(v)) return null;
  const urls = v.urls;
  const okUrl = (u: unknown) => isShortString(u, 512) && /^(stuns?|turns?):/i.test(u);
  if (!(okUrl(urls) || (Array.isArray(urls) && urls.length > 0 && urls.length <= 8 && urls.every(okUrl)))) return null;
  const s: IceServer = { urls: Array.isArray(urls) ? (urls as string[]).slice() : (urls as string) };
  if (v.username !== undefined) {
    if (!isShortString(v.username, 512)) return null;
    s.username = v.username;
  }
  if (v.credential !== undefined) {
    if (!isShortString(v.credential, 512)) return null;
    s.credential = v.credential;
  }
  return s;
}

/** Validates a relayed SignalData (it comes from another peer: even more hostile). */
export function validSignalData(v: unknown): SignalData | null {
  if (!isObj(v)) return null;
  const keys = Object.keys(v);
  if ('sdp' in v) {
    const sdp = v.sdp;
    if (!isObj(sdp) || (sdp.type !== 'offer' && sdp.type !== 'answer') || !isShortString(sdp.sdp, SIGNAL_MAX_BYTES)) return null;
    // an offer may say it opens an optimizer-assigned link; nothing else rides along
    const assigned = keys.length === 2 && v.assigned === true && sdp.type === 'offer';
    if (keys.length !== 1 && !assigned) return null;
    return { sdp: { type: sdp.type, sdp: sdp.sdp }, ...(assigned ? { assigned: true as const } : {}) };
  }
  if (keys.length !== 1) return null;
  if ('candidate' in v) {
    const c = v.candidate;
    if (c === null) return { candidate: null };
    if (!isObj(c) || !isShortString(c.candidate, 1024)) return null;
    const out: { candidate: string; sdpMid?: string | null; sdpMLineIndex?: number | null } = { candidate: c.candidate };
    if (c.sdpMid !== undefined) {
      if (c.sdpMid !== null && !isShortString(c.sdpMid, 64)) return null;
      out.sdpMid = c.sdpMid as string | null;
    }
    if (c.sdpMLineIndex !== undefined) {
      if (c.sdpMLineIndex !== null && !(Number.isInteger(c.sdpMLineIndex) && (c.sdpMLineIndex as number) >= 0 && (c.sdpMLineIndex as number) < 256)) return null;
      out.sdpMLineIndex = c.sdpMLineIndex as number | null;
    }
    return { candidate: out };
  }
  if ('reject' in v) {
    if (!isShortString(v.reject, 128)) return null;
    return { reject: v.reject };
  }
  return null;
}

/** Parses and validates one tracker frame; null if it is not a well-formed TrackerMessage. */
export function parseTrackerMessage(raw: unknown): TrackerMessage | null {
  let text: string;
  if (typeof raw === 'string') text = raw;
  else if (raw instanceof ArrayBuffer) text = new TextDecoder().decode(raw);
  else if (ArrayBuffer.isView(raw)) text = new TextDecoder().decode(raw as Uint8Array);
  else return null;
  if (text.length > SIGNAL_MAX_BYTES) return null;
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObj(m)) return null;
  switch (m.type) {
    case 'welcome': {
      if (!isPeerId(m.peerId) || !Array.isArray(m.iceServers) || m.iceServers.length > MAX_ICE_SERVERS) return null;
      const iceServers: IceServer[] = [];
      for (const s of m.iceServers) {
        const v = validIceServer(s);
        if (!v) return null;
        iceServers.push(v);
      }
      const peers = validPeers(m.peers ?? []);
      if (!peers) return null;
      const resumeToken = typeof m.resumeToken === 'string' && m.resumeToken.length <= 128 ? m.resumeToken : undefined;
      if (m.optimizer !== undefined && typeof m.optimizer !== 'boolean') return null;
      return { type: 'welcome', peerId: m.peerId, iceServers, peers, ...(resumeToken ? { resumeToken } : {}), ...(m.optimizer ? { optimizer: true } : {}) };
    }
    case 'peers': {
      const peers = validPeers(m.peers);
      if (!peers) return null;
      if (m.parents === undefined) return { type: 'peers', peers };
      const parents = validPeers(m.parents);
      if (!parents || parents.length > MAX_PARENT_CANDIDATES) return null;
      return { type: 'peers', peers, parents };
    }
    case 'signal': {
      if (!isPeerId(m.from) || !isKind(m.fromKind)) return null;
      const data = validSignalData(m.data);
      return data ? { type: 'signal', from: m.from, fromKind: m.fromKind, data } : null;
    }
    case 'error':
      return isShortString(m.reason, 1024) ? { type: 'error', reason: m.reason } : null;
    case 'assign': {
      // The optimizer's advice: a rendition name and a peer id (or null), nothing else.
      if (typeof m.rendition !== 'string' || !isValidName(m.rendition)) return null;
      if (m.parent !== null && !isPeerId(m.parent)) return null;
      if (m.channel !== undefined && (typeof m.channel !== 'string' || !isValidName(m.channel))) return null;
      return { type: 'assign', rendition: m.rendition, parent: m.parent, ...(m.channel !== undefined ? { channel: m.channel } : {}) };
    }
    case 'relay': {
      // A short list of rendition names, nothing else.
      if (!Array.isArray(m.renditions) || m.renditions.length > RELAY_MAX_RENDITIONS) return null;
      if (!m.renditions.every((r) => typeof r === 'string' && isValidName(r))) return null;
      if (m.channel !== undefined && (typeof m.channel !== 'string' || !isValidName(m.channel))) return null;
      return { type: 'relay', renditions: [...new Set(m.renditions as string[])], ...(m.channel !== undefined ? { channel: m.channel } : {}) };
    }
    default:
      return null;
  }
}

// ------------------------------------------------------------------ outgoing reports

/** The optional members of a report (ReportMessage without type and stats). */
export type ReportExtra = Omit<ReportMessage, 'type' | 'stats'>;

const REPORT_KEY_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
const REPORT_LABEL_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,31}$/;
const REPORT_MAX_KEYS = 64;
const REPORT_RENDITION_STAT_RE = /^(slots|depth)\.[a-z0-9][a-z0-9_-]{0,31}$/;

const finiteNonNeg = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/**
 * Trims a report to the tracker's schema (tracker/schemas.ts): finite numbers under valid keys
 * (at most 64), at most REPORT_MAX_LINKS links with valid peer ids and non-negative counters,
 * labels matching [A-Za-z0-9][A-Za-z0-9_.:-]{0,31}, at most REPORT_MAX_BANS bans. Whatever does
 * not fit is dropped, so a peer-side slip never gets the whole report rejected.
 */
export function sanitizeReport(stats: Record<string, number>, extra: ReportExtra = {}): ReportMessage {
  const clean: Record<string, number> = {};
  let n = 0;
  for (const [k, v] of Object.entries(stats)) {
    if (n >= REPORT_MAX_KEYS) break;
    if (!REPORT_KEY_RE.test(k) || typeof v !== 'number' || !Number.isFinite(v)) continue;
    // slots.<r> / depth.<r> are bytes (0..255) in the tracker's schema: out of range is a slip
    if (REPORT_RENDITION_STAT_RE.test(k) && !(Number.isInteger(v) && v >= 0 && v <= 255)) continue;
    clean[k] = v;
    n++;
  }
  const msg: ReportMessage = { type: 'report', stats: clean };
  if (Array.isArray(extra.links)) {
    const links: ReportLink[] = [];
    for (const l of extra.links) {
      if (links.length >= REPORT_MAX_LINKS) break;
      if (!isObj(l) || !PEER_ID_RE.test(String(l.peerId)) || !finiteNonNeg(l.sent) || !finiteNonNeg(l.received)) continue;
      const out: ReportLink = { peerId: l.peerId, sent: Math.round(l.sent), received: Math.round(l.received) };
      if (l.parent === true) out.parent = true;
      if (l.child === true) out.child = true;
      if (finiteNonNeg(l.bad) && l.bad > 0) out.bad = Math.round(l.bad);
      if (typeof l.relayed === 'boolean') out.relayed = l.relayed;
      if (typeof l.rendition === 'string' && isValidName(l.rendition)) out.rendition = l.rendition;
      links.push(out);
    }
    msg.links = links;
  }
  if (typeof extra.rendition === 'string' && isValidName(extra.rendition)) msg.rendition = extra.rendition;
  if (Array.isArray(extra.relays)) {
    const relays = extra.relays.filter((r) => typeof r === 'string' && isValidName(r)).slice(0, RELAY_MAX_RENDITIONS);
    if (relays.length > 0) msg.relays = relays;
  }
  for (const key of ['nat', 'region'] as const) {
    const v = extra[key];
    if (typeof v === 'string' && REPORT_LABEL_RE.test(v)) msg[key] = v;
  }
  if (Array.isArray(extra.bans) && extra.bans.length > 0) {
    const bans: ReportBan[] = [];
    for (const b of extra.bans) {
      if (bans.length >= REPORT_MAX_BANS) break;
      if (!isObj(b) || !PEER_ID_RE.test(String(b.peerId)) || typeof b.reason !== 'string') continue;
      bans.push({ peerId: b.peerId, reason: b.reason.replace(/[^\x20-\x7e]/g, '').slice(0, 64) });
    }
    if (bans.length > 0) msg.bans = bans;
  }
  return msg;
}

// ------------------------------------------------------------------ client

export interface SignalingClientHandlers {
  onWelcome?(msg: WelcomeMessage): void;
  onPeers?(peers: PeerInfo[], parents?: PeerInfo[]): void;
  onSignal?(from: string, fromKind: PeerKind, data: SignalData): void;
  onTrackerError?(reason: string): void;
  /** The optimizer assigned our parent in a rendition (null: withdrawn). Validated. */
  onAssign?(rendition: string, parent: string | null): void;
  /** The optimizer asks us to relay these renditions (the whole set). Validated. */
  onRelay?(renditions: string[]): void;
  /** The socket dropped (a reconnect is scheduled unless stopped). */
  onDisconnected?(): void;
}

/** The tracker URLs of a `url` option: a list, or one string with comma-separated URLs. */
export function trackerUrlList(url: string | readonly string[]): string[] {
  const list = (typeof url === 'string' ? url.split(',') : [...url]).map((u) => u.trim()).filter((u) => u.length > 0);
  if (list.length === 0) throw new TypeError('no tracker URL');
  if (list.length > 16) throw new TypeError('at most 16 tracker URLs');
  for (const u of list) if (!/^wss?:\/\/\S+$/.test(u)) throw new TypeError(`invalid tracker URL: ${u}`);
  return list;
}

export const WELCOME_TIMEOUT_MS = 10_000;

export interface SignalingClientOptions {
  /** ws://HOST:PORT/ws, or several (list or comma-separated): tried in turn on failure. */
  url: string | readonly string[];
  channel: string;
  kind: PeerKind;
  peerId: string;
  publishKey?: string;
  webSocket: WebSocketCtor;
  log?: Logger;
  timers?: Timers;
  /** Uniform [0,1) for back-off jitter. Default Math.random. */
  random?: () => number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Client-side send budget (messages/s, burst). Defaults: 80% of the tracker's limits. */
  rateLimit?: { perSecond: number; burst: number };
  /** A connection not welcomed this long after opening is given up (next tracker). Default 10 s; 0: never. */
  welcomeTimeoutMs?: number;
}

export interface SignalingClientStats {
  connected: boolean;
  welcomed: boolean;
  connects: number;
  disconnects: number;
  received: number;
  malformed: number;
  sent: number;
  droppedRateLimited: number;
  droppedNotConnected: number;
  trackerErrors: number;
  /** The tracker URL in use (or being tried). */
  trackerUrl: string;
  /** Moves to another tracker URL after a failure (0 with a single URL). */
  failovers: number;
  /** Optimizer assignments received (valid, for our channel); malformed ones count in `malformed`. */
  assigns: number;
  /** Relay requests received (valid, for our channel). */
  relays: number;
}

export class SignalingClient {
  private ws: WebSocketLike | null = null;
  private stopped = true;
  private welcomed = false;
  private attempt = 0;
  private reconnectTimer: TimerHandle | null = null;
  private welcomeTimer: TimerHandle | null = null;
  private readonly urls: string[];
  private urlIndex: number;
  private tokens: number;
  private tokensAt: number;
  private readonly timers: Timers;
  private readonly log: Logger;
  private readonly random: () => number;
  private readonly minBackoff: number;
  private readonly maxBackoff: number;
  private readonly rate: { perSecond: number; burst: number };
  private readonly counters = {
    connects: 0, disconnects: 0, received: 0, malformed: 0, sent: 0,
    droppedRateLimited: 0, droppedNotConnected: 0, trackerErrors: 0, failovers: 0, assigns: 0, relays: 0,
  };
  private readonly welcomeTimeout: number;
  /** The last welcome (ICE servers, our confirmed peerId). */
  lastWelcome: WelcomeMessage | null = null;

  constructor(private readonly opts: SignalingClientOptions, private readonly handlers: SignalingClientHandlers) {
    if (!isPeerId(opts.peerId)) throw new TypeError('invalid peerId');
    this.timers = opts.timers ?? globalTimers;
    this.log = opts.log ?? silentLogger;
    this.random = opts.random ?? Math.random;
    this.minBackoff = opts.minBackoffMs ?? RECONNECT_MIN_MS;
    this.maxBackoff = opts.maxBackoffMs ?? RECONNECT_MAX_MS;
    this.rate = opts.rateLimit ?? {
      perSecond: Math.floor(SIGNAL_RATE_PER_SEC * 0.8),
      burst: Math.floor(SIGNAL_BURST * 0.8),
    };
    this.tokens = this.rate.burst;
    this.tokensAt = this.timers.now();
    this.urls = trackerUrlList(opts.url);
    // The first URL is preferred (order the list to spread peers, or put a load balancer first).
    this.urlIndex = 0;
    this.welcomeTimeout = opts.welcomeTimeoutMs ?? WELCOME_TIMEOUT_MS;
  }

  /** The tracker URL in use (or being tried). */
  get trackerUrl(): string {
    return this.urls[this.urlIndex];
  }

  get isConnected(): boolean {
    return this.ws !== null && this.ws.readyState === WS_OPEN;
  }

  get isWelcomed(): boolean {
    return this.welcomed && this.isConnected;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.open();
  }

  /** Sends leave (if connected), closes the socket, cancels reconnects. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.reconnectTimer !== null) {
      this.timers.clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
    this.clearWelcomeTimer();
    const ws = this.ws;
    this.ws = null;
    this.welcomed = false;
    if (ws) {
      if (ws.readyState === WS_OPEN) {
        try {
          ws.send(JSON.stringify({ type: 'leave' }));
        } catch {
          /* ignore */
        }
      }
      detach(ws);
      try {
        ws.close(1000, 'leave');
      } catch {
        /* ignore */
      }
    }
  }

  signal(to: string, data: SignalData): boolean {
    return this.send({ type: 'signal', to, data });
  }

  /** `parentFor`: we have no parent in that rendition; the answer's `parents` names some to ask. */
  requestPeers(max?: number, parentFor?: ParentRequest): boolean {
    return this.send({ type: 'peers', ...(max !== undefined ? { max } : {}), ...(parentFor ? { parentFor } : {}) });
  }

  /** Sends a report, first trimmed to what the tracker's schema accepts (sanitizeReport). */
  report(stats: Record<string, number>, extra: ReportExtra = {}): boolean {
    return this.send(sanitizeReport(stats, extra));
  }

  stats(): SignalingClientStats {
    return { connected: this.isConnected, welcomed: this.isWelcomed, ...this.counters, trackerUrl: this.trackerUrl };
  }

  /** Sends one message if connected and within the rate budget; false if it was dropped. */
  send(msg: ClientMessage): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== WS_OPEN || (!this.welcomed && msg.type !== 'join')) {
      this.counters.droppedNotConnected++;
      return false;
    }
    if (!this.takeToken()) {
      this.counters.droppedRateLimited++;
      return false;
    }
    const text = JSON.stringify(msg);
    if (text.length > SIGNAL_MAX_BYTES) {
      this.log.warn({ type: msg.type, bytes: text.length }, 'signaling message too large, dropped');
      return false;
    }
    try {
      ws.send(text);
      this.counters.sent++;
      return true;
    } catch (err) {
      this.log.debug({ err: String(err) }, 'ws send failed');
      return false;
    }
  }

  private takeToken(): boolean {
    const now = this.timers.now();
    this.tokens = Math.min(this.rate.burst, this.tokens + ((now - this.tokensAt) / 1000) * this.rate.perSecond);
    this.tokensAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private open(): void {
    if (this.stopped) return;
    let ws: WebSocketLike;
    const url = this.trackerUrl;
    try {
      ws = new this.opts.webSocket(url);
    } catch (err) {
      this.log.warn({ err: String(err), url }, 'tracker socket could not be created');
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.welcomed = false;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.counters.connects++;
      if (this.welcomeTimeout > 0) {
        this.clearWelcomeTimer();
        this.welcomeTimer = this.timers.setTimeout(() => {
          this.welcomeTimer = null;
          if (this.ws !== ws || this.welcomed) return;
          this.log.warn({ url }, 'tracker did not welcome us in time; trying the next one');
          this.dropSocket(ws);
        }, this.welcomeTimeout);
      }
      const join: ClientMessage = {
        type: 'join',
        channel: this.opts.channel,
        kind: this.opts.kind,
        peerId: this.opts.peerId,
        ...(this.opts.publishKey ? { publishKey: this.opts.publishKey } : {}),
        // Proves we own our id if the tracker still holds our previous connection.
        ...(this.lastWelcome?.resumeToken && this.lastWelcome.peerId === this.opts.peerId ? { resumeToken: this.lastWelcome.resumeToken } : {}),
      };
      this.send(join);
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.onFrame(ev?.data);
    };
    ws.onerror = () => {
      /* a close event follows */
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.dropSocket(ws);
    };
  }

  /** The socket is gone (closed, or given up): reconnect, to the next tracker if there are several. */
  private dropSocket(ws: WebSocketLike): void {
    detach(ws);
    if (ws.readyState === WS_OPEN || ws.readyState === 0) {
      try {
        ws.close(1000, 'giving up');
      } catch {
        /* ignore */
      }
    }
    this.clearWelcomeTimer();
    this.ws = null;
    const wasWelcomed = this.welcomed;
    this.welcomed = false;
    this.counters.disconnects++;
    this.log.info({ welcomed: wasWelcomed, url: this.trackerUrl }, 'tracker connection closed');
    this.handlers.onDisconnected?.();
    this.scheduleReconnect();
  }

  private clearWelcomeTimer(): void {
    if (this.welcomeTimer !== null) {
      this.timers.clearTimeout(this.welcomeTimer);
      this.welcomeTimer = null;
    }
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.reconnectTimer !== null) return;
    const n = this.urls.length;
    if (n > 1) {
      this.urlIndex = (this.urlIndex + 1) % n;
      this.counters.failovers++;
    }
    // Doubles once per full turn of the list (with one URL: every attempt, as before).
    const base = Math.min(this.maxBackoff, this.minBackoff * 2 ** Math.min(Math.floor(this.attempt / n), 20));
    this.attempt++;
    // Jitter: uniformly in [base/2, base] so a tracker restart is not hit by everyone at once.
    const delay = Math.round(base * (0.5 + 0.5 * this.random()));
    this.log.debug({ delay, attempt: this.attempt, url: this.trackerUrl }, 'tracker reconnect scheduled');
    this.reconnectTimer = this.timers.setTimeout(() => {
      this.reconnectTimer = null;
      this.open();
    }, delay);
  }

  private onFrame(raw: unknown): void {
    this.counters.received++;
    const msg = parseTrackerMessage(raw);
    if (!msg) {
      this.counters.malformed++;
      if (this.counters.malformed <= 10) this.log.warn({}, 'malformed tracker message dropped');
      return;
    }
    switch (msg.type) {
      case 'welcome':
        if (msg.peerId !== this.opts.peerId) {
          this.log.warn({ ours: this.opts.peerId, theirs: msg.peerId }, 'tracker assigned a different peerId');
        }
        this.welcomed = true;
        this.attempt = 0;
        this.clearWelcomeTimer();
        this.lastWelcome = msg;
        this.handlers.onWelcome?.(msg);
        break;
      case 'peers':
        if (this.welcomed) this.handlers.onPeers?.(msg.peers, msg.parents);
        break;
      case 'signal':
        if (this.welcomed) this.handlers.onSignal?.(msg.from, msg.fromKind, msg.data);
        break;
      case 'error':
        this.counters.trackerErrors++;
        this.log.warn({ reason: msg.reason }, 'tracker error');
        this.handlers.onTrackerError?.(msg.reason);
        break;
      case 'assign':
        if (msg.channel !== undefined && msg.channel !== this.opts.channel) {
          this.counters.malformed++; // about another channel: not for us
          break;
        }
        if (!this.welcomed) break;
        this.counters.assigns++;
        this.handlers.onAssign?.(msg.rendition, msg.parent);
        break;
      case 'relay':
        if (msg.channel !== undefined && msg.channel !== this.opts.channel) {
          this.counters.malformed++; // about another channel: not for us
          break;
        }
        if (!this.welcomed) break;
        this.counters.relays++;
        this.handlers.onRelay?.(msg.renditions);
        break;
    }
  }
}

function detach(ws: WebSocketLike): void {
  ws.onopen = null;
  ws.onmessage = null;
  ws.onclose = null;
  // Keep a no-op error handler: `ws` (Node) throws on an 'error' event nobody listens to, which a
  // close() during the handshake emits.
  ws.onerror = () => {};
}
