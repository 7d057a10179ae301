/**
 * hls.js fragment loader (config.fLoader) that routes Starling segments through the P2P engine.
 *
 * For every fragment hls.js wants (media fragments and init segments) whose URL parses with
 * parseSegmentUrl() as a segment of our channel, the loader
 *   1. tells the engine where playback is heading (setPlaybackPosition, media fragments only:
 *      that drives the engine's 'following' interest),
 *   2. asks the engine for the whole verified segment by a deadline derived from the buffer the
 *      player still has (engine.loadSegment): pieces the engine already holds or gets from peers
 *      in time are used, whatever is missing at deadline - httpMargin comes over HTTP,
 *   3. reports the bytes to hls.js with truthful LoaderStats.
 * Anything else (a byte-range fragment, another channel, another URL layout) falls through to
 * hls.js's default loader. Playlists never come here (pLoader stays the default).
 *
 * Only type imports from hls.js: the module runs (and is unit-tested) without a DOM, and the host
 * passes the fallback loader (Hls.DefaultConfig.loader, which is also what hls.js puts in
 * config.loader by default).
 */
import type {
  FragmentLoaderConstructor,
  FragmentLoaderContext,
  HlsConfig,
  Loader,
  LoaderCallbacks,
  LoaderConfiguration,
  LoaderContext,
  LoaderStats,
} from 'hls.js';
import type { EngineApi, LoadResult } from '../../peer/core/engine-api.js';
import { parseSegmentUrl } from '../../peer/core/paths.js';
import { INIT_SEQ, type Clock, type PieceSource, type SegmentRef } from '../../peer/core/types.js';

// ---------------------------------------------------------------------------------------------
// Pure parts (unit-tested)
// ---------------------------------------------------------------------------------------------

/** What the loader does with one hls.js fragment request. */
export type FragmentRoute =
  | { kind: 'engine'; ref: SegmentRef; isInit: boolean }
  | { kind: 'default'; reason: 'not-a-segment' | 'other-channel' | 'byte-range' };

/**
 * Decides whether a fragment request goes to the engine. The engine serves whole segments of
 * one channel; a request for a byte range of a fragment (EXT-X-BYTERANGE) or for a URL outside
 * our layout goes to the default loader.
 */
export function routeFragment(
  ctx: Pick<LoaderContext, 'url' | 'rangeStart' | 'rangeEnd'>,
  channel: string,
): FragmentRoute {
  const parsed = parseSegmentUrl(ctx.url);
  if (!parsed) return { kind: 'default', reason: 'not-a-segment' };
  if (parsed.channel !== channel) return { kind: 'default', reason: 'other-channel' };
  if ((ctx.rangeStart !== undefined && ctx.rangeStart > 0) || (ctx.rangeEnd !== undefined && ctx.rangeEnd > 0)) {
    return { kind: 'default', reason: 'byte-range' };
  }
  return { kind: 'engine', ref: parsed.ref, isInit: parsed.ref.seq === INIT_SEQ };
}

export interface DeadlinePolicy {
  /**
   * Kept in reserve out of the buffer for appending/decoding the segment once it is complete, and
   * for an HTTP fetch slower than the engine expected. Default 500 ms. The engine itself makes
   * a load complete by its deadline: it fetches what peers have not delivered one measured HTTP
   * fetch before it (peer/core engine pushLeft). While it waited for a parent's push until the
   * deadline itself, the safety also had to cover that last fetch, and was 1000 ms; at 500 ms a
   * session's second segment (due when the first one's 2 s of buffer run out) has 1.5 s for peers
   * instead of 1 s (simulator: chandelier-300 over 300 s, seeds 21-26, 95.0 -> 95.4% from peers;
   * bench-50-3min, seeds 1-3, 93.7 -> 93.9%; no rebuffering).
   */
  safetyMs?: number;
  /**
   * Upper bound of now→deadline (ms). Default: three segment durations. The origin publishes a
   * live segment whole, and an upload link carries it at about its bitrate (slots are sized at
   * 1.15x), so the overlay needs most of a segment duration to hand it down the tree; with only
   * one segment to wait, the tail of nearly every segment went to HTTP (simulator, 300 viewers:
   * 45% from peers with one segment, 56% with two). Near the origin a fast peer feeds up to
   * three children, and each of them gets the whole segment 1-1.5 s after it: the tails of the
   * deepest chains arrived 2.5-4.5 s after the segment was published (simulator, chandelier-300),
   * just past a two-segment wait. Three segments leave a viewer playing three segments behind
   * live (hls.js's default) bound by its buffer instead: waiting never eats the playback margin
   * (bufferAhead - safety), and with sequential fragment loading the buffer settles where a
   * fragment's wait is one segment duration, with either cap.
   */
  maxWaitMs?: number;
}

export const DEFAULT_SAFETY_MS = 500;
export const DEFAULT_MAX_WAIT_SEGMENTS = 3;

/**
 * The engine deadline (clock ms) for a segment requested at `now`:
 *   now + clamp(bufferAhead - safety, 0, maxWait)   with maxWait = three segments by default.
 * When the buffer is empty (startup, after a stall, after a seek) the deadline is `now`: every
 * piece the engine does not hold already is fetched over HTTP at once.
 */
export function computeDeadline(
  now: number,
  bufferAheadSeconds: number,
  segmentDurationSeconds: number,
  policy: DeadlinePolicy = {},
): number {
  const safety = policy.safetyMs ?? DEFAULT_SAFETY_MS;
  const maxWait = Math.max(0, policy.maxWaitMs ?? DEFAULT_MAX_WAIT_SEGMENTS * segmentDurationSeconds * 1000);
  const ahead = Number.isFinite(bufferAheadSeconds) ? bufferAheadSeconds * 1000 : 0;
  const wait = Math.min(Math.max(0, ahead - safety), maxWait);
  return now + (Number.isFinite(wait) ? wait : 0);
}

/**
 * Fills hls.js LoaderStats from an engine LoadResult. `requestedAt` is when hls.js asked (the
 * engine clock must be performance.now(), the basis hls.js uses, so the numbers compare).
 *
 * ABR: hls.js's bandwidth sample is loaded / (end - start - ttfb). Wall time from request to
 * completion is not the network's rate here: a segment pushed by the overlay before hls.js
 * asked "arrives" in ~0 ms (inflating the estimate), and one whose pieces we deliberately leave
 * to peers until the deadline takes as long as we chose to wait (deflating it). So when the
 * engine reports the segment's network time (`transferMs`: first to last piece arrival), the
 * stats span exactly that, ending at completion: start = first = end - transferMs (at least
 * 1 ms). Without it (older engines), start is the request time and first the first byte, never
 * before the request.
 */
export function fillStats(
  stats: LoaderStats,
  requestedAt: number,
  result: Pick<LoadResult, 'data' | 'firstByteAt' | 'completedAt' | 'transferMs'>,
): void {
  let start = requestedAt;
  let first = Math.max(start, finiteOr(result.firstByteAt, start));
  const end = Math.max(first, finiteOr(result.completedAt, first));
  if (typeof result.transferMs === 'number' && Number.isFinite(result.transferMs) && result.transferMs >= 0) {
    start = end - Math.max(1, result.transferMs);
    first = start;
  }
  stats.loading.start = start;
  stats.loading.first = first;
  stats.loading.end = end;
  stats.loaded = result.data.byteLength;
  stats.total = result.data.byteLength;
  stats.chunkCount = 1;
  stats.aborted = false;
}

/**
 * hls.js retries fragment errors only for HTTP statuses outside 4xx (and for timeouts). A
 * segment that the origin answers 4xx for (gone from the live window) is final; failures with
 * no HTTP status (no peer could deliver and the fallback failed on the network, the engine
 * was closed) are reported as 503 so that hls.js retries them.
 */
export function errorToLoaderError(err: unknown): { code: number; text: string } {
  const text = err instanceof Error ? err.message : String(err);
  let code = 503;
  if (typeof err === 'object' && err !== null) {
    const rec = err as { status?: unknown; code?: unknown };
    const status = typeof rec.status === 'number' ? rec.status : typeof rec.code === 'number' ? rec.code : undefined;
    if (status !== undefined && Number.isInteger(status) && status >= 100 && status <= 599) code = status;
  }
  return { code, text: text || 'segment load failed' };
}

/** A fresh LoaderStats (the shape of hls.js's LoadStats class, which is not exported as a value we can rely on). */
export function newLoaderStats(): LoaderStats {
  return {
    aborted: false,
    loaded: 0,
    retry: 0,
    total: 0,
    chunkCount: 0,
    bwEstimate: 0,
    loading: { start: 0, first: 0, end: 0 },
    parsing: { start: 0, end: 0 },
    buffering: { start: 0, first: 0, end: 0 },
  };
}

/** Copies a view into a standalone ArrayBuffer (see the note in P2PFragmentLoader.load). */
export function toOwnArrayBuffer(data: Uint8Array): ArrayBuffer {
  const out = new ArrayBuffer(data.byteLength);
  new Uint8Array(out).set(data);
  return out;
}

function finiteOr(v: number, fallback: number): number {
  return Number.isFinite(v) ? v : fallback;
}

// ---------------------------------------------------------------------------------------------
// The loader class
// ---------------------------------------------------------------------------------------------

export interface SegmentLoadedInfo {
  ref: SegmentRef;
  bytes: number;
  bytesBySource: Record<PieceSource, number>;
  /** now → deadline (ms) that was requested. */
  waitMs: number;
  /** loading.end - loading.start (ms). */
  durationMs: number;
}

export interface TimerFns {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface P2PLoaderOptions {
  engine: Pick<EngineApi, 'loadSegment' | 'setPlaybackPosition'>;
  /** The channel the engine serves; other channels' URLs go to the default loader. */
  channel: string;
  /** The engine's clock; must be performance.now()-based (hls.js stats use that basis). */
  clock: Clock;
  /** Seconds of media buffered contiguously ahead of the playhead, right now. */
  bufferAheadSeconds(): number;
  /** Used for init segments (which have no duration of their own) and when a fragment has none. */
  segmentDurationSeconds: number;
  deadline?: DeadlinePolicy;
  /** Passed through to LoadOptions.httpMarginMs (engine default 500). */
  httpMarginMs?: number;
  /** Loader for everything the engine does not serve. Default: the config.loader hls.js passes. */
  fallbackLoader?: new (config: HlsConfig) => Loader<LoaderContext>;
  /** Timer functions for the load timeout (tests inject fakes). Default: globalThis's. */
  timers?: TimerFns;
  onSegmentLoaded?(info: SegmentLoadedInfo): void;
  onSegmentError?(ref: SegmentRef, err: unknown): void;
}

const defaultTimers: TimerFns = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof globalThis.setTimeout>),
};

/**
 * Builds the fLoader class for one engine. hls.js constructs one instance per fragment load
 * (`new config.fLoader(config)`), calls load() once, and may call abort() and destroy().
 */
export function createP2PFragmentLoader(opts: P2PLoaderOptions): FragmentLoaderConstructor {
  class P2PFragmentLoader implements Loader<FragmentLoaderContext> {
    context: FragmentLoaderContext | null = null;
    stats: LoaderStats = newLoaderStats();
    private readonly hlsConfig: HlsConfig;
    private callbacks: LoaderCallbacks<FragmentLoaderContext> | null = null;
    private fallback: Loader<LoaderContext> | null = null;
    private timer: unknown = null;
    /** Bumped by abort/destroy/timeout so that a late engine answer is dropped. */
    private generation = 0;
    private readonly timers = opts.timers ?? defaultTimers;

    constructor(config: HlsConfig) {
      this.hlsConfig = config;
    }

    load(context: FragmentLoaderContext, config: LoaderConfiguration, callbacks: LoaderCallbacks<FragmentLoaderContext>): void {
      const route = routeFragment(context, opts.channel);
      if (route.kind === 'default') {
        this.loadWithFallback(context, config, callbacks);
        return;
      }
      if (this.stats.loading.start) throw new Error('Loader can only be used once.');
      this.context = context;
      this.callbacks = callbacks;
      const requestedAt = opts.clock.now();
      this.stats.loading.start = requestedAt;
      const { ref, isInit } = route;

      const fragDuration = context.frag?.duration;
      const segmentSeconds = !isInit && typeof fragDuration === 'number' && fragDuration > 0 ? fragDuration : opts.segmentDurationSeconds;
      if (!isInit) {
        try {
          opts.engine.setPlaybackPosition(ref);
        } catch {
          // A position the engine refuses only loses prefetch interest; the load itself goes on.
        }
      }
      const deadline = computeDeadline(requestedAt, safeBufferAhead(opts.bufferAheadSeconds), segmentSeconds, opts.deadline);

      const generation = ++this.generation;
      const timeoutMs = config.loadPolicy?.maxLoadTimeMs ?? config.timeout;
      if (timeoutMs && Number.isFinite(timeoutMs) && timeoutMs > 0) {
        this.timer = this.timers.setTimeout(() => this.onTimeout(generation), timeoutMs);
      }

      let promise: Promise<LoadResult>;
      try {
        promise = opts.engine.loadSegment(ref, { deadline, httpMarginMs: opts.httpMarginMs });
      } catch (err) {
        promise = Promise.reject(err);
      }
      promise.then(
        (result) => {
          if (generation !== this.generation || !this.callbacks || !this.context) return; // aborted: the engine keeps the segment
          this.clearTimer();
          fillStats(this.stats, requestedAt, result);
          const cbs = this.callbacks;
          const ctx = this.context;
          this.callbacks = null;
          opts.onSegmentLoaded?.({
            ref,
            bytes: result.data.byteLength,
            bytesBySource: result.bytesBySource,
            waitMs: deadline - requestedAt,
            durationMs: this.stats.loading.end - this.stats.loading.start,
          });
          // Always hand hls.js its own copy: hls.js may transfer the buffer to a worker (which
          // detaches it) and appends it to MSE; the engine keeps sharing its stored bytes.
          cbs.onSuccess({ url: ctx.url, data: toOwnArrayBuffer(result.data) }, this.stats, ctx, null);
        },
        (err: unknown) => {
          if (generation !== this.generation || !this.callbacks || !this.context) return;
          this.clearTimer();
          const cbs = this.callbacks;
          const ctx = this.context;
          this.callbacks = null;
          this.stats.loading.end = opts.clock.now();
          opts.onSegmentError?.(ref, err);
          cbs.onError(errorToLoaderError(err), ctx, null, this.stats);
        },
      );
    }

    abort(): void {
      if (this.fallback) {
        this.fallback.abort();
        return;
      }
      this.generation++;
      this.clearTimer();
      const cbs = this.callbacks;
      this.callbacks = null;
      if (cbs && this.context && !this.stats.loading.end) {
        // Like hls.js's own loaders: mark aborted and tell onAbort (the fragment loader then
        // settles its promise). The engine goes on completing the segment for the swarm.
        this.stats.aborted = true;
        cbs.onAbort?.(this.stats, this.context, null);
      }
    }

    destroy(): void {
      this.generation++;
      this.clearTimer();
      this.callbacks = null;
      if (this.fallback) {
        this.fallback.destroy();
        this.fallback = null;
      }
      this.context = null;
    }

    getCacheAge(): number | null {
      return this.fallback?.getCacheAge?.() ?? null;
    }

    getResponseHeader(name: string): string | null {
      return this.fallback?.getResponseHeader?.(name) ?? null;
    }

    private loadWithFallback(
      context: FragmentLoaderContext,
      config: LoaderConfiguration,
      callbacks: LoaderCallbacks<FragmentLoaderContext>,
    ): void {
      const Ctor = opts.fallbackLoader ?? this.hlsConfig.loader;
      const loader = new Ctor(this.hlsConfig);
      this.fallback = loader;
      this.context = context;
      // Share the stats object: hls.js keeps a reference to ours (frag.stats = loader.stats).
      loader.stats = this.stats;
      loader.load(context, config, callbacks as unknown as LoaderCallbacks<LoaderContext>);
    }

    private onTimeout(generation: number): void {
      if (generation !== this.generation || !this.callbacks || !this.context) return;
      this.generation++;
      this.timer = null;
      const cbs = this.callbacks;
      this.callbacks = null;
      cbs.onTimeout(this.stats, this.context, null);
    }

    private clearTimer(): void {
      if (this.timer !== null) {
        this.timers.clearTimeout(this.timer);
        this.timer = null;
      }
    }
  }
  return P2PFragmentLoader;
}

function safeBufferAhead(get: () => number): number {
  try {
    const v = get();
    return Number.isFinite(v) && v > 0 ? v : 0;
  } catch {
    return 0;
  }
}
