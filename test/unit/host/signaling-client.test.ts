import { beforeEach, describe, expect, it } from 'vitest';
import { SignalingClient, parseTrackerMessage, validSignalData } from '../../../peer/host/signaling-client.js';
import type { WelcomeMessage } from '../../../peer/core/signaling.js';
import { FakeTimers, FakeWebSocket } from './fakes.js';

const welcome = (peerId = 'me-000001'): WelcomeMessage => ({
  type: 'welcome',
  peerId,
  iceServers: [{ urls: 'stun:10.77.0.1:3478' }],
  peers: [{ peerId: 'other-0001', kind: 'seeder' }],
});

function makeClient(timers = new FakeTimers(), random = () => 0.5) {
  const events: string[] = [];
  const client = new SignalingClient(
    { url: 'ws://t/ws', channel: 'demo', kind: 'browser', peerId: 'me-000001', webSocket: FakeWebSocket, timers, random },
    {
      onWelcome: (m) => events.push(`welcome:${m.peerId}`),
      onPeers: (p) => events.push(`peers:${p.length}`),
      onSignal: (from, kind, data) => events.push(`signal:${from}:${kind}:${Object.keys(data)[0]}`),
      onTrackerError: (r) => events.push(`error:${r}`),
      onDisconnected: () => events.push('disconnected'),
    },
  );
  return { client, events, timers };
}

describe('parseTrackerMessage', () => {
  it('accepts well-formed messages', () => {
    expect(parseTrackerMessage(JSON.stringify(welcome()))).toEqual(welcome());
    expect(parseTrackerMessage('{"type":"peers","peers":[]}')).toEqual({ type: 'peers', peers: [] });
    expect(parseTrackerMessage(JSON.stringify({ ...welcome(), optimizer: true }))).toEqual({ ...welcome(), optimizer: true });
    expect(parseTrackerMessage(JSON.stringify({ ...welcome(), optimizer: false }))).toEqual(welcome());
    const sig = { type: 'signal', from: 'abcdefgh', fromKind: 'browser', data: { candidate: null } };
    expect(parseTrackerMessage(JSON.stringify(sig))).toEqual(sig);
    expect(parseTrackerMessage(new TextEncoder().encode('{"type":"error","reason":"x"}'))).toEqual({ type: 'error', reason: 'x' });
  });

  it('rejects hostile or malformed ones', () => {
    const bad: unknown[] = [
      'not json',
      '[]',
      'null',
      '{"type":"nope"}',
      '{"type":"welcome","peerId":"bad id!","iceServers":[],"peers":[]}',
      '{"type":"welcome","peerId":"abcdefgh","iceServers":[{"urls":"http://x"}],"peers":[]}',
      '{"type":"welcome","peerId":"abcdefgh","iceServers":[],"peers":[{"peerId":"x","kind":"alien"}]}',
      '{"type":"welcome","peerId":"abcdefgh","iceServers":[],"peers":[],"optimizer":"yes"}',
      '{"type":"peers","peers":{}}',
      '{"type":"signal","from":"abcdefgh","fromKind":"browser","data":{"sdp":{"type":"pranswer","sdp":""}}}',
      '{"type":"signal","from":"abcdefgh","fromKind":"browser","data":{"candidate":{"candidate":5}}}',
      '{"type":"signal","from":"abcdefgh","fromKind":"browser","data":{"candidate":null,"reject":"x"}}',
      '{"type":"signal","from":"abcdefgh","fromKind":"browser"}',
      '{"type":"error","reason":{}}',
      'x'.repeat(70_000),
      42,
      { type: 'peers', peers: [] }, // not a string frame
    ];
    for (const b of bad) expect(parseTrackerMessage(b), String(b).slice(0, 80)).toBeNull();
  });

  it('copies only known fields of relayed signal data', () => {
    const d = validSignalData({ candidate: { candidate: 'candidate:1 1 udp 1 10.0.0.1 5000 typ host', sdpMid: '0', sdpMLineIndex: 0, evil: 1 } });
    expect(d).toEqual({ candidate: { candidate: 'candidate:1 1 udp 1 10.0.0.1 5000 typ host', sdpMid: '0', sdpMLineIndex: 0 } });
  });

  it('keeps `assigned: true` on offers only, and nothing else beside an sdp', () => {
    const sdp = { type: 'offer', sdp: 'v=0' };
    expect(validSignalData({ sdp, assigned: true })).toEqual({ sdp, assigned: true });
    expect(validSignalData({ sdp })).toEqual({ sdp });
    expect(validSignalData({ sdp: { type: 'answer', sdp: 'v=0' }, assigned: true })).toBeNull();
    expect(validSignalData({ sdp, assigned: 1 })).toBeNull();
    expect(validSignalData({ sdp, evil: true })).toBeNull();
    expect(validSignalData({ sdp, assigned: true, evil: 1 })).toBeNull();
  });
});

describe('SignalingClient', () => {
  beforeEach(() => FakeWebSocket.reset());

  it('joins on open with its peerId and routes validated messages', () => {
    const { client, events } = makeClient();
    client.start();
    const ws = FakeWebSocket.last;
    expect(ws.url).toBe('ws://t/ws');
    ws.open();
    expect(ws.sent).toEqual([{ type: 'join', channel: 'demo', kind: 'browser', peerId: 'me-000001' }]);
    expect(client.signal('other-0001', { candidate: null })).toBe(false); // not welcomed yet
    ws.receive(welcome());
    ws.receive({ type: 'peers', peers: [{ peerId: 'p2-000001', kind: 'browser' }] });
    ws.receive({ type: 'signal', from: 'p2-000001', fromKind: 'browser', data: { reject: 'full' } });
    ws.receive({ type: 'error', reason: 'rate' });
    ws.receive('garbage');
    ws.receive({ type: 'signal', from: 'p2-000001', fromKind: 'browser', data: { sdp: 'x' } });
    expect(events).toEqual(['welcome:me-000001', 'peers:1', 'signal:p2-000001:browser:reject', 'error:rate']);
    expect(client.stats().malformed).toBe(2);
    expect(client.isWelcomed).toBe(true);
    expect(client.signal('p2-000001', { candidate: null })).toBe(true);
    expect(client.requestPeers(5)).toBe(true);
    expect(client.report({ a: 1 })).toBe(true);
    expect(ws.sent.slice(1)).toEqual([
      { type: 'signal', to: 'p2-000001', data: { candidate: null } },
      { type: 'peers', max: 5 },
      { type: 'report', stats: { a: 1 } },
    ]);
    client.stop();
    expect(ws.sent[ws.sent.length - 1]).toEqual({ type: 'leave' });
    expect(ws.closed).toBe(true);
  });

  it('re-joins with the resume token of its last welcome, so the tracker hands its id back', () => {
    const timers = new FakeTimers();
    const { client } = makeClient(timers, () => 1);
    client.start();
    FakeWebSocket.last.open();
    expect(FakeWebSocket.last.sent[0]).not.toHaveProperty('resumeToken');
    FakeWebSocket.last.receive({ ...welcome(), resumeToken: 'tok-123' });
    FakeWebSocket.last.drop();
    timers.advance(1000);
    FakeWebSocket.last.open();
    expect(FakeWebSocket.last.sent[0]).toEqual({ type: 'join', channel: 'demo', kind: 'browser', peerId: 'me-000001', resumeToken: 'tok-123' });
  });

  it('reconnects after a drop with exponential back-off (1 s -> 30 s, jitter) and re-joins with the same peerId', () => {
    const timers = new FakeTimers();
    const { client, events } = makeClient(timers, () => 1); // jitter factor 1 -> the full base delay
    client.start();
    FakeWebSocket.last.open();
    FakeWebSocket.last.receive(welcome());
    FakeWebSocket.last.drop();
    expect(events).toContain('disconnected');
    // Failures in a row: delays 1, 2, 4, 8, 16, 30, 30 s.
    const expected = [1000, 2000, 4000, 8000, 16000, 30000, 30000];
    for (const d of expected) {
      const n = FakeWebSocket.instances.length;
      timers.advance(d - 1);
      expect(FakeWebSocket.instances.length).toBe(n);
      timers.advance(1);
      expect(FakeWebSocket.instances.length).toBe(n + 1);
      FakeWebSocket.last.drop(); // connection refused
    }
    // Success resets the back-off.
    timers.advance(30000);
    const ws = FakeWebSocket.last;
    ws.open();
    expect(ws.sent[0]).toEqual({ type: 'join', channel: 'demo', kind: 'browser', peerId: 'me-000001' });
    ws.receive(welcome());
    ws.drop();
    const n = FakeWebSocket.instances.length;
    timers.advance(1000);
    expect(FakeWebSocket.instances.length).toBe(n + 1);
    client.stop();
    expect(timers.pending).toBe(0);
  });

  it('jitters reconnect delays into [base/2, base]', () => {
    const timers = new FakeTimers();
    const { client } = makeClient(timers, () => 0);
    client.start();
    FakeWebSocket.last.drop();
    timers.advance(499);
    expect(FakeWebSocket.instances.length).toBe(1);
    timers.advance(1);
    expect(FakeWebSocket.instances.length).toBe(2);
    client.stop();
  });

  it('drops messages beyond its rate budget instead of flooding the tracker', () => {
    const timers = new FakeTimers();
    const client = new SignalingClient(
      { url: 'ws://t/ws', channel: 'demo', kind: 'browser', peerId: 'me-000001', webSocket: FakeWebSocket, timers, rateLimit: { perSecond: 10, burst: 5 } },
      {},
    );
    client.start();
    FakeWebSocket.last.open();
    FakeWebSocket.last.receive(welcome());
    let ok = 0;
    for (let i = 0; i < 20; i++) if (client.requestPeers()) ok++;
    expect(ok).toBe(4); // burst 5, one spent on join
    timers.advance(1000);
    for (let i = 0; i < 20; i++) if (client.requestPeers()) ok++;
    expect(ok).toBe(9);
    expect(client.stats().droppedRateLimited).toBe(31);
    client.stop();
  });
});
