/**
 * Read-only HTTP API for dashboards: GET /healthz, /api/channels, /api/channels/:channel/peers.
 * CORS open (pages are served from another origin). No IP addresses, ever: viewers must not
 * learn each other's addresses here.
 */
import type { FastifyPluginAsync } from 'fastify';
import { NAME_PATTERN } from '../../peer/core/paths.js';
import type { TrackerContext } from '../context.js';
import { adminGuard } from './stats.js';
import { isRemote } from '../store/types.js';

const kindCounts = {
  type: 'object',
  required: ['origin', 'seeder', 'browser'],
  properties: { origin: { type: 'integer' }, seeder: { type: 'integer' }, browser: { type: 'integer' } },
} as const;

const channelsSchema = {
  response: {
    200: {
      type: 'array',
      items: {
        type: 'object',
        required: ['channel', 'peers'],
        properties: { channel: { type: 'string' }, peers: kindCounts },
      },
    },
  },
} as const;

const peersSchema = {
  params: {
    type: 'object',
    required: ['channel'],
    properties: { channel: { type: 'string', pattern: NAME_PATTERN.source } },
  },
  querystring: {
    type: 'object',
    properties: { limit: { type: 'integer', minimum: 1, maximum: 100000, default: 10000 }, token: { type: 'string' } },
  },
  response: {
    200: {
      type: 'array',
      items: {
        type: 'object',
        required: ['peerId', 'kind', 'lastReport', 'joinedAt'],
        properties: {
          peerId: { type: 'string' },
          kind: { type: 'string' },
          lastReport: { anyOf: [{ type: 'object', additionalProperties: { type: 'number' } }, { type: 'null' }] },
          lastReportAt: { anyOf: [{ type: 'number' }, { type: 'null' }] },
          joinedAt: { type: 'number' },
          /** The tracker the peer is connected to. */
          tracker: { type: 'string' },
        },
      },
    },
  },
} as const;

const healthSchema = {
  response: {
    200: {
      type: 'object',
      properties: {
        status: { type: 'string' },
        /** Peers of every tracker sharing the store. */
        peers: { type: 'integer' },
        channels: { type: 'integer' },
        /** Peers connected to this tracker. */
        localPeers: { type: 'integer' },
        trackerId: { type: 'string' },
        store: {
          type: 'object',
          properties: { backend: { type: 'string' }, connected: { type: 'boolean' }, trackers: { type: 'integer' } },
        },
        /** Channels whose optimizer this tracker runs. */
        leading: { type: 'array', items: { type: 'string' } },
      },
    },
  },
} as const;

export const apiPlugin: FastifyPluginAsync<{ ctx: TrackerContext }> = async (app, { ctx }) => {
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('access-control-allow-origin', '*');
    return payload;
  });

  app.get('/healthz', { schema: healthSchema }, async () => ({
    status: 'ok',
    peers: ctx.registry.size,
    channels: ctx.registry.channelNames().length,
    localPeers: ctx.store.localSize,
    trackerId: ctx.store.trackerId,
    store: ctx.store.health(),
    leading: ctx.election.leading(),
  }));

  app.get('/api/channels', { schema: channelsSchema }, async () =>
    ctx.registry
      .channelNames()
      .sort()
      .map((channel) => ({ channel, peers: ctx.registry.counts(channel) })),
  );

  app.get<{ Params: { channel: string }; Querystring: { limit: number } }>(
    '/api/channels/:channel/peers',
    { schema: peersSchema, preHandler: adminGuard(ctx) },
    async (req) =>
      ctx.registry
        .peers(req.params.channel)
        .slice(0, req.query.limit)
        .map((p) => ({
          peerId: p.peerId,
          kind: p.kind,
          lastReport: p.lastReport,
          lastReportAt: p.lastReportAt,
          joinedAt: p.joinedAt,
          tracker: isRemote(p.conn) ? p.conn.remoteTracker : ctx.store.trackerId,
        })),
  );
};
