/**
 * PeerHost asks the tracker for parent candidates when its engine has had no parent in the
 * rendition it plays for seekParentAfterMs, or at once as a joiner (peers request with parentFor), and connects to the
 * candidates named as for an assignment (the offer says `assigned`, room is made at the maximum).
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { HOST_DEFAULTS, PeerHost } from '../../../peer/host/peer-host.js';
import type { UploadLinksView } from '../../../peer/host/optimizer-report.js';
import { FakeEngine, FakeTimers, FakeTransport, FakeWebSocket, withLinks } from './fakes.js';

const ME = 'mmmm-0000';

async function setup(view: () => UploadLinksView, welcome: { optimizer?: boolean } = {}) {
  const timers = new FakeTimers();
  const transport = new FakeTransport();
  const engine = new FakeEngine(ME);
  const host = new PeerHost({
    trackerUrl: 'ws://tracker/ws', channel: 'demo', kind: 'browser', engine: withLinks(engine, view), transport, webSocket: FakeWebSocket,
    targetNeighbors: 1, tickMs: 50, reportMs: 5000, timers, random: () => 0.5,
  });
  const p = host.start();
  const ws = FakeWebSocket.last;
  ws.open();
  ws.receive({ type: 'welcome', peerId: ME, iceServers: [], peers: [{ peerId: 'aaaa-0001', kind: 'browser' }], ...welcome });
  await p;
  for (const c of transport.live()) c.open();
  return { timers, transport, host, ws, engine };
}

const parentless = (): UploadLinksView => ({ parents: {}, children: [], depth: { '360p': 255 }, capacity: { '360p': 3 }, playing: '360p' });

describe('PeerHost: parent candidates from the tracker', () => {
  beforeEach(() => FakeWebSocket.reset());

  it('a joiner asks as soon as it plays, then at most every seekParentEveryMs while without a parent', async () => {
    let view: UploadLinksView = { parents: {}, children: [], depth: {}, capacity: {} };
    const s = await setup(() => view);
    const seeks = () => s.ws.sentOfType('peers').filter((m) => m.parentFor !== undefined);
    s.timers.advance(1000);
    expect(seeks()).toHaveLength(0); // plays nothing yet
    view = parentless();
    s.timers.advance(HOST_DEFAULTS.seekParentEagerCheckMs + 50);
    expect(seeks()).toHaveLength(1);
    expect(seeks()[0].parentFor).toEqual({ rendition: '360p', slots: 3 });
    s.timers.advance(HOST_DEFAULTS.seekParentEveryMs - 200);
    expect(seeks()).toHaveLength(1);
    s.timers.advance(HOST_DEFAULTS.seekParentCheckMs + 100);
    expect(seeks()).toHaveLength(2);
    expect(s.host.stats().parentSeeks).toBe(2);
  });

  it('a joiner waits for the optimizer\'s plan when the tracker says it places peers', async () => {
    const s = await setup(parentless, { optimizer: true });
    const seeks = () => s.ws.sentOfType('peers').filter((m) => m.parentFor !== undefined);
    s.timers.advance(HOST_DEFAULTS.seekParentAfterMs - 100);
    expect(seeks()).toHaveLength(0);
    s.timers.advance(HOST_DEFAULTS.seekParentCheckMs + 100);
    expect(seeks()).toHaveLength(1); // no plan came: asks like any parentless peer
  });

  it('does not ask while it has a parent, nor before the engine plays anything', async () => {
    let view: UploadLinksView = { parents: { '360p': 'pppp-0001' }, children: [], depth: { '360p': 2 }, capacity: { '360p': 1 }, playing: '360p' };
    const s = await setup(() => view);
    s.timers.advance(10_000);
    view = { parents: {}, children: [], depth: {}, capacity: {} };
    s.timers.advance(10_000);
    expect(s.ws.sentOfType('peers').filter((m) => m.parentFor !== undefined)).toHaveLength(0);
    // the parent is lost (no longer a joiner): the wait starts then, not at start-up
    view = parentless();
    s.timers.advance(HOST_DEFAULTS.seekParentAfterMs - 100);
    expect(s.ws.sentOfType('peers').filter((m) => m.parentFor !== undefined)).toHaveLength(0);
    s.timers.advance(200);
    expect(s.ws.sentOfType('peers').filter((m) => m.parentFor !== undefined)).toHaveLength(1);
  });

  it('connects to the candidates named, as for an assigned link, beyond targetNeighbors', async () => {
    const s = await setup(parentless);
    expect(s.transport.connectors).toHaveLength(1); // at target (1)
    s.ws.receive({
      type: 'peers', peers: [{ peerId: 'bbbb-0002', kind: 'browser' }],
      parents: [{ peerId: 'pppp-0001', kind: 'browser' }, { peerId: 'aaaa-0001', kind: 'browser' }, { peerId: 'qqqq-0003', kind: 'origin' }],
    });
    // at most seekParentCandidates (2) of them; aaaa-0001 is a neighbor already
    expect(s.transport.to('pppp-0001')).toHaveLength(1);
    expect(s.transport.to('qqqq-0003')).toHaveLength(0);
    expect(s.transport.to('bbbb-0002')).toHaveLength(0); // the sample fills up to target only
    const offers = s.ws.sentOfType('signal').filter((m) => m.to === 'pppp-0001').map((m) => m.data);
    expect(offers).toEqual([{ sdp: { type: 'offer', sdp: 'offer-to-pppp-0001' }, assigned: true }]);
    expect(s.host.stats().parentSeekConnects).toBe(1);
  });

  it('drops an answer whose parents list is malformed or too long (counted), keeps working', async () => {
    const s = await setup(parentless);
    const before = s.host.stats().tracker.malformed;
    s.ws.receive({ type: 'peers', peers: [], parents: [{ peerId: 'not a peer id!', kind: 'browser' }] });
    s.ws.receive({ type: 'peers', peers: [], parents: Array.from({ length: 5 }, (_, i) => ({ peerId: `pppp-000${i}`, kind: 'browser' })) });
    s.ws.receive({ type: 'peers', peers: [], parents: 'pppp-0001' });
    expect(s.host.stats().tracker.malformed).toBe(before + 3);
    expect(s.transport.connectors).toHaveLength(1);
    s.ws.receive({ type: 'peers', peers: [], parents: [{ peerId: 'pppp-0001', kind: 'browser' }] });
    expect(s.transport.to('pppp-0001')).toHaveLength(1);
  });
});
