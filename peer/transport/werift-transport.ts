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
 *
 * ICE servers: always passed explicitly. werift replaces an absent/empty STUN entry with
 * stun.l.google.com, which stalls on DNS with no internet (DESIGN.md §9). The tracker always
 * hands out at least one STUN entry (its own responder); if a caller still passes an empty list we
 * substitute `stun:127.0.0.1:3478` (local, never leaves the machine; if nothing answers there,
 * werift gives up on the server-reflexive candidate after 5 s while host candidates are used
 * right away). See `effectiveIceServers`.
 *
 * Failure handling: connection timeout (default 15 s) → onFailed('timeout'); ICE/DTLS 'failed'
 * or 'closed' before the channel opens → onFailed; after it opened the Link's onClose fires once.
 * close() clears the timer and closes the channel and the peer connection (its UDP sockets).
 */
import { RTCPeerConnection, type RTCDataChannel } from 'werift';
import type { Link, Logger } from '../core/types.js';
import { silentLogger } from '../core/types.js';
import type { IceServer, SignalData } from '../core/signaling.js';
import { candidateType, type ConnectionInfo, type ConnectorOptions, type PeerConnector, type Transport } from './transport-api.js';

export const DATA_CHANNEL_LABEL = 'starling';
export const DATA_CHANNEL_ID = 0;
export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
export const DEFAULT_STUN_TIMEOUT_MS = 2_000;
const ABORT_LINGER_MS = 100;
/** After the channel opened, a connection 'disconnected' this long is given up. */
export const DISCONNECTED_GRACE_MS = 8_000;
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
  /** Extra werift options (tests: iceAdditionalHostAddresses, icePortRange, ...). */
  peerConfig?: Record<string, unknown>;
}

export function effectiveIceServers(servers: IceServer[] | undefined): IceServer[] {
  const list = (servers ?? []).filter((s) => s && (typeof s.urls === 'string' || Array.isArray(s.urls)));
  return list.length > 0 ? list : FALLBACK_ICE_SERVERS;
}

export function createWeriftTransport(opts: WeriftTransportOptions = {}): Transport {
  const log = opts.log ?? silentLogger;
  const timeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const stunTimeoutMs = opts.stunTimeoutMs ?? DEFAULT_STUN_TIMEOUT_MS;
  return {
    name: 'werift',
    connect(o: ConnectorOptions): PeerConnector {
      return new WeriftConnector(o, log, timeoutMs, opts.peerConfig ?? {}, stunTimeoutMs);
    },
  };
}

type State = 'connecting' | 'open' | 'closed';

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

  constructor(
    private readonly o: ConnectorOptions,
    private readonly log: Logger,
    timeoutMs: number,
    peerConfig: Record<string, unknown>,
    private readonly stunTimeoutMs: number,
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
      this.pc.connectionStateChange.subscribe((s) => {
        if (s === 'disconnected' && this.state === 'open' && this.timer === null) {
          this.timer = setTimeout(() => {
            this.timer = null;
            this.shutdown();
          }, DISCONNECTED_GRACE_MS);
        } else if (s === 'connected' && this.state === 'open') this.clearTimer();
        if (s === 'failed' || s === 'closed') {
          if (this.state === 'connecting') this.fail(`connection ${s}`);
          else if (this.state === 'open') this.shutdown();
        }
      }).unSubscribe,
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

  async handleSignal(data: SignalData): Promise<void> {
    if (this.state === 'closed' || !data || typeof data !== 'object') return;
    if ('reject' in data) {
      if (this.state === 'connecting') this.fail(`rejected: ${String(data.reject).slice(0, 64)}`);
      return;
    }
    if ('sdp' in data) {
      const { type, sdp } = data.sdp ?? ({} as { type?: string; sdp?: string });
      if (typeof sdp !== 'string') return;
      if (type === 'offer' && !this.o.initiator && !this.remoteDescriptionSet) {
        this.remoteDescriptionSet = true;
        await this.runStep('answer', async () => {
          await this.pc.setRemoteDescription({ type: 'offer', sdp });
          if (this.isClosed()) return;
          const answer = await this.pc.createAnswer();
          if (this.isClosed()) return;
          this.sendDescription({ type: 'answer', sdp: answer.sdp });
          limitStunWait(this.pc, this.stunTimeoutMs);
          await this.pc.setLocalDescription(answer);
        });
      } else if (type === 'answer' && this.o.initiator && !this.remoteDescriptionSet) {
        this.remoteDescriptionSet = true;
        await this.runStep('set answer', () => this.pc.setRemoteDescription({ type: 'answer', sdp }));
      } else {
        this.log.debug({ remoteId: this.remoteId, type }, 'unexpected sdp ignored');
      }
      return;
    }
    if ('candidate' in data) {
      const c = data.candidate;
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

  private opened(): void {
    if (this.state !== 'connecting' || this.dc.readyState !== 'open') return;
    this.state = 'open';
    this.clearTimer();
    this.link = new WeriftLink(this.remoteId, this.dc, () => this.close());
    this.link.connection = selectedPairInfo(this.pc);
    this.o.onLink(this.link);
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

  private clearTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private release(): void {
    this.clearTimer();
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
      .catch((err: unknown) => this.log.debug({ err: String(err) }, 'pc.close failed'));
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

/** Direct or relayed, from werift's selected (nominated) ICE candidate pair; undefined if none. */
export function selectedPairInfo(pc: RTCPeerConnection): ConnectionInfo | undefined {
  try {
    const pair = pc.iceTransports[0]?.getSelectedCandidatePair();
    if (!pair) return undefined;
    const local = candidateType(pair.local?.candidate);
    const remote = candidateType(pair.remote?.candidate);
    return { local, remote, relayed: local === 'relay' || remote === 'relay' };
  } catch {
    return undefined;
  }
}

/** The open data channel as a Link. Frames received before the engine set onMessage are queued. */
class WeriftLink implements Link {
  /** Selected candidate pair when the channel opened (see ConnectionInfo). */
  connection: ConnectionInfo | undefined;
  private handler: ((frame: Uint8Array) => void) | null = null;
  private queue: Uint8Array[] = [];
  private isClosed = false;
  onClose: (() => void) | null = null;

  constructor(
    readonly remoteId: string,
    private readonly dc: RTCDataChannel,
    private readonly closeConnection: () => void,
  ) {}

  get bufferedAmount(): number {
    return this.dc.bufferedAmount;
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
