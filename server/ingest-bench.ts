/**
 * Origin CPU per ingested 720p stream: runs an origin (`server/main.ts --source ingest`) as a
 * child process, publishes a 1280x720 25 fps H.264 + Opus test pattern to it over WHIP from this
 * process (werift + ffmpeg, as OBS would), and measures the origin's CPU (the Node process and
 * every process under it: ffmpeg) over a steady window. Run inside the network namespace:
 *
 *   bash test/netns.sh npx tsx server/ingest-bench.ts [--seconds 30] [--renditions 360p,240p]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { publishWhip } from './whip-client.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '30' }, renditions: { type: 'string', default: '360p,240p' } } });
const host = process.env.STARLING_NETNS_ADDR ?? '127.0.0.1';
const root = join(import.meta.dirname, '..');
const KEY = 'bench-key-0123456789';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const HZ = 100;

/** CPU ticks (user + system) of `pid` and all its descendants. */
function treeTicks(pid: number): number {
  const parent = new Map<number, number>();
  const ticks = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(d), Number(f[1]));
      ticks.set(Number(d), Number(f[11]) + Number(f[12]));
    } catch { /* gone */ }
  }
  let sum = 0;
  for (const [p, t] of ticks) {
    let q: number | undefined = p;
    while (q && q !== pid && q !== 1) q = parent.get(q);
    if (q === pid) sum += t;
  }
  return sum;
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'starling-ingest-bench-'));
  const port = 18000 + Math.floor(Math.random() * 1000);
  const chFile = join(work, 'channels.json');
  writeFileSync(chFile, JSON.stringify([{ channel: 'bench', streamKeyEnv: 'BENCH_KEY', renditions: values.renditions!.split(',') }]));
  const origin = spawn(join(root, 'node_modules/.bin/tsx'), ['server/main.ts', '--host', host, '--port', String(port), '--source', 'ingest', '--no-peer', '--work-dir', work, '--channels', chFile], {
    cwd: root, env: { ...process.env, BENCH_KEY: KEY, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'inherit', 'inherit'],
  });
  const base = `http://${host}:${port}`;
  try {
    for (let i = 0; i < 120; i++) {
      if ((await fetch(`${base}/api/channels`).catch(() => null))?.ok) break;
      await sleep(250);
    }
    const t0 = Date.now();
    const pub = await publishWhip({ url: `${base}/whip/bench`, token: KEY, source: { type: 'testsrc', width: 1280, height: 720, fps: 25 } });
    for (let i = 0; i < 120 && (await fetch(`${base}/live/bench/master.m3u8`)).status !== 200; i++) await sleep(250);
    const goLive = Date.now() - t0;
    await sleep(8000);
    const s = Number(values.seconds);
    const a = treeTicks(origin.pid!);
    const ta = Date.now();
    await sleep(s * 1000);
    const b = treeTicks(origin.pid!);
    const cores = (b - a) / HZ / ((Date.now() - ta) / 1000);
    const st = pub.stats();
    console.log(JSON.stringify({
      ingest: 'WHIP H.264 1280x720 25fps 2.5 Mbit/s + Opus', ladder: values.renditions, seconds: s,
      originCpuCores: Number(cores.toFixed(3)), goLiveMs: goLive, rtpPackets: st.videoPackets + st.audioPackets,
    }));
    await pub.stop();
  } finally {
    origin.kill('SIGTERM');
    await new Promise((r) => origin.once('exit', r));
    rmSync(work, { recursive: true, force: true });
  }
  process.exit(0);
}

void main();
