/**
 * Tracker load benchmark (`npm run bench:tracker`): simulated peers speaking the real signaling
 * protocol over WebSocket on loopback, against
 *   starling-1   one Starling tracker process (state in memory),
 *   starling-2   two Starling tracker processes sharing the channel through a real redis-server
 *                (peers split between them as a load balancer would),
 *   bittorrent   bittorrent-tracker's WebSocket tracker (WebTorrent's), the baseline,
 * all in the same run with the same load. Per configuration:
 *   ramp     N peers connect (paced) and join one channel: join -> welcome latency;
 *   steady   every peer reports every --report-ms (Starling: `report`; bittorrent: a periodic
 *            `announce` with its counters, which is what WebTorrent clients send);
 *   churn    --churn-pct % of the peers per second drop and come back as new peers, each sending
 *            4 offers on arrival (Starling: `signal` to 4 peers of its welcome sample;
 *            bittorrent: an announce with 4 offers the tracker hands to 4 random peers); every
 *            recipient answers at once: offer -> answer round trip (two relays) at the offerer.
 * Measured: peers held (connected and joined at the end), messages/s both ways, join and signal
 * latency p50/p99, server RSS per peer, server CPU (and Redis's, and the load generator's).
 *
 * The load generator runs in worker processes (each below the per-process file limit), each
 * connecting from its own 127.0.x.y source address (a loopback address has ~28k ephemeral ports).
 *
 *   npm run bench:tracker                                   # all three, defaults below
 *   npm run bench:tracker -- --peers 5000 --steady-s 10 --churn-s 10 --only starling-1
 * Options: --peers N per server process (default 18000; the two-process run holds 2N)
 *          --ramp-rate connections/s per server process (1000)  --report-ms 5000
 *          --steady-s 20  --churn-s 15  --churn-pct 0.5  --per-worker 9000  --json FILE
 *          --only starling-1,starling-2,bittorrent
 * Every loop is bounded (phases by time, connections by count); the run stops by itself.
 * Diagnostics: STARLING_BENCH_LOGS=DIR keeps the trackers' logs, STARLING_BENCH_TRACE_GC=1 adds
 * --trace-gc, STARLING_BENCH_TRACKER_NODE_FLAGS replaces the servers' node flags.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

const ROOT = join(import.meta.dirname, '..');
const SELF = import.meta.filename;
const CHANNEL = 'bench';
const INFO_HASH = 'starling-bench-hash!'; // 20 chars
const OFFERS_PER_ARRIVAL = 4;
const SDP_PAD = 'a=candidate:1 1 udp 2122260223 192.0.2.1 50000 typ host generation 0\r\n'.repeat(6);

type System = 'starling' | 'bittorrent';
type ConfigName = 'starling-1' | 'starling-2' | 'bittorrent';

// ============================================================================ worker side

interface WorkerStart {
  system: System;
  targets: string[];
  count: number;
  ratePerSec: number;
  localAddress: string;
  reportMs: number;
  idPrefix: string;
}

interface PhaseStats {
  open: number;
  joined: number;
  connectFailures: number;
  unexpectedCloses: number;
  sent: number;
  received: number;
  joinLatency: number[];
  signalRtt: number[];
  offersSent: number;
  answersReceived: number;
  errors: Record<string, number>;
  cpuMs: number;
  rssBytes: number;
}

interface SimPeer {
  id: string;
  ws: WebSocket;
  target: number;
  joined: boolean;
  startedAt: number;
  /** Offers to send once welcomed (arrivals during churn). */
  offerOnJoin: boolean;
  closingOnPurpose: boolean;
  up: number;
  down: number;
}

function workerMain(): void {
  let cfg: WorkerStart;
  const peers: SimPeer[] = [];
  let gen = 0;
  let opening = 0;
  let phaseCpu = process.cpuUsage();
  const st = {
    connectFailures: 0, unexpectedCloses: 0, sent: 0, received: 0, offersSent: 0, answersReceived: 0,
    joinLatency: [] as number[], signalRtt: [] as number[], errors: {} as Record<string, number>,
  };
  const offers = new Map<string, number>();
  let churnPct = 0;
  let churnDebt = 0;
  let arrivals = 0;
  let tick = 0;
  /** Handshakes in flight per worker: bursts beyond the servers' accept queue only measure SYN retransmissions. */
  const MAX_OPENING = 128;

  const now = () => performance.now();
  const send = (p: SimPeer, msg: unknown) => {
    if (p.ws.readyState !== WebSocket.OPEN) return;
    p.ws.send(JSON.stringify(msg));
    st.sent++;
  };
  const btId = (id: string) => id.padEnd(20, '_').slice(0, 20);
  const sdp = (kind: string, token: string) => `v=0\r\no=- ${token} 2 IN IP4 127.0.0.1\r\ns=${kind}\r\n${SDP_PAD}`;
  const tokenOf = (text: unknown): string | null => {
    if (typeof text !== 'string') return null;
    const m = /^v=0\r\no=- (\S+) /.exec(text);
    return m ? m[1] : null;
  };

  function sendOffers(p: SimPeer, sample: string[]): void {
    if (cfg.system === 'starling') {
      for (const to of sample.slice(0, OFFERS_PER_ARRIVAL)) {
        const token = `${p.id}.${to}.${st.offersSent}`;
        offers.set(token, now());
        st.offersSent++;
        send(p, { type: 'signal', to, data: { sdp: { type: 'offer', sdp: sdp('offer', token) } } });
      }
    } else {
      const list = [];
      for (let i = 0; i < OFFERS_PER_ARRIVAL; i++) {
        const token = `${p.id}.${i}.${st.offersSent}`;
        offers.set(token, now());
        st.offersSent++;
        list.push({ offer: { type: 'offer', sdp: sdp('offer', token) }, offer_id: btId(`o${st.offersSent}${p.id}`) });
      }
      send(p, { action: 'announce', info_hash: INFO_HASH, peer_id: btId(p.id), uploaded: 0, downloaded: 0, left: 1e9, event: 'update', numwant: OFFERS_PER_ARRIVAL, offers: list });
    }
  }

  function onMessage(p: SimPeer, data: WebSocket.RawData): void {
    st.received++;
    let m: Record<string, unknown>;
    try {
      m = JSON.parse(data.toString()) as Record<string, unknown>;
    } catch {
      st.errors['malformed'] = (st.errors['malformed'] ?? 0) + 1;
      return;
    }
    if (cfg.system === 'starling') {
      if (m.type === 'welcome') {
        if (!p.joined) {
          p.joined = true;
          st.joinLatency.push(now() - p.startedAt);
          if (p.offerOnJoin) sendOffers(p, ((m.peers as Array<{ peerId: string }>) ?? []).map((x) => x.peerId));
        }
      } else if (m.type === 'signal') {
        const d = m.data as { sdp?: { type: string; sdp: string } };
        if (d?.sdp?.type === 'offer') {
          send(p, { type: 'signal', to: m.from, data: { sdp: { type: 'answer', sdp: sdp('answer', tokenOf(d.sdp.sdp) ?? 'x') } } });
        } else if (d?.sdp?.type === 'answer') {
          const t = tokenOf(d.sdp.sdp);
          const t0 = t ? offers.get(t) : undefined;
          if (t && t0 !== undefined) {
            offers.delete(t);
            st.answersReceived++;
            st.signalRtt.push(now() - t0);
          }
        }
      } else if (m.type === 'error') {
        const r = String(m.reason).slice(0, 40);
        st.errors[r] = (st.errors[r] ?? 0) + 1;
      }
      return;
    }
    // bittorrent-tracker
    if (m['failure reason'] !== undefined) {
      const r = String(m['failure reason']).slice(0, 40);
      st.errors[r] = (st.errors[r] ?? 0) + 1;
      return;
    }
    if (m.action !== 'announce') return;
    if (m.offer !== undefined) {
      const o = m.offer as { sdp?: string };
      send(p, {
        action: 'announce', info_hash: INFO_HASH, peer_id: btId(p.id), to_peer_id: m.peer_id, offer_id: m.offer_id,
        answer: { type: 'answer', sdp: sdp('answer', tokenOf(o?.sdp) ?? 'x') },
      });
    } else if (m.answer !== undefined) {
      const t = tokenOf((m.answer as { sdp?: string })?.sdp);
      const t0 = t ? offers.get(t) : undefined;
      if (t && t0 !== undefined) {
        offers.delete(t);
        st.answersReceived++;
        st.signalRtt.push(now() - t0);
      }
    } else if (!p.joined && m.interval !== undefined) {
      p.joined = true;
      st.joinLatency.push(now() - p.startedAt);
    }
  }

  function open(offerOnJoin: boolean): void {
    const n = gen++;
    const id = `${cfg.idPrefix}${n.toString(36).padStart(5, '0')}`;
    const target = n % cfg.targets.length;
    const ws = new WebSocket(cfg.targets[target], { localAddress: cfg.localAddress, perMessageDeflate: false, handshakeTimeout: 15_000 });
    const p: SimPeer = { id, ws, target, joined: false, startedAt: now(), offerOnJoin, closingOnPurpose: false, up: 0, down: 0 };
    opening++;
    let opened = false;
    ws.on('open', () => {
      opening--;
      opened = true;
      peers.push(p);
      if (cfg.system === 'starling') send(p, { type: 'join', channel: CHANNEL, kind: 'browser', peerId: id });
      else if (offerOnJoin) sendOffers(p, []); // started + offers: the tracker answers (join) and forwards them
      else send(p, { action: 'announce', info_hash: INFO_HASH, peer_id: btId(id), uploaded: 0, downloaded: 0, left: 1e9, event: 'started', numwant: 0 });
    });
    ws.on('message', (d) => onMessage(p, d));
    ws.on('error', () => {});
    ws.on('close', () => {
      if (!opened) {
        opening--;
        st.connectFailures++;
        return;
      }
      if (!p.closingOnPurpose) st.unexpectedCloses++;
      const i = peers.indexOf(p);
      if (i >= 0) {
        peers[i] = peers[peers.length - 1];
        peers.pop();
      }
    });
  }

  function report(p: SimPeer): void {
    p.up += 150_000 + (p.id.length % 7) * 1000;
    p.down += 250_000;
    if (cfg.system === 'starling') {
      send(p, {
        type: 'report',
        stats: {
          bytesFromPeers: p.down, bytesFromHttp: 1000, bytesFromOriginPeer: 0, bytesUploaded: p.up, peers: 6,
          bufferMs: 6000, stalledMs: 0, watchMs: 60000, latencyMs: 6500, badPieces: 0, uploadSlots: 4, uploadSlotsUsed: 2,
        },
        rendition: '360p',
        nat: 'port-restricted',
      });
    } else {
      send(p, { action: 'announce', info_hash: INFO_HASH, peer_id: btId(p.id), uploaded: p.up, downloaded: p.down, left: 1e9, numwant: 0 });
    }
  }

  const TICK_MS = 100;
  function onTick(): void {
    tick++;
    // Reports: each peer once per reportMs, spread over the ticks.
    const slots = Math.max(1, Math.round(cfg.reportMs / TICK_MS));
    const slot = tick % slots;
    for (let i = slot; i < peers.length; i += slots) if (peers[i].joined) report(peers[i]);
    // Churn: drop a share of the peers, spread over the ticks; replacements arrive with offers
    // (at most MAX_OPENING handshakes in flight, the rest wait their turn).
    if (churnPct > 0) {
      churnDebt += (peers.length * churnPct) / 100 / (1000 / TICK_MS);
      for (; churnDebt >= 1 && peers.length > 0; churnDebt--) {
        const p = peers[Math.floor(Math.random() * peers.length)];
        if (p.closingOnPurpose) continue;
        p.closingOnPurpose = true;
        p.ws.close(1000, 'bye');
        arrivals++;
      }
    }
    for (; arrivals > 0 && opening < MAX_OPENING; arrivals--) open(true);
  }

  function snapshot(): PhaseStats {
    const cpu = process.cpuUsage(phaseCpu);
    phaseCpu = process.cpuUsage();
    const out: PhaseStats = {
      open: peers.length,
      joined: peers.filter((p) => p.joined).length,
      connectFailures: st.connectFailures,
      unexpectedCloses: st.unexpectedCloses,
      sent: st.sent,
      received: st.received,
      joinLatency: st.joinLatency,
      signalRtt: st.signalRtt,
      offersSent: st.offersSent,
      answersReceived: st.answersReceived,
      errors: st.errors,
      cpuMs: (cpu.user + cpu.system) / 1000,
      rssBytes: process.memoryUsage().rss,
    };
    Object.assign(st, { connectFailures: 0, unexpectedCloses: 0, sent: 0, received: 0, offersSent: 0, answersReceived: 0, joinLatency: [], signalRtt: [], errors: {} });
    offers.clear();
    return out;
  }

  let timer: ReturnType<typeof setInterval> | null = null;
  process.on('message', (msg: { cmd: string; [k: string]: unknown }) => {
    if (msg.cmd === 'start') {
      cfg = msg.cfg as WorkerStart;
      timer = setInterval(onTick, TICK_MS);
      // Ramp: paced opens, at most MAX_OPENING handshakes in flight.
      const perTick = Math.max(1, Math.round(cfg.ratePerSec / 50));
      const deadline = now() + (cfg.count / cfg.ratePerSec) * 1000 * 4 + 30_000;
      const ramp = setInterval(() => {
        for (let i = 0; i < perTick && gen < cfg.count && opening < MAX_OPENING; i++) open(false);
        const done = gen >= cfg.count && opening === 0 && peers.every((p) => p.joined || p.ws.readyState !== WebSocket.OPEN);
        if (done || now() > deadline) {
          clearInterval(ramp);
          process.send!({ cmd: 'ramped', stats: snapshot() });
        }
      }, 20);
    } else if (msg.cmd === 'snapshot') {
      process.send!({ cmd: 'snapshot', stats: snapshot() });
    } else if (msg.cmd === 'churn') {
      churnPct = msg.pct as number;
    } else if (msg.cmd === 'stop') {
      if (timer) clearInterval(timer);
      for (const p of peers) {
        p.closingOnPurpose = true;
        p.ws.terminate();
      }
      setTimeout(() => process.exit(0), 200);
    }
  });
  process.on('disconnect', () => process.exit(0));
}

// ============================================================================ bittorrent server

async function btServerMain(port: number): Promise<void> {
  const pkg = 'bittorrent-tracker'; // untyped package: imported by name
  const { Server } = (await import(pkg)) as { Server: new (o: object) => BtServer };
  interface BtServer {
    on(ev: string, fn: (...a: unknown[]) => void): void;
    listen(port: number, host: string, cb: () => void): void;
  }
  // The swarm's LRU would drop peers beyond 1000 by default: make it hold them all.
  const server = new Server({ udp: false, http: false, ws: true, stats: false, peersCacheLength: 1_000_000, peersCacheTtl: 3_600_000 });
  server.on('error', (err) => process.stderr.write(`bittorrent-tracker error: ${String(err)}\n`));
  server.on('warning', () => {});
  server.listen(port, '127.0.0.1', () => process.stdout.write('listening\n'));
}

// ============================================================================ orchestrator

interface ProcUsage {
  ticks: number;
  rss: number;
}

function procUsage(pid: number): ProcUsage {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime (fields 14, 15)
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    return { ticks, rss };
  } catch {
    return { ticks: 0, rss: 0 };
  }
}
const CLK_TCK = 100;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Node flags of every server process (both trackers alike) and of the load workers. A larger
 * young generation (64 MiB semi-spaces, as docs/operations.md recommends for trackers) cut the
 * trackers' scavenge pauses from ~6 s to ~2 s per run and the churn-time join p50 tenfold.
 * STARLING_BENCH_TRACKER_NODE_FLAGS overrides ('' for Node's defaults).
 */
const SERVER_NODE_FLAGS = (process.env.STARLING_BENCH_TRACKER_NODE_FLAGS ?? '--max-semi-space-size=64').split(' ').filter(Boolean);

async function waitFor(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

interface Server {
  name: string;
  proc: ChildProcess;
  url: string;
}

function killProc(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => p.kill('SIGKILL'), 5000);
    p.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    p.kill('SIGTERM');
  });
}

async function startRedis(): Promise<{ proc: ChildProcess; url: string; dir: string }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'starling-bench-redis-'));
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--maxclients', '1000'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error('redis-server did not start')), 10_000);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('Ready to accept connections')) {
        clearTimeout(t);
        proc.stdout!.resume();
        resolve();
      }
    });
    proc.once('exit', () => reject(new Error('redis-server exited')));
  });
  return { proc, url: `redis://127.0.0.1:${port}`, dir };
}

async function startStarling(name: string, redisUrl?: string): Promise<Server> {
  const port = await freePort();
  const args = [...SERVER_NODE_FLAGS, ...(process.env.STARLING_BENCH_TRACE_GC ? ['--trace-gc'] : []), '--import', 'tsx', 'tracker/main.ts', '--host', '127.0.0.1', '--port', String(port), '--stun-port', '0', '--log-level', 'warn'];
  if (redisUrl) args.push('--redis', redisUrl, '--tracker-id', name);
  // STARLING_BENCH_LOGS=DIR keeps each tracker's log (pino, warn and up) in DIR/<name>.log.
  const logDir = process.env.STARLING_BENCH_LOGS;
  const out = logDir ? openSync(join(logDir, `${name}.log`), 'a') : 'ignore';
  const proc = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', out, 'inherit'], env: { ...process.env, STARLING_TRACKER_ADMIN_TOKEN: 'bench' } });
  if (typeof out === 'number') closeSync(out);
  await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, 30_000, `${name} to start`);
  return { name, proc, url: `ws://127.0.0.1:${port}/ws` };
}

async function startBittorrent(): Promise<Server> {
  const port = await freePort();
  const proc = spawn(process.execPath, [...SERVER_NODE_FLAGS, '--import', 'tsx', SELF, '--role', 'bt-server', '--port', String(port)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('bittorrent-tracker did not start')), 30_000);
    proc.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('listening')) {
        clearTimeout(t);
        resolve();
      }
    });
  });
  return { name: 'bittorrent-tracker', proc, url: `ws://127.0.0.1:${port}` };
}

function pct(xs: number[], p: number): number | null {
  if (xs.length === 0) return null;
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

interface PhaseResult {
  seconds: number;
  open: number;
  joined: number;
  connectFailures: number;
  unexpectedCloses: number;
  toServerPerSec: number;
  fromServerPerSec: number;
  joinP50: number | null;
  joinP99: number | null;
  signalP50: number | null;
  signalP99: number | null;
  answered: string;
  errors: Record<string, number>;
  serverCpuPct: number[];
  redisCpuPct: number | null;
  loadGenCpuPct: number;
  serverRssMB: number[];
  redisRssMB: number | null;
}

interface ConfigResult {
  config: ConfigName;
  processes: number;
  peersTarget: number;
  idleRssMB: number[];
  ramp: PhaseResult;
  steady: PhaseResult;
  churn: PhaseResult;
  rssPerPeerKB: number;
  cpuMsPerKMsgs: number;
}

async function runConfig(name: ConfigName, o: Opts, addrBase: number): Promise<ConfigResult> {
  const servers: Server[] = [];
  let redis: { proc: ChildProcess; url: string; dir: string } | null = null;
  const workers: ChildProcess[] = [];
  try {
    if (name === 'starling-1') servers.push(await startStarling('bench-1'));
    else if (name === 'starling-2') {
      redis = await startRedis();
      servers.push(await startStarling('bench-1', redis.url), await startStarling('bench-2', redis.url));
    } else servers.push(await startBittorrent());
    await sleep(1000);
    const total = o.peers * servers.length;
    const nWorkers = Math.max(1, Math.ceil(total / o.perWorker));
    const idle = servers.map((s) => procUsage(s.proc.pid!));
    console.log(`\n== ${name}: ${servers.length} process(es), ${total} peers from ${nWorkers} load workers`);

    const pending = new Map<ChildProcess, (s: PhaseStats) => void>();
    for (let w = 0; w < nWorkers; w++) {
      const child = fork(SELF, ['--role', 'worker'], { execArgv: ['--max-semi-space-size=64', '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      child.on('message', (m: { cmd: string; stats: PhaseStats }) => {
        const r = pending.get(child);
        if (r) {
          pending.delete(child);
          r(m.stats);
        }
      });
      workers.push(child);
    }
    const collect = (send: (w: ChildProcess) => void): Promise<PhaseStats[]> =>
      Promise.all(workers.map((w) => new Promise<PhaseStats>((resolve) => {
        pending.set(w, resolve);
        send(w);
      })));

    const measure = async (label: string, run: () => Promise<PhaseStats[]>): Promise<PhaseResult> => {
      const t0 = performance.now();
      const s0 = servers.map((s) => procUsage(s.proc.pid!));
      const r0 = redis ? procUsage(redis.proc.pid!) : null;
      const stats = await run();
      const secs = (performance.now() - t0) / 1000;
      const s1 = servers.map((s) => procUsage(s.proc.pid!));
      const r1 = redis ? procUsage(redis.proc.pid!) : null;
      const sum = (f: (s: PhaseStats) => number) => stats.reduce((n, s) => n + f(s), 0);
      const errors: Record<string, number> = {};
      for (const s of stats) for (const [k, v] of Object.entries(s.errors)) errors[k] = (errors[k] ?? 0) + v;
      const res: PhaseResult = {
        seconds: +secs.toFixed(1),
        open: sum((s) => s.open),
        joined: sum((s) => s.joined),
        connectFailures: sum((s) => s.connectFailures),
        unexpectedCloses: sum((s) => s.unexpectedCloses),
        toServerPerSec: Math.round(sum((s) => s.sent) / secs),
        fromServerPerSec: Math.round(sum((s) => s.received) / secs),
        joinP50: pct(stats.flatMap((s) => s.joinLatency), 50),
        joinP99: pct(stats.flatMap((s) => s.joinLatency), 99),
        signalP50: pct(stats.flatMap((s) => s.signalRtt), 50),
        signalP99: pct(stats.flatMap((s) => s.signalRtt), 99),
        answered: `${sum((s) => s.answersReceived)}/${sum((s) => s.offersSent)}`,
        errors,
        serverCpuPct: s1.map((u, i) => +((100 * (u.ticks - s0[i].ticks)) / CLK_TCK / secs).toFixed(1)),
        redisCpuPct: r0 && r1 ? +((100 * (r1.ticks - r0.ticks)) / CLK_TCK / secs).toFixed(1) : null,
        loadGenCpuPct: +((100 * sum((s) => s.cpuMs)) / 1000 / secs).toFixed(1),
        serverRssMB: s1.map((u) => +(u.rss / 2 ** 20).toFixed(1)),
        redisRssMB: r1 ? +(r1.rss / 2 ** 20).toFixed(1) : null,
      };
      const f = (x: number | null) => (x === null ? '-' : x.toFixed(1));
      console.log(`  ${label.padEnd(6)} ${res.seconds}s: joined ${res.joined}/${res.open} open, msgs/s to ${res.toServerPerSec} from ${res.fromServerPerSec},` +
        ` join p50/p99 ${f(res.joinP50)}/${f(res.joinP99)} ms, signal rtt p50/p99 ${f(res.signalP50)}/${f(res.signalP99)} ms (answered ${res.answered}),` +
        ` server cpu ${res.serverCpuPct.join('+')}%${res.redisCpuPct !== null ? ` redis ${res.redisCpuPct}%` : ''} loadgen ${res.loadGenCpuPct}%,` +
        ` rss ${res.serverRssMB.join('+')} MB${res.redisRssMB !== null ? ` redis ${res.redisRssMB} MB` : ''}` +
        `${res.connectFailures ? `, connect failures ${res.connectFailures}` : ''}${res.unexpectedCloses ? `, dropped ${res.unexpectedCloses}` : ''}` +
        `${Object.keys(res.errors).length ? `, errors ${JSON.stringify(res.errors)}` : ''}`);
      return res;
    };

    const perWorker = Math.ceil(total / nWorkers);
    const ramp = await measure('ramp', () => collect((w) => {
      const i = workers.indexOf(w);
      const cfg: WorkerStart = {
        system: name === 'bittorrent' ? 'bittorrent' : 'starling',
        // Worker i starts at server i % n: peers alternate between the servers as behind a balancer.
        targets: servers.map((_, k) => servers[(i + k) % servers.length].url),
        count: Math.min(perWorker, total - i * perWorker),
        ratePerSec: (o.rampRate * servers.length) / nWorkers,
        localAddress: `127.0.${addrBase}.${i + 2}`,
        reportMs: o.reportMs,
        idPrefix: `w${addrBase}x${i}p`,
      };
      w.send({ cmd: 'start', cfg });
    }));
    // Workers finish their ramps at different times: start every counter afresh.
    await collect((w) => w.send({ cmd: 'snapshot' }));
    const steady = await measure('steady', async () => {
      await sleep(o.steadyS * 1000);
      return collect((w) => w.send({ cmd: 'snapshot' }));
    });
    const churn = await measure('churn', async () => {
      for (const w of workers) w.send({ cmd: 'churn', pct: o.churnPct });
      await sleep(o.churnS * 1000);
      for (const w of workers) w.send({ cmd: 'churn', pct: 0 });
      await sleep(1500); // answers in flight
      return collect((w) => w.send({ cmd: 'snapshot' }));
    });
    const rssDelta = steady.serverRssMB.reduce((a, b) => a + b, 0) - idle.reduce((a, u) => a + u.rss / 2 ** 20, 0);
    const steadyMsgs = (steady.toServerPerSec + steady.fromServerPerSec) * steady.seconds;
    const steadyCpuMs = (steady.serverCpuPct.reduce((a, b) => a + b, 0) / 100) * steady.seconds * 1000;
    return {
      config: name,
      processes: servers.length,
      peersTarget: total,
      idleRssMB: idle.map((u) => +(u.rss / 2 ** 20).toFixed(1)),
      ramp, steady, churn,
      rssPerPeerKB: +((rssDelta * 1024) / Math.max(1, steady.joined)).toFixed(1),
      cpuMsPerKMsgs: +((steadyCpuMs / Math.max(1, steadyMsgs)) * 1000).toFixed(1),
    };
  } finally {
    for (const w of workers) if (w.connected) w.send({ cmd: 'stop' });
    await Promise.all(workers.map((w) => killProc(w)));
    await Promise.all(servers.map((s) => killProc(s.proc)));
    if (redis) {
      await killProc(redis.proc);
      rmSync(redis.dir, { recursive: true, force: true });
    }
  }
}

interface Opts {
  peers: number;
  rampRate: number;
  reportMs: number;
  steadyS: number;
  churnS: number;
  churnPct: number;
  perWorker: number;
  only: ConfigName[];
  json?: string;
}

function table(results: ConfigResult[]): string {
  const f = (x: number | null, d = 1) => (x === null ? '–' : x.toFixed(d));
  const lines = [
    '| configuration | peers held | msgs/s steady (to + from) | msgs/s churn (to + from) | join p50 / p99 | signal offer→answer p50 / p99 (churn) | answered | server CPU steady / churn | RSS per peer | server CPU per 1k msgs | load gen CPU |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    const cpu = (xs: number[]) => xs.map((x) => `${x}%`).join(' + ');
    lines.push(`| ${r.config} (${r.processes} proc) | ${r.steady.joined} / ${r.peersTarget} | ${r.steady.toServerPerSec} + ${r.steady.fromServerPerSec} | ${r.churn.toServerPerSec} + ${r.churn.fromServerPerSec} |` +
      ` ${f(r.ramp.joinP50)} / ${f(r.ramp.joinP99)} ms | ${f(r.churn.signalP50)} / ${f(r.churn.signalP99)} ms | ${r.churn.answered} |` +
      ` ${cpu(r.steady.serverCpuPct)} / ${cpu(r.churn.serverCpuPct)}${r.churn.redisCpuPct !== null ? ` (redis ${r.steady.redisCpuPct}% / ${r.churn.redisCpuPct}%)` : ''} |` +
      ` ${r.rssPerPeerKB} KiB | ${r.cpuMsPerKMsgs} ms | ${r.steady.loadGenCpuPct}% / ${r.churn.loadGenCpuPct}% |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      role: { type: 'string' },
      port: { type: 'string' },
      peers: { type: 'string', default: '18000' },
      'ramp-rate': { type: 'string', default: '1000' },
      'report-ms': { type: 'string', default: '5000' },
      'steady-s': { type: 'string', default: '20' },
      'churn-s': { type: 'string', default: '15' },
      'churn-pct': { type: 'string', default: '0.5' },
      'per-worker': { type: 'string', default: '9000' },
      only: { type: 'string', default: 'starling-1,starling-2,bittorrent' },
      json: { type: 'string' },
    },
    strict: true,
  });
  if (values.role === 'worker') return workerMain();
  if (values.role === 'bt-server') return btServerMain(Number(values.port));
  const num = (v: string, name: string, min: number, max: number) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be in [${min}, ${max}]`);
    return n;
  };
  const o: Opts = {
    peers: num(values.peers, 'peers', 1, 200_000),
    rampRate: num(values['ramp-rate'], 'ramp-rate', 1, 20_000),
    reportMs: num(values['report-ms'], 'report-ms', 200, 60_000),
    steadyS: num(values['steady-s'], 'steady-s', 1, 600),
    churnS: num(values['churn-s'], 'churn-s', 0, 600),
    churnPct: num(values['churn-pct'], 'churn-pct', 0, 50),
    perWorker: num(values['per-worker'], 'per-worker', 100, 19_000),
    only: values.only.split(',').map((s) => s.trim()).filter(Boolean) as ConfigName[],
    json: values.json,
  };
  for (const c of o.only) if (!['starling-1', 'starling-2', 'bittorrent'].includes(c)) throw new Error(`unknown configuration ${c}`);
  console.log(`tracker load: ${o.peers} peers per server process, report every ${o.reportMs} ms, ramp ${o.rampRate}/s per process,` +
    ` steady ${o.steadyS} s, churn ${o.churnPct}%/s for ${o.churnS} s with ${OFFERS_PER_ARRIVAL} offers per arrival`);
  const results: ConfigResult[] = [];
  let addrBase = 1;
  for (const c of o.only) results.push(await runConfig(c, o, addrBase++));
  console.log(`\n${table(results)}\n`);
  if (o.json) writeFileSync(o.json, JSON.stringify({ options: o, results }, null, 2));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
