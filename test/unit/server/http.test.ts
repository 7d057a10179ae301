import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { nobleCrypto } from '../../../peer/core/crypto.js';
import { decodeManifest, describeSegment, signManifest } from '../../../peer/core/manifest.js';
import { INIT_SEQ } from '../../../peer/core/types.js';
import { buildOriginHttp, type HttpChannel } from '../../../server/http.js';
import { OriginMetrics } from '../../../server/metrics.js';
import { mediaPlaylist } from '../../../server/playlist.js';
import { SegmentWindow } from '../../../server/segment-window.js';
import { nodeCrypto, signerFromSeed } from '../../../server/signer.js';

const signer = signerFromSeed(new Uint8Array(32).fill(9));
const win = new SegmentWindow(2);
const data = new Uint8Array(50_000).map((_, i) => i & 0xff);
for (const seq of [INIT_SEQ, 7, 8, 9]) {
  const d = seq === INIT_SEQ ? data.subarray(0, 600) : data;
  const manifest = signManifest(describeSegment(nodeCrypto, {
    channel: 'demo', rendition: '360p', seq, pieceSize: 16_384, durationMs: seq === INIT_SEQ ? 0 : 2000, createdAt: Date.now(),
  }, d), signer.sign);
  win.add({ ref: { rendition: '360p', seq }, manifest, data: d, discontinuity: false });
}
const channel: HttpChannel = {
  info: () => ({ channel: 'demo', publicKey: signer.publicKeyHex, renditions: [{ name: '360p', width: 640, height: 360, bandwidth: 1e6 }], segmentDuration: 2, pieceSize: 16_384 }),
  masterPlaylist: () => null,
  mediaPlaylist: (r) => (r === '360p' ? mediaPlaylist({ segments: win.latest(r).map((s) => ({ seq: s.ref.seq, durationMs: 2000 })), segmentDuration: 2 }) : null),
  segment: (ref) => win.get(ref),
};

let app: FastifyInstance;
let pagesDir: string;
let appWithPages: FastifyInstance;
const metrics = new OriginMetrics();
beforeAll(async () => {
  app = await buildOriginHttp({ channels: new Map([['demo', channel]]), defaultChannel: 'demo', metrics, playerDir: join(tmpdir(), 'starling-no-such-dir'), trackerPort: 8123 });
  pagesDir = await mkdtemp(join(tmpdir(), 'starling-pages-'));
  await writeFile(join(pagesDir, 'watch.html'), '<!doctype html><title>watch</title>');
  appWithPages = await buildOriginHttp({ channels: new Map([['demo', channel]]), defaultChannel: 'demo', metrics: new OriginMetrics(), playerDir: pagesDir, publicTrackerUrl: 'wss://t.example/ws' });
});
afterAll(async () => {
  await app.close();
  await appWithPages.close();
  await rm(pagesDir, { recursive: true, force: true });
});

describe('origin HTTP', () => {
  it('serves segments with CORS, types and Range', async () => {
    const full = await app.inject({ url: '/live/demo/360p/seg_8.m4s' });
    expect(full.statusCode).toBe(200);
    expect(full.headers['content-type']).toBe('video/iso.segment');
    expect(full.headers['access-control-allow-origin']).toBe('*');
    expect(full.headers['accept-ranges']).toBe('bytes');
    expect(full.rawPayload.equals(Buffer.from(data))).toBe(true);

    const part = await app.inject({ url: '/live/demo/360p/seg_8.m4s', headers: { range: 'bytes=16384-32767' } });
    expect(part.statusCode).toBe(206);
    expect(part.headers['content-range']).toBe(`bytes 16384-32767/${data.length}`);
    expect(part.rawPayload.equals(Buffer.from(data.subarray(16_384, 32_768)))).toBe(true);

    const suffix = await app.inject({ url: '/live/demo/360p/seg_8.m4s', headers: { range: 'bytes=-10' } });
    expect(suffix.statusCode).toBe(206);
    expect(suffix.rawPayload.length).toBe(10);

    const bad = await app.inject({ url: '/live/demo/360p/seg_8.m4s', headers: { range: 'bytes=60000-' } });
    expect(bad.statusCode).toBe(416);
    expect(bad.headers['content-range']).toBe(`bytes */${data.length}`);

    const init = await app.inject({ url: '/live/demo/360p/init.mp4' });
    expect(init.statusCode).toBe(200);
    expect(init.headers['content-type']).toBe('video/mp4');
    expect(init.rawPayload.length).toBe(600);
  });

  it('serves manifests that verify, and 404s unknown or evicted things', async () => {
    const res = await app.inject({ url: '/live/demo/360p/seg_9.m4s.manifest' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/octet-stream');
    const m = decodeManifest(new Uint8Array(res.rawPayload), signer.publicKey, nobleCrypto);
    expect(m.seq).toBe(9);
    const initM = await app.inject({ url: '/live/demo/360p/init.mp4.manifest' });
    expect(decodeManifest(new Uint8Array(initM.rawPayload), signer.publicKey, nobleCrypto).seq).toBe(INIT_SEQ);
    for (const url of [
      '/live/demo/360p/seg_7.m4s', '/live/demo/360p/seg_7.m4s.manifest', '/live/demo/360p/seg_99.m4s', '/live/demo/240p/seg_8.m4s',
      '/live/other/360p/seg_8.m4s', '/live/demo/360p/seg_x.m4s', '/live/demo/240p/index.m3u8', '/live/other/channel.json', '/nope',
    ]) {
      expect((await app.inject({ url })).statusCode, url).toBe(404);
    }
    expect((await app.inject({ url: '/live/demo/master.m3u8' })).statusCode).toBe(404); // not ready yet
  });

  it('serves playlists, channel.json and config.json', async () => {
    const pl = await app.inject({ url: '/live/demo/360p/index.m3u8' });
    expect(pl.statusCode).toBe(200);
    expect(pl.headers['content-type']).toBe('application/vnd.apple.mpegurl');
    expect(pl.headers['cache-control']).toBe('no-cache');
    expect(pl.body).toContain('seg_9.m4s');
    const info = (await app.inject({ url: '/live/demo/channel.json' })).json();
    expect(info.publicKey).toBe(signer.publicKeyHex);
    const cfg = (await app.inject({ url: '/config.json', headers: { host: 'watch.example:8080' } })).json();
    expect(cfg).toEqual({ trackerUrl: 'ws://watch.example:8123/ws', defaultChannel: 'demo' });
    const cfg2 = (await appWithPages.inject({ url: '/config.json' })).json();
    expect(cfg2.trackerUrl).toBe('wss://t.example/ws');
    const pre = await app.inject({ method: 'OPTIONS', url: '/live/demo/360p/seg_8.m4s' });
    expect(pre.statusCode).toBe(204);
    expect(pre.headers['access-control-allow-headers']).toBe('Range');
  });

  it('redirects / to the watch page; 503 when the pages are not built', async () => {
    const r = await app.inject({ url: '/' });
    expect(r.statusCode).toBe(302);
    expect(r.headers.location).toBe('/watch.html?channel=demo');
    const missing = await app.inject({ url: '/watch.html?channel=demo' });
    expect(missing.statusCode).toBe(503);
    expect(missing.body).toContain('npm run build:player');
    const page = await appWithPages.inject({ url: '/watch.html?channel=demo' });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('<title>watch</title>');
    expect((await appWithPages.inject({ url: '/' })).statusCode).toBe(302);
    expect((await appWithPages.inject({ url: '/metrics' })).statusCode).toBe(200);
  });

  it('counts bytes served by kind, range requests and requests by route', async () => {
    const text = await (await app.inject({ url: '/metrics' })).body;
    expect(text).toMatch(/starling_origin_http_bytes_total\{kind="segment"\} \d+/);
    expect(text).toMatch(/starling_origin_http_bytes_total\{kind="manifest"\} \d+/);
    expect(text).toMatch(/starling_origin_http_bytes_total\{kind="playlist"\} \d+/);
    expect(text).toMatch(/starling_origin_http_range_requests_total 2/);
    expect(text).toContain('route="/live/:channel/:rendition/seg_:seq.m4s",status="206"');
    expect(text).toContain('route="/live/:channel/:rendition/seg_:seq.m4s",status="416"');
    expect(text).toContain('starling_origin_last_segment_age_seconds -1');
    expect(metrics.snapshot().httpBytesOut).toBeGreaterThan(data.length + 16_384 + 10 + 600);
    const health = await app.inject({ url: '/healthz' });
    expect(health.statusCode).toBe(200);
  });
});
