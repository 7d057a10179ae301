import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { Client, getMetrics, metricValue, startTracker, until, type Started } from './helpers.js';

let trackers: Started[] = [];
afterEach(async () => {
  await Promise.all(trackers.map((t) => t.app.close()));
  trackers = [];
});

async function start(opts = {}): Promise<Started> {
  const t = await startTracker(opts);
  trackers.push(t);
  return t;
}

describe('tracker HTTP API', () => {
  it('serves /healthz, validates channel names, sends CORS headers', async () => {
    const t = await start();
    const h = await fetch(`${t.http}/healthz`);
    expect(h.status).toBe(200);
    expect(h.headers.get('access-control-allow-origin')).toBe('*');
    expect(await h.json()).toEqual({
      status: 'ok', peers: 0, channels: 0, localPeers: 0, trackerId: expect.stringMatching(/^t-[0-9a-f]{12}$/),
      store: { backend: 'memory', connected: true, trackers: 1 }, leading: [],
    });
    const bad = await fetch(`${t.http}/api/channels/Bad%20Name/peers`);
    expect(bad.status).toBe(400);
    const empty = await fetch(`${t.http}/api/channels/nobody/peers`);
    expect(await empty.json()).toEqual([]);
    const m = await fetch(`${t.http}/metrics`);
    expect(m.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await m.text()).toContain('starling_tracker_connections_total');
  });

  it('keeps separate metrics per tracker in one process', async () => {
    const a = await start();
    const b = await start();
    const c = await Client.connect(a.ws);
    await c.join('demo', 'browser');
    c.close();
    expect(metricValue(await getMetrics(a.http), 'starling_tracker_connections_total')).toBe(1);
    expect(metricValue(await getMetrics(b.http), 'starling_tracker_connections_total')).toBe(0);
  });

  it('terminates connections that stop answering pings', async () => {
    const t = await start({ limits: { pingIntervalMs: 100 } });
    const ws = new WebSocket(t.ws, { autoPong: false });
    ws.on('error', () => {});
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ type: 'join', channel: 'demo', kind: 'browser' }));
    await until(() => t.app.tracker.registry.size === 1);
    const code = await new Promise<number>((r) => ws.once('close', (c) => r(c)));
    expect(code).toBe(1006);
    expect(t.app.tracker.registry.size).toBe(0);
    expect(metricValue(await getMetrics(t.http), 'starling_tracker_connections_open')).toBe(0);
  });
});
