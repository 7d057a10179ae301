/**
 * `npm start`: the whole platform on one machine — tracker (+ STUN), origin (test pattern ->
 * ffmpeg ABR ladder -> signed HLS + root peer + HTTP fallback + pages) and one seeding peer.
 * Prints the watch and dashboard URLs. Ctrl-C (or SIGTERM) stops every child, ffmpeg included.
 *
 * Environment: STARLING_TRACKER_PORT (8000), STARLING_HTTP_PORT (8080), STARLING_STUN_PORT (3478),
 * STARLING_CHANNEL (demo), STARLING_PUBLIC_HOST (host name printed in URLs; default localhost).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const log = pino({ name: 'start' });
const trackerPort = Number(process.env.STARLING_TRACKER_PORT ?? 8000);
const httpPort = Number(process.env.STARLING_HTTP_PORT ?? 8080);
const stunPort = Number(process.env.STARLING_STUN_PORT ?? 3478);
const channel = process.env.STARLING_CHANNEL ?? 'demo';
const publicHost = process.env.STARLING_PUBLIC_HOST ?? 'localhost';
const tsx = join(root, 'node_modules', '.bin', 'tsx');

const children: { name: string; proc: ChildProcess }[] = [];
let stopping = false;

function run(name: string, args: string[]): ChildProcess {
  const proc = spawn(tsx, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  children.push({ name, proc });
  proc.on('exit', (code, signal) => {
    if (!stopping) {
      log.error({ name, code, signal }, 'a child process exited; stopping everything');
      void stop(1);
    }
  });
  return proc;
}

async function waitFor(url: string, what: string, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (stopping) return;
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what} did not come up at ${url} within ${timeoutMs / 1000} s`);
}

async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info('stopping tracker, origin and seeder');
  for (const { proc } of children) if (proc.exitCode === null) proc.kill('SIGTERM');
  const deadline = Date.now() + 8000;
  while (children.some(({ proc }) => proc.exitCode === null && proc.signalCode === null) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const { name, proc } of children) {
    if (proc.exitCode === null && proc.signalCode === null) {
      log.warn({ name }, 'did not stop in time; killing');
      proc.kill('SIGKILL');
    }
  }
  process.exit(code);
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => void stop(0));

async function main(): Promise<void> {
  if (!existsSync(join(root, 'player', 'dist', 'watch.html'))) {
    log.info('building the player pages (vite)');
    const r = spawnSync(join(root, 'node_modules', '.bin', 'vite'), ['build', '--config', 'player/vite.config.ts', '--logLevel', 'warn'], { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('vite build of the player pages failed');
  }
  const trackerUrl = `ws://127.0.0.1:${trackerPort}/ws`;
  run('tracker', ['tracker/main.ts', '--host', '0.0.0.0', '--port', String(trackerPort), '--stun-port', String(stunPort)]);
  await waitFor(`http://127.0.0.1:${trackerPort}/healthz`, 'tracker');
  run('origin', ['server/main.ts', '--host', '0.0.0.0', '--port', String(httpPort), '--channel', channel, '--tracker', trackerUrl, '--tracker-port', String(trackerPort)]);
  await waitFor(`http://127.0.0.1:${httpPort}/live/${channel}/channel.json`, 'origin');
  run('seeder', ['peer/node/seed.ts', '--tracker', trackerUrl, '--channel', channel, '--origin', `http://127.0.0.1:${httpPort}`]);
  await waitFor(`http://127.0.0.1:${httpPort}/live/${channel}/master.m3u8`, 'first segments', 60_000);
  const base = `http://${publicHost}:${httpPort}`;
  process.stdout.write(
    `\n  Starling is running.\n` +
      `  Watch:     ${base}/watch.html?channel=${channel}\n` +
      `  Dashboard: ${base}/dashboard.html\n` +
      `  Tracker:   ws://${publicHost}:${trackerPort}/ws   (metrics: http://${publicHost}:${trackerPort}/metrics)\n` +
      `  Open the watch URL in several browser tabs or machines: they share video with each other.\n` +
      `  Ctrl-C stops everything.\n\n`,
  );
}

main().catch((err) => {
  log.error({ err: String(err) }, 'start failed');
  void stop(1);
});
