/**
 * URL layout of the origin's HTTP service, shared by the origin (which serves it), the engine's
 * HTTP fallback and the player (which parses hls.js fragment URLs back into SegmentRefs).
 *
 *   /live/<channel>/channel.json                      ChannelInfo (public key, renditions)
 *   /live/<channel>/master.m3u8                       HLS master playlist
 *   /live/<channel>/<rendition>/index.m3u8            HLS media playlist (live window)
 *   /live/<channel>/<rendition>/init.mp4              fMP4 init segment (seq = INIT_SEQ)
 *   /live/<channel>/<rendition>/seg_<seq>.m4s         media segment (Range requests supported)
 *   <segment path>.manifest                           signed manifest (binary, manifest.ts)
 *   /config.json                                      { trackerUrl, defaultChannel }
 */
import { INIT_SEQ, type SegmentRef } from './types.js';

export const NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,31}$/;

export function isValidName(name: string): boolean {
  return NAME_PATTERN.test(name);
}

export function segmentFileName(seq: number): string {
  return seq === INIT_SEQ ? 'init.mp4' : `seg_${seq}.m4s`;
}

export function segmentPath(channel: string, ref: SegmentRef): string {
  return `/live/${channel}/${ref.rendition}/${segmentFileName(ref.seq)}`;
}

export function manifestPath(channel: string, ref: SegmentRef): string {
  return `${segmentPath(channel, ref)}.manifest`;
}

export function channelInfoPath(channel: string): string {
  return `/live/${channel}/channel.json`;
}

export function masterPlaylistPath(channel: string): string {
  return `/live/${channel}/master.m3u8`;
}

export function mediaPlaylistPath(channel: string, rendition: string): string {
  return `/live/${channel}/${rendition}/index.m3u8`;
}

/** Parses any URL (absolute or path) of a segment back into its channel and ref; null if not one. */
export function parseSegmentUrl(url: string): { channel: string; ref: SegmentRef } | null {
  const path = url.replace(/^[a-z]+:\/\/[^/]+/i, '').split(/[?#]/)[0];
  const m = /^\/live\/([^/]+)\/([^/]+)\/(init\.mp4|seg_(\d{1,9})\.m4s)$/.exec(path);
  if (!m || !isValidName(m[1]) || !isValidName(m[2])) return null;
  const seq = m[3] === 'init.mp4' ? INIT_SEQ : Number(m[4]);
  return { channel: m[1], ref: { rendition: m[2], seq } };
}

export interface RenditionInfo {
  name: string;
  width: number;
  height: number;
  /** Video + audio bitrate in bit/s, as in the master playlist's BANDWIDTH. */
  bandwidth: number;
}

/** Served at channelInfoPath: the trust anchor (Ed25519 public key) and the ladder. */
export interface ChannelInfo {
  channel: string;
  /** Hex-encoded 32-byte Ed25519 public key that signs every manifest of this channel. */
  publicKey: string;
  renditions: RenditionInfo[];
  segmentDuration: number;
  pieceSize: number;
}
