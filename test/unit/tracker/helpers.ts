import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import WebSocket from 'ws';
import { buildTracker, type TrackerOptions } from '../../../tracker/server.js';

export interface Started {
  app: FastifyInstance;
  port: number;
  http: string;
  ws: string;
}

export async function startTracker(opts: TrackerOptions = {}): Promise<Started> {
  const app = await buildTracker(opts);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as AddressInfo).port;
  return { app, port, http: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}/ws` };
}

/** A `ws` client that queues incoming JSON messages and lets tests await them. */
export class Client {
  readonly ws: WebSocket;
  private readonly queue: any[] = [];
  private waiters: Array<{ pred: (m: any) => boolean; resolve: (m: any) => void }> = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      const i = this.waiters.findIndex((w) => w.pred(msg));
      if (i >= 0) this.waiters.splice(i, 1)[0].resolve(msg);
      else this.queue.push(msg);
    });
    this.ws.on('error', () => {});
    this.closed = new Promise((resolve) => this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  static async connect(url: string): Promise<Client> {
    const c = new Client(url);
    await new Promise<void>((resolve, reject) => {
      c.ws.once('open', () => resolve());
      c.ws.once('error', reject);
    });
    return c;
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  /** The next message matching `type` (and `pred`), waiting up to `ms`. */
  next(type?: string, pred: (m: any) => boolean = () => true, ms = 3000): Promise<any> {
    const p = (m: any) => (type === undefined || m.type === type) && pred(m);
    const i = this.queue.findIndex(p);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const w = { pred: p, resolve: (m: any) => (clearTimeout(t), resolve(m)) };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`timeout waiting for ${type ?? 'a message'}; queued: ${JSON.stringify(this.queue).slice(0, 500)}`));
      }, ms);
      this.waiters.push(w);
    });
  }

  /** Joins and returns the welcome. */
  async join(channel: string, kind: 'origin' | 'seeder' | 'browser', extra: Record<string, unknown> = {}): Promise<any> {
    this.send({ type: 'join', channel, kind, ...extra });
    return this.next('welcome');
  }

  close(): void {
    this.ws.close();
  }
}

export async function getMetrics(http: string): Promise<string> {
  const res = await fetch(`${http}/metrics`);
  return res.text();
}

/** Value of one sample line, e.g. metric('starling_tracker_messages_rejected_total{reason="oversize"}'). */
export function metricValue(text: string, sample: string): number {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${sample} `)) return Number(line.slice(sample.length + 1));
  }
  return 0;
}

/** Polls until fn() is truthy (the tracker processes frames asynchronously). */
export async function until<T>(fn: () => Promise<T> | T, ms = 3000): Promise<NonNullable<T>> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Deterministic Random (mulberry32), shared with the engine tests. */
export { seededRandom as seeded } from '../core/helpers.js';
