/** Launches Debian's Chromium for the network tests (headless, nothing leaves the namespace). */
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.STARLING_CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

/** The namespace's own address (test/netns.sh): pages reach the servers there, and WebRTC gathers it. */
export function netnsHost(): string {
  return process.env.STARLING_NETNS_ADDR ?? '127.0.0.1';
}

/** What a page's video element is doing, for a wait that gives up to say what it saw. */
export interface VideoState {
  currentTime: number; duration: number; ended: boolean; paused: boolean; readyState: number;
  buffered: string; error: string | null; live: boolean | null;
}

export function videoState(page: Page): Promise<VideoState | null> {
  return page.evaluate(() => {
    const v = document.querySelector('video');
    if (!v) return null;
    const ranges: string[] = [];
    for (let i = 0; i < v.buffered.length; i++) ranges.push(`${v.buffered.start(i).toFixed(2)}-${v.buffered.end(i).toFixed(2)}`);
    const details = (window as unknown as { starling?: { hls?: { latestLevelDetails?: { live?: boolean } } } }).starling?.hls?.latestLevelDetails;
    return {
      currentTime: v.currentTime, duration: v.duration, ended: v.ended, paused: v.paused, readyState: v.readyState,
      buffered: ranges.join(' '), error: v.error ? `${v.error.code} ${v.error.message}` : null, live: details?.live ?? null,
    };
  });
}

/**
 * Waits for the page's video to reach its end; on a timeout it throws with the video's last
 * states (time, buffered ranges, ready state, whether hls.js still thinks the stream is live),
 * so a failure says where playback stuck rather than only that it did.
 */
export async function waitForEnded(page: Page, timeoutMs: number, label = 'video'): Promise<void> {
  const t0 = Date.now();
  const seen: string[] = [];
  for (;;) {
    const s = await videoState(page).catch((e: unknown) => ({ evaluateError: String(e) }));
    if (s && 'ended' in s && s.ended) return;
    const line = JSON.stringify(s);
    if (seen[seen.length - 1] !== line) seen.push(line);
    if (Date.now() - t0 > timeoutMs) {
      throw new Error(`${label} did not reach its end in ${timeoutMs} ms; its states (oldest first): ${seen.slice(-8).join(' | ')}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
