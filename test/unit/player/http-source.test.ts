import { describe, expect, it } from 'vitest';
import { FetchHttpSource, HttpError, parseContentRange, type FetchFn } from '../../../player/src/http-source.js';
import { INIT_SEQ } from '../../../peer/core/types.js';

const segment = Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff);

function fakeOrigin(mode: 'ranges' | 'ignore-range' | 'short' | 'bad-content-range' | '404' | 'down') {
  const seen: Array<{ url: string; range: string | null }> = [];
  const fetch: FetchFn = async (url, init) => {
    const range = new Headers(init?.headers).get('range');
    seen.push({ url, range });
    if (mode === 'down') throw new TypeError('Failed to fetch');
    if (mode === '404') return new Response('gone', { status: 404 });
    if (url.endsWith('.manifest')) return new Response(new Uint8Array([1, 2, 3]), { status: 200 });
    if (mode === 'ignore-range' || !range) return new Response(segment, { status: 200 });
    const m = /^bytes=(\d+)-(\d+)$/.exec(range)!;
    const a = Number(m[1]);
    const b = Number(m[2]);
    const body = segment.slice(a, mode === 'short' ? b : b + 1);
    const cr = mode === 'bad-content-range' ? `bytes ${a + 1}-${b + 1}/1000` : `bytes ${a}-${b}/1000`;
    return new Response(body, { status: 206, headers: { 'content-range': cr } });
  };
  return { fetch, seen };
}

describe('FetchHttpSource', () => {
  it('requests byte ranges of the segment path and returns exactly those bytes', async () => {
    const o = fakeOrigin('ranges');
    const src = new FetchHttpSource({ channel: 'demo', baseUrl: 'http://origin:8080/', fetch: o.fetch });
    const got = await src.fetchRange({ rendition: '360p', seq: 42 }, 100, 300);
    expect(got).toEqual(segment.slice(100, 300));
    expect(o.seen).toEqual([{ url: 'http://origin:8080/live/demo/360p/seg_42.m4s', range: 'bytes=100-299' }]);
    expect(src.bytesReceived).toBe(200);
    const m = await src.fetchManifest({ rendition: '360p', seq: INIT_SEQ });
    expect(m).toEqual(new Uint8Array([1, 2, 3]));
    expect(o.seen[1].url).toBe('http://origin:8080/live/demo/360p/init.mp4.manifest');
  });

  it('slices a full 200 answer when the server ignores Range', async () => {
    const src = new FetchHttpSource({ channel: 'demo', fetch: fakeOrigin('ignore-range').fetch });
    expect(await src.fetchRange({ rendition: '360p', seq: 1 }, 900, 1000)).toEqual(segment.slice(900, 1000));
    await expect(src.fetchRange({ rendition: '360p', seq: 1 }, 900, 1200)).rejects.toBeInstanceOf(HttpError);
  });

  it('rejects short bodies, mismatched Content-Range, HTTP errors (with status) and network failures', async () => {
    const ref = { rendition: '360p', seq: 1 };
    await expect(new FetchHttpSource({ channel: 'demo', fetch: fakeOrigin('short').fetch }).fetchRange(ref, 0, 100)).rejects.toThrow(/wanted 100/);
    await expect(new FetchHttpSource({ channel: 'demo', fetch: fakeOrigin('bad-content-range').fetch }).fetchRange(ref, 0, 100)).rejects.toThrow(/Content-Range/);
    const e404 = await new FetchHttpSource({ channel: 'demo', fetch: fakeOrigin('404').fetch }).fetchRange(ref, 0, 100).catch((e: unknown) => e);
    expect(e404).toBeInstanceOf(HttpError);
    expect((e404 as HttpError).status).toBe(404);
    const down = new FetchHttpSource({ channel: 'demo', fetch: fakeOrigin('down').fetch });
    const eNet = await down.fetchManifest(ref).catch((e: unknown) => e);
    expect((eNet as HttpError).status).toBe(0);
    expect(down.failures).toBe(1);
    await expect(down.fetchRange(ref, 10, 5)).rejects.toBeInstanceOf(RangeError);
  });

  it('parses Content-Range', () => {
    expect(parseContentRange('bytes 0-99/1000')).toEqual({ start: 0, end: 99, total: 1000 });
    expect(parseContentRange('bytes 5-9/*')).toEqual({ start: 5, end: 9, total: null });
    expect(parseContentRange('bytes 9-5/10')).toBeNull();
    expect(parseContentRange(null)).toBeNull();
  });
});
