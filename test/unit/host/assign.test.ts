/**
 * The peer side of optimizer assignments (issue 6): PeerHost hands `assign` to the engine and
 * connects to the assigned parent (beyond targetNeighbors, making room at the engine's maximum);
 * malformed assignments are dropped and counted; reports carry slots/depth per rendition and the
 * rendition of each upload link.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { PeerHost } from '../../../peer/host/peer-host.js';
import { renditionStats, tagLinkRenditions, type UploadLinksView } from '../../../peer/host/optimizer-report.js';
import type { EngineApi } from '../../../peer/core/engine-api.js';
import { FakeEngine, FakeTimers, FakeTransport, FakeWebSocket, withLinks } from './fakes.js';

const ME = 'mmmm-0000';

class AssignableEngine extends FakeEngine {
  assigned: Array<[string, string | null]> = [];
  throwOnAssign = false;
  assignParent(rendition: string, peerId: string | null): void {
    if (this.throwOnAssign) throw new TypeError('invalid parent peer id');
    this.assigned.push([rendition, peerId]);
  }
}


async function setup(engine: EngineApi, target = 2, peers: string[] = ['aaaa-0001', 'bbbb-0002']) {
  const timers = new FakeTimers();
  const transport = new FakeTransport();
  const host = new PeerHost({
    trackerUrl: 'ws://tracker/ws', channel: 'demo', kind: 'browser', engine, transport, webSocket: FakeWebSocket,
    targetNeighbors: target, tickMs: 50, reportMs: 5000, timers, random: () => 0.5,
  });
  const p = host.start();
  const ws = FakeWebSocket.last;
  ws.open();
  ws.receive({ type: 'welcome', peerId: ME, iceServers: [], peers: peers.map((peerId) => ({ peerId, kind: 'browser' })) });
  await p;
  return { timers, transport, host, ws };
}

describe('PeerHost: optimizer assignments', () => {
  beforeEach(() => FakeWebSocket.reset());

  it('hands the assignment to the engine and connects to the parent even at targetNeighbors', async () => {
    const engine = new AssignableEngine(ME);
    const s = await setup(engine, 2);
    for (const c of s.transport.live()) c.open();
    expect(s.transport.connectors).toHaveLength(2); // at target
    s.ws.receive({ type: 'assign', channel: 'demo', rendition: '360p', parent: 'pppp-0009' });
    expect(engine.assigned).toEqual([['360p', 'pppp-0009']]);
    const toParent = s.transport.to('pppp-0009');
    expect(toParent).toHaveLength(1);
    expect(toParent[0].opts.initiator).toBe(true);
    toParent[0].open();
    expect(engine.links.has('pppp-0009')).toBe(true);
    // already a neighbor: no second connection
    s.ws.receive({ type: 'assign', rendition: '360p', parent: 'pppp-0009' });
    expect(s.transport.to('pppp-0009')).toHaveLength(1);
    // null withdraws: the engine hears it, nobody is connected to
    s.ws.receive({ type: 'assign', rendition: '360p', parent: null });
    expect(engine.assigned.at(-1)).toEqual(['360p', null]);
    expect(s.host.stats()).toMatchObject({ assignments: 3, assignConnects: 1 });
    expect(s.host.stats().tracker.assigns).toBe(3);
  });

  it("makes room at the engine's maximum by dropping its least useful neighbor", async () => {
    const engine = new AssignableEngine(ME);
    engine.maxNeighbors = 2;
    const s = await setup(engine, 2);
    for (const c of s.transport.live()) c.open();
    engine.worst = 'bbbb-0002';
    s.ws.receive({ type: 'assign', rendition: '360p', parent: 'pppp-0009' });
    s.transport.to('pppp-0009')[0].open();
    expect(engine.dropped).toEqual(['bbbb-0002']);
    expect([...engine.links.keys()].sort()).toEqual(['aaaa-0001', 'pppp-0009']);
    // the dropped neighbor's slot is not refilled: the assigned parent took it
    expect(s.transport.connectors.map((c) => c.remoteId)).toEqual(['aaaa-0001', 'bbbb-0002', 'pppp-0009']);
    expect(s.host.stats()).toMatchObject({ links: 2, connecting: 0, neighborsReplaced: 1 });
  });

  it('says so in the offer for an assigned parent, and not in other offers', async () => {
    const engine = new AssignableEngine(ME);
    const s = await setup(engine, 2);
    const offers = (to: string) => s.ws.sentOfType('signal').filter((m) => m.to === to).map((m) => m.data);
    expect(offers('aaaa-0001')).toEqual([{ sdp: { type: 'offer', sdp: 'offer-to-aaaa-0001' } }]);
    s.ws.receive({ type: 'assign', rendition: '360p', parent: 'pppp-0009' });
    expect(offers('pppp-0009')).toEqual([{ sdp: { type: 'offer', sdp: 'offer-to-pppp-0009' }, assigned: true }]);
  });

  it('full, it makes room for an offer that says it is for an assigned link (at most one per second), and refuses plain offers', async () => {
    const engine = new AssignableEngine(ME);
    engine.maxNeighbors = 2;
    const s = await setup(engine, 2);
    for (const c of s.transport.live()) c.open();
    engine.worst = 'bbbb-0002';
    const offer = (from: string, assigned: boolean) => s.ws.receive({
      type: 'signal', from, fromKind: 'browser', data: { sdp: { type: 'offer', sdp: `o-${from}` }, ...(assigned ? { assigned: true } : {}) },
    });
    const answers = (to: string) => s.ws.sentOfType('signal').filter((m) => m.to === to).map((m) => m.data);
    offer('cccc-0003', false);
    expect(answers('cccc-0003')).toEqual([{ reject: 'full' }]);
    expect(engine.dropped).toEqual([]);
    offer('dddd-0004', true);
    expect(engine.dropped).toEqual(['bbbb-0002']);
    expect(answers('dddd-0004')).toEqual([{ sdp: { type: 'answer', sdp: 'answer' } }]);
    s.transport.to('dddd-0004')[0].open();
    expect([...engine.links.keys()].sort()).toEqual(['aaaa-0001', 'dddd-0004']);
    // the claim is the offerer's own: another one within the second is refused as usual
    engine.worst = 'aaaa-0001';
    offer('eeee-0005', true);
    expect(answers('eeee-0005')).toEqual([{ reject: 'full' }]);
    s.timers.advance(1000);
    offer('ffff-0006', true);
    expect(engine.dropped).toEqual(['bbbb-0002', 'aaaa-0001']);
    expect(s.host.stats()).toMatchObject({ assignedRoomMade: 2 });
  });

  it("does not wait out a back-off from a plain offer refused as full, but does from a refused assigned one", async () => {
    const engine = new AssignableEngine(ME);
    const s = await setup(engine, 2);
    s.transport.to('aaaa-0001')[0].fail('rejected: full'); // our plain offer: the peer was full
    s.ws.receive({ type: 'assign', rendition: '360p', parent: 'aaaa-0001' });
    const attempts = s.transport.to('aaaa-0001');
    expect(attempts).toHaveLength(2); // at once: an assigned offer makes a full peer make room
    attempts[1].fail('rejected: full'); // refused even so (it had no room to make)
    s.ws.receive({ type: 'assign', rendition: '360p', parent: 'aaaa-0001' });
    expect(s.transport.to('aaaa-0001')).toHaveLength(2); // backed off as usual
    s.transport.to('bbbb-0002')[0].fail('timeout'); // unreachable: an assignment waits too
    s.ws.receive({ type: 'assign', rendition: '720p', parent: 'bbbb-0002' });
    expect(s.transport.to('bbbb-0002')).toHaveLength(1);
    expect(s.host.stats().assignConnects).toBe(1);
  });

  it('drops malformed or foreign assignments (counted), and survives an engine that throws or has no assignParent', async () => {
    const engine = new AssignableEngine(ME);
    const s = await setup(engine);
    const before = s.host.stats().tracker.malformed;
    for (const bad of [
      { type: 'assign', rendition: 'BAD NAME', parent: 'pppp-0009' },
      { type: 'assign', rendition: '360p', parent: 'x' .repeat(100) },
      { type: 'assign', rendition: '360p' },
      { type: 'assign', channel: 'other', rendition: '360p', parent: 'pppp-0009' },
      'not json',
    ]) s.ws.receive(bad);
    expect(engine.assigned).toEqual([]);
    expect(s.host.stats().tracker.malformed - before).toBe(5);
    engine.throwOnAssign = true;
    expect(() => s.ws.receive({ type: 'assign', rendition: '360p', parent: 'pppp-0009' })).not.toThrow();
    expect(s.transport.to('pppp-0009')).toEqual([]);

    FakeWebSocket.reset();
    const plain = new FakeEngine(ME); // no assignParent: advice ignored
    const t = await setup(plain);
    expect(() => t.ws.receive({ type: 'assign', rendition: '360p', parent: 'pppp-0009' })).not.toThrow();
    expect(t.transport.to('pppp-0009')).toEqual([]);
  });

  it('relay requests go to the engine as a whole set; malformed or foreign ones are dropped and counted', async () => {
    class RelayEngine extends FakeEngine {
      relayed: string[][] = [];
      setRelayRenditions(rs: string[]): void {
        if (rs.includes('boom')) throw new TypeError('no');
        this.relayed.push(rs);
      }
    }
    const engine = new RelayEngine(ME);
    const s = await setup(engine);
    s.ws.receive({ type: 'relay', channel: 'demo', renditions: ['720p'] });
    expect(engine.relayed).toEqual([['720p']]);
    expect(s.host.stats().relaying).toEqual(['720p']);
    // reports say so (a tracker taking over the optimizer learns the relays from them)
    s.timers.advance(5000);
    const reports = s.ws.sentOfType('report') as Array<{ relays?: string[] }>;
    expect(reports.at(-1)!.relays).toEqual(['720p']);
    const before = s.host.stats().tracker.malformed;
    for (const bad of [
      { type: 'relay', renditions: ['BAD NAME'] },
      { type: 'relay', renditions: '720p' },
      { type: 'relay', renditions: Array.from({ length: 9 }, (_, i) => `r${i}`) },
      { type: 'relay', channel: 'other', renditions: ['360p'] },
      { type: 'relay' },
    ]) s.ws.receive(bad);
    expect(s.host.stats().tracker.malformed - before).toBe(5);
    expect(() => s.ws.receive({ type: 'relay', renditions: ['boom'] })).not.toThrow();
    expect(s.host.stats().relaying).toEqual(['720p']); // the engine refused: unchanged
    s.ws.receive({ type: 'relay', renditions: [] });
    expect(engine.relayed.at(-1)).toEqual([]);
    expect(s.host.stats()).toMatchObject({ relaying: [] });
    expect(s.host.stats().tracker.relays).toBe(3);
  });

  it('reports slots and depth per rendition and the rendition of each upload link', async () => {
    const engine = new FakeEngine(ME);
    const view: UploadLinksView = {
      parents: { '360p': 'aaaa-0001' }, children: [{ peerId: 'bbbb-0002', rendition: '360p' }],
      depth: { '360p': 2, '720p': 255 }, capacity: { '360p': 3, '720p': 3 },
      bitrateKbps: { '360p': 864.4 }, spareKbps: 1234.6, playing: '360p',
    };
    const s = await setup(withLinks(engine, view));
    for (const c of s.transport.live()) c.open();
    s.timers.advance(5000);
    const [report] = s.ws.sentOfType('report') as Array<{ stats: Record<string, number>; links: Array<Record<string, unknown>> }>;
    expect(report.stats).toMatchObject({ 'slots.360p': 3, 'depth.360p': 2, 'slots.720p': 3, 'depth.720p': 255, 'kbps.360p': 864, spareKbps: 1235 });
    expect(report.stats['kbps.720p']).toBeUndefined();
    expect((report as { rendition?: string }).rendition).toBe('360p'); // what the engine plays
    expect(report.links).toEqual([
      { peerId: 'aaaa-0001', sent: 0, received: 0, rendition: '360p' },
      { peerId: 'bbbb-0002', sent: 0, received: 0, rendition: '360p' },
    ]);
  });
});

describe('optimizer report helpers', () => {
  it('a neighbor with links in several renditions gets one tagged entry per link after its own', () => {
    const view: UploadLinksView = {
      parents: { '720p': 'origin-1', '360p': 'origin-1' }, children: [{ peerId: 'kid-1', rendition: '360p' }], depth: {}, capacity: {},
    };
    const links = tagLinkRenditions([
      { peerId: 'origin-1', sent: 0, received: 100, parent: true },
      { peerId: 'kid-1', sent: 50, received: 0, child: true },
      { peerId: 'other', sent: 1, received: 1 },
    ], view);
    expect(links).toEqual([
      { peerId: 'origin-1', sent: 0, received: 100, parent: true },
      { peerId: 'kid-1', sent: 50, received: 0, child: true, rendition: '360p' },
      { peerId: 'other', sent: 1, received: 1 },
      { peerId: 'origin-1', sent: 0, received: 0, parent: true, rendition: '360p' },
      { peerId: 'origin-1', sent: 0, received: 0, parent: true, rendition: '720p' },
    ]);
  });

  it('slots/depth are bytes, for at most 8 renditions', () => {
    const capacity: Record<string, number> = {};
    for (let i = 0; i < 12; i++) capacity[`r${String(i).padStart(2, '0')}`] = i === 0 ? 300 : i;
    const stats = renditionStats({ parents: {}, children: [], depth: { r00: -4, r01: Number.NaN }, capacity });
    expect(Object.keys(stats).filter((k) => k.startsWith('slots.'))).toHaveLength(8);
    expect(stats['slots.r00']).toBe(255);
    expect(stats['depth.r00']).toBe(0);
    expect(stats['depth.r01']).toBeUndefined();
  });
});

/** An engine whose 'climb' events the test fires. */
class ClimbingEngine extends FakeEngine {
  private climb: ((e: { peerId: string; rendition: string }) => void) | null = null;
  override on(event?: string, handler?: unknown): () => void {
    if (event === 'climb') this.climb = handler as (e: { peerId: string; rendition: string }) => void;
    return () => {};
  }
  fire(peerId: string): void { this.climb?.({ peerId, rendition: '360p' }); }
}

describe('PeerHost: climbing', () => {
  beforeEach(() => FakeWebSocket.reset());

  it('connects to the peer the engine climbs toward, beyond targetNeighbors, once, and not to itself', async () => {
    const engine = new ClimbingEngine(ME);
    const s = await setup(engine, 2);
    for (const c of s.transport.live()) c.open();
    expect(s.transport.connectors).toHaveLength(2); // at target
    engine.fire('gggg-0007');
    const conns = s.transport.to('gggg-0007');
    expect(conns).toHaveLength(1);
    expect(conns[0].opts.initiator).toBe(true);
    engine.fire('gggg-0007'); // in progress: no second connection
    engine.fire(ME);
    engine.fire('aaaa-0001'); // already a neighbor
    expect(s.transport.connectors).toHaveLength(3);
    conns[0].open();
    expect(engine.links.has('gggg-0007')).toBe(true);
    expect(s.host.stats().climbConnects).toBe(1);
  });

  it('makes room for it at the engine\'s maximum', async () => {
    const engine = new ClimbingEngine(ME);
    engine.maxNeighbors = 2;
    const s = await setup(engine, 2);
    for (const c of s.transport.live()) c.open();
    engine.worst = 'bbbb-0002';
    engine.fire('gggg-0007');
    s.transport.to('gggg-0007')[0].open();
    expect(engine.dropped).toEqual(['bbbb-0002']);
    expect(engine.links.has('gggg-0007')).toBe(true);
  });
});
