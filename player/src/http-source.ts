/**
 * The engine's HTTP fallback in the browser: manifests and byte ranges of segments from the
 * origin, over fetch(). Every answer is checked (status, Content-Range, length) before it goes
 * to the engine, which then verifies the bytes against the signed manifest anyway.
 */
import type { HttpSource, SegmentRef } from '../../peer/core/types.js';
import { manifestPath, segmentPath } from '../../peer/core/paths.js';
import { MAX_SEGMENT_BYTES } from '../../peer/core/manifest.js';

/** A failed HTTP exchange; `status` is the HTTP status (0 for a network error or a bad answer). */
export class HttpError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly url: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export type FetchFn = (input: string, init?: RequestInit) => Promise<Response>;

export interface FetchHttpSourceOptions {
  channel: string;
  /** Origin base URL, e.g. location.origin (no trailing slash needed). Default: '' (same origin). */
  baseUrl?: string;
  /** Default: globalThis.fetch. */
  fetch?: FetchFn;
  /** Abort a request after this many ms. Default 10000. */
  timeoutMs?: number;
  /** Largest manifest accepted (bytes). Default 256 KiB (4096 pieces x 32 bytes + header). */
  maxManifestBytes?: number;
}

export class FetchHttpSource implements HttpSource {
  private readonly channel: string;
  private readonly base: string;
  private readonly fetchFn: FetchFn;
  private readonly timeoutMs: number;
  private readonly maxManifestBytes: number;
  /** Bytes received over HTTP (bodies only), for the page's figures. */
  bytesReceived = 0;
  requests = 0;
  failures = 0;

  constructor(opts: FetchHttpSourceOptions) {
    this.channel = opts.channel;
    this.base = (opts.baseUrl ?? '').replace(/\/+$/, '');
    this.fetchFn = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.maxManifestBytes = opts.maxManifestBytes ?? 256 * 1024;
  }

  async fetchManifest(ref: SegmentRef): Promise<Uint8Array> {
    const url = this.base + manifestPath(this.channel, ref);
    return this.exchange(url, {}, async (res) => {
      if (res.status !== 200) throw await this.fail(res, url, `manifest: HTTP ${res.status}`);
      const body = new Uint8Array(await res.arrayBuffer());
      this.bytesReceived += body.byteLength;
      if (body.byteLength === 0 || body.byteLength > this.maxManifestBytes) {
        throw new HttpError(`manifest: bad length ${body.byteLength}`, 0, url);
      }
      return body;
    });
  }

  async fetchRange(ref: SegmentRef, start: number, endExclusive: number): Promise<Uint8Array> {
    if (!Number.isInteger(start) || !Number.isInteger(endExclusive) || start < 0 || endExclusive <= start || endExclusive > MAX_SEGMENT_BYTES) {
      throw new RangeError(`bad range [${start}, ${endExclusive})`);
    }
    const url = this.base + segmentPath(this.channel, ref);
    const want = endExclusive - start;
    return this.exchange(url, { headers: { Range: `bytes=${start}-${endExclusive - 1}` } }, async (res) => {
      if (res.status === 206) {
        const header = res.headers.get('content-range');
        const cr = parseContentRange(header);
        if (header !== null && (!cr || cr.start !== start || cr.end !== endExclusive - 1)) {
          throw await this.fail(res, url, `segment: Content-Range ${header} for bytes ${start}-${endExclusive - 1}`, 0);
        }
        const body = new Uint8Array(await res.arrayBuffer());
        this.bytesReceived += body.byteLength;
        if (body.byteLength !== want) throw new HttpError(`segment: got ${body.byteLength} bytes, wanted ${want}`, 0, url);
        return body;
      }
      if (res.status === 200) {
        // The server ignored Range (allowed by RFC 9110): take our slice of the whole body.
        const body = new Uint8Array(await res.arrayBuffer());
        this.bytesReceived += body.byteLength;
        if (body.byteLength < endExclusive) {
          throw new HttpError(`segment: body of ${body.byteLength} bytes, wanted up to ${endExclusive}`, 0, url);
        }
        return body.slice(start, endExclusive);
      }
      throw await this.fail(res, url, `segment: HTTP ${res.status}`);
    });
  }

  /** The whole segment (HttpSource.fetchSegment: fetched alongside its manifest when already due). */
  async fetchSegment(ref: SegmentRef): Promise<Uint8Array> {
    const url = this.base + segmentPath(this.channel, ref);
    return this.exchange(url, {}, async (res) => {
      if (res.status !== 200) throw await this.fail(res, url, `segment: HTTP ${res.status}`);
      const body = new Uint8Array(await res.arrayBuffer());
      this.bytesReceived += body.byteLength;
      if (body.byteLength === 0 || body.byteLength > MAX_SEGMENT_BYTES) throw new HttpError(`segment: bad length ${body.byteLength}`, 0, url);
      return body;
    });
  }

  /** One request with a timeout that covers the headers and the body. */
  private async exchange<T>(url: string, init: RequestInit, handle: (res: Response) => Promise<T>): Promise<T> {
    this.requests++;
    const ctrl = typeof AbortController === 'function' ? new AbortController() : null;
    const timer = ctrl ? globalThis.setTimeout(() => ctrl.abort(), this.timeoutMs) : null;
    try {
      let res: Response;
      try {
        res = await this.fetchFn(url, { ...init, cache: 'no-store', signal: ctrl?.signal });
      } catch (err) {
        throw new HttpError(`network error: ${err instanceof Error ? err.message : String(err)}`, 0, url);
      }
      try {
        return await handle(res);
      } catch (err) {
        if (err instanceof HttpError) throw err;
        throw new HttpError(`reading body: ${err instanceof Error ? err.message : String(err)}`, 0, url);
      }
    } catch (err) {
      this.failures++;
      throw err;
    } finally {
      if (timer !== null) globalThis.clearTimeout(timer);
    }
  }

  private async fail(res: Response, url: string, message: string, status = res.status): Promise<HttpError> {
    await res.body?.cancel().catch(() => {});
    return new HttpError(message, status, url);
  }
}

/** Parses `bytes a-b/total` (total may be `*`); null if absent or malformed. */
export function parseContentRange(value: string | null): { start: number; end: number; total: number | null } | null {
  if (!value) return null;
  const m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(value);
  if (!m) return null;
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) return null;
  return { start, end, total: m[3] === '*' ? null : Number(m[3]) };
}
