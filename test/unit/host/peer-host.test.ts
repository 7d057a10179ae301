import { beforeEach, describe, expect, it } from 'vitest';
import { PeerHost, type PeerHostExtraOptions } from '../../../peer/host/peer-host.js';
import type { PeerInfo, WelcomeMessage } from '../../../peer/core/signaling.js';
import { FakeEngine, FakeTimers, FakeTransport, FakeWebSocket } from './fakes.js';

const ME = 'mmmm-0000';
const peers = (...ids: string[]): PeerInfo[] => ids.map((peerId) => ({ peerId, kind: 'browser' as const }));
const welcome = (...ids: string[]): WelcomeMessage => ({
  type: 'welcome',
  peerId: ME,
  iceServers: [{ urls: 'stun:10.77.0.1:3478' }],
  peers: peers(...ids),
});

function setup(opts: { target?: number; extra?: PeerHostExtraOptions; me?: string } = {}) {
  const timers = new FakeTimers();
  const engine = new FakeEngine(opts.me ?? ME);
  const transport = new FakeTransport();
  const host = new PeerHost({
    trackerUrl: 'ws://tracker/ws',
    channel: 'demo',
    kind: 'browser',
    engine,
    transport,
    webSocket: FakeWebSocket,
    targetNeighbors: opts.target ?? 3,
    tickMs: 50,
    reportMs: 5000,
    timers,
    random: () => 0.5,
    ...(opts.extra ?? {}),
  });
  return { timers, engine, transport, host };
}

async function started(s: ReturnType<typeof setup>, ...ids: string[]) {
  const p = s.host.start();
  const ws = FakeWebSocket.last;
  ws.open();
  ws.receive({ ...welcome(...ids), peerId: s.engine.peerId });
  await p;
  return ws;
}

const signalsTo = (ws: FakeWebSocket, to: string) => ws.sentOfType('signal').filter((m) => m.to === to).map((m) => m.data);

describe('PeerHost', () => {
  beforeEach(() => FakeWebSocket.reset());

  it('resolves start() on welcome and connects as initiator up to targetNeighbors', async () => {
    const s = setup({ target: 3 });
    s.engine.banned.add('bbbb-0002');
    const ws = await started(s, 'aaaa-0001', 'bbbb-0002', 'cccc-0003', 'dddd-0004', 'eeee-0005', ME);
    expect(s.host.getIceServers()).toEqual([{ urls: 'stun:10.77.0.1:3478' }]);
    const ids = s.transport.connectors.map((c) => c.remoteId);
    expect(ids).toEqual(['aaaa-0001', 'cccc-0003', 'dddd-0004']); // banned and self skipped
    expect(s.transport.connectors.every((c) => c.opts.initiator)).toBe(true);
    expect(s.transport.connectors[0].opts.iceServers).toEqual([{ urls: 'stun:10.77.0.1:3478' }]);
    // The (synchronous) offers were relayed through the tracker.
    expect(signalsTo(ws, 'aaaa-0001')).toEqual([{ sdp: { type: 'offer', sdp: 'offer-to-aaaa-0001' } }]);
    expect(s.host.stats()).toMatchObject({ trackerConnected: true, connecting: 3, connectAttempts: 3, connectFailures: 0 });

    // Links go to the engine; answers are routed to the right connector.
    ws.receive({ type: 'signal', from: 'aaaa-0001', fromKind: 'browser', data: { sdp: { type: 'answer', sdp: 'x' } } });
    expect(s.transport.connectors[0].received).toEqual([{ sdp: { type: 'answer', sdp: 'x' } }]);
    s.transport.connectors[0].open();
    expect([...s.engine.links.keys()]).toEqual(['aaaa-0001']);
    expect(s.host.stats()).toMatchObject({ connecting: 2, links: 1 });
    await s.host.stop();
  });

  it('ticks the engine and reports its stats', async () => {
    const s = setup();
    const ws = await started(s);
    s.timers.advance(5000);
    expect(s.engine.ticks).toBe(100);
    const reports = ws.sentOfType('report');
    expect(reports.length).toBe(1);
    expect(reports[0].stats).toMatchObject({ bytesFromPeers: 1, bytesUploaded: 4, rejectedFrames: 3, segmentsStored: 5 });
    await s.host.stop();
    const ticks = s.engine.ticks;
    s.timers.advance(10_000);
    expect(s.engine.ticks).toBe(ticks);
    expect(s.timers.pending).toBe(0);
  });

  it('accepts an incoming offer when the engine wants the neighbor, rejects with "full" otherwise', async () => {
    const s = setup({ target: 0 });
    const ws = await started(s);
    ws.receive({ type: 'signal', from: 'pppp-0001', fromKind: 'browser', data: { sdp: { type: 'offer', sdp: 'o1' } } });
    expect(s.transport.connectors.length).toBe(1);
    const c = s.transport.connectors[0];
    expect(c.opts.initiator).toBe(false);
    expect(c.received).toEqual([{ sdp: { type: 'offer', sdp: 'o1' } }]);
    expect(signalsTo(ws, 'pppp-0001')).toEqual([{ sdp: { type: 'answer', sdp: 'answer' } }]);
    c.open();

    s.engine.maxNeighbors = 1; // now full
    ws.receive({ type: 'signal', from: 'qqqq-0002', fromKind: 'browser', data: { sdp: { type: 'offer', sdp: 'o2' } } });
    expect(s.transport.connectors.length).toBe(1);
    expect(signalsTo(ws, 'qqqq-0002')).toEqual([{ reject: 'full' }]);
    expect(s.host.stats().rejectsSent).toBe(1);
    // Stray candidates from unknown peers are ignored.
    ws.receive({ type: 'signal', from: 'rrrr-0003', fromKind: 'browser', data: { candidate: null } });
    expect(s.transport.connectors.length).toBe(1);
    await s.host.stop();
    expect(c.closed).toBe(true);
    expect(s.engine.links.size).toBe(0);
  });

  it('resolves glare: the lower peerId stays initiator', async () => {
    // We are the lower id: keep our offer, ignore theirs.
    const low = setup({ me: 'aaaa-0000', target: 1 });
    const wsLow = await started(low, 'zzzz-9999');
    expect(low.transport.connectors.length).toBe(1);
    wsLow.receive({ type: 'signal', from: 'zzzz-9999', fromKind: 'browser', data: { sdp: { type: 'offer', sdp: 'theirs' } } });
    expect(low.transport.connectors.length).toBe(1);
    expect(low.transport.connectors[0].closed).toBe(false);
    expect(low.transport.connectors[0].received).toEqual([]);
    await low.host.stop();

    // We are the higher id: drop ours (no failure, no back-off) and answer theirs.
    FakeWebSocket.reset();
    const high = setup({ me: 'zzzz-9999', target: 1 });
    const wsHigh = await started(high, 'aaaa-0000');
    const ours = high.transport.connectors[0];
    wsHigh.receive({ type: 'signal', from: 'aaaa-0000', fromKind: 'browser', data: { sdp: { type: 'offer', sdp: 'theirs' } } });
    expect(ours.closed).toBe(true);
    expect(high.transport.connectors.length).toBe(2);
    const answerer = high.transport.connectors[1];
    expect(answerer.opts.initiator).toBe(false);
    expect(answerer.received).toEqual([{ sdp: { type: 'offer', sdp: 'theirs' } }]);
    expect(high.host.stats()).toMatchObject({ glareResolved: 1, connectFailures: 0 });
    // Later signals reach the answering connector only.
    wsHigh.receive({ type: 'signal', from: 'aaaa-0000', fromKind: 'browser', data: { candidate: null } });
    expect(answerer.received.length).toBe(2);
    expect(ours.received.length).toBe(0);
    answerer.open();
    expect(high.engine.links.has('aaaa-0000')).toBe(true);
    await high.host.stop();
  });

  it('backs off a peer after failed attempts instead of retrying in a tight loop', async () => {
    const s = setup({ target: 1, extra: { failureBackoffMs: 5000, peersIntervalMs: 1000, peersRequestMinMs: 2000 } });
    const ws = await started(s, 'aaaa-0001');
    expect(s.transport.connectors.length).toBe(1);
    s.transport.connectors[0].fail('timeout');
    expect(s.host.stats().connectFailures).toBe(1);
    // Below target after a failure: asks the tracker for more peers, at once.
    expect(ws.sentOfType('peers').length).toBe(1);
    // The tracker keeps offering the same peer: not retried during the back-off (5 s * [0.75,1.25]).
    for (let i = 0; i < 4; i++) {
      s.timers.advance(1000);
      ws.receive({ type: 'peers', peers: peers('aaaa-0001') });
    }
    expect(s.transport.connectors.length).toBe(1);
    // Requests for peers are rate-limited (every peersRequestMinMs at most).
    expect(ws.sentOfType('peers').length).toBeLessThanOrEqual(3);
    s.timers.advance(1500); // 5.5 s > 5 s * 1.0 (random 0.5 -> factor 1.0)
    expect(s.transport.connectors.length).toBe(2);
    s.transport.connectors[1].fail('rejected: full');
    // Second failure: 10 s.
    s.timers.advance(9000);
    expect(s.transport.connectors.length).toBe(2);
    s.timers.advance(2000);
    expect(s.transport.connectors.length).toBe(3);
    // Success clears the back-off.
    s.transport.connectors[2].open();
    expect(s.host.stats()).toMatchObject({ links: 1, connectFailures: 2 });
    await s.host.stop();
  });

  it('a rejected offer fails the attempt through the connector', async () => {
    const s = setup({ target: 1 });
    const ws = await started(s, 'aaaa-0001');
    ws.receive({ type: 'signal', from: 'aaaa-0001', fromKind: 'browser', data: { reject: 'full' } });
    expect(s.transport.connectors[0].received).toEqual([{ reject: 'full' }]);
    await s.host.stop();
  });

  it('forgets closed links and asks the tracker for more peers when below target', async () => {
    const s = setup({ target: 2, extra: { linkClosedBackoffMs: 3000, peersRequestMinMs: 2000, peersIntervalMs: 5000 } });
    const ws = await started(s, 'aaaa-0001', 'bbbb-0002');
    const [a, b] = s.transport.connectors;
    const la = a.open();
    b.open();
    expect(s.engine.links.size).toBe(2);
    const before = ws.sentOfType('peers').length;
    la.fireClose(); // the data channel died
    expect(s.engine.links.has('aaaa-0001')).toBe(false);
    expect(s.host.stats()).toMatchObject({ links: 1, linksClosed: 1 });
    expect(ws.sentOfType('peers').length).toBe(before + 1);
    // The engine closing a link itself (e.g. a ban) is noticed too.
    s.engine.banned.add('bbbb-0002');
    s.engine.links.get('bbbb-0002')!.close();
    expect(s.host.stats().links).toBe(0);
    // Fresh peers from the tracker are connected; the closed one only after its short back-off.
    ws.receive({ type: 'peers', peers: peers('aaaa-0001', 'cccc-0003') });
    expect(s.transport.connectors.length).toBe(3);
    expect(['cccc-0003', 'dddd-0004']).toContain(s.transport.connectors[2].remoteId);
    s.timers.advance(5000);
    expect(s.transport.connectors.map((c) => c.remoteId)).toEqual(['aaaa-0001', 'bbbb-0002', 'cccc-0003', 'aaaa-0001']);
    await s.host.stop();
  });

  it('asks for peers periodically while below target, not when at target', async () => {
    const s = setup({ target: 1, extra: { peersIntervalMs: 5000, replaceIntervalMs: 0 } });
    const ws = await started(s);
    s.timers.advance(15_000);
    expect(ws.sentOfType('peers').length).toBe(3);
    ws.receive({ type: 'peers', peers: peers('aaaa-0001') });
    s.transport.connectors[0].open();
    s.timers.advance(15_000);
    expect(ws.sentOfType('peers').length).toBe(3);
    await s.host.stop();
  });

  it('membership: at target, drops the least useful neighbor for a fresh candidate, one at a time', async () => {
    const s = setup({ target: 2, extra: { peersIntervalMs: 5000, replaceIntervalMs: 20_000, linkClosedBackoffMs: 3000 } });
    const ws = await started(s, 'aaaa-0001', 'bbbb-0002');
    for (const c of s.transport.connectors) c.open();
    expect(s.engine.links.size).toBe(2);
    s.engine.worst = 'bbbb-0002';
    s.timers.advance(20_000);
    expect(s.engine.dropped).toEqual([]); // no candidate known yet: asks the tracker instead
    const asked = ws.sentOfType('peers').length;
    expect(asked).toBeGreaterThan(0);
    ws.receive({ type: 'peers', peers: peers('cccc-0003', 'dddd-0004') });
    s.timers.advance(20_000);
    expect(s.engine.dropped).toEqual(['bbbb-0002']);
    // the freed place goes to a fresh candidate at once
    expect(s.transport.connectors.length).toBe(3);
    expect(['cccc-0003', 'dddd-0004']).toContain(s.transport.connectors[2].remoteId);
    expect(s.host.stats().neighborsReplaced).toBe(1);
    // nothing more until the next period, even though another candidate is waiting
    s.transport.connectors[2].open();
    s.engine.worst = 'aaaa-0001';
    s.timers.advance(5000);
    expect(s.engine.dropped).toEqual(['bbbb-0002']);
    // an engine with nobody to spare (all neighbors carry upload links) drops nobody
    s.engine.worst = null;
    s.timers.advance(20_000);
    expect(s.engine.dropped).toEqual(['bbbb-0002']);
    await s.host.stop();
  });

  it('survives a tracker drop: links stay, it reconnects and re-joins with the same peerId', async () => {
    const s = setup({ target: 1 });
    const ws = await started(s, 'aaaa-0001');
    s.transport.connectors[0].open();
    ws.drop();
    expect(s.host.stats().trackerConnected).toBe(false);
    expect(s.engine.links.size).toBe(1);
    s.timers.advance(1000);
    const ws2 = FakeWebSocket.last;
    expect(ws2).not.toBe(ws);
    ws2.open();
    expect(ws2.sent[0]).toEqual({ type: 'join', channel: 'demo', kind: 'browser', peerId: ME });
    ws2.receive(welcome('aaaa-0001', 'bbbb-0002'));
    expect(s.host.stats().trackerConnected).toBe(true);
    expect(s.transport.connectors.length).toBe(1); // already at target
    await s.host.stop();
  });

  it('a new offer from a peer with a live link replaces the old connection (the remote restarted)', async () => {
    const s = setup({ target: 0 });
    const ws = await started(s);
    ws.receive({ type: 'signal', from: 'pppp-0001', fromKind: 'browser', data: { sdp: { type: 'offer', sdp: 'o1' } } });
    s.transport.connectors[0].open();
    ws.receive({ type: 'signal', from: 'pppp-0001', fromKind: 'browser', data: { sdp: { type: 'offer', sdp: 'o2' } } });
    expect(s.transport.connectors[0].closed).toBe(true);
    expect(s.transport.connectors.length).toBe(2);
    expect(s.transport.connectors[1].received).toEqual([{ sdp: { type: 'offer', sdp: 'o2' } }]);
    s.transport.connectors[1].open();
    expect(s.engine.links.size).toBe(1);
    await s.host.stop();
  });

  it('start() rejects when stopped before the tracker answered', async () => {
    const s = setup();
    const p = s.host.start();
    await s.host.stop();
    await expect(p).rejects.toThrow(/stopped/);
    expect(FakeWebSocket.last.closed).toBe(true);
  });

  it('survives a transport that throws: counts a failure, backs the peer off, rejects offers', async () => {
    const s = setup({ target: 1 });
    s.transport.connect = () => {
      throw new Error('bad ICE server URL');
    };
    const ws = await started(s, 'aaaa-0001');
    expect(s.host.stats()).toMatchObject({ connectAttempts: 1, connectFailures: 1, connecting: 0 });
    ws.receive({ type: 'signal', from: 'bbbb-0002', fromKind: 'browser', data: { sdp: { type: 'offer', sdp: 'o' } } });
    expect(signalsTo(ws, 'bbbb-0002')).toEqual([{ reject: 'error' }]);
    s.timers.advance(10_000);
    expect(s.host.stats().connectAttempts).toBe(2); // aaaa is backed off, not retried in a loop
    await s.host.stop();
  });
});
