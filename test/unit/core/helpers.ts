/**
 * Test helpers for peer/core: an in-memory Link pair with an explicit pump, a fake clock, a
 * seeded Random, a signing origin key, segment builders and a fake HTTP source.
 */
import { ed25519 } from '@noble/curves/ed25519';
import { Engine } from '../../../peer/core/engine.js';
import type { EngineOptions } from '../../../peer/core/engine-api.js';
import { nobleCrypto } from '../../../peer/core/crypto.js';
import { describeSegment, signManifest, type Manifest } from '../../../peer/core/manifest.js';
import { segmentKey } from '../../../peer/core/store.js';
import type { Clock, HttpSource, Link, PeerKind, Random, SegmentRef } from '../../../peer/core/types.js';
import { decodeFrame, encodeFrame, type Frame, type RequestFrame } from '../../../peer/core/codec.js';
import { fullBitfield } from '../../../peer/core/bitfield.js';

export const CHANNEL = 'demo';

export class FakeClock implements Clock {
  constructor(public t = 1000) {}
  now(): number { return this.t; }
  advance(ms: number): void { this.t += ms; }
}

/** mulberry32 */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return {
    next() {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    },
  };
}

export class MemLink implements Link {
  bufferedAmount = 0;
  /** Set by the engine (Link.lowThreshold/onLow); a test calls onLow as a transport would. */
  lowThreshold = 0;
  onLow: (() => void) | null = null;
  onClose: (() => void) | null = null;
  private handler: ((frame: Uint8Array) => void) | null = null;
  /** Frames that arrived before onMessage was set (real transports queue them too). */
  private early: Uint8Array[] = [];
  get onMessage(): ((frame: Uint8Array) => void) | null { return this.handler; }
  set onMessage(h: ((frame: Uint8Array) => void) | null) {
    this.handler = h;
    while (h && this.handler === h && this.early.length > 0 && !this.closed) h(this.early.shift()!);
  }
  deliver(frame: Uint8Array): void {
    if (this.closed) return;
    if (this.handler) this.handler(frame); else this.early.push(frame);
  }
  closed = false;
  peer!: MemLink;
  /** Every frame sent on this side (copies). */
  readonly sent: Uint8Array[] = [];
  constructor(readonly net: MemNet, readonly remoteId: string, readonly localId: string) {}
  send(frame: Uint8Array): void {
    if (this.closed) return;
    const copy = frame.slice();
    this.sent.push(copy);
    const peer = this.peer;
    this.net.post(() => peer.deliver(copy));
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const peer = this.peer;
    this.net.post(() => {
      if (!peer.closed) { peer.closed = true; peer.onClose?.(); }
    });
    const self = this.onClose;
    if (self) this.net.post(() => self());
  }
}

export class MemNet {
  /** Synchronous delivery: send() runs the receiver's handler before returning (re-entrancy tests). */
  constructor(readonly sync = false) {}
  queue: Array<() => void> = [];
  post(job: () => void): void {
    if (this.sync) job(); else this.queue.push(job);
  }
  /** Two Links: `a` is held by aId (its remoteId is bId), `b` by bId. */
  pair(aId: string, bId: string): [MemLink, MemLink] {
    const a = new MemLink(this, bId, aId);
    const b = new MemLink(this, aId, bId);
    a.peer = b;
    b.peer = a;
    return [a, b];
  }
  connect(x: Engine, y: Engine): [MemLink, MemLink] {
    const [a, b] = this.pair(x.peerId, y.peerId);
    x.addLink(a);
    y.addLink(b);
    return [a, b];
  }
  /** Delivers queued frames (and those they cause) until the queue is empty. */
  deliverAll(limit = 1_000_000): number {
    let n = 0;
    while (this.queue.length > 0) {
      if (++n > limit) throw new Error('deliverAll: no quiescence');
      this.queue.shift()!();
    }
    return n;
  }
  /** Pumps frames and lets promise callbacks (HTTP fakes) run, until nothing moves. */
  async settle(rounds = 50): Promise<void> {
    for (let i = 0; i < rounds; i++) {
      const moved = this.deliverAll();
      await new Promise((r) => setImmediate(r));
      if (moved === 0 && this.queue.length === 0) return;
    }
  }
}

export interface OriginKey {
  publicKey: Uint8Array;
  sign(msg: Uint8Array): Uint8Array;
}

export function makeKey(): OriginKey {
  const sk = ed25519.utils.randomSecretKey();
  return { publicKey: ed25519.getPublicKey(sk), sign: (msg) => ed25519.sign(msg, sk) };
}

export function segmentBytes(size: number, seed: number): Uint8Array {
  const r = seededRandom(seed);
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = Math.floor(r.next() * 256);
  return out;
}

export interface TestSegment { ref: SegmentRef; manifest: Manifest; data: Uint8Array }

export function makeSegment(key: OriginKey, ref: SegmentRef, size: number, pieceSize = 1024, channel = CHANNEL): TestSegment {
  const data = segmentBytes(size, (ref.seq + 7) * 131 + ref.rendition.length);
  const unsigned = describeSegment(nobleCrypto, {
    channel, rendition: ref.rendition, seq: ref.seq, pieceSize, durationMs: ref.seq < 0 ? 0 : 2000, createdAt: 0,
  }, data);
  return { ref, manifest: signManifest(unsigned, key.sign), data };
}

export interface EngineEnv { clock: FakeClock; net: MemNet; key: OriginKey }

export function makeEngine(env: EngineEnv, opts: Partial<EngineOptions> & Pick<EngineOptions, 'peerId' | 'kind' | 'interest'>, seed = 1): Engine {
  return new Engine({
    channel: CHANNEL,
    publicKey: env.key.publicKey,
    clock: env.clock,
    random: seededRandom(seed),
    crypto: nobleCrypto,
    ...opts,
  });
}

/** HttpSource over a set of segments; records every request. */
export class FakeHttp implements HttpSource {
  readonly segments = new Map<string, TestSegment>();
  readonly ranges: Array<{ ref: SegmentRef; start: number; end: number }> = [];
  readonly manifests: SegmentRef[] = [];
  /** When true, responses wait for release(). */
  hold = false;
  private held: Array<() => void> = [];
  corruptPiece: { index: number; pieceSize: number } | null = null;

  add(...segs: TestSegment[]): this {
    for (const s of segs) this.segments.set(segmentKey(s.ref), s);
    return this;
  }
  protected respondBody<T>(f: () => T): Promise<T> {
    return this.respond(f);
  }
  private respond<T>(f: () => T): Promise<T> {
    if (!this.hold) return Promise.resolve().then(f);
    return new Promise<T>((res, rej) => this.held.push(() => { try { res(f()); } catch (e) { rej(e); } }));
  }
  release(): void {
    const h = this.held;
    this.held = [];
    for (const f of h) f();
  }
  fetchManifest(ref: SegmentRef): Promise<Uint8Array> {
    this.manifests.push(ref);
    return this.respond(() => {
      const s = this.segments.get(segmentKey(ref));
      if (!s) throw new Error('404');
      return s.manifest.encoded.slice();
    });
  }
  fetchRange(ref: SegmentRef, start: number, end: number): Promise<Uint8Array> {
    this.ranges.push({ ref, start, end });
    return this.respond(() => {
      const s = this.segments.get(segmentKey(ref));
      if (!s) throw new Error('404');
      const out = s.data.slice(start, end);
      const c = this.corruptPiece;
      if (c) {
        const off = c.index * c.pieceSize - start;
        if (off >= 0 && off < out.length) out[off] ^= 0xff;
      }
      return out;
    });
  }
}

/** FakeHttp that also serves whole segments (HttpSource.fetchSegment). */
export class FakeHttpWhole extends FakeHttp {
  readonly bodies: SegmentRef[] = [];
  failBody = false;
  corruptBodyAt: number | null = null;
  fetchSegment(ref: SegmentRef): Promise<Uint8Array> {
    this.bodies.push(ref);
    return this.respondBody(() => {
      const s = this.segments.get(segmentKey(ref));
      if (!s || this.failBody) throw new Error('503');
      const out = s.data.slice();
      if (this.corruptBodyAt !== null) out[this.corruptBodyAt] ^= 0xff;
      return out;
    });
  }
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---------------------------------------------------------------- a scripted remote peer


/** A hand-driven remote peer speaking raw frames to one Engine. */
export class RawPeer {
  readonly link: MemLink;
  readonly frames: Frame[] = [];
  closedByEngine = false;
  onRequest: ((r: RequestFrame) => void) | null = null;
  /**
   * A live peer answers the engine's KEEPALIVE with its own (it has no timer to send them), so
   * the engine does not close it as silent; a test that wants a vanished peer sets this to false.
   */
  answersKeepalive = true;

  constructor(readonly net: MemNet, readonly id: string, engine: Engine) {
    const [mine, theirs] = net.pair(id, engine.peerId);
    this.link = mine;
    mine.onMessage = (bytes) => {
      const r = decodeFrame(bytes);
      if (!r.ok) throw new Error(`engine sent a bad frame: ${r.reason}`);
      this.frames.push(r.frame);
      if (r.frame.type === 'request') this.onRequest?.(r.frame);
      if (r.frame.type === 'keepalive' && this.answersKeepalive && !this.closedByEngine) this.send({ type: 'keepalive' });
    };
    mine.onClose = () => { this.closedByEngine = true; };
    engine.addLink(theirs);
  }
  send(f: Frame): void { this.link.send(encodeFrame(f)); }
  sendRaw(bytes: Uint8Array): void { this.link.send(bytes); }
  hello(kind: PeerKind = 'seeder', over: Partial<Extract<Frame, { type: 'hello' }>> = {}): void {
    this.send({ type: 'hello', version: 1, peerId: this.id, kind, channel: CHANNEL, ...over });
  }
  /** MANIFEST + HAVE (all pieces unless a bitfield is given). */
  announce(seg: TestSegment, bitfield?: Uint8Array): void {
    const n = seg.manifest.pieceHashes.length;
    this.send({ type: 'manifest', manifest: seg.manifest.encoded });
    this.send({ type: 'have', rendition: seg.ref.rendition, seq: seg.ref.seq, pieceCount: n, bitfield: bitfield ?? fullBitfield(n) });
  }
  /** Answers piece `index` of `seg` (optionally corrupted). */
  sendPiece(seg: TestSegment, index: number, corrupt = false): void {
    const ps = seg.manifest.pieceSize;
    const data = seg.data.slice(index * ps, Math.min(seg.data.length, (index + 1) * ps));
    if (corrupt) data[0] ^= 0xff;
    this.send({ type: 'piece', rendition: seg.ref.rendition, seq: seg.ref.seq, index, data });
  }
  of<T extends Frame['type']>(type: T): Array<Extract<Frame, { type: T }>> {
    return this.frames.filter((f) => f.type === type) as Array<Extract<Frame, { type: T }>>;
  }
}
