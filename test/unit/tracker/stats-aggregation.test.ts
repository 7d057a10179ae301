/** The tracker's pure aggregation: percentiles, bucketed windows, offload over time, edges, events. */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { distribution, quantile } from '../../../tracker/stats/percentiles.js';
import { BucketSeries } from '../../../tracker/stats/series.js';
import { StatsHub, counterDelta, offloadBound, trustScore } from '../../../tracker/stats/hub.js';
import { parsePredicate } from '../../../tracker/stats/predicate.js';
import type { FeedEvent } from '../../../tracker/stats/types.js';

function clock(start = 1_700_000_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('percentiles', () => {
  it('interpolates between closest ranks (type 7)', () => {
    expect(quantile([], 0.5)).toBeNull();
    expect(quantile([5], 0.9)).toBe(5);
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantile([1, 2, 3, 4, 5], 0)).toBe(1);
    expect(quantile([1, 2, 3, 4, 5], 1)).toBe(5);
    expect(quantile([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 0.9)).toBeCloseTo(91);
    const hundred = Array.from({ length: 101 }, (_, i) => i);
    expect(quantile(hundred, 0.99)).toBeCloseTo(99);
  });

  it('summarises a distribution with a bounded CDF, ignoring non-finite values', () => {
    const d = distribution([3, 1, 2, Number.NaN, Infinity, 4]);
    expect(d).toMatchObject({ count: 4, min: 1, max: 4, mean: 2.5, p50: 2.5 });
    expect(d.cdf).toEqual([[1, 0.25], [2, 0.5], [3, 0.75], [4, 1]]);
    const big = distribution(Array.from({ length: 1000 }, (_, i) => i), 50);
    expect(big.cdf.length).toBeLessThanOrEqual(51);
    expect(big.cdf[big.cdf.length - 1]).toEqual([999, 1]);
    expect(distribution([])).toMatchObject({ count: 0, p50: null, mean: null, cdf: [] });
  });
});

describe('BucketSeries', () => {
  it('spreads an interval over the buckets it covers', () => {
    const s = new BucketSeries(1000, 10, ['b'] as const);
    s.addSpread(500, 3500, { b: 300 }); // 3 s: 50 + 100 + 100 + 50
    expect([0, 1, 2, 3].map((b) => s.get(b, 'b'))).toEqual([50, 100, 100, 50]);
    expect(s.total(0, 3, 'b')).toBeCloseTo(300);
    s.addSpread(4000, 4000, { b: 7 }); // empty interval: all at t1
    expect(s.get(4, 'b')).toBe(7);
  });

  it('is a ring: old buckets are recycled, older-than-ring writes dropped', () => {
    const s = new BucketSeries(1000, 3, ['b'] as const, ['g'] as const);
    s.add(0, 'b', 1);
    s.add(3000, 'b', 2); // same slot as bucket 0, newer: replaces it
    expect(s.get(0, 'b')).toBe(0);
    expect(s.get(3, 'b')).toBe(2);
    s.add(0, 'b', 5); // bucket 0 is older than what the slot holds: dropped
    expect(s.get(3, 'b')).toBe(2);
    expect(Number.isNaN(s.get(3, 'g'))).toBe(true);
    s.set(3500, 'g', 4);
    expect(s.get(3, 'g')).toBe(4);
    // A very long interval fills only the buckets the ring holds, each with its own share.
    s.addSpread(0, 10_000, { b: 100 });
    expect(s.total(7, 9, 'b')).toBeCloseTo(30);
  });
});

describe('counters and trust', () => {
  it('turns cumulative counters into deltas, treating a decrease as a restart', () => {
    expect(counterDelta(150, 100)).toBe(50);
    expect(counterDelta(20, 100)).toBe(20);
    expect(counterDelta(Number.NaN, 1)).toBe(0);
  });
  it('bounds offload by one origin copy per watched rendition, unless seeders take it', () => {
    expect(offloadBound(0, 0, 0)).toBeNull();
    expect(offloadBound(4, 0, 1)).toBe(0.75);
    expect(offloadBound(4, 0, 2)).toBe(0.5);
    expect(offloadBound(1, 0, 0)).toBe(0);
    expect(offloadBound(2, 1, 1)).toBe(1);
  });
  it('trust falls with bad pieces and bans', () => {
    expect(trustScore(0, 0)).toBe(1);
    expect(trustScore(3, 0)).toBe(0.5);
    expect(trustScore(0, 1)).toBe(0.5);
    expect(trustScore(6, 1)).toBeLessThan(0.3);
  });
});

describe('StatsHub', () => {
  function swarm() {
    const c = clock();
    const hub = new StatsHub({ now: c.now, bucketMs: 1000, windowMs: 10_000, settleMs: 0, minReportIntervalMs: 1000 });
    hub.peerJoined('demo', 'origin-1', 'origin');
    hub.peerJoined('demo', 'seeder-1', 'seeder');
    hub.peerJoined('demo', 'viewer-a', 'browser');
    hub.peerJoined('demo', 'viewer-b', 'browser');
    return { c, hub };
  }

  it('computes offload over a window and since start, origin upload, and the 1 - 1/N bound', () => {
    const { c, hub } = swarm();
    c.advance(10_000);
    hub.report('demo', 'viewer-a', { stats: { bytesFromPeers: 3000, bytesFromOriginPeer: 0, bytesFromHttp: 1000 } });
    hub.report('demo', 'viewer-b', { stats: { bytesFromPeers: 4000, bytesFromOriginPeer: 2000, bytesFromHttp: 0 } });
    hub.report('demo', 'origin-1', { stats: { bytesUploaded: 5000 } });
    hub.report('demo', 'seeder-1', { stats: { bytesFromOriginPeer: 9999, bytesUploaded: 4000 } }); // seeders' intake is not viewer offload
    c.advance(1);
    const s = hub.summary('demo')!;
    expect(s).toMatchObject({ viewers: 2, seeders: 1, origins: 1 });
    expect(s.offload).toBeCloseTo(7000 / 10_000);
    expect(s.offloadTotal).toBeCloseTo(0.7);
    expect(s.offloadBound).toBe(1); // a seeder can take the origin's copy off the viewers' hands
    // origin upload = root peer upload (5000) + HTTP fetches (1000), spread over 10 s
    expect(s.originUploadBps).toBeCloseTo(600);
    // Second period: only HTTP; the 10 s window now holds just that, the total keeps both.
    c.advance(9_999);
    hub.report('demo', 'viewer-a', { stats: { bytesFromPeers: 3000, bytesFromOriginPeer: 0, bytesFromHttp: 3000 } });
    c.advance(1);
    const s2 = hub.summary('demo')!;
    expect(s2.offload).toBe(0);
    expect(s2.offloadTotal).toBeCloseTo(7000 / 12_000);
  });

  it('the series cover the snapshot history with bucket times, rates and forward-filled gauges', () => {
    const { c, hub } = swarm();
    c.advance(4000);
    hub.report('demo', 'viewer-a', { stats: { bytesFromPeers: 4000, bytesFromHttp: 4000 } });
    c.advance(1000);
    const snap = hub.snapshot('demo')!;
    const s = snap.series;
    const n = s.t.length;
    expect(n).toBe(5); // from the channel's creation, not 10 empty minutes
    expect(s.t[n - 1] - s.t[n - 2]).toBe(1);
    // The last complete bucket (4-5 s) is not reported yet; the four before it each got
    // 1000 B/s from peers and from HTTP.
    expect(s.peersBps.slice(n - 5)).toEqual([1000, 1000, 1000, 1000, 0]);
    expect(s.offload.slice(n - 5)).toEqual([0.5, 0.5, 0.5, 0.5, null]);
    expect(s.t[0]).toBe(1_700_000_000);
    expect(s.viewers[n - 1]).toBe(2);
    expect(s.seeders[n - 1]).toBe(1);
  });

  it('rate-limits reports per peer and ignores unknown peers', () => {
    const { c, hub } = swarm();
    c.advance(2000);
    expect(hub.report('demo', 'viewer-a', { stats: {} }).accepted).toBe(true);
    c.advance(500);
    expect(hub.report('demo', 'viewer-a', { stats: {} })).toMatchObject({ accepted: false, reason: 'too frequent' });
    expect(hub.report('demo', 'nobody', { stats: {} })).toMatchObject({ accepted: false, reason: 'unknown peer' });
    expect(hub.events({ filter: 'type:report-dropped' })).toHaveLength(1);
  });

  it('builds directed edges from either end, merges both ends, drops them when links close', () => {
    const { c, hub } = swarm();
    c.advance(5000);
    hub.report('demo', 'origin-1', { stats: {}, links: [{ peerId: 'seeder-1', sent: 50_000, received: 0, child: true }] });
    hub.report('demo', 'seeder-1', {
      stats: {},
      links: [
        { peerId: 'origin-1', sent: 0, received: 60_000 },
        { peerId: 'viewer-a', sent: 10_000, received: 0 },
        { peerId: 'gone-peer', sent: 5, received: 5 },
      ],
    });
    hub.report('demo', 'viewer-b', { stats: {}, links: [{ peerId: 'seeder-1', sent: 0, received: 8000 }, { peerId: 'viewer-a', sent: 0, received: 0 }] });
    let g = hub.snapshot('demo')!.graph;
    expect(g.edges.map((e) => `${e.from}>${e.to}`)).toEqual(['origin-1>seeder-1', 'seeder-1>viewer-a', 'seeder-1>viewer-b']);
    const os = g.edges[0];
    expect(os.bytes).toBe(60_000); // the larger count of the two ends
    expect(os.upload).toBe(true);
    expect(os.bps).toBe(12_000); // 60 kB over 5 s
    const depth = Object.fromEntries(g.nodes.map((n) => [n.id, n.depth]));
    expect(depth).toEqual({ 'origin-1': 0, 'seeder-1': 1, 'viewer-a': 2, 'viewer-b': 2 });
    // viewer-b stops reporting the link: seeder-1 never vouched for it, so it goes.
    c.advance(5000);
    hub.report('demo', 'viewer-b', { stats: {}, links: [] });
    g = hub.snapshot('demo')!.graph;
    expect(g.edges.map((e) => `${e.from}>${e.to}`)).toEqual(['origin-1>seeder-1', 'seeder-1>viewer-a']);
    // A peer leaving takes its edges with it.
    hub.peerLeft('demo', 'viewer-a');
    g = hub.snapshot('demo')!.graph;
    expect(g.edges.map((e) => `${e.from}>${e.to}`)).toEqual(['origin-1>seeder-1']);
    expect(g.nodes).toHaveLength(3);
    const types = hub.events().map((e) => e.type);
    expect(types.filter((t) => t === 'link-up')).toHaveLength(3);
    expect(types.filter((t) => t === 'link-down')).toHaveLength(1);
    expect(types).toContain('leave');
  });

  it('attributes bad pieces and bans to the sender, lowering its trust; QoS distributions over viewers', () => {
    const { c, hub } = swarm();
    c.advance(5000);
    hub.report('demo', 'viewer-a', {
      stats: { startupMs: 800, latencyMs: 6000, stalledMs: 500, watchMs: 10_000, stalls: 1 },
      rendition: '360p', nat: 'symmetric',
      links: [{ peerId: 'viewer-b', sent: 0, received: 100, bad: 3 }],
      bans: [{ peerId: 'viewer-b', reason: 'bad pieces' }],
    });
    hub.report('demo', 'viewer-b', { stats: { startupMs: 1200, latencyMs: 8000, stalledMs: 0, watchMs: 10_000 }, rendition: '720p' });
    const snap = hub.snapshot('demo')!;
    const b = snap.peers.find((p) => p.peerId === 'viewer-b')!;
    expect(b).toMatchObject({ badPiecesSent: 3, bans: 1 });
    expect(b.trust).toBeCloseTo(0.33, 2);
    expect(snap.peers.find((p) => p.peerId === 'viewer-a')).toMatchObject({ nat: 'symmetric', rendition: '360p', trust: 1 });
    expect(snap.qos.startupMs).toMatchObject({ count: 2, p50: 1000, min: 800, max: 1200 });
    expect(snap.qos.latencyMs.p50).toBe(7000);
    expect(snap.qos.rebufferingRatio).toMatchObject({ count: 2, max: 0.05, min: 0 });
    expect(snap.rebufferingRatio).toBeCloseTo(500 / 20_000);
    expect(snap.renditions).toEqual([{ rendition: '360p', viewers: 1 }, { rendition: '720p', viewers: 1 }]);
    expect(hub.events({ filter: 'type:ban,bad-piece' }).map((e) => e.type)).toEqual(['bad-piece', 'ban']);
  });

  it('keeps a bounded feed, filters it, and tells listeners', () => {
    const c = clock();
    const hub = new StatsHub({ now: c.now, maxEvents: 5 });
    const seen: FeedEvent[] = [];
    hub.onEvent((e) => seen.push(e));
    for (let i = 0; i < 8; i++) hub.peerJoined('demo', `peer-${i}`, i === 0 ? 'seeder' : 'browser');
    expect(hub.events({ limit: 100 }).map((e) => e.id)).toEqual([4, 5, 6, 7, 8]);
    expect(seen).toHaveLength(8);
    expect(hub.events({ sinceId: 6 }).map((e) => e.id)).toEqual([7, 8]);
    hub.recordEvent({ channel: 'demo', type: 'optimizer', value: 12.5, text: 'round 1: gain 12.5' });
    expect(hub.events({ filter: 'type:optimizer value>10' })).toHaveLength(1);
    expect(() => hub.events({ filter: 'nope:1' })).toThrow(/unknown field/);
  });

  it('forgets idle empty channels beyond maxChannels', () => {
    const c = clock();
    const hub = new StatsHub({ now: c.now, maxChannels: 2 });
    hub.peerJoined('a', 'peer-aaaa', 'browser');
    hub.peerLeft('a', 'peer-aaaa');
    hub.peerJoined('b', 'peer-bbbb', 'browser');
    hub.peerJoined('c', 'peer-cccc', 'browser');
    expect(hub.channelNames()).toEqual(['b', 'c']);
    hub.peerJoined('d', 'peer-dddd', 'browser'); // every channel has peers: refused
    expect(hub.channelNames()).toEqual(['b', 'c']);
  });
});

describe('event predicates', () => {
  const ev = (over: Partial<FeedEvent>): FeedEvent => ({ id: 1, t: 1000, channel: 'demo', type: 'join', text: 'browser abc joined', ...over });
  it('supports field lists, negation, numeric comparisons and bare words', () => {
    const t = (f: string, e: FeedEvent) => {
      const p = parsePredicate(f);
      if (!p.ok) throw new Error(p.error);
      return p.test(e);
    };
    expect(t('', ev({}))).toBe(true);
    expect(t('type:ban,join', ev({}))).toBe(true);
    expect(t('-type:join', ev({}))).toBe(false);
    expect(t('type!=join', ev({}))).toBe(false);
    expect(t('peer:xyz', ev({ other: 'xyz' }))).toBe(true);
    expect(t('value>=10 value<20', ev({ value: 10 }))).toBe(true);
    expect(t('value>10', ev({}))).toBe(false);
    expect(t('ABC', ev({}))).toBe(true);
    expect(t('kind:browser type:join', ev({ kind: 'seeder' }))).toBe(false);
    expect(parsePredicate('text>3')).toMatchObject({ ok: false });
    expect(parsePredicate('x'.repeat(600))).toMatchObject({ ok: false });
  });
});

describe('tracker/stats is pure', () => {
  it('imports no I/O and reads no clock of its own', () => {
    const dir = join(import.meta.dirname, '..', '..', '..', 'tracker', 'stats');
    for (const f of readdirSync(dir)) {
      const src = readFileSync(join(dir, f), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
      expect(src, f).not.toMatch(/from ['"](node:|fs|ws|fastify|prom-client|pino)/);
      expect(src, f).not.toMatch(/\b(Date\.now|performance\.now|Math\.random|setTimeout|setInterval)\b/);
    }
  });
});
