import { beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Engine, ENGINE_LIMITS } from '../../../peer/core/engine.js';
import { MsgType } from '../../../peer/core/codec.js';
import { INIT_SEQ, type SegmentRef } from '../../../peer/core/types.js';
import type { EngineEvents } from '../../../peer/core/engine-api.js';
import {
  equalBytes, FakeClock, FakeHttp, FakeHttpWhole, makeEngine, makeKey, makeSegment, MemNet, RawPeer, type EngineEnv, type TestSegment,
} from './helpers.js';

const key = makeKey();
const R = '360p';

let env: EngineEnv;
beforeEach(() => { env = { clock: new FakeClock(), net: new MemNet(), key }; });

function origin(extra: Partial<ConstructorParameters<typeof Engine>[0]> = {}): Engine {
  return makeEngine(env, { peerId: 'origin-1', kind: 'origin', interest: 'none', ...extra }, 11);
}
function seeder(id = 'seeder-1', extra: Partial<ConstructorParameters<typeof Engine>[0]> = {}): Engine {
  return makeEngine(env, { peerId: id, kind: 'seeder', interest: 'all', ...extra }, id.length * 7);
}
function viewer(id = 'viewer-1', extra: Partial<ConstructorParameters<typeof Engine>[0]> = {}): Engine {
  return makeEngine(env, { peerId: id, kind: 'browser', interest: 'none', ...extra }, id.length * 13);
}
function seg(seq: number, size = 10 * 1024 - 100, rendition = R): TestSegment {
  return makeSegment(key, { rendition, seq }, size, 1024);
}
function publish(e: Engine, ...segs: TestSegment[]): void {
  for (const s of segs) e.publishSegment(s.manifest, s.data);
}
function record<K extends keyof EngineEvents>(e: Engine, ev: K): Array<EngineEvents[K]> {
  const out: Array<EngineEvents[K]> = [];
  e.on(ev, (x) => out.push(x));
  return out;
}
function sumRejected(e: Engine): number {
  return Object.values(e.stats().rejectedFrames).reduce((a, b) => a + b, 0);
}
const far = () => env.clock.now() + 60_000;
/** Lets a viewer's head start for other peers run out, so it may pull from the origin. */
async function pastOriginPatience(...engines: Engine[]) {
  env.clock.advance(ENGINE_LIMITS.pushWaitMs);
  for (const e of engines) e.tick();
  await env.net.settle();
}
/** Lets `ms` of clock time pass in 50 ms ticks of every engine, pumping the network. */
async function run(ms: number, ...engines: Engine[]) {
  for (let t = 0; t < ms; t += 50) {
    env.clock.advance(50);
    for (const e of engines) e.tick();
    await env.net.settle();
  }
}
/** Starts a load, pumps the network, returns the result. */
async function load(e: Engine, ref: SegmentRef) {
  const p = e.loadSegment(ref, { deadline: far() });
  await env.net.settle();
  await pastOriginPatience(e);
  return p;
}

describe('Engine: distribution', () => {
  it('origin -> seeder -> viewer: byte-identical segments, viewer served by the seeder', async () => {
    const o = origin();
    const s = seeder();
    const http = new FakeHttp();
    const v = viewer('viewer-1', { interest: 'following', http });
    const opened = record(v, 'neighbor-open');
    env.net.connect(o, s);
    env.net.connect(s, v);
    await env.net.settle();
    expect(o.stats().peers).toBe(1);
    expect(s.stats().peers).toBe(2);
    expect(opened).toEqual([{ peerId: 'seeder-1', kind: 'seeder' }]);

    v.setPlaybackPosition({ rendition: R, seq: 0 });
    const init = seg(INIT_SEQ, 700);
    const segs = [0, 1, 2].map((q) => seg(q));
    http.add(init, ...segs);
    const completed = record(v, 'segment-complete');
    publish(o, init, ...segs);
    await env.net.settle();

    const total = [init, ...segs].reduce((n, x) => n + x.data.length, 0);
    for (const x of [init, ...segs]) {
      expect(s.hasSegment(x.ref)).toBe(true);
      expect(v.hasSegment(x.ref)).toBe(true);
      const r = await v.loadSegment(x.ref, { deadline: far() });
      expect(equalBytes(r.data, x.data)).toBe(true);
      expect(r.bytesBySource.peer).toBe(x.data.length);
    }
    expect(completed.length).toBe(4);
    expect(completed.every((c) => c.source === 'peer')).toBe(true);
    expect(v.stats()).toMatchObject({ bytesFromPeers: total, bytesFromOriginPeer: 0, bytesFromHttp: 0, segmentsStored: 4, badPieces: 0 });
    expect(s.stats()).toMatchObject({ bytesFromOriginPeer: total });
    // the seeder pushes to the viewer (its child); racing requests sent before the link existed
    // may duplicate at most the segment in progress, once
    expect(s.debugStats().piecesPushed).toBeGreaterThan(0);
    expect(s.stats().bytesUploaded).toBeLessThanOrEqual(total + segs[2].data.length);
    expect(v.links().parents).toEqual({ [R]: 'seeder-1' });
    expect(s.links().parents).toEqual({ [R]: 'origin-1' });
    expect(o.stats().bytesUploaded).toBe(total);
    expect(http.ranges.length + http.manifests.length).toBe(0);
    expect(sumRejected(v) + sumRejected(s) + sumRejected(o)).toBe(0);
  });

  it('a swarm of 6 engines: everybody gets every segment, byte-identical', async () => {
    const o = origin();
    const s1 = seeder('seeder-1');
    const s2 = seeder('seeder-2');
    const vs = [1, 2, 3].map((i) => viewer(`viewer-${i}`, { interest: 'following' }));
    const { net } = env;
    net.connect(o, s1); net.connect(o, s2);
    for (const v of vs) { net.connect(v, s1); net.connect(v, s2); }
    net.connect(vs[0], vs[1]); net.connect(vs[1], vs[2]);
    await net.settle();
    for (const v of vs) v.setPlaybackPosition({ rendition: R, seq: 0 });
    const segs = [0, 1, 2, 3, 4].map((q) => seg(q, 8000 + q * 1111));
    for (const x of segs) {
      publish(o, x);
      await net.settle();
      env.clock.advance(2000);
      for (const e of [o, s1, s2, ...vs]) e.tick();
      await net.settle();
    }
    const total = segs.reduce((n, x) => n + x.data.length, 0);
    for (const v of vs) {
      for (const x of segs) {
        const r = await v.loadSegment(x.ref, { deadline: far() });
        expect(equalBytes(r.data, x.data)).toBe(true);
      }
      expect(v.stats().bytesFromPeers).toBe(total);
      expect(v.stats().bytesFromOriginPeer).toBe(0);
    }
    // the origin sent each segment about once per seeder, never to viewers directly
    expect(o.stats().bytesUploaded).toBeLessThanOrEqual(2 * total);
    expect(s1.stats().bytesUploaded + s2.stats().bytesUploaded).toBeGreaterThan(0);
  });

  it('prefers a seeder over the origin when both have the segment', async () => {
    const o = origin({ maxChildrenPerRendition: 1 }); // its one slot goes to the seeder
    const s = seeder();
    const v = viewer();
    env.net.connect(o, s);
    const x = seg(5);
    publish(o, x);
    await env.net.settle();
    expect(s.hasSegment(x.ref)).toBe(true);
    env.net.connect(v, o);
    env.net.connect(v, s);
    await env.net.settle();
    const r = await load(v, x.ref);
    expect(equalBytes(r.data, x.data)).toBe(true);
    expect(v.stats().bytesFromOriginPeer).toBe(0);
    expect(v.stats().bytesFromPeers).toBe(x.data.length);
  });

  it("interest 'following' fetches only the followed rendition from the position on (plus init)", async () => {
    const o = origin();
    const s = seeder('seeder-1', { windowSegments: 3 });
    const v = viewer('viewer-1', { interest: 'following' });
    env.net.connect(o, s);
    env.net.connect(s, v);
    await env.net.settle();
    v.setPlaybackPosition({ rendition: R, seq: 2 });
    const all: TestSegment[] = [];
    for (const rn of [R, '720p']) for (const q of [INIT_SEQ, 0, 1, 2, 3]) all.push(seg(q, 3000, rn));
    publish(o, ...all);
    await env.net.settle();
    await run(3000, o, s, v);
    const held = (e: Engine) => all.filter((x) => e.hasSegment(x.ref)).map((x) => `${x.ref.rendition}/${x.ref.seq}`);
    // the followed rendition from the position on (a parent may push the live edge before it too), never the other
    expect(held(v)).toEqual(expect.arrayContaining(['360p/-1', '360p/2', '360p/3']));
    expect(held(v).filter((x) => !x.startsWith('360p/'))).toEqual([]);
    // seeder: both renditions, newest windowSegments (3) + init, backlog from newest-3
    expect(held(s)).toEqual(['360p/-1', '360p/1', '360p/2', '360p/3', '720p/-1', '720p/1', '720p/2', '720p/3']);
  });
});

describe('Engine: sparing the origin', () => {
  it('the origin pushes to one child per rendition: it uploads one copy, not one per viewer', async () => {
    const o = origin({ maxChildrenPerRendition: 1, maxChildren: 2 });
    const vs = ['viewer-a', 'viewer-bb', 'viewer-ccc'].map((id) => viewer(id, { interest: 'following' }));
    for (const v of vs) env.net.connect(o, v);
    env.net.connect(vs[0], vs[1]);
    env.net.connect(vs[1], vs[2]);
    env.net.connect(vs[0], vs[2]);
    await env.net.settle();
    for (const v of vs) v.setPlaybackPosition({ rendition: R, seq: 1 });
    const x = seg(1);
    publish(o, seg(0));
    await run(3000, o, ...vs); // slots settle: one viewer is the origin's child, the others hang below it
    expect(o.links().children.length).toBe(1);
    const up0 = o.stats().bytesUploaded;
    const peers0 = vs.reduce((n, v) => n + v.stats().bytesFromPeers, 0);
    publish(o, x);
    await env.net.settle();
    for (const v of vs) expect(v.hasSegment(x.ref)).toBe(true); // pushed down the tree at once
    expect(o.stats().bytesUploaded - up0).toBe(x.data.length);
    expect(vs.reduce((n, v) => n + v.stats().bytesFromPeers, 0) - peers0).toBe(2 * x.data.length);
    for (const v of vs) expect(Object.keys(v.links().parents)).toEqual([R]);
  });

  it("the origin pushes a new segment to its child at once (cut-through, no request)", async () => {
    const o = origin();
    const v = viewer('viewer-1', { interest: 'following' });
    env.net.connect(o, v);
    await env.net.settle();
    const x = seg(1);
    publish(o, x);
    await env.net.settle();
    const p = v.loadSegment(x.ref, { deadline: env.clock.now() + 1000 });
    await env.net.settle();
    const r = await p;
    expect(r.bytesBySource['origin-peer']).toBe(x.data.length);
    expect(env.clock.now()).toBe(1000); // no time passed: pushed, not pulled after a wait
    // the next segment arrives without any request
    const y = seg(2);
    const sent = v.debugStats().requestsSent;
    publish(o, y);
    await env.net.settle();
    expect(v.hasSegment(y.ref)).toBe(true);
    expect(v.debugStats().requestsSent).toBe(sent);
    expect(v.debugStats().pushedReceived).toBeGreaterThanOrEqual(y.manifest.pieceHashes.length);
  });
});

describe('Engine: HTTP fallback', () => {
  it('fetches only the missing pieces at deadline - margin, coalescing contiguous ones', async () => {
    const x = seg(3); // 10 pieces, the last one short
    const http = new FakeHttp().add(x);
    const v = viewer('viewer-1', { http });
    const f = new RawPeer(env.net, 'flaky-1', v);
    f.hello();
    f.announce(x);
    f.onRequest = (r) => { for (let i = r.index; i < r.index + r.count; i++) if ([0, 1, 5, 6].includes(i)) f.sendPiece(x, i); };
    await env.net.settle();
    const t0 = env.clock.now();
    const p = v.loadSegment(x.ref, { deadline: t0 + 3000 });
    await env.net.settle();
    expect(http.ranges).toEqual([]);
    env.clock.advance(1000);
    v.tick();
    await env.net.settle();
    expect(http.ranges).toEqual([]);
    env.clock.advance(1500); // = deadline - 500
    v.tick();
    await env.net.settle();
    const r = await p;
    expect(http.manifests).toEqual([]);
    expect(http.ranges.map((q) => [q.start, q.end])).toEqual([[2 * 1024, 5 * 1024], [7 * 1024, x.data.length]]);
    expect(equalBytes(r.data, x.data)).toBe(true);
    expect(r.bytesBySource).toEqual({ peer: 4 * 1024, 'origin-peer': 0, http: x.data.length - 4 * 1024, local: 0 });
    expect(r.firstByteAt).toBe(t0);
    expect(r.completedAt).toBe(t0 + 2500);
    // the pieces still requested from the flaky peer are cancelled
    const cancelled = f.of('cancel').map((c) => c.index).sort((a, b) => a - b);
    expect(cancelled).toEqual([2, 3, 4, 7, 8, 9]);
    expect(v.stats().bytesFromHttp).toBe(x.data.length - 4 * 1024);
  });

  it('cancels the requests for pieces when their HTTP fetch starts, not when it ends', async () => {
    const x = seg(3);
    const http = new FakeHttp().add(x);
    http.hold = true; // the range fetch stays in flight until release()
    const v = viewer('viewer-1', { http });
    const f = new RawPeer(env.net, 'slow-1', v); // announces, answers pieces 0 and 1 only
    f.hello();
    f.announce(x);
    f.onRequest = (r) => { for (let i = r.index; i < r.index + r.count; i++) if (i < 2) f.sendPiece(x, i); };
    await env.net.settle();
    const t0 = env.clock.now();
    const p = v.loadSegment(x.ref, { deadline: t0 + 3000 });
    await env.net.settle();
    const requested = new Set(f.of('request').flatMap((r) => Array.from({ length: r.count }, (_, k) => r.index + k)));
    env.clock.advance(2500); // = deadline - 500: the missing pieces go to HTTP
    v.tick();
    await env.net.settle();
    expect(http.ranges.map((q) => [q.start, q.end])).toEqual([[2 * 1024, x.data.length]]);
    // counted by cause: late, and no parent feeds this rendition
    const pieces = x.manifest.pieceHashes.length - 2;
    expect(v.debugStats()).toMatchObject({ httpNoParent: pieces, httpParentSlow: 0, httpParentElsewhere: 0, httpAlone: 0, httpUnknown: 0 });
    // the neighbor is told while the range is still on its way: it need not upload them
    const cancelled = f.of('cancel').map((c) => c.index).sort((a, b) => a - b);
    expect(cancelled).toEqual([...requested].filter((i) => i >= 2).sort((a, b) => a - b));
    expect(cancelled.length).toBeGreaterThan(0);
    // an answer already on the wire is expected, not a violation, and not stored twice
    f.sendPiece(x, cancelled[0]);
    await env.net.settle();
    http.release();
    await env.net.settle();
    const r = await p;
    expect(equalBytes(r.data, x.data)).toBe(true);
    expect(sumRejected(v)).toBe(0);
    expect(f.of('cancel').length).toBe(cancelled.length); // nothing cancelled twice
  });

  it('asks a new neighbor for a few pieces only (its request window), and leaves what is on its way until one HTTP fetch before the deadline', async () => {
    const x = seg(3);
    const all = x.manifest.pieceHashes.map((_, i) => i);
    const http = new FakeHttp().add(x);
    http.hold = true;
    const v = viewer('viewer-1', { http });
    const f = new RawPeer(env.net, 'slow-1', v); // announces, answers nothing yet
    f.hello();
    f.announce(x);
    await env.net.settle();
    const t0 = env.clock.now();
    const p = v.loadSegment(x.ref, { deadline: t0 + 1500 });
    await env.net.settle();
    const requested = f.of('request').flatMap((r) => Array.from({ length: r.count }, (_, k) => r.index + k));
    expect(requested).toHaveLength(ENGINE_LIMITS.initialRequestWindow); // unmeasured: not the whole segment
    const ranged = () => http.ranges.flatMap((q) => all.filter((i) => i * 1024 >= q.start && i * 1024 < q.end)).sort((a, b) => a - b);
    const at = async (ms: number) => { env.clock.t = t0 + ms; v.tick(); await env.net.settle(); };
    await at(1000); // deadline - margin (500): what nobody is sending goes to HTTP, the requested pieces wait
    expect(ranged()).toEqual(all.filter((i) => !requested.includes(i)));
    await at(1100);
    http.release(); // that fetch took 100 ms: the next one is expected to take mean + 2 deviations = 200 ms
    await env.net.settle();
    f.sendPiece(x, requested[0]); // one requested piece arrives in time
    await at(1250);
    expect(ranged()).toEqual(all.filter((i) => !requested.includes(i))); // the others are still left to the neighbor
    await at(1300); // deadline - 200 ms: one fetch before the deadline, the rest goes to HTTP
    expect(ranged()).toEqual(all.filter((i) => i !== requested[0]));
    http.release();
    const r = await p;
    expect(equalBytes(r.data, x.data)).toBe(true);
    expect(r.bytesBySource.peer).toBe(1024);
    expect(sumRejected(v)).toBe(0);
  });

  it('a load already due (startup, seek) fetches the whole segment alongside its manifest, then verifies it', async () => {
    const x = seg(8);
    const http = new FakeHttpWhole().add(x);
    http.hold = true;
    const v = viewer('viewer-1', { http });
    const p = v.loadSegment(x.ref, { deadline: env.clock.now() });
    await env.net.settle();
    // both requests are out before either answered: one round trip
    expect(http.manifests).toEqual([x.ref]);
    expect(http.bodies).toEqual([x.ref]);
    expect(http.ranges).toEqual([]);
    http.release();
    const r = await p;
    expect(equalBytes(r.data, x.data)).toBe(true);
    expect(r.bytesBySource.http).toBe(x.data.length);
    expect(http.ranges).toEqual([]);
    // not due, alone past the join grace: the manifest first, then the ranges still missing
    env.clock.advance(ENGINE_LIMITS.joinGraceMs);
    const y = seg(9);
    http.add(y);
    http.hold = false;
    const r2 = await v.loadSegment(y.ref, { deadline: far() });
    expect(equalBytes(r2.data, y.data)).toBe(true);
    expect(http.bodies).toEqual([x.ref]);
    expect(http.ranges.map((q) => [q.start, q.end])).toEqual([[0, y.data.length]]);
    // by cause: the first segment whole (unknown when due), the second fetched alone
    expect(v.debugStats()).toMatchObject({
      httpUnknown: x.manifest.pieceHashes.length, httpAlone: y.manifest.pieceHashes.length, httpNoParent: 0, httpParentSlow: 0, httpParentElsewhere: 0,
    });
  });

  it('a whole segment that fails falls back to ranges; one that is corrupt fails the load and counts', async () => {
    const x = seg(10);
    const http = new FakeHttpWhole().add(x);
    http.failBody = true;
    const v = viewer('viewer-1', { http });
    const r = await v.loadSegment(x.ref, { deadline: env.clock.now() });
    expect(equalBytes(r.data, x.data)).toBe(true);
    expect(http.bodies).toHaveLength(1);
    expect(http.ranges.map((q) => [q.start, q.end])).toEqual([[0, x.data.length]]);
    const y = seg(11);
    const bad = new FakeHttpWhole().add(y);
    bad.corruptBodyAt = 1500; // inside piece 1
    const w = viewer('viewer-2', { http: bad });
    await expect(w.loadSegment(y.ref, { deadline: env.clock.now() })).rejects.toThrow(/piece 1 from HTTP failed verification/);
    expect(w.stats().badPieces).toBe(1);
    expect(w.hasSegment(y.ref)).toBe(false);
  });

  it('goes to HTTP at once when no neighbor has the segment, then shares it', async () => {
    const x = seg(7);
    const http = new FakeHttp().add(x);
    const v = viewer('viewer-1', { http });
    env.clock.advance(ENGINE_LIMITS.joinGraceMs); // alone past the join grace
    const r = await v.loadSegment(x.ref, { deadline: far() });
    expect(equalBytes(r.data, x.data)).toBe(true);
    expect(http.manifests).toEqual([x.ref]);
    expect(http.ranges.map((q) => [q.start, q.end])).toEqual([[0, x.data.length]]);
    expect(r.bytesBySource.http).toBe(x.data.length);
    const http2 = new FakeHttp().add(x);
    const w = viewer('viewer-2', { http: http2 });
    env.net.connect(v, w);
    await env.net.settle();
    const r2 = await load(w, x.ref);
    expect(equalBytes(r2.data, x.data)).toBe(true);
    expect(w.stats().bytesFromPeers).toBe(x.data.length);
    expect(http2.ranges.length + http2.manifests.length).toBe(0);
    expect(v.stats().bytesUploaded).toBe(x.data.length);
  });

  it('a joiner without neighbors yet waits for them (join grace), then for the deadline; alone after the grace', async () => {
    const x = seg(12);
    // its first neighbor opens after the load was asked for: every piece comes from it
    const http = new FakeHttp().add(x);
    const v = viewer('viewer-1', { http });
    const t0 = env.clock.now();
    const p = v.loadSegment(x.ref, { deadline: t0 + 3000 });
    await env.net.settle();
    expect(http.ranges).toEqual([]);
    env.clock.advance(300);
    v.tick();
    const s = seeder();
    publish(s, x);
    env.net.connect(s, v);
    await env.net.settle();
    const r = await p;
    expect(equalBytes(r.data, x.data)).toBe(true);
    expect(r.bytesBySource.peer).toBe(x.data.length);
    expect(http.ranges).toEqual([]);
    // none opens: nothing goes to HTTP before deadline - margin, then all of it
    const y = seg(13);
    const http2 = new FakeHttp().add(y);
    const w = viewer('viewer-2', { http: http2 });
    const t1 = env.clock.now();
    const q = w.loadSegment(y.ref, { deadline: t1 + 2000 });
    await env.net.settle();
    env.clock.advance(1400);
    w.tick();
    await env.net.settle();
    expect(http2.ranges).toEqual([]);
    env.clock.advance(100); // deadline - 500
    w.tick();
    await env.net.settle();
    expect(http2.ranges.map((q) => [q.start, q.end])).toEqual([[0, y.data.length]]);
    expect(equalBytes((await q).data, y.data)).toBe(true);
    // past the grace without ever having a neighbor: alone, so what no neighbor can serve goes at once
    env.clock.advance(ENGINE_LIMITS.joinGraceMs);
    const z = seg(14);
    http2.add(z);
    const z0 = http2.ranges.length;
    const rz = w.loadSegment(z.ref, { deadline: env.clock.now() + 5000 });
    await env.net.settle();
    expect(http2.ranges.slice(z0).map((q) => [q.start, q.end])).toEqual([[0, z.data.length]]);
    expect(equalBytes((await rz).data, z.data)).toBe(true);
  });

  it('near the deadline goes to HTTP at once but keeps accepting peer pieces', async () => {
    const x = seg(4);
    const http = new FakeHttp().add(x);
    http.hold = true;
    const v = viewer('viewer-1', { http });
    const f = new RawPeer(env.net, 'slow-1', v);
    f.hello();
    f.announce(x);
    await env.net.settle();
    const p1 = v.loadSegment(x.ref, { deadline: far() });
    await env.net.settle();
    expect(f.of('request').length).toBeGreaterThan(0);
    const p2 = v.loadSegment(x.ref, { deadline: env.clock.now() + 100 }); // already inside the margin
    expect(p2).toBe(p1);
    expect(http.ranges.map((q) => [q.start, q.end])).toEqual([[0, x.data.length]]);
    // the pieces requested from f arrive while HTTP is in flight
    const requested = f.of('request').flatMap((q) => Array.from({ length: q.count }, (_, k) => q.index + k));
    for (const i of requested) f.sendPiece(x, i);
    await env.net.settle();
    http.release();
    await env.net.settle();
    const r = await p1;
    expect(equalBytes(r.data, x.data)).toBe(true);
    expect(r.bytesBySource.peer).toBe(requested.length * 1024);
    expect(r.bytesBySource.http).toBe(x.data.length - requested.length * 1024);
    expect(r.bytesBySource.peer + r.bytesBySource.http).toBe(x.data.length);
  });

  it('rejects the load when an HTTP piece fails verification', async () => {
    const x = seg(8);
    const http = new FakeHttp().add(x);
    http.corruptPiece = { index: 2, pieceSize: 1024 };
    const v = viewer('viewer-1', { http });
    env.clock.advance(ENGINE_LIMITS.joinGraceMs); // alone past the join grace
    await expect(v.loadSegment(x.ref, { deadline: far() })).rejects.toThrow(/verification/);
    expect(v.stats().badPieces).toBe(1);
    expect(v.hasSegment(x.ref)).toBe(false);
  });

  it('rejects a load without HTTP once the deadline passes', async () => {
    const v = viewer();
    const p = v.loadSegment({ rendition: R, seq: 1 }, { deadline: env.clock.now() + 1000 });
    env.clock.advance(1000);
    v.tick();
    await expect(p).rejects.toThrow(/deadline/);
  });
});

describe('Engine: misbehaving neighbors', () => {
  it('detects a poisoning neighbor, bans it after 3 bad pieces, completes from others', async () => {
    const o = origin();
    const s = seeder();
    const x = seg(2, 16 * 1024);
    env.net.connect(o, s);
    publish(o, x);
    await env.net.settle();
    const v = viewer('viewer-1', { maxInflightPerNeighbor: 4, push: false }); // mesh pull only
    const bad = record(v, 'bad-piece');
    const banned = record(v, 'neighbor-banned');
    const p = new RawPeer(env.net, 'poison-1', v);
    p.hello();
    p.announce(x);
    p.onRequest = (r) => { for (let i = r.index; i < r.index + r.count; i++) p.sendPiece(x, i, true); };
    env.net.connect(v, s);
    await env.net.settle();
    const r = await load(v, x.ref);
    expect(equalBytes(r.data, x.data)).toBe(true);
    expect(bad.length).toBe(3);
    expect(bad.every((b) => b.peerId === 'poison-1')).toBe(true);
    expect(banned).toEqual([{ peerId: 'poison-1', reason: 'bad pieces' }]);
    expect(v.stats().badPieces).toBe(3);
    expect(v.wantsNeighbor('poison-1')).toBe(false);
    expect(p.closedByEngine).toBe(true);
    expect(p.of('bye').length).toBe(1);
    expect(v.stats().peers).toBe(1);
    expect(r.bytesBySource.peer).toBe(x.data.length);
  });

  it('a poisoner as the only neighbor: banned, then the missing pieces come over HTTP', async () => {
    const x = seg(2);
    const http = new FakeHttp().add(x);
    const v = viewer('viewer-1', { http });
    const p = new RawPeer(env.net, 'poison-1', v);
    p.hello();
    p.announce(x);
    p.onRequest = (r) => { for (let i = r.index; i < r.index + r.count; i++) p.sendPiece(x, i, true); };
    await env.net.settle();
    const load = v.loadSegment(x.ref, { deadline: far() });
    await env.net.settle();
    const r = await load;
    expect(equalBytes(r.data, x.data)).toBe(true);
    expect(r.bytesBySource.http).toBe(x.data.length);
    expect(v.stats().badPieces).toBe(3);
    expect(v.wantsNeighbor('poison-1')).toBe(false);
  });

  it('rejects anything before HELLO and closes the link', async () => {
    const v = viewer();
    const closed = record(v, 'neighbor-closed');
    const a = new RawPeer(env.net, 'early-1', v);
    a.send({ type: 'request', rendition: R, seq: 1, index: 0, count: 1 });
    await env.net.settle();
    expect(v.stats().rejectedFrames).toEqual({ 'before-hello': 1 });
    expect(a.closedByEngine).toBe(true);
    expect(a.of('hello').length).toBe(1); // our HELLO came first
    expect(a.of('bye')[0]?.reason).toBe('before-hello');
    expect(closed[0]).toMatchObject({ peerId: 'early-1' });
    expect(v.stats().peers).toBe(0);

    const cases: Array<[string, (p: RawPeer) => void]> = [
      ['peer-id-mismatch', (p) => p.hello('seeder', { peerId: 'someone-else' })],
      ['bad-version', (p) => p.hello('seeder', { version: 2 })],
      ['wrong-channel', (p) => p.hello('seeder', { channel: 'other' })],
      ['truncated', (p) => p.sendRaw(new Uint8Array([MsgType.HELLO, 1]))],
    ];
    for (const [reason, act] of cases) {
      const p = new RawPeer(env.net, `peer-${reason}`, v);
      act(p);
      await env.net.settle();
      expect(v.stats().rejectedFrames[reason]).toBe(1);
      expect(p.closedByEngine).toBe(true);
    }
    expect(v.stats().peers).toBe(0);
  });

  it('counts malformed frames without throwing and bans a neighbor after 50', async () => {
    const v = viewer();
    const m = new RawPeer(env.net, 'garbage-1', v);
    m.hello();
    await env.net.settle();
    for (let i = 0; i < 100; i++) m.sendRaw(new Uint8Array([0x7f, i])); // unknown types: ignored, never banned
    await env.net.settle();
    expect(v.stats().rejectedFrames['unknown-type']).toBe(100);
    expect(v.stats().peers).toBe(1);
    const banned = record(v, 'neighbor-banned');
    const frames = [
      new Uint8Array([MsgType.REQUEST, 3]),                // truncated
      new Uint8Array([MsgType.BYE, 0, 0]),                  // trailing bytes
      new Uint8Array(70_000).fill(MsgType.PIECE),           // oversize
      new Uint8Array([MsgType.HAVE, 1, 0x41, 0, 0, 0, 1, 0, 0]), // invalid name
    ];
    for (let i = 0; i < 49; i++) m.sendRaw(frames[i % frames.length]);
    await env.net.settle();
    expect(v.stats().peers).toBe(1);
    m.send({ type: 'piece', rendition: R, seq: 1, index: 0, data: new Uint8Array(4) }); // unknown manifest: the 50th
    await env.net.settle();
    expect(banned).toEqual([{ peerId: 'garbage-1', reason: 'too many rejected frames' }]);
    expect(v.stats().peers).toBe(0);
    expect(v.stats().rejectedFrames).toMatchObject({ truncated: 13, 'trailing-bytes': 12, oversize: 12, 'invalid-name': 12, 'unknown-manifest': 1 });
  });

  it('never throws on random frames, before or after HELLO', async () => {
    const o = origin();
    const x = seg(1);
    publish(o, x);
    let n = 0;
    await fc.assert(fc.asyncProperty(fc.boolean(), fc.array(fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.tuple(fc.integer({ min: 1, max: 7 }), fc.uint8Array({ maxLength: 40 })).map(([t, b]) => Uint8Array.of(t, ...b)),
    ), { maxLength: 30 }), async (helloFirst, frames) => {
      const p = new RawPeer(env.net, `fuzz-${n++}`, o);
      if (helloFirst) p.hello();
      for (const f of frames) p.sendRaw(f);
      await env.net.settle();
      p.link.close();
      await env.net.settle();
    }), { numRuns: 60 });
    expect(o.stats().peers).toBe(0);
    // still serves an honest neighbor
    const v = viewer();
    env.net.connect(o, v);
    await env.net.settle();
    const r = await load(v, x.ref);
    expect(equalBytes(r.data, x.data)).toBe(true);
  });

  it('rejects unrequested pieces and bad manifests', async () => {
    const v = viewer('viewer-1', { interest: 'all' });
    const p = new RawPeer(env.net, 'pushy-1', v);
    p.hello();
    const x = seg(1);
    p.announce(x);
    await env.net.settle();
    // a manifest without a HAVE: nothing is requested, so any PIECE of it is unrequested
    const y = seg(2);
    p.send({ type: 'manifest', manifest: y.manifest.encoded });
    await env.net.settle();
    const reqs = p.of('request').filter((r) => r.seq === 2);
    expect(reqs.length).toBe(0); // no HAVE for y yet
    p.sendPiece(y, 0);
    const forged = makeSegment(makeKey(), { rendition: R, seq: 9 }, 2000);
    p.send({ type: 'manifest', manifest: forged.manifest.encoded });
    await env.net.settle();
    expect(v.stats().rejectedFrames).toMatchObject({ 'unrequested-piece': 1, 'bad-manifest': 1 });
    expect(v.stats().bytesFromPeers).toBe(0);
  });
});

describe('Engine: requests, timeouts, churn, backpressure', () => {
  it('re-requests timed-out pieces elsewhere and cancels the duplicates', async () => {
    const o = origin();
    const s = seeder();
    const x = seg(6, 8 * 1024);
    env.net.connect(o, s);
    publish(o, x);
    await env.net.settle();
    const v = viewer('viewer-1', { maxInflightPerNeighbor: 4, push: false }); // mesh pull only
    const f = new RawPeer(env.net, 'silent-1', v); // announces, never answers
    f.hello();
    f.announce(x);
    env.net.connect(v, s);
    await env.net.settle();
    const p = v.loadSegment(x.ref, { deadline: far() });
    await env.net.settle();
    const asked = f.of('request').reduce((n, r) => n + r.count, 0);
    expect(asked).toBeGreaterThan(0);
    expect(v.hasSegment(x.ref)).toBe(false);
    env.clock.advance(2000);
    v.tick();
    await env.net.settle();
    const r = await p;
    expect(equalBytes(r.data, x.data)).toBe(true);
    expect(v.debugStats().requestTimeouts).toBe(asked);
    expect(f.of('cancel').length).toBe(asked);
    // a late answer after CANCEL is not a violation
    f.sendPiece(x, f.of('cancel')[0].index);
    await env.net.settle();
    expect(sumRejected(v)).toBe(0);
    expect(v.debugStats().requestsInFlight).toBe(0);
  });

  it('re-issues the requests of a closed neighbor at once', async () => {
    const o = origin();
    const s = seeder();
    const x = seg(6, 8 * 1024);
    env.net.connect(o, s);
    publish(o, x);
    await env.net.settle();
    const v = viewer('viewer-1', { maxInflightPerNeighbor: 4, push: false }); // mesh pull only
    const f = new RawPeer(env.net, 'leaving-1', v);
    f.hello();
    f.announce(x);
    env.net.connect(v, s);
    await env.net.settle();
    const closed = record(v, 'neighbor-closed');
    const p = v.loadSegment(x.ref, { deadline: far() });
    await env.net.settle();
    expect(v.hasSegment(x.ref)).toBe(false);
    f.link.close();
    await env.net.settle();
    const r = await p;
    expect(equalBytes(r.data, x.data)).toBe(true);
    expect(closed).toEqual([{ peerId: 'leaving-1', reason: 'link closed' }]);
    expect(env.clock.now()).toBe(1000); // no timeout needed
  });

  it('stops uploading above maxBufferedBytes and resumes in tick()', async () => {
    const o = origin();
    const x = seg(1);
    publish(o, x);
    const v = viewer();
    const [ol] = env.net.connect(o, v);
    await env.net.settle();
    ol.bufferedAmount = 2 * 1024 * 1024;
    const p = v.loadSegment(x.ref, { deadline: far() });
    await env.net.settle();
    expect(v.stats().bytesFromOriginPeer).toBe(0);
    expect(o.stats().bytesUploaded).toBe(0);
    ol.bufferedAmount = 0;
    o.tick();
    await pastOriginPatience(v);
    const r = await p;
    expect(equalBytes(r.data, x.data)).toBe(true);
    expect(r.bytesBySource['origin-peer']).toBe(x.data.length);
    expect(o.stats().bytesUploaded).toBe(x.data.length);
  });

  it('bounds the request queue and ignores requests for pieces it does not hold', async () => {
    const o = seeder(); // (the origin would not serve a non-child at all)
    const x = seg(1);
    publish(o, x);
    const p = new RawPeer(env.net, 'greedy-1', o);
    p.link.peer.bufferedAmount = 10 * 1024 * 1024; // the server's side of the link is congested
    p.hello();
    for (let i = 0; i < 30; i++) p.send({ type: 'request', rendition: R, seq: 1, index: 0, count: 10 });
    p.send({ type: 'request', rendition: R, seq: 99, index: 0, count: 1 });
    await env.net.settle();
    expect(o.stats().rejectedFrames['request-queue-full']).toBeGreaterThan(0);
    expect(o.stats().rejectedFrames['request-unheld']).toBe(1);
    expect(o.stats().peers).toBe(1); // not a ban offence
    p.send({ type: 'cancel', rendition: R, seq: 1, index: 0, count: 10 });
    await env.net.settle();
    p.link.peer.bufferedAmount = 0;
    o.tick();
    await env.net.settle();
    expect(p.of('piece').length).toBe(0); // all cancelled
  });

  it('shares one promise between concurrent loads and rejects them on close', async () => {
    const v = viewer();
    const f = new RawPeer(env.net, 'silent-1', v);
    f.hello();
    const x = seg(1);
    f.announce(x);
    await env.net.settle();
    const p1 = v.loadSegment(x.ref, { deadline: far() });
    const p2 = v.loadSegment(x.ref, { deadline: far() });
    expect(p2).toBe(p1);
    v.close();
    await expect(p1).rejects.toThrow(/closed/);
    await env.net.settle();
    expect(f.of('bye').length).toBe(1);
    expect(f.closedByEngine).toBe(true);
    await expect(v.loadSegment(x.ref, { deadline: far() })).rejects.toThrow(/closed/);
    expect(v.wantsNeighbor('x-1')).toBe(false);
  });

  it('validates input: forged or mismatched segments, bad refs, neighbor limits', async () => {
    const o = origin();
    const forged = makeSegment(makeKey(), { rendition: R, seq: 1 }, 2000);
    expect(() => o.publishSegment(forged.manifest, forged.data)).toThrow();
    const x = seg(1);
    const tampered = x.data.slice();
    tampered[5] ^= 1;
    expect(() => o.publishSegment(x.manifest, tampered)).toThrow(/piece 0/);
    expect(() => o.publishSegment(x.manifest, x.data.subarray(1))).toThrow(/size/);
    await expect(o.loadSegment({ rendition: 'BAD', seq: 1 } as SegmentRef, { deadline: 1 })).rejects.toThrow(TypeError);
    await expect(o.loadSegment({ rendition: R, seq: -5 }, { deadline: 1 })).rejects.toThrow(TypeError);
    const small = viewer('viewer-1', { maxNeighbors: 1 });
    expect(small.wantsNeighbor('viewer-1')).toBe(false);
    const a = new RawPeer(env.net, 'first-1', small);
    expect(small.wantsNeighbor('second-1')).toBe(false);
    expect(small.wantsNeighbor('first-1')).toBe(false);
    const b = new RawPeer(env.net, 'second-1', small); // refused
    await env.net.settle();
    expect(b.closedByEngine).toBe(true);
    expect(a.closedByEngine).toBe(false);
  });

  it('drops a neighbor that never says HELLO', async () => {
    const v = viewer();
    const a = new RawPeer(env.net, 'mute-1', v);
    await env.net.settle();
    env.clock.advance(10_000);
    v.tick();
    await env.net.settle();
    expect(a.closedByEngine).toBe(true);
  });
});

describe('Engine: re-entrancy', () => {
  it('works when links deliver synchronously (handlers re-enter the engine)', async () => {
    env = { clock: new FakeClock(), net: new MemNet(true), key };
    const o = origin();
    const s = seeder();
    const v = viewer('viewer-1', { interest: 'following' });
    env.net.connect(o, s);
    env.net.connect(s, v);
    env.net.connect(o, v);
    v.setPlaybackPosition({ rendition: R, seq: 0 });
    const segs = [0, 1, 2].map((q) => seg(q));
    publish(o, ...segs);
    for (const x of segs) {
      expect(v.hasSegment(x.ref)).toBe(true);
      const r = await v.loadSegment(x.ref, { deadline: far() });
      expect(equalBytes(r.data, x.data)).toBe(true);
    }
    expect(sumRejected(v) + sumRejected(s)).toBe(0);
    s.close();
    expect(v.stats().peers).toBe(1);
    expect(o.stats().peers).toBe(1);
  });
});
