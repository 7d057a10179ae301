import { describe, expect, it } from 'vitest';
import {
  avcCodecFromInit, contiguousTail, masterPlaylist, mediaPlaylist, parseMasterPlaylist, parseMediaPlaylist,
} from '../../../server/playlist.js';
import { nextStartNumber } from '../../../server/channel.js';

describe('media playlist', () => {
  const segs = [10, 11, 12, 13].map((seq) => ({ seq, durationMs: 2000, createdAt: Date.UTC(2025, 0, 1, 0, 0, seq * 2) }));

  it('round-trips through the parser', () => {
    const text = mediaPlaylist({ segments: segs, segmentDuration: 2 });
    expect(text.startsWith('#EXTM3U\n#EXT-X-VERSION:7\n')).toBe(true);
    const p = parseMediaPlaylist(text);
    expect(p.version).toBe(7);
    expect(p.targetDuration).toBe(2);
    expect(p.mediaSequence).toBe(10);
    expect(p.mapUri).toBe('init.mp4');
    expect(p.endList).toBe(false);
    expect(p.segments.map((s) => s.uri)).toEqual(['seg_10.m4s', 'seg_11.m4s', 'seg_12.m4s', 'seg_13.m4s']);
    expect(p.segments.every((s) => s.durationSec === 2)).toBe(true);
    // Program date time: the first segment starts one duration before it was published.
    expect(p.segments[0].programDateTime).toBe(segs[0].createdAt - 2000);
  });

  it('rounds TARGETDURATION up to cover the longest segment', () => {
    const p = parseMediaPlaylist(mediaPlaylist({ segments: [{ seq: 1, durationMs: 2080 }, { seq: 2, durationMs: 1920 }], segmentDuration: 2 }));
    expect(p.targetDuration).toBe(3);
    expect(p.segments.map((s) => s.durationSec)).toEqual([2.08, 1.92]);
  });

  it('marks discontinuities and their sequence, and ENDLIST', () => {
    const text = mediaPlaylist({
      segments: [{ seq: 5, durationMs: 2000 }, { seq: 9, durationMs: 2000, discontinuity: true }],
      segmentDuration: 2, discontinuitySequence: 3, ended: true,
    });
    const p = parseMediaPlaylist(text);
    expect(p.discontinuitySequence).toBe(3);
    expect(p.segments.map((s) => s.discontinuity)).toEqual([false, true]);
    expect(p.endList).toBe(true);
  });

  it('ignores a half-written last line of an ffmpeg playlist', () => {
    const full = '#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-MAP:URI="init_0.mp4"\n#EXTINF:2.000000,\nseg_7.m4s\n#EXTINF:2.000000,\nseg_8.m4s\n';
    expect(parseMediaPlaylist(full).segments.map((s) => s.uri)).toEqual(['seg_7.m4s', 'seg_8.m4s']);
    expect(parseMediaPlaylist(full.slice(0, -4)).segments.map((s) => s.uri)).toEqual(['seg_7.m4s']);
    expect(parseMediaPlaylist(full).mapUri).toBe('init_0.mp4');
  });
});

describe('segment numbering (HLS numbers segments by position)', () => {
  it('a live playlist lists only the newest run of consecutive numbers', () => {
    const seq = (n: number) => n;
    expect(contiguousTail([10, 11, 12], seq)).toEqual([10, 11, 12]);
    expect(contiguousTail([10, 11, 18, 19, 20], seq)).toEqual([18, 19, 20]);
    expect(contiguousTail([10, 11, 12, 20], seq)).toEqual([20]);
    expect(contiguousTail([], seq)).toEqual([]);
    // What a player reads back: every listed segment's number is MEDIA-SEQUENCE + its position.
    const listed = contiguousTail([148, 155, 156, 157], seq);
    const p = parseMediaPlaylist(mediaPlaylist({ segments: listed.map((n) => ({ seq: n, durationMs: 2000 })), segmentDuration: 2 }));
    expect(p.segments.map((s, i) => `seg_${p.mediaSequence + i}.m4s`)).toEqual(p.segments.map((s) => s.uri));
  });

  it('an encoder restart within the process continues at the next number, however long it was away', () => {
    const epoch = Date.UTC(2024, 0, 1);
    expect(nextStartNumber(null, epoch + 10_000, 2)).toBe(5);
    expect(nextStartNumber(41, epoch + 10_000, 2)).toBe(42);
    // A publisher back after 9 s (and after an hour): still the next number, no gap.
    expect(nextStartNumber(41, epoch + 10_000 + 9_000, 2)).toBe(42);
    expect(nextStartNumber(41, epoch + 3_600_000, 2)).toBe(42);
    // A fresh process starts above anything an earlier run could have published.
    expect(nextStartNumber(null, epoch + 3_600_000, 2)).toBe(1800);
  });
});

describe('master playlist', () => {
  it('lists every rendition with BANDWIDTH, RESOLUTION and CODECS', () => {
    const text = masterPlaylist([
      { name: '360p', width: 640, height: 360, bandwidth: 950_400, codecs: 'avc1.42c01e,mp4a.40.2', frameRate: 25 },
      { name: '240p', width: 426, height: 240, bandwidth: 510_400, codecs: 'avc1.42c01e,mp4a.40.2' },
    ]);
    expect(text).toContain('#EXT-X-STREAM-INF:BANDWIDTH=950400,');
    expect(parseMasterPlaylist(text).variants).toEqual([
      { uri: '360p/index.m3u8', bandwidth: 950_400, resolution: '640x360', codecs: 'avc1.42c01e,mp4a.40.2' },
      { uri: '240p/index.m3u8', bandwidth: 510_400, resolution: '426x240', codecs: 'avc1.42c01e,mp4a.40.2' },
    ]);
  });
});

describe('avcCodecFromInit', () => {
  it('reads profile, compatibility and level from avcC', () => {
    const box = new Uint8Array([0, 0, 0, 20, 0x61, 0x76, 0x63, 0x43, 1, 0x42, 0xc0, 0x1e, 0xff, 0xe1]);
    const init = new Uint8Array(40);
    init.set(box, 10);
    expect(avcCodecFromInit(init)).toBe('avc1.42c01e');
    expect(avcCodecFromInit(new Uint8Array(64))).toBeNull();
  });
});
