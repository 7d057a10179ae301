/**
 * HttpSource (the engine's HTTP fallback) for Node peers: manifests and byte ranges of segments
 * from the origin, at the paths of peer/core/paths.ts. (Browsers use player/src/http-source.ts.)
 *
 * Connections: node:http(s) with this source's own keep-alive Agent. A request that times out
 * is destroyed together with its connection, and every pooled keep-alive connection is dropped
 * with it (a fresh Agent serves the next requests): a timeout on a connection that used to work
 * usually means the network moved (a new NAT mapping or address), and every connection opened
 * before is dead the same way, silently: packets on it vanish, nothing resets it. With Node's
 * global fetch the pool is out of reach, so each dead pooled connection would cost one more
 * timeout (issue 8: a peer whose gateway was renumbered kept failing its fallback fetches).
 * Requests still running on the old Agent finish (or time out) on their own; its sockets are
 * closed as they come free.
 *
 * An injected `fetch` (tests) replaces all this with fetch() + AbortSignal.timeout.
 */
import http from 'node:http';
import https from 'node:https';
import type { HttpSource, SegmentRef } from '../core/types.js';
import { manifestPath, segmentPath } from '../core/paths.js';
import { MAX_PIECES, MAX_SEGMENT_BYTES } from '../core/manifest.js';

/** Manifest upper bound: header + MAX_PIECES hashes + signature, with room to spare. */
const MAX_MANIFEST_BYTES = 1024 + MAX_PIECES * 32 + 64;

export interface NodeHttpSourceOptions {
  /** Origin base URL, e.g. http://127.0.0.1:8080 (a path prefix is kept). */
  baseUrl: string;
  channel: string;
  /** Per-request timeout (whole request, body included). Default 10 s. */
  timeoutMs?: number;
  /** Injected fetch (tests): used instead of node:http; no connection management then. */
  fetch?: typeof fetch;
}

export class HttpSourceError extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
  }
}

interface RawResponse {
  status: number;
  body: Uint8Array;
}

/** Body size limit by status (0: the body is not wanted, skip it). */
type MaxFor = (status: number) => number;

const EMPTY = new Uint8Array(0);

export class NodeHttpSource implements HttpSource {
  private readonly base: string;
  private readonly channel: string;
  private readonly timeoutMs: number;
  private readonly fetchFn: typeof fetch | null;
  private readonly isHttps: boolean;
  private agent: http.Agent;
  private closed = false;
  /**
   * Counters: requests, bytes, failures; timeouts; connectionResets = how often the pooled
   * connections were dropped after a timeout.
   */
  readonly counters = { requests: 0, bytes: 0, failures: 0, timeouts: 0, connectionResets: 0 };

  constructor(opts: NodeHttpSourceOptions) {
    const u = new URL(opts.baseUrl);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError('baseUrl must be http(s)');
    this.base = u.href.replace(/\/+$/, '');
    this.isHttps = u.protocol === 'https:';
    this.channel = opts.channel;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    if (!Number.isFinite(this.timeoutMs) || this.timeoutMs <= 0) throw new TypeError('timeoutMs must be > 0');
    if (opts.fetch !== undefined && typeof opts.fetch !== 'function') throw new TypeError('fetch must be a function');
    this.fetchFn = opts.fetch ?? null;
    this.agent = this.newAgent();
  }

  async fetchManifest(ref: SegmentRef): Promise<Uint8Array> {
    const res = await this.get(manifestPath(this.channel, ref), {}, (s) => (s === 200 ? MAX_MANIFEST_BYTES : 0));
    if (res.status !== 200) throw this.fail(`manifest: HTTP ${res.status}`, res.status);
    return res.body;
  }

  async fetchRange(ref: SegmentRef, start: number, endExclusive: number): Promise<Uint8Array> {
    if (!Number.isInteger(start) || !Number.isInteger(endExclusive) || start < 0 || endExclusive < start || endExclusive > MAX_SEGMENT_BYTES) {
      throw new RangeError(`bad range ${start}-${endExclusive}`);
    }
    const len = endExclusive - start;
    if (len === 0) return new Uint8Array(0);
    // 200: the server ignored the Range, the whole segment comes.
    const res = await this.get(segmentPath(this.channel, ref), { Range: `bytes=${start}-${endExclusive - 1}` }, (s) =>
      s === 206 ? len : s === 200 ? MAX_SEGMENT_BYTES : 0);
    if (res.status === 206) {
      if (res.body.length !== len) throw this.fail(`range: got ${res.body.length} bytes, wanted ${len}`, 206);
      return res.body;
    }
    if (res.status === 200) {
      if (res.body.length < endExclusive) throw this.fail(`range: segment has ${res.body.length} bytes, wanted up to ${endExclusive}`, 200);
      return res.body.slice(start, endExclusive);
    }
    throw this.fail(`range: HTTP ${res.status}`, res.status);
  }

  /** The whole segment (HttpSource.fetchSegment: fetched alongside its manifest when already due). */
  async fetchSegment(ref: SegmentRef): Promise<Uint8Array> {
    const res = await this.get(segmentPath(this.channel, ref), {}, (s) => (s === 200 ? MAX_SEGMENT_BYTES : 0));
    if (res.status !== 200) throw this.fail(`segment: HTTP ${res.status}`, res.status);
    if (res.body.length === 0) throw this.fail('segment: empty body', 200);
    return res.body;
  }

  /** Drops every connection; later requests fail. */
  close(): void {
    this.closed = true;
    this.agent.destroy();
  }

  private fail(msg: string, status?: number): HttpSourceError {
    this.counters.failures++;
    return new HttpSourceError(msg, status);
  }

  private async get(path: string, headers: Record<string, string>, maxFor: MaxFor): Promise<RawResponse> {
    if (this.closed) throw new HttpSourceError('closed');
    this.counters.requests++;
    const res = this.fetchFn ? await this.viaFetch(this.fetchFn, path, headers, maxFor) : await this.viaHttp(path, headers, maxFor);
    this.counters.bytes += res.body.length;
    return res;
  }

  private newAgent(): http.Agent {
    const opts: http.AgentOptions = { keepAlive: true, keepAliveMsecs: 1000 };
    return this.isHttps ? new https.Agent(opts) : new http.Agent(opts);
  }

  /** After a timeout: no pooled connection is trusted any more (see the file comment). */
  private dropConnections(stale: http.Agent): void {
    if (stale !== this.agent || this.closed) return; // already done for this Agent
    this.counters.connectionResets++;
    this.agent = this.newAgent();
    for (const list of Object.values(stale.freeSockets)) for (const s of list ?? []) s.destroy();
    // Requests still running on it keep their sockets until they end; then close them too.
    stale.on('free', (socket: { destroy(): void }) => socket.destroy());
  }

  private viaHttp(path: string, headers: Record<string, string>, maxFor: MaxFor): Promise<RawResponse> {
    const agent = this.agent;
    const mod = this.isHttps ? https : http;
    return new Promise<RawResponse>((resolve, reject) => {
      let done = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const finish = (err: HttpSourceError | null, res?: RawResponse) => {
        if (done) return;
        done = true;
        if (timer !== undefined) clearTimeout(timer);
        if (err) {
          this.counters.failures++;
          reject(err);
        } else resolve(res!);
      };
      let req: http.ClientRequest;
      try {
        req = mod.request(this.base + path, { method: 'GET', headers, agent });
      } catch (err) {
        finish(new HttpSourceError(`fetch ${path} failed: ${err instanceof Error ? err.message : String(err)}`));
        return;
      }
      timer = setTimeout(() => {
        if (done) return;
        this.counters.timeouts++;
        this.dropConnections(agent);
        finish(new HttpSourceError(`fetch ${path} failed: timed out after ${this.timeoutMs} ms`));
        req.destroy(); // and its connection
      }, this.timeoutMs);
      req.on('error', (err) => finish(new HttpSourceError(`fetch ${path} failed: ${err.message}`)));
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        const max = maxFor(status);
        if (max === 0) {
          res.resume(); // not wanted: drain it so the connection can be reused
          finish(null, { status, body: EMPTY });
          return;
        }
        const declared = Number(res.headers['content-length'] ?? NaN);
        if (Number.isFinite(declared) && declared > max) {
          req.destroy();
          finish(new HttpSourceError(`body too large: ${declared} > ${max}`, status));
          return;
        }
        const chunks: Buffer[] = [];
        let total = 0;
        res.on('data', (c: Buffer) => {
          if (done) return;
          total += c.length;
          if (total > max) {
            req.destroy();
            finish(new HttpSourceError(`body too large: > ${max}`, status));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => {
          if (!res.complete) {
            finish(new HttpSourceError(`read failed: connection closed after ${total} bytes`, status));
            return;
          }
          const body = new Uint8Array(total);
          let off = 0;
          for (const c of chunks) {
            body.set(c, off);
            off += c.length;
          }
          finish(null, { status, body });
        });
        res.on('error', (err) => finish(new HttpSourceError(`read failed: ${err.message}`, status)));
        res.on('aborted', () => finish(new HttpSourceError('read failed: aborted', status)));
      });
      req.end();
    });
  }

  private async viaFetch(f: typeof fetch, path: string, headers: Record<string, string>, maxFor: MaxFor): Promise<RawResponse> {
    let res: Response;
    try {
      res = await f(this.base + path, { headers, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      throw this.fail(`fetch ${path} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    const max = maxFor(res.status);
    const cancel = async () => {
      try {
        await res.body?.cancel();
      } catch {
        /* ignore */
      }
    };
    if (max === 0) {
      await cancel();
      return { status: res.status, body: EMPTY };
    }
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (Number.isFinite(declared) && declared > max) {
      await cancel();
      throw this.fail(`body too large: ${declared} > ${max}`, res.status);
    }
    if (!res.body) return { status: res.status, body: EMPTY };
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
          throw this.fail(`body too large: > ${max}`, res.status);
        }
        chunks.push(value);
      }
    } catch (err) {
      if (err instanceof HttpSourceError) throw err;
      throw this.fail(`read failed: ${err instanceof Error ? err.message : String(err)}`, res.status);
    }
    const out = new Uint8Array(total);
    let off = 0;
    for (const c of chunks) {
      out.set(c, off);
      off += c.length;
    }
    return { status: res.status, body: out };
  }
}
