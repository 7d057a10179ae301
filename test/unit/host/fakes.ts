/** Fakes for the host unit tests: a hand-driven clock, a WebSocket, a Transport and an engine. */
import type { Timers } from '../../../peer/host/timers.js';
import type { WebSocketLike } from '../../../peer/host/host-api.js';
import type { ConnectorOptions, PeerConnector, Transport } from '../../../peer/transport/transport-api.js';
import type { EngineApi, NeighborStat } from '../../../peer/core/engine-api.js';
import type { EngineStats, Link } from '../../../peer/core/types.js';
import type { SignalData } from '../../../peer/core/signaling.js';
import type { UploadLinksView } from '../../../peer/host/optimizer-report.js';

export class FakeTimers implements Timers {
  private t = 0;
  private seq = 0;
  private readonly tasks = new Map<number, { at: number; fn: () => void; every?: number }>();
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.tasks.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.tasks.delete(h as number);
  }
  setInterval(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.tasks.set(id, { at: this.t + ms, fn, every: ms });
    return id;
  }
  clearInterval(h: unknown): void {
    this.tasks.delete(h as number);
  }
  get pending(): number {
    return this.tasks.size;
  }
  /** Runs every task due up to now + ms, in time order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let nextId = -1;
      let next: { at: number; fn: () => void; every?: number } | undefined;
      for (const [id, task] of this.tasks) if (task.at <= end && (!next || task.at < next.at)) [nextId, next] = [id, task];
      if (!next) break;
      this.t = Math.max(this.t, next.at);
      if (next.every !== undefined) next.at += next.every;
      else this.tasks.delete(nextId);
      next.fn();
    }
    this.t = end;
  }
}

export class FakeWebSocket implements WebSocketLike {
  static instances: FakeWebSocket[] = [];
  static reset(): void {
    FakeWebSocket.instances = [];
  }
  static get last(): FakeWebSocket {
    return FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
  }
  readyState = 0;
  sent: Record<string, unknown>[] = [];
  closed = false;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor(readonly url: string) {
    FakeWebSocket.instances.push(this);
  }
  send(data: string): void {
    if (this.readyState !== 1) throw new Error('not open');
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }
  close(): void {
    this.closed = true;
    this.readyState = 3;
  }
  // --- test side
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  receive(msg: unknown): void {
    this.onmessage?.({ data: typeof msg === 'string' ? msg : JSON.stringify(msg) });
  }
  drop(): void {
    this.readyState = 3;
    this.onclose?.({});
  }
  sentOfType(type: string): Record<string, unknown>[] {
    return this.sent.filter((m) => m.type === type);
  }
}

export class FakeLink implements Link {
  bufferedAmount = 0;
  onMessage: ((frame: Uint8Array) => void) | null = null;
  onClose: (() => void) | null = null;
  sent: Uint8Array[] = [];
  isClosed = false;
  constructor(readonly remoteId: string) {}
  send(frame: Uint8Array): void {
    this.sent.push(frame);
  }
  close(): void {
    this.fireClose();
  }
  fireClose(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    const cb = this.onClose;
    this.onClose = null;
    cb?.();
  }
}

export class FakeConnector implements PeerConnector {
  readonly remoteId: string;
  received: SignalData[] = [];
  closed = false;
  link: FakeLink | null = null;
  constructor(readonly opts: ConnectorOptions) {
    this.remoteId = opts.remoteId;
    if (opts.initiator) opts.sendSignal({ sdp: { type: 'offer', sdp: `offer-to-${opts.remoteId}` } });
  }
  async handleSignal(data: SignalData): Promise<void> {
    this.received.push(data);
    if ('sdp' in data && data.sdp.type === 'offer' && !this.opts.initiator) {
      this.opts.sendSignal({ sdp: { type: 'answer', sdp: 'answer' } });
    }
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.link?.fireClose();
  }
  // --- test side
  open(): FakeLink {
    this.link = new FakeLink(this.remoteId);
    this.opts.onLink(this.link);
    return this.link;
  }
  fail(reason = 'timeout'): void {
    this.closed = true;
    this.opts.onFailed(reason);
  }
}

export class FakeTransport implements Transport {
  readonly name = 'fake';
  connectors: FakeConnector[] = [];
  connect(opts: ConnectorOptions): PeerConnector {
    const c = new FakeConnector(opts);
    this.connectors.push(c);
    return c;
  }
  to(remoteId: string): FakeConnector[] {
    return this.connectors.filter((c) => c.remoteId === remoteId);
  }
  live(): FakeConnector[] {
    return this.connectors.filter((c) => !c.closed);
  }
}

export class FakeEngine implements EngineApi {
  links = new Map<string, Link>();
  maxNeighbors = 8;
  banned = new Set<string>();
  ticks = 0;
  constructor(readonly peerId: string) {}
  addLink(link: Link): void {
    if (!this.wantsNeighbor(link.remoteId)) {
      link.onClose = null;
      link.close();
      return;
    }
    this.links.set(link.remoteId, link);
    link.onMessage = () => {};
    link.onClose = () => this.links.delete(link.remoteId);
  }
  wantsNeighbor(peerId: string): boolean {
    return peerId !== this.peerId && !this.banned.has(peerId) && !this.links.has(peerId) && this.links.size < this.maxNeighbors;
  }
  tick(): void {
    this.ticks++;
  }
  publishSegment(): void {}
  loadSegment(): never {
    throw new Error('not used');
  }
  setPlaybackPosition(): void {}
  stats(): EngineStats {
    return {
      bytesFromPeers: 1, bytesFromOriginPeer: 2, bytesFromHttp: 3, bytesUploaded: 4, peers: this.links.size,
      badPieces: 0, rejectedFrames: { a: 1, b: 2 }, segmentsStored: 5,
    };
  }
  /** What worstNeighbor() answers; dropNeighbor() records and closes. */
  worst: string | null = null;
  dropped: string[] = [];
  worstNeighbor(): string | null {
    return this.worst;
  }
  dropNeighbor(peerId: string): void {
    this.dropped.push(peerId);
    this.links.get(peerId)?.close();
  }
  neighborStats(): NeighborStat[] {
    return [...this.links.keys()].map((peerId) => ({ peerId, kind: 'browser' as const, bytesSent: 0, bytesReceived: 0 }));
  }
  on(_event?: string, _handler?: unknown): () => void {
    return () => {};
  }
  close(): void {
    for (const l of [...this.links.values()]) l.close();
  }
}

/** The engine as the host sees it, plus Engine.links() (FakeEngine's `links` is its Map); `view` may change between calls. */
export function withLinks(engine: FakeEngine, view: UploadLinksView | (() => UploadLinksView)): EngineApi {
  return new Proxy(engine, {
    get(target, key) {
      if (key === 'links') return typeof view === 'function' ? view : () => view;
      const v = Reflect.get(target, key) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as unknown as EngineApi;
}
