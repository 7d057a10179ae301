/**
 * The signaling client with several tracker URLs: rotation on failure with back-off, the resume
 * token carried to the next tracker, a silent tracker given up after the welcome timeout. Then
 * the real thing: two trackers on one redis, the first one closed, the client moves to the other
 * and keeps its id.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { SignalingClient, trackerUrlList } from '../../../peer/host/signaling-client.js';
import type { WebSocketCtor } from '../../../peer/host/host-api.js';
import type { WelcomeMessage } from '../../../peer/core/signaling.js';
import { FakeTimers, FakeWebSocket } from '../host/fakes.js';
import { startTracker, until, type Started } from './helpers.js';
import { haveRedisServer, startRedis, type TestRedis } from './redis-server.js';

/** until() with room for a loaded CI machine (its default 3 s is tight for steps across processes). */
const eventually = <T>(fn: () => Promise<T> | T, ms = 10_000) => until(fn, ms);

const welcome = (peerId = 'me-000001', resumeToken = 'tok-1'): WelcomeMessage => ({
  type: 'welcome', peerId, iceServers: [], peers: [], resumeToken,
});

describe('tracker URL lists', () => {
  it('parses lists and comma-separated strings, refuses junk', () => {
    expect(trackerUrlList('ws://a/ws')).toEqual(['ws://a/ws']);
    expect(trackerUrlList('ws://a/ws, wss://b:8443/ws')).toEqual(['ws://a/ws', 'wss://b:8443/ws']);
    expect(trackerUrlList(['ws://a/ws', 'ws://b/ws'])).toEqual(['ws://a/ws', 'ws://b/ws']);
    expect(() => trackerUrlList('')).toThrow();
    expect(() => trackerUrlList('http://a/ws')).toThrow();
    expect(() => trackerUrlList(Array.from({ length: 17 }, (_, i) => `ws://t${i}/ws`))).toThrow();
  });
});

describe('SignalingClient with several trackers', () => {
  beforeEach(() => FakeWebSocket.reset());

  function make(urls: string | string[], random = () => 0) {
    const timers = new FakeTimers();
    const events: string[] = [];
    const client = new SignalingClient(
      { url: urls, channel: 'demo', kind: 'browser', peerId: 'me-000001', webSocket: FakeWebSocket, timers, random, minBackoffMs: 1000, maxBackoffMs: 30_000, welcomeTimeoutMs: 5000 },
      { onWelcome: (m) => events.push(`welcome:${m.peerId}`), onDisconnected: () => events.push('disconnected') },
    );
    return { client, timers, events };
  }

  it('moves to the next tracker after a drop, with the resume token, and back-off grows per turn', () => {
    const { client, timers, events } = make(['ws://a/ws', 'ws://b/ws', 'ws://c/ws']);
    client.start();
    expect(FakeWebSocket.last.url).toBe('ws://a/ws'); // random() = 0: the first
    FakeWebSocket.last.open();
    FakeWebSocket.last.receive(welcome());
    FakeWebSocket.last.drop(); // tracker a dies
    expect(client.stats().trackerUrl).toBe('ws://b/ws');
    // random() = 0: delay = base/2 = 500 ms for the whole first turn.
    timers.advance(499);
    expect(FakeWebSocket.instances).toHaveLength(1);
    timers.advance(1);
    expect(FakeWebSocket.last.url).toBe('ws://b/ws');
    FakeWebSocket.last.drop(); // b refuses too (never opened)
    timers.advance(500);
    expect(FakeWebSocket.last.url).toBe('ws://c/ws');
    FakeWebSocket.last.drop();
    timers.advance(500);
    expect(FakeWebSocket.last.url).toBe('ws://a/ws');
    FakeWebSocket.last.drop();
    // A full turn (a, b, c) failed: the delay doubles.
    timers.advance(999);
    expect(FakeWebSocket.instances).toHaveLength(4);
    timers.advance(1);
    const ws = FakeWebSocket.last;
    expect(ws.url).toBe('ws://b/ws');
    ws.open();
    expect(ws.sent[0]).toMatchObject({ type: 'join', peerId: 'me-000001', resumeToken: 'tok-1' });
    ws.receive(welcome('me-000001', 'tok-2'));
    expect(events.filter((e) => e.startsWith('welcome'))).toHaveLength(2);
    expect(client.stats()).toMatchObject({ welcomed: true, failovers: 4, trackerUrl: 'ws://b/ws' });
    client.stop();
  });

  it('gives up a tracker that accepts the socket but never welcomes', () => {
    const { client, timers } = make('ws://a/ws,ws://b/ws');
    client.start();
    const first = FakeWebSocket.last;
    first.open();
    timers.advance(4999);
    expect(first.closed).toBe(false);
    timers.advance(1);
    expect(first.closed).toBe(true);
    timers.advance(1000);
    expect(FakeWebSocket.last.url).toBe('ws://b/ws');
    client.stop();
  });

  it('a single URL behaves as before (no rotation, back-off doubles each attempt)', () => {
    const { client, timers } = make('ws://a/ws');
    client.start();
    FakeWebSocket.last.drop();
    timers.advance(500);
    expect(FakeWebSocket.instances).toHaveLength(2);
    FakeWebSocket.last.drop();
    timers.advance(999);
    expect(FakeWebSocket.instances).toHaveLength(2);
    timers.advance(1);
    expect(FakeWebSocket.last.url).toBe('ws://a/ws');
    expect(client.stats().failovers).toBe(0);
    client.stop();
  });
});

describe.skipIf(!haveRedisServer())('failover between two real trackers on redis', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('the client moves to the surviving tracker and keeps its peer id', async () => {
    const opts = (id: string) => ({ trackerId: id, redis: { url: redis.url, aliveTtlMs: 1500 }, lease: { ttlMs: 1200, tickMs: 200 } });
    let a: Started | null = await startTracker(opts('fo-a'));
    const b = await startTracker(opts('fo-b'));
    const welcomes: WelcomeMessage[] = [];
    const client = new SignalingClient(
      { url: [a.ws, b.ws], channel: 'demo', kind: 'seeder', peerId: 'seeder-failover', webSocket: WebSocket as unknown as WebSocketCtor, random: () => 0, minBackoffMs: 50, maxBackoffMs: 200 },
      { onWelcome: (m) => welcomes.push(m) },
    );
    try {
      client.start();
      await eventually(() => welcomes.length === 1);
      expect(a.app.tracker.store.localSize).toBe(1);
      await eventually(() => b.app.tracker.registry.has('demo', 'seeder-failover'));
      await a.app.close();
      a = null;
      await eventually(() => welcomes.length === 2, 5000);
      expect(welcomes[1].peerId).toBe('seeder-failover');
      expect(client.stats().trackerUrl).toBe(b.ws);
      expect(b.app.tracker.store.localSize).toBe(1);
    } finally {
      client.stop();
      await a?.app.close();
      await b.app.close();
    }
  });
});
