import { describe, expect, it } from 'vitest';
import {
  bufferAheadSeconds, formatBytes, formatPercent, liveLatencySeconds, offloadRatio, type TimeRangesLike,
} from '../../../player/src/media-time.js';

const ranges = (...r: Array<[number, number]>): TimeRangesLike => ({
  length: r.length,
  start: (i) => r[i][0],
  end: (i) => r[i][1],
});

describe('bufferAheadSeconds', () => {
  it('is 0 with nothing buffered or the playhead outside every range', () => {
    expect(bufferAheadSeconds(ranges(), 0)).toBe(0);
    expect(bufferAheadSeconds(ranges([10, 20]), 25)).toBe(0);
    expect(bufferAheadSeconds(ranges([10, 20]), 5)).toBe(0);
  });
  it('measures to the end of the playhead range, bridging small holes only', () => {
    expect(bufferAheadSeconds(ranges([10, 20]), 12)).toBe(8);
    expect(bufferAheadSeconds(ranges([10, 20], [20.2, 24]), 12)).toBeCloseTo(12);
    expect(bufferAheadSeconds(ranges([10, 20], [22, 24]), 12)).toBe(8);
    expect(bufferAheadSeconds(ranges([22, 24], [10, 20]), 12)).toBe(8);
  });
  it('counts a range starting just ahead of the playhead (live start)', () => {
    expect(bufferAheadSeconds(ranges([100.2, 104]), 100)).toBeCloseTo(4);
  });
});

describe('liveLatencySeconds', () => {
  it('prefers hls.latency, falls back to the playlist edge, null for VoD/unknown', () => {
    expect(liveLatencySeconds({ hlsLatency: 6.5, playlistEdge: 200, currentTime: 190, live: true })).toBe(6.5);
    expect(liveLatencySeconds({ hlsLatency: 0, playlistEdge: 200, currentTime: 194, live: true })).toBe(6);
    expect(liveLatencySeconds({ hlsLatency: undefined, playlistEdge: undefined, currentTime: 0, live: true })).toBeNull();
    expect(liveLatencySeconds({ hlsLatency: 6, playlistEdge: 200, currentTime: 190, live: false })).toBeNull();
  });
});

describe('formatting', () => {
  it('offload is the peers share of all received bytes', () => {
    expect(offloadRatio(0, 0, 0)).toBe(0);
    expect(offloadRatio(90, 5, 5)).toBeCloseTo(0.9);
    expect(formatPercent(0.905)).toBe('90.5 %');
  });
  it('formats bytes', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(50 * 1024 * 1024)).toBe('50.0 MiB');
  });
});
