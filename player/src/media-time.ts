/**
 * Pure helpers over media timing (no DOM globals: the element's TimeRanges and hls.js's figures
 * are passed in), shared by the watch page and the loader's deadline.
 */

/** The shape of HTMLMediaElement.buffered. */
export interface TimeRangesLike {
  readonly length: number;
  start(index: number): number;
  end(index: number): number;
}

/**
 * Seconds buffered contiguously ahead of `currentTime`, bridging holes up to `maxHole` seconds
 * (hls.js jumps small gaps itself). 0 when `currentTime` is not inside (or just before) a range.
 */
export function bufferAheadSeconds(ranges: TimeRangesLike, currentTime: number, maxHole = 0.5): number {
  if (!Number.isFinite(currentTime)) return 0;
  const spans: Array<[number, number]> = [];
  for (let i = 0; i < ranges.length; i++) spans.push([ranges.start(i), ranges.end(i)]);
  spans.sort((a, b) => a[0] - b[0]);
  let end: number | null = null;
  for (const [s, e] of spans) {
    if (end === null) {
      if (s - maxHole <= currentTime && currentTime < e) end = e;
    } else if (s - end <= maxHole) {
      end = Math.max(end, e);
    } else {
      break;
    }
  }
  return end === null ? 0 : Math.max(0, end - currentTime);
}

export interface LatencyInputs {
  /** hls.latency: estimated live edge (end of the last playlist + time since it was loaded) - currentTime; 0 before known. */
  hlsLatency: number | null | undefined;
  /** End of the newest loaded media playlist (hls.latestLevelDetails.edge), if any. */
  playlistEdge: number | null | undefined;
  currentTime: number;
  /** False for VoD (no live edge). */
  live: boolean;
}

/**
 * Distance behind the live edge, in seconds: hls.latency when hls.js has computed it (it
 * accounts for the playlist's age), else the newest playlist's end - currentTime; null for VoD
 * or before a playlist is loaded.
 */
export function liveLatencySeconds(i: LatencyInputs): number | null {
  if (!i.live) return null;
  if (typeof i.hlsLatency === 'number' && Number.isFinite(i.hlsLatency) && i.hlsLatency > 0) return i.hlsLatency;
  if (typeof i.playlistEdge === 'number' && Number.isFinite(i.playlistEdge) && i.playlistEdge > 0) {
    return Math.max(0, i.playlistEdge - i.currentTime);
  }
  return null;
}

/** Share of received video bytes that came from (non-origin) peers, in [0, 1]; 0 before any byte. */
export function offloadRatio(bytesFromPeers: number, bytesFromOriginPeer: number, bytesFromHttp: number): number {
  const total = bytesFromPeers + bytesFromOriginPeer + bytesFromHttp;
  return total > 0 ? bytesFromPeers / total : 0;
}

export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v.toFixed(0) : v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

export function formatSeconds(s: number | null): string {
  if (s === null || !Number.isFinite(s)) return '–';
  return `${s.toFixed(1)} s`;
}

export function formatPercent(ratio: number): string {
  if (!Number.isFinite(ratio)) return '–';
  return `${(ratio * 100).toFixed(1)} %`;
}
