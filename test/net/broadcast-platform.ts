/**
 * Shared by the broadcast tests: a tracker and an origin with ingest channels (WHIP, RTMP),
 * inside the private network namespace, plus Chromium with a fake camera and microphone.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { pino } from 'pino';
import { launchTracker, type LaunchedTracker } from '../../tracker/launch.js';
import { startOrigin, type ChannelConfig, type Origin, type OriginOptions } from '../../server/origin.js';
import { CHROMIUM_ARGS, netnsHost } from './chromium.js';

export interface BroadcastPlatform {
  tracker: LaunchedTracker;
  origin: Origin;
  /** http://<netns address>:<port> (what pages use). */
  base: string;
  host: string;
  stop(): Promise<void>;
}

export async function startBroadcastPlatform(o: { channels: ChannelConfig[]; origin?: Partial<OriginOptions>; defaultChannel?: string }): Promise<BroadcastPlatform> {
  const host = netnsHost();
  const log = pino({ level: process.env.STARLING_TEST_LOG ?? 'warn' });
  const workDir = mkdtempSync(join(tmpdir(), 'starling-bcast-'));
  const tracker = await launchTracker({ port: 0, host, stunPort: 'any' });
  const origin = await startOrigin({
    channel: o.defaultChannel ?? 'demo', host, port: 0, workDir, trackerUrl: tracker.wsUrls[0], log: log.child({ part: 'origin' }),
    channels: o.channels, ...o.origin,
  });
  return {
    tracker, origin, host, base: origin.url.replace('127.0.0.1', host),
    async stop() {
      await origin.stop();
      await tracker.close();
      rmSync(workDir, { recursive: true, force: true });
    },
  };
}

/** Chromium with a fake camera/microphone; `secureOrigins` get camera access over plain http. */
export async function launchMediaChromium(secureOrigins: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.STARLING_CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      ...CHROMIUM_ARGS, '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      ...(secureOrigins.length ? [`--unsafely-treat-insecure-origin-as-secure=${secureOrigins.join(',')}`] : []),
    ],
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 30_000, stepMs = 250): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(stepMs);
  }
}

export interface ChannelSummary { channel: string; state: string; live: boolean; vod: boolean; newestSeq: number | null; goLiveMs: number | null }

export async function channelState(base: string, channel: string): Promise<ChannelSummary | null> {
  const r = await fetch(`${base}/api/channels/${channel}`);
  return r.ok ? ((await r.json()) as ChannelSummary) : null;
}

/** Opens the watch page of a channel in its own browser context (its own peer). */
export async function openWatchPage(browser: Browser, base: string, channel: string, label: string): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const page = await ctx.newPage();
  page.on('pageerror', (err) => console.log(`[${label}] page error: ${err.message}`));
  page.on('console', (m) => { if (m.type() === 'error') console.log(`[${label}] ${m.text().slice(0, 300)}`); });
  await page.goto(`${base}/watch.html?channel=${channel}`);
  return page;
}

export const currentTime = (p: Page) => p.evaluate(() => document.querySelector('video')?.currentTime ?? 0);

/** Samples currentTime for `seconds`; returns how far it advanced and the longest freeze (ms). */
export async function watchFor(page: Page, seconds: number, sampleMs = 200): Promise<{ advanced: number; longestFreezeMs: number }> {
  const start = await currentTime(page);
  let last = start;
  let lastProgress = Date.now();
  let longest = 0;
  const t0 = Date.now();
  while (Date.now() - t0 < seconds * 1000) {
    await sleep(sampleMs);
    const t = await currentTime(page);
    const now = Date.now();
    if (t > last) {
      last = t;
      lastProgress = now;
    }
    longest = Math.max(longest, now - lastProgress);
  }
  return { advanced: last - start, longestFreezeMs: longest };
}

/**
 * For a failure message: each segment of a channel's rendition as ffprobe sees it (first and
 * last packet time per stream), so a stuck player can be matched with what the origin wrote
 * (a segment whose video stops short of its audio, timestamps that jump at a discontinuity).
 */
export async function describeRecording(base: string, channel: string, rendition: string): Promise<string> {
  const { spawnSync } = await import('node:child_process');
  const { writeFileSync } = await import('node:fs');
  const url = `${base}/live/${channel}/${rendition}/`;
  const text = await (await fetch(`${url}index.m3u8`)).text();
  // Each segment with the EXT-X-MAP in force for it (a reconnect may bring a new init segment).
  const segments: Array<{ uri: string; map: string | null; durationSec: number; discontinuity: boolean }> = [];
  let map: string | null = null;
  let dur = 0;
  let disc = false;
  for (const line of text.split('\n')) {
    const m = /^#EXT-X-MAP:URI="([^"]+)"/.exec(line);
    if (m) map = m[1];
    else if (line.startsWith('#EXTINF:')) dur = parseFloat(line.slice(8));
    else if (line.startsWith('#EXT-X-DISCONTINUITY') && !line.startsWith('#EXT-X-DISCONTINUITY-')) disc = true;
    else if (line && !line.startsWith('#')) {
      segments.push({ uri: line, map, durationSec: dur, discontinuity: disc });
      disc = false;
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'starling-probe-'));
  try {
    const inits = new Map<string, Uint8Array>();
    const lines: string[] = [];
    for (const s of segments) {
      if (s.map && !inits.has(s.map)) inits.set(s.map, new Uint8Array(await (await fetch(url + s.map)).arrayBuffer()));
      const init = s.map ? inits.get(s.map)! : new Uint8Array(0);
      const seg = new Uint8Array(await (await fetch(url + s.uri)).arrayBuffer());
      const file = join(dir, 'seg.mp4');
      writeFileSync(file, Buffer.concat([init, seg]));
      const probe = spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'packet=stream_index,pts_time,duration_time', '-of', 'csv=p=0', file], { encoding: 'utf8' });
      const span = new Map<string, { first: number; last: number; n: number }>();
      for (const row of probe.stdout.split('\n')) {
        const [stream, pts, dur] = row.split(',');
        const t = Number(pts);
        if (stream === undefined || !Number.isFinite(t)) continue;
        const end = t + (Number(dur) || 0);
        const sp = span.get(stream) ?? { first: t, last: end, n: 0 };
        sp.first = Math.min(sp.first, t);
        sp.last = Math.max(sp.last, end);
        sp.n++;
        span.set(stream, sp);
      }
      const streams = [...span].map(([k, v]) => `#${k} ${v.first.toFixed(2)}-${v.last.toFixed(2)} (${v.n})`).join(', ');
      lines.push(`${s.uri}${s.discontinuity ? ' [discontinuity]' : ''} (init ${s.map}) ${s.durationSec.toFixed(2)} s: ${streams || probe.stderr.trim().slice(0, 200)}`);
    }
    return `${rendition}${text.includes('#EXT-X-ENDLIST') ? ' (ended)' : ''}:\n  ${lines.join('\n  ')}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** For a failure message: the fragments hls.js holds for the playing level (sn, start, duration, discontinuity counter). */
export function hlsFragments(page: Page): Promise<string> {
  return page.evaluate(() => {
    const hls = (window as unknown as { starling?: { hls?: { latestLevelDetails?: { fragments: Array<{ sn: number | string; start: number; duration: number; cc: number }> } } } }).starling?.hls;
    const frags = hls?.latestLevelDetails?.fragments ?? [];
    return frags.map((f) => `${f.sn}@${f.start.toFixed(2)}+${f.duration.toFixed(2)} cc${f.cc}`).join(' ');
  });
}
