/**
 * Network model of the simulator.
 *
 * - Every node (viewer, origin root peer, HTTP server, TURN relay) has an uplink and a downlink
 *   capacity. A node's uplink is shared fluidly (generalised processor sharing, equal weights)
 *   among its backlogged flows: each outgoing data channel is one flow, each HTTP response is one.
 *   Frames of one flow are served in order; a frame leaves the uplink when its last modelled byte
 *   has been served.
 * - After the uplink, a frame travels the one-way latency of the pair (synthetic geography:
 *   access latency of both ends + a core latency between regions, or between ISPs of one region),
 *   then passes the receiver's downlink, modelled as a FIFO of the downlink rate that only delays
 *   frames when it is the bottleneck.
 * - Loss: data channels are reliable and ordered (SCTP), so a lost packet costs time, not data:
 *   a frame whose packets are hit (probability 1-(1-p)^packets) arrives one RTT + 20 ms later, and
 *   every later frame of the channel waits for it (head-of-line blocking). Loss does not reduce
 *   the fluid rate (a documented simplification).
 * - NATs: canConnectDirect() is the pairwise table; pairs that cannot connect directly go through
 *   a TURN relay (latency via the relay, bytes counted as TURN cost) or fail.
 * - byteScale K: the engine's pieces carry 1/K of the modelled bytes (memory and CPU); the network
 *   charges every PIECE payload byte K times, so transfer times are those of the modelled stream.
 */
import type { Link } from '../peer/core/types.js';
import type { EventQueue } from './queue.js';
import type { Rng } from './rng.js';
import { FlowHeap } from './flow-heap.js';

/** The NAT behaviours the network model has (labels as in tracker/nat.ts). */
export type NatType = 'open' | 'full-cone' | 'restricted-cone' | 'port-restricted' | 'symmetric';
export const NAT_TYPES: readonly NatType[] = ['open', 'full-cone', 'restricted-cone', 'port-restricted', 'symmetric'];

/**
 * Can two peers behind these NATs connect directly (ICE with STUN, no relay)? Symmetric NATs map
 * every destination to a new port, so the other side must accept packets from any port:
 * symmetric <-> symmetric and symmetric <-> port-restricted fail; every other pair works.
 */
export function canConnectDirect(a: NatType, b: NatType): boolean {
  if (a === 'symmetric' && (b === 'symmetric' || b === 'port-restricted')) return false;
  if (b === 'symmetric' && a === 'port-restricted') return false;
  return true;
}

export interface Geography {
  /** One-way core latency between regions (ms), symmetric matrix. */
  coreMs: number[][];
  /** One-way latency inside a region between two customers of the same ISP / different ISPs. */
  sameIspMs: number;
  crossIspMs: number;
}

export interface Place { region: number; isp: number; accessMs: number }

/** One-way latency between two places (ms). */
export function oneWayMs(g: Geography, a: Place, b: Place): number {
  const core = a.region === b.region
    ? (a.isp === b.isp ? g.sameIspMs : g.crossIspMs)
    : g.coreMs[a.region][b.region];
  return a.accessMs + b.accessMs + core;
}

/** Serialised size of a frame on the modelled network: PIECE payload x K, + SCTP/DTLS/UDP/IP overhead. */
export function wireBytes(frame: Uint8Array, byteScale: number): number {
  let body = frame.length;
  if (byteScale !== 1 && frame[0] === 0x04 && frame.length > 2) {
    const hdr = 1 + 1 + frame[1] + 4 + 2 + 4;
    body = hdr + (frame.length - hdr) * byteScale;
  }
  return body + PACKET_OVERHEAD * Math.ceil((body + 1) / PACKET_PAYLOAD);
}
export const PACKET_PAYLOAD = 1150;
/** Smallest uplink step (ms): far above the clock's resolution (ulp(1e6 ms) ~ 1e-10), far below any latency. */
const MIN_STEP_MS = 1e-6;
export const PACKET_OVERHEAD = 48;

export interface NodeSpec extends Place {
  /** Uplink / downlink in kbit/s (Infinity: unlimited). */
  upKbps: number;
  downKbps: number;
  nat: NatType;
}

export class SimNode implements Place {
  readonly upBpms: number;
  readonly downBpms: number;
  readonly region: number;
  readonly isp: number;
  readonly accessMs: number;
  readonly nat: NatType;
  alive = true;
  /** Partition side (0 = the side of the origin/tracker). */
  side = 0;
  /** GPS virtual time (bytes served per backlogged flow), last update, backlogged flows. */
  V = 0;
  lastT = 0;
  readonly active = new FlowHeap<Flow>();
  gen = 0;
  /** Downlink FIFO: time its last frame leaves. */
  dlFree = 0;
  /** Modelled bytes sent through the uplink. */
  bytesUp = 0;
  readonly links = new Set<SimLink>();
  constructor(readonly id: number, spec: NodeSpec) {
    this.upBpms = spec.upKbps / 8;
    this.downBpms = spec.downKbps / 8;
    this.region = spec.region;
    this.isp = spec.isp;
    this.accessMs = spec.accessMs;
    this.nat = spec.nat;
  }
}

interface Item { data: Uint8Array | null; w: number; real: number; close?: boolean; cb?: () => void }

/** One direction of a channel (or an HTTP response): frames queued at `from`'s uplink for `to`. */
export class Flow {
  q: Item[] = [];
  qHead = 0;
  headF = 0;
  queuedReal = 0;
  /** Not served (the path is dead: no acknowledgements come back). */
  stalled = false;
  /** Items in flight are dropped (the path was cut). */
  cut = false;
  lastArrive = 0;
  relayed = false;
  /** FlowHeap bookkeeping: activation order and position in the uplink's heap. */
  stamp = 0;
  heapIdx = -1;
  /** The sending Link's bufferedAmountLow: threshold (real bytes) and callback. */
  lowThreshold = 0;
  onLow: (() => void) | null = null;
  constructor(readonly from: SimNode, readonly to: SimNode, readonly oneWay: number, readonly onArrive: (item: Item) => void) {}
  get backlog(): number { return this.q.length - this.qHead; }
}

export interface NetworkOptions {
  byteScale: number;
  /** Packet loss probability per ~1200-byte packet. */
  loss: number;
  rng: Rng;
  geography: Geography;
}

export class Network {
  readonly byteScale: number;
  /** Modelled bytes relayed by TURN. */
  turnBytes = 0;
  framesDelivered = 0;
  /** Frames delivered by their type byte (the wire protocol's message types). */
  readonly framesByType: number[] = new Array<number>(256).fill(0);
  /** Scratch list of onUplink (the flows due in one event). */
  private readonly due: Flow[] = [];
  constructor(readonly q: EventQueue, readonly opts: NetworkOptions) {
    this.byteScale = opts.byteScale;
  }

  oneWay(a: Place, b: Place): number { return oneWayMs(this.opts.geography, a, b); }

  // ------------------------------------------------------------ uplink: fluid processor sharing

  private advance(n: SimNode): void {
    const now = this.q.now;
    if (n.active.size > 0 && now > n.lastT) n.V += ((now - n.lastT) * n.upBpms) / n.active.size;
    n.lastT = now;
  }

  private reschedule(n: SimNode): void {
    n.gen++;
    if (n.active.size === 0) return;
    const dt = ((n.active.minFinish() - n.V) * n.active.size) / n.upBpms;
    // never schedule at `now` again: below a nanosecond the clock's resolution would stall progress
    this.q.at(this.q.now + (dt > MIN_STEP_MS ? dt : MIN_STEP_MS), this.uplinkEvent, n, n.gen);
  }

  /** The uplink event, bound once: (node, generation) travel as the event's two arguments, no tuple per event. */
  private readonly uplinkEvent = (node: unknown, generation: unknown): void => this.onUplink(node as SimNode, generation as number);

  private onUplink(n: SimNode, gen: number): void {
    if (gen !== n.gen) return;
    this.advance(n);
    // what MIN_STEP_MS of service is worth, so a flow due within the clock's resolution completes
    const eps = 1e-9 * n.V + 1e-6 + (2 * MIN_STEP_MS * n.upBpms) / Math.max(1, n.active.size);
    // the flows whose head frame is done, in the order they joined the backlog
    const due = n.active.popDue(n.V + eps, this.due);
    for (const f of due) {
      while (f.backlog > 0 && f.headF <= n.V + eps) {
        this.complete(f);
        if (f.backlog > 0) f.headF += f.q[f.qHead].w;
      }
      if (f.backlog > 0 && !f.stalled) n.active.reinsert(f);
    }
    due.length = 0;
    this.reschedule(n);
  }

  /** Queues an item on a flow's uplink. */
  enqueue(f: Flow, item: Item): void {
    f.q.push(item);
    f.queuedReal += item.real;
    if (f.stalled || f.backlog !== 1) return;
    const n = f.from;
    if (!(n.upBpms < Infinity)) { this.complete(f); return; }
    this.advance(n);
    f.headF = n.V + item.w;
    n.active.push(f);
    this.reschedule(n);
  }

  /** The head item has left the uplink: it arrives after latency (+ loss, + receiver downlink). */
  private complete(f: Flow): void {
    const item = f.q[f.qHead];
    f.q[f.qHead++] = undefined as unknown as Item;
    // A drained queue lets go of its array: a channel's queue grows to hundreds of slots in a
    // burst and then idles; kept, those emptied slots were a quarter of the simulator's heap.
    if (f.qHead === f.q.length) { f.q.length = 0; f.qHead = 0; }
    else if (f.qHead > 256 && f.qHead * 2 > f.q.length) { f.q = f.q.slice(f.qHead); f.qHead = 0; }
    const wasAbove = f.queuedReal > f.lowThreshold;
    f.queuedReal -= item.real;
    // deferred to its own event: the engine refilling from inside the uplink loop would re-enter it
    if (wasAbove && f.queuedReal <= f.lowThreshold && f.onLow) this.q.at(this.q.now, Network.onLow as (a: unknown, b: unknown) => void, f, null);
    f.from.bytesUp += item.w;
    if (f.relayed) this.turnBytes += item.w;
    const now = this.q.now;
    let t = now + f.oneWay;
    const p = this.opts.loss;
    if (p > 0 && item.w > 0) {
      const packets = Math.ceil(item.w / 1200);
      if (this.opts.rng.next() < 1 - (1 - p) ** packets) t += 2 * f.oneWay + 20;
    }
    if (t < f.lastArrive) t = f.lastArrive;
    const to = f.to;
    if (to.downBpms < Infinity && item.w > 0) {
      const fin = to.dlFree + item.w / to.downBpms;
      if (fin > t) t = fin;
      to.dlFree = t;
    }
    f.lastArrive = t;
    this.q.at(t, Network.onArrive as (a: unknown, b: unknown) => void, f, item);
  }

  private static onLow(this: void, flow: unknown): void {
    const f = flow as Flow;
    if (!f.cut && !f.stalled) f.onLow?.();
  }

  private static onArrive(this: void, flow: unknown, item: unknown): void {
    const f = flow as Flow;
    if (f.cut) return;
    f.onArrive(item as Item);
  }

  /** Stops serving a flow (dead path); what is queued stays queued (bufferedAmount keeps growing). */
  stall(f: Flow): void {
    if (f.stalled) return;
    const n = f.from;
    this.advance(n);
    f.stalled = true;
    if (f.heapIdx >= 0) { n.active.remove(f); this.reschedule(n); }
  }

  /** Drops everything queued on a flow (the channel is gone). */
  drop(f: Flow): void {
    this.stall(f);
    f.q = [];
    f.qHead = 0;
    f.queuedReal = 0;
  }

  // ------------------------------------------------------------ data channels and transfers

  /**
   * Opens a data channel between two nodes (direct, or through `relay`). Returns the Link held by
   * `a` (remoteId bId) and the one held by `b`.
   */
  connect(a: SimNode, aId: string, b: SimNode, bId: string, relay?: SimNode): [SimLink, SimLink] {
    const ow = relay ? this.oneWay(a, relay) + this.oneWay(relay, b) : this.oneWay(a, b);
    const la = new SimLink(this, bId, a);
    const lb = new SimLink(this, aId, b);
    la.peer = lb;
    lb.peer = la;
    la.flow = new Flow(a, b, ow, (item) => lb.receive(item));
    lb.flow = new Flow(b, a, ow, (item) => la.receive(item));
    la.flow.relayed = lb.flow.relayed = !!relay;
    a.links.add(la);
    b.links.add(lb);
    return [la, lb];
  }

  /** Sends `w` modelled bytes from one node to another as a flow of its own; cb at arrival. */
  transfer(from: SimNode, to: SimNode, w: number, cb: () => void, extraOneWay = 0): Flow {
    const f = new Flow(from, to, this.oneWay(from, to) + extraOneWay, (item) => item.cb?.());
    this.enqueue(f, { data: null, w, real: 0, cb });
    return f;
  }

  /**
   * A node disappears abruptly (tab closed, crash): its own channels vanish without a word; each
   * remote side stops being acknowledged and notices after detectMs (ICE consent / SCTP timeout).
   */
  kill(n: SimNode, detectMs: number): void {
    n.alive = false;
    for (const l of [...n.links]) {
      l.silentClose();
      this.cutRemote(l.peer, detectMs);
    }
    n.active.clear();
    n.gen++;
  }

  /** The path between a link's two ends breaks: both ends notice after detectMs. */
  cutPath(l: SimLink, detectMs: number): void {
    this.cutRemote(l, detectMs);
    this.cutRemote(l.peer, detectMs);
  }

  private cutRemote(r: SimLink, detectMs: number): void {
    if (r.closed) return;
    r.flow.cut = true;
    r.peer.flow.cut = true;
    this.stall(r.flow);
    this.q.at(this.q.now + detectMs, (x) => (x as SimLink).remoteClosed(), r);
  }
}

/** The Link the engine gets: one end of a simulated data channel. */
export class SimLink implements Link {
  onClose: (() => void) | null = null;
  closed = false;
  peer!: SimLink;
  flow!: Flow;
  /** Host hook: called once when this end closes, whoever closed it. */
  hostOnClose: (() => void) | null = null;
  /** Observer of delivered frames (metrics). */
  tap: ((frame: Uint8Array) => void) | null = null;
  private handler: ((frame: Uint8Array) => void) | null = null;
  private early: Uint8Array[] = [];

  constructor(readonly net: Network, readonly remoteId: string, readonly node: SimNode) {}

  get bufferedAmount(): number { return this.flow.queuedReal; }
  get lowThreshold(): number { return this.flow.lowThreshold; }
  set lowThreshold(v: number) { this.flow.lowThreshold = v; }
  get onLow(): (() => void) | null { return this.flow.onLow; }
  set onLow(h: (() => void) | null) { this.flow.onLow = h; }

  get onMessage(): ((frame: Uint8Array) => void) | null { return this.handler; }
  set onMessage(h: ((frame: Uint8Array) => void) | null) {
    this.handler = h;
    while (h && this.handler === h && this.early.length > 0 && !this.closed) h(this.early.shift()!);
  }

  send(frame: Uint8Array): void {
    if (this.closed) return;
    this.net.enqueue(this.flow, { data: frame, w: wireBytes(frame, this.net.byteScale), real: frame.length });
  }

  /** Graceful close: what is queued (BYE) still goes out, then the remote sees the channel close. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.node.links.delete(this);
    this.net.enqueue(this.flow, { data: null, w: 0, real: 0, close: true });
    this.notifyHost();
  }

  receive(item: Item): void {
    if (this.closed) return;
    if (item.close) { this.remoteClosed(); return; }
    const data = item.data!;
    this.net.framesDelivered++;
    this.net.framesByType[data[0]]++;
    this.tap?.(data);
    if (this.handler) this.handler(data); else this.early.push(data);
  }

  /** The remote end closed (or the path died and we noticed). */
  remoteClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.node.links.delete(this);
    this.net.drop(this.flow);
    const cb = this.onClose;
    this.onClose = null;
    this.handler = null;
    this.notifyHost();
    cb?.();
  }

  /** Our own node vanished: no callbacks, nothing more is sent. */
  silentClose(): void {
    this.closed = true;
    this.node.links.delete(this);
    this.net.drop(this.flow);
    this.onClose = null;
    this.handler = null;
  }

  private notifyHost(): void {
    const h = this.hostOnClose;
    this.hostOnClose = null;
    h?.();
  }
}
