/**
 * The origin with a real ffmpeg (no root peer): HLS over HTTP, signed manifests that verify,
 * byte-exact segments and ranges, encoder restart, and no orphaned ffmpeg after stop() or after
 * the origin process is SIGKILLed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { hexToBytes, nobleCrypto } from '../../peer/core/crypto.js';
import { decodeManifest, pieceRange, verifyPiece, type Manifest } from '../../peer/core/manifest.js';
import { channelInfoPath, manifestPath, masterPlaylistPath, mediaPlaylistPath, segmentPath, type ChannelInfo } from '../../peer/core/paths.js';
import { INIT_SEQ } from '../../peer/core/types.js';
import { rungDir } from '../../server/ffmpeg.js';
import { startOrigin, type Origin, type RootPeerOptions } from '../../server/origin.js';
import { parseMasterPlaylist, parseMediaPlaylist } from '../../server/playlist.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dirs: string[] = [];
const origins: Origin[] = [];

afterAll(async () => {
  for (const o of origins) await o.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function processesMentioning(dir: string): string[] {
  const r = spawnSync('pgrep', ['-af', dir], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => l.trim());
}

async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(150);
  }
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const res = await fetch(url, { headers });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

describe('origin (real ffmpeg, stand-in root peer)', () => {
  it('serves a signed live HLS ladder and leaves no ffmpeg behind', async () => {
    const workDir = await mkdtemp(join(tmpdir(), 'starling-origin-net-'));
    dirs.push(workDir);
    // A stand-in root peer records what the origin publishes into the overlay.
    const published: Manifest[] = [];
    const peerOpts: RootPeerOptions[] = [];
    let peerStopped = false;
    const origin = await startOrigin({
      channel: 'nettest', host: '127.0.0.1', port: 0, workDir, playerDir: null, log: pino({ level: 'warn' }),
      trackerUrl: 'ws://127.0.0.1:9/ws',
      rootPeerFactory: async (o) => {
        peerOpts.push(o);
        return { engine: { publishSegment: (m) => { published.push(m); } }, stop: async () => { peerStopped = true; } };
      },
    });
    origins.push(origin);
    const base = origin.url;
    expect(processesMentioning(workDir).length).toBeGreaterThan(0);

    const info = (await (await fetch(base + channelInfoPath('nettest'))).json()) as ChannelInfo;
    expect(info.publicKey).toBe(origin.publicKeyHex);
    expect(info.renditions.map((r) => r.name)).toEqual(['360p', '240p']);
    const publicKey = hexToBytes(info.publicKey);

    // master playlist: available once every rendition has its init and a segment
    const master = await waitFor('master playlist', async () => {
      const r = await get(base + masterPlaylistPath('nettest'));
      return r.status === 200 ? r : null;
    });
    expect(master.headers.get('content-type')).toBe('application/vnd.apple.mpegurl');
    expect(master.headers.get('access-control-allow-origin')).toBe('*');
    const variants = parseMasterPlaylist(master.body.toString()).variants;
    expect(variants.map((v) => v.uri)).toEqual(['360p/index.m3u8', '240p/index.m3u8']);
    expect(variants.map((v) => v.resolution)).toEqual(['640x360', '426x240']);
    for (const v of variants) expect(v.codecs).toMatch(/^avc1\.[0-9a-f]{6},mp4a\.40\.2$/);

    // wait for two segments in the 240p playlist
    const pl = await waitFor('two segments', async () => {
      const r = await get(base + mediaPlaylistPath('nettest', '240p'));
      const p = parseMediaPlaylist(r.body.toString());
      return p.segments.length >= 2 ? p : null;
    });
    expect(pl.mapUri).toBe('init.mp4');
    expect(pl.version).toBe(7);
    expect(pl.targetDuration).toBe(2);
    for (const s of pl.segments) expect(s.durationSec).toBeCloseTo(2, 1);
    const seq = Number(/^seg_(\d+)\.m4s$/.exec(pl.segments[0].uri)![1]);
    expect(seq).toBe(pl.mediaSequence);

    // a segment and its manifest: the manifest verifies, every piece verifies, bytes equal the file
    for (const ref of [{ rendition: '240p', seq }, { rendition: '240p', seq: INIT_SEQ }]) {
      const seg = await get(base + segmentPath('nettest', ref));
      expect(seg.status).toBe(200);
      expect(seg.headers.get('content-type')).toBe(ref.seq === INIT_SEQ ? 'video/mp4' : 'video/iso.segment');
      const man = await get(base + manifestPath('nettest', ref));
      expect(man.status).toBe(200);
      expect(man.headers.get('content-type')).toBe('application/octet-stream');
      const m = decodeManifest(new Uint8Array(man.body), publicKey, nobleCrypto);
      expect(m.channel).toBe('nettest');
      expect(m.rendition).toBe('240p');
      expect(m.seq).toBe(ref.seq);
      expect(m.size).toBe(seg.body.length);
      expect(m.pieceSize).toBe(16 * 1024);
      if (ref.seq !== INIT_SEQ) expect(m.durationMs).toBeGreaterThan(1500);
      for (let i = 0; i < m.pieceHashes.length; i++) {
        const [s, e] = pieceRange(m, i);
        expect(verifyPiece(nobleCrypto, m, i, new Uint8Array(seg.body.subarray(s, e)))).toBe(true);
      }
      const onDisk = await readFile(join(rungDir(origin.outDir, 1), ref.seq === INIT_SEQ ? 'init.mp4' : `seg_${seq}.m4s`)).catch(async () =>
        // ffmpeg builds that suffix the init name with the variant index
        readFile(join(rungDir(origin.outDir, 1), 'init_1.mp4')));
      expect(seg.body.equals(onDisk)).toBe(true);
    }

    // the root peer got every segment, with the very manifest served over HTTP
    expect(peerOpts).toHaveLength(1);
    expect(peerOpts[0]).toMatchObject({ trackerUrl: 'ws://127.0.0.1:9/ws', channel: 'nettest', kind: 'origin', maxNeighbors: 4 });
    expect(Buffer.from(peerOpts[0].publicKey).equals(Buffer.from(publicKey))).toBe(true);
    const pub = published.find((m) => m.rendition === '240p' && m.seq === seq)!;
    expect(Buffer.from(pub.encoded).equals((await get(base + manifestPath('nettest', { rendition: '240p', seq }))).body)).toBe(true);
    expect(published.filter((m) => m.seq === INIT_SEQ).map((m) => m.rendition).sort()).toEqual(['240p', '360p']);
    // /config.json points browsers at the tracker on the host they used
    expect(await (await fetch(`${base}/config.json`)).json()).toEqual({ trackerUrl: 'ws://127.0.0.1:9/ws', defaultChannel: 'nettest' });

    // Range requests
    const segUrl = base + segmentPath('nettest', { rendition: '240p', seq });
    const whole = await get(segUrl);
    const part = await get(segUrl, { range: 'bytes=100-16483' });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 100-16483/${whole.body.length}`);
    expect(part.body.equals(whole.body.subarray(100, 16_484))).toBe(true);
    const tail = await get(segUrl, { range: 'bytes=-1000' });
    expect(tail.body.equals(whole.body.subarray(whole.body.length - 1000))).toBe(true);
    expect((await get(segUrl, { range: `bytes=${whole.body.length}-` })).status).toBe(416);
    expect((await get(base + segmentPath('nettest', { rendition: '240p', seq: seq + 100_000 }))).status).toBe(404);

    // the encoder dies: it is restarted, numbering continues upwards, the playlist marks the discontinuity
    const ffmpegPid = spawnSync('pgrep', ['-f', `^[^ ]*ffmpeg .*${workDir}`], { encoding: 'utf8' }).stdout.trim().split('\n')[0];
    expect(Number(ffmpegPid)).toBeGreaterThan(0);
    const before = origin.stats().newestSeq['360p']!;
    process.kill(Number(ffmpegPid), 'SIGKILL');
    const after = await waitFor('a segment after the restart', async () => {
      const s = origin.stats();
      return s.ffmpegRestarts === 1 && s.newestSeq['360p']! > before ? s : null;
    });
    expect(after.newestSeq['360p']).toBeGreaterThan(before);
    const plAfter = parseMediaPlaylist((await get(base + mediaPlaylistPath('nettest', '360p'))).body.toString());
    expect(plAfter.segments.some((s) => s.discontinuity)).toBe(true);
    const metrics = (await get(base + '/metrics')).body.toString();
    expect(metrics).toMatch(/starling_origin_ffmpeg_restarts_total 1/);
    expect(metrics).toMatch(/starling_origin_segments_published_total\{rendition="240p"\} \d+/);

    await origin.stop();
    expect(peerStopped).toBe(true);
    await sleep(200);
    expect(processesMentioning(workDir)).toEqual([]);
  });

  it('kills ffmpeg when the origin process is SIGKILLed', async () => {
    const workDir = await mkdtemp(join(tmpdir(), 'starling-origin-kill-'));
    dirs.push(workDir);
    const proc = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts', '--host', '127.0.0.1', '--port', '0', '--channel', 'killtest', '--no-peer', '--work-dir', workDir], {
      cwd: join(import.meta.dirname, '..', '..'), stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'info' },
    });
    let out = '';
    proc.stdout.on('data', (d) => { out += String(d); });
    proc.stderr.on('data', (d) => { out += String(d); });
    try {
      await waitFor('ffmpeg started by the CLI', async () => processesMentioning(workDir).some((l) => / -f hls /.test(l)) && /origin listening/.test(out), 30_000);
    } catch (err) {
      proc.kill('SIGKILL');
      throw new Error(`${String(err)}\n${out}`);
    }
    proc.kill('SIGKILL');
    await waitFor('ffmpeg to exit after its parent died', async () => processesMentioning(workDir).length === 0, 5000);
  });
});
