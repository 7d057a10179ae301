/**
 * Issue 8, PeerHost side of ICE restarts: a restart offer for an open connection (recognised by
 * the connector's isRenegotiation) goes to that connector and the link stays open; any other offer
 * still replaces the connection; restart events are counted; reports carry each link's `relayed`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { PeerHost } from '../../../peer/host/peer-host.js';
import type { ConnectorOptions, PeerConnector } from '../../../peer/transport/transport-api.js';
import type { SignalData } from '../../../peer/core/signaling.js';
import { FakeConnector, FakeEngine, FakeTimers, FakeTransport, FakeWebSocket } from '../host/fakes.js';

/** A connector that treats offers whose sdp starts with 'restart' as renegotiations. */
class RestartingConnector extends FakeConnector {
  restartIce?: (reason?: string, onlyIfDown?: boolean) => boolean;
  isRenegotiation(data: SignalData): boolean {
    return this.link !== null && 'sdp' in data && data.sdp.type === 'offer' && data.sdp.sdp.startsWith('restart');
  }
}

class RestartingTransport extends FakeTransport {
  override connect(opts: ConnectorOptions): PeerConnector {
    const c = new RestartingConnector(opts);
    this.connectors.push(c);
    return c;
  }
}

async function setup() {
  const timers = new FakeTimers();
  const engine = new FakeEngine('mmmm-0000');
  const transport = new RestartingTransport();
  const host = new PeerHost({
    trackerUrl: 'ws://tracker/ws', channel: 'demo', kind: 'browser', engine, transport, webSocket: FakeWebSocket,
    targetNeighbors: 0, reportMs: 1000, timers, random: () => 0.5,
  });
  const started = host.start();
  const ws = FakeWebSocket.last;
  ws.open();
  ws.receive({ type: 'welcome', peerId: 'mmmm-0000', iceServers: [{ urls: 'stun:10.77.0.1:3478' }], peers: [] });
  await started;
  const offer = (from: string, sdp: string) => ws.receive({ type: 'signal', from, fromKind: 'browser', data: { sdp: { type: 'offer', sdp } } });
  return { timers, engine, transport, host, ws, offer };
}

describe('PeerHost and ICE restarts', () => {
  beforeEach(() => FakeWebSocket.reset());

  it('hands a restart offer to the open connection instead of replacing it', async () => {
    const s = await setup();
    s.offer('pppp-0001', 'first');
    const c = s.transport.connectors[0];
    const link = c.open();
    s.offer('pppp-0001', 'restart-1');
    expect(s.transport.connectors.length).toBe(1);
    expect(c.closed).toBe(false);
    expect(link.isClosed).toBe(false);
    expect(c.received.map((d) => ('sdp' in d ? d.sdp.sdp : '?'))).toEqual(['first', 'restart-1']);
    expect(s.engine.links.size).toBe(1);
    // Not a renegotiation (the remote restarted its process): replaced as before.
    s.offer('pppp-0001', 'new-session');
    expect(c.closed).toBe(true);
    expect(s.transport.connectors.length).toBe(2);
    await s.host.stop();
  });

  it('counts restart attempts, recoveries and give-ups, and reports them', async () => {
    const s = await setup();
    s.offer('pppp-0001', 'first');
    const c = s.transport.connectors[0];
    c.open();
    const ev = c.opts.onIceRestart!;
    ev({ type: 'down', reason: 'connection disconnected' });
    ev({ type: 'restart', attempt: 1, reason: 'connection disconnected' });
    ev({ type: 'recovered', attempt: 1, ms: 1200 });
    ev({ type: 'down', reason: 'x' });
    ev({ type: 'recovered', attempt: 0, ms: 300 }); // came back alone: not a restart's recovery
    ev({ type: 'restart', attempt: 1, reason: 'y' });
    ev({ type: 'restart', attempt: 2, reason: 'y' });
    ev({ type: 'gave-up', attempts: 2, ms: 15_000 });
    expect(s.host.stats()).toMatchObject({ iceRestarts: 3, iceRecoveries: 1, iceRestartGiveUps: 1 });
    s.timers.advance(1000);
    const report = s.ws.sentOfType('report').at(-1)!;
    expect(report.stats).toMatchObject({ iceRestarts: 3, iceRecoveries: 1 });
    await s.host.stop();
  });

  it('a link outage probes the tracker; no answer -> reconnect; after the welcome links in an outage restart at once', async () => {
    const s = await setup();
    s.offer('pppp-0001', 'first');
    const c = s.transport.connectors[0] as RestartingConnector;
    c.open();
    const restarts: Array<[string | undefined, boolean | undefined]> = [];
    c.restartIce = (reason?: string, onlyIfDown?: boolean) => (restarts.push([reason, onlyIfDown]), true);
    const ws = s.ws;
    c.opts.onIceRestart!({ type: 'down', reason: 'no packet for 4000 ms' });
    expect(ws.sentOfType('peers').length).toBe(1); // the probe
    // The tracker answers: nothing else happens.
    ws.receive({ type: 'peers', peers: [] });
    s.timers.advance(5000);
    expect(FakeWebSocket.last).toBe(ws);
    expect(s.host.stats().trackerProbeReconnects).toBe(0);
    // Next outage: the tracker stays silent (our network moved, its connection is dead too).
    s.timers.advance(2000); // past the peers-request rate limit
    c.opts.onIceRestart!({ type: 'down', reason: 'no packet for 4000 ms' });
    c.opts.onIceRestart!({ type: 'down', reason: 'another link' }); // one probe at a time
    expect(ws.sentOfType('peers').length).toBe(2);
    s.timers.advance(2500);
    expect(s.host.stats().trackerProbeReconnects).toBe(1);
    expect(ws.closed).toBe(true);
    const ws2 = FakeWebSocket.last;
    expect(ws2).not.toBe(ws);
    ws2.open();
    expect(restarts).toEqual([]);
    ws2.receive({ type: 'welcome', peerId: 'mmmm-0000', iceServers: [{ urls: 'stun:10.77.0.1:3478' }], peers: [] });
    expect(restarts).toEqual([['tracker reconnected', true]]);
    expect(c.link?.isClosed).toBe(false);
    await s.host.stop();
  });

  it('reports whether each link is relayed, as its transport Link says (live)', async () => {
    const s = await setup();
    s.offer('pppp-0001', 'first');
    s.offer('qqqq-0002', 'first');
    s.offer('rrrr-0003', 'first');
    const [a, b] = s.transport.connectors.map((c) => c.open());
    (a as { relayed?: boolean }).relayed = true;
    (b as { relayed?: boolean }).relayed = false; // the third one does not know
    // The engine's Link (PeerHost's wrapper) exposes it too.
    expect(s.engine.links.get('pppp-0001')?.relayed).toBe(true);
    s.timers.advance(1000);
    const links = (s.ws.sentOfType('report').at(-1)!.links as Array<{ peerId: string; relayed?: boolean }>);
    expect(Object.fromEntries(links.map((l) => [l.peerId, l.relayed]))).toEqual({ 'pppp-0001': true, 'qqqq-0002': false, 'rrrr-0003': undefined });
    expect(links.find((l) => l.peerId === 'rrrr-0003')).not.toHaveProperty('relayed');
    (a as { relayed?: boolean }).relayed = false; // an ICE restart found a direct path
    expect(s.engine.links.get('pppp-0001')?.relayed).toBe(false);
    s.timers.advance(1000);
    const again = (s.ws.sentOfType('report').at(-1)!.links as Array<{ peerId: string; relayed?: boolean }>);
    expect(again.find((l) => l.peerId === 'pppp-0001')?.relayed).toBe(false);
    await s.host.stop();
  });
});
