/**
 * The dashboard end to end in real Chromium: the platform (tracker, origin with ffmpeg and root
 * peer), a werift seeding peer and two watch pages. The dashboard page must show the three peers
 * (2 viewers + 1 seeder) and a non-zero offload within 20 s, and its overlay graph must draw the
 * edges the pages' engines report (who sent video to whom). Screenshots go to test-output/
 * (dashboard.png at 1366x768, dashboard-phone.png at 390x844). A second tracker with an admin
 * token checks that the page asks for it and says when it is wrong.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium } from './chromium.js';
import { sleep, startPlatform, type Platform } from './platform.js';
import { launchTracker, type LaunchedTracker } from '../../tracker/launch.js';

const CHANNEL = 'dtest';
const outDir = join(import.meta.dirname, '..', '..', 'test-output');

interface Drawn {
  nodes: Array<{ id: string; kind: string }>;
  edges: Array<{ from: string; to: string }>;
}

describe('dashboard in Chromium', () => {
  let platform: Platform;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  let locked: LaunchedTracker | null = null;

  beforeAll(async () => {
    mkdirSync(outDir, { recursive: true });
    platform = await startPlatform({ channel: CHANNEL });
    await platform.peer('seeder', { maxNeighbors: 16 });
    const t0 = Date.now();
    while (platform.origin.stats().segmentsPublished < 4 && Date.now() - t0 < 30_000) await sleep(200);
    browser = await launchChromium();
  });

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close();
    await locked?.close();
    await platform?.stop();
  });

  async function page(viewport: { width: number; height: number }, url: string, name: string): Promise<Page> {
    const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
    contexts.push(context);
    const p = await context.newPage();
    p.on('pageerror', (err) => console.log(`[${name}] page error: ${err.message}`));
    p.on('console', (m) => {
      if (m.type() === 'error') console.log(`[${name}] console error: ${m.text()}`);
    });
    await p.goto(url);
    return p;
  }

  it('shows the swarm, the offload and the overlay live', async () => {
    const base = platform.origin.url.replace('127.0.0.1', platform.host);
    const viewers: Page[] = [];
    for (let i = 0; i < 2; i++) viewers.push(await page({ width: 1366, height: 768 }, `${base}/watch.html?channel=${CHANNEL}`, `viewer ${i}`));
    for (const v of viewers) await v.waitForFunction(() => (document.querySelector('video')?.currentTime ?? 0) > 0.5, undefined, { timeout: 30_000 });

    const dash = await page({ width: 1366, height: 768 }, `${base}/dashboard.html?channel=${CHANNEL}`, 'dashboard');
    const opened = Date.now();
    // Three peers (2 viewers + the seeder) and a non-zero offload, as drawn on the page.
    await dash.waitForFunction(
      () => {
        const text = (id: string) => document.getElementById(id)?.textContent ?? '';
        const pct = parseFloat(text('k-offload-total'));
        return text('k-viewers') === '2' && text('k-seeders') === '1' && pct > 0;
      },
      undefined,
      { timeout: 20_000, polling: 200 },
    );
    const shownAfterMs = Date.now() - opened;

    // The graph: the nodes by kind, and the edges the viewers' engines report.
    const pageIds = await Promise.all(viewers.map((v) => v.evaluate(() => (window as any).starling.stats().peerId as string)));
    const truth = await Promise.all(
      viewers.map((v) =>
        v.evaluate(() =>
          ((window as any).starling.engine.neighborStats() as Array<{ peerId: string; bytesReceived: number; bytesSent: number }>)
            .filter((n) => n.bytesReceived > 0)
            .map((n) => n.peerId),
        ),
      ),
    );
    const wanted = truth.flatMap((froms, i) => froms.map((from) => `${from}>${pageIds[i]}`));
    expect(wanted.length).toBeGreaterThan(0);
    // Counters the pages have now reach the tracker with their next report (every 5 s).
    await dash.waitForFunction(
      (want: string[]) => {
        const drawn = new Set((window as any).starlingDashboard.drawnEdges().map((e: any) => `${e.from}>${e.to}`));
        return want.every((k) => drawn.has(k));
      },
      wanted,
      { timeout: 15_000, polling: 250 },
    );
    await sleep(2500); // one more live update, so the screenshot shows settled charts
    await dash.screenshot({ path: join(outDir, 'dashboard.png'), fullPage: true });
    await dash.screenshot({ path: join(outDir, 'dashboard-viewport.png') });
    const drawn = (await dash.evaluate(() => ({
      nodes: (window as any).starlingDashboard.drawnNodes(),
      edges: (window as any).starlingDashboard.drawnEdges(),
    }))) as Drawn;
    const kinds = drawn.nodes.map((n) => n.kind).sort();
    expect(kinds).toEqual(['browser', 'browser', 'origin', 'seeder']);
    const ids = new Set(drawn.nodes.map((n) => n.id));
    for (const e of drawn.edges) {
      expect(ids.has(e.from) && ids.has(e.to)).toBe(true);
      expect(e.from).not.toBe(e.to);
    }
    // Every edge drawn into a viewer comes from one of its neighbors (a sender may count bytes the
    // viewer dropped as redundant, so the edge can exist with nothing received yet).
    const neighbors = await Promise.all(
      viewers.map((v) => v.evaluate(() => ((window as any).starling.engine.neighborStats() as Array<{ peerId: string }>).map((n) => n.peerId))),
    );
    for (const e of drawn.edges) {
      const i = pageIds.indexOf(e.to);
      if (i >= 0) expect(neighbors[i], `${e.from}>${e.to}`).toContain(e.from);
    }
    const originId = drawn.nodes.find((n) => n.kind === 'origin')!.id;
    const seederId = drawn.nodes.find((n) => n.kind === 'seeder')!.id;
    expect(drawn.edges.some((e) => e.from === originId)).toBe(true);
    // Each viewer gets video from someone in the overlay, and the seeder is linked in.
    for (const id of pageIds) expect(drawn.edges.some((e) => e.to === id), id).toBe(true);
    expect(drawn.edges.some((e) => e.from === seederId || e.to === seederId)).toBe(true);

    // The peer table lists all four, the feed shows the joins, nothing shows an address.
    const table = await dash.evaluate(() => [...document.querySelectorAll('#peers tbody tr')].map((tr) => (tr as HTMLElement).dataset.peer));
    expect(table).toHaveLength(4);
    const feed = await dash.evaluate(() => (window as any).starlingDashboard.events().map((e: any) => e.type));
    expect(feed).toContain('join');
    const body = await dash.evaluate(() => document.body.innerText);
    expect(body).not.toContain(platform.host);
    const snap = await dash.evaluate(() => (window as any).starlingDashboard.snapshot());
    console.log(
      `[dashboard e2e] three peers + offload shown ${shownAfterMs} ms after opening; offload ${(snap.offloadTotal * 100).toFixed(1)} % ` +
        `(window ${snap.offload === null ? '–' : (snap.offload * 100).toFixed(1)} %, bound ${(snap.offloadBound * 100).toFixed(0)} %), ` +
        `origin upload ${Math.round((snap.originUploadBps * 8) / 1000)} kbit/s, edges ${drawn.edges.map((e) => `${e.from.slice(0, 6)}>${e.to.slice(0, 6)}`).join(' ')}, ` +
        `startup p50 ${snap.startupMsP50} ms, behind live p50 ${snap.latencyMsP50} ms, rebuffering ${snap.rebufferingRatio}`,
    );

    // Phone-sized: one column, nothing wider than the screen.
    const phone = await page({ width: 390, height: 844 }, `${base}/dashboard.html?channel=${CHANNEL}`, 'phone');
    await phone.waitForFunction(() => document.getElementById('k-viewers')?.textContent === '2', undefined, { timeout: 20_000 });
    await sleep(500);
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await phone.screenshot({ path: join(outDir, 'dashboard-phone.png'), fullPage: true });
  });

  it('asks for the admin token and says when it is wrong', async () => {
    locked = await launchTracker({ port: 0, host: platform.host, stunPort: 0, adminToken: 'let-me-in' });
    const base = platform.origin.url.replace('127.0.0.1', platform.host);
    const p = await page({ width: 1366, height: 768 }, `${base}/dashboard.html?channel=${CHANNEL}&tracker=${encodeURIComponent(locked.wsUrls[0])}`, 'locked');
    await p.waitForSelector('#auth:not([hidden])', { timeout: 10_000 });
    expect(await p.textContent('#auth-msg')).toMatch(/requires an admin token/);
    await p.fill('#auth-token', 'wrong');
    await p.click('#auth-form button');
    await p.waitForFunction(() => /wrong/.test(document.getElementById('auth-msg')?.textContent ?? ''), undefined, { timeout: 10_000 });
    await p.fill('#auth-token', 'let-me-in');
    await p.click('#auth-form button');
    await p.waitForSelector('#auth[hidden]', { state: 'attached', timeout: 10_000 });
    expect(await p.evaluate(() => localStorage.getItem('starling.adminToken'))).toBe('let-me-in');
  });
});
