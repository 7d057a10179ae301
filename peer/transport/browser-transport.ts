/**
 * Transport on the browser's native RTCPeerConnection (globalThis.RTCPeerConnection). Mirrors
 * werift-transport.ts so browser and werift peers interoperate:
 *
 * - one data channel per pair, label 'starling', ordered, reliable, `negotiated: true, id: 0` on
 *   both sides (no in-band DCEP announcement, no ondatachannel race);
 * - binaryType 'arraybuffer'; frames are delivered as Uint8Array; string messages are ignored;
 * - trickle ICE: the offer/answer goes out right after setLocalDescription, each candidate as
 *   `{candidate}` after it, and `{candidate: null}` when gathering completes;
 * - ICE servers are always explicit (an empty list gets FALLBACK_ICE_SERVERS, like werift);
 * - connect timeout (default 15 s) -> onFailed; after opening, channel close or connection
 *   'closed' -> Link.onClose once;
 * - ICE restart (issue 8, policy in ice-restart.ts): an open connection that goes 'disconnected'
 *   or 'failed', or receives nothing on its selected candidate pair for `silenceMs` (getStats(),
 *   polled every second; default BROWSER_SILENCE_MS: the browser's own state can stay 'connected'
 *   when only the remote-to-us direction died, e.g. our NAT mapping moved and our consent checks
 *   still get answers at the new one), is restarted after a grace period (`pc.restartIce()` + an offer with
 *   `iceRestart: true`, relayed through the tracker; the remote answers in place, PeerHost routes
 *   such offers here through isRenegotiation()); the data channel stays open meanwhile. Bounded
 *   attempts with back-off, then the Link closes and the host reconnects from scratch. Glare:
 *   the original offerer keeps its offer, the other side rolls its own back and answers;
 * - remote candidates wait while a remote description is being applied (addIceCandidate before
 *   setRemoteDescription finished would fail and lose them);
 * - Link.relayed / connection: from getStats()' selected candidate pair, refreshed after a restart.
 *
 * No werift, no node:* imports: this file is bundled into the player.
 */
import type { Link, Logger } from '../core/types.js';
import { silentLogger } from '../core/types.js';
import type { IceServer, SignalData } from '../core/signaling.js';
import type { ConnectionInfo, ConnectorOptions, PeerConnector, Transport } from './transport-api.js';
import { IceRestarter, iceRestartConfig, sdpFingerprint, type IceRestartEvent, type IceRestartOptions } from './ice-restart.js';

export const DATA_CHANNEL_LABEL = 'starling';
export const DATA_CHANNEL_ID = 0;
export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
/** ICE restart glare: the original offerer re-offers if its offer is still unanswered after this. */
export const GLARE_RESEND_MS = 1000;
export const FALLBACK_ICE_SERVERS: IceServer[] = [{ urls: 'stun:127.0.0.1:3478' }];
/**
 * Silence on the selected pair that counts as an outage (browsers' SCTP heartbeat is 30 s, so an
 * idle browser<->browser link carries only STUN consent checks, every few seconds).
 */
export const BROWSER_SILENCE_MS = 6000;
const WATCH_INTERVAL_MS = 1000;

export interface BrowserTransportOptions {
  log?: Logger;
  connectTimeoutMs?: number;
  /** Defaults to globalThis.RTCPeerConnection (injectable for tests). */
  RTCPeerConnection?: typeof RTCPeerConnection;
  /** ICE restart policy (see ice-restart.ts; silenceMs is not used: browsers detect outages themselves). */
  iceRestart?: IceRestartOptions;
}

export function createBrowserTransport(opts: BrowserTransportOptions = {}): Transport {
  const log = opts.log ?? silentLogger;
  const timeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const Ctor = opts.RTCPeerConnection ?? (globalThis as { RTCPeerConnection?: typeof RTCPeerConnection }).RTCPeerConnection;
  const restart = iceRestartConfig({ silenceMs: BROWSER_SILENCE_MS, ...opts.iceRestart });
  return {
    name: 'browser',
    connect(o: ConnectorOptions): PeerConnector {
      if (!Ctor) throw new Error('RTCPeerConnection is not available in this environment');
      return new BrowserConnector(Ctor, o, log, timeoutMs, restart);
    },
  };
}

type State = 'connecting' | 'open' | 'closed';

class BrowserConnector implements PeerConnector {
  readonly remoteId: string;
  private readonly pc: RTCPeerConnection;
  private readonly dc: RTCDataChannel;
  private state: State = 'connecting';
  private timer: ReturnType<typeof setTimeout> | null;
  private link: BrowserLink | null = null;
  private descriptionSent = false;
  private pendingCandidates: SignalData[] = [];
  private remoteDescriptionSet = false;
  /** DTLS fingerprint(s) of the remote's first description: a later offer with the same is a renegotiation. */
  private remoteFingerprint = '';
  /** The remote description being applied; remote candidates wait for it. */
  private remoteSdpTask: Promise<void> = Promise.resolve();
  /** Our restart offer being made; a polite glare answer waits for it. */
  private localSdpTask: Promise<void> = Promise.resolve();
  private restartOfferPending = false;
  private restarter: IceRestarter | null = null;
  /** See answerRestart (glare). */
  private glareTimer: ReturnType<typeof setTimeout> | null = null;
  private watchTimer: ReturnType<typeof setInterval> | null = null;
  private watchBusy = false;
  private activity: { pairId: string; count: number; at: number } = { pairId: '', count: 0, at: 0 };

  constructor(
    Ctor: typeof RTCPeerConnection,
    private readonly o: ConnectorOptions,
    private readonly log: Logger,
    timeoutMs: number,
    private readonly restartCfg: ReturnType<typeof iceRestartConfig>,
  ) {
    this.remoteId = o.remoteId;
    const servers = (o.iceServers ?? []).filter((s) => s && (typeof s.urls === 'string' || Array.isArray(s.urls)));
    this.pc = new Ctor({ iceServers: (servers.length > 0 ? servers : FALLBACK_ICE_SERVERS).map((s) => ({ ...s })) });
    this.dc = this.pc.createDataChannel(DATA_CHANNEL_LABEL, { negotiated: true, id: DATA_CHANNEL_ID, ordered: true });
    this.dc.binaryType = 'arraybuffer';
    this.timer = setTimeout(() => {
      this.timer = null;
      this.fail('timeout');
    }, timeoutMs);

    this.pc.onicecandidate = (ev) => {
      if (this.state === 'closed') return;
      const c = ev.candidate;
      const data: SignalData = {
        candidate:
          c && c.candidate
            ? { candidate: c.candidate, sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null }
            : null,
      };
      if (this.descriptionSent) this.o.sendSignal(data);
      else this.pendingCandidates.push(data);
    };
    this.pc.onconnectionstatechange = () => this.onConnectionState(this.pc.connectionState);
    this.dc.onopen = () => this.opened();
    this.dc.onclose = () => {
      if (this.state === 'connecting') this.fail('channel closed');
      else if (this.state === 'open') this.shutdown();
    };
    this.dc.onmessage = (ev: MessageEvent) => {
      const d: unknown = ev.data;
      if (d instanceof ArrayBuffer) this.link?.deliver(new Uint8Array(d));
      else if (ArrayBuffer.isView(d)) this.link?.deliver(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
      // strings (and Blobs, which binaryType rules out) are not part of the protocol
    };

    if (o.initiator) {
      void this.runStep('offer', async () => {
        await this.pc.setLocalDescription(await this.pc.createOffer());
        if (this.isClosed()) return;
        const d = this.pc.localDescription;
        if (d) this.sendDescription({ type: 'offer', sdp: d.sdp });
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
        const applied = this.applyRemote(() => this.pc.setRemoteDescription({ type: 'offer', sdp }));
        await this.runStep('answer', async () => {
          await applied;
          if (this.isClosed()) return;
          await this.pc.setLocalDescription(await this.pc.createAnswer());
          if (this.isClosed()) return;
          const d = this.pc.localDescription;
          if (d) this.sendDescription({ type: 'answer', sdp: d.sdp });
        });
      } else if (type === 'answer' && this.o.initiator && !this.remoteDescriptionSet && this.state === 'connecting') {
        this.remoteDescriptionSet = true;
        this.remoteFingerprint = sdpFingerprint(sdp);
        await this.runStep('set answer', () => this.applyRemote(() => this.pc.setRemoteDescription({ type: 'answer', sdp })));
      } else if (type === 'offer' && this.isRenegotiation(data)) {
        await this.answerRestart(sdp);
      } else if (type === 'answer' && this.state === 'open' && this.restartOfferPending && sdpFingerprint(sdp) === this.remoteFingerprint) {
        this.restartOfferPending = false;
        this.clearGlareTimer();
        try {
          await this.applyRemote(async () => {
            await this.localSdpTask;
            if (this.pc.signalingState !== 'have-local-offer') throw new Error(`answer in signaling state ${this.pc.signalingState}`);
            await this.pc.setRemoteDescription({ type: 'answer', sdp });
          });
        } catch (err) {
          this.log.debug({ remoteId: this.remoteId, err: String(err) }, 'ICE restart: setting the answer failed');
          this.restarter?.attemptFailed();
        }
      }
      return;
    }
    if ('candidate' in data) {
      const c = data.candidate;
      await this.remoteSdpTask;
      if (this.isClosed()) return;
      try {
        if (c === null || (c && c.candidate === '')) await this.pc.addIceCandidate(null as unknown as RTCIceCandidateInit);
        else if (c && typeof c.candidate === 'string') {
          await this.pc.addIceCandidate({ candidate: c.candidate, sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null });
        }
      } catch (err) {
        // e.g. a candidate of an ICE generation that a restart ended
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

  /** Runs a setRemoteDescription step; candidates received meanwhile wait for it (in order). */
  private applyRemote(step: () => Promise<unknown>): Promise<void> {
    const task = this.remoteSdpTask.then(step).then(() => undefined);
    this.remoteSdpTask = task.catch(() => undefined);
    return task;
  }

  private onConnectionState(s: RTCPeerConnectionState): void {
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
    this.link = new BrowserLink(this.remoteId, this.dc, () => this.close());
    const link = this.link;
    void selectedPairInfo(this.pc).then((info) => (link.connection = info));
    this.restarter = new IceRestarter(this.restartCfg, this.o.initiator, {
      restart: (attempt) => this.sendRestartOffer(attempt),
      giveUp: () => this.shutdown(),
      onEvent: (e) => this.onRestartEvent(e),
    });
    if (this.restartCfg.silenceMs > 0) {
      this.activity = { pairId: '', count: 0, at: performance.now() };
      this.watchTimer = setInterval(() => void this.watch(), WATCH_INTERVAL_MS);
    }
    this.o.onLink(this.link);
  }

  /** Silence detection on the selected pair (see the file comment). */
  private async watch(): Promise<void> {
    if (this.watchBusy || this.state !== 'open') return;
    this.watchBusy = true;
    try {
      const a = await receivedOnSelectedPair(this.pc);
      if (this.state !== 'open' || !this.restarter) return;
      const now = performance.now();
      if (a && (a.pairId !== this.activity.pairId ? a.count > 0 : a.count > this.activity.count)) {
        this.activity = { pairId: a.pairId, count: a.count, at: now };
        if (this.restarter.active) this.reconnected();
      } else if (now - this.activity.at >= this.restartCfg.silenceMs) {
        this.restarter.down(`no packet for ${Math.round(now - this.activity.at)} ms`);
      }
    } finally {
      this.watchBusy = false;
    }
  }

  private onRestartEvent(e: IceRestartEvent): void {
    this.log.debug({ remoteId: this.remoteId, ...e }, `ICE restart: ${e.type}`);
    try {
      this.o.onIceRestart?.(e);
    } catch (err) {
      this.log.debug({ err: String(err) }, 'onIceRestart threw');
    }
  }

  /** 'connected' again (after a restart, ours or the remote's): refresh the pair, end the outage. */
  private reconnected(): void {
    const link = this.link;
    const restarter = this.restarter;
    if (!link || !restarter) return;
    if (!restarter.active) {
      void selectedPairInfo(this.pc).then((info) => {
        if (info) link.connection = info;
      });
      return;
    }
    // End the outage first (timing), then refresh relayed/direct.
    restarter.up();
    void selectedPairInfo(this.pc).then((info) => {
      if (info) link.connection = info;
    });
  }

  /** One restart attempt: new ICE credentials and candidates, the offer through the tracker. */
  private sendRestartOffer(attempt: number): void {
    const run = async () => {
      await this.localSdpTask;
      await this.remoteSdpTask;
      if (this.state !== 'open') return;
      if (this.pc.signalingState === 'have-local-offer') {
        await this.pc.setLocalDescription({ type: 'rollback' });
        this.restartOfferPending = false;
      }
      if (this.pc.signalingState !== 'stable') throw new Error(`signaling state ${this.pc.signalingState}`);
      this.pc.restartIce();
      await this.pc.setLocalDescription(await this.pc.createOffer({ iceRestart: true }));
      if (this.state !== 'open') return;
      const d = this.pc.localDescription;
      if (!d) throw new Error('no local description');
      this.restartOfferPending = true;
      this.o.sendSignal({ sdp: { type: 'offer', sdp: d.sdp } });
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
    this.activity.at = performance.now(); // give the remote's restart time before calling the path dead
    try {
      await this.applyRemote(async () => {
        await this.localSdpTask;
        if (this.pc.signalingState === 'have-local-offer') await this.pc.setLocalDescription({ type: 'rollback' });
        await this.pc.setRemoteDescription({ type: 'offer', sdp });
      });
      if (this.state !== 'open') return;
      await this.pc.setLocalDescription(await this.pc.createAnswer());
      if (this.state !== 'open') return;
      const d = this.pc.localDescription;
      if (d) this.o.sendSignal({ sdp: { type: 'answer', sdp: d.sdp } });
    } catch (err) {
      if (this.state !== 'open') return;
      this.log.debug({ remoteId: this.remoteId, err: String(err) }, 'ICE restart: answering failed');
      this.restarter?.down('restart answer failed');
    }
  }

  private fail(reason: string): void {
    if (this.state !== 'connecting') return;
    this.state = 'closed';
    this.release();
    this.log.debug({ remoteId: this.remoteId, reason }, 'connection failed');
    this.o.onFailed(reason);
  }

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

  private release(): void {
    this.clearTimer();
    this.clearGlareTimer();
    this.restarter?.stop();
    if (this.watchTimer !== null) {
      clearInterval(this.watchTimer);
      this.watchTimer = null;
    }
    this.pendingCandidates = [];
    this.pc.onicecandidate = null;
    this.pc.onconnectionstatechange = null;
    this.dc.onopen = null;
    this.dc.onclose = null;
    this.dc.onmessage = null;
    try {
      this.dc.close();
    } catch {
      /* ignore */
    }
    try {
      this.pc.close();
    } catch {
      /* ignore */
    }
  }
}

/**
 * What arrived on the selected candidate pair: payload bytes plus STUN requests from the remote
 * (not responses: those can still come back while the remote's own packets to us are lost).
 */
async function receivedOnSelectedPair(pc: RTCPeerConnection): Promise<{ pairId: string; count: number } | null> {
  try {
    const stats = await pc.getStats();
    const byId = new Map<string, Record<string, unknown>>();
    stats.forEach((r: Record<string, unknown>) => byId.set(r.id as string, r));
    let pair: Record<string, unknown> | undefined;
    for (const r of byId.values()) {
      if (r.type === 'transport' && typeof r.selectedCandidatePairId === 'string') pair = byId.get(r.selectedCandidatePairId);
    }
    if (!pair) for (const r of byId.values()) if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r;
    if (!pair) return null;
    const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
    return { pairId: String(pair.id), count: n(pair.bytesReceived) + n(pair.packetsReceived) + n(pair.requestsReceived) };
  } catch {
    return null;
  }
}

/** Direct or relayed, from getStats()' selected candidate pair (resolved shortly after opening). */
export async function selectedPairInfo(pc: RTCPeerConnection): Promise<ConnectionInfo | undefined> {
  try {
    const stats = await pc.getStats();
    const byId = new Map<string, Record<string, unknown>>();
    stats.forEach((r: Record<string, unknown>) => byId.set(r.id as string, r));
    let pair: Record<string, unknown> | undefined;
    for (const r of byId.values()) {
      if (r.type === 'transport' && typeof r.selectedCandidatePairId === 'string') pair = byId.get(r.selectedCandidatePairId);
    }
    if (!pair) for (const r of byId.values()) if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r;
    if (!pair) return undefined;
    const local = String(byId.get(pair.localCandidateId as string)?.candidateType ?? 'unknown');
    const remote = String(byId.get(pair.remoteCandidateId as string)?.candidateType ?? 'unknown');
    return { local, remote, relayed: local === 'relay' || remote === 'relay' };
  } catch {
    return undefined;
  }
}

class BrowserLink implements Link {
  /** Selected candidate pair (see ConnectionInfo); undefined until getStats() answered; refreshed after an ICE restart. */
  connection: ConnectionInfo | undefined;
  private handler: ((frame: Uint8Array) => void) | null = null;
  private queue: Uint8Array[] = [];
  private isClosed = false;
  private lowHandler: (() => void) | null = null;
  onClose: (() => void) | null = null;

  constructor(
    readonly remoteId: string,
    private readonly dc: RTCDataChannel,
    private readonly closeConnection: () => void,
  ) {
    // The event is queued as a task: the engine's refill never runs inside its own send().
    dc.addEventListener('bufferedamountlow', () => {
      if (!this.isClosed) this.lowHandler?.();
    });
  }

  /** Link.lowThreshold: the data channel's bufferedAmountLowThreshold. */
  get lowThreshold(): number {
    return this.dc.bufferedAmountLowThreshold;
  }

  set lowThreshold(v: number) {
    this.dc.bufferedAmountLowThreshold = Math.max(0, Math.floor(v));
  }

  /** Link.onLow: called when bufferedAmount falls to lowThreshold. */
  get onLow(): (() => void) | null {
    return this.lowHandler;
  }

  set onLow(h: (() => void) | null) {
    this.lowHandler = h;
  }

  get bufferedAmount(): number {
    return this.dc.bufferedAmount;
  }

  /** Link.relayed: through a TURN relay (undefined until getStats() answered). */
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
    try {
      this.dc.send(frame as Uint8Array<ArrayBuffer>);
    } catch {
      // send() throws when the channel closed underneath or its buffer is full: the close event
      // follows; the engine treats the frame as lost.
    }
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
