/**
 * End to end in real Chromium: the platform (tracker, origin with real ffmpeg and root peer, one
 * werift seeding peer) and two watch pages, each its own browser context and so its own peer.
 * Both videos must play for 30 s without a stall longer than 1 s, and at least one page must get
 * segment bytes from a peer. A screenshot of each page goes to test-output/.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './chromium.js';
import { sleep, startPlatform, type Platform } from './platform.js';

const CHANNEL = 'etest';
const WATCH_SECONDS = 30;
const SAMPLE_MS = 100;
const outDir = join(import.meta.dirname, '..', '..', 'test-output');

interface PageStats {
  bytesFromPeers: number;
  bytesFromOriginPeer: number;
  bytesFromHttp: number;
  bytesUploaded: number;
  peers: number;
  stalls: number;
  stalledMs: number;
  latencySeconds: number | null;
  currentTime: number;
  badPieces: number;
}

describe('watch page in Chromium', () => {
  let platform: Platform;
  let browser: Browser;

  beforeAll(async () => {
    mkdirSync(outDir, { recursive: true });
    platform = await startPlatform({ channel: CHANNEL });
    await platform.peer('seeder', { maxNeighbors: 16 });
    const t0 = Date.now();
    while (platform.origin.stats().segmentsPublished < 4 && Date.now() - t0 < 30_000) await sleep(200);
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await platform?.stop();
  });

  it('two pages play 30 s without a stall over 1 s, and share segments over WebRTC', async () => {
    const url = `${platform.origin.url.replace('127.0.0.1', platform.host)}/watch.html?channel=${CHANNEL}`;
    const pages: Page[] = [];
    for (let i = 0; i < 2; i++) {
      const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
      const page = await context.newPage();
      page.on('pageerror', (err) => console.log(`[page ${i}] error: ${err.message}`));
      await page.goto(url);
      pages.push(page);
    }
    // Wait until both videos play.
    for (const page of pages) {
      await page.waitForFunction(() => (document.querySelector('video')?.currentTime ?? 0) > 0.5, undefined, { timeout: 30_000 });
    }
    const lastProgress = pages.map(() => Date.now());
    const lastTime = pages.map(() => 0);
    const maxGap = pages.map(() => 0);
    const start = Date.now();
    const startTimes = await Promise.all(pages.map((p) => p.evaluate(() => document.querySelector('video')!.currentTime)));
    while (Date.now() - start < WATCH_SECONDS * 1000) {
      await sleep(SAMPLE_MS);
      const times = await Promise.all(pages.map((p) => p.evaluate(() => document.querySelector('video')!.currentTime)));
      const now = Date.now();
      times.forEach((t, i) => {
        if (t > lastTime[i]) {
          lastTime[i] = t;
          lastProgress[i] = now;
        }
        maxGap[i] = Math.max(maxGap[i], now - lastProgress[i]);
      });
    }
    const stats = (await Promise.all(pages.map((p) => p.evaluate(() => (window as any).starling.stats())))) as PageStats[];
    await Promise.all(pages.map((p, i) => p.screenshot({ path: join(outDir, `watch-page-${i}.png`) })));
    stats.forEach((s, i) =>
      console.log(`[e2e page ${i}] advanced ${(lastTime[i] - startTimes[i]).toFixed(1)} s, longest freeze ${maxGap[i]} ms, ` +
        `from peers ${s.bytesFromPeers} B, origin peer ${s.bytesFromOriginPeer} B, http ${s.bytesFromHttp} B, ` +
        `uploaded ${s.bytesUploaded} B, peers ${s.peers}, stalls ${s.stalls} (${s.stalledMs} ms), latency ${s.latencySeconds?.toFixed(1)} s`),
    );
    for (let i = 0; i < pages.length; i++) {
      expect(lastTime[i] - startTimes[i]).toBeGreaterThan(WATCH_SECONDS - 3);
      // The sampling period is the resolution of this measurement.
      expect(maxGap[i]).toBeLessThanOrEqual(1000 + SAMPLE_MS);
      expect(stats[i].badPieces).toBe(0);
    }
    expect(Math.max(...stats.map((s) => s.bytesFromPeers))).toBeGreaterThan(0);
  });
});
