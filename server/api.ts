/**
 * The origin's channel API (fastify routes):
 *
 *   GET    /api/channels            every channel: [{channel, state, live, vod, ingest, renditions, ...}]
 *   GET    /api/channels/:channel   one channel (404 if unknown)
 *   POST   /api/channels            create one (Authorization: Bearer <admin token>);
 *                                   body {channel, streamKey?, renditions?: ['720p','360p']}
 *                                   → 201 {channel, streamKey, whip, rtmp}; 400 bad body, 409 exists,
 *                                   429 channel limit; 401 no token, 403 wrong token or API disabled
 *   DELETE /api/channels/:channel   stop and remove it (admin token) → 204
 *
 * The stream key is returned once, to the creator; it is never listed or logged.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../peer/core/types.js';
import { authStatus, bearerToken, checkSecret, generateStreamKey, RateLimiter } from './auth.js';
import type { Channel } from './channel.js';
import type { ChannelConfig } from './origin.js';

export interface ChannelApiOptions {
  channels(): Channel[];
  get(name: string): Channel | null;
  create(cfg: ChannelConfig): Promise<Channel>;
  remove(name: string): Promise<boolean>;
  adminToken?: string;
  log: Logger;
}

const createSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['channel'],
  properties: {
    channel: { type: 'string', maxLength: 32 },
    streamKey: { type: 'string', maxLength: 128 },
    renditions: { type: 'array', maxItems: 5, items: { type: 'string', maxLength: 16 } },
    record: { type: 'boolean' },
  },
} as const;

export function registerChannelApi(app: FastifyInstance, o: ChannelApiOptions): void {
  const limiter = new RateLimiter(2, 10);
  const describe = (c: Channel) => ({ ...c.summary(), publishable: c.hasStreamKey });

  const admin = async (req: FastifyRequest, reply: FastifyReply) => {
    if (!limiter.take(req.ip)) return reply.code(429).send({ error: 'too many requests' });
    const r = checkSecret(bearerToken(req.headers.authorization), o.adminToken);
    if (r === 'ok') return;
    o.log.warn({ result: r, ip: req.ip }, 'channel API: refused');
    if (r === 'missing') reply.header('www-authenticate', 'Bearer realm="starling"');
    return reply.code(authStatus(r)).send({ error: r === 'disabled' ? 'channel API disabled (no admin token configured)' : r === 'missing' ? 'admin token required' : 'wrong admin token' });
  };

  app.get('/api/channels', async (_req, reply) => {
    reply.header('cache-control', 'no-cache');
    return o.channels().map(describe);
  });

  app.get<{ Params: { channel: string } }>('/api/channels/:channel', async (req, reply) => {
    const c = o.get(req.params.channel);
    if (!c) return reply.code(404).send({ error: 'unknown channel' });
    reply.header('cache-control', 'no-cache');
    return describe(c);
  });

  app.post<{ Body: { channel: string; streamKey?: string; renditions?: string[]; record?: boolean } }>('/api/channels', {
    onRequest: admin,
    bodyLimit: 4096,
    schema: { body: createSchema },
  }, async (req, reply) => {
    const streamKey = req.body.streamKey ?? generateStreamKey();
    try {
      const c = await o.create({ channel: req.body.channel, streamKey, renditions: req.body.renditions, record: req.body.record ?? true, source: null });
      o.log.info({ channel: c.name, renditions: c.info.renditions.map((r) => r.name) }, 'channel created');
      const host = req.headers.host ?? '127.0.0.1';
      return reply.code(201).header('location', `/api/channels/${c.name}`).send({
        channel: c.name,
        streamKey,
        renditions: c.info.renditions.map((r) => r.name),
        whip: `http://${host}/whip/${c.name}`,
        watch: `http://${host}/watch.html?channel=${c.name}`,
      });
    } catch (err) {
      const status = (err as { status?: number }).status ?? 500;
      if (status >= 500) o.log.error({ err: String(err) }, 'channel API: creating a channel failed');
      return reply.code(status).send({ error: status >= 500 ? 'could not create the channel' : (err as Error).message });
    }
  });

  app.delete<{ Params: { channel: string } }>('/api/channels/:channel', { onRequest: admin }, async (req, reply) => {
    const ok = await o.remove(req.params.channel);
    if (!ok) return reply.code(404).send({ error: 'unknown channel' });
    o.log.info({ channel: req.params.channel }, 'channel removed');
    return reply.code(204).send();
  });
}
