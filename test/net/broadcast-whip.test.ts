/**
 * WHIP ingest end to end, with a werift publisher standing in for OBS (H.264 + Opus from ffmpeg):
 * it goes live on an ingest channel while the test-pattern channel keeps running, a Chromium
 * viewer plays it, the publisher vanishes and comes back within the grace period (the same
 * channel continues, the viewer keeps playing), bad publishes are refused without disturbing
 * anything, and DELETE ends the broadcast: the viewer reaches the end and the channel stays as VoD.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { parseMediaPlaylist } from '../../server/playlist.js';
import { publishWhip, whipPost, WhipError, type WhipPublisher } from '../../server/whip-client.js';
import {
  channelState, describeRecording, hlsFragments, launchMediaChromium, openWatchPage, startBroadcastPlatform, waitFor, watchFor, type BroadcastPlatform,
} from './broadcast-platform.js';
import { waitForEnded } from './chromium.js';

const KEY = 'whip-test-key-0123456789';
const CH = 'whiptest';

describe('WHIP ingest (werift publisher)', () => {
  let p: BroadcastPlatform;
  let browser: Browser;
  let pub: WhipPublisher | null = null;

  beforeAll(async () => {
    p = await startBroadcastPlatform({ channels: [{ channel: CH, streamKey: KEY }], origin: { ingestGraceMs: 30_000 } });
    browser = await launchMediaChromium();
  });
  afterAll(async () => {
    await pub?.kill().catch(() => undefined);
    await browser?.close();
    await p?.stop();
  });

  it('publishes, survives a dropped publisher, refuses bad publishes, and DELETE ends it as VoD', async () => {
    const whipUrl = `${p.base}/whip/${CH}`;
    expect((await channelState(p.base, CH))!.state).toBe('idle');
    // A wrong key starts nothing.
    await expect(publishWhip({ url: whipUrl, token: 'wrong-key-0123456789', source: { type: 'testsrc', width: 640, height: 360 } }))
      .rejects.toMatchObject({ status: 403 });
    expect((await channelState(p.base, CH))!.state).toBe('idle');

    const t0 = Date.now();
    pub = await publishWhip({ url: whipUrl, token: KEY, source: { type: 'testsrc', width: 640, height: 360 } });
    expect(pub.resource).toMatch(new RegExp(`/whip/${CH}/[A-Za-z0-9_-]{22}$`));
    await waitFor('the master playlist', async () => (await fetch(`${p.base}/live/${CH}/master.m3u8`)).status === 200, 40_000);
    const live = (await channelState(p.base, CH))!;
    console.log(`[whip] go-live: POST to master playlist ${Date.now() - t0} ms; publish to first signed segment ${live.goLiveMs} ms`);
    expect(live.state).toBe('live');

    const viewer = await openWatchPage(browser, p.base, CH, 'viewer');
    await viewer.waitForFunction(() => (document.querySelector('video')?.currentTime ?? 0) > 0.5, undefined, { timeout: 40_000 });
    const first = await watchFor(viewer, 8);
    console.log(`[whip] viewer advanced ${first.advanced.toFixed(1)} s in 8 s, longest freeze ${first.longestFreezeMs} ms`);
    expect(first.advanced).toBeGreaterThan(5);

    // Bad publishes while live: refused, the broadcast goes on.
    await expect(whipPost(whipUrl, null, 'v=0\r\n')).rejects.toMatchObject({ status: 401 });
    await expect(whipPost(whipUrl, KEY, 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nm=video nonsense\r\n')).rejects.toMatchObject({ status: 400 });
    await expect(whipPost(whipUrl, KEY, `v=0\r\n${'a=x\r\n'.repeat(20_000)}`)).rejects.toMatchObject({ status: 413 });
    const demoBefore = (await channelState(p.base, 'demo'))!.newestSeq!;

    // The publisher vanishes (no DELETE, no close) and comes back within the grace period.
    const before = (await channelState(p.base, CH))!.newestSeq!;
    const back = pub.reconnect({ silentMs: 9000 });
    await waitFor('the origin to notice the drop', async () => (await channelState(p.base, CH))?.state === 'reconnecting', 20_000);
    await back;
    await waitFor('the broadcast to continue', async () => {
      const s = await channelState(p.base, CH);
      return s?.state === 'live' && s.newestSeq !== null && s.newestSeq > before + 1;
    }, 40_000);
    const pl = parseMediaPlaylist(await (await fetch(`${p.base}/live/${CH}/360p/index.m3u8`)).text());
    expect(pl.endList).toBe(false);
    // Numbering goes on across the reconnect: HLS numbers segments by position, so the names must agree.
    expect(pl.segments.map((s) => s.uri)).toEqual(pl.segments.map((s, i) => `seg_${pl.mediaSequence + i}.m4s`));
    const second = await watchFor(viewer, 12);
    console.log(`[whip] after the reconnect the viewer advanced ${second.advanced.toFixed(1)} s in 12 s, longest freeze ${second.longestFreezeMs} ms`);
    expect(second.advanced).toBeGreaterThan(4);

    // The test-pattern channel ran on undisturbed, with its own key.
    const demo = (await channelState(p.base, 'demo'))!;
    expect(demo.state).toBe('live');
    expect(demo.newestSeq!).toBeGreaterThan(demoBefore + 5);
    const keys = await Promise.all(['demo', CH].map(async (c) => ((await (await fetch(`${p.base}/live/${c}/channel.json`)).json()) as { publicKey: string }).publicKey));
    expect(keys[0]).not.toBe(keys[1]);

    // DELETE ends the broadcast: ENDLIST, the viewer reaches the end, the recording is VoD.
    await pub.stop();
    pub = null;
    const ended = await waitFor('the end', async () => {
      const s = await channelState(p.base, CH);
      return s?.state === 'ended' ? s : null;
    }, 20_000);
    expect(ended.vod).toBe(true);
    const vod = parseMediaPlaylist(await (await fetch(`${p.base}/live/${CH}/360p/index.m3u8`)).text());
    expect(vod.endList).toBe(true);
    expect(vod.segments.some((s) => s.discontinuity)).toBe(true);
    expect(vod.segments.map((s) => s.uri)).toEqual(vod.segments.map((s, i) => `seg_${vod.mediaSequence + i}.m4s`));
    console.log(`[whip] VoD recording: ${vod.segments.length} segments; ${await describeRecording(p.base, CH, '360p')}`);
    await waitForEnded(viewer, 60_000, 'whip viewer').catch(async (e: unknown) => {
      // Say what the player held and what the origin wrote, segment by segment.
      const frags = await hlsFragments(viewer).catch((x: unknown) => String(x));
      const rec = await describeRecording(p.base, CH, '360p').catch((x: unknown) => String(x));
      throw new Error(`${e instanceof Error ? e.message : String(e)}\nhls.js fragments: ${frags}\nrecording ${rec}`);
    });
    expect(await viewer.evaluate(() => (window as any).starling.hls.latestLevelDetails.live)).toBe(false);
    expect((await channelState(p.base, 'demo'))!.state).toBe('live');
    // A fresh POST after the end would start a new broadcast; a wrong key still gets nothing.
    await expect(whipPost(whipUrl, 'wrong-key-0123456789', 'v=0\r\n')).rejects.toBeInstanceOf(WhipError);
    expect((await channelState(p.base, CH))!.state).toBe('ended');
  });
});
