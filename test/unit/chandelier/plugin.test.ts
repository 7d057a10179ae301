/**
 * The optimizer in the tracker (tracker/plugins/optimizer.ts, tracker/optimizer/overlay.ts):
 * reports -> overlay mapping, assignments to fake connections, leadership, failures, and one
 * round trip through a real tracker's WebSocket.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Registry as PromRegistry } from 'prom-client';
import type { PeerConn } from '../../../tracker/context.js';
import { OptimizerMetrics } from '../../../tracker/metrics.js';
import { MemoryStore } from '../../../tracker/store/memory.js';
import type { StoredReport } from '../../../tracker/store/types.js';
import { TrackerOptimizer, resolveOptimizerSettings, type OptimizerDeps } from '../../../tracker/plugins/optimizer.js';
import { addressPrefix, buildOverlay, scopeOf, toOverlayPeer } from '../../../tracker/optimizer/overlay.js';
import { parseTrackerMessage } from '../../../peer/host/signaling-client.js';
import { parseClientMessage } from '../../../tracker/schemas.js';
import type { PeerKind } from '../../../peer/core/types.js';
import { Client, startTracker, type Started } from '../tracker/helpers.js';
import { haveRedisServer, startRedis, type TestRedis } from '../tracker/redis-server.js';

const CH = 'demo';
const R = '360p';

class FakeConn implements PeerConn {
  sent: Record<string, unknown>[] = [];
  bufferedAmount = 0;
  open = true;
  constructor(readonly remoteTracker?: string) {}
  sendJson(msg: object): boolean {
    if (!this.open) return false;
    this.sent.push(JSON.parse(JSON.stringify(msg)) as Record<string, unknown>);
    return true;
  }
  close(): void {
    this.open = false;
  }
}

const logLines: Array<{ level: string; obj: unknown; msg?: string }> = [];
const log = {
  info: (obj: unknown, msg?: string) => logLines.push({ level: 'info', obj, msg }),
  warn: (obj: unknown, msg?: string) => logLines.push({ level: 'warn', obj, msg }),
  error: (obj: unknown, msg?: string) => logLines.push({ level: 'error', obj, msg }),
  debug: (obj: unknown, msg?: string) => logLines.push({ level: 'debug', obj, msg }),
} as unknown as OptimizerDeps['log'];

/** A channel in a MemoryStore with fake connections; reports are put like the signaling plugin does. */
function world(opts: { leader?: () => boolean } = {}) {
  const store = new MemoryStore({ trackerId: 't1', now: () => 0 });
  const conns = new Map<string, FakeConn>();
  const prom = new PromRegistry();
  const metrics = new OptimizerMetrics(prom);
  const events: unknown[] = [];
  const deps: OptimizerDeps = {
    store,
    registry: store.registry,
    isLeader: opts.leader ?? (() => true),
    metrics,
    log,
    now: () => performance.now(),
    stats: { recordEvent: (e) => events.push(e) },
  };
  const add = (peerId: string, kind: PeerKind, conn = new FakeConn()) => {
    conns.set(peerId, conn);
    return store.registry.add({ peerId, kind, channel: CH, joinedAt: 0, conn });
  };
  const report = (peerId: string, r: Omit<StoredReport, 'peerId' | 'kind' | 'at'>) => {
    store.putReport(store.registry.get(CH, peerId)!, r, 0);
  };
  const assigns = (peerId: string) => conns.get(peerId)!.sent.filter((m) => m.type === 'assign');
  const metric = async (name: string) => (await prom.getSingleMetric(name)!.get()).values.reduce((s, v) => s + v.value, 0);
  return { store, conns, metrics, events, deps, add, report, assigns, metric };
}

/** origin + n viewers of R that report slots and no parent yet. */
function channel(w: ReturnType<typeof world>, n: number) {
  w.add('origin-root', 'origin');
  w.report('origin-root', { stats: { [`slots.${R}`]: 1, [`depth.${R}`]: 0 } });
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = `viewer-${i}`;
    ids.push(id);
    w.add(id, 'browser');
    w.report(id, { stats: { [`slots.${R}`]: 2, [`depth.${R}`]: 255, bufferMs: 4000 }, rendition: R, net: '10.77' });
  }
  return ids;
}

afterEach(() => {
  logLines.length = 0;
});

describe('reports -> overlay', () => {
  it('reads slots, depth, tagged parent links, labels and scope', () => {
    const p = toOverlayPeer({
      peerId: 'seeder-1', kind: 'seeder',
      report: {
        stats: { 'slots.360p': 4, 'slots.720p': 2, 'depth.360p': 1, bufferMs: 3000, stalls: 2, 'other.x': 5 },
        links: [
          { peerId: 'origin-root', sent: 0, received: 10, parent: true }, // untagged: counters only
          { peerId: 'origin-root', sent: 0, received: 0, parent: true, rendition: '360p' },
          { peerId: 'seeder-2', sent: 0, received: 0, parent: true, rendition: '720p' },
          { peerId: 'viewer-1', sent: 5, received: 0, child: true, rendition: '360p' },
        ],
        nat: 'full-cone', region: 'eu-west', net: '10.77',
      },
    });
    expect(p).toEqual({
      peerId: 'seeder-1', kind: 'seeder', scope: 'r:eu-west', nat: 'full-cone',
      parents: { '360p': 'origin-root', '720p': 'seeder-2' }, slots: { '360p': 4, '720p': 2 }, depth: { '360p': 1 }, bufferMs: 3000, stalls: 2,
    });
    expect(scopeOf(undefined, '10.77')).toBe('n:10.77');
    expect(scopeOf(undefined, undefined)).toBe('default');
  });

  it('ignores malformed fields instead of trusting or throwing on them', () => {
    const p = toOverlayPeer({
      peerId: 'viewer-1', kind: 'browser',
      report: {
        kind: 'origin', // the registry's kind wins
        stats: { 'slots.360p': -1, 'slots.480p': 1.5, 'slots.720p': 999, 'slots.1080p': '3', 'slots.BAD': 3, 'slots.240p': 2, bufferMs: -5, stalls: Infinity },
        links: [
          { peerId: 'x y', parent: true, rendition: '360p' },
          { peerId: 'p1', parent: 'yes', rendition: '360p' },
          { peerId: 'p2', parent: true, rendition: '../etc' },
          { peerId: 'viewer-1', parent: true, rendition: '360p' }, // itself
          'not an object',
          { peerId: 'p3', parent: true, rendition: '240p' },
        ],
        rendition: 'NOT A NAME', nat: 'x'.repeat(100), region: { evil: true }, net: 42,
      },
    });
    expect(p).toEqual({ peerId: 'viewer-1', kind: 'browser', scope: 'default', parents: { '240p': 'p3' }, slots: { '240p': 2 }, rendition: '240p' });
    for (const junk of [null, 'text', 42, [], { stats: null, links: 'x' }, { stats: [1, 2], links: [null] }]) {
      expect(toOverlayPeer({ peerId: 'v', kind: 'browser', report: junk })).toEqual({ peerId: 'v', kind: 'browser', scope: 'default', parents: {}, slots: {} });
    }
  });

  it('infers what a viewer plays when it reports no rendition, and keeps links to a parent that has not reported yet', () => {
    const overlay = buildOverlay([
      { peerId: 'origin-root', kind: 'origin', report: { stats: { 'slots.360p': 1 } } },
      { peerId: 'new-1', kind: 'browser', report: null },
      { peerId: 'c-1', kind: 'browser', report: { stats: { 'depth.360p': 2, 'depth.720p': 255 }, links: [{ peerId: 'new-1', sent: 0, received: 9, parent: true, rendition: '360p' }] } },
      { peerId: 'c-2', kind: 'browser', report: { stats: { 'depth.720p': 3 } } },
    ]);
    const by = new Map(overlay.map((p) => [p.peerId, p]));
    expect(by.get('c-1')!.rendition).toBe('360p');
    expect(by.get('c-2')!.rendition).toBe('720p');
    expect(by.get('new-1')).toMatchObject({ rendition: '360p', slots: { '360p': 1 } });
  });

  it('address prefixes: IPv4 /16, IPv6 /32, nothing else', () => {
    expect(addressPrefix('10.77.0.12')).toBe('10.77');
    expect(addressPrefix('::ffff:192.168.3.4')).toBe('192.168');
    expect(addressPrefix('2001:0db8:85a3::8a2e:370:7334')).toBe('2001:db8');
    expect(addressPrefix('::1')).toBe('0:0');
    for (const bad of [undefined, '', 'localhost', '300.1.2.3', '1.2.3', 'fe80::1%eth0']) expect(addressPrefix(bad)).toBeNull();
  });
});

describe('the tracker optimizer', () => {
  it('sends each viewer its parent as an assign message the client accepts, and counts the round', async () => {
    const w = world();
    const ids = channel(w, 6);
    const opt = new TrackerOptimizer(w.deps, { budgetMs: 50 });
    const round = await opt.runChannel(CH);
    expect(round).toMatchObject({ channel: CH, peers: 7, unplaced: 0, sent: 6, undelivered: 0 });
    for (const id of ids) {
      const got = w.assigns(id);
      expect(got).toHaveLength(1);
      const parsed = parseTrackerMessage(JSON.stringify(got[0]));
      expect(parsed).toMatchObject({ type: 'assign', channel: CH, rendition: R });
      expect(typeof (parsed as { parent: unknown }).parent).toBe('string');
    }
    expect(w.assigns('origin-root')).toEqual([]);
    expect(await w.metric('starling_optimizer_rounds_total')).toBe(1);
    expect(await w.metric('starling_optimizer_assignments_total')).toBe(6);
    expect(await w.metric('starling_optimizer_errors_total')).toBe(0);
    expect(await w.metric('starling_optimizer_solve_seconds')).toBeGreaterThan(0); // sum, count, buckets
    const line = logLines.find((l) => l.msg === 'optimizer round');
    expect(line?.level).toBe('info');
    expect(line?.obj).toMatchObject({ channel: CH, peers: 7, assignments: 6, unhonoured: 0 });
    expect(w.events).toHaveLength(1);
    expect(w.events[0]).toMatchObject({ channel: CH, type: 'optimizer' });

    // the viewers follow the plan: the next round has nothing to say
    for (const id of ids) {
      const parent = w.assigns(id)[0].parent as string;
      w.report(id, { stats: { [`slots.${R}`]: 2, [`depth.${R}`]: 2 }, rendition: R, links: [{ peerId: parent, sent: 0, received: 1, parent: true, rendition: R }] });
    }
    const again = await opt.runChannel(CH);
    expect(again).toMatchObject({ assignments: 0, sent: 0, unhonoured: 0 });
    expect(await w.metric('starling_optimizer_assignments_total')).toBe(6);
  });

  it('asks viewers of a rendition with spare upload to relay a short one, places them in its tree, and says so once', async () => {
    const w = world();
    const LO = '240p';
    w.add('origin-root', 'origin');
    w.report('origin-root', { stats: { [`slots.${R}`]: 1, [`slots.${LO}`]: 1 } });
    for (let i = 0; i < 4; i++) {
      w.add(`hi-${i}`, 'browser');
      w.report(`hi-${i}`, { stats: { [`slots.${R}`]: 0, [`kbps.${R}`]: 864, spareKbps: 300 }, rendition: R });
      w.add(`lo-${i}`, 'browser');
      w.report(`lo-${i}`, { stats: { [`slots.${LO}`]: 4, [`kbps.${LO}`]: 464, spareKbps: i === 0 ? 3000 : 900 }, rendition: LO });
    }
    // off by default: nothing is asked
    expect(await new TrackerOptimizer(w.deps, { budgetMs: 50 }).runChannel(CH)).toMatchObject({ relays: 0, relayMessages: 0 });
    const opt = new TrackerOptimizer(w.deps, { budgetMs: 50, relays: true });
    const round = await opt.runChannel(CH);
    const relays = (id: string) => w.conns.get(id)!.sent.filter((m) => m.type === 'relay');
    // lo-0 brings floor(3000 / (864 * 1.05)) = 3 slots of 360p: asked; the others (900 kbit/s) are not
    expect(relays('lo-0')).toEqual([{ type: 'relay', channel: CH, renditions: [R] }]);
    expect(parseTrackerMessage(JSON.stringify(relays('lo-0')[0]))).toMatchObject({ type: 'relay', renditions: [R] });
    for (const id of ['hi-0', 'lo-1', 'origin-root']) expect(relays(id)).toEqual([]);
    expect(round).toMatchObject({ relays: 1, relayMessages: 1 });
    // in the same round the relay is a member of the 360p tree: 5 + 1 peers there, 5 in 240p
    expect(round!.peers).toBe(11);
    // once it reports its 360p slots (and its relay), it is the one under the origin's slot
    w.report('lo-0', { stats: { [`slots.${LO}`]: 4, [`slots.${R}`]: 3, [`kbps.${LO}`]: 464, spareKbps: 400 }, rendition: LO, relays: [R] });
    await opt.runChannel(CH);
    expect(w.assigns('lo-0').filter((m) => m.rendition === R).at(-1)).toEqual({ type: 'assign', channel: CH, rendition: R, parent: 'origin-root' });
    expect(await w.metric('starling_optimizer_relays')).toBe(1);
    expect(await w.metric('starling_optimizer_relay_messages_total')).toBe(1);
    const again = await opt.runChannel(CH);
    expect(again).toMatchObject({ relays: 1, relayMessages: 0 });
    expect(relays('lo-0')).toHaveLength(1);
    // a tracker taking the lead learns the relay from the reports and judges it like its own
    const successor = new TrackerOptimizer(w.deps, { budgetMs: 50, relays: true });
    const taken = await successor.runChannel(CH);
    expect(taken).toMatchObject({ relays: 1, relayMessages: 0 });
    // the client's schema and the tracker's accept a report with relays
    expect(parseClientMessage(JSON.stringify({ type: 'report', stats: {}, relays: [R] }))).toMatchObject({ ok: true });
    expect(parseClientMessage(JSON.stringify({ type: 'report', stats: {}, relays: ['BAD NAME'] }))).toMatchObject({ ok: false });
  });

  it('re-sends the same plan while the reports lag behind it, instead of re-deciding from stale links', async () => {
    const w = world();
    w.add('origin-root', 'origin');
    w.report('origin-root', { stats: { [`slots.${R}`]: 2 } });
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) {
      // a varied crowd (slots, NAT, scope, buffer): without the pending links assumed, half of
      // the second round's decisions differ from the first's (measured)
      ids.push(`viewer-${i}`);
      w.add(`viewer-${i}`, 'browser');
      w.report(`viewer-${i}`, {
        stats: { [`slots.${R}`]: i % 4, bufferMs: 1000 * (i % 7) }, rendition: R,
        nat: ['open', 'symmetric', 'port-restricted'][i % 3], net: ['10.1', '10.2'][i % 2],
      });
    }
    const opt = new TrackerOptimizer(w.deps);
    await opt.runChannel(CH);
    const first = ids.map((id) => w.assigns(id)[0].parent);
    for (let i = 0; i < 3; i++) await opt.runChannel(CH); // nobody has reported the new links yet
    for (const [i, id] of ids.entries()) {
      const got = w.assigns(id);
      expect(got).toHaveLength(4);
      expect(new Set(got.map((m) => m.parent))).toEqual(new Set([first[i]]));
    }
    expect(await w.metric('starling_optimizer_unhonoured_total')).toBe(0);
  });

  it('tells an unplaced peer null only to withdraw an earlier assignment, once', async () => {
    const w = world();
    w.add('origin-root', 'origin');
    w.report('origin-root', { stats: { [`slots.${R}`]: 1 } });
    for (const id of ['viewer-a', 'viewer-b']) {
      w.add(id, 'browser');
      w.report(id, { stats: { [`slots.${R}`]: 0 }, rendition: R });
    }
    const opt = new TrackerOptimizer(w.deps);
    await opt.runChannel(CH);
    const placed = ['viewer-a', 'viewer-b'].find((id) => w.assigns(id).length > 0)!;
    const other = placed === 'viewer-a' ? 'viewer-b' : 'viewer-a';
    expect(w.assigns(placed)).toEqual([{ type: 'assign', channel: CH, rendition: R, parent: 'origin-root' }]);
    expect(w.assigns(other)).toEqual([]); // unplaced, never told anything: nothing to withdraw
    // the origin has no slot any more: the placed one is told null once
    w.report('origin-root', { stats: { [`slots.${R}`]: 0 } });
    await opt.runChannel(CH);
    await opt.runChannel(CH);
    expect(w.assigns(placed).map((m) => m.parent)).toEqual(['origin-root', null]);
    expect(w.assigns(other)).toEqual([]);
  });

  it('routes an assignment for a peer of another tracker through its registry handle', async () => {
    const w = world();
    channel(w, 2);
    const remote = new FakeConn('t2');
    w.add('remote-viewer', 'browser', remote);
    w.report('remote-viewer', { stats: { [`slots.${R}`]: 2 }, rendition: R });
    await new TrackerOptimizer(w.deps).runChannel(CH);
    expect(remote.sent.filter((m) => m.type === 'assign')).toHaveLength(1);
  });

  it('a tracker that does not lead the channel sends nothing', async () => {
    let leader = false;
    const w = world({ leader: () => leader });
    const ids = channel(w, 4);
    const opt = new TrackerOptimizer(w.deps);
    expect(await opt.runChannel(CH)).toBeNull();
    await opt.tick();
    for (const id of ids) expect(w.assigns(id)).toEqual([]);
    expect(await w.metric('starling_optimizer_rounds_total')).toBe(0);
    leader = true;
    await opt.tick();
    expect(ids.every((id) => w.assigns(id).length === 1)).toBe(true);
  });

  it('a disabled optimizer sends nothing', async () => {
    const w = world();
    const ids = channel(w, 3);
    const opt = new TrackerOptimizer(w.deps, { enabled: false });
    opt.start();
    expect(await opt.runChannel(CH)).toBeNull();
    await opt.tick();
    opt.stop();
    for (const id of ids) expect(w.assigns(id)).toEqual([]);
  });

  it('a throwing round is caught, logged and counted; the next one works', async () => {
    const w = world();
    const ids = channel(w, 3);
    let fail = true;
    const opt = new TrackerOptimizer({
      ...w.deps,
      createLoop: () => ({ run: () => { if (fail) throw new Error('solver bug'); return { assignments: [], figures: { renditions: 0, peers: 0, moves: 0, swaps: 0, placed: 0, unplaced: 0, objectiveBefore: 0, objectiveAfter: 0, solveMs: 1, budgetExhausted: false, assignments: 0, unhonoured: 0 } }; } }),
    });
    await expect(opt.runChannel(CH)).resolves.toBeNull();
    expect(await w.metric('starling_optimizer_errors_total')).toBe(1);
    expect(logLines.some((l) => l.level === 'error' && l.msg === 'optimizer round failed')).toBe(true);
    // the store failing (Redis down) is a failed round too
    const broken = new TrackerOptimizer({ ...w.deps, store: { localChannels: () => [CH], reports: async () => { throw new Error('redis down'); } } });
    await expect(broken.tick()).resolves.toBeUndefined();
    expect(await w.metric('starling_optimizer_errors_total')).toBe(2);
    for (const id of ids) expect(w.assigns(id)).toEqual([]);
    fail = false;
    await expect(opt.runChannel(CH)).resolves.toMatchObject({ channel: CH });
    expect(await w.metric('starling_optimizer_rounds_total')).toBe(1);
  });

  it('skips peers that left, and peers whose socket is congested or closed', async () => {
    const w = world();
    const ids = channel(w, 3);
    w.conns.get(ids[0])!.bufferedAmount = 10 * 1024 * 1024;
    w.conns.get(ids[1])!.open = false;
    const round = await new TrackerOptimizer(w.deps).runChannel(CH);
    expect(round).toMatchObject({ sent: 1, undelivered: 2 });
  });

  it('settings are checked', () => {
    expect(resolveOptimizerSettings()).toEqual({ enabled: true, periodMs: 1000, budgetMs: 50, relays: false });
    expect(() => resolveOptimizerSettings({ periodMs: 5 })).toThrow(RangeError);
    expect(() => resolveOptimizerSettings({ relays: 'yes' as unknown as boolean })).toThrow(RangeError);
    expect(() => resolveOptimizerSettings({ budgetMs: 0 })).toThrow(RangeError);
  });
});

describe('the wire', () => {
  it('reports carry slots/depth and tagged links; out-of-range values are rejected', () => {
    const ok = parseClientMessage(JSON.stringify({
      type: 'report', stats: { 'slots.360p': 3, 'depth.360p': 255, bytesFromPeers: 1.5 },
      links: [{ peerId: 'abc', sent: 1, received: 2, parent: true, rendition: '360p' }],
    }));
    expect(ok.ok).toBe(true);
    for (const bad of [
      { type: 'report', stats: { 'slots.360p': 256 } },
      { type: 'report', stats: { 'depth.360p': 1.5 } },
      { type: 'report', stats: {}, links: [{ peerId: 'abc', sent: 1, received: 2, rendition: 'BAD NAME' }] },
    ]) expect(parseClientMessage(JSON.stringify(bad)).ok).toBe(false);
  });

  it('the client drops malformed assignments', () => {
    for (const bad of [
      { type: 'assign', rendition: '360p' },
      { type: 'assign', rendition: 'NOPE', parent: 'abcdefgh' },
      { type: 'assign', rendition: '360p', parent: 'a b' },
      { type: 'assign', rendition: '360p', parent: 7 },
      { type: 'assign', channel: 5, rendition: '360p', parent: null },
      { type: 'assignment', rendition: '360p', parent: null },
    ]) expect(parseTrackerMessage(JSON.stringify(bad))).toBeNull();
    expect(parseTrackerMessage('{"type":"assign","rendition":"360p","parent":null,"extra":1}')).toEqual({ type: 'assign', rendition: '360p', parent: null });
  });
});

describe('in a real tracker', () => {
  let t: Started | null = null;
  const clients: Client[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await t?.app.close();
    t = null;
  });

  it('the leader sends assignments over the WebSocket a few hundred ms after the reports', async () => {
    t = await startTracker({ lease: { ttlMs: 600, tickMs: 100 }, optimizer: { periodMs: 100 } });
    const join = async (peerId: string, kind: PeerKind) => {
      const c = await Client.connect(t!.ws);
      clients.push(c);
      await c.join(CH, kind, { peerId });
      return c;
    };
    const origin = await join('origin-root-0001', 'origin');
    origin.send({ type: 'report', stats: { [`slots.${R}`]: 1, [`depth.${R}`]: 0 } });
    const viewers: Client[] = [];
    for (let i = 0; i < 3; i++) {
      const v = await join(`viewer-000${i}`, 'browser');
      v.send({ type: 'report', stats: { [`slots.${R}`]: 2, [`depth.${R}`]: 255 }, rendition: R });
      viewers.push(v);
    }
    const got = await Promise.all(viewers.map((v) => v.next('assign', () => true, 5000)));
    for (const m of got) expect(m).toMatchObject({ type: 'assign', channel: CH, rendition: R });
    expect(got.filter((m) => m.parent === 'origin-root-0001')).toHaveLength(1);
    const text = await (await fetch(`${t.http}/metrics`)).text();
    expect(text).toMatch(/^starling_optimizer_rounds_total [1-9]/m);
    expect(text).toMatch(/^starling_optimizer_objective\{channel="demo"\}/m);
  });
});

describe.skipIf(!haveRedisServer())('two trackers sharing channels through redis', () => {
  let redis: TestRedis;
  const trackers: Started[] = [];
  const clients: Client[] = [];
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    for (const c of clients.splice(0)) c.ws.terminate();
    await Promise.all(trackers.splice(0).map((t) => t.app.close()));
    await redis?.stop();
  });

  it('one leader optimizes the channel; assignments reach peers held by the other tracker', async () => {
    const opts = (id: string) => ({
      trackerId: id,
      redis: { url: redis.url, aliveTtlMs: 1500, reportFlushMs: 100 },
      lease: { ttlMs: 1200, tickMs: 200 },
      optimizer: { periodMs: 200 },
    });
    trackers.push(await startTracker(opts('tracker-a')), await startTracker(opts('tracker-b')));
    const [a, b] = trackers;
    const join = async (t: Started, peerId: string, kind: PeerKind) => {
      const c = await Client.connect(t.ws);
      clients.push(c);
      await c.join(CH, kind, { peerId });
      return c;
    };
    const origin = await join(a, 'origin-root-0001', 'origin');
    origin.send({ type: 'report', stats: { [`slots.${R}`]: 1, [`depth.${R}`]: 0 } });
    const viewers: Client[] = [];
    for (let i = 0; i < 4; i++) {
      const v = await join(i % 2 ? b : a, `viewer-000${i}`, 'browser');
      v.send({ type: 'report', stats: { [`slots.${R}`]: 2, [`depth.${R}`]: 255 }, rendition: R });
      viewers.push(v);
    }
    const got = await Promise.all(viewers.map((v) => v.next('assign', () => true, 8000)));
    for (const m of got) expect(m).toMatchObject({ type: 'assign', channel: CH, rendition: R });
    const rounds = async (t: Started) => (await t.app.tracker.metrics.registry.getSingleMetric('starling_optimizer_rounds_total')!.get()).values[0]?.value ?? 0;
    const [ra, rb] = [await rounds(a), await rounds(b)];
    // both trackers hold peers of the channel, one lease: only one of them ran rounds
    expect(Math.min(ra, rb)).toBe(0);
    expect(Math.max(ra, rb)).toBeGreaterThan(0);
  });
});
