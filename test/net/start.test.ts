/**
 * `npm start` as a user runs it (scripts/start.ts): it must bring up tracker, origin and seeder,
 * print the watch and dashboard URLs, serve the pages and the live stream, and on Ctrl-C (SIGINT)
 * stop every process it started — ffmpeg included, no orphans.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from './platform.js';

const root = join(import.meta.dirname, '..', '..');

/** Every live process whose ancestry leads to `pid`. */
function descendants(pid: number): { pid: number; cmd: string }[] {
  const parent = new Map<number, number>();
  const cmds = new Map<number, string>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      cmds.set(Number(d), readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ').trim());
    } catch {
      // exited meanwhile
    }
  }
  const out: { pid: number; cmd: string }[] = [];
  for (const [p] of parent) {
    let q: number | undefined = p;
    while (q && q !== pid && q !== 1) q = parent.get(q);
    if (q === pid && p !== pid) out.push({ pid: p, cmd: cmds.get(p) ?? '' });
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/\) Z /.test(stat); // zombies are dead
  } catch {
    return false;
  }
}

describe('npm start', () => {
  it('starts the platform, prints the URLs, serves the stream, and Ctrl-C leaves no process behind', async () => {
    const env = { ...process.env, STARLING_TRACKER_PORT: '18000', STARLING_HTTP_PORT: '18080', STARLING_STUN_PORT: '13478', STARLING_CHANNEL: 'starttest', LOG_LEVEL: 'warn' };
    const proc = spawn(join(root, 'node_modules/.bin/tsx'), ['scripts/start.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d) => { out += String(d); });
    proc.stderr.on('data', () => {});
    const t0 = Date.now();
    while (!/Dashboard:/.test(out) && Date.now() - t0 < 90_000 && proc.exitCode === null) await sleep(250);
    expect(out).toMatch(/Watch:\s+http:\/\/\S+:18080\/watch\.html\?channel=starttest/);
    expect(out).toMatch(/Dashboard:\s+http:\/\/\S+:18080\/dashboard\.html/);

    const base = 'http://127.0.0.1:18080';
    expect((await fetch(`${base}/watch.html`)).status).toBe(200);
    expect((await fetch(`${base}/dashboard.html`)).status).toBe(200);
    expect(await (await fetch(`${base}/live/starttest/master.m3u8`)).text()).toMatch(/#EXT-X-STREAM-INF/);
    // The seeder and the origin's root peer joined the tracker.
    let kinds: Record<string, number> = {};
    for (let i = 0; i < 40 && !(kinds.seeder >= 1 && kinds.origin >= 1); i++) {
      const channels = await (await fetch('http://127.0.0.1:18000/api/channels')).json();
      kinds = channels.find((c: { channel: string }) => c.channel === 'starttest')?.peers ?? {};
      await sleep(250);
    }
    expect(kinds).toMatchObject({ origin: 1, seeder: 1 });

    const children = descendants(proc.pid!);
    expect(children.some((c) => /ffmpeg/.test(c.cmd))).toBe(true);
    expect(children.some((c) => /tracker\/main\.ts/.test(c.cmd))).toBe(true);
    expect(children.some((c) => /peer\/node\/seed\.ts/.test(c.cmd))).toBe(true);

    proc.kill('SIGINT');
    const code = await new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
    expect(code).toBe(0);
    const until = Date.now() + 10_000;
    while (children.some((c) => alive(c.pid)) && Date.now() < until) await sleep(100);
    expect(children.filter((c) => alive(c.pid)).map((c) => c.cmd)).toEqual([]);
  });
});
