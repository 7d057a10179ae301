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
 *   'failed'/'closed' -> Link.onClose once; 'disconnected' for DISCONNECTED_GRACE_MS -> closed.
 *
 * No werift, no node:* imports: this file is bundled into the player.
 */
import type { Link, Logger } from '../core/types.js';
import { silentLogger } from '../core/types.js';
import type { IceServer, SignalData } from '../core/signaling.js';
import type { ConnectionInfo, ConnectorOptions, PeerConnector, Transport } from './transport-api.js';

export const DATA_CHANNEL_LABEL = 'starling';
export const DATA_CHANNEL_ID = 0;
export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
export const DISCONNECTED_GRACE_MS = 8_000;
export const FALLBACK_ICE_SERVERS: IceServer[] = [{ urls: 'stun:127.0.0.1:3478' }];

export interface BrowserTransportOptions {
  log?: Logger;
  connectTimeoutMs?: number;
  /** Defaults to globalThis.RTCPeerConnection (injectable for tests). */
  RTCPeerConnection?: typeof RTCPeerConnection;
}

export function createBrowserTransport(opts: BrowserTransportOptions = {}): Transport {
  const log = opts.log ?? silentLogger;
  const timeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const Ctor = opts.RTCPeerConnection ?? (globalThis as { RTCPeerConnection?: typeof RTCPeerConnection }).RTCPeerConnection;
  return {
    name: 'browser',
    connect(o: ConnectorOptions): PeerConnector {
      if (!Ctor) throw new Error('RTCPeerConnection is not available in this environment');
      return new BrowserConnector(Ctor, o, log, timeoutMs);
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

  constructor(
    Ctor: typeof RTCPeerConnection,
    private readonly o: ConnectorOptions,
    private readonly log: Logger,
    timeoutMs: number,
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
    this.pc.onconnectionstatechange = () => {
      const s = this.pc.connectionState;
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
    };
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
          await this.pc.setLocalDescription(await this.pc.createAnswer());
          if (this.isClosed()) return;
          const d = this.pc.localDescription;
          if (d) this.sendDescription({ type: 'answer', sdp: d.sdp });
        });
      } else if (type === 'answer' && this.o.initiator && !this.remoteDescriptionSet) {
        this.remoteDescriptionSet = true;
        await this.runStep('set answer', () => this.pc.setRemoteDescription({ type: 'answer', sdp }));
      }
      return;
    }
    if ('candidate' in data) {
      const c = data.candidate;
      try {
        if (c === null || (c && c.candidate === '')) await this.pc.addIceCandidate(null as unknown as RTCIceCandidateInit);
        else if (c && typeof c.candidate === 'string') {
          await this.pc.addIceCandidate({ candidate: c.candidate, sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null });
        }
      } catch (err) {
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
    this.link = new BrowserLink(this.remoteId, this.dc, () => this.close());
    const link = this.link;
    void selectedPairInfo(this.pc).then((info) => (link.connection = info));
    this.o.onLink(this.link);
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

  private clearTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private release(): void {
    this.clearTimer();
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
  /** Selected candidate pair (see ConnectionInfo); undefined until getStats() answered. */
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
