/**
 * RTMP ingest: ffmpeg pushes a test clip to rtmp://HOST/live/<channel>?key=… — with a wrong key
 * it is refused and nothing starts; with the right key a Chromium viewer plays it, and when the
 * clip ends (ffmpeg sends FCUnpublish/deleteStream) the broadcast ends and the viewer sees the end.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { findFfmpeg } from '../../server/ffmpeg.js';
import { parsePublishTarget } from '../../server/rtmp.js';
import { channelState, launchMediaChromium, openWatchPage, startBroadcastPlatform, waitFor, watchFor, type BroadcastPlatform } from './broadcast-platform.js';
import { waitForEnded } from './chromium.js';

const KEY = 'rtmp-test-key-0123456789';
const CH = 'rtmptest';

function push(ffmpeg: string, clip: string, url: string): { done: Promise<number | null>; output: () => string; kill: () => void } {
  const p = spawn(ffmpeg, ['-hide_banner', '-loglevel', 'error', '-nostdin', '-re', '-i', clip, '-c', 'copy', '-f', 'flv', url], { stdio: ['ignore', 'ignore', 'pipe'] });
  let out = '';
  p.stderr.on('data', (d) => { out += String(d); });
  return { done: new Promise((r) => p.once('exit', (c) => r(c))), output: () => out, kill: () => p.kill('SIGKILL') };
}

describe('RTMP ingest', () => {
  let p: BroadcastPlatform;
  let browser: Browser;
  let dir: string;
  let clip: string;
  const ffmpeg = findFfmpeg().path;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'starling-rtmp-'));
    clip = join(dir, 'clip.mp4');
    const r = spawnSync(ffmpeg, ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25', '-f', 'lavfi', '-i', 'sine=frequency=500:sample_rate=48000',
      '-t', '24', '-c:v', 'libx264', '-preset', 'veryfast', '-g', '50', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '64k', '-y', clip]);
    expect(r.status).toBe(0);
    p = await startBroadcastPlatform({ channels: [{ channel: CH, streamKey: KEY }], origin: { source: null, rtmpPort: 0 } });
    browser = await launchMediaChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await p?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('parses both URL forms', () => {
    expect(parsePublishTarget('live', 'chan?key=abc')).toEqual({ channel: 'chan', key: 'abc' });
    expect(parsePublishTarget('live/chan', 'abc')).toEqual({ channel: 'chan', key: 'abc' });
    expect(parsePublishTarget('live/chan', '')).toEqual({ channel: 'chan', key: null });
    expect(parsePublishTarget('other', 'chan')).toBeNull();
  });

  it('refuses a wrong key (nothing starts) and plays a clip pushed with the right key to its end', async () => {
    const rtmp = `rtmp://${p.host}:${p.origin.rtmpPort}/live`;
    const bad = push(ffmpeg, clip, `${rtmp}/${CH}?key=wrong-key-0123456789`);
    const badCode = await bad.done;
    expect(badCode).not.toBe(0);
    const none = push(ffmpeg, clip, `${rtmp}/${CH}`);
    expect(await none.done).not.toBe(0);
    expect((await channelState(p.base, CH))!.state).toBe('idle');
    expect((await fetch(`${p.base}/live/${CH}/master.m3u8`)).status).toBe(404);
    const metrics = await (await fetch(`${p.base}/metrics`)).text();
    expect(metrics).toMatch(/starling_origin_ingest_rejected_total\{protocol="rtmp",reason="auth-wrong"\} 1/);

    const t0 = Date.now();
    const good = push(ffmpeg, clip, `${rtmp}/${CH}?key=${KEY}`);
    try {
      await waitFor('the master playlist', async () => (await fetch(`${p.base}/live/${CH}/master.m3u8`)).status === 200, 30_000);
      console.log(`[rtmp] go-live: push to master playlist ${Date.now() - t0} ms`);
      const viewer = await openWatchPage(browser, p.base, CH, 'rtmp-viewer');
      await viewer.waitForFunction(() => (document.querySelector('video')?.currentTime ?? 0) > 0.5, undefined, { timeout: 30_000 });
      const w = await watchFor(viewer, 6);
      expect(w.advanced).toBeGreaterThan(4);
      expect(await good.done).toBe(0);
      await waitFor('the end of the broadcast', async () => (await channelState(p.base, CH))?.state === 'ended', 20_000);
      await waitForEnded(viewer, 60_000, 'rtmp viewer');
      console.log(`[rtmp] viewer reached the end at ${(await viewer.evaluate(() => document.querySelector('video')!.currentTime)).toFixed(1)} s`);
    } finally {
      good.kill();
    }
  });
});
