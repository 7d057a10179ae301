/**
 * One process of viewers for bench/swarm.ts: werift P2P viewers (a Node peer with an emulated
 * upload cap, behind an hls.js-like player model) and HTTP-only viewers (the same player model
 * fetching whole segments over HTTP, like plain hls.js). Reads its spec as JSON in argv[2],
 * prints `RESULT <json>` when done. Every loop is bounded by the spec's duration.
 *
 * Player model (both modes, as hls.js with the watch page's settings): poll the media playlist
 * every second; start liveSyncDurationCount = 3 segments behind the edge (the segment starting
 * 3 target durations before the playlist's end); load init + fragments one at a time, in order,
 * at most maxBufferLength (12 s) ahead; playback starts when the first fragment is in; the
 * playhead advances in real time and stalls when it reaches the end of what is loaded (resumes
 * when the next fragment arrives). P2P fragments go through engine.loadSegment with the
 * loader's deadline (player/src/p2p-loader.ts computeDeadline).
 */
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { startNodePeer, type NodePeer } from '../peer/node/node-peer.js';
import { createWeriftTransport } from '../peer/transport/werift-transport.js';
import { NodeHttpSource } from '../peer/node/http-source.js';
import { computeDeadline } from '../player/src/p2p-loader.js';
import { INIT_SEQ } from '../peer/core/types.js';
import { mediaPlaylistPath, segmentPath } from '../peer/core/paths.js';

/** Pieces the HTTP fallback fetched, by the engine's state then (Engine.debugStats http*). */
export interface HttpCauses {
  alone: number;
  /** Whole segments with their manifest (nothing known of them at the deadline: start-up). */
  unknown: number;
  noParent: number;
  parentElsewhere: number;
  parentSlow: number;
}

export interface ViewerSpec {
  id: string;
  mode: 'p2p' | 'http';
  rendition: string;
  /** Emulated upload cap (kbit/s), P2P only. */
  capKbps: number;
  /** Join this many ms after the run's start. */
  joinAtMs: number;
}

export interface WorkerSpec {
  trackerUrl: string;
  originUrl: string;
  channel: string;
  publicKeyHex: string;
  segmentMs: number;
  /** The run lasts this long from its start (ms). */
  durationMs: number;
  viewers: ViewerSpec[];
  /** werift socket receive buffer of the P2P viewers (bytes, 0: kernel default); absent: the transport's default. */
  udpRecvBufferBytes?: number;
}

/** A viewer's engine counters (Engine.debugStats); bench/swarm.ts sums them per run. */
export interface EngineCounters {
  /** Pieces received twice (wasted upload somewhere). */
  duplicatePieces: number;
  /** Of the duplicates: pushed by a parent; held already from HTTP (the two overlap). */
  duplicatePushes: number;
  duplicatesOfHttp: number;
  /** Answers that arrived after we cancelled the request or it timed out (not duplicates), request timeouts. */
  latePieces: number;
  requestTimeouts: number;
  /** Pieces fetched over HTTP by the fallback's cause (debugStats http*). */
  httpCauses: HttpCauses;
  /** Parents lost, by why (debugStats parentLosses). */
  parentLosses: Record<string, number>;
  /** Pieces received by push. */
  pushedPieces: number;
  /** Neighbors closed for silence (no frame for ENGINE_LIMITS.silentNeighborMs), parent changes. */
  silentNeighbors: number;
  parentChanges: number;
}

export interface ViewerResult extends EngineCounters {
  id: string;
  mode: 'p2p' | 'http';
  rendition: string;
  capKbps: number;
  startupMs: number | null;
  playedMs: number;
  stalledMs: number;
  stalls: number;
  latencyMs: number | null;
  segments: number;
  failures: number;
  bytesFromPeers: number;
  bytesFromOriginPeer: number;
  bytesFromHttp: number;
  bytesUploaded: number;
  /** Fed by an upload link in its rendition at the end. */
  hasParent: boolean;
  /** From joining to the first open neighbor (ms); null if none opened. */
  firstNeighborMs: number | null;
  /** HTTP bytes of the first LIVE_SYNC_SEGMENTS media segments loaded: the joiner's catch-up to the edge. */
  startupHttpBytes: number;
}

const MAX_BUFFER_MS = 12_000;
const LIVE_SYNC_SEGMENTS = 3;

function parsePlaylist(text: string): { first: number; count: number } | null {
  const m = /#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text);
  if (!m) return null;
  const count = (text.match(/^#EXTINF/gm) ?? []).length;
  return { first: Number(m[1]), count };
}

class Player {
  private readonly t0 = performance.now();
  private joinAt = 0;
  private playStart: number | null = null;
  /** Media position (ms) of the playhead, and the end of what is loaded contiguously. */
  private pos = 0;
  private bufferedEnd = 0;
  private stalled = false;
  private stalledMs = 0;
  private stalls = 0;
  private playedMs = 0;
  private lastTick = 0;
  private nextSeq: number | null = null;
  private newest = -1;
  /** min over observations of (arrival time - media end time of that segment): the live edge's offset. */
  private edgeOffset = Infinity;
  private readonly latency: number[] = [];
  private segments = 0;
  private failures = 0;
  private httpBytes = 0;
  private firstNeighborAt: number | null = null;
  private startupHttpBytes = 0;
  private done = false;
  private peer: NodePeer | null = null;
  private http: NodeHttpSource;

  constructor(private readonly spec: WorkerSpec, private readonly v: ViewerSpec, private readonly runStart: number) {
    this.http = new NodeHttpSource({ baseUrl: spec.originUrl, channel: spec.channel });
  }

  private now(): number {
    return performance.now();
  }

  async run(): Promise<ViewerResult> {
    const end = this.runStart + this.spec.durationMs;
    await sleep(Math.max(0, this.runStart + this.v.joinAtMs - this.now()));
    this.joinAt = this.now();
    if (this.v.mode === 'p2p') {
      this.peer = await startNodePeer({
        trackerUrl: this.spec.trackerUrl,
        channel: this.spec.channel,
        kind: 'browser',
        publicKey: Buffer.from(this.spec.publicKeyHex, 'hex'),
        http: this.http,
        maxNeighbors: 8,
        log: pino({ level: process.env.STARLING_BENCH_LOG ?? 'error' }),
        peerId: this.v.id,
        engine: { uploadLimitKbps: this.v.capKbps },
        ...(this.spec.udpRecvBufferBytes !== undefined ? { transport: createWeriftTransport({ udpRecvBufferBytes: this.spec.udpRecvBufferBytes }) } : {}),
      });
      if (this.peer.engine.neighborStats().length > 0) this.firstNeighborAt = this.now();
      else {
        const off = this.peer.engine.on('neighbor-open', () => { this.firstNeighborAt ??= this.now(); off(); });
      }
    }
    const ticker = setInterval(() => this.tick(), 50);
    const poller = (async () => {
      while (!this.done && this.now() < end) {
        await this.poll().catch(() => undefined);
        await sleep(1000);
      }
    })();
    const loader = (async () => {
      // wait for the start position
      while (this.nextSeq === null && this.now() < end) await sleep(50);
      if (this.nextSeq === null) return;
      await this.load(INIT_SEQ).catch(() => { this.failures++; });
      while (this.now() < end) {
        const seq: number = this.nextSeq;
        if (seq > this.newest || this.bufferedEnd - this.pos > MAX_BUFFER_MS) { await sleep(50); continue; }
        try {
          await this.load(seq);
          this.segments++;
          this.bufferedEnd = (seq + 1) * this.spec.segmentMs;
          if (this.playStart === null) {
            this.playStart = this.now();
            this.pos = seq * this.spec.segmentMs;
            this.lastTick = this.playStart;
          }
          this.nextSeq = seq + 1;
        } catch {
          this.failures++;
          await sleep(200); // hls.js retries the fragment
        }
      }
    })();
    // "fed at the end" is taken 1 s before the end, when every viewer still runs: viewers stop one
    // after the other once their last load settles, and their children lose a parent then
    await sleep(Math.max(0, end - 1000 - this.now()));
    const hasParent = this.peer ? this.peer.engine.links().parents[this.v.rendition] !== undefined : false;
    await sleep(Math.max(0, end - this.now()));
    this.done = true;
    clearInterval(ticker);
    await Promise.race([Promise.allSettled([poller, loader]), sleep(5000)]);
    const s = this.peer?.engine.stats();
    const d = this.peer?.engine.debugStats();
    const result: ViewerResult = {
      id: this.v.id,
      mode: this.v.mode,
      rendition: this.v.rendition,
      capKbps: this.v.capKbps,
      startupMs: this.playStart === null ? null : Math.round(this.playStart - this.joinAt),
      playedMs: Math.round(this.playedMs),
      stalledMs: Math.round(this.stalledMs),
      stalls: this.stalls,
      latencyMs: this.latency.length ? Math.round(this.latency.reduce((a, b) => a + b, 0) / this.latency.length) : null,
      segments: this.segments,
      failures: this.failures,
      bytesFromPeers: s?.bytesFromPeers ?? 0,
      bytesFromOriginPeer: s?.bytesFromOriginPeer ?? 0,
      bytesFromHttp: s ? s.bytesFromHttp : this.httpBytes,
      bytesUploaded: s?.bytesUploaded ?? 0,
      duplicatePieces: d?.duplicatePieces ?? 0,
      duplicatePushes: d?.duplicatePushes ?? 0,
      duplicatesOfHttp: d?.duplicatesOfHttp ?? 0,
      latePieces: d?.latePieces ?? 0,
      requestTimeouts: d?.requestTimeouts ?? 0,
      parentLosses: d?.parentLosses ?? {},
      httpCauses: {
        alone: d?.httpAlone ?? 0, unknown: d?.httpUnknown ?? 0, noParent: d?.httpNoParent ?? 0,
        parentElsewhere: d?.httpParentElsewhere ?? 0, parentSlow: d?.httpParentSlow ?? 0,
      },
      pushedPieces: d?.pushedReceived ?? 0,
      silentNeighbors: d?.silentNeighbors ?? 0,
      parentChanges: d?.parentChanges ?? 0,
      hasParent,
      firstNeighborMs: this.firstNeighborAt === null ? null : Math.round(this.firstNeighborAt - this.joinAt),
      startupHttpBytes: this.startupHttpBytes,
    };
    await this.peer?.stop();
    return result;
  }

  private async poll(): Promise<void> {
    const res = await fetch(this.spec.originUrl.replace(/\/+$/, '') + mediaPlaylistPath(this.spec.channel, this.v.rendition), { cache: 'no-store' });
    if (!res.ok) return;
    const p = parsePlaylist(await res.text());
    if (!p || p.count === 0) return;
    const last = p.first + p.count - 1;
    const t = this.now();
    if (last > this.newest) {
      this.newest = last;
      this.edgeOffset = Math.min(this.edgeOffset, t - (last + 1) * this.spec.segmentMs);
    }
    if (this.nextSeq === null && p.count >= LIVE_SYNC_SEGMENTS) this.nextSeq = Math.max(p.first, last - (LIVE_SYNC_SEGMENTS - 1));
  }

  private async load(seq: number): Promise<void> {
    const ref = { rendition: this.v.rendition, seq };
    if (this.peer) {
      if (seq !== INIT_SEQ) this.peer.engine.setPlaybackPosition(ref);
      const ahead = this.playStart === null ? 0 : Math.max(0, (this.bufferedEnd - this.pos) / 1000);
      const deadline = computeDeadline(this.now(), ahead, this.spec.segmentMs / 1000);
      const r = await this.peer.engine.loadSegment(ref, { deadline });
      if (seq !== INIT_SEQ && this.segments < LIVE_SYNC_SEGMENTS) this.startupHttpBytes += r.bytesBySource.http;
      return;
    }
    const path = segmentPath(this.spec.channel, ref);
    const res = await fetch(this.spec.originUrl.replace(/\/+$/, '') + path);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    this.httpBytes += (await res.arrayBuffer()).byteLength;
  }

  private tick(): void {
    if (this.playStart === null) return;
    const t = this.now();
    const dt = t - this.lastTick;
    this.lastTick = t;
    if (this.stalled) {
      this.stalledMs += dt;
      if (this.bufferedEnd > this.pos) this.stalled = false;
    } else {
      const step = Math.min(dt, this.bufferedEnd - this.pos);
      this.pos += step;
      this.playedMs += step;
      if (this.pos >= this.bufferedEnd) {
        this.stalled = true;
        this.stalls++;
        this.stalledMs += dt - step;
      }
    }
    if (Number.isFinite(this.edgeOffset) && Math.round(t - this.t0) % 1000 < 50) {
      this.latency.push(t - this.edgeOffset - this.pos);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]) as WorkerSpec;
  const runStart = performance.now();
  const debug = process.env.STARLING_BENCH_DEBUG === '1';
  const results = await Promise.all(spec.viewers.map((v) => new Player(spec, v, runStart).run().then((r) => {
    if (debug) console.error(`viewer ${v.id} done: ${JSON.stringify(r)}`);
    return r;
  }, (err) => {
    console.error(`viewer ${v.id} failed: ${String(err)}`);
    return null;
  })));
  process.stdout.write(`RESULT ${JSON.stringify(results.filter((r) => r !== null))}\n`);
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
