/** GET /metrics: the tracker's own prom-client registry in the Prometheus text format. */
import type { FastifyPluginAsync } from 'fastify';
import type { TrackerContext } from '../context.js';

export const metricsPlugin: FastifyPluginAsync<{ ctx: TrackerContext }> = async (app, { ctx }) => {
  const { registry } = ctx.metrics;
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    reply.header('access-control-allow-origin', '*');
    return registry.metrics();
  });
};
