/** The channel API (list, create, delete) and the VoD recording, without ffmpeg. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { registerChannelApi } from '../../../server/api.js';
import type { Channel } from '../../../server/channel.js';
import { buildOriginHttp } from '../../../server/http.js';
import { OriginMetrics } from '../../../server/metrics.js';
import { ChannelError, resolveLadder, type ChannelConfig } from '../../../server/origin.js';
import { mediaPlaylist } from '../../../server/playlist.js';
import { Recording } from '../../../server/recording.js';
import { describeSegment, signManifest } from '../../../peer/core/manifest.js';
import { INIT_SEQ } from '../../../peer/core/types.js';
import { nodeCrypto, signerFromSeed } from '../../../server/signer.js';

const silent = { debug() {}, info() {}, warn() {}, error() {} };

describe('channel API', () => {
  let app: FastifyInstance;
  const made: ChannelConfig[] = [];
  const channels = new Map<string, Channel>();
  const fake = (cfg: ChannelConfig): Channel => ({
    name: cfg.channel,
    hasStreamKey: Boolean(cfg.streamKey),
    info: { renditions: resolveLadder(cfg.renditions ?? ['360p']).map((r) => ({ name: r.name })) },
    summary: () => ({ channel: cfg.channel, state: 'idle', live: false, vod: false, ingest: null, renditions: [], newestSeq: null, goLiveMs: null }),
  }) as unknown as Channel;

  beforeAll(async () => {
    app = await buildOriginHttp({ channels: new Map(), defaultChannel: 'demo', metrics: new OriginMetrics(), playerDir: null });
    registerChannelApi(app, {
      channels: () => [...channels.values()],
      get: (n) => channels.get(n) ?? null,
      create: async (cfg) => {
        if (channels.has(cfg.channel)) throw new ChannelError('channel exists', 409);
        resolveLadder(cfg.renditions ?? ['360p']);
        made.push(cfg);
        const c = fake(cfg);
        channels.set(cfg.channel, c);
        return c;
      },
      remove: async (n) => channels.delete(n),
      adminToken: 'admin-token-123',
      log: silent,
    });
  });
  afterAll(async () => { await app.close(); });

  const create = (body: unknown, token?: string) => app.inject({
    method: 'POST', url: '/api/channels', payload: body as object, headers: token ? { authorization: `Bearer ${token}` } : {},
  });

  it('creates channels only with the admin token, and never lists keys', async () => {
    expect((await create({ channel: 'studio' })).statusCode).toBe(401);
    expect((await create({ channel: 'studio' }, 'wrong-token')).statusCode).toBe(403);
    const ok = await create({ channel: 'studio', renditions: ['720p', '360p'] }, 'admin-token-123');
    expect(ok.statusCode).toBe(201);
    const body = ok.json() as { channel: string; streamKey: string; whip: string };
    expect(body.channel).toBe('studio');
    expect(body.streamKey).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(body.whip).toMatch(/\/whip\/studio$/);
    expect(made[0].streamKey).toBe(body.streamKey);
    expect((await create({ channel: 'studio' }, 'admin-token-123')).statusCode).toBe(409);
    expect((await create({ channel: 'x', renditions: ['4k'] }, 'admin-token-123')).statusCode).toBe(400);
    expect((await create({ renditions: ['360p'] }, 'admin-token-123')).statusCode).toBe(400);
    expect((await app.inject({ method: 'POST', url: '/api/channels', payload: 'x'.repeat(10_000), headers: { authorization: 'Bearer admin-token-123', 'content-type': 'application/json' } })).statusCode).toBe(413);
    const list = await app.inject({ url: '/api/channels' });
    expect(list.json()).toEqual([expect.objectContaining({ channel: 'studio', publishable: true })]);
    expect(list.body).not.toContain(body.streamKey);
    expect((await app.inject({ url: '/api/channels/studio' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/api/channels/nope' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'DELETE', url: '/api/channels/studio' })).statusCode).toBe(401);
    expect((await app.inject({ method: 'DELETE', url: '/api/channels/studio', headers: { authorization: 'Bearer admin-token-123' } })).statusCode).toBe(204);
    expect((await app.inject({ url: '/api/channels' })).json()).toEqual([]);
  });

  it('without an admin token the API refuses to create channels', async () => {
    const closed = await buildOriginHttp({ channels: new Map(), defaultChannel: 'demo', metrics: new OriginMetrics(), playerDir: null });
    registerChannelApi(closed, { channels: () => [], get: () => null, create: async () => { throw new Error('no'); }, remove: async () => false, log: silent });
    const r = await closed.inject({ method: 'POST', url: '/api/channels', payload: { channel: 'a' }, headers: { authorization: 'Bearer anything' } });
    expect(r.statusCode).toBe(403);
    await closed.close();
  });

  it('ladders: presets, highest first, bounded', () => {
    expect(resolveLadder(['360p', '720p']).map((r) => r.name)).toEqual(['720p', '360p']);
    expect(() => resolveLadder([])).toThrow();
    expect(() => resolveLadder(['360p', '360p'])).toThrow();
  });
});

describe('recording (VoD)', () => {
  let dir: string;
  beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'starling-rec-')); });
  afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

  it('keeps segments and manifests on disk beyond the live window, bounded', async () => {
    const signer = signerFromSeed(new Uint8Array(32).fill(3));
    const rec = new Recording(dir, 3);
    const entry = (seq: number, disc = false) => {
      const data = new Uint8Array(1000 + seq).fill(seq & 0xff);
      const manifest = signManifest(describeSegment(nodeCrypto, { channel: 'c', rendition: '360p', seq, pieceSize: 16_384, durationMs: seq === INIT_SEQ ? 0 : 2000, createdAt: 1000 * seq }, data), signer.sign);
      return { ref: { rendition: '360p', seq }, manifest, data, discontinuity: disc };
    };
    rec.add(entry(INIT_SEQ));
    for (const seq of [10, 11, 12, 13]) rec.add(entry(seq, seq === 12));
    await rec.flush();
    expect(rec.list('360p').map((s) => s.seq)).toEqual([11, 12, 13]);
    expect(rec.list('360p')[1].discontinuity).toBe(true);
    const got = await rec.read({ rendition: '360p', seq: 12 });
    expect(got!.data.length).toBe(1012);
    expect(Buffer.from(got!.manifest.encoded).equals(Buffer.from(entry(12).manifest.encoded.subarray(0, 0)))).toBe(false);
    expect(await rec.read({ rendition: '360p', seq: 10 })).toBeNull();
    expect((await rec.read({ rendition: '360p', seq: INIT_SEQ }))!.data.length).toBe(1000 + INIT_SEQ);
    const text = mediaPlaylist({ segments: rec.list('360p').map((s) => ({ seq: s.seq, durationMs: s.durationMs })), segmentDuration: 2, ended: true, vod: true });
    expect(text).toMatch(/#EXT-X-PLAYLIST-TYPE:VOD/);
    expect(text.trim().endsWith('#EXT-X-ENDLIST')).toBe(true);
  });
});
