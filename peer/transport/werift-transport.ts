/**
 * Transport on werift (pure-TypeScript WebRTC for Node). One RTCPeerConnection and one data
 * channel per remote peer.
 *
 * Data channel: label 'starling', ordered, reliable, created with `negotiated: true, id: 0` on
 * BOTH sides. Nothing is announced in-band (no DCEP OPEN / ondatachannel), so there is no race
 * between the remote's first message and our ondatachannel handler, and both sides hold the
 * channel object from the start. Browsers (browser-transport.ts) do exactly the same, so werift
 * and browser peers interoperate.
 *
 * Signaling: trickle ICE. The offer/answer is relayed as soon as createOffer/createAnswer returns
 * (werift's setLocalDescription only resolves after candidate gathering, including the STUN
 * query, which can take seconds when the STUN server does not answer); each local candidate is
 * relayed as `{candidate}` once the description went out, and `{candidate: null}` ends them.
 * Candidates that arrive while a remote description is being applied wait for it (an ICE
 * restart's setRemoteDescription would otherwise drop them).
 *
 * ICE servers: always passed explicitly. werift replaces an absent/empty STUN entry with
 * stun.l.google.com, which stalls on DNS with no internet (DESIGN.md §9). The tracker always
 * hands out at least one STUN entry (its own responder); if a caller still passes an empty list we
 * substitute `stun:127.0.0.1:3478` (local, never leaves the machine; if nothing answers there,
 * werift gives up on the server-reflexive candidate after 5 s while host candidates are used
 * right away). See `effectiveIceServers`.
 *
 * ICE restart (issue 8; policy in ice-restart.ts): werift notices a dead path only when consent
 * expires (30 s without answers). So, once open, the connector shortens SCTP's idle heartbeat
 * (werift's default is 30 s) to HEARTBEAT_INTERVAL_S, which makes a healthy link carry a packet
 * every second or two even when idle, and watches what arrives: no datagram for `silenceMs`
 * (default 4 s) counts as 'disconnected'. After a grace period it restarts ICE
 * (`createOffer({iceRestart: true})`, sent through the tracker; the remote answers in place,
 * PeerHost routes such offers to the open connector through isRenegotiation()). werift 0.24 keeps
 * its old sockets across a restart and then gathers no new server-reflexive candidate (after a
 * NAT change only relayed paths would be found), so on restart the connector sets the old ICE
 * sockets aside (closed once the restart completed) and werift gathers afresh: new host sockets,
 * new STUN mappings, a new TURN allocation, like a browser. DTLS, SCTP and the data channel carry
 * on over the new pair; SCTP's pending retransmission is triggered at once. Bounded attempts with
 * back-off, then the Link closes (the host reconnects from scratch, as before).
 *
 * Failure handling: connection timeout (default 15 s) → onFailed('timeout'); ICE/DTLS 'failed'
 * or 'closed' before the channel opens → onFailed; after it opened, 'closed' or a given-up ICE
 * restart closes the Link (its onClose fires once). close() clears the timers and closes the
 * channel and the peer connection (its UDP sockets).
 */
import { RTCPeerConnection, type RTCDataChannel } from 'werift';
import type { Link, Logger } from '../core/types.js';
import { silentLogger } from '../core/types.js';
import type { IceServer, SignalData } from '../core/signaling.js';
import { type ConnectionInfo, type ConnectorOptions, type PeerConnector, type Transport } from './transport-api.js';
import { IceRestarter, iceRestartConfig, sdpFingerprint, type IceRestartEvent, type IceRestartOptions } from './ice-restart.js';

export const DATA_CHANNEL_LABEL = 'starling';
export const DATA_CHANNEL_ID = 0;
export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
/** ICE restart glare: the original offerer re-offers if its offer is still unanswered after this. */
export const GLARE_RESEND_MS = 1000;
export const DEFAULT_STUN_TIMEOUT_MS = 2_000;
const ABORT_LINGER_MS = 100;
/** SCTP heartbeat interval once open (s; werift's default is 30): sent after RTO + this when idle. */
export const HEARTBEAT_INTERVAL_S = 0.25;
/**
 * Receive buffer of werift's UDP sockets by default: 0, the kernel's (net.core.rmem_default,
 * ~208 KiB, about 90 datagrams). A Node peer whose event loop is busy overflows it (the swarm
 * bench: 0.1-0.4% of datagrams dropped, RcvbufErrors). A 1 MiB buffer removed the drops but did
 * not help there: 2 of its 4 runs collapsed (the HTTP-only viewers in the same processes stalled
 * too), none of 5 with the default. Perhaps bufferbloat (drops are how SCTP's congestion control
 * learns that a receiver falls behind), perhaps the machine; not proven either way, so the
 * kernel's default stays (bench/RESULTS.md, session 15). `udpRecvBufferBytes` sets another size.
 */
export const UDP_RECV_BUFFER_BYTES = 0;
/** How often the selected pair is checked for received packets. */
const WATCH_INTERVAL_MS = 500;
/** Used only when a caller passes no ICE server at all (see the file comment). */
export const FALLBACK_ICE_SERVERS: IceServer[] = [{ urls: 'stun:127.0.0.1:3478' }];

export interface WeriftTransportOptions {
  log?: Logger;
  /** Give up on a connection that has not opened its data channel after this long. Default 15 s. */
  connectTimeoutMs?: number;
  /**
   * Longest wait for the STUN server's answer while gathering (werift's own is a fixed 5 s, and
   * the answering side only starts ICE checks once gathering is over). Default 2 s.
   */
  stunTimeoutMs?: number;
  /** ICE restart policy (see ice-restart.ts); `{maxAttempts: 0}` closes a link on its first outage. */
  iceRestart?: IceRestartOptions;
  /** Extra werift options (tests: iceAdditionalHostAddresses, icePortRange, ...). */
  peerConfig?: Record<string, unknown>;
  /** Receive buffer of the ICE sockets (bytes, capped by net.core.rmem_max; 0 keeps the kernel's default). Default UDP_RECV_BUFFER_BYTES (0). */
  udpRecvBufferBytes?: number;
}

export function effectiveIceServers(servers: IceServer[] | undefined): IceServer[] {
  const list = (servers ?? []).filter((s) => s && (typeof s.urls === 'string' || Array.isArray(s.urls)));
  return list.length > 0 ? list : FALLBACK_ICE_SERVERS;
}

export function createWeriftTransport(opts: WeriftTransportOptions = {}): Transport {
  const log = opts.log ?? silentLogger;
  const timeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const stunTimeoutMs = opts.stunTimeoutMs ?? DEFAULT_STUN_TIMEOUT_MS;
  const restart = iceRestartConfig(opts.iceRestart);
  const recvBuffer = opts.udpRecvBufferBytes ?? UDP_RECV_BUFFER_BYTES;
  if (!(Number.isInteger(recvBuffer) && recvBuffer >= 0)) throw new TypeError('udpRecvBufferBytes must be an integer >= 0');
  return {
    name: 'werift',
    connect(o: ConnectorOptions): PeerConnector {
      return new WeriftConnector(o, log, timeoutMs, opts.peerConfig ?? {}, stunTimeoutMs, restart, recvBuffer);
    },
  };
}

type State = 'connecting' | 'open' | 'closed';

/** The parts of werift's ICE internals (0.24) the connector reads; every access is guarded. */
interface IceConnectionInternals {
  nominated?: object;
  onData?: { subscribe?: (fn: () => void) => { unSubscribe?: () => void } | undefined };
  localCandidatesStart?: boolean;
  remoteUsername?: string;
  protocols?: Array<{ close?: () => Promise<unknown> | unknown; transport?: { socket?: { setRecvBufferSize?: (n: number) => void } } }>;
  restart?: (...args: unknown[]) => unknown;
  __starlingRetire?: boolean;
  __starlingPreferDirect?: boolean;
  checkComplete?: (pair: IcePairInternals) => void;
  generation?: number;
}
/** werift 0.24's CandidatePair, as much of it as the transport reads. */
interface IcePairInternals {
  nominated?: boolean;
  state?: number;
  localCandidate?: { type?: unknown };
  remoteCandidate?: { type?: unknown; generation?: number };
}
interface SctpInternals {
  setHeartbeatInterval?: (s: number) => void;
  rto?: number;
  cwnd?: number;
  flightSize?: number;
  sentQueue?: unknown[];
  state?: unknown;
  timer3Handle?: unknown;
  timer3Cancel?: () => void;
  timer3Expired?: () => void;
}

class WeriftConnector implements PeerConnector {
  readonly remoteId: string;
  private readonly pc: RTCPeerConnection;
  private readonly dc: RTCDataChannel;
  private state: State = 'connecting';
  private timer: ReturnType<typeof setTimeout> | null;
  private link: WeriftLink | null = null;
  private descriptionSent = false;
  private pendingCandidates: SignalData[] = [];
  private remoteDescriptionSet = false;
  private readonly unsubscribers: Array<() => void> = [];
  /** DTLS fingerprint(s) of the remote's first description: a later offer with the same is a renegotiation. */
  private remoteFingerprint = '';
  /** The remote description being applied; remote candidates wait for it. */
  private remoteSdpTask: Promise<void> = Promise.resolve();
  /** Our restart offer's setLocalDescription (gathering); a polite glare answer waits for it. */
  private localSdpTask: Promise<void> = Promise.resolve();
  /** We sent a restart offer and wait for its answer. */
  private restartOfferPending = false;
  private restarter: IceRestarter | null = null;
  /** See answerRestart (glare). */
  private glareTimer: ReturnType<typeof setTimeout> | null = null;
  /** ICE sockets of earlier generations (see the file comment), closed once a restart completed. */
  private retired: Array<{ close?: () => Promise<unknown> | unknown }> = [];
  private watchTimer: ReturnType<typeof setInterval> | null = null;
  /** Last datagram received, and the last silence check (performance.now()). */
  private activity = { lastRecvAt: 0, seenAt: 0 };

  constructor(
    private readonly o: ConnectorOptions,
    private readonly log: Logger,
    timeoutMs: number,
    peerConfig: Record<string, unknown>,
    private readonly stunTimeoutMs: number,
    private readonly restartCfg: ReturnType<typeof iceRestartConfig>,
    private readonly recvBufferBytes: number,
  ) {
    this.remoteId = o.remoteId;
    this.pc = new RTCPeerConnection({
      ...peerConfig,
      iceServers: effectiveIceServers(o.iceServers).map((s) => ({ ...s })),
    });
    try {
      this.dc = this.pc.createDataChannel(DATA_CHANNEL_LABEL, {
        negotiated: true,
        id: DATA_CHANNEL_ID,
        ordered: true,
      });
    } catch (err) {
      void this.pc.close().catch(() => undefined);
      throw err;
    }
    retireSocketsOnRestart(this.pc, this.retired);
    preferDirectPath(this.pc);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.fail('timeout');
    }, timeoutMs);

    this.unsubscribers.push(
      this.pc.onIceCandidate.subscribe((c) => {
        if (this.state === 'closed') return;
        const data: SignalData = { candidate: c ? candidateInit(c.toJSON()) : null };
        if (this.descriptionSent) this.o.sendSignal(data);
        else this.pendingCandidates.push(data);
      }).unSubscribe,
      this.pc.connectionStateChange.subscribe((s) => this.onConnectionState(s)).unSubscribe,
      this.dc.stateChanged.subscribe((s) => {
        if (s === 'open') this.opened();
        else if (s === 'closed') {
          if (this.state === 'connecting') this.fail('channel closed');
          else if (this.state === 'open') this.shutdown();
        }
      }).unSubscribe,
      this.dc.onMessage.subscribe((data) => {
        if (typeof data === 'string') return; // binary protocol only
        this.link?.deliver(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      }).unSubscribe,
    );
    if (this.dc.readyState === 'open') queueMicrotask(() => this.opened());

    if (o.initiator) {
      void this.runStep('offer', async () => {
        const offer = await this.pc.createOffer();
        if (this.isClosed()) return;
        this.sendDescription({ type: 'offer', sdp: offer.sdp });
        limitStunWait(this.pc, this.stunTimeoutMs);
        await this.pc.setLocalDescription(offer);
      });
    }
  }

  private isClosed(): boolean {
    return this.state === 'closed';
  }

  isRenegotiation(data: SignalData): boolean {
    if (this.state !== 'open' || !data || typeof data !== 'object' || !('sdp' in data)) return false;
    const d = data.sdp;
    return !!d && d.type === 'offer' && this.remoteFingerprint !== '' && sdpFingerprint(d.sdp) === this.remoteFingerprint;
  }

  restartIce(reason = 'requested', onlyIfDown = false): boolean {
    if (this.state !== 'open' || !this.restarter || this.restartCfg.maxAttempts === 0) return false;
    return this.restarter.restartNow(reason, onlyIfDown);
  }

  async handleSignal(data: SignalData): Promise<void> {
    if (this.state === 'closed' || !data || typeof data !== 'object') return;
    if ('reject' in data) {
      if (this.state === 'connecting') this.fail(`rejected: ${String(data.reject).slice(0, 64)}`);
      return;
    }
    if ('sdp' in data) {
      const { type, sdp } = data.sdp ?? ({} as { type?: string; sdp?: string });
      if (typeof sdp !== 'string') return;
      if (type === 'offer' && !this.o.initiator && !this.remoteDescriptionSet && this.state === 'connecting') {
        this.remoteDescriptionSet = true;
        this.remoteFingerprint = sdpFingerprint(sdp);
        const applied = this.applyRemote(async () => this.pc.setRemoteDescription({ type: 'offer', sdp }));
        await this.runStep('answer', async () => {
          await applied;
          if (this.isClosed()) return;
          const answer = await this.pc.createAnswer();
          if (this.isClosed()) return;
          this.sendDescription({ type: 'answer', sdp: answer.sdp });
          limitStunWait(this.pc, this.stunTimeoutMs);
          await this.pc.setLocalDescription(answer);
        });
      } else if (type === 'answer' && this.o.initiator && !this.remoteDescriptionSet && this.state === 'connecting') {
        this.remoteDescriptionSet = true;
        this.remoteFingerprint = sdpFingerprint(sdp);
        const applied = this.applyRemote(async () => this.pc.setRemoteDescription({ type: 'answer', sdp }));
        await this.runStep('set answer', () => applied);
      } else if (type === 'offer' && this.isRenegotiation(data)) {
        await this.answerRestart(sdp);
      } else if (type === 'answer' && this.state === 'open' && this.restartOfferPending && sdpFingerprint(sdp) === this.remoteFingerprint) {
        this.restartOfferPending = false;
        this.clearGlareTimer();
        const applied = this.applyRemote(async () => {
          if (this.pc.signalingState !== 'have-local-offer') throw new Error(`answer in signaling state ${this.pc.signalingState}`);
          await this.pc.setRemoteDescription({ type: 'answer', sdp });
        });
        try {
          await applied;
          this.startIceChecks();
        } catch (err) {
          this.log.debug({ remoteId: this.remoteId, err: String(err) }, 'ICE restart: setting the answer failed');
          this.restarter?.attemptFailed();
        }
      } else {
        this.log.debug({ remoteId: this.remoteId, type }, 'unexpected sdp ignored');
      }
      return;
    }
    if ('candidate' in data) {
      const c = data.candidate;
      await this.remoteSdpTask;
      if (this.isClosed()) return;
      try {
        if (c === null) await this.pc.addIceCandidate(null);
        else if (c && typeof c.candidate === 'string') {
          if (c.candidate === '') await this.pc.addIceCandidate(null);
          else await this.pc.addIceCandidate(candidateInit(c));
        }
      } catch (err) {
        // A bad candidate from the remote is not fatal: other candidates may still work.
        this.log.debug({ remoteId: this.remoteId, err: String(err) }, 'addIceCandidate failed');
      }
    }
  }

  close(): void {
    if (this.state === 'closed') return;
    if (this.state === 'open') this.shutdown();
    else {
      this.state = 'closed';
      this.release();
    }
  }

  /** Runs a setRemoteDescription step; candidates received meanwhile wait for it (in order). */
  private applyRemote(step: () => Promise<unknown>): Promise<void> {
    const prev = this.remoteSdpTask;
    const task = prev.then(step).then(() => undefined);
    this.remoteSdpTask = task.catch(() => undefined);
    return task;
  }

  private sendDescription(sdp: { type: 'offer' | 'answer'; sdp: string }): void {
    this.o.sendSignal({ sdp });
    this.descriptionSent = true;
    const pending = this.pendingCandidates;
    this.pendingCandidates = [];
    for (const c of pending) this.o.sendSignal(c);
  }

  private async runStep(what: string, step: () => Promise<unknown>): Promise<void> {
    try {
      await step();
    } catch (err) {
      if (this.state === 'closed') return;
      this.log.debug({ remoteId: this.remoteId, err: String(err) }, `${what} failed`);
      this.fail(`${what} failed`);
    }
  }

  private onConnectionState(s: string): void {
    if (this.state === 'connecting') {
      if (s === 'failed' || s === 'closed') this.fail(`connection ${s}`);
      return;
    }
    if (this.state !== 'open') return;
    if (s === 'closed') this.shutdown();
    else if (s === 'connected') this.reconnected();
    else if (s === 'failed' || s === 'disconnected') {
      if (s === 'failed' && this.restarter?.state === 'restarting') this.restarter.attemptFailed();
      else this.restarter?.down(`connection ${s}`);
    }
  }

  private opened(): void {
    if (this.state !== 'connecting' || this.dc.readyState !== 'open') return;
    this.state = 'open';
    this.clearTimer();
    this.link = new WeriftLink(this.remoteId, this.dc, () => this.close(), () => this.diagnostics(), () => selectedPairInfo(this.pc));
    this.restarter = new IceRestarter(this.restartCfg, this.o.initiator, {
      restart: (attempt) => this.sendRestartOffer(attempt),
      giveUp: () => {
        this.log.debug({ remoteId: this.remoteId }, 'ICE restart: giving up, closing the link');
        this.shutdown();
      },
      onEvent: (e) => this.onRestartEvent(e),
    });
    enlargeRecvBuffers(this.pc, this.recvBufferBytes);
    if (this.restartCfg.maxAttempts > 0 || this.restartCfg.silenceMs > 0) this.startWatching();
    this.o.onLink(this.link);
  }

  private onRestartEvent(e: IceRestartEvent): void {
    this.log.debug({ remoteId: this.remoteId, ...e }, `ICE restart: ${e.type}`);
    try {
      this.o.onIceRestart?.(e);
    } catch (err) {
      this.log.debug({ err: String(err) }, 'onIceRestart threw');
    }
  }

  /**
   * Silence detection (see the file comment): every datagram the ICE connection hands to DTLS
   * counts, whatever socket it came in on (werift's per-pair counters stay at 0 on relayed pairs).
   */
  private startWatching(): void {
    const sctp = sctpOf(this.pc);
    try {
      sctp?.setHeartbeatInterval?.(HEARTBEAT_INTERVAL_S);
    } catch {
      /* werift's default heartbeat then applies */
    }
    const now = performance.now();
    this.activity = { lastRecvAt: now, seenAt: now };
    for (const conn of iceConnections(this.pc)) {
      const sub = conn.onData?.subscribe?.(() => {
        this.activity.lastRecvAt = performance.now();
      });
      if (sub?.unSubscribe) this.unsubscribers.push(sub.unSubscribe);
    }
    this.watchTimer = setInterval(() => this.watch(), WATCH_INTERVAL_MS);
    (this.watchTimer as { unref?: () => void }).unref?.();
  }

  private watch(): void {
    if (this.state !== 'open' || !this.restarter) return;
    const now = performance.now();
    const { lastRecvAt, seenAt } = this.activity;
    this.activity.seenAt = now;
    if (lastRecvAt > seenAt) {
      // Packets since the last look, and a selected pair to answer on: the path works.
      if (this.restarter.active && nominatedPair(this.pc)) this.reconnected();
    } else if (this.restartCfg.silenceMs > 0 && now - lastRecvAt >= this.restartCfg.silenceMs) {
      this.restarter.down(`no packet for ${Math.round(now - lastRecvAt)} ms`);
    }
  }

  /**
   * After a restart's offer/answer: run the ICE checks. werift's own connect() skips them when
   * DTLS is already up (0.24: it returns early for a connected DTLS transport), so a restart would
   * never find a new pair. Waits (briefly) until local gathering has begun, as werift requires.
   */
  private startIceChecks(tries = 0): void {
    if (this.state !== 'open') return;
    for (const t of this.pc.iceTransports) {
      const conn = (t as unknown as { connection?: IceConnectionInternals }).connection;
      if (!conn || conn.nominated || t.state === 'checking' || t.state === 'closed') continue;
      if (conn.localCandidatesStart === false || !conn.remoteUsername) {
        if (tries < 100) setTimeout(() => this.startIceChecks(tries + 1), 20);
        return;
      }
      t.start().then(
        () => this.reconnected(),
        (err: unknown) => {
          if (this.state !== 'open') return;
          this.log.debug({ remoteId: this.remoteId, err: String(err) }, 'ICE restart: checks failed');
          if (this.restarter?.state === 'restarting') this.restarter.attemptFailed();
          else this.restarter?.down('ICE checks failed');
        },
      );
    }
  }

  /** What the connection's lower layers are doing (for a test or an operator asking why a link is silent). */
  private diagnostics(): Record<string, unknown> {
    const sctp = sctpOf(this.pc);
    return {
      connectionState: this.pc.connectionState,
      iceConnectionState: this.pc.iceConnectionState,
      msSinceReceived: Math.round(performance.now() - this.activity.lastRecvAt),
      bufferedAmount: this.dc.bufferedAmount,
      sctp: sctp
        ? { state: sctp.state, rtoS: sctp.rto, cwnd: sctp.cwnd, flightSize: sctp.flightSize, sentQueue: sctp.sentQueue?.length, t3Armed: Boolean(sctp.timer3Handle) }
        : null,
    };
  }

  /** Connected again (after a restart, ours or the remote's): refresh what depends on the pair. */
  private reconnected(): void {
    if (this.state !== 'open') return;
    const info = selectedPairInfo(this.pc);
    if (!info) return; // no nominated pair yet
    if (this.link) this.link.connection = info;
    this.activity.lastRecvAt = Math.max(this.activity.lastRecvAt, performance.now()); // the silence clock starts over
    this.closeRetired();
    enlargeRecvBuffers(this.pc, this.recvBufferBytes); // the restart gathered new sockets
    // werift leaves connectionState 'failed' after a consent expiry even once ICE works again.
    if (this.pc.connectionState === 'failed') {
      const sm = (this.pc as unknown as { secureManager?: { setConnectionState?: (s: string) => void } }).secureManager;
      try {
        sm?.setConnectionState?.('connected');
      } catch {
        /* cosmetic */
      }
    }
    // SCTP retransmits what the outage lost only when its T3 timer fires (up to an RTO later): now.
    const sctp = sctpOf(this.pc);
    try {
      if (sctp?.timer3Handle && sctp.timer3Cancel && sctp.timer3Expired) {
        sctp.timer3Cancel();
        sctp.timer3Expired();
      }
    } catch {
      /* the timer fires by itself */
    }
    this.restarter?.up(info.relayed);
  }

  /** One restart attempt: a fresh offer with new ICE credentials, through the tracker. */
  private sendRestartOffer(attempt: number): void {
    const run = async () => {
      await this.localSdpTask;
      await this.remoteSdpTask;
      if (this.state !== 'open') return;
      if (this.pc.signalingState === 'have-local-offer') {
        // our previous attempt's offer was never answered
        await this.pc.setLocalDescription({ type: 'rollback' } as unknown as Parameters<RTCPeerConnection['setLocalDescription']>[0]);
        this.restartOfferPending = false;
      }
      if (this.pc.signalingState !== 'stable') throw new Error(`signaling state ${this.pc.signalingState}`);
      const offer = await this.pc.createOffer({ iceRestart: true });
      if (this.state !== 'open') return;
      this.restartOfferPending = true;
      this.o.sendSignal({ sdp: { type: 'offer', sdp: offer.sdp } });
      limitStunWait(this.pc, this.stunTimeoutMs);
      await this.pc.setLocalDescription(offer);
    };
    const task = run();
    this.localSdpTask = task.catch(() => undefined);
    task.catch((err: unknown) => {
      if (this.state !== 'open') return;
      this.log.debug({ remoteId: this.remoteId, attempt, err: String(err) }, 'ICE restart: offer failed');
      this.restarter?.attemptFailed();
    });
  }

  /** The remote restarts ICE: answer in place (the data channel stays open). */
  private async answerRestart(sdp: string): Promise<void> {
    const glare = this.restartOfferPending || this.pc.signalingState === 'have-local-offer';
    if (glare && this.o.initiator) {
      // Both offered: the original offerer's offer wins and the remote answers it, unless ours
      // never reached it (lost with a dead tracker connection): then offer afresh shortly.
      this.log.debug({ remoteId: this.remoteId }, 'ICE restart glare: keeping our offer');
      if (this.glareTimer === null) {
        this.glareTimer = setTimeout(() => {
          this.glareTimer = null;
          if (this.state === 'open' && this.restartOfferPending) this.restarter?.restartNow('restart offer unanswered after glare');
        }, GLARE_RESEND_MS);
      }
      return;
    }
    this.restartOfferPending = false;
    this.restarter?.remoteRestart();
    this.activity.lastRecvAt = performance.now(); // give the remote's restart time before calling the path dead
    const applied = this.applyRemote(async () => {
      await this.localSdpTask; // a polite side's own offer finishes first (werift then rolls it back)
      await this.pc.setRemoteDescription({ type: 'offer', sdp });
    });
    try {
      await applied;
      if (this.state !== 'open') return;
      const answer = await this.pc.createAnswer();
      if (this.state !== 'open') return;
      this.o.sendSignal({ sdp: { type: 'answer', sdp: answer.sdp } });
      limitStunWait(this.pc, this.stunTimeoutMs);
      const local = this.pc.setLocalDescription(answer);
      this.startIceChecks();
      await local;
    } catch (err) {
      if (this.state !== 'open') return;
      this.log.debug({ remoteId: this.remoteId, err: String(err) }, 'ICE restart: answering failed');
      this.restarter?.down('restart answer failed');
    }
  }

  /** Before the channel opened: report once, release everything. */
  private fail(reason: string): void {
    if (this.state !== 'connecting') return;
    this.state = 'closed';
    this.release();
    this.log.debug({ remoteId: this.remoteId, reason }, 'connection failed');
    this.o.onFailed(reason);
  }

  /** After the channel opened: release everything, then tell the Link's owner once. */
  private shutdown(): void {
    if (this.state !== 'open') return;
    this.state = 'closed';
    this.release();
    this.link?.closed();
  }

  private clearGlareTimer(): void {
    if (this.glareTimer !== null) {
      clearTimeout(this.glareTimer);
      this.glareTimer = null;
    }
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private closeRetired(): void {
    for (const p of this.retired.splice(0)) {
      try {
        void Promise.resolve(p.close?.()).catch(() => undefined);
      } catch {
        /* ignore */
      }
    }
  }

  private release(): void {
    this.clearTimer();
    this.clearGlareTimer();
    this.restarter?.stop();
    if (this.watchTimer !== null) {
      clearInterval(this.watchTimer);
      this.watchTimer = null;
    }
    this.pendingCandidates = [];
    for (const u of this.unsubscribers.splice(0)) {
      try {
        u();
      } catch {
        /* ignore */
      }
    }
    try {
      if (this.dc.readyState !== 'closed') this.dc.close();
    } catch {
      /* ignore */
    }
    // Stop SCTP first and give its ABORT a moment to leave before the sockets close: werift's
    // pc.close() tears DTLS down before SCTP (no ABORT goes out), and the remote would otherwise
    // only notice through consent freshness (30 s).
    const pc = this.pc;
    const sctp = pc.sctpTransport;
    const stopSctp = sctp ? sctp.stop().catch(() => undefined) : Promise.resolve();
    stopSctp
      .then(() => new Promise((r) => setTimeout(r, sctp ? ABORT_LINGER_MS : 0)))
      .then(() => pc.close())
      .then(() => this.closeRetired())
      .catch((err: unknown) => this.log.debug({ err: String(err) }, 'pc.close failed'));
  }
}

function iceConnections(pc: RTCPeerConnection): IceConnectionInternals[] {
  const out: IceConnectionInternals[] = [];
  try {
    for (const t of pc.iceTransports) {
      const c = (t as unknown as { connection?: IceConnectionInternals }).connection;
      if (c) out.push(c);
    }
  } catch {
    /* closed */
  }
  return out;
}

/** Sets the receive buffer of the ICE sockets werift opened (udpRecvBufferBytes > 0); best effort. */
function enlargeRecvBuffers(pc: RTCPeerConnection, bytes: number): void {
  if (bytes <= 0) return;
  for (const conn of iceConnections(pc)) {
    for (const p of conn.protocols ?? []) {
      try {
        p.transport?.socket?.setRecvBufferSize?.(bytes);
      } catch {
        /* not bound, or closed: the kernel's default applies */
      }
    }
  }
}

/** werift's selected (nominated) candidate pair object (null during a restart, until a new one is chosen). */
function nominatedPair(pc: RTCPeerConnection): object | null {
  const n = iceConnections(pc)[0]?.nominated;
  return n && typeof n === 'object' ? n : null;
}

function sctpOf(pc: RTCPeerConnection): SctpInternals | null {
  const s = (pc.sctpTransport as unknown as { sctp?: SctpInternals } | undefined)?.sctp;
  return s && typeof s === 'object' ? s : null;
}

/**
 * On every ICE restart, moves werift's ICE sockets (host, STUN, TURN) aside into `retired`, so
 * that the restart gathers fresh ones, server-reflexive and relay candidates included (werift 0.24
 * otherwise re-announces only its old host candidates). Old sockets keep receiving until closed.
 */
function retireSocketsOnRestart(pc: RTCPeerConnection, retired: Array<{ close?: () => Promise<unknown> | unknown }>): void {
  for (const conn of iceConnections(pc)) {
    if (conn.__starlingRetire || typeof conn.restart !== 'function') continue;
    const orig = conn.restart;
    conn.restart = function (this: IceConnectionInternals, ...args: unknown[]) {
      const r = orig.apply(this, args);
      if (Array.isArray(this.protocols) && this.protocols.length > 0) {
        retired.push(...this.protocols);
        this.protocols = [];
      }
      return r;
    };
    conn.__starlingRetire = true;
  }
}

/**
 * The two ends of a link on the same path, and a direct one whenever one works. werift's
 * controlling agent nominates aggressively (USE-CANDIDATE on every check), and each agent sends on
 * the first nominated pair that succeeded *on its side*; the orders differ, so one end can send
 * through the TURN server while the other sends directly (seen in test/net/nat.test.ts between two
 * full-cone NATs), paying for a relay nobody needs. RFC 5245's aggressive nomination has each agent
 * use its best nominated pair instead: here an agent on a relayed pair moves to a direct pair as
 * soon as one is nominated and has succeeded (same ICE generation), and both ends end up direct.
 */
function preferDirectPath(pc: RTCPeerConnection): void {
  for (const conn of iceConnections(pc)) {
    if (conn.__starlingPreferDirect || typeof conn.checkComplete !== 'function') continue;
    const orig = conn.checkComplete;
    conn.checkComplete = function (this: IceConnectionInternals, pair: IcePairInternals) {
      orig.call(this, pair);
      const current = this.nominated as IcePairInternals | undefined;
      if (!current || pair === current || pair.nominated !== true || pair.state !== PAIR_SUCCEEDED) return;
      if (!pairRelayed(current) || pairRelayed(pair) !== false) return;
      const gen = pair.remoteCandidate?.generation;
      if (gen !== undefined && gen !== this.generation) return;
      this.nominated = pair; // werift sends on (and keeps consent on) whatever `nominated` is
    };
    conn.__starlingPreferDirect = true;
  }
}

/** werift's CandidatePairState.SUCCEEDED. */
const PAIR_SUCCEEDED = 3;

/** Through a TURN relay (either candidate is one); undefined when werift's pair has no candidates. */
function pairRelayed(pair: IcePairInternals): boolean | undefined {
  try {
    const l = pair.localCandidate?.type;
    const r = pair.remoteCandidate?.type;
    if (typeof l !== 'string' || typeof r !== 'string') return undefined;
    return l === 'relay' || r === 'relay';
  } catch {
    return undefined; // werift's localCandidate getter throws once its protocol is gone
  }
}

/**
 * Caps werift's wait for the STUN server during gathering (see stunTimeoutMs). Reaches into
 * werift's ICE connection (`getCandidatePromises(addresses, timeoutSeconds)`, werift 0.24);
 * if that shape is not there, werift's default applies.
 */
function limitStunWait(pc: RTCPeerConnection, ms: number): void {
  for (const t of pc.iceTransports) {
    const conn = (t as unknown as { connection?: Record<string, unknown> }).connection;
    if (!conn || conn.__starlingStunCap || typeof conn.getCandidatePromises !== 'function') continue;
    const orig = conn.getCandidatePromises as (addresses: unknown, timeout?: number) => unknown;
    conn.getCandidatePromises = function (this: unknown, addresses: unknown, timeout?: number) {
      return orig.call(this, addresses, Math.min(timeout ?? 5, ms / 1000));
    };
    conn.__starlingStunCap = true;
  }
}

function candidateInit(c: { candidate: string; sdpMid?: string | null; sdpMLineIndex?: number | null }): {
  candidate: string;
  sdpMid?: string;
  sdpMLineIndex?: number;
} {
  const out: { candidate: string; sdpMid?: string; sdpMLineIndex?: number } = { candidate: c.candidate };
  if (typeof c.sdpMid === 'string') out.sdpMid = c.sdpMid;
  if (typeof c.sdpMLineIndex === 'number') out.sdpMLineIndex = c.sdpMLineIndex;
  return out;
}

/**
 * Direct or relayed, from the pair the ICE agent sends on (its `nominated`); undefined while it
 * has none. Not werift's getSelectedCandidatePair(): that names the first pair of its list that
 * carries the nominated flag (several do: werift nominates aggressively) or, before any does, the
 * first that succeeded; not necessarily the pair in use.
 */
export function selectedPairInfo(pc: RTCPeerConnection): ConnectionInfo | undefined {
  try {
    const pair = nominatedPair(pc) as IcePairInternals | null;
    if (!pair) return undefined;
    const local = typeName(pair.localCandidate?.type);
    const remote = typeName(pair.remoteCandidate?.type);
    return { local, remote, relayed: local === 'relay' || remote === 'relay' };
  } catch {
    return undefined; // werift's localCandidate getter throws once its protocol is gone
  }
}

function typeName(t: unknown): string {
  return typeof t === 'string' && /^\w+$/.test(t) ? t : 'unknown';
}

/** The open data channel as a Link. Frames received before the engine set onMessage are queued. */
class WeriftLink implements Link {
  /** The last pair known (see `connection`), kept while a restart has none nominated. */
  private known: ConnectionInfo | undefined;
  private handler: ((frame: Uint8Array) => void) | null = null;
  private queue: Uint8Array[] = [];
  private isClosed = false;
  private lowHandler: (() => void) | null = null;
  private lowPending = false;
  onClose: (() => void) | null = null;

  constructor(
    readonly remoteId: string,
    private readonly dc: RTCDataChannel,
    private readonly closeConnection: () => void,
    /** The connection's SCTP/ICE state, for diagnosing a silent link. */
    readonly diagnostics: () => Record<string, unknown>,
    /** The ICE agent's nominated pair now (undefined while it has none). */
    private readonly nominatedInfo: () => ConnectionInfo | undefined,
  ) {
    // werift signals the crossing from inside SCTP's transmit path, which a send() may be on:
    // the engine's refill runs on its own turn, once per burst of crossings.
    dc.bufferedAmountLow.subscribe(() => {
      if (this.lowPending || !this.lowHandler) return;
      this.lowPending = true;
      setImmediate(() => {
        this.lowPending = false;
        if (!this.isClosed) this.lowHandler?.();
      });
    });
  }

  /** Link.lowThreshold: the data channel's bufferedAmountLowThreshold. */
  get lowThreshold(): number {
    return this.dc.bufferedAmountLowThreshold;
  }

  set lowThreshold(v: number) {
    this.dc.bufferedAmountLowThreshold = Math.max(0, Math.floor(v));
  }

  /** Link.onLow: called (on a later turn) when bufferedAmount falls to lowThreshold. */
  get onLow(): (() => void) | null {
    return this.lowHandler;
  }

  set onLow(h: (() => void) | null) {
    this.lowHandler = h;
  }

  get bufferedAmount(): number {
    return this.dc.bufferedAmount;
  }

  /**
   * The ICE agent's selected candidate pair (see ConnectionInfo), read when asked: the controlled
   * side's channel can open before the controlling side's USE-CANDIDATE reached it, and an agent
   * may move to a direct pair later (preferDirectPath). Undefined until one is known.
   */
  get connection(): ConnectionInfo | undefined {
    const now = this.nominatedInfo();
    if (now) this.known = now;
    return this.known;
  }

  set connection(info: ConnectionInfo | undefined) {
    this.known = info;
  }

  /** Link.relayed: through a TURN relay (undefined while the selected pair is unknown). */
  get relayed(): boolean | undefined {
    return this.connection?.relayed;
  }

  get onMessage(): ((frame: Uint8Array) => void) | null {
    return this.handler;
  }

  set onMessage(h: ((frame: Uint8Array) => void) | null) {
    this.handler = h;
    if (h && this.queue.length > 0) {
      queueMicrotask(() => {
        const q = this.queue;
        this.queue = [];
        for (const f of q) {
          if (this.isClosed) return;
          if (this.handler) this.handler(f);
          else this.queue.push(f);
        }
      });
    }
  }

  send(frame: Uint8Array): void {
    if (this.isClosed || this.dc.readyState !== 'open') return;
    // Copy: werift keeps a reference to the buffer until SCTP sent it; callers may reuse theirs.
    this.dc.send(Buffer.from(frame));
  }

  close(): void {
    this.closeConnection();
  }

  /** @internal */
  deliver(frame: Uint8Array): void {
    if (this.isClosed) return;
    if (this.handler && this.queue.length === 0) this.handler(frame);
    else if (this.queue.length < 1024) this.queue.push(frame);
  }

  /** @internal */
  closed(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.queue = [];
    const cb = this.onClose;
    this.onClose = null;
    cb?.();
  }
}
