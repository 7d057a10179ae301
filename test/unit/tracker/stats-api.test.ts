/** The stats API, live feed (SSE), admin token, report validation and metric names, on a real tracker. */
import { get as httpGet } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { Client, getMetrics, metricValue, startTracker, until, type Started } from './helpers.js';
import { STATS_METRIC_NAMES } from '../../../tracker/stats-metrics.js';
import { OriginMetrics } from '../../../server/metrics.js';
import { REPORT_MAX_LINKS } from '../../../peer/core/signaling.js';

let trackers: Started[] = [];
let clients: Client[] = [];
afterEach(async () => {
  for (const c of clients) c.close();
  clients = [];
  await Promise.all(trackers.map((t) => t.app.close()));
  trackers = [];
});

async function start(opts = {}): Promise<Started> {
  const t = await startTracker({ stats: { minReportIntervalMs: 0, settleMs: 0 }, ...opts });
  trackers.push(t);
  return t;
}

async function join(t: Started, kind: 'origin' | 'seeder' | 'browser'): Promise<{ c: Client; id: string }> {
  const c = await Client.connect(t.ws);
  clients.push(c);
  const w = await c.join('demo', kind);
  return { c, id: w.peerId as string };
}

/** Reads Server-Sent Events until `want` events named `name` arrived, then closes the socket. */
function readSse(url: string, name: string, want = 1, ms = 5000): Promise<any[]> {
  return new Promise((resolve, reject) => {
    const out: any[] = [];
    let buf = '';
    const req = httpGet(url, (res) => {
      expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (ev === name && data !== undefined) out.push(JSON.parse(data));
        }
        if (out.length >= want) {
          clearTimeout(timer);
          req.destroy();
          resolve(out);
        }
      });
    });
    req.on('error', () => {});
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no ${want} '${name}' events within ${ms} ms`));
    }, ms);
  });
}

describe('stats API', () => {
  it('aggregates reports into a channel snapshot with graph, table and QoS; never shows addresses', async () => {
    const t = await start();
    const origin = await join(t, 'origin');
    const seeder = await join(t, 'seeder');
    const viewer = await join(t, 'browser');
    origin.c.send({ type: 'report', stats: { bytesUploaded: 40_000 }, links: [{ peerId: seeder.id, sent: 40_000, received: 0, child: true }] });
    seeder.c.send({ type: 'report', stats: { bytesFromOriginPeer: 40_000, bytesUploaded: 30_000, peers: 2 }, links: [{ peerId: viewer.id, sent: 30_000, received: 0 }] });
    viewer.c.send({
      type: 'report',
      stats: { bytesFromPeers: 30_000, bytesFromHttp: 10_000, startupMs: 900, latencyMs: 6500, stalledMs: 0, watchMs: 4000, stalls: 0, peers: 1 },
      links: [{ peerId: seeder.id, sent: 0, received: 30_000 }],
      rendition: '360p',
      nat: 'cone',
    });
    const snap = await until(async () => {
      const s = await (await fetch(`${t.http}/api/stats/demo`)).json();
      return s.peers?.length === 3 && s.peers.every((p: any) => p.lastReportAt !== null) ? s : null;
    });
    expect(snap).toMatchObject({ channel: 'demo', viewers: 1, seeders: 1, origins: 1, renditions: [{ rendition: '360p', viewers: 1 }] });
    expect(snap.offloadTotal).toBeCloseTo(0.75);
    expect(snap.graph.edges.map((e: any) => `${e.from}>${e.to}`).sort()).toEqual([`${origin.id}>${seeder.id}`, `${seeder.id}>${viewer.id}`].sort());
    expect(snap.qos.startupMs.p50).toBe(900);
    expect(snap.peers.find((p: any) => p.peerId === viewer.id)).toMatchObject({ nat: 'cone', rendition: '360p', neighbors: 1 });
    expect(JSON.stringify(snap)).not.toMatch(/127\.0\.0\.1|::1|\b\d{1,3}(\.\d{1,3}){3}\b/);

    const overview = await (await fetch(`${t.http}/api/stats`)).json();
    expect(overview.channels.map((c: any) => c.channel)).toEqual(['demo']);
    const feed = await (await fetch(`${t.http}/api/stats/demo/events?filter=type:join`)).json();
    expect(feed.events).toHaveLength(3);
    expect((await fetch(`${t.http}/api/stats/demo/events?filter=bogus:1`)).status).toBe(400);
    expect((await fetch(`${t.http}/api/stats/nochannel`)).status).toBe(404);
    expect((await fetch(`${t.http}/api/stats/Bad%20Name`)).status).toBe(400);
  });

  it('rejects reports beyond the schema bounds', async () => {
    const t = await start();
    const v = await join(t, 'browser');
    const links = Array.from({ length: REPORT_MAX_LINKS + 1 }, (_, i) => ({ peerId: `peer${i}xx`, sent: 1, received: 1 }));
    v.c.send({ type: 'report', stats: {}, links });
    expect((await v.c.next('error')).reason).toMatch(/^invalid message/);
    v.c.send({ type: 'report', stats: {}, rendition: 'Not A Name' });
    expect((await v.c.next('error')).reason).toMatch(/^invalid message/);
    v.c.send({ type: 'report', stats: {}, links: [{ peerId: 'abcdefgh', sent: -1, received: 0 }] });
    expect((await v.c.next('error')).reason).toMatch(/^invalid message/);
    v.c.send({ type: 'report', stats: {}, extra: 1 });
    expect((await v.c.next('error')).reason).toMatch(/^invalid message/);
  });

  it('drops reports that come too often (per-peer rate limit) and counts them', async () => {
    const t = await start({ stats: { minReportIntervalMs: 60_000 } });
    const v = await join(t, 'browser');
    v.c.send({ type: 'report', stats: { bytesFromPeers: 1 } });
    v.c.send({ type: 'report', stats: { bytesFromPeers: 2 } });
    const text = await until(async () => {
      const m = await getMetrics(t.http);
      return metricValue(m, 'starling_tracker_reports_dropped_total{reason="too frequent"}') === 1 ? m : null;
    });
    expect(metricValue(text, 'starling_tracker_reports_total{kind="browser"}')).toBe(1);
    expect(t.app.tracker.registry.get('demo', v.id)?.lastReport).toEqual({ bytesFromPeers: 1 });
  });

  it('streams snapshots and events over Server-Sent Events', async () => {
    const t = await start({ liveIntervalMs: 100 });
    const v = await join(t, 'browser');
    v.c.send({ type: 'report', stats: { bytesFromPeers: 1000 } });
    const [hello] = await readSse(`${t.http}/api/live?channel=demo`, 'hello');
    expect(hello).toMatchObject({ channel: 'demo', auth: false });
    const snaps = await readSse(`${t.http}/api/live?channel=demo`, 'snapshot', 2);
    expect(snaps[1].peers.map((p: any) => p.peerId)).toEqual([v.id]);
    const [events] = await readSse(`${t.http}/api/live?channel=demo&filter=type:join`, 'events');
    expect(events.map((e: any) => e.type)).toEqual(['join']);
    expect((await fetch(`${t.http}/api/live?channel=demo&filter=zz:1`)).status).toBe(400);
  });

  it('requires the admin token when configured: 401 missing, 403 wrong, header or query accepted', async () => {
    const t = await start({ adminToken: 's3cret' });
    await join(t, 'browser');
    for (const path of ['/api/stats', '/api/stats/demo', '/api/stats/demo/events', '/api/live?channel=demo', '/api/channels/demo/peers']) {
      const missing = await fetch(`${t.http}${path}`);
      expect(missing.status, path).toBe(401);
      expect((await missing.json()).code).toBe('token-missing');
      const wrong = await fetch(`${t.http}${path}${path.includes('?') ? '&' : '?'}token=nope`);
      expect(wrong.status, path).toBe(403);
      expect((await wrong.json()).code).toBe('token-wrong');
    }
    expect((await fetch(`${t.http}/api/stats`, { headers: { authorization: 'Bearer s3cret' } })).status).toBe(200);
    expect((await fetch(`${t.http}/api/stats/demo?token=s3cret`)).status).toBe(200);
    expect((await fetch(`${t.http}/api/channels/demo/peers?token=s3cret`)).status).toBe(200);
    const [hello] = await readSse(`${t.http}/api/live?channel=demo&token=s3cret`, 'hello');
    expect(hello.auth).toBe(true);
    // Aggregates stay open for Prometheus; the preflight allows the Authorization header.
    expect((await fetch(`${t.http}/metrics`)).status).toBe(200);
    expect((await fetch(`${t.http}/api/channels`)).status).toBe(200);
    const pre = await fetch(`${t.http}/api/stats`, { method: 'OPTIONS' });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-headers')).toMatch(/authorization/i);
  });
});

describe('metric names', () => {
  it('the tracker exports every channel figure', async () => {
    const t = await start();
    const v = await join(t, 'browser');
    v.c.send({ type: 'report', stats: { bytesFromPeers: 2048, bytesFromHttp: 1024, startupMs: 700, latencyMs: 5000, stalledMs: 100, watchMs: 10_000 }, rendition: '360p' });
    const text = await until(async () => {
      const m = await getMetrics(t.http);
      return metricValue(m, 'starling_channel_received_bytes_total{channel="demo",source="peers"}') === 2048 ? m : null;
    });
    for (const name of STATS_METRIC_NAMES) expect(text, name).toContain(`# TYPE ${name} `);
    expect(text).toMatch(/^starling_channel_viewers\{channel="demo"\} 1$/m);
    expect(metricValue(text, 'starling_channel_origin_upload_bytes_total{channel="demo",path="http"}')).toBe(1024);
    expect(metricValue(text, 'starling_channel_startup_seconds_count{channel="demo"}')).toBe(1);
    expect(metricValue(text, 'starling_channel_stalled_seconds_total{channel="demo"}')).toBeCloseTo(0.1);
    expect(metricValue(text, 'starling_channel_viewers_by_rendition{channel="demo",rendition="360p"}')).toBe(1);
    expect(metricValue(text, 'starling_tracker_events_total{type="join"}')).toBe(1);
    for (const line of text.split('\n')) if (line && !line.startsWith('#')) expect(line).toMatch(/^starling_[a-z_]+(\{[^}]*\})? /);
  });

  it('the origin exports its root peer figures', async () => {
    const m = new OriginMetrics();
    const untrack = m.trackRootPeer('demo', () => ({ bytesUploaded: 12345, peers: 3, badPieces: 0 }));
    let text = await m.registry.metrics();
    for (const name of ['starling_origin_peer_upload_bytes_total', 'starling_origin_peer_neighbors', 'starling_origin_peer_bad_pieces_total', 'starling_origin_http_bytes_total']) {
      expect(text, name).toContain(`# TYPE ${name} `);
    }
    expect(metricValue(text, 'starling_origin_peer_upload_bytes_total{channel="demo"}')).toBe(12345);
    expect(metricValue(text, 'starling_origin_peer_neighbors{channel="demo"}')).toBe(3);
    untrack();
    text = await m.registry.metrics();
    expect(text).not.toContain('starling_origin_peer_neighbors{channel="demo"}');
  });
});
