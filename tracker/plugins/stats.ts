/**
 * The stats API and live feed of the dashboard (docs/stats-api.md):
 *   GET /api/stats                      every channel's summary
 *   GET /api/stats/:channel             one channel's snapshot (series, QoS, graph, peer table)
 *   GET /api/stats/:channel/events      the self-management event feed (?since=&filter=&limit=)
 *   GET /api/live?channel=&filter=      Server-Sent Events: `snapshot` and `events` every
 *                                       liveIntervalMs, `overview` (channel list) with them
 * When the tracker has an admin token, these (and /api/channels/:channel/peers) need it, as
 * `Authorization: Bearer TOKEN` or `?token=TOKEN` (EventSource cannot send headers): 401 when it
 * is missing, 403 when it is wrong. Peer ids only, never an IP address.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { ServerResponse } from 'node:http';
import { NAME_PATTERN } from '../../peer/core/paths.js';
import type { TrackerContext } from '../context.js';
import { parsePredicate, type EventPredicate } from '../stats/predicate.js';

/** SSE clients whose socket has more than this queued are skipped for a tick (slow readers). */
const MAX_QUEUED_BYTES = 4 * 1024 * 1024;
export const MAX_LIVE_CLIENTS = 256;

interface LiveClient {
  res: ServerResponse;
  channel: string;
  predicate: EventPredicate | null;
  lastEventId: number;
}

function tokenOf(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (typeof h === 'string') {
    const m = /^Bearer\s+(.+)$/i.exec(h.trim());
    if (m) return m[1];
  }
  const q = (req.query as Record<string, unknown> | undefined)?.token;
  return typeof q === 'string' && q !== '' ? q : undefined;
}

function sameSecret(expected: string, given: string): boolean {
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(given).digest();
  return timingSafeEqual(a, b);
}

/** A preHandler that enforces the admin token (when one is configured). */
export function adminGuard(ctx: TrackerContext) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const expected = ctx.adminToken;
    if (!expected) return;
    const given = tokenOf(req);
    if (given === undefined) {
      reply.code(401).header('www-authenticate', 'Bearer realm="starling"');
      await reply.send({ error: 'admin token required', code: 'token-missing' });
      return;
    }
    if (!sameSecret(expected, given)) {
      reply.code(403);
      await reply.send({ error: 'wrong admin token', code: 'token-wrong' });
    }
  };
}

const channelParams = {
  type: 'object',
  required: ['channel'],
  properties: { channel: { type: 'string', pattern: NAME_PATTERN.source } },
} as const;

export interface StatsPluginOptions {
  ctx: TrackerContext;
  /** Live feed period. Default 2000 ms. */
  liveIntervalMs?: number;
}

export const statsPlugin: FastifyPluginAsync<StatsPluginOptions> = async (app, { ctx, liveIntervalMs = 2000 }) => {
  const hub = ctx.stats;
  const guard = adminGuard(ctx);

  app.addHook('onRequest', async (_req, reply) => {
    reply.header('access-control-allow-origin', '*');
    reply.header('cache-control', 'no-store');
  });
  app.options('/api/stats', async (_req, reply) => preflight(reply));
  app.options('/api/stats/*', async (_req, reply) => preflight(reply));
  app.options('/api/live', async (_req, reply) => preflight(reply));

  app.get('/api/stats', { preHandler: guard }, async () => hub.overview());

  app.get<{ Params: { channel: string } }>('/api/stats/:channel', { preHandler: guard, schema: { params: channelParams } }, async (req, reply) => {
    const snap = hub.snapshot(req.params.channel);
    if (!snap) return reply.code(404).send({ error: 'unknown channel', code: 'unknown-channel' });
    return snap;
  });

  app.get<{ Params: { channel: string }; Querystring: { since?: number; filter?: string; limit?: number } }>(
    '/api/stats/:channel/events',
    {
      preHandler: guard,
      schema: {
        params: channelParams,
        querystring: {
          type: 'object',
          properties: {
            since: { type: 'integer', minimum: 0 },
            filter: { type: 'string', maxLength: 512 },
            limit: { type: 'integer', minimum: 1, maximum: 2000, default: 200 },
            token: { type: 'string' },
          },
        },
      },
    },
    async (req, reply) => {
      const parsed = parsePredicate(req.query.filter ?? '');
      if (!parsed.ok) return reply.code(400).send({ error: `bad filter: ${parsed.error}`, code: 'bad-filter' });
      return { lastEventId: hub.lastEventId, events: hub.events({ channel: req.params.channel, sinceId: req.query.since, filter: parsed.test, limit: req.query.limit }) };
    },
  );

  // ---- live feed (SSE)
  const clients = new Set<LiveClient>();
  const write = (c: LiveClient, event: string, json: string): void => {
    if (c.res.writableLength > MAX_QUEUED_BYTES || c.res.destroyed) return;
    c.res.write(`event: ${event}\ndata: ${json}\n\n`);
  };
  const sendEvents = (c: LiveClient, limit = 200): void => {
    const events = hub.events({ channel: c.channel, sinceId: c.lastEventId, filter: c.predicate ?? undefined, limit });
    c.lastEventId = hub.lastEventId;
    if (events.length > 0) write(c, 'events', JSON.stringify(events));
  };
  const tick = (): void => {
    if (clients.size === 0) return;
    const overview = JSON.stringify(hub.overview());
    const snaps = new Map<string, string>();
    for (const c of clients) {
      let snap = snaps.get(c.channel);
      if (snap === undefined) snaps.set(c.channel, (snap = JSON.stringify(hub.snapshot(c.channel))));
      write(c, 'overview', overview);
      write(c, 'snapshot', snap);
      sendEvents(c);
    }
  };
  const timer = setInterval(tick, liveIntervalMs);
  timer.unref();
  const endAll = async () => {
    clearInterval(timer);
    for (const c of clients) c.res.end();
    clients.clear();
    ctx.statsMetrics.dashboardClients.set(0);
  };
  app.addHook('preClose', endAll);
  app.addHook('onClose', endAll);

  app.get<{ Querystring: { channel: string; filter?: string } }>(
    '/api/live',
    {
      preHandler: guard,
      schema: {
        querystring: {
          type: 'object',
          required: ['channel'],
          properties: {
            channel: { type: 'string', pattern: NAME_PATTERN.source },
            filter: { type: 'string', maxLength: 512 },
            token: { type: 'string' },
          },
        },
      },
    },
    async (req, reply) => {
      const parsed = parsePredicate(req.query.filter ?? '');
      if (!parsed.ok) return reply.code(400).send({ error: `bad filter: ${parsed.error}`, code: 'bad-filter' });
      if (clients.size >= MAX_LIVE_CLIENTS) return reply.code(503).send({ error: 'too many live clients', code: 'busy' });
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store, no-transform',
        connection: 'keep-alive',
        'access-control-allow-origin': '*',
        'x-accel-buffering': 'no',
      });
      res.write(`retry: ${Math.max(1000, liveIntervalMs)}\n\n`);
      const c: LiveClient = { res, channel: req.query.channel, predicate: parsed.terms > 0 ? parsed.test : null, lastEventId: 0 };
      clients.add(c);
      ctx.statsMetrics.dashboardClients.set(clients.size);
      write(c, 'hello', JSON.stringify({ channel: c.channel, intervalMs: liveIntervalMs, bucketMs: hub.bucketMs, auth: Boolean(ctx.adminToken) }));
      write(c, 'overview', JSON.stringify(hub.overview()));
      write(c, 'snapshot', JSON.stringify(hub.snapshot(c.channel)));
      sendEvents(c, 300);
      const drop = () => {
        if (clients.delete(c)) ctx.statsMetrics.dashboardClients.set(clients.size);
      };
      // (IncomingMessage's 'close' fires once the request is read, not when the client goes.)
      res.on('close', drop);
      res.on('error', drop);
    },
  );
};

function preflight(reply: FastifyReply) {
  reply.header('access-control-allow-methods', 'GET, OPTIONS');
  reply.header('access-control-allow-headers', 'Authorization');
  reply.header('access-control-max-age', '86400');
  return reply.code(204).send();
}
