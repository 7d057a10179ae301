/**
 * A file broadcast with `npm run broadcast` (WHIP) becomes a VoD recording when it ends: a
 * Chromium viewer plays it from the start, seeks to the middle and to the end (it ends), and a
 * second viewer that watches the same recording gets pieces from the first (P2P on VoD).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { findFfmpeg } from '../../server/ffmpeg.js';
import { parseMediaPlaylist } from '../../server/playlist.js';
import { channelState, currentTime, launchMediaChromium, openWatchPage, sleep, startBroadcastPlatform, waitFor, type BroadcastPlatform } from './broadcast-platform.js';
import { waitForEnded } from './chromium.js';

const KEY = 'vod-test-key-0123456789';
const CH = 'vodtest';
const root = join(import.meta.dirname, '..', '..');

describe('VoD after a broadcast', () => {
  let p: BroadcastPlatform;
  let browser: Browser;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'starling-vod-'));
    p = await startBroadcastPlatform({ channels: [{ channel: CH, streamKey: KEY }], origin: { source: null } });
    browser = await launchMediaChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await p?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('npm run broadcast plays a file live; afterwards it is VoD with seeking and P2P', async () => {
    const clip = join(dir, 'movie.mp4');
    const ff = findFfmpeg().path;
    expect(spawnSync(ff, ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25', '-f', 'lavfi', '-i', 'sine=frequency=300:sample_rate=48000',
      '-t', '20', '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-y', clip]).status).toBe(0);

    // Without the key the CLI refuses to run; with it, it broadcasts the file and exits at its end.
    const cli = (env: Record<string, string>) => spawn(join(root, 'node_modules/.bin/tsx'), ['server/broadcast.ts', '--file', clip, '--channel', CH, '--origin', p.base], {
      cwd: root, env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    const noKey = cli({ STARLING_STREAM_KEY: '' });
    expect(await new Promise((r) => noKey.once('exit', r))).toBe(1);
    const wrong = cli({ STARLING_STREAM_KEY: 'wrong-key-0123456789' });
    expect(await new Promise((r) => wrong.once('exit', r))).toBe(1);
    expect((await channelState(p.base, CH))!.state).toBe('idle');

    const run = cli({ STARLING_STREAM_KEY: KEY });
    let out = '';
    run.stdout!.on('data', (d) => { out += String(d); });
    run.stderr!.on('data', (d) => { out += String(d); });
    await waitFor('the broadcast to go live', async () => (await channelState(p.base, CH))?.state === 'live', 30_000);
    // the CLI prints its watch URL once it sees the channel live itself: a moment after the origin
    const watchLine = new RegExp(`Watch: .*watch\\.html\\?channel=${CH}`);
    await waitFor('the CLI to print the watch URL', async () => watchLine.test(out), 15_000);
    const code = await Promise.race([new Promise((r) => run.once('exit', r)), sleep(90_000).then(() => 'still running')]);
    expect(code, out).toBe(0);
    const ended = await waitFor('the end', async () => {
      const s = await channelState(p.base, CH);
      return s?.state === 'ended' ? s : null;
    }, 20_000);
    expect(ended.vod).toBe(true);
    const pl = parseMediaPlaylist(await (await fetch(`${p.base}/live/${CH}/360p/index.m3u8`)).text());
    expect(pl.endList).toBe(true);
    const recorded = pl.segments.reduce((s, x) => s + x.durationSec, 0);
    console.log(`[vod] recording: ${pl.segments.length} segments, ${recorded.toFixed(1)} s`);
    expect(recorded).toBeGreaterThan(14);

    // First viewer: from the start, then seek to the middle, then close to the end.
    const a = await openWatchPage(browser, p.base, CH, 'vod-a');
    await a.waitForFunction(() => (document.querySelector('video')?.currentTime ?? 0) > 1, undefined, { timeout: 30_000 });
    // The watch page lists the channel as a recording.
    await a.waitForFunction(() => [...document.querySelectorAll('#channel-list option')].some((o) => o.textContent === 'vodtest (recording)'), undefined, { timeout: 15_000 });
    const duration = await a.evaluate(() => document.querySelector('video')!.duration);
    expect(duration).toBeGreaterThan(14);
    expect(await currentTime(a)).toBeLessThan(duration / 2);
    await sleep(3000);
    await a.evaluate((t) => { document.querySelector('video')!.currentTime = t; }, duration / 2);
    await a.waitForFunction((t) => document.querySelector('video')!.currentTime > t + 1, duration / 2, { timeout: 30_000 });
    await a.evaluate((t) => { document.querySelector('video')!.currentTime = t; }, duration - 3);
    await waitForEnded(a, 30_000, 'vod viewer A');

    // Second viewer of the same recording: pieces come from the first.
    const b = await openWatchPage(browser, p.base, CH, 'vod-b');
    await b.waitForFunction(() => (document.querySelector('video')?.currentTime ?? 0) > 1, undefined, { timeout: 30_000 });
    await waitFor('the second viewer to get pieces from the first', async () =>
      (await b.evaluate(() => (window as any).starling.stats().bytesFromPeers as number)) > 0, 40_000, 500).catch(() => null);
    const [sa, sb] = (await Promise.all([a, b].map((pg) => pg.evaluate(() => (window as any).starling.stats())))) as { bytesFromPeers: number; bytesFromOriginPeer: number; bytesFromHttp: number; bytesUploaded: number; badPieces: number }[];
    console.log(`[vod] viewer A: uploaded ${sa.bytesUploaded} B, http ${sa.bytesFromHttp} B; viewer B: peers ${sb.bytesFromPeers} B, origin peer ${sb.bytesFromOriginPeer} B, http ${sb.bytesFromHttp} B`);
    expect(sb.bytesFromPeers).toBeGreaterThan(0);
    expect(sa.badPieces + sb.badPieces).toBe(0);
    await waitForEnded(b, 60_000, 'vod viewer B');
  });
});
