/**
 * HLS playlists: the media and master playlists the origin serves (generated from the segment
 * window, never copied from ffmpeg), a small parser for ffmpeg's media playlists (and for tests),
 * and the RFC 6381 codec string of an fMP4 init segment.
 */
import { segmentFileName } from '../peer/core/paths.js';
import { INIT_SEQ } from '../peer/core/types.js';

export interface PlaylistSegment {
  seq: number;
  durationMs: number;
  /** Wall clock (ms) at which the segment was published: its end, roughly. */
  createdAt?: number;
  discontinuity?: boolean;
}

export interface MediaPlaylistOptions {
  /** Ascending seq; the caller passes the live window (e.g. the last 6). */
  segments: PlaylistSegment[];
  /** Nominal segment duration in seconds (lower bound of TARGETDURATION). */
  segmentDuration: number;
  /** EXT-X-DISCONTINUITY-SEQUENCE: discontinuities before the first listed segment. */
  discontinuitySequence?: number;
  /** Emit EXT-X-PROGRAM-DATE-TIME (start of each segment = createdAt - duration). Default true. */
  programDateTime?: boolean;
  /** VoD/ended stream: add EXT-X-ENDLIST. */
  ended?: boolean;
  /** A complete recording: EXT-X-PLAYLIST-TYPE:VOD (players may seek anywhere in it). */
  vod?: boolean;
}

/**
 * The newest run of consecutive segment numbers of an ascending list: what a live playlist can
 * list, since HLS numbers segments by position (EXT-X-MEDIA-SEQUENCE + index), not by name.
 */
export function contiguousTail<T>(segs: T[], seqOf: (s: T) => number): T[] {
  let start = segs.length - 1;
  while (start > 0 && seqOf(segs[start - 1]) === seqOf(segs[start]) - 1) start--;
  return start <= 0 ? segs : segs.slice(start);
}

export function mediaPlaylist(o: MediaPlaylistOptions): string {
  const segs = o.segments;
  const maxDur = segs.reduce((m, s) => Math.max(m, s.durationMs), 0) / 1000;
  const target = Math.max(Math.ceil(o.segmentDuration), Math.ceil(maxDur - 0.0005));
  const lines = [
    '#EXTM3U',
    '#EXT-X-VERSION:7',
    `#EXT-X-TARGETDURATION:${target}`,
    `#EXT-X-MEDIA-SEQUENCE:${segs.length ? segs[0].seq : 0}`,
  ];
  if (o.discontinuitySequence) lines.push(`#EXT-X-DISCONTINUITY-SEQUENCE:${o.discontinuitySequence}`);
  if (o.vod) lines.push('#EXT-X-PLAYLIST-TYPE:VOD');
  lines.push('#EXT-X-INDEPENDENT-SEGMENTS', `#EXT-X-MAP:URI="${segmentFileName(INIT_SEQ)}"`);
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i];
    // Tagged even on the first listed segment: DISCONTINUITY-SEQUENCE counts only tags before it.
    if (s.discontinuity) {
      lines.push('#EXT-X-DISCONTINUITY');
      if (i > 0) lines.push(`#EXT-X-MAP:URI="${segmentFileName(INIT_SEQ)}"`);
    }
    if ((o.programDateTime ?? true) && s.createdAt !== undefined && (i === 0 || s.discontinuity)) {
      lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(s.createdAt - s.durationMs).toISOString()}`);
    }
    lines.push(`#EXTINF:${(s.durationMs / 1000).toFixed(3)},`, segmentFileName(s.seq));
  }
  if (o.ended) lines.push('#EXT-X-ENDLIST');
  return `${lines.join('\n')}\n`;
}

export interface MasterRendition {
  name: string;
  width: number;
  height: number;
  /** Peak bit/s (video + audio). */
  bandwidth: number;
  /** e.g. 'avc1.42c01e,mp4a.40.2' */
  codecs: string;
  frameRate?: number;
}

/** Renditions are listed in the given order (hls.js starts with the first unless told otherwise). */
export function masterPlaylist(renditions: MasterRendition[]): string {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:7', '#EXT-X-INDEPENDENT-SEGMENTS'];
  for (const r of renditions) {
    const attrs = [
      `BANDWIDTH=${Math.round(r.bandwidth)}`,
      `AVERAGE-BANDWIDTH=${Math.round(r.bandwidth)}`,
      `RESOLUTION=${r.width}x${r.height}`,
      `CODECS="${r.codecs}"`,
    ];
    if (r.frameRate) attrs.push(`FRAME-RATE=${r.frameRate.toFixed(3)}`);
    lines.push(`#EXT-X-STREAM-INF:${attrs.join(',')}`, `${r.name}/index.m3u8`);
  }
  return `${lines.join('\n')}\n`;
}

export interface ParsedMediaPlaylist {
  version: number | null;
  targetDuration: number | null;
  mediaSequence: number;
  discontinuitySequence: number;
  /** URI of EXT-X-MAP (the last one seen). */
  mapUri: string | null;
  segments: { uri: string; durationSec: number; discontinuity: boolean; programDateTime: number | null }[];
  endList: boolean;
}

/**
 * Parses a media playlist. Tolerates a playlist cut short mid-write: a URI line is taken only if
 * it was terminated by a newline, so a half-written `seg_12` never passes for segment 12.
 */
export function parseMediaPlaylist(text: string): ParsedMediaPlaylist {
  const out: ParsedMediaPlaylist = {
    version: null, targetDuration: null, mediaSequence: 0, discontinuitySequence: 0, mapUri: null, segments: [], endList: false,
  };
  const complete = text.endsWith('\n') ? text : text.slice(0, text.lastIndexOf('\n') + 1);
  let dur: number | null = null;
  let disc = false;
  let pdt: number | null = null;
  for (const raw of complete.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('#')) {
      const [tag, ...rest] = line.split(':');
      const val = rest.join(':');
      switch (tag) {
        case '#EXT-X-VERSION': out.version = Number(val); break;
        case '#EXT-X-TARGETDURATION': out.targetDuration = Number(val); break;
        case '#EXT-X-MEDIA-SEQUENCE': out.mediaSequence = Number(val); break;
        case '#EXT-X-DISCONTINUITY-SEQUENCE': out.discontinuitySequence = Number(val); break;
        case '#EXT-X-MAP': {
          const m = /URI="([^"]*)"/.exec(val);
          if (m) out.mapUri = m[1];
          break;
        }
        case '#EXTINF': dur = Number.parseFloat(val); break;
        case '#EXT-X-DISCONTINUITY': disc = true; break;
        case '#EXT-X-PROGRAM-DATE-TIME': pdt = Date.parse(val); break;
        case '#EXT-X-ENDLIST': out.endList = true; break;
        default: break;
      }
      continue;
    }
    if (dur !== null && Number.isFinite(dur)) {
      out.segments.push({ uri: line, durationSec: dur, discontinuity: disc, programDateTime: pdt !== null && Number.isFinite(pdt) ? pdt : null });
    }
    dur = null;
    disc = false;
    pdt = null;
  }
  return out;
}

export interface ParsedMasterPlaylist {
  variants: { uri: string; bandwidth: number; resolution: string | null; codecs: string | null }[];
}

export function parseMasterPlaylist(text: string): ParsedMasterPlaylist {
  const variants: ParsedMasterPlaylist['variants'] = [];
  let pending: Omit<ParsedMasterPlaylist['variants'][number], 'uri'> | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('#EXT-X-STREAM-INF:')) {
      const attrs = line.slice('#EXT-X-STREAM-INF:'.length);
      pending = {
        bandwidth: Number(/(?:^|,)BANDWIDTH=(\d+)/.exec(attrs)?.[1] ?? NaN),
        resolution: /RESOLUTION=(\d+x\d+)/.exec(attrs)?.[1] ?? null,
        codecs: /CODECS="([^"]*)"/.exec(attrs)?.[1] ?? null,
      };
    } else if (!line.startsWith('#') && pending) {
      variants.push({ uri: line, ...pending });
      pending = null;
    }
  }
  return { variants };
}

/**
 * RFC 6381 codec string of the video track of an fMP4 init segment, from its avcC box
 * (`avc1.PPCCLL`), or null if there is none. Audio is AAC-LC from our encoder: `mp4a.40.2`.
 */
export function avcCodecFromInit(init: Uint8Array): string | null {
  for (let i = 4; i + 8 <= init.length; i++) {
    // 'avcC' then configurationVersion(=1), profile, compat, level
    if (init[i] === 0x61 && init[i + 1] === 0x76 && init[i + 2] === 0x63 && init[i + 3] === 0x43 && init[i + 4] === 1) {
      const hex = (b: number) => b.toString(16).padStart(2, '0');
      return `avc1.${hex(init[i + 5])}${hex(init[i + 6])}${hex(init[i + 7])}`;
    }
  }
  return null;
}

export const AAC_LC_CODEC = 'mp4a.40.2';
/** Constrained baseline, level 3.0: what the default ladder (-profile:v baseline -level 3.0) produces. */
export const DEFAULT_VIDEO_CODEC = 'avc1.42c01e';
