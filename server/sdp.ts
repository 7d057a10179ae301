/**
 * SDP checks for WHIP ingest (pure: unit-tested). An offer from the network is hostile: it is
 * bounded in size, line count and line length, must be a plausible WebRTC offer (ICE credentials,
 * DTLS fingerprint, at most a few media sections) and must carry a video codec we can transcode
 * (VP8, or H.264 with packetization-mode=1) and, if it has audio, Opus.
 */

export const MAX_SDP_BYTES = 32 * 1024;
const MAX_LINES = 2000;
const MAX_LINE = 4096;
const MAX_MEDIA = 4;

export type VideoCodec = 'VP8' | 'H264';

export interface OfferCheck {
  ok: true;
  /** Codecs we accept that the offer contains. */
  videoCodecs: VideoCodec[];
  hasAudio: boolean;
}

export interface OfferError {
  ok: false;
  /** 400 malformed, 406 nothing we can receive (codec), 413 too large. */
  status: 400 | 406 | 413;
  error: string;
}

interface MediaSection {
  kind: string;
  port: number;
  payloads: string[];
  rtpmap: Map<string, string>;
  fmtp: Map<string, string>;
  lines: string[];
}

export function splitSdpLines(sdp: string): string[] | null {
  const lines = sdp.split(/\r?\n/);
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  if (lines.length > MAX_LINES) return null;
  for (const l of lines) {
    if (l.length > MAX_LINE || !/^[a-z]=[\x20-\x7e]*$/.test(l)) return null;
  }
  return lines;
}

function parseMedia(lines: string[]): { session: string[]; media: MediaSection[] } | null {
  const session: string[] = [];
  const media: MediaSection[] = [];
  for (const l of lines) {
    if (l.startsWith('m=')) {
      const m = /^m=([a-z]+) (\d{1,5})(?:\/\d+)? ([A-Z/]+) ?([0-9 ]*)$/.exec(l);
      if (!m) return null;
      media.push({ kind: m[1], port: Number(m[2]), payloads: m[4].split(' ').filter(Boolean), rtpmap: new Map(), fmtp: new Map(), lines: [] });
      continue;
    }
    const cur = media[media.length - 1];
    if (!cur) {
      session.push(l);
      continue;
    }
    cur.lines.push(l);
    let r = /^a=rtpmap:(\d{1,3}) ([A-Za-z0-9_.-]+)\/(\d+)/.exec(l);
    if (r) cur.rtpmap.set(r[1], r[2]);
    r = /^a=fmtp:(\d{1,3}) (.*)$/.exec(l);
    if (r) cur.fmtp.set(r[1], r[2]);
  }
  return { session, media };
}

/** Validates a WHIP offer. */
export function checkOffer(sdp: string): OfferCheck | OfferError {
  if (typeof sdp !== 'string' || sdp.length === 0) return { ok: false, status: 400, error: 'empty body: expected an SDP offer (application/sdp)' };
  if (Buffer.byteLength(sdp) > MAX_SDP_BYTES) return { ok: false, status: 413, error: `SDP offer larger than ${MAX_SDP_BYTES} bytes` };
  const lines = splitSdpLines(sdp);
  if (!lines || lines[0] !== 'v=0') return { ok: false, status: 400, error: 'malformed SDP: not an SDP session description (must start with v=0, printable lines)' };
  const parsed = parseMedia(lines);
  if (!parsed) return { ok: false, status: 400, error: 'malformed SDP: bad m= line' };
  const { session, media } = parsed;
  if (!session.some((l) => l.startsWith('o='))) return { ok: false, status: 400, error: 'malformed SDP: no o= line' };
  if (media.length === 0) return { ok: false, status: 400, error: 'malformed SDP: no media section' };
  if (media.length > MAX_MEDIA) return { ok: false, status: 400, error: `too many media sections (${media.length}, at most ${MAX_MEDIA})` };
  const has = (sec: MediaSection | null, prefix: string) => session.some((l) => l.startsWith(prefix)) || (sec?.lines.some((l) => l.startsWith(prefix)) ?? false);
  for (const m of media) {
    if (m.port === 0) continue;
    if (!has(m, 'a=ice-ufrag:') || !has(m, 'a=ice-pwd:')) return { ok: false, status: 400, error: 'malformed SDP: no ICE credentials (a=ice-ufrag/a=ice-pwd)' };
    if (!has(m, 'a=fingerprint:')) return { ok: false, status: 400, error: 'malformed SDP: no DTLS fingerprint' };
    if (m.lines.some((l) => l === 'a=recvonly' || l === 'a=inactive')) return { ok: false, status: 400, error: 'a WHIP offer sends media: a=sendonly (or sendrecv) expected' };
  }
  const videos = media.filter((m) => m.kind === 'video' && m.port !== 0);
  const audios = media.filter((m) => m.kind === 'audio' && m.port !== 0);
  if (videos.length !== 1) {
    return { ok: false, status: 406, error: videos.length === 0 ? 'a video track is required (VP8 or H.264)' : 'only one video track is supported' };
  }
  if (audios.length > 1) return { ok: false, status: 406, error: 'only one audio track is supported' };
  const v = videos[0];
  const videoCodecs: VideoCodec[] = [];
  const offered: string[] = [];
  for (const pt of v.payloads) {
    const name = (v.rtpmap.get(pt) ?? '').toUpperCase();
    if (name) offered.push(name);
    if (name === 'VP8' && !videoCodecs.includes('VP8')) videoCodecs.push('VP8');
    if (name === 'H264' && /packetization-mode=1/.test(v.fmtp.get(pt) ?? '') && !videoCodecs.includes('H264')) videoCodecs.push('H264');
  }
  if (!videoCodecs.length) {
    const list = [...new Set(offered.filter((n) => !['RTX', 'RED', 'ULPFEC', 'FLEXFEC-03'].includes(n)))].join(', ') || 'none';
    return { ok: false, status: 406, error: `unsupported video codec (offered: ${list.slice(0, 200)}); want VP8 or H.264 (packetization-mode=1)` };
  }
  let hasAudio = false;
  if (audios.length === 1) {
    const a = audios[0];
    hasAudio = a.payloads.some((pt) => (a.rtpmap.get(pt) ?? '').toLowerCase() === 'opus');
    if (!hasAudio) return { ok: false, status: 406, error: 'unsupported audio codec; want Opus' };
  }
  return { ok: true, videoCodecs, hasAudio };
}

/** The chosen codec of each media section of an answer: kind → { pt, name, fmtp }. */
export function answerCodecs(sdp: string): { kind: string; pt: number; name: string; fmtp: string | null }[] {
  const lines = splitSdpLines(sdp);
  const parsed = lines ? parseMedia(lines) : null;
  if (!parsed) return [];
  const out: { kind: string; pt: number; name: string; fmtp: string | null }[] = [];
  for (const m of parsed.media) {
    if (m.port === 0 || !m.payloads.length) continue;
    const pt = m.payloads[0];
    out.push({ kind: m.kind, pt: Number(pt), name: m.rtpmap.get(pt) ?? '', fmtp: m.fmtp.get(pt) ?? null });
  }
  return out;
}

/** The SDP ffmpeg reads: plain RTP on loopback ports (RTCP on port + 1). */
export function ffmpegSdp(streams: { kind: 'video' | 'audio'; port: number; pt: number; codec: string }[]): string {
  const lines = ['v=0', 'o=- 0 0 IN IP4 127.0.0.1', 's=Starling ingest', 'c=IN IP4 127.0.0.1', 't=0 0'];
  for (const s of streams) {
    lines.push(`m=${s.kind} ${s.port} RTP/AVP ${s.pt}`);
    if (s.codec === 'VP8') lines.push(`a=rtpmap:${s.pt} VP8/90000`);
    else if (s.codec === 'H264') lines.push(`a=rtpmap:${s.pt} H264/90000`, `a=fmtp:${s.pt} packetization-mode=1`);
    else if (s.codec === 'opus') lines.push(`a=rtpmap:${s.pt} opus/48000/2`);
    else throw new Error(`no ffmpeg SDP for codec ${s.codec}`);
  }
  return `${lines.join('\r\n')}\r\n`;
}

/** ICE candidates (`a=candidate:` lines) and credentials of a trickle-ice-sdpfrag (RFC 8840). */
export function parseSdpFrag(frag: string): { candidates: { candidate: string; mid: string | null }[]; ufrag: string | null; pwd: string | null; endOfCandidates: boolean } | null {
  const lines = splitSdpLines(frag);
  if (!lines) return null;
  let mid: string | null = null;
  let ufrag: string | null = null;
  let pwd: string | null = null;
  let endOfCandidates = false;
  const candidates: { candidate: string; mid: string | null }[] = [];
  for (const l of lines) {
    if (l.startsWith('a=mid:')) mid = l.slice(6);
    else if (l.startsWith('a=ice-ufrag:')) ufrag = l.slice(12);
    else if (l.startsWith('a=ice-pwd:')) pwd = l.slice(10);
    else if (l.startsWith('a=candidate:')) candidates.push({ candidate: l.slice(2), mid });
    else if (l === 'a=end-of-candidates') endOfCandidates = true;
  }
  if (candidates.length > 64) return null;
  return { candidates, ufrag, pwd, endOfCandidates };
}
