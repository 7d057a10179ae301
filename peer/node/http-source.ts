/**
 * HttpSource (the engine's HTTP fallback) over fetch(): manifests and byte ranges of segments
 * from the origin, at the paths of peer/core/paths.ts. Uses only fetch/AbortController, so it also
 * runs in browsers, but lives here as the Node peers' implementation.
 */
import type { HttpSource, SegmentRef } from '../core/types.js';
import { manifestPath, segmentPath } from '../core/paths.js';
import { MAX_PIECES, MAX_SEGMENT_BYTES } from '../core/manifest.js';

/** Manifest upper bound: header + MAX_PIECES hashes + signature, with room to spare. */
const MAX_MANIFEST_BYTES = 1024 + MAX_PIECES * 32 + 64;

export interface NodeHttpSourceOptions {
  /** Origin base URL, e.g. http://127.0.0.1:8080 (a path prefix is kept). */
  baseUrl: string;
  channel: string;
  /** Per-request timeout. Default 10 s. */
  timeoutMs?: number;
  /** Injected fetch (tests). Default globalThis.fetch. */
  fetch?: typeof fetch;
}

export class HttpSourceError extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
  }
}

export class NodeHttpSource implements HttpSource {
  private readonly base: string;
  private readonly channel: string;
  private readonly timeoutMs: number;
  private readonly fetchFn: typeof fetch;
  /** Counters: requests, bytes, failures. */
  readonly counters = { requests: 0, bytes: 0, failures: 0 };

  constructor(opts: NodeHttpSourceOptions) {
    const u = new URL(opts.baseUrl);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError('baseUrl must be http(s)');
    this.base = u.href.replace(/\/+$/, '');
    this.channel = opts.channel;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    const f = opts.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') throw new Error('fetch is not available');
    this.fetchFn = f;
  }

  async fetchManifest(ref: SegmentRef): Promise<Uint8Array> {
    const res = await this.get(manifestPath(this.channel, ref));
    if (res.status !== 200) throw await this.fail(res, `manifest: HTTP ${res.status}`);
    const body = await this.readBody(res, MAX_MANIFEST_BYTES);
    return body;
  }

  async fetchRange(ref: SegmentRef, start: number, endExclusive: number): Promise<Uint8Array> {
    if (!Number.isInteger(start) || !Number.isInteger(endExclusive) || start < 0 || endExclusive < start || endExclusive > MAX_SEGMENT_BYTES) {
      throw new RangeError(`bad range ${start}-${endExclusive}`);
    }
    const len = endExclusive - start;
    if (len === 0) return new Uint8Array(0);
    const res = await this.get(segmentPath(this.channel, ref), { Range: `bytes=${start}-${endExclusive - 1}` });
    if (res.status === 206) {
      const body = await this.readBody(res, len);
      if (body.length !== len) {
        this.counters.failures++;
        throw new HttpSourceError(`range: got ${body.length} bytes, wanted ${len}`, 206);
      }
      return body;
    }
    if (res.status === 200) {
      // Server ignored the Range: take our slice of the whole segment.
      const body = await this.readBody(res, MAX_SEGMENT_BYTES);
      if (body.length < endExclusive) {
        this.counters.failures++;
        throw new HttpSourceError(`range: segment has ${body.length} bytes, wanted up to ${endExclusive}`, 200);
      }
      return body.slice(start, endExclusive);
    }
    throw await this.fail(res, `range: HTTP ${res.status}`);
  }

  private async get(path: string, headers: Record<string, string> = {}): Promise<Response> {
    this.counters.requests++;
    try {
      return await this.fetchFn(this.base + path, { headers, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      this.counters.failures++;
      throw new HttpSourceError(`fetch ${path} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private async fail(res: Response, msg: string): Promise<HttpSourceError> {
    this.counters.failures++;
    try {
      await res.body?.cancel();
    } catch {
      /* ignore */
    }
    return new HttpSourceError(msg, res.status);
  }

  /** Reads the body, refusing more than `max` bytes (checked against Content-Length and as it streams). */
  private async readBody(res: Response, max: number): Promise<Uint8Array> {
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (Number.isFinite(declared) && declared > max) {
      throw await this.fail(res, `body too large: ${declared} > ${max}`);
    }
    if (!res.body) return new Uint8Array(0);
    const reader = res.body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        total += value.length;
        if (total > max) {
          await reader.cancel();
          this.counters.failures++;
          throw new HttpSourceError(`body too large: > ${max}`, res.status);
        }
        chunks.push(value);
      }
    } catch (err) {
      if (err instanceof HttpSourceError) throw err;
      this.counters.failures++;
      throw new HttpSourceError(`read failed: ${err instanceof Error ? err.message : String(err)}`, res.status);
    }
    const out = new Uint8Array(total);
    let off = 0;
    for (const c of chunks) {
      out.set(c, off);
      off += c.length;
    }
    this.counters.bytes += total;
    return out;
  }
}
