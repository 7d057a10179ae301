/**
 * WHIP ingest (RFC 9725) received by werift, handed to ffmpeg as plain RTP.
 *
 *   POST   /whip/<channel>            Authorization: Bearer <stream key>, Content-Type: application/sdp
 *                                     → 201 Created, the SDP answer, Location: /whip/<channel>/<session>
 *   PATCH  /whip/<channel>/<session>  application/trickle-ice-sdpfrag: remote candidates → 204
 *                                     (an ICE restart is refused with 422: POST a new offer instead,
 *                                     which continues the channel within its grace period)
 *   DELETE /whip/<channel>/<session>  ends the broadcast → 200 (viewers get EXT-X-ENDLIST)
 *   OPTIONS                           CORS preflight, Accept-Post: application/sdp
 *
 * Errors: 401 no key, 403 wrong key (or the channel takes no publishes), 404 unknown channel or
 * session, 400 malformed SDP, 406 no codec we can take (video VP8 or H.264, audio Opus), 413 body
 * over 32 KiB, 415 wrong content type, 429 rate limited, 503 too many sessions. Nothing starts on
 * an error.
 *
 * Media path: werift answers (ICE-lite, host candidates only, no STUN needed), then every RTP
 * packet of the negotiated codec is sent to a UDP port on 127.0.0.1 where ffmpeg reads it through
 * an SDP file; RTCP sender reports follow on port + 1 (audio/video sync). ffmpeg transcodes into
 * the channel's ladder: the same pipeline as the test pattern. Keyframes are asked for (PLI) as
 * ffmpeg starts and every few seconds.
 *
 * A session whose RTP stops for `rtpTimeoutMs`, or whose connection fails, is "dropped": the
 * channel waits for the publisher to come back (grace period) before ending the broadcast.
 */
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RTCPeerConnection, RTCRtpCodecParameters, type MediaStreamTrack } from 'werift';
import type { Logger } from '../peer/core/types.js';
import { authStatus, bearerToken, checkSecret, RateLimiter } from './auth.js';
import type { Channel, Publication } from './channel.js';
import type { IngestMetrics } from './ingest-metrics.js';
import { answerCodecs, checkOffer, ffmpegSdp, MAX_SDP_BYTES, parseSdpFrag } from './sdp.js';

export interface WhipOptions {
  channel(name: string): Channel | null;
  metrics: IngestMetrics;
  /** Directory for the SDP files ffmpeg reads. */
  workDir: string;
  log: Logger;
  /** Extra werift RTCPeerConnection options (tests). */
  peerConfig?: Record<string, unknown>;
  maxSessions?: number;
  /** No RTP for this long after media flowed: the publisher dropped. Default 5 s. */
  rtpTimeoutMs?: number;
  /** No connection within this long: the session is dropped. Default 20 s. */
  connectTimeoutMs?: number;
}

export interface WhipHandle {
  sessions(): number;
  closeAll(): Promise<void>;
}

const SESSION_RE = /^[A-Za-z0-9_-]{22}$/;

export function registerWhip(app: FastifyInstance, o: WhipOptions): WhipHandle {
  const sessions = new Map<string, WhipSession>();
  const limiter = new RateLimiter(2, 20);
  const maxSessions = o.maxSessions ?? 32;
  const m = o.metrics;

  app.addContentTypeParser(['application/sdp', 'application/trickle-ice-sdpfrag'], { parseAs: 'string', bodyLimit: MAX_SDP_BYTES }, (_req, body, done) => {
    done(null, body);
  });

  const cors = (reply: FastifyReply) => {
    reply.header('access-control-allow-methods', 'POST, PATCH, DELETE, OPTIONS');
    reply.header('access-control-allow-headers', 'Authorization, Content-Type, If-Match');
    reply.header('access-control-expose-headers', 'Location, ETag, Link, Accept-Patch, Accept-Post');
    reply.header('access-control-max-age', '86400');
  };
  const fail = (reply: FastifyReply, status: number, reason: string, error: string) => {
    m.rejected.inc({ protocol: 'whip', reason });
    return reply.code(status).type('text/plain; charset=utf-8').send(`${error}\n`);
  };

  /** Channel lookup and publish authentication, before the body is read. */
  const guard = async (req: FastifyRequest<{ Params: { channel: string } }>, reply: FastifyReply) => {
    cors(reply);
    if (req.method === 'POST' && !limiter.take(req.ip)) return fail(reply, 429, 'rate', 'too many requests');
    const ch = o.channel(req.params.channel);
    if (!ch) return fail(reply, 404, 'channel', 'unknown channel');
    const r = checkSecret(bearerToken(req.headers.authorization), ch.streamKey());
    if (r !== 'ok') {
      o.log.warn({ channel: ch.name, result: r, ip: req.ip }, 'WHIP: publish refused');
      if (r === 'missing') reply.header('www-authenticate', 'Bearer realm="starling"');
      return fail(reply, authStatus(r), `auth-${r}`, r === 'disabled' ? 'this channel takes no publishes (no stream key configured)' : r === 'missing' ? 'stream key required (Authorization: Bearer <key>)' : 'wrong stream key');
    }
  };

  app.options('/whip/:channel', async (_req, reply) => {
    cors(reply);
    reply.header('accept-post', 'application/sdp');
    return reply.code(204).send();
  });
  app.options('/whip/:channel/:session', async (_req, reply) => {
    cors(reply);
    reply.header('accept-patch', 'application/trickle-ice-sdpfrag');
    return reply.code(204).send();
  });

  app.post<{ Params: { channel: string }; Body: unknown }>('/whip/:channel', { onRequest: guard, bodyLimit: MAX_SDP_BYTES }, async (req, reply) => {
    const ch = o.channel(req.params.channel)!;
    const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/sdp') return fail(reply, 415, 'content-type', 'Content-Type must be application/sdp');
    const sdp = typeof req.body === 'string' ? req.body : '';
    const check = checkOffer(sdp);
    if (!check.ok) return fail(reply, check.status, check.status === 406 ? 'codec' : check.status === 413 ? 'size' : 'sdp', check.error);
    if (sessions.size >= maxSessions) return fail(reply, 503, 'capacity', 'too many ingest sessions');
    let session: WhipSession;
    try {
      session = await WhipSession.start(ch, sdp, check.hasAudio, {
        workDir: o.workDir, log: o.log, metrics: m, peerConfig: o.peerConfig,
        rtpTimeoutMs: o.rtpTimeoutMs ?? 5000, connectTimeoutMs: o.connectTimeoutMs ?? 20_000,
        onClosed: (s) => sessions.delete(s.id),
      });
    } catch (err) {
      const status = (err as { status?: number }).status;
      if (status) return fail(reply, status, 'sdp', (err as Error).message);
      o.log.error({ channel: ch.name, err: String(err) }, 'WHIP: could not start a session');
      return fail(reply, 500, 'internal', 'could not start the session');
    }
    sessions.set(session.id, session);
    m.sessions.inc({ protocol: 'whip' });
    o.log.info({ channel: ch.name, session: session.id, video: session.videoCodec, audio: session.hasAudio }, 'WHIP: publishing');
    reply.header('location', `/whip/${ch.name}/${session.id}`);
    reply.header('etag', `"${session.id}"`);
    reply.header('accept-patch', 'application/trickle-ice-sdpfrag');
    return reply.code(201).type('application/sdp').send(session.answer);
  });

  const sessionOf = (req: FastifyRequest<{ Params: { channel: string; session: string } }>): WhipSession | null => {
    if (!SESSION_RE.test(req.params.session)) return null;
    const s = sessions.get(req.params.session);
    return s && s.channel.name === req.params.channel ? s : null;
  };

  app.patch<{ Params: { channel: string; session: string }; Body: unknown }>('/whip/:channel/:session', { onRequest: guard, bodyLimit: MAX_SDP_BYTES }, async (req, reply) => {
    const s = sessionOf(req);
    if (!s) return fail(reply, 404, 'session', 'unknown session');
    const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/trickle-ice-sdpfrag') return fail(reply, 415, 'content-type', 'Content-Type must be application/trickle-ice-sdpfrag');
    const ifMatch = req.headers['if-match'];
    if (ifMatch !== undefined && ifMatch !== '*' && ifMatch !== `"${s.id}"`) return fail(reply, 412, 'etag', 'ETag mismatch');
    const frag = parseSdpFrag(typeof req.body === 'string' ? req.body : '');
    if (!frag) return fail(reply, 400, 'sdp', 'malformed trickle-ice-sdpfrag');
    if ((frag.ufrag && frag.ufrag !== s.remoteUfrag) || ifMatch === '*') {
      return fail(reply, 422, 'restart', 'ICE restart is not supported: POST a new offer (the broadcast continues within its grace period)');
    }
    await s.addCandidates(frag.candidates);
    return reply.code(204).send();
  });

  app.delete<{ Params: { channel: string; session: string } }>('/whip/:channel/:session', { onRequest: guard }, async (req, reply) => {
    const s = sessionOf(req);
    if (!s) return fail(reply, 404, 'session', 'unknown session');
    o.log.info({ channel: s.channel.name, session: s.id }, 'WHIP: broadcast ended by the publisher');
    await s.end();
    return reply.code(200).send();
  });

  return {
    sessions: () => sessions.size,
    closeAll: async () => {
      await Promise.all([...sessions.values()].map((s) => s.close('origin stopping')));
    },
  };
}

interface SessionOptions {
  workDir: string;
  log: Logger;
  metrics: IngestMetrics;
  peerConfig?: Record<string, unknown>;
  rtpTimeoutMs: number;
  connectTimeoutMs: number;
  onClosed: (s: WhipSession) => void;
}

class HttpError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

/** Two free UDP ports p, p+1 on 127.0.0.1 (RTP, RTCP) for ffmpeg. */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = 20_000 + 2 * Math.floor(Math.random() * 15_000);
    const ok = await Promise.all([p, p + 1].map((port) => new Promise<boolean>((resolve) => {
      const s = createSocket('udp4');
      s.once('error', () => { s.close(); resolve(false); });
      s.bind(port, '127.0.0.1', () => { s.close(); resolve(true); });
    })));
    if (ok.every(Boolean)) return p;
  }
  throw new Error('no free UDP port pair');
}

interface Forward {
  kind: 'video' | 'audio';
  pt: number;
  port: number;
  codec: string;
}

export class WhipSession {
  readonly id = randomBytes(16).toString('base64url');
  answer = '';
  videoCodec = '';
  hasAudio = false;
  remoteUfrag: string | null = null;
  private publication: Publication | null = null;
  private readonly sock: Socket;
  private forwards: Forward[] = [];
  private sdpPath = '';
  private closed = false;
  private lastRtpAt = 0;
  private mediaSeen = false;
  private timers: NodeJS.Timeout[] = [];
  private videoTrack: MediaStreamTrack | null = null;
  private readonly createdAt = Date.now();

  private constructor(readonly channel: Channel, private readonly pc: RTCPeerConnection, private readonly o: SessionOptions) {
    this.sock = createSocket('udp4');
    this.sock.on('error', () => { /* loopback send errors are not fatal */ });
  }

  static async start(channel: Channel, offer: string, offerHasAudio: boolean, o: SessionOptions): Promise<WhipSession> {
    const pc = new RTCPeerConnection({
      iceLite: true,
      iceUseIpv6: false,
      iceServers: [],
      codecs: {
        video: [
          new RTCRtpCodecParameters({ mimeType: 'video/VP8', clockRate: 90000, rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }] }),
          new RTCRtpCodecParameters({
            mimeType: 'video/H264', clockRate: 90000, rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }],
            parameters: 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
          }),
        ],
        audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2 })],
      },
      headerExtensions: { video: [], audio: [] },
      ...(o.peerConfig ?? {}),
    });
    const s = new WhipSession(channel, pc, o);
    try {
      await s.negotiate(offer, offerHasAudio);
      await s.startPublishing();
    } catch (err) {
      await s.close('setup failed');
      throw err;
    }
    return s;
  }

  private async negotiate(offer: string, offerHasAudio: boolean): Promise<void> {
    this.remoteUfrag = /a=ice-ufrag:(\S+)/.exec(offer)?.[1] ?? null;
    this.pc.onTrack.subscribe((track) => this.onTrack(track));
    try {
      await this.pc.setRemoteDescription({ type: 'offer', sdp: offer });
    } catch (err) {
      throw new HttpError(`SDP offer refused: ${String((err as Error).message ?? err).slice(0, 200)}`, 400);
    }
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    this.answer = this.pc.localDescription?.sdp ?? answer.sdp;
    const chosen = answerCodecs(this.answer);
    const v = chosen.find((c) => c.kind === 'video');
    const a = chosen.find((c) => c.kind === 'audio');
    if (!v || !/^(VP8|H264)$/i.test(v.name)) throw new HttpError('no common video codec (VP8 or H.264)', 406);
    this.videoCodec = v.name.toUpperCase();
    const vport = await freePortPair();
    this.forwards.push({ kind: 'video', pt: v.pt, port: vport, codec: this.videoCodec });
    if (offerHasAudio && a && /^opus$/i.test(a.name)) {
      let aport = await freePortPair();
      while (aport === vport) aport = await freePortPair();
      this.forwards.push({ kind: 'audio', pt: a.pt, port: aport, codec: 'opus' });
      this.hasAudio = true;
    }
    this.pc.connectionStateChange.subscribe((st) => {
      if (st === 'failed' || st === 'closed') this.dropped(`connection ${st}`);
    });
  }

  private async startPublishing(): Promise<void> {
    await mkdir(this.o.workDir, { recursive: true });
    this.sdpPath = join(this.o.workDir, `${this.channel.name}-${this.id}.sdp`);
    await writeFile(this.sdpPath, ffmpegSdp(this.forwards.map((f) => ({ kind: f.kind, port: f.port, pt: f.pt, codec: f.codec }))));
    this.publication = await this.channel.publish({
      kind: 'whip',
      source: { type: 'sdp', path: this.sdpPath, hasAudio: this.hasAudio },
      onClosed: (reason) => void this.close(reason),
    });
    // Keyframes: ffmpeg can only start decoding at one.
    for (const ms of [300, 1000, 2000, 3500, 5000]) this.timers.push(setTimeout(() => this.pli(), ms));
    const every = setInterval(() => {
      this.pli();
    }, 10_000);
    const watchdog = setInterval(() => {
      const now = Date.now();
      if (this.mediaSeen && now - this.lastRtpAt > this.o.rtpTimeoutMs) this.dropped('no media');
      else if (!this.mediaSeen && now - this.createdAt > this.o.connectTimeoutMs) this.dropped('no media after connecting');
    }, 1000);
    this.timers.push(every, watchdog);
  }

  private onTrack(track: MediaStreamTrack): void {
    const f = this.forwards.find((x) => x.kind === track.kind) ?? null;
    const kind = track.kind === 'video' ? 'video' : 'audio';
    if (track.kind === 'video') this.videoTrack = track;
    track.onReceiveRtp.subscribe((rtp) => {
      if (this.closed) return;
      const fw = f ?? this.forwards.find((x) => x.kind === track.kind);
      if (!fw || rtp.header.payloadType !== fw.pt) return;
      const buf = rtp.serialize();
      this.lastRtpAt = Date.now();
      if (!this.mediaSeen) {
        this.mediaSeen = true;
        this.pli();
      }
      this.o.metrics.rtpPackets.inc({ kind });
      this.o.metrics.rtpBytes.inc({ kind }, buf.length);
      this.sock.send(buf, fw.port, '127.0.0.1');
    });
    track.onReceiveRtcp.subscribe((rtcp) => {
      if (this.closed) return;
      const fw = this.forwards.find((x) => x.kind === track.kind);
      // Sender reports carry the NTP/RTP mapping ffmpeg uses to sync audio and video.
      if (!fw || (rtcp as { type?: number }).type !== 200) return;
      try {
        this.sock.send((rtcp as unknown as { serialize(): Buffer }).serialize(), fw.port + 1, '127.0.0.1');
      } catch { /* ignore */ }
    });
  }

  private pli(): void {
    const t = this.videoTrack;
    if (this.closed || !t?.ssrc) return;
    const tr = this.pc.getTransceivers().find((x) => x.kind === 'video');
    tr?.receiver.sendRtcpPLI(t.ssrc).catch(() => undefined);
  }

  async addCandidates(cands: { candidate: string; mid: string | null }[]): Promise<void> {
    for (const c of cands) {
      await this.pc.addIceCandidate({ candidate: c.candidate, sdpMid: c.mid ?? undefined }).catch(() => undefined);
    }
  }

  private dropped(why: string): void {
    if (this.closed) return;
    this.o.log.warn({ channel: this.channel.name, session: this.id, why }, 'WHIP: publisher dropped');
    const pub = this.publication;
    void this.close(why);
    if (pub) this.channel.dropped(pub);
  }

  /** DELETE: the publisher ends the broadcast. */
  async end(): Promise<void> {
    const pub = this.publication;
    await this.close('deleted');
    if (pub) await this.channel.unpublish(pub, 'publisher ended the broadcast (WHIP DELETE)');
  }

  async close(_reason: string): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    this.o.onClosed(this);
    try { this.sock.close(); } catch { /* closed */ }
    await this.pc.close().catch(() => undefined);
    if (this.sdpPath) await rm(this.sdpPath, { force: true }).catch(() => undefined);
  }
}
