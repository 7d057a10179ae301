/**
 * Integration: two tracker processes sharing one channel through a real redis-server on
 * loopback, the origin (real ffmpeg, signed segments, root peer) and four werift viewers, two
 * joined to each tracker (each peer holds both URLs, its own tracker first). Viewers on the
 * tracker without the origin's root peer can only get video from peers through signals relayed
 * from one tracker to the other. Then the tracker holding the root peer is killed (SIGKILL)
 * mid-stream: its peers move to the survivor with their ids, keep their data channels meanwhile,
 * and every viewer keeps playing, byte-identical to the origin, with peers still delivering.
 *
 *   flock /tmp/starling-net.lock bash test/netns.sh npx vitest run test/net/tracker-redis.test.ts
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { startOrigin, type Origin } from '../../server/origin.js';
import { startNodePeer, type NodePeer } from '../../peer/node/node-peer.js';
import { NodeHttpSource } from '../../peer/node/http-source.js';
import { INIT_SEQ, type SegmentRef } from '../../peer/core/types.js';
import { netnsHost } from './chromium.js';
import { hex, sleep } from './platform.js';
import { freePort, haveRedisServer, startRedis, type TestRedis } from '../unit/tracker/redis-server.js';

const CHANNEL = 'redis2';
const ROOT = join(import.meta.dirname, '..', '..');
const PHASE_S = 18;
const DEADLINE_MS = 4000;

interface TrackerProc {
  id: string;
  proc: ChildProcess;
  port: number;
  http: string;
  ws: string;
  log: string[];
}

async function startTrackerProc(id: string, host: string, redisUrl: string): Promise<TrackerProc> {
  const port = await freePort(host);
  const stunPort = await freePort(host);
  // `node --import tsx`, not the tsx CLI: one process, so SIGKILL really kills the tracker.
  const proc = spawn(process.execPath, [
    '--import', 'tsx', 'tracker/main.ts', '--host', host, '--port', String(port), '--stun-port', String(stunPort),
    '--redis', redisUrl, '--tracker-id', id, '--log-level', 'info',
  ], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, STARLING_TRACKER_ADMIN_TOKEN: '' } });
  const t: TrackerProc = { id, proc, port, http: `http://${host}:${port}`, ws: `ws://${host}:${port}/ws`, log: [] };
  const keep = (d: Buffer) => {
    t.log.push(d.toString());
    if (t.log.length > 200) t.log.shift();
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const end = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`tracker ${id} exited: ${t.log.join('')}`);
    try {
      const res = await fetch(`${t.http}/healthz`);
      if (res.ok) return t;
    } catch {
      /* not yet */
    }
    if (Date.now() > end) throw new Error(`tracker ${id} did not start: ${t.log.join('')}`);
    await sleep(200);
  }
}

async function health(t: TrackerProc): Promise<{ peers: number; localPeers: number; leading: string[]; store: { trackers: number } }> {
  return (await fetch(`${t.http}/healthz`)).json();
}

async function metric(t: TrackerProc, sample: string): Promise<number> {
  const text = await (await fetch(`${t.http}/metrics`)).text();
  for (const line of text.split('\n')) if (line.startsWith(`${sample} `)) return Number(line.slice(sample.length + 1));
  return 0;
}

interface Viewer {
  name: string;
  peer: NodePeer;
  home: TrackerProc;
  rendition: string;
  got: Map<number, true | string>;
  mismatches: string[];
  bySource: Record<string, number>;
}

function playAlong(origin: Origin, v: Viewer): () => void {
  let first = true;
  return origin.onSegment(({ ref, data }) => {
    if (ref.rendition !== v.rendition || ref.seq === INIT_SEQ) return;
    const loads: Array<[SegmentRef, string | null]> = [[ref, hex(data)]];
    if (first) {
      const init = origin.window.get({ rendition: v.rendition, seq: INIT_SEQ });
      loads.unshift([{ rendition: v.rendition, seq: INIT_SEQ }, init ? hex(init.data) : null]);
      first = false;
    }
    for (const [r, expected] of loads) {
      if (r.seq !== INIT_SEQ) v.peer.engine.setPlaybackPosition(r);
      v.peer.engine.loadSegment(r, { deadline: performance.now() + DEADLINE_MS }).then(
        (res) => {
          if (r.seq !== INIT_SEQ) v.got.set(r.seq, true);
          for (const [s, n] of Object.entries(res.bytesBySource)) v.bySource[s] = (v.bySource[s] ?? 0) + n;
          if (expected !== null && hex(res.data) !== expected) v.mismatches.push(`${r.rendition}/${r.seq}`);
        },
        (err) => {
          if (r.seq !== INIT_SEQ) v.got.set(r.seq, String(err));
        },
      );
    }
  });
}

const p2pBytes = (v: Viewer) => (v.bySource.peer ?? 0) + (v.bySource['origin-peer'] ?? 0);

describe.skipIf(!haveRedisServer())('two trackers on redis: cross-tracker video and a tracker killed mid-stream', () => {
  const host = netnsHost();
  const log = pino({ level: process.env.STARLING_TEST_LOG ?? 'warn' });
  let redis: TestRedis;
  let ta: TrackerProc;
  let tb: TrackerProc;
  let origin: Origin;
  let workDir: string;
  const viewers: Viewer[] = [];
  const stops: Array<() => void> = [];

  beforeAll(async () => {
    redis = await startRedis();
    [ta, tb] = await Promise.all([startTrackerProc('tracker-a', host, redis.url), startTrackerProc('tracker-b', host, redis.url)]);
    workDir = mkdtempSync(join(tmpdir(), 'starling-redis-net-'));
    origin = await startOrigin({
      channel: CHANNEL,
      host,
      port: 0,
      workDir,
      // The root peer starts on tracker A and moves to B when A dies.
      trackerUrl: `${ta.ws},${tb.ws}`,
      rootPeerMaxNeighbors: 4,
      log: log.child({ part: 'origin' }),
    });
    const t0 = Date.now();
    while (origin.stats().segmentsPublished < 3 && Date.now() - t0 < 30_000) await sleep(200);
  });

  afterAll(async () => {
    for (const s of stops) s();
    await Promise.allSettled(viewers.map((v) => v.peer.stop()));
    await origin?.stop();
    for (const t of [ta, tb]) {
      if (t && t.proc.exitCode === null && t.proc.signalCode === null) {
        const exited = new Promise((r) => t.proc.once('exit', r));
        t.proc.kill('SIGTERM');
        const k = setTimeout(() => t.proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(k);
      }
    }
    await redis?.stop();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  it('viewers on different trackers exchange video; killing a tracker does not stop playback', async () => {
    const renditions = origin.info.renditions.map((r) => r.name);
    const homes = [ta, ta, tb, tb];
    for (let i = 0; i < homes.length; i++) {
      const home = homes[i];
      const other = home === ta ? tb : ta;
      const peer = await startNodePeer({
        trackerUrl: `${home.ws},${other.ws}`,
        channel: CHANNEL,
        kind: 'browser',
        publicKey: origin.publicKey,
        http: new NodeHttpSource({ baseUrl: origin.url, channel: CHANNEL }),
        maxNeighbors: 8,
        log: log.child({ part: `viewer${i}` }),
        waitForTracker: true,
        hostExtra: { reconnectMinMs: 300, reconnectMaxMs: 2000 },
      });
      const v: Viewer = { name: `v${i}@${home.id}`, peer, home, rendition: renditions[i % renditions.length], got: new Map(), mismatches: [], bySource: {} };
      stops.push(playAlong(origin, v));
      viewers.push(v);
    }
    // Both trackers know all 5 peers (root + 4 viewers); the root peer is on A.
    expect((await health(ta)).localPeers).toBe(3);
    expect((await health(tb)).localPeers).toBe(2);
    await sleep(PHASE_S * 1000);

    const before = viewers.map((v) => ({ segs: v.got.size, p2p: p2pBytes(v) }));
    const relayedAtoB = await metric(tb, 'starling_tracker_remote_signals_total{direction="in"}');
    const relayedBtoA = await metric(ta, 'starling_tracker_remote_signals_total{direction="in"}');
    const leaders = [(await health(ta)).leading, (await health(tb)).leading];
    console.log(`[redis] before the kill: ${viewers.map((v, i) => `${v.name} ${before[i].segs} segs, ${(before[i].p2p / 1e6).toFixed(2)} MB p2p`).join('; ')};` +
      ` signals relayed A->B ${relayedAtoB}, B->A ${relayedBtoA}; optimizer leaders A ${JSON.stringify(leaders[0])} B ${JSON.stringify(leaders[1])}`);
    expect(relayedAtoB).toBeGreaterThan(0);
    expect(relayedBtoA).toBeGreaterThan(0);
    // The viewers on B got video from peers (the root peer and A's viewers are reached only through A).
    for (const v of viewers) expect(p2pBytes(v), v.name).toBeGreaterThan(0);
    // One optimizer leader for the channel, not two.
    expect(leaders.filter((l) => l.includes(CHANNEL))).toHaveLength(1);

    // Kill tracker A (the root peer's) without warning.
    const linksBefore = viewers.map((v) => v.peer.host.stats().links);
    ta.proc.kill('SIGKILL');
    const killedAt = Date.now();
    await sleep(1500);
    // Links stay up meanwhile (data channels do not need the tracker).
    const linksAfter = viewers.map((v) => v.peer.host.stats().links);
    console.log(`[redis] links before the kill ${JSON.stringify(linksBefore)}, 1.5 s after ${JSON.stringify(linksAfter)}`);
    for (let i = 0; i < viewers.length; i++) expect(linksAfter[i], viewers[i].name).toBeGreaterThan(0);

    // Everybody (the root peer too) is back on B, with the same ids.
    let hb = await health(tb);
    while (hb.localPeers < 5 && Date.now() - killedAt < 20_000) {
      await sleep(250);
      hb = await health(tb);
    }
    const rejoinMs = Date.now() - killedAt;
    expect(hb.localPeers).toBe(5);
    for (const v of viewers) expect(v.peer.host.stats().trackerConnected, v.name).toBe(true);
    // B takes the channel's optimizer over once A's lease has expired.
    while (!(await health(tb)).leading.includes(CHANNEL) && Date.now() - killedAt < 20_000) await sleep(250);
    const leaderMs = Date.now() - killedAt;
    console.log(`[redis] tracker A killed: all peers on B after ${rejoinMs} ms; B leads the optimizer after ${leaderMs} ms`);
    expect((await health(tb)).leading).toContain(CHANNEL);
    expect((await health(tb)).store.trackers).toBe(1);

    await sleep(PHASE_S * 1000);
    await sleep(DEADLINE_MS + 1000);
    const after = viewers.map((v, i) => ({ segs: v.got.size - before[i].segs, p2p: p2pBytes(v) - before[i].p2p }));
    console.log(`[redis] after the kill: ${viewers.map((v, i) => `${v.name} +${after[i].segs} segs, +${(after[i].p2p / 1e6).toFixed(2)} MB p2p`).join('; ')}`);
    for (let i = 0; i < viewers.length; i++) {
      const v = viewers[i];
      const failures = [...v.got.values()].filter((x) => x !== true);
      expect(failures, v.name).toEqual([]);
      expect(v.mismatches, v.name).toEqual([]);
      // Playback went on: a segment every 2 s (a few at the edges of the window aside).
      expect(after[i].segs, v.name).toBeGreaterThanOrEqual((PHASE_S + 1 + DEADLINE_MS / 1000) / 2 - 3);
    }
    // And peers still deliver after the kill.
    expect(after.reduce((n, a) => n + a.p2p, 0)).toBeGreaterThan(0);
  });
});
