/**
 * `npm run bench:swarm`: the P2P engine at swarm scale on loopback, against an HTTP-only
 * baseline measured in the same run.
 *
 * For each N (default 10, 25, 50): a fresh tracker + origin (real ffmpeg, two renditions, signed
 * segments, root peer with its upload budget), then N werift viewer-peers and N HTTP-only viewers
 * (the baseline: plain hls.js behaviour, whole segments over HTTP) watching at the same time,
 * joining over the first `--join` seconds, for `--seconds` each. Viewers alternate between the
 * two renditions; P2P viewers get emulated upload caps cycling through 300, 700, 1500 and
 * 3000 kbit/s (some below, some above the bitrates: 360p ≈ 864, 240p ≈ 464 kbit/s). Viewers run
 * in two worker processes (bench/swarm-worker.ts) so that werift's CPU does not serialise on
 * one core.
 *
 * Printed per N and mode: share of bytes from peers, origin upload / total delivered,
 * rebuffering ratio, startup time, distance behind the live edge, and the fluid bound
 * min(1, (u_s + Σu_i) / (N·r)) for the P2P population (u_s: the origin's slot budget times the
 * bitrates it feeds; u_i: the caps; r: the mean bitrate watched).
 *
 * `--optimizer on|off|both`: the tracker's Chandelier loop (tracker/plugins/optimizer.ts) on
 * (the tracker's default), off (peers choose parents locally only), or both, one after the other
 * for each N, in one table (each run with its own HTTP-only baseline).
 *
 * `--udp-recv-buffer BYTES`: the viewers' werift socket receive buffer (0: the kernel's default;
 * default: the transport's UDP_RECV_BUFFER_BYTES, also 0). Each P2P line of JSON has the namespace's UDP
 * datagrams and RcvbufErrors (dropped for a full socket buffer) over the run.
 *
 *   bash test/netns.sh npx tsx bench/swarm.ts [--sizes 10,25,50] [--seconds 180] [--join 30] [--optimizer on|off|both] [--udp-recv-buffer BYTES]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { launchTracker } from '../tracker/launch.js';
import { startOrigin } from '../server/origin.js';
import { ENGINE_DEFAULTS } from '../peer/core/engine.js';
import { udpCounters, udpDelta, type UdpCounters } from './udp-counters.js';
import type { EngineCounters, ViewerResult, ViewerSpec, WorkerSpec } from './swarm-worker.js';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10,25,50' },
    seconds: { type: 'string', default: '180' },
    join: { type: 'string', default: '30' },
    workers: { type: 'string', default: '2' },
    optimizer: { type: 'string', default: 'on' },
    'udp-recv-buffer': { type: 'string' },
  },
});
const udpRecvBufferBytes = values['udp-recv-buffer'] === undefined ? undefined : Number(values['udp-recv-buffer']);
if (udpRecvBufferBytes !== undefined && !(Number.isInteger(udpRecvBufferBytes) && udpRecvBufferBytes >= 0)) {
  console.error(`--udp-recv-buffer must be an integer >= 0 (got ${values['udp-recv-buffer']})`);
  process.exit(2);
}
if (!['on', 'off', 'both'].includes(values.optimizer)) {
  console.error(`--optimizer must be on, off or both (got ${values.optimizer})`);
  process.exit(2);
}
const optimizerModes: boolean[] = values.optimizer === 'both' ? [false, true] : [values.optimizer === 'on'];
const sizes = values.sizes.split(',').map(Number).filter((n) => Number.isInteger(n) && n > 0 && n <= 100);
const seconds = Math.min(900, Math.max(20, Number(values.seconds)));
const joinS = Math.min(seconds / 2, Math.max(0, Number(values.join)));
const workers = Math.min(8, Math.max(1, Number(values.workers)));
const CAPS = [300, 700, 1500, 3000];
const root = join(import.meta.dirname, '..');
const host = process.env.STARLING_NETNS_ADDR ?? '127.0.0.1';

/** Per run: the viewers' engine counters summed (EngineCounters). */
interface Summary extends EngineCounters {
  n: number;
  mode: 'p2p' | 'http';
  fromPeersPct: number;
  originSharePct: number;
  rebufferPct: number;
  startupMs: { median: number; max: number };
  latencyS: { mean: number; max: number };
  segments: number;
  failures: number;
  viewers: number;
  /** MB received by source. */
  mbPeers: number;
  mbOriginPeer: number;
  mbHttp: number;
  fed: number;
  /** Median time from joining to the first open neighbor (ms), P2P only. */
  firstNeighborMs: number | null;
  /** MB fetched over HTTP for the joiners' first 3 segments (their catch-up to the live edge) (part of mbHttp). */
  mbHttpStartup: number;
}

function sumRecords(rs: Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rs) for (const [k, v] of Object.entries(r)) out[k] = (out[k] ?? 0) + v;
  return out;
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function summarize(n: number, mode: 'p2p' | 'http', rs: ViewerResult[], originPeerUpload: number): Summary {
  const sum = (f: (r: ViewerResult) => number) => rs.reduce((a, r) => a + f(r), 0);
  const delivered = sum((r) => r.bytesFromPeers + r.bytesFromOriginPeer + r.bytesFromHttp);
  const originUp = mode === 'p2p' ? originPeerUpload + sum((r) => r.bytesFromHttp) : sum((r) => r.bytesFromHttp);
  const played = sum((r) => r.playedMs);
  const stalled = sum((r) => r.stalledMs);
  const startups = rs.map((r) => r.startupMs).filter((x): x is number => x !== null);
  const lat = rs.map((r) => r.latencyMs).filter((x): x is number => x !== null);
  return {
    n,
    mode,
    fromPeersPct: +(100 * sum((r) => r.bytesFromPeers) / Math.max(1, delivered)).toFixed(1),
    originSharePct: +(100 * originUp / Math.max(1, delivered)).toFixed(1),
    rebufferPct: +(100 * stalled / Math.max(1, played + stalled)).toFixed(2),
    startupMs: { median: median(startups), max: Math.max(...startups) },
    latencyS: { mean: +(lat.reduce((a, b) => a + b, 0) / Math.max(1, lat.length) / 1000).toFixed(2), max: +(Math.max(...lat) / 1000).toFixed(2) },
    segments: sum((r) => r.segments),
    failures: sum((r) => r.failures),
    viewers: rs.length,
    mbPeers: +(sum((r) => r.bytesFromPeers) / 1e6).toFixed(1),
    mbOriginPeer: +(sum((r) => r.bytesFromOriginPeer) / 1e6).toFixed(1),
    mbHttp: +(sum((r) => r.bytesFromHttp) / 1e6).toFixed(1),
    duplicatePieces: sum((r) => r.duplicatePieces),
    duplicatePushes: sum((r) => r.duplicatePushes),
    duplicatesOfHttp: sum((r) => r.duplicatesOfHttp),
    latePieces: sum((r) => r.latePieces),
    requestTimeouts: sum((r) => r.requestTimeouts),
    parentLosses: sumRecords(rs.map((r) => r.parentLosses)),
    httpCauses: {
      alone: sum((r) => r.httpCauses.alone), unknown: sum((r) => r.httpCauses.unknown), noParent: sum((r) => r.httpCauses.noParent),
      parentElsewhere: sum((r) => r.httpCauses.parentElsewhere), parentSlow: sum((r) => r.httpCauses.parentSlow),
    },
    pushedPieces: sum((r) => r.pushedPieces),
    silentNeighbors: sum((r) => r.silentNeighbors),
    parentChanges: sum((r) => r.parentChanges),
    fed: rs.filter((r) => r.hasParent).length,
    firstNeighborMs: mode === 'p2p' ? median(rs.map((r) => r.firstNeighborMs).filter((x): x is number => x !== null)) : null,
    mbHttpStartup: +(sum((r) => r.startupHttpBytes ?? 0) / 1e6).toFixed(1),
  };
}

function runWorker(spec: WorkerSpec): Promise<ViewerResult[]> {
  return new Promise((resolve, reject) => {
    // STARLING_BENCH_CPU_PROF=<dir>: each worker writes a V8 CPU profile there (where the CPU goes)
    const profDir = process.env.STARLING_BENCH_CPU_PROF;
    const nodeArgs = profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
    const child = spawn(join(root, 'node_modules/.bin/tsx'), [...nodeArgs, join(root, 'bench/swarm-worker.ts'), JSON.stringify(spec)], {
      cwd: root, stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => { out += String(d); });
    const killer = setTimeout(() => child.kill('SIGKILL'), spec.durationMs + 120_000);
    child.on('exit', (code) => {
      clearTimeout(killer);
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (!line) return reject(new Error(`worker exited ${code} without a result:\n${out.slice(-2000)}`));
      resolve(JSON.parse(line.slice(7)) as ViewerResult[]);
    });
  });
}

/** What the tracker's optimizer did in a run (its Prometheus counters). */
interface OptimizerFigures { rounds: number; assignments: number; unhonoured: number; moves: number; errors: number; relays: number; relayMessages: number }

async function counter(tracker: Awaited<ReturnType<typeof launchTracker>>, name: string): Promise<number> {
  const m = tracker.app.tracker.metrics.registry.getSingleMetric(name);
  return m ? (await m.get()).values.reduce((a, v) => a + v.value, 0) : 0;
}

async function runSize(n: number, optimizer: boolean): Promise<{
  p2p: Summary; http: Summary; bound: number; originPeerUpload: number; opt: OptimizerFigures; udp: UdpCounters | null;
}> {
  const log = pino({ level: process.env.STARLING_BENCH_LOG ?? 'error' });
  const workDir = mkdtempSync(join(tmpdir(), 'starling-bench-'));
  // STARLING_BENCH_TRACKER_LOG=info: the tracker's log (optimizer rounds, relays) on stdout
  const trackerLog = process.env.STARLING_BENCH_TRACKER_LOG;
  const tracker = await launchTracker({ port: 0, host, stunPort: 'any', optimizer: { enabled: optimizer }, ...(trackerLog ? { logger: { level: trackerLog } } : {}) });
  const channel = 'bench';
  const origin = await startOrigin({
    channel, host, port: 0, workDir, trackerUrl: tracker.wsUrls[0], log: log.child({ part: 'origin' }), playerDir: null,
  });
  try {
    const t0 = Date.now();
    while (origin.stats().segmentsPublished < 6 && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 200));
    const renditions = origin.info.renditions;
    const segmentMs = (origin.info.segmentDuration || 2) * 1000;
    const viewers: ViewerSpec[] = [];
    for (let i = 0; i < n; i++) {
      const joinAtMs = Math.round((joinS * 1000 * i) / Math.max(1, n));
      const rendition = renditions[i % renditions.length].name;
      // caps cycle per pair of viewers, so each rendition's audience gets every cap
      viewers.push({ id: `p2p-viewer-${n}-${i}`, mode: 'p2p', rendition, capKbps: CAPS[Math.floor(i / 2) % CAPS.length], joinAtMs });
      viewers.push({ id: `http-viewer-${n}-${i}`, mode: 'http', rendition, capKbps: 0, joinAtMs });
    }
    const base = {
      trackerUrl: tracker.wsUrls[0], originUrl: origin.url, channel, publicKeyHex: Buffer.from(origin.publicKey).toString('hex'),
      segmentMs, durationMs: seconds * 1000, ...(udpRecvBufferBytes !== undefined ? { udpRecvBufferBytes } : {}),
    };
    // each mode dealt round-robin on its own: dealing the alternating list would put every werift
    // viewer in one process (one saturated JS thread) and every HTTP viewer in the other
    const deal = (mode: ViewerSpec['mode'], w: number) => viewers.filter((v) => v.mode === mode).filter((_, i) => i % workers === w);
    const specs: WorkerSpec[] = Array.from({ length: workers }, (_, w) => ({ ...base, viewers: [...deal('p2p', w), ...deal('http', w)] }));
    console.log(`N=${n}, optimizer ${optimizer ? 'on' : 'off'}: ${n} P2P + ${n} HTTP-only viewers in ${workers} processes, ${seconds} s, joining over ${joinS} s`);
    const udpBefore = udpCounters();
    const results = (await Promise.all(specs.map(runWorker))).flat();
    // datagrams the kernel dropped for full socket buffers during the run (this namespace's)
    const udp = udpDelta(udpBefore, udpCounters());
    const rootPeer = origin.rootPeer() as { engine?: { stats?: () => { bytesUploaded: number } } } | null;
    const originPeerUpload = rootPeer?.engine?.stats?.().bytesUploaded ?? 0;
    // fluid bound for the P2P population
    const kbps = (name: string) => (renditions.find((r) => r.name === name)?.bandwidth ?? 0) / 1000;
    const p2p = results.filter((r) => r.mode === 'p2p');
    const r = p2p.reduce((a, v) => a + kbps(v.rendition), 0) / Math.max(1, p2p.length);
    const us = ENGINE_DEFAULTS.originMaxChildrenPerRendition * renditions.reduce((a, x) => a + x.bandwidth / 1000, 0);
    const bound = Math.min(1, (us + p2p.reduce((a, v) => a + v.capKbps, 0)) / (p2p.length * r));
    const opt: OptimizerFigures = {
      rounds: await counter(tracker, 'starling_optimizer_rounds_total'),
      assignments: await counter(tracker, 'starling_optimizer_assignments_total'),
      unhonoured: await counter(tracker, 'starling_optimizer_unhonoured_total'),
      moves: await counter(tracker, 'starling_optimizer_moves_total'),
      errors: await counter(tracker, 'starling_optimizer_errors_total'),
      relays: await counter(tracker, 'starling_optimizer_relays'),
      relayMessages: await counter(tracker, 'starling_optimizer_relay_messages_total'),
    };
    return {
      p2p: summarize(n, 'p2p', p2p, originPeerUpload),
      http: summarize(n, 'http', results.filter((x) => x.mode === 'http'), 0),
      bound,
      originPeerUpload,
      opt,
      udp,
    };
  } finally {
    await origin.stop();
    await tracker.close();
    rmSync(workDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const rows: string[] = [];
  for (const n of sizes) {
    for (const optimizer of optimizerModes) {
      const { p2p, http, bound, originPeerUpload, opt, udp } = await runSize(n, optimizer);
      for (const s of [p2p, http]) {
        const optCell = s.mode !== 'p2p' ? '–' : optimizer ? `on: ${opt.rounds} rounds, ${opt.assignments} assigned, ${opt.moves} moves, ${opt.unhonoured} unhonoured, ${opt.relays} relays at the end (${opt.relayMessages} relay requests)${opt.errors ? `, ${opt.errors} errors` : ''}` : 'off';
        const line = `| ${n} | ${s.mode === 'p2p' ? 'P2P' : 'HTTP-only'} | ${optCell} | ${s.fromPeersPct}% | ${s.originSharePct}% | ${s.rebufferPct}% | ` +
          `${s.startupMs.median} / ${s.startupMs.max} ms | ${s.latencyS.mean} / ${s.latencyS.max} s | ${s.segments} / ${s.failures} | ` +
          `${s.mode === 'p2p' ? `${s.fed} / ${s.viewers}` : '–'} | ${s.mode === 'p2p' ? (100 * bound).toFixed(1) + '%' : '–'} | ` +
          `${s.mbHttp} / ${s.mode === 'p2p' ? s.mbHttpStartup : '–'} | ${s.firstNeighborMs ?? '–'} |`;
        rows.push(line);
        console.log(JSON.stringify({ ...s, optimizer, ...(s.mode === 'p2p' ? { optimizerFigures: opt, udp } : {}), originPeerUploadMB: s.mode === 'p2p' ? +(originPeerUpload / 1e6).toFixed(1) : 0 }));
      }
    }
  }
  console.log('\n| N | mode | optimizer | from peers | origin upload / delivered | rebuffering | startup median / max | behind live edge mean / max | segments / failed loads | fed by a parent at the end | fluid bound | HTTP MB / of it start-up | first neighbor (median ms) |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
