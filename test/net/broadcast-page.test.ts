/**
 * The broadcaster page in real Chromium with its fake camera and microphone goes live over WHIP
 * (the browser's own RTCPeerConnection → werift on the origin → ffmpeg → the channel's ladder);
 * a second page watches the channel for 30 s; a third joins and gets pieces from the second; the
 * broadcaster stops and the viewers reach the end. Figures printed: go-live time, glass-to-glass
 * latency (a clock burnt into the frames by the broadcaster page, read back from the viewer's
 * video: both pages run on this machine's clock).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { readClockLatency } from '../../player/src/broadcast/clock-code.js';
import {
  channelState, currentTime, launchMediaChromium, openWatchPage, sleep, startBroadcastPlatform, waitFor, type BroadcastPlatform,
} from './broadcast-platform.js';
import { waitForEnded } from './chromium.js';

const KEY = 'page-test-key-0123456789';
const CH = 'studio';
const WATCH_SECONDS = 30;
const outDir = join(import.meta.dirname, '..', '..', 'test-output');

interface PageStats { bytesFromPeers: number; bytesFromOriginPeer: number; bytesFromHttp: number; peers: number; badPieces: number; stalls: number }

describe('broadcaster page in Chromium', () => {
  let p: BroadcastPlatform;
  let browser: Browser;

  beforeAll(async () => {
    mkdirSync(outDir, { recursive: true });
    // The default channel waits for an ingest too: no test pattern competing for the CPU.
    p = await startBroadcastPlatform({ channels: [{ channel: CH, streamKey: KEY }], origin: { source: null } });
    browser = await launchMediaChromium([p.base]);
  });
  afterAll(async () => {
    await browser?.close();
    await p?.stop();
  });

  it('goes live over WHIP from the fake camera; viewers watch 30 s, share pieces and see the end', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const studio = await ctx.newPage();
    studio.on('pageerror', (err) => console.log(`[studio] page error: ${err.message}`));
    studio.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.log(`[studio] ${m.text()}`); });
    await studio.goto(`${p.base}/broadcast.html?channel=${CH}&quality=480&clock=1`);
    await studio.waitForFunction(() => (document.getElementById('channel') as HTMLInputElement).value === 'studio');

    // A wrong key is refused and shown; nothing starts.
    await studio.fill('#key', 'wrong-key-0123456789');
    await studio.click('#live-btn');
    const refused = await waitFor('the refusal', async () => {
      const text = await studio.evaluate(() => document.getElementById('status')?.textContent ?? '');
      return /Refused|refused|Could not/.test(text) ? text : null;
    }, 20_000).catch(async (err) => {
      throw new Error(`${String(err)}; status: ${await studio.evaluate(() => document.getElementById('status')?.textContent)}`);
    });
    expect(refused).toMatch(/Refused: wrong stream key \(HTTP 403\)/);
    expect((await channelState(p.base, CH))!.state).toBe('idle');

    await studio.fill('#key', KEY);
    const t0 = Date.now();
    await studio.click('#live-btn');
    await studio.waitForFunction(() => window.starlingBroadcast?.state() === 'live', undefined, { timeout: 20_000 });
    await waitFor('the master playlist', async () => (await fetch(`${p.base}/live/${CH}/master.m3u8`)).status === 200, 40_000);
    const goLive = Date.now() - t0;
    const st = (await channelState(p.base, CH))!;
    console.log(`[page] go-live: click to master playlist ${goLive} ms (publish to first signed segment ${st.goLiveMs} ms)`);

    const viewer = await openWatchPage(browser, p.base, CH, 'viewer');
    await viewer.waitForFunction(() => (document.querySelector('video')?.currentTime ?? 0) > 0.5, undefined, { timeout: 40_000 });
    // Watch 30 s; meanwhile a third page joins.
    let joiner: Page | null = null;
    const latencies: number[] = [];
    const start = await currentTime(viewer);
    let last = start;
    let lastProgress = Date.now();
    let longestFreeze = 0;
    const t1 = Date.now();
    for (let i = 0; Date.now() - t1 < WATCH_SECONDS * 1000 && i < 1000; i++) {
      await sleep(250);
      const t = await currentTime(viewer);
      const now = Date.now();
      if (t > last) { last = t; lastProgress = now; }
      longestFreeze = Math.max(longestFreeze, now - lastProgress);
      if (i % 8 === 0) {
        const l = await viewer.evaluate(readClockLatency);
        if (l !== null && l < 60_000) latencies.push(l);
      }
      if (!joiner && Date.now() - t1 > 8000) joiner = await openWatchPage(browser, p.base, CH, 'joiner');
    }
    expect(joiner).not.toBeNull();
    await joiner!.waitForFunction(() => (document.querySelector('video')?.currentTime ?? 0) > 0.5, undefined, { timeout: 40_000 }).catch(async (err) => {
      const info = await joiner!.evaluate(() => ({ status: document.getElementById('status')?.textContent, stats: (window as any).starling?.stats() }));
      throw new Error(`${String(err)}: ${JSON.stringify(info)}`);
    });
    await waitFor('the third page to get pieces from a peer', async () =>
      (await joiner!.evaluate(() => (window as any).starling.stats().bytesFromPeers as number)) > 0, 40_000, 500);

    const studioStats = await studio.evaluate(() => window.starlingBroadcast!.stats());
    const [vs, js] = (await Promise.all([viewer, joiner!].map((pg) => pg.evaluate(() => (window as any).starling.stats())))) as PageStats[];
    await Promise.all([studio.screenshot({ path: join(outDir, 'broadcast-studio.png') }), viewer.screenshot({ path: join(outDir, 'broadcast-viewer.png') })]);
    latencies.sort((a, b) => a - b);
    const median = latencies.length ? latencies[Math.floor(latencies.length / 2)] : null;
    console.log(`[page] viewer advanced ${(last - start).toFixed(1)} s in ${WATCH_SECONDS} s, longest freeze ${longestFreeze} ms; ` +
      `glass-to-glass median ${median} ms over ${latencies.length} readings (min ${latencies[0]}, max ${latencies[latencies.length - 1]})`);
    console.log(`[page] broadcaster: ${studioStats.codec} ${studioStats.width}x${studioStats.height} ${studioStats.bitrateKbps} kbit/s, ` +
      `${studioStats.framesSent} frames, ${studioStats.connectionState}, WHIP answer after ${studioStats.connectMs} ms`);
    console.log(`[page] viewer: peers ${vs.bytesFromPeers} B, origin peer ${vs.bytesFromOriginPeer} B, http ${vs.bytesFromHttp} B; ` +
      `joiner: peers ${js.bytesFromPeers} B, origin peer ${js.bytesFromOriginPeer} B, http ${js.bytesFromHttp} B`);
    expect(last - start).toBeGreaterThan(WATCH_SECONDS - 3);
    expect(studioStats.connectionState).toBe('connected');
    expect(studioStats.framesSent).toBeGreaterThan(100);
    expect(js.bytesFromPeers).toBeGreaterThan(0);
    expect(vs.badPieces + js.badPieces).toBe(0);

    // Stop: the viewers reach the end of the broadcast.
    await studio.click('#stop-btn');
    await waitFor('the channel to end', async () => (await channelState(p.base, CH))?.state === 'ended', 20_000);
    for (const pg of [viewer, joiner!]) {
      await waitForEnded(pg, 60_000, 'broadcast viewer');
    }
    expect(await studio.evaluate(() => window.starlingBroadcast!.state())).toBe('idle');
  });
});
