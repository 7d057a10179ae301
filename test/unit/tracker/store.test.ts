/**
 * The tracker store: leases and the per-channel optimizer election (in memory, fake clock), and
 * two trackers sharing channels through a real redis-server on loopback (skipped when
 * redis-server is not installed; .ci/run installs it).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { MemoryLeases, MemoryStore } from '../../../tracker/store/memory.js';
import { OptimizerElection } from '../../../tracker/store/election.js';
import { RedisStore } from '../../../tracker/store/redis.js';
import type { LeaseStore } from '../../../tracker/store/types.js';
import { Client, getMetrics, metricValue, startTracker, until, type Started } from './helpers.js';
import { haveRedisServer, startRedis, type TestRedis } from './redis-server.js';

/** until() with room for a loaded CI machine (its default 3 s is tight for steps across processes). */
const eventually = <T>(fn: () => Promise<T> | T, ms = 10_000) => until(fn, ms);

function fakeClock() {
  let t = 1000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

async function leaseContract(store: LeaseStore, advance: (ms: number) => Promise<void>) {
  expect(await store.acquireLease('optimizer:demo', 'a', 1000)).toBe(true);
  expect(await store.acquireLease('optimizer:demo', 'b', 1000)).toBe(false);
  expect(await store.leaseOwner('optimizer:demo')).toBe('a');
  expect(await store.renewLease('optimizer:demo', 'b', 1000)).toBe(false);
  expect(await store.renewLease('optimizer:demo', 'a', 1000)).toBe(true);
  expect(await store.acquireLease('optimizer:demo', 'a', 1000)).toBe(true); // re-acquire = renew
  expect(await store.releaseLease('optimizer:demo', 'b')).toBe(false);
  expect(await store.releaseLease('optimizer:demo', 'a')).toBe(true);
  expect(await store.leaseOwner('optimizer:demo')).toBe(null);
  expect(await store.acquireLease('optimizer:demo', 'b', 300)).toBe(true);
  await advance(450); // expired without renewal
  expect(await store.leaseOwner('optimizer:demo')).toBe(null);
  expect(await store.renewLease('optimizer:demo', 'b', 300)).toBe(false);
  expect(await store.acquireLease('optimizer:demo', 'a', 300)).toBe(true);
}

describe('leases and the optimizer election (memory)', () => {
  it('MemoryLeases: one holder, renew, release, expiry', async () => {
    const clock = fakeClock();
    await leaseContract(new MemoryLeases(clock.now), async (ms) => void clock.advance(ms));
  });

  it('two trackers never both lead a channel; the survivor takes over after the ttl', async () => {
    const clock = fakeClock();
    const leases = new MemoryLeases(clock.now);
    const changes: string[] = [];
    const mk = (owner: string, channels: string[]) => {
      const e = new OptimizerElection({ store: leases, owner, channels: () => channels, now: clock.now, ttlMs: 3000, tickMs: 1000 });
      e.onChange((ch, leader) => changes.push(`${owner}:${ch}:${leader}`));
      return e;
    };
    const a = mk('a', ['demo', 'x']);
    const b = mk('b', ['demo']);
    await a.tick();
    await b.tick();
    expect(a.isLeader('demo')).toBe(true);
    expect(a.isLeader('x')).toBe(true);
    expect(b.isLeader('demo')).toBe(false);
    expect(changes.sort()).toEqual(['a:demo:true', 'a:x:true']);
    // a keeps renewing: b never gets it.
    for (let i = 0; i < 5; i++) {
      clock.advance(1000);
      await a.tick();
      await b.tick();
      expect(a.isLeader('demo') && b.isLeader('demo')).toBe(false);
      expect(a.isLeader('demo')).toBe(true);
    }
    // a stops ticking (dies): its own belief ends before the lease does, b takes over after it.
    let t = 0;
    for (; t < 6000; t += 500) {
      clock.advance(500);
      await b.tick();
      expect(a.isLeader('demo') && b.isLeader('demo')).toBe(false);
      if (b.isLeader('demo')) break;
    }
    expect(b.isLeader('demo')).toBe(true);
    expect(t).toBeLessThanOrEqual(3000);
    expect(a.isLeader('demo')).toBe(false);
    await b.stop();
    expect(changes).toContain('b:demo:false');
    expect(await leases.leaseOwner('optimizer:demo')).toBe(null); // released on stop
  });

  it('MemoryStore keeps the latest report per peer for the optimizer', async () => {
    const store = new MemoryStore({ trackerId: 't1', now: () => 0 });
    const conn = { sendJson: () => true, close() {}, bufferedAmount: 0 };
    const rec = store.registry.add({ peerId: 'peer-aaaa', kind: 'browser', channel: 'demo', joinedAt: 1, conn });
    store.putReport(rec, { stats: { x: 1 }, nat: 'symmetric' }, 5);
    store.putReport(rec, { stats: { x: 2 } }, 6);
    expect(await store.reports('demo')).toEqual([{ peerId: 'peer-aaaa', kind: 'browser', at: 6, stats: { x: 2 } }]);
    store.registry.remove(rec);
    expect(await store.reports('demo')).toEqual([]);
  });

  it('a single tracker leads the channels of its peers (ctx.optimizerLeader)', async () => {
    const t = await startTracker({ lease: { ttlMs: 900, tickMs: 100 } });
    try {
      const c = await Client.connect(t.ws);
      await c.join('demo', 'browser');
      await eventually(() => t.app.tracker.election.isLeader('demo'));
      const health = await (await fetch(`${t.http}/healthz`)).json();
      expect(health).toMatchObject({ peers: 1, localPeers: 1, store: { backend: 'memory', connected: true }, leading: ['demo'] });
      c.ws.terminate();
      await eventually(() => !t.app.tracker.election.isLeader('demo'));
    } finally {
      await t.app.close();
    }
  });
});

describe.skipIf(!haveRedisServer())('two trackers sharing channels through redis', () => {
  let redis: TestRedis;
  let a: Started | null = null;
  let b: Started | null = null;
  const clients: Client[] = [];

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.ws.terminate();
    await Promise.all([a?.app.close(), b?.app.close()]);
    a = b = null;
    const r = new Redis(redis.url);
    await r.flushall();
    r.disconnect();
  });

  const opts = (id: string) => ({
    trackerId: id,
    redis: { url: redis.url, aliveTtlMs: 1500, reportFlushMs: 100 },
    lease: { ttlMs: 1200, tickMs: 200 },
  });
  async function client(t: Started): Promise<Client> {
    const c = await Client.connect(t.ws);
    clients.push(c);
    return c;
  }

  it('Redis leases follow the same contract', async () => {
    const store = new RedisStore({ url: redis.url, trackerId: 'lease-test' });
    await store.start();
    try {
      await leaseContract(store, (ms) => new Promise((r) => setTimeout(r, ms)));
    } finally {
      await store.close();
    }
  });

  it('peers on different trackers see and signal each other; reports are readable on both', async () => {
    a = await startTracker(opts('tracker-a'));
    b = await startTracker(opts('tracker-b'));
    const pa = await client(a);
    const wa = await pa.join('demo', 'origin', { peerId: 'origin-aaaa' });
    expect(wa.peers).toEqual([]);
    // B learns of A's peer through the event stream.
    await eventually(() => b!.app.tracker.registry.has('demo', 'origin-aaaa'));
    const pb = await client(b);
    const wb = await pb.join('demo', 'browser', { peerId: 'viewer-bbbb' });
    expect(wb.peers).toEqual([{ peerId: 'origin-aaaa', kind: 'origin' }]);
    await eventually(() => a!.app.tracker.registry.has('demo', 'viewer-bbbb'));

    // Offer B -> A and answer A -> B, across trackers.
    const offer = { sdp: { type: 'offer', sdp: 'v=0 offer' } };
    pb.send({ type: 'signal', to: 'origin-aaaa', data: offer });
    expect(await pa.next('signal', () => true, 10_000)).toEqual({ type: 'signal', from: 'viewer-bbbb', fromKind: 'browser', data: offer });
    const cand = { candidate: { candidate: 'candidate:1 1 udp 1 10.0.0.1 9 typ host', sdpMid: '0', usernameFragment: 'abcd' } };
    pa.send({ type: 'signal', to: 'viewer-bbbb', data: cand });
    expect(await pb.next('signal', () => true, 10_000)).toEqual({ type: 'signal', from: 'origin-aaaa', fromKind: 'origin', data: cand });

    // Counts cover both trackers; the local count is per process.
    // (live trackers are counted every aliveTtl/2)
    const h = await eventually(async () => {
      const j = await (await fetch(`${a!.http}/healthz`)).json();
      return j.store.trackers === 2 ? j : null;
    });
    expect(h).toMatchObject({ peers: 2, localPeers: 1, trackerId: 'tracker-a', store: { backend: 'redis', connected: true, trackers: 2 } });
    const m = await getMetrics(b.http);
    expect(metricValue(m, 'starling_tracker_remote_signals_total{direction="out"}')).toBe(1);
    expect(metricValue(m, 'starling_tracker_remote_signals_total{direction="in"}')).toBe(1);

    // The optimizer's input: B's report is readable from A.
    pb.send({ type: 'report', stats: { uploadBps: 1000 }, rendition: '360p', nat: 'symmetric' });
    const reports = await eventually(async () => {
      const r = await a!.app.tracker.store.reports('demo');
      return r.length > 0 ? r : null;
    });
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ peerId: 'viewer-bbbb', kind: 'browser', at: expect.any(Number), stats: { uploadBps: 1000 }, rendition: '360p', nat: 'symmetric' });

    // Exactly one optimizer leader for the channel.
    await eventually(() => a!.app.tracker.election.isLeader('demo') || b!.app.tracker.election.isLeader('demo'));
    for (let i = 0; i < 5; i++) {
      expect(a.app.tracker.election.isLeader('demo') && b.app.tracker.election.isLeader('demo')).toBe(false);
      await new Promise((r) => setTimeout(r, 150));
    }

    // Whatever a tracker sends a peer through its registry handle reaches it on the other tracker
    // (the optimizer leader's decisions), except a welcome or a malformed signal.
    const remote = a.app.tracker.registry.get('demo', 'viewer-bbbb')!;
    expect(remote.conn.sendJson({ type: 'welcome', peerId: 'x' })).toBe(true); // dropped at B
    expect(remote.conn.sendJson({ type: 'signal', from: 'origin-aaaa', fromKind: 'origin', data: { bogus: 1 } })).toBe(true); // dropped at B
    remote.conn.sendJson({ type: 'plan', parents: { '360p': 'origin-aaaa' } });
    expect(await pb.next(undefined, () => true, 10_000)).toEqual({ type: 'plan', parents: { '360p': 'origin-aaaa' } });
    await eventually(async () => metricValue(await getMetrics(b!.http), 'starling_tracker_remote_signals_total{direction="dropped"}') === 2);

    // A peer leaving on B disappears from A, and its report with it.
    pb.send({ type: 'leave' });
    await eventually(() => !a!.app.tracker.registry.has('demo', 'viewer-bbbb'));
    await eventually(async () => (await a!.app.tracker.store.reports('demo')).length === 0);
    pa.send({ type: 'signal', to: 'viewer-bbbb', data: offer });
    expect((await pa.next('error', () => true, 10_000)).reason).toBe('unknown peer');
  });

  it('a peer resumes its id on the other tracker; the old connection is closed there', async () => {
    a = await startTracker(opts('tracker-a'));
    b = await startTracker(opts('tracker-b'));
    const p1 = await client(a);
    const w1 = await p1.join('demo', 'browser', { peerId: 'viewer-resume' });
    await eventually(() => b!.app.tracker.registry.has('demo', 'viewer-resume'));
    // Without the token the id is taken: another one is assigned.
    const intruder = await client(b);
    expect((await intruder.join('demo', 'browser', { peerId: 'viewer-resume' })).peerId).not.toBe('viewer-resume');
    // With it (the key is shared through redis), B takes the id over and A closes the old socket.
    const p2 = await client(b);
    const w2 = await p2.join('demo', 'browser', { peerId: 'viewer-resume', resumeToken: w1.resumeToken });
    expect(w2.peerId).toBe('viewer-resume');
    expect((await p1.closed).code).toBe(4000);
    await eventually(() => {
      const rec = a!.app.tracker.registry.get('demo', 'viewer-resume');
      return rec && (rec.conn as { remoteTracker?: string }).remoteTracker === 'tracker-b';
    });
    const origin = await client(a);
    await origin.join('demo', 'origin', { peerId: 'origin-aaaa' });
    origin.send({ type: 'signal', to: 'viewer-resume', data: { reject: 'busy' } });
    expect((await p2.next('signal', () => true, 10_000)).from).toBe('origin-aaaa');
  });

  it('after a redis restart the trackers re-announce their peers and signal each other again', async () => {
    a = await startTracker(opts('tracker-a'));
    b = await startTracker(opts('tracker-b'));
    const pa = await client(a);
    await pa.join('demo', 'origin', { peerId: 'origin-aaaa' });
    const pb = await client(b);
    await pb.join('demo', 'browser', { peerId: 'viewer-bbbb' });
    await eventually(() => a!.app.tracker.registry.has('demo', 'viewer-bbbb'));
    // Redis goes away (its state with it) and comes back empty on the same port.
    const port = redis.port;
    await redis.stop();
    await eventually(() => !a!.app.tracker.store.health().connected);
    redis = await startRedis('127.0.0.1', port);
    await eventually(() => a!.app.tracker.store.health().connected && b!.app.tracker.store.health().connected, 10_000);
    const r = new Redis(redis.url);
    try {
      await eventually(async () => (await r.hlen('starling:peers:demo')) === 2, 10_000);
    } finally {
      r.disconnect();
    }
    await eventually(() => a!.app.tracker.registry.has('demo', 'viewer-bbbb') && b!.app.tracker.registry.has('demo', 'origin-aaaa'), 5000);
    pb.send({ type: 'signal', to: 'origin-aaaa', data: { reject: 'again' } });
    expect(await pa.next('signal', () => true, 5000)).toMatchObject({ from: 'viewer-bbbb', data: { reject: 'again' } });
  }, 60_000); // a redis restart and ioredis's reconnect back-off: its waits add up past the unit default on a busy machine

  it('a tracker that stops refreshing is dropped by the others, and a late one loads the state', async () => {
    a = await startTracker(opts('tracker-a'));
    const pa = await client(a);
    await pa.join('demo', 'seeder', { peerId: 'seeder-aaaa' });
    // B starts later: it loads A's peers from the snapshot.
    b = await startTracker(opts('tracker-b'));
    expect(b.app.tracker.registry.has('demo', 'seeder-aaaa')).toBe(true);
    // A "dies" without cleaning up: stop its timers and its redis connections.
    const storeA = a.app.tracker.store as RedisStore;
    await (storeA as unknown as { cmd: Redis }).cmd.del('starling:alive:tracker-a');
    (storeA as unknown as { timers: NodeJS.Timeout[] }).timers.forEach(clearInterval);
    (storeA as unknown as { sub: Redis; cmd: Redis }).sub.disconnect();
    (storeA as unknown as { sub: Redis; cmd: Redis }).cmd.disconnect();
    await eventually(() => !b!.app.tracker.registry.has('demo', 'seeder-aaaa'), 5000);
    const r = new Redis(redis.url);
    try {
      await eventually(async () => (await r.hlen('starling:peers:demo')) === 0, 5000);
      expect(await r.sismember('starling:trackers', 'tracker-a')).toBe(0);
    } finally {
      r.disconnect();
    }
  });
});
