/**
 * The origin's HTTP service (fastify 5): exactly the URL layout of peer/core/paths.ts, plus
 * /config.json, /healthz, /metrics and the built player pages (player/dist).
 *
 * Everything under /live is served from memory (the segment window): a segment or manifest that
 * is unknown or already evicted is a 404. Every response carries `Access-Control-Allow-Origin: *`.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import fastifyStatic from '@fastify/static';
import type { Logger as PinoLogger } from 'pino';
import { isValidName, type ChannelInfo } from '../peer/core/paths.js';
import { INIT_SEQ, type SegmentRef } from '../peer/core/types.js';
import type { StoredSegment } from './recording.js';
import type { OriginMetrics, ServedKind } from './metrics.js';
import { parseRange } from './range.js';

/** What the HTTP layer needs from one channel. */
export interface HttpChannel {
  info(): ChannelInfo;
  /** null until every rendition has its init and a first segment. */
  masterPlaylist(): string | null;
  /** null for an unknown rendition or before its first segment. */
  mediaPlaylist(rendition: string): string | null;
  /** A segment from the live window, or (VoD) from the recording on disk. */
  segment(ref: SegmentRef): StoredSegment | null | Promise<StoredSegment | null>;
}

export interface OriginHttpOptions {
  /** Channels by name. */
  channels: Map<string, HttpChannel>;
  defaultChannel: string;
  metrics: OriginMetrics;
  /** Tracker URL handed to browsers in /config.json; default ws://<Host header's host>:<trackerPort>/ws. */
  publicTrackerUrl?: string;
  /** Default 8000. */
  trackerPort?: number;
  /** Built player pages; default <repo>/player/dist. null disables the pages. */
  playerDir?: string | null;
  /** pino logger for fastify (errors and warnings only; no request logging). */
  logger?: PinoLogger;
  /** Extra /healthz fields. */
  health?: () => Record<string, unknown>;
  /** /healthz answers 503 once the newest segment is older than this. Default 15000 ms. */
  staleAfterMs?: number;
}

export const CONTENT_TYPES = {
  playlist: 'application/vnd.apple.mpegurl',
  init: 'video/mp4',
  segment: 'video/iso.segment',
  manifest: 'application/octet-stream',
} as const;

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

const FILE_RE = /^(?:(init\.mp4)|seg_(\d{1,9})\.m4s)(\.manifest)?$/;

export async function buildOriginHttp(o: OriginHttpOptions): Promise<FastifyInstance> {
  // Request logs are at 'info': a 'warn' child keeps fastify to errors (works on every fastify 5.x,
  // unlike the deprecated disableRequestLogging / the newer logController).
  // bodyLimit: nothing the origin accepts is large (SDP offers, channel requests); routes that take
  // a body set their own, smaller limit.
  const app = Fastify({
    ...(o.logger ? { loggerInstance: o.logger.child({}, { level: o.logger.levelVal >= 40 ? o.logger.level : 'warn' }) } : { logger: false }),
    bodyLimit: 64 * 1024,
  }) as unknown as FastifyInstance;
  const m = o.metrics;
  const routeLabel = new WeakMap<FastifyRequest, string>();
  const trackerPort = o.trackerPort ?? 8000;

  app.addHook('onRequest', async (_req, reply) => {
    reply.header('access-control-allow-origin', '*');
    reply.header('access-control-expose-headers', 'Content-Length, Content-Range, Accept-Ranges');
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = routeLabel.get(req) ?? req.routeOptions.url ?? 'unmatched';
    m.httpRequests.inc({ route, status: String(reply.statusCode) });
  });

  const send = (req: FastifyRequest, reply: FastifyReply, kind: ServedKind, type: string, body: Buffer | string) => {
    const buf = typeof body === 'string' ? Buffer.from(body) : body;
    if (req.method !== 'HEAD') m.served(kind, buf.length);
    return reply.type(type).send(buf);
  };
  const notFound = (reply: FastifyReply, what: string) => reply.code(404).type('text/plain').send(`${what} not found\n`);

  const channelOf = (name: string): HttpChannel | null => (isValidName(name) ? o.channels.get(name) ?? null : null);

  app.options('/live/*', async (_req, reply) => {
    reply.header('access-control-allow-methods', 'GET, HEAD, OPTIONS');
    reply.header('access-control-allow-headers', 'Range');
    reply.header('access-control-max-age', '86400');
    return reply.code(204).send();
  });

  app.get<{ Params: { channel: string } }>('/live/:channel/channel.json', async (req, reply) => {
    const ch = channelOf(req.params.channel);
    if (!ch) return notFound(reply, 'channel');
    reply.header('cache-control', 'no-cache');
    return send(req, reply, 'other', 'application/json; charset=utf-8', JSON.stringify(ch.info()));
  });

  app.get<{ Params: { channel: string } }>('/live/:channel/master.m3u8', async (req, reply) => {
    const ch = channelOf(req.params.channel);
    if (!ch) return notFound(reply, 'channel');
    const text = ch.masterPlaylist();
    if (text === null) return reply.code(404).header('retry-after', '2').type('text/plain').send('stream starting: no segments yet\n');
    reply.header('cache-control', 'no-cache');
    return send(req, reply, 'playlist', CONTENT_TYPES.playlist, text);
  });

  app.get<{ Params: { channel: string; rendition: string; file: string } }>('/live/:channel/:rendition/:file', async (req, reply) => {
    const { channel, rendition, file } = req.params;
    const ch = channelOf(channel);
    if (!ch || !isValidName(rendition)) return notFound(reply, 'channel or rendition');
    if (file === 'index.m3u8') {
      routeLabel.set(req, '/live/:channel/:rendition/index.m3u8');
      const text = ch.mediaPlaylist(rendition);
      if (text === null) return notFound(reply, 'rendition');
      reply.header('cache-control', 'no-cache');
      return send(req, reply, 'playlist', CONTENT_TYPES.playlist, text);
    }
    const fm = FILE_RE.exec(file);
    if (!fm) return notFound(reply, 'file');
    const seq = fm[1] ? INIT_SEQ : Number(fm[2]);
    const isManifest = fm[3] !== undefined;
    routeLabel.set(req, `/live/:channel/:rendition/${fm[1] ? 'init.mp4' : 'seg_:seq.m4s'}${isManifest ? '.manifest' : ''}`);
    const entry = await ch.segment({ rendition, seq });
    if (!entry) return notFound(reply, 'segment');
    if (isManifest) {
      reply.header('cache-control', seq === INIT_SEQ ? 'no-cache' : 'public, max-age=60');
      const enc = entry.manifest.encoded;
      return send(req, reply, 'manifest', CONTENT_TYPES.manifest, Buffer.from(enc.buffer, enc.byteOffset, enc.byteLength));
    }
    const data = Buffer.from(entry.data.buffer, entry.data.byteOffset, entry.data.byteLength);
    const type = seq === INIT_SEQ ? CONTENT_TYPES.init : CONTENT_TYPES.segment;
    reply.header('accept-ranges', 'bytes');
    reply.header('cache-control', seq === INIT_SEQ ? 'no-cache' : 'public, max-age=60');
    const range = parseRange(req.headers.range, data.length);
    if (range === 'unsatisfiable') {
      return reply.code(416).header('content-range', `bytes */${data.length}`).type('text/plain').send('range not satisfiable\n');
    }
    if (range) {
      m.rangeRequests.inc();
      reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${data.length}`);
      return send(req, reply, 'segment', type, data.subarray(range.start, range.end + 1));
    }
    return send(req, reply, 'segment', type, data);
  });

  app.get('/config.json', async (req, reply) => {
    let trackerUrl = o.publicTrackerUrl;
    if (!trackerUrl) {
      let host = '127.0.0.1';
      try {
        host = new URL(`http://${req.headers.host ?? '127.0.0.1'}`).hostname || host;
      } catch {
        // malformed Host header: keep the loopback default
      }
      trackerUrl = `ws://${host}:${trackerPort}/ws`;
    }
    reply.header('cache-control', 'no-cache');
    return send(req, reply, 'other', 'application/json; charset=utf-8', JSON.stringify({ trackerUrl, defaultChannel: o.defaultChannel }));
  });

  app.get('/healthz', async (_req, reply) => {
    const snap = m.snapshot();
    const stale = snap.lastSegmentAgeMs !== null && snap.lastSegmentAgeMs > (o.staleAfterMs ?? 15_000);
    return reply.code(stale ? 503 : 200).send({
      status: stale ? 'stale' : 'ok', ...snap, ...(o.health?.() ?? {}),
    });
  });

  app.get('/metrics', async (_req, reply) => {
    return reply.type(m.registry.contentType).send(await m.registry.metrics());
  });

  app.get('/', async (_req, reply) => reply.redirect(`/watch.html?channel=${encodeURIComponent(o.defaultChannel)}`, 302));

  const playerDir = o.playerDir === undefined ? join(REPO_ROOT, 'player', 'dist') : o.playerDir;
  const havePages = playerDir !== null && existsSync(playerDir);
  if (havePages) {
    await app.register(fastifyStatic, { root: playerDir, prefix: '/', index: false, wildcard: true, cacheControl: false });
  }
  app.setNotFoundHandler(async (req, reply) => {
    const path = req.url.split('?')[0];
    if (!havePages && (path.endsWith('.html') || path.startsWith('/assets/'))) {
      return reply.code(503).type('text/html; charset=utf-8').send(
        '<!doctype html><title>Starling: player not built</title><h1>The player pages are not built</h1>' +
          `<p>${playerDir === null ? 'Serving the pages is disabled on this origin.' : `No <code>${escapeHtml(playerDir)}</code>.`} ` +
          'Build them with <code>npm run build:player</code> (vite) and restart the origin.</p>',
      );
    }
    return reply.code(404).type('text/plain').send('not found\n');
  });

  return app;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}
