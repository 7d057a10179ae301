/**
 * `npm start` as a user runs it, plus N Chromium watch pages, for a bounded time: reports the
 * offload (bytes viewers got from peers, from the origin's root peer and over HTTP), playback
 * figures per page, and the CPU used by each process (seeding peer, origin, ffmpeg, tracker).
 * Runs inside the private network namespace:
 *   bash test/netns.sh npx tsx bench/swarm-pages.ts [--pages 3] [--seconds 120]
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { launchChromium, netnsHost } from '../test/net/chromium.js';

const { values } = parseArgs({ options: { pages: { type: 'string', default: '3' }, seconds: { type: 'string', default: '120' } } });
const pagesWanted = Math.min(10, Math.max(1, Number(values.pages)));
const seconds = Math.min(600, Math.max(10, Number(values.seconds)));
const host = netnsHost();
const root = join(import.meta.dirname, '..');
const HZ = 100; // USER_HZ on Linux

function cpuTicks(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/** Processes of interest by what their command line runs. */
function findProcs(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let cmd = '';
    try { cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' '); } catch { continue; }
    const isNode = /(^|\/)node /.test(cmd);
    if (isNode && cmd.includes('peer/node/seed.ts')) out.seeder = Number(d);
    else if (isNode && cmd.includes('server/main.ts')) out.origin = Number(d);
    else if (isNode && cmd.includes('tracker/main.ts')) out.tracker = Number(d);
    else if (/(^|\/)ffmpeg$/.test(cmd.split(' ')[0]) && cmd.includes('lavfi')) out.ffmpeg = Number(d);
  }
  return out;
}

async function main(): Promise<void> {
  const env = { ...process.env, STARLING_PUBLIC_HOST: host, LOG_LEVEL: 'warn' };
  const start = spawn(join(root, 'node_modules/.bin/tsx'), ['scripts/start.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  start.stdout.on('data', (d) => { out += String(d); });
  const t0 = Date.now();
  while (!/Watch:\s+(\S+)/.test(out)) {
    if (Date.now() - t0 > 120_000 || start.exitCode !== null) throw new Error(`npm start did not come up:\n${out}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  const url = /Watch:\s+(\S+)/.exec(out)![1];
  console.log(`platform up: ${url}`);
  const browser = await launchChromium();
  try {
    const pages = [];
    for (let i = 0; i < pagesWanted; i++) {
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      await page.goto(url);
      pages.push(page);
    }
    const procs = findProcs();
    const cpu0 = Object.fromEntries(Object.entries(procs).map(([k, pid]) => [k, cpuTicks(pid)]));
    const w0 = Date.now();
    let stats: any[] = [];
    while (Date.now() - w0 < seconds * 1000) {
      await new Promise((r) => setTimeout(r, 10_000));
      stats = await Promise.all(pages.map((p) => p.evaluate(() => (window as any).starling.stats())));
      const peers = stats.reduce((n, s) => n + s.bytesFromPeers, 0);
      const all = stats.reduce((n, s) => n + s.bytesFromPeers + s.bytesFromOriginPeer + s.bytesFromHttp, 0);
      console.log(`t=${Math.round((Date.now() - w0) / 1000)}s offload ${(100 * peers / Math.max(1, all)).toFixed(1)}% ` +
        stats.map((s, i) => `[p${i} peers=${s.peers} lat=${s.latencySeconds?.toFixed(1)}s stalls=${s.stalls}]`).join(' '));
    }
    const wall = (Date.now() - w0) / 1000;
    const cpu = Object.fromEntries(Object.entries(procs).map(([k, pid]) => [k, `${((cpuTicks(pid) - cpu0[k]) / HZ / wall * 100).toFixed(1)}% of a core`]));
    const sum = (k: string) => stats.reduce((n, s) => n + s[k], 0);
    const all = sum('bytesFromPeers') + sum('bytesFromOriginPeer') + sum('bytesFromHttp');
    console.log(JSON.stringify({
      pages: pagesWanted,
      seconds: Math.round(wall),
      bytesFromPeers: sum('bytesFromPeers'),
      bytesFromOriginPeer: sum('bytesFromOriginPeer'),
      bytesFromHttp: sum('bytesFromHttp'),
      offloadPercent: +(100 * sum('bytesFromPeers') / Math.max(1, all)).toFixed(1),
      originSharePercent: +(100 * (sum('bytesFromOriginPeer') + sum('bytesFromHttp')) / Math.max(1, all)).toFixed(1),
      perPage: stats.map((s) => ({ stalls: s.stalls, stalledMs: s.stalledMs, latencySeconds: s.latencySeconds, startupMs: s.startupMs, rendition: s.rendition })),
      cpu,
    }, null, 2));
  } finally {
    await browser.close();
    start.kill('SIGINT');
    await new Promise((r) => start.once('exit', r));
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
