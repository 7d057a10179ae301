/**
 * A WHIP publisher on werift (what OBS does, in Node): ffmpeg encodes a test pattern or a file to
 * RTP on loopback (H.264 or VP8 + Opus), werift sends it to the origin over WebRTC after the WHIP
 * exchange (POST offer → 201 answer + Location). Used by `npm run broadcast` and the tests.
 *
 *   const pub = await publishWhip({ url: 'http://origin:8080/whip/demo', token: KEY, source: { type: 'testsrc' } });
 *   await pub.reconnect();   // drop the WebRTC session without DELETE and publish again
 *   await pub.stop();        // DELETE: the broadcast ends
 */
import { createSocket, type Socket } from 'node:dgram';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters } from 'werift';
import { silentLogger, type Logger } from '../peer/core/types.js';
import { fileHasAudio, findFfmpeg, FfmpegSupervisor, type FfmpegBinary } from './ffmpeg.js';

export type WhipClientSource =
  | { type: 'testsrc'; width?: number; height?: number; fps?: number }
  | { type: 'file'; path: string; loop?: boolean };

export interface WhipPublishOptions {
  /** http(s)://HOST:PORT/whip/<channel> */
  url: string;
  /** The channel's stream key (sent as Authorization: Bearer). */
  token: string;
  source: WhipClientSource;
  videoCodec?: 'H264' | 'VP8';
  /** Video bitrate, bit/s. Default 2.5 Mbit/s. */
  videoBitrate?: number;
  ffmpeg?: FfmpegBinary;
  /** ICE servers for werift (default: a local address that never answers; host candidates suffice). */
  iceServers?: { urls: string }[];
  /** Called when the file source ended (not looping). */
  onSourceEnded?: () => void;
  log?: Logger;
}

export interface WhipPublisher {
  /** Absolute URL of the WHIP session (the Location of the 201). */
  readonly resource: string;
  /** RTP packets sent since start (video, audio). */
  stats(): { videoPackets: number; audioPackets: number; connectionState: string; reconnects: number };
  /**
   * Drops the WebRTC session without DELETE and publishes again. `silentMs`: vanish silently first
   * (stop sending, close nothing, as a pulled cable) for that long, so the origin notices on its own.
   */
  reconnect(opts?: { silentMs?: number }): Promise<void>;
  /** Drops the WebRTC session without DELETE and stops (the origin's grace period applies). */
  kill(): Promise<void>;
  /** DELETE the session (the broadcast ends) and stop everything. */
  stop(): Promise<void>;
}

export class WhipError extends Error {
  constructor(message: string, readonly status: number, readonly body: string) {
    super(message);
  }
}

/** POSTs an offer; returns the answer and the session URL, or throws WhipError with the status. */
export async function whipPost(url: string, token: string | null, sdp: string, contentType = 'application/sdp'): Promise<{ answer: string; location: string }> {
  const headers: Record<string, string> = { 'content-type': contentType };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const res = await fetch(url, { method: 'POST', headers, body: sdp });
  const body = await res.text();
  if (res.status !== 201) throw new WhipError(`WHIP POST ${res.status}: ${body.trim().slice(0, 200)}`, res.status, body);
  const loc = res.headers.get('location');
  if (!loc) throw new WhipError('WHIP POST: 201 without Location', res.status, body);
  return { answer: body, location: new URL(loc, url).href };
}

async function udpSocket(): Promise<Socket> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => resolve());
  });
  return s;
}

/** werift waits up to 5 s for the STUN server while gathering; cap it (see peer/transport/werift-transport.ts). */
function capStunWait(pc: RTCPeerConnection, ms: number): void {
  for (const t of pc.iceTransports) {
    const conn = (t as unknown as { connection?: Record<string, unknown> }).connection;
    if (!conn || typeof conn.getCandidatePromises !== 'function') continue;
    const orig = conn.getCandidatePromises as (addresses: unknown, timeout?: number) => unknown;
    conn.getCandidatePromises = function (this: unknown, addresses: unknown, timeout?: number) {
      return orig.call(this, addresses, Math.min(timeout ?? 5, ms / 1000));
    };
  }
}

export async function publishWhip(o: WhipPublishOptions): Promise<WhipPublisher> {
  const log = o.log ?? silentLogger;
  const codec = o.videoCodec ?? 'H264';
  const binary = o.ffmpeg ?? findFfmpeg();
  const vsock = await udpSocket();
  const asock = await udpSocket();
  const vport = (vsock.address() as { port: number }).port;
  const aport = (asock.address() as { port: number }).port;
  let videoPackets = 0;
  let audioPackets = 0;
  let reconnects = 0;

  const src = o.source;
  const input: string[] = [];
  if (src.type === 'testsrc') {
    const w = src.width ?? 1280;
    const h = src.height ?? 720;
    const fps = src.fps ?? 25;
    input.push('-re', '-f', 'lavfi', '-i', `testsrc2=size=${w}x${h}:rate=${fps}`, '-re', '-f', 'lavfi', '-i', 'sine=frequency=660:beep_factor=2:sample_rate=48000');
  } else {
    input.push('-re');
    if (src.loop) input.push('-stream_loop', '-1');
    input.push('-i', src.path);
  }
  // A file without audio is sent as video only (the origin adds a silent track).
  const withAudio = src.type === 'testsrc' || fileHasAudio(binary.path, src.path);
  const vb = `${Math.round((o.videoBitrate ?? 2_500_000) / 1000)}k`;
  const audioMap = src.type === 'testsrc' ? '1:a:0' : '0:a:0';
  const videoArgs = codec === 'H264'
    ? ['-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-profile:v', 'baseline', '-pix_fmt', 'yuv420p', '-g', '50', '-b:v', vb, '-maxrate', vb, '-bufsize', vb,
      // WebRTC receivers take SPS/PPS in-band (no sprop-parameter-sets): repeat them at every keyframe.
      '-bsf:v', 'dump_extra=freq=keyframe']
    : ['-c:v', 'libvpx', '-deadline', 'realtime', '-cpu-used', '8', '-g', '50', '-b:v', vb, '-pix_fmt', 'yuv420p'];
  const args = [
    '-hide_banner', '-nostats', '-loglevel', 'error', '-nostdin', ...input,
    '-map', '0:v:0', ...videoArgs, '-an', '-f', 'rtp', '-payload_type', '96', `rtp://127.0.0.1:${vport}?pkt_size=1200`,
    ...(withAudio ? ['-map', audioMap, '-vn', '-c:a', 'libopus', '-b:a', '64k', '-ar', '48000', '-ac', '2', '-f', 'rtp', '-payload_type', '111', `rtp://127.0.0.1:${aport}?pkt_size=1200`] : []),
  ];
  const encoder = new FfmpegSupervisor({
    binary,
    log,
    args: () => args,
    shouldRestart: ({ code }) => !(src.type === 'file' && !src.loop && code === 0),
    onFinished: () => o.onSourceEnded?.(),
  });

  let pc: RTCPeerConnection | null = null;
  let video: MediaStreamTrack | null = null;
  let audio: MediaStreamTrack | null = null;
  let resource = '';
  vsock.on('message', (m) => { if (video) { video.writeRtp(m); videoPackets++; } });
  asock.on('message', (m) => { if (audio) { audio.writeRtp(m); audioPackets++; } });

  const connect = async () => {
    const p = new RTCPeerConnection({
      iceServers: o.iceServers ?? [{ urls: 'stun:127.0.0.1:9' }],
      iceUseIpv6: false,
      codecs: {
        video: [codec === 'H264'
          ? new RTCRtpCodecParameters({ mimeType: 'video/H264', clockRate: 90000, rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }], parameters: 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f' })
          : new RTCRtpCodecParameters({ mimeType: 'video/VP8', clockRate: 90000, rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }] })],
        audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2 })],
      },
      headerExtensions: { video: [], audio: [] },
    });
    const v = new MediaStreamTrack({ kind: 'video' });
    const a = new MediaStreamTrack({ kind: 'audio' });
    p.addTransceiver(v, { direction: 'sendonly' });
    if (withAudio) p.addTransceiver(a, { direction: 'sendonly' });
    const offer = await p.createOffer();
    capStunWait(p, 300);
    await p.setLocalDescription(offer);
    let res: { answer: string; location: string };
    try {
      res = await whipPost(o.url, o.token, p.localDescription!.sdp);
    } catch (err) {
      await p.close().catch(() => undefined);
      throw err;
    }
    await p.setRemoteDescription({ type: 'answer', sdp: res.answer });
    pc = p;
    video = v;
    audio = a;
    resource = res.location;
    log.info({ resource }, 'WHIP: published');
  };

  const drop = async () => {
    const p = pc;
    pc = null;
    video = null;
    audio = null;
    await p?.close().catch(() => undefined);
  };

  try {
    await encoder.start();
    await connect();
  } catch (err) {
    await encoder.stop();
    vsock.close();
    asock.close();
    throw err;
  }

  let stopped = false;
  const shutdown = async () => {
    stopped = true;
    await drop();
    await encoder.stop();
    try { vsock.close(); } catch { /* closed */ }
    try { asock.close(); } catch { /* closed */ }
  };

  return {
    get resource() { return resource; },
    stats: () => ({ videoPackets, audioPackets, connectionState: pc?.connectionState ?? 'closed', reconnects }),
    reconnect: async (r = {}) => {
      if (stopped) throw new Error('stopped');
      if (r.silentMs) {
        const abandoned = pc;
        pc = null;
        video = null;
        audio = null;
        await new Promise((res) => setTimeout(res, r.silentMs));
        await abandoned?.close().catch(() => undefined);
      } else {
        await drop();
      }
      reconnects++;
      await connect();
    },
    kill: shutdown,
    stop: async () => {
      if (stopped) return;
      try {
        const r = await fetch(resource, { method: 'DELETE', headers: { authorization: `Bearer ${o.token}` } });
        await r.arrayBuffer();
        if (!r.ok) log.warn({ status: r.status }, 'WHIP DELETE refused');
      } finally {
        await shutdown();
      }
    },
  };
}
