/**
 * RTMP ingest for encoders without WHIP (OBS before 30, hardware encoders, ffmpeg): a small,
 * publish-only RTMP server. It authenticates at `publish` and hands the publisher's audio/video
 * to ffmpeg as an FLV byte stream on a loopback TCP port, into the channel's ladder.
 *
 * URLs (either form):
 *   rtmp://HOST[:1935]/live/<channel>?key=<stream key>     (app "live", stream "<channel>?key=…")
 *   rtmp://HOST[:1935]/live/<channel>  + stream key "<key>" (app "live/<channel>", stream "<key>";
 *                                                             OBS: Server + Stream Key fields)
 * A wrong or missing key, or an unknown channel, gets onStatus NetStream.Publish.BadName and the
 * connection is closed: nothing starts. Keys are never logged.
 *
 * Supported: simple handshake (what OBS, librtmp and ffmpeg accept from a server), chunk streams
 * with any chunk size up to 1 MiB, AMF0 commands (AMF3 command envelopes too), connect /
 * releaseStream / FCPublish / createStream / publish / FCUnpublish / deleteStream. Not supported:
 * playing (this is ingest only), RTMPS, encrypted handshakes.
 *
 * Limits (hostile input): 32 connections; handshake + publish within 15 s; messages up to 4 MiB;
 * at most 16 MiB queued towards ffmpeg (else the publisher is disconnected); AMF nesting depth 8.
 *
 * End of a broadcast: FCUnpublish/deleteStream ends it (EXT-X-ENDLIST); a connection that just
 * drops leaves the channel waiting for the publisher to come back (grace period).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from '../peer/core/types.js';
import { checkSecret } from './auth.js';
import type { Channel, Publication } from './channel.js';
import type { IngestMetrics } from './ingest-metrics.js';

export interface RtmpOptions {
  host: string;
  /** 0: any free port. */
  port: number;
  channel(name: string): Channel | null;
  metrics: IngestMetrics;
  log: Logger;
  maxConnections?: number;
}

export interface RtmpServer {
  readonly port: number;
  connections(): number;
  close(): Promise<void>;
}

const MAX_MESSAGE = 4 * 1024 * 1024;
const MAX_CHUNK_SIZE = 1024 * 1024;
const MAX_QUEUED = 16 * 1024 * 1024;
const SETUP_TIMEOUT_MS = 15_000;
const OUT_CHUNK_SIZE = 4096;

// ---- AMF0 ---------------------------------------------------------------------------------------
type Amf = number | boolean | string | null | undefined | Amf[] | { [k: string]: Amf };

class AmfReader {
  pos = 0;
  constructor(private readonly b: Buffer) {}
  get done(): boolean {
    return this.pos >= this.b.length;
  }
  private need(n: number): void {
    if (this.pos + n > this.b.length) throw new Error('AMF: truncated');
  }
  private str16(): string {
    this.need(2);
    const n = this.b.readUInt16BE(this.pos);
    this.pos += 2;
    this.need(n);
    const s = this.b.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
  private props(depth: number): { [k: string]: Amf } {
    const o: { [k: string]: Amf } = Object.create(null);
    for (let i = 0; i < 1024; i++) {
      const k = this.str16();
      this.need(1);
      if (k === '' && this.b[this.pos] === 9) {
        this.pos++;
        return o;
      }
      o[k] = this.value(depth + 1);
    }
    throw new Error('AMF: too many properties');
  }
  value(depth = 0): Amf {
    if (depth > 8) throw new Error('AMF: nested too deeply');
    this.need(1);
    const t = this.b[this.pos++];
    switch (t) {
      case 0: { this.need(8); const v = this.b.readDoubleBE(this.pos); this.pos += 8; return v; }
      case 1: { this.need(1); return this.b[this.pos++] !== 0; }
      case 2: return this.str16();
      case 3: return this.props(depth);
      case 5: return null;
      case 6: return undefined;
      case 8: { this.need(4); this.pos += 4; return this.props(depth); }
      case 10: {
        this.need(4);
        const n = this.b.readUInt32BE(this.pos);
        this.pos += 4;
        if (n > 1024) throw new Error('AMF: array too long');
        const a: Amf[] = [];
        for (let i = 0; i < n; i++) a.push(this.value(depth + 1));
        return a;
      }
      case 11: { this.need(10); this.pos += 10; return null; }
      case 12: {
        this.need(4);
        const n = this.b.readUInt32BE(this.pos);
        this.pos += 4;
        this.need(n);
        const s = this.b.toString('utf8', this.pos, this.pos + n);
        this.pos += n;
        return s;
      }
      default: throw new Error(`AMF: unsupported type ${t}`);
    }
  }
}

function amfEncode(values: Amf[]): Buffer {
  const parts: Buffer[] = [];
  const str16 = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    const h = Buffer.alloc(2);
    h.writeUInt16BE(b.length);
    parts.push(h, b);
  };
  const enc = (v: Amf) => {
    if (typeof v === 'number') {
      const b = Buffer.alloc(9);
      b[0] = 0;
      b.writeDoubleBE(v, 1);
      parts.push(b);
    } else if (typeof v === 'boolean') parts.push(Buffer.from([1, v ? 1 : 0]));
    else if (typeof v === 'string') {
      parts.push(Buffer.from([2]));
      str16(v);
    } else if (v === null) parts.push(Buffer.from([5]));
    else if (v === undefined) parts.push(Buffer.from([6]));
    else if (Array.isArray(v)) throw new Error('AMF: arrays are not encoded');
    else {
      parts.push(Buffer.from([3]));
      for (const [k, x] of Object.entries(v)) {
        str16(k);
        enc(x);
      }
      parts.push(Buffer.from([0, 0, 9]));
    }
  };
  for (const v of values) enc(v);
  return Buffer.concat(parts);
}

// ---- stream names ---------------------------------------------------------------------------
/** Channel and key of a publish: app "live" + "<channel>?key=K", or app "live/<channel>" + "K". */
export function parsePublishTarget(app: string, streamName: string): { channel: string; key: string | null } | null {
  const appPath = app.split('?')[0].replace(/^\/+|\/+$/g, '');
  const [name, query = ''] = streamName.split('?', 2);
  const queryKey = new URLSearchParams(query).get('key');
  const appKey = new URLSearchParams(app.split('?')[1] ?? '').get('key');
  const parts = appPath.split('/');
  if (parts.length === 1 && parts[0] === 'live') {
    return { channel: name, key: queryKey ?? appKey };
  }
  if (parts.length === 2 && parts[0] === 'live') {
    return { channel: parts[1], key: queryKey ?? appKey ?? (name || null) };
  }
  return null;
}

// ---- server ---------------------------------------------------------------------------------
export async function startRtmpServer(o: RtmpOptions): Promise<RtmpServer> {
  const sockets = new Set<Socket>();
  const max = o.maxConnections ?? 32;
  const server: Server = createServer((sock) => {
    if (sockets.size >= max) {
      o.metrics.rejected.inc({ protocol: 'rtmp', reason: 'capacity' });
      sock.destroy();
      return;
    }
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    new RtmpConnection(sock, o).start();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  o.log.info({ port, host: o.host }, 'RTMP ingest listening');
  return {
    port,
    connections: () => sockets.size,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

interface ChunkState {
  timestamp: number;
  delta: number;
  length: number;
  type: number;
  streamId: number;
  extended: boolean;
  parts: Buffer[];
  received: number;
}

class RtmpConnection {
  private buf: Buffer = Buffer.alloc(0);
  private phase: 'c0c1' | 'c2' | 'chunks' = 'c0c1';
  private inChunkSize = 128;
  private readonly chunks = new Map<number, ChunkState>();
  private app = '';
  private closed = false;
  private setupTimer: NodeJS.Timeout;
  private channel: Channel | null = null;
  private publication: Publication | null = null;
  private endedByPublisher = false;
  // FLV towards ffmpeg
  private feed: Server | null = null;
  private sink: Socket | null = null;
  private queue: Buffer[] = [];
  private queued = 0;
  private sawAudio = false;
  private sawVideo = false;
  private publishing = false;
  private ffmpegStarted = false;
  private startTimer: NodeJS.Timeout | null = null;

  constructor(private readonly sock: Socket, private readonly o: RtmpOptions) {
    this.setupTimer = setTimeout(() => this.fail('setup timeout'), SETUP_TIMEOUT_MS);
  }

  start(): void {
    this.sock.setNoDelay(true);
    this.sock.on('data', (d) => {
      try {
        this.onData(d);
      } catch (err) {
        this.fail(`protocol error: ${String((err as Error).message ?? err).slice(0, 100)}`);
      }
    });
    this.sock.on('error', () => undefined);
    this.sock.on('close', () => this.onClose());
  }

  private fail(why: string): void {
    if (this.closed) return;
    this.o.log.warn({ why, channel: this.channel?.name }, 'RTMP: connection closed');
    this.sock.destroy();
  }

  private onData(d: Buffer): void {
    if (this.closed) return;
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    if (this.buf.length > MAX_MESSAGE + MAX_CHUNK_SIZE) throw new Error('input buffer overflow');
    for (;;) {
      if (this.phase === 'c0c1') {
        if (this.buf.length < 1537) return;
        if (this.buf[0] !== 3) throw new Error('unsupported RTMP version');
        const c1 = this.buf.subarray(1, 1537);
        const s1 = Buffer.concat([Buffer.alloc(8), randomBytes(1528)]);
        this.sock.write(Buffer.concat([Buffer.from([3]), s1, c1]));
        this.buf = this.buf.subarray(1537);
        this.phase = 'c2';
      } else if (this.phase === 'c2') {
        if (this.buf.length < 1536) return;
        this.buf = this.buf.subarray(1536);
        this.phase = 'chunks';
      } else if (!this.readChunk()) return;
    }
  }

  /** Parses one chunk if complete; false when more bytes are needed. */
  private readChunk(): boolean {
    const b = this.buf;
    if (b.length < 1) return false;
    const fmt = b[0] >> 6;
    let csid = b[0] & 0x3f;
    let p = 1;
    if (csid === 0) {
      if (b.length < 2) return false;
      csid = 64 + b[1];
      p = 2;
    } else if (csid === 1) {
      if (b.length < 3) return false;
      csid = 64 + b[1] + b[2] * 256;
      p = 3;
    }
    const hlen = [11, 7, 3, 0][fmt];
    if (b.length < p + hlen) return false;
    let st = this.chunks.get(csid);
    if (!st) {
      if (fmt !== 0) throw new Error('chunk stream starts without a full header');
      if (this.chunks.size >= 64) throw new Error('too many chunk streams');
      st = { timestamp: 0, delta: 0, length: 0, type: 0, streamId: 0, extended: false, parts: [], received: 0 };
      this.chunks.set(csid, st);
    }
    let ts = 0;
    if (fmt <= 2) ts = b.readUIntBE(p, 3);
    if (fmt <= 1) {
      st.length = b.readUIntBE(p + 3, 3);
      st.type = b[p + 6];
      if (st.length > MAX_MESSAGE) throw new Error('message too large');
    }
    if (fmt === 0) st.streamId = b.readUInt32LE(p + 7);
    p += hlen;
    const extended = fmt <= 2 ? ts === 0xffffff : st.extended;
    if (extended) {
      if (b.length < p + 4) return false;
      ts = b.readUInt32BE(p);
      p += 4;
    }
    const want = Math.min(this.inChunkSize, st.length - st.received);
    if (b.length < p + want) return false;
    // The whole chunk is here: commit the header.
    if (fmt <= 2) st.extended = extended;
    if (st.received === 0) {
      if (fmt === 0) {
        st.timestamp = ts;
        st.delta = 0;
      } else if (fmt === 1 || fmt === 2) {
        st.delta = ts;
        st.timestamp += ts;
      } else {
        st.timestamp += st.delta;
      }
    }
    st.parts.push(b.subarray(p, p + want));
    st.received += want;
    this.buf = b.subarray(p + want);
    if (st.received >= st.length) {
      const msg = st.parts.length === 1 ? st.parts[0] : Buffer.concat(st.parts);
      st.parts = [];
      st.received = 0;
      this.onMessage(st.type, st.timestamp, st.streamId, Buffer.from(msg));
    }
    return true;
  }

  private onMessage(type: number, timestamp: number, _streamId: number, body: Buffer): void {
    switch (type) {
      case 1: {
        if (body.length < 4) throw new Error('bad chunk size');
        const n = body.readUInt32BE(0) & 0x7fffffff;
        if (n < 1 || n > MAX_CHUNK_SIZE) throw new Error('chunk size out of range');
        this.inChunkSize = n;
        return;
      }
      case 20: return this.onCommand(new AmfReader(body));
      case 17: return this.onCommand(new AmfReader(body.subarray(1)));
      case 18: {
        if (!this.publishing) return;
        // @setDataFrame("onMetaData", {...}) → an FLV script tag "onMetaData".
        let data = body;
        const r = new AmfReader(body);
        try {
          if (r.value() === '@setDataFrame') data = body.subarray(r.pos);
        } catch {
          return;
        }
        this.tag(18, timestamp, data);
        return;
      }
      case 8:
      case 9:
        if (!this.publishing || body.length === 0) return;
        if (type === 8) this.sawAudio = true;
        else this.sawVideo = true;
        this.tag(type, timestamp, body);
        return;
      default:
        return; // acks, window sizes, user control: nothing to do for a publish-only server
    }
  }

  private onCommand(r: AmfReader): void {
    const name = r.value();
    const txn = r.done ? 0 : r.value();
    const args: Amf[] = [];
    while (!r.done && args.length < 8) args.push(r.value());
    if (typeof name !== 'string') return;
    const t = typeof txn === 'number' ? txn : 0;
    switch (name) {
      case 'connect': {
        const cmd = args[0] as { [k: string]: Amf } | undefined;
        this.app = typeof cmd?.app === 'string' ? cmd.app.slice(0, 256) : '';
        this.control(5, 2_500_000);
        this.sendMessage(2, 6, 0, Buffer.from([0x00, 0x26, 0x25, 0xa0, 2]));
        this.control(1, OUT_CHUNK_SIZE);
        this.command(['_result', t, { fmsVer: 'FMS/3,5,7,7009', capabilities: 31 }, {
          level: 'status', code: 'NetConnection.Connect.Success', description: 'Connection succeeded.', objectEncoding: 0,
        }]);
        return;
      }
      case 'releaseStream':
      case 'FCPublish':
        this.command(['_result', t, null, undefined]);
        return;
      case 'createStream':
        this.command(['_result', t, null, 1]);
        return;
      case 'publish':
        void this.onPublish(typeof args[1] === 'string' ? args[1].slice(0, 512) : '');
        return;
      case 'FCUnpublish':
      case 'deleteStream':
      case 'closeStream':
        if (this.publishing) {
          this.endedByPublisher = true;
          this.finish();
        }
        return;
      default:
        return;
    }
  }

  private async onPublish(streamName: string): Promise<void> {
    if (this.publishing || this.channel) return;
    const target = parsePublishTarget(this.app, streamName);
    const ch = target ? this.o.channel(target.channel) : null;
    const refuse = (reason: string, description: string) => {
      this.o.metrics.rejected.inc({ protocol: 'rtmp', reason });
      this.o.log.warn({ channel: target?.channel.slice(0, 40), reason }, 'RTMP: publish refused');
      this.status('error', 'NetStream.Publish.BadName', description);
      setTimeout(() => this.sock.destroy(), 200);
    };
    if (!target || !ch) return refuse('channel', 'unknown channel (rtmp://HOST/live/<channel>?key=<stream key>)');
    const auth = checkSecret(target.key, ch.streamKey());
    if (auth !== 'ok') return refuse(`auth-${auth}`, auth === 'disabled' ? 'this channel takes no publishes' : auth === 'missing' ? 'stream key required' : 'wrong stream key');
    clearTimeout(this.setupTimer);
    this.channel = ch;
    this.publishing = true;
    this.o.metrics.sessions.inc({ protocol: 'rtmp' });
    this.o.log.info({ channel: ch.name }, 'RTMP: publishing');
    this.status('status', 'NetStream.Publish.Start', `${ch.name} is now published.`);
    // Start ffmpeg once we know whether there is audio: both kinds seen, or 1.5 s of video only.
    this.startTimer = setTimeout(() => void this.startFfmpeg(), 1500);
  }

  private tag(type: number, timestamp: number, data: Buffer): void {
    const h = Buffer.alloc(11);
    h[0] = type;
    h.writeUIntBE(data.length, 1, 3);
    h.writeUIntBE(timestamp & 0xffffff, 4, 3);
    h[7] = (timestamp >>> 24) & 0xff;
    const tail = Buffer.alloc(4);
    tail.writeUInt32BE(11 + data.length);
    this.push(Buffer.concat([h, data, tail]));
    if (!this.ffmpegStarted && this.sawAudio && this.sawVideo) void this.startFfmpeg();
  }

  private push(b: Buffer): void {
    if (this.sink) {
      if (this.sink.writableLength > MAX_QUEUED) return this.fail('ffmpeg is not keeping up');
      this.sink.write(b);
      return;
    }
    this.queued += b.length;
    if (this.queued > MAX_QUEUED) return this.fail('too much data before the encoder started');
    this.queue.push(b);
  }

  private async startFfmpeg(): Promise<void> {
    if (this.ffmpegStarted || this.closed || !this.channel) return;
    this.ffmpegStarted = true;
    if (this.startTimer) clearTimeout(this.startTimer);
    // ffmpeg connects to this one-shot loopback server and reads the FLV stream.
    const feed = createServer((s) => {
      if (this.sink || this.closed) {
        s.destroy();
        return;
      }
      this.sink = s;
      s.on('error', () => undefined);
      s.on('close', () => {
        if (!this.closed && this.sink === s) this.fail('the encoder closed its input');
      });
      const flags = (this.sawAudio ? 4 : 0) | 1;
      s.write(Buffer.from([0x46, 0x4c, 0x56, 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]));
      for (const q of this.queue) s.write(q);
      this.queue = [];
      this.queued = 0;
      feed.close();
    });
    this.feed = feed;
    await new Promise<void>((r) => feed.listen(0, '127.0.0.1', () => r()));
    const port = (feed.address() as AddressInfo).port;
    try {
      this.publication = await this.channel.publish({
        kind: 'rtmp',
        source: { type: 'flv', url: `tcp://127.0.0.1:${port}`, hasAudio: this.sawAudio },
        onClosed: () => this.sock.destroy(),
      });
    } catch (err) {
      this.o.log.error({ channel: this.channel.name, err: String(err) }, 'RTMP: could not start the encoder');
      this.sock.destroy();
    }
  }

  /** The publisher said it is done: end the broadcast. */
  private finish(): void {
    const ch = this.channel;
    const pub = this.publication;
    this.publishing = false;
    if (ch && pub) void ch.unpublish(pub, 'RTMP publisher ended the broadcast');
    this.sock.end();
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.setupTimer);
    if (this.startTimer) clearTimeout(this.startTimer);
    this.feed?.close();
    this.sink?.end();
    this.queue = [];
    const ch = this.channel;
    const pub = this.publication;
    if (ch && pub && !this.endedByPublisher) ch.dropped(pub);
  }

  // ---- output ---------------------------------------------------------------------------------
  private control(type: 1 | 5, value: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(value);
    this.sendMessage(2, type, 0, b);
  }

  private command(values: Amf[]): void {
    this.sendMessage(3, 20, 0, amfEncode(values));
  }

  private status(level: 'status' | 'error', code: string, description: string): void {
    this.sendMessage(5, 20, 1, amfEncode(['onStatus', 0, null, { level, code, description }]));
  }

  private outChunkSize = 128;

  private sendMessage(csid: number, type: number, streamId: number, body: Buffer): void {
    if (this.closed || this.sock.destroyed) return;
    const parts: Buffer[] = [];
    const h = Buffer.alloc(12);
    h[0] = csid & 0x3f;
    h.writeUIntBE(0, 1, 3);
    h.writeUIntBE(body.length, 4, 3);
    h[7] = type;
    h.writeUInt32LE(streamId, 8);
    parts.push(h);
    for (let off = 0; off < body.length; off += this.outChunkSize) {
      if (off > 0) parts.push(Buffer.from([0xc0 | (csid & 0x3f)]));
      parts.push(body.subarray(off, off + this.outChunkSize));
    }
    this.sock.write(Buffer.concat(parts));
    if (type === 1) this.outChunkSize = body.readUInt32BE(0);
  }
}
