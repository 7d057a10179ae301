import { mkdtemp, rm, writeFile, mkdir, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nobleCrypto } from '../../../peer/core/crypto.js';
import { decodeManifest, verifyPiece, pieceRange } from '../../../peer/core/manifest.js';
import { INIT_SEQ } from '../../../peer/core/types.js';
import { signerFromSeed } from '../../../server/signer.js';
import { PlaylistWatcher, type SegmentEvent } from '../../../server/watcher.js';
import { SegmentWindow } from '../../../server/segment-window.js';

let dir: string;
beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'starling-watcher-')); });
afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

const signer = signerFromSeed(new Uint8Array(32).fill(7));
const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);

/** Writes the playlist atomically, as ffmpeg does with temp_file. */
async function writePlaylist(d: string, first: number, entries: [number, number][], map = 'init_0.mp4') {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:7', '#EXT-X-TARGETDURATION:2', `#EXT-X-MEDIA-SEQUENCE:${first}`, `#EXT-X-MAP:URI="${map}"`];
  for (const [seq, dur] of entries) lines.push(`#EXTINF:${dur.toFixed(6)},`, `seg_${seq}.m4s`);
  await writeFile(join(d, 'index.m3u8.tmp'), `${lines.join('\n')}\n`);
  await rename(join(d, 'index.m3u8.tmp'), join(d, 'index.m3u8'));
}

describe('PlaylistWatcher', () => {
  it('publishes the init once, then every newly listed segment once, in order, signed', async () => {
    const d0 = join(dir, '0');
    await mkdir(d0);
    const w = new PlaylistWatcher({ channel: 'demo', renditions: [{ name: '360p', dir: d0 }], sign: signer.sign, pieceSize: 16_384, now: () => 1234 });
    const events: SegmentEvent[] = [];
    w.on('segment', (e) => events.push(e));

    await w.pollOnce(); // nothing yet
    expect(events).toHaveLength(0);

    await writeFile(join(d0, 'init_0.mp4'), bytes(700, 1));
    await writeFile(join(d0, 'seg_100.m4s'), bytes(40_000, 2));
    await writeFile(join(d0, 'seg_101.m4s.tmp'), bytes(10, 9)); // being written, unlisted
    await writePlaylist(d0, 100, [[100, 2]]);
    await w.pollOnce();
    expect(events.map((e) => e.ref)).toEqual([{ rendition: '360p', seq: INIT_SEQ }, { rendition: '360p', seq: 100 }]);
    expect(events[0].manifest.durationMs).toBe(0);
    expect(events[1].manifest.durationMs).toBe(2000);
    expect(events[1].manifest.createdAt).toBe(1234);
    expect(events[1].manifest.pieceHashes).toHaveLength(3);

    await w.pollOnce(); // unchanged playlist: nothing new
    expect(events).toHaveLength(2);

    await writeFile(join(d0, 'seg_101.m4s'), bytes(5000, 3));
    await writeFile(join(d0, 'seg_102.m4s'), bytes(16_384, 4));
    await writePlaylist(d0, 100, [[100, 2], [101, 2], [102, 1.92]]);
    await w.pollOnce();
    expect(events.map((e) => e.ref.seq)).toEqual([INIT_SEQ, 100, 101, 102]);
    expect(events[3].manifest.durationMs).toBe(1920);
    expect(w.lastSeq()).toBe(102);

    // every manifest verifies against the public key and every piece against the manifest
    for (const e of events) {
      const m = decodeManifest(e.manifest.encoded, signer.publicKey, nobleCrypto);
      expect(m.size).toBe(e.data.length);
      for (let i = 0; i < m.pieceHashes.length; i++) {
        const [s, end] = pieceRange(m, i);
        expect(verifyPiece(nobleCrypto, m, i, e.data.subarray(s, end))).toBe(true);
      }
    }
  });

  it('skips segments deleted before being read, and flags the first segment after a restart', async () => {
    const d0 = join(dir, '0');
    await mkdir(d0);
    const w = new PlaylistWatcher({ channel: 'demo', renditions: [{ name: 'low', dir: d0 }], sign: signer.sign });
    const events: SegmentEvent[] = [];
    w.on('segment', (e) => events.push(e));
    await writeFile(join(d0, 'init_0.mp4'), bytes(100, 1));
    await writeFile(join(d0, 'seg_6.m4s'), bytes(100, 6));
    await writePlaylist(d0, 5, [[5, 2], [6, 2]]); // seg_5 is listed but gone
    await w.pollOnce();
    expect(events.map((e) => e.ref.seq)).toEqual([INIT_SEQ, 6]);

    // encoder restart: new directory contents, new numbers, same init bytes
    w.markRestart();
    await rm(join(d0, 'index.m3u8'));
    await w.pollOnce();
    await writeFile(join(d0, 'seg_50.m4s'), bytes(100, 50));
    await writePlaylist(d0, 50, [[50, 2]]);
    await w.pollOnce();
    expect(events.map((e) => e.ref.seq)).toEqual([INIT_SEQ, 6, 50]); // identical init not republished
    expect(events.map((e) => e.discontinuity)).toEqual([false, false, true]);

    // a restart whose init differs republishes the init
    w.markRestart();
    await writeFile(join(d0, 'init_0.mp4'), bytes(120, 2));
    await writeFile(join(d0, 'seg_60.m4s'), bytes(100, 60));
    await writePlaylist(d0, 60, [[60, 2]]);
    await w.pollOnce();
    expect(events.slice(3).map((e) => [e.ref.seq, e.data.length, e.discontinuity])).toEqual([[INIT_SEQ, 120, false], [60, 100, true]]);
  });

  it('runs on its own timer until stopped, for several renditions', async () => {
    const dirs = [join(dir, '0'), join(dir, '1')];
    for (const d of dirs) await mkdir(d);
    const ac = new AbortController();
    const w = new PlaylistWatcher({
      channel: 'demo', renditions: [{ name: 'a', dir: dirs[0] }, { name: 'b', dir: dirs[1] }], sign: signer.sign, pollMs: 20, signal: ac.signal,
    });
    const win = new SegmentWindow(2);
    w.on('segment', (e) => win.add({ ref: e.ref, manifest: e.manifest, data: e.data, discontinuity: e.discontinuity }));
    w.start();
    for (const [i, d] of dirs.entries()) {
      await writeFile(join(d, `init_${i}.mp4`), bytes(10, i));
      for (const s of [1, 2, 3]) await writeFile(join(d, `seg_${s}.m4s`), bytes(10 + s, s));
      await writePlaylist(d, 1, [[1, 2], [2, 2], [3, 2]], `init_${i}.mp4`);
    }
    const until = Date.now() + 3000;
    while ((win.newest('a')?.ref.seq !== 3 || win.newest('b')?.ref.seq !== 3) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect(win.latest('a').map((e) => e.ref.seq)).toEqual([2, 3]); // window of 2
    expect(win.get({ rendition: 'b', seq: 1 })).toBeNull(); // evicted
    expect(win.init('b')?.data.length).toBe(10);
    ac.abort();
    await w.stop();
  });
});

describe('SegmentWindow', () => {
  it('counts discontinuities before a seq, evicted ones included', () => {
    const w = new SegmentWindow(2);
    const e = (seq: number, discontinuity = false) => ({ ref: { rendition: 'r', seq }, manifest: {} as never, data: new Uint8Array(), discontinuity });
    w.add(e(1));
    w.add(e(2, true));
    w.add(e(3));
    w.add(e(4, true));
    expect(w.latest('r').map((x) => x.ref.seq)).toEqual([3, 4]);
    expect(w.discontinuitiesBefore('r', 3)).toBe(1);
    expect(w.discontinuitiesBefore('r', 4)).toBe(1);
    expect(w.discontinuitiesBefore('r', 5)).toBe(2);
    expect(() => w.add(e(4))).toThrow();
  });
});
