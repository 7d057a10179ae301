/**
 * Heartbeats are spread over the ping interval (slices, so 50,000 sockets are not pinged in one
 * go): every silent connection is still cut within about two intervals, and live ones stay.
 */
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTracker, type Started } from './helpers.js';

let t: Started | null = null;
afterEach(async () => {
  await t?.app.close();
  t = null;
});

describe('sliced heartbeat', () => {
  it('cuts every silent connection and keeps the live ones', async () => {
    t = await startTracker({ limits: { pingIntervalMs: 300 } });
    const open = (autoPong: boolean) =>
      new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(t!.ws, { autoPong });
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
      });
    const silent = await Promise.all(Array.from({ length: 7 }, () => open(false)));
    const live = await Promise.all(Array.from({ length: 5 }, () => open(true)));
    const closedAt: number[] = [];
    const t0 = Date.now();
    await Promise.all(silent.map((ws) => new Promise<void>((r) => ws.once('close', () => (closedAt.push(Date.now() - t0), r())))));
    expect(Math.max(...closedAt)).toBeLessThan(5000); // two intervals plus scheduling slack on a loaded machine
    await new Promise((r) => setTimeout(r, 900));
    for (const ws of live) expect(ws.readyState).toBe(WebSocket.OPEN);
    for (const ws of live) ws.terminate();
  });
});
