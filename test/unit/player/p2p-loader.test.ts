import { describe, expect, it, vi } from 'vitest';
import type { FragmentLoaderContext, HlsConfig, LoaderCallbacks, LoaderConfiguration, LoaderContext, LoaderStats } from 'hls.js';
import {
  computeDeadline, createP2PFragmentLoader, errorToLoaderError, fillStats, newLoaderStats, routeFragment,
  type P2PLoaderOptions, type TimerFns,
} from '../../../player/src/p2p-loader.js';
import type { LoadOptions, LoadResult } from '../../../peer/core/engine-api.js';
import { INIT_SEQ, type SegmentRef } from '../../../peer/core/types.js';

describe('routeFragment', () => {
  it('sends segments and init segments of our channel to the engine', () => {
    expect(routeFragment({ url: 'http://o:8080/live/demo/360p/seg_1042.m4s' }, 'demo')).toEqual({
      kind: 'engine', ref: { rendition: '360p', seq: 1042 }, isInit: false,
    });
    expect(routeFragment({ url: '/live/demo/720p/init.mp4?x=1' }, 'demo')).toEqual({
      kind: 'engine', ref: { rendition: '720p', seq: INIT_SEQ }, isInit: true,
    });
  });
  it('leaves everything else to the default loader', () => {
    expect(routeFragment({ url: 'https://cdn.example/video/seg1.ts' }, 'demo')).toMatchObject({ kind: 'default', reason: 'not-a-segment' });
    expect(routeFragment({ url: '/live/demo/360p/index.m3u8' }, 'demo')).toMatchObject({ kind: 'default', reason: 'not-a-segment' });
    expect(routeFragment({ url: '/live/other/360p/seg_1.m4s' }, 'demo')).toMatchObject({ kind: 'default', reason: 'other-channel' });
    expect(routeFragment({ url: '/live/demo/360p/seg_1.m4s', rangeStart: 100, rangeEnd: 200 }, 'demo')).toMatchObject({
      kind: 'default', reason: 'byte-range',
    });
    expect(routeFragment({ url: '/live/demo/360p/seg_1.m4s', rangeStart: 0, rangeEnd: 0 }, 'demo')).toMatchObject({ kind: 'engine' });
  });
});

describe('computeDeadline', () => {
  it('is now when the buffer is empty (startup: missing pieces go to HTTP at once)', () => {
    expect(computeDeadline(5000, 0, 2)).toBe(5000);
    expect(computeDeadline(5000, 0.4, 2)).toBe(5000); // below the safety margin (500 ms)
    expect(computeDeadline(5000, NaN, 2)).toBe(5000);
  });
  it('leaves the buffer minus the safety margin, capped at three segments', () => {
    expect(computeDeadline(5000, 0.8, 2)).toBe(5300);
    expect(computeDeadline(5000, 2.5, 2)).toBe(7000);
    expect(computeDeadline(5000, 6, 2)).toBe(10500); // hls.js's live start: three segments of buffer
    expect(computeDeadline(5000, 8, 2)).toBe(11000);
    expect(computeDeadline(5000, Infinity, 2)).toBe(5000); // nonsense in, no waiting out
    expect(computeDeadline(5000, 8, 2, { safetyMs: 1000, maxWaitMs: 4000 })).toBe(9000);
    expect(computeDeadline(5000, 3, 2, { safetyMs: 1000, maxWaitMs: 4000 })).toBe(7000);
  });
});

describe('fillStats / errorToLoaderError', () => {
  it('uses the engine times on the request basis, never before the request', () => {
    const s = newLoaderStats();
    fillStats(s, 1000, { data: new Uint8Array(300), firstByteAt: 1100, completedAt: 1400 });
    expect(s.loading).toEqual({ start: 1000, first: 1100, end: 1400 });
    expect([s.loaded, s.total, s.aborted]).toEqual([300, 300, false]);
    const held = newLoaderStats();
    fillStats(held, 1000, { data: new Uint8Array(10), firstByteAt: 200, completedAt: 500 }); // already held
    expect(held.loading).toEqual({ start: 1000, first: 1000, end: 1000 });
  });
  it('with the engine network time: spans exactly the transfer (no burst inflation, no wait deflation)', () => {
    const pushed = newLoaderStats(); // held before hls.js asked: 40 KB arrived over 800 ms
    fillStats(pushed, 5000, { data: new Uint8Array(40_000), firstByteAt: 5000, completedAt: 5000, transferMs: 800 });
    expect(pushed.loading).toEqual({ start: 4200, first: 4200, end: 5000 });
    const waited = newLoaderStats(); // asked at 1000, pieces trickled in from 2500 to 2900
    fillStats(waited, 1000, { data: new Uint8Array(40_000), firstByteAt: 2500, completedAt: 2900, transferMs: 400 });
    expect(waited.loading).toEqual({ start: 2500, first: 2500, end: 2900 });
    const burst = newLoaderStats();
    fillStats(burst, 1000, { data: new Uint8Array(10), firstByteAt: 1000, completedAt: 1000, transferMs: 0 });
    expect(burst.loading.end - burst.loading.start).toBe(1);
  });
  it('keeps HTTP statuses (4xx is final for hls.js) and makes the rest retryable', () => {
    expect(errorToLoaderError(Object.assign(new Error('gone'), { status: 404 }))).toEqual({ code: 404, text: 'gone' });
    expect(errorToLoaderError(new Error('no peers, fallback failed'))).toEqual({ code: 503, text: 'no peers, fallback failed' });
    expect(errorToLoaderError(Object.assign(new Error('net'), { status: 0 })).code).toBe(503);
    expect(errorToLoaderError('x')).toEqual({ code: 503, text: 'x' });
  });
});

// ---- the loader class against a fake engine --------------------------------------------------

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function setup(over: Partial<P2PLoaderOptions> = {}) {
  let now = 10_000;
  const clock = { now: () => now };
  const calls: Array<{ ref: SegmentRef; opts: LoadOptions; d: ReturnType<typeof deferred<LoadResult>> }> = [];
  const positions: SegmentRef[] = [];
  const engine = {
    loadSegment: vi.fn((ref: SegmentRef, opts: LoadOptions) => {
      const d = deferred<LoadResult>();
      calls.push({ ref, opts, d });
      return d.promise;
    }),
    setPlaybackPosition: vi.fn((ref: SegmentRef) => void positions.push(ref)),
  };
  const pending: Array<{ fn: () => void; ms: number; cleared: boolean }> = [];
  const timers: TimerFns = {
    setTimeout: (fn, ms) => {
      const t = { fn, ms, cleared: false };
      pending.push(t);
      return t;
    },
    clearTimeout: (h) => void ((h as { cleared: boolean }).cleared = true),
  };
  let buffer = 0;
  const Loader = createP2PFragmentLoader({
    engine,
    channel: 'demo',
    clock,
    bufferAheadSeconds: () => buffer,
    segmentDurationSeconds: 2,
    timers,
    ...over,
  });
  const cb = {
    onSuccess: vi.fn(),
    onError: vi.fn(),
    onTimeout: vi.fn(),
    onAbort: vi.fn(),
  };
  const loaderConfig = {
    loadPolicy: { maxTimeToFirstByteMs: 10_000, maxLoadTimeMs: 120_000, timeoutRetry: null, errorRetry: null },
    timeout: 120_000, maxRetry: 0, retryDelay: 0, maxRetryDelay: 0,
  } as LoaderConfiguration;
  const ctx = (url: string, duration = 2, sn: number | 'initSegment' = 1) =>
    ({ url, responseType: 'arraybuffer', type: 'media-fragment', frag: { duration, sn }, part: null }) as unknown as FragmentLoaderContext;
  const hlsConfig = {} as HlsConfig;
  return {
    Loader, engine, calls, positions, cb, loaderConfig, ctx, hlsConfig, pending,
    setNow: (t: number) => void (now = t),
    setBuffer: (s: number) => void (buffer = s),
    callbacks: cb as unknown as LoaderCallbacks<FragmentLoaderContext>,
  };
}

const result = (bytes: number, firstByteAt: number, completedAt: number): LoadResult => ({
  data: new Uint8Array(bytes).fill(7),
  manifest: {} as LoadResult['manifest'],
  bytesBySource: { peer: bytes, 'origin-peer': 0, http: 0, local: 0 },
  firstByteAt,
  completedAt,
});

describe('P2P fragment loader', () => {
  it('loads a media fragment through the engine with a buffer-based deadline and truthful stats', async () => {
    const t = setup();
    t.setBuffer(4);
    const loader = new t.Loader(t.hlsConfig);
    const c = t.ctx('http://h/live/demo/360p/seg_7.m4s');
    loader.load(c, t.loaderConfig, t.callbacks);
    expect(t.positions).toEqual([{ rendition: '360p', seq: 7 }]);
    expect(t.calls).toHaveLength(1);
    expect(t.calls[0].ref).toEqual({ rendition: '360p', seq: 7 });
    expect(t.calls[0].opts.deadline).toBe(10_000 + 3500); // min(4 s - 0.5 s safety, three 2 s segments)
    t.calls[0].d.resolve(result(1000, 10_050, 10_400));
    await Promise.resolve();
    await Promise.resolve();
    expect(t.cb.onSuccess).toHaveBeenCalledTimes(1);
    const [response, stats, context] = t.cb.onSuccess.mock.calls[0] as [{ url: string; data: ArrayBuffer }, LoaderStats, LoaderContext];
    expect(response.url).toBe(c.url);
    expect(response.data).toBeInstanceOf(ArrayBuffer);
    expect(response.data.byteLength).toBe(1000);
    expect(new Uint8Array(response.data)[999]).toBe(7);
    expect(stats).toBe(loader.stats);
    expect(stats.loading).toEqual({ start: 10_000, first: 10_050, end: 10_400 });
    expect(stats.loaded).toBe(1000);
    expect(context).toBe(c);
    expect(t.pending[0].cleared).toBe(true);
  });

  it('init segments: no playback position, deadline now at startup', () => {
    const t = setup();
    const loader = new t.Loader(t.hlsConfig);
    loader.load(t.ctx('/live/demo/360p/init.mp4', 0, 'initSegment'), t.loaderConfig, t.callbacks);
    expect(t.positions).toEqual([]);
    expect(t.calls[0].ref.seq).toBe(INIT_SEQ);
    expect(t.calls[0].opts.deadline).toBe(10_000);
  });

  it('abort: no success callback, onAbort with stats.aborted, the engine load is left to finish', async () => {
    const t = setup();
    const loader = new t.Loader(t.hlsConfig);
    loader.load(t.ctx('/live/demo/360p/seg_8.m4s'), t.loaderConfig, t.callbacks);
    loader.abort();
    expect(t.cb.onAbort).toHaveBeenCalledTimes(1);
    expect(loader.stats.aborted).toBe(true);
    t.calls[0].d.resolve(result(10, 0, 1));
    await new Promise((r) => setTimeout(r, 0));
    expect(t.cb.onSuccess).not.toHaveBeenCalled();
    loader.destroy();
  });

  it('destroy silences every callback', async () => {
    const t = setup();
    const loader = new t.Loader(t.hlsConfig);
    loader.load(t.ctx('/live/demo/360p/seg_8.m4s'), t.loaderConfig, t.callbacks);
    loader.destroy();
    t.calls[0].d.reject(new Error('closed'));
    await new Promise((r) => setTimeout(r, 0));
    expect(t.cb.onError).not.toHaveBeenCalled();
    expect(t.cb.onAbort).not.toHaveBeenCalled();
  });

  it('engine errors become onError with a code and text', async () => {
    const onSegmentError = vi.fn();
    const t = setup({ onSegmentError });
    const loader = new t.Loader(t.hlsConfig);
    loader.load(t.ctx('/live/demo/360p/seg_9.m4s'), t.loaderConfig, t.callbacks);
    t.calls[0].d.reject(Object.assign(new Error('segment: HTTP 404'), { status: 404 }));
    await new Promise((r) => setTimeout(r, 0));
    expect(t.cb.onError).toHaveBeenCalledTimes(1);
    expect(t.cb.onError.mock.calls[0][0]).toEqual({ code: 404, text: 'segment: HTTP 404' });
    expect(onSegmentError).toHaveBeenCalledTimes(1);
  });

  it('times out after loadPolicy.maxLoadTimeMs', async () => {
    const t = setup();
    const loader = new t.Loader(t.hlsConfig);
    loader.load(t.ctx('/live/demo/360p/seg_9.m4s'), t.loaderConfig, t.callbacks);
    expect(t.pending[0].ms).toBe(120_000);
    t.pending[0].fn();
    expect(t.cb.onTimeout).toHaveBeenCalledTimes(1);
    t.calls[0].d.resolve(result(10, 0, 1));
    await new Promise((r) => setTimeout(r, 0));
    expect(t.cb.onSuccess).not.toHaveBeenCalled();
  });

  it('falls through to the default loader for other URLs, sharing the stats object', () => {
    const made: Array<{ ctx: LoaderContext; stats: LoaderStats; aborted: boolean; destroyed: boolean }> = [];
    class FakeDefault {
      stats: LoaderStats = newLoaderStats();
      context: LoaderContext | null = null;
      rec = { ctx: null as unknown as LoaderContext, stats: null as unknown as LoaderStats, aborted: false, destroyed: false };
      load(ctx: LoaderContext) {
        this.rec.ctx = ctx;
        this.rec.stats = this.stats;
        made.push(this.rec);
      }
      abort() {
        this.rec.aborted = true;
      }
      destroy() {
        this.rec.destroyed = true;
      }
    }
    const t = setup({ fallbackLoader: FakeDefault as unknown as P2PLoaderOptions['fallbackLoader'] });
    const loader = new t.Loader(t.hlsConfig);
    loader.load(t.ctx('https://cdn.example/x/seg1.ts'), t.loaderConfig, t.callbacks);
    expect(t.calls).toHaveLength(0);
    expect(made).toHaveLength(1);
    expect(made[0].stats).toBe(loader.stats);
    loader.abort();
    loader.destroy();
    expect(made[0]).toMatchObject({ aborted: true, destroyed: true });
  });

  it('a load after abort is refused like hls.js loaders (one use per instance)', () => {
    const t = setup();
    const loader = new t.Loader(t.hlsConfig);
    loader.load(t.ctx('/live/demo/360p/seg_1.m4s'), t.loaderConfig, t.callbacks);
    expect(() => loader.load(t.ctx('/live/demo/360p/seg_2.m4s'), t.loaderConfig, t.callbacks)).toThrow();
  });
});
