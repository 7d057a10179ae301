/**
 * ffmpeg: finding a binary, building the ABR-ladder command line (HLS fMP4, GOP-aligned 2 s
 * segments, one directory per rendition) and supervising the process (restart with backoff,
 * stderr parsed into logs, no orphans).
 *
 * Orphans: ffmpeg neither quits on stdin EOF nor dies of SIGPIPE (it ignores it), so a parent
 * killed with SIGKILL would leave it running. We therefore run it under a tiny /bin/sh watchdog
 * whose stdin is a pipe from this process: when the pipe closes (our process died or stop() was
 * called) the watchdog sends ffmpeg SIGTERM. The watchdog and ffmpeg get their own process group
 * so stop() can SIGKILL both if ffmpeg ignores SIGTERM.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Logger } from '../peer/core/types.js';

export interface FfmpegBinary {
  path: string;
  /** Where it came from: STARLING_FFMPEG, the system PATH, or the npm package. */
  origin: 'env' | 'system' | 'npm';
}

export class FfmpegNotFoundError extends Error {}

/** STARLING_FFMPEG, else `ffmpeg` on PATH, else @ffmpeg-installer/ffmpeg; throws a one-line hint. */
export function findFfmpeg(env: NodeJS.ProcessEnv = process.env): FfmpegBinary {
  const fromEnv = env.STARLING_FFMPEG;
  if (fromEnv) {
    if (!runs(fromEnv)) throw new FfmpegNotFoundError(`STARLING_FFMPEG=${fromEnv} does not run (ffmpeg -version failed)`);
    return { path: fromEnv, origin: 'env' };
  }
  if (runs('ffmpeg')) return { path: 'ffmpeg', origin: 'system' };
  try {
    const require = createRequire(import.meta.url);
    const p = (require('@ffmpeg-installer/ffmpeg') as { path: string }).path;
    if (p && existsSync(p) && runs(p)) return { path: p, origin: 'npm' };
  } catch {
    // not installed
  }
  throw new FfmpegNotFoundError(
    'no ffmpeg found: install one (`apt-get install ffmpeg`, or `npm install @ffmpeg-installer/ffmpeg`) or set STARLING_FFMPEG=/path/to/ffmpeg',
  );
}

function runs(bin: string): boolean {
  try {
    const r = spawnSync(bin, ['-hide_banner', '-version'], { stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    return r.status === 0;
  } catch {
    return false;
  }
}

/** True if `file` has an audio stream (parsed from `ffmpeg -i`, so no ffprobe is needed). */
export function fileHasAudio(ffmpeg: string, file: string): boolean {
  const r = spawnSync(ffmpeg, ['-hide_banner', '-i', file], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 });
  return /Stream #\d+:\d+.*: Audio:/.test(String(r.stderr ?? ''));
}

export interface LadderRung {
  /** Rendition name as served (`/live/<channel>/<name>/...`). */
  name: string;
  width: number;
  height: number;
  /** Video bitrate, bit/s. */
  videoBitrate: number;
  /** Audio bitrate, bit/s. */
  audioBitrate: number;
}

export const DEFAULT_LADDER: LadderRung[] = [
  { name: '360p', width: 640, height: 360, videoBitrate: 800_000, audioBitrate: 64_000 },
  { name: '240p', width: 426, height: 240, videoBitrate: 400_000, audioBitrate: 64_000 },
];

/**
 * What ffmpeg reads:
 * - `testsrc`: a synthetic test pattern with a beeping tone;
 * - `file`: a local file, played at its native rate (`-re`), optionally looped;
 * - `sdp`: RTP described by an SDP file (WHIP ingest: werift forwards the browser's/OBS's RTP to
 *   UDP ports on 127.0.0.1), video VP8 or H.264, audio Opus (or none: a silent track is made);
 * - `flv`: an FLV byte stream read from a URL (RTMP ingest: the origin's RTMP server serves the
 *   publisher's tags on a loopback TCP port).
 */
export type SourceSpec =
  | { type: 'testsrc' }
  | { type: 'file'; path: string; loop: boolean }
  | { type: 'sdp'; path: string; hasAudio: boolean }
  | { type: 'flv'; url: string; hasAudio: boolean };

export interface EncodeOptions {
  ladder: LadderRung[];
  source: SourceSpec;
  /** For file sources: whether the file has audio (else a silent track is synthesised). */
  sourceHasAudio?: boolean;
  /** Directory that receives one sub-directory per rung index (`0/`, `1/`, ...). */
  outDir: string;
  /** Segment duration in seconds (GOP-aligned). Default 2. */
  segmentDuration?: number;
  fps?: number;
  /** x264 preset. Default 'veryfast'. */
  preset?: string;
  /** First segment number (seg_<n>.m4s). */
  startNumber: number;
  /** Segments ffmpeg keeps listed (and on disk) per rendition. Default 10. */
  listSize?: number;
}

/**
 * Directory of rung `index` under outDir. ffmpeg names var_stream_map variants by index (`%v`):
 * the 2018 static build of @ffmpeg-installer rejects `name:` in var_stream_map.
 */
export function rungDir(outDir: string, index: number): string {
  return join(outDir, String(index));
}

/** The full ffmpeg argument list for the ladder. Works with ffmpeg 4.x (2018 static) and 5.x+. */
export function buildFfmpegArgs(o: EncodeOptions): string[] {
  const seg = o.segmentDuration ?? 2;
  const fps = o.fps ?? 25;
  const gop = Math.round(seg * fps);
  const n = o.ladder.length;
  if (n === 0) throw new Error('empty ladder');
  const args = ['-hide_banner', '-nostats', '-loglevel', 'warning', '-nostdin'];
  let audioInput: string;
  let videoIn: string;
  const src = o.source;
  if (src.type === 'testsrc') {
    const top = o.ladder.reduce((a, b) => (b.width * b.height > a.width * a.height ? b : a));
    args.push('-re', '-f', 'lavfi', '-i', `testsrc2=size=${top.width}x${top.height}:rate=${fps}`);
    args.push('-re', '-f', 'lavfi', '-i', 'sine=frequency=440:beep_factor=4:sample_rate=48000');
    videoIn = '[0:v]';
    audioInput = '1:a:0';
  } else {
    if (src.type === 'file') {
      args.push('-re');
      if (src.loop) args.push('-stream_loop', '-1');
      args.push('-i', src.path);
    } else if (src.type === 'sdp') {
      // Live RTP: no -re (it arrives in real time); generous reorder/thread queues.
      args.push(
        '-protocol_whitelist', 'file,udp,rtp', '-fflags', '+genpts+discardcorrupt', '-thread_queue_size', '1024',
        '-reorder_queue_size', '200', '-analyzeduration', '2000000', '-probesize', '5000000', '-f', 'sdp', '-i', src.path,
      );
    } else {
      args.push('-thread_queue_size', '1024', '-analyzeduration', '2000000', '-probesize', '5000000', '-f', 'flv', '-i', src.url);
    }
    videoIn = '[0:v:0]';
    const hasAudio = src.type === 'file' ? o.sourceHasAudio !== false : src.hasAudio;
    if (!hasAudio) {
      args.push('-f', 'lavfi', '-i', 'anullsrc=channel_layout=stereo:sample_rate=48000');
      audioInput = '1:a:0';
    } else {
      audioInput = '0:a:0';
    }
  }
  // One decode, split into every rung, scaled (letterboxed for files).
  const parts: string[] = [];
  const external = o.source.type !== 'testsrc';
  const pre = external ? `fps=${fps},` : '';
  parts.push(`${videoIn}${pre}split=${n}${o.ladder.map((_, i) => `[s${i}]`).join('')}`);
  o.ladder.forEach((r, i) => {
    const scale = external
      ? `scale=${r.width}:${r.height}:force_original_aspect_ratio=decrease,pad=${r.width}:${r.height}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p`
      : `scale=${r.width}:${r.height},format=yuv420p`;
    parts.push(`[s${i}]${scale}[v${i}]`);
  });
  args.push('-filter_complex', parts.join(';'));
  for (let i = 0; i < n; i++) args.push('-map', `[v${i}]`);
  for (let i = 0; i < n; i++) args.push('-map', audioInput);
  const silent = o.source.type === 'testsrc' ? false : o.source.type === 'file' ? o.sourceHasAudio === false : !o.source.hasAudio;
  if (silent) args.push('-shortest');
  // Live ingest: keep audio continuous across packet loss and timestamp jumps.
  const audioFilter = o.source.type === 'sdp' || o.source.type === 'flv' ? ['-af', 'aresample=async=1000:first_pts=0'] : [];
  args.push(
    '-c:v', 'libx264', '-preset', o.preset ?? 'veryfast', '-tune', 'zerolatency',
    '-profile:v', 'baseline', '-level', '3.0',
    '-r', String(fps), '-g', String(gop), '-keyint_min', String(gop), '-sc_threshold', '0',
    '-force_key_frames', `expr:gte(t,n_forced*${seg})`,
  );
  o.ladder.forEach((r, i) => {
    const k = `${Math.round(r.videoBitrate / 1000)}k`;
    args.push(`-b:v:${i}`, k, `-maxrate:v:${i}`, k, `-bufsize:v:${i}`, k);
  });
  args.push(...audioFilter, '-c:a', 'aac', '-ac', '2', '-ar', '48000');
  o.ladder.forEach((r, i) => args.push(`-b:a:${i}`, `${Math.round(r.audioBitrate / 1000)}k`));
  args.push(
    '-f', 'hls',
    '-hls_time', String(seg),
    '-hls_list_size', String(o.listSize ?? 10),
    '-hls_flags', 'delete_segments+temp_file+independent_segments',
    '-hls_segment_type', 'fmp4',
    '-hls_fmp4_init_filename', 'init.mp4',
    '-start_number', String(o.startNumber),
    '-hls_segment_filename', join(o.outDir, '%v', 'seg_%d.m4s'),
    '-var_stream_map', o.ladder.map((_, i) => `v:${i},a:${i}`).join(' '),
    join(o.outDir, '%v', 'index.m3u8'),
  );
  return args;
}

/** Runs `"$@"` and SIGTERMs it when our stdin closes (parent gone) or when the shell gets a signal. */
const WATCHDOG = `
exec 3<&0
"$@" </dev/null &
p=$!
trap 'kill -TERM $p 2>/dev/null' TERM INT HUP
{ while read -r _; do :; done; kill -TERM $p 2>/dev/null; } <&3 &
w=$!
exec 3<&-
wait $p; rc=$?
while kill -0 $p 2>/dev/null; do wait $p; rc=$?; done
kill $w 2>/dev/null
exit $rc
`;

export interface FfmpegSupervisorOptions {
  binary: FfmpegBinary;
  /** Called before every (re)start: the arguments to run (e.g. with a fresh start number). */
  args: () => string[] | Promise<string[]>;
  /** Called before every (re)start, e.g. to create/clean the output directories. */
  prepare?: () => Promise<void>;
  log: Logger;
  /** Backoff between restarts: min(maxBackoffMs, minBackoffMs * 2^failuresInARow). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Called every time ffmpeg is (re)spawned; `restart` is false for the first spawn. */
  onSpawn?: (info: { pid: number | undefined; restart: boolean }) => void;
  onExit?: (info: { code: number | null; signal: NodeJS.Signals | null; stderrTail: string[] }) => void;
  /** Whether an exit (not caused by stop()) is followed by a restart. Default: always. */
  shouldRestart?: (info: { code: number | null; signal: NodeJS.Signals | null }) => boolean;
  /** Called when ffmpeg exited on its own and shouldRestart said no (e.g. a file source ended). */
  onFinished?: () => void;
  signal?: AbortSignal;
}

/** Keeps one ffmpeg running until stop(). */
export class FfmpegSupervisor {
  private proc: ChildProcess | null = null;
  private stopped = false;
  private spawns = 0;
  private failuresInARow = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private readonly tail: string[] = [];
  private exitWaiters: (() => void)[] = [];
  private readonly onAbort = () => void this.stop();
  private readonly onProcessExit = () => this.killNow();

  constructor(private readonly o: FfmpegSupervisorOptions) {}

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get restarts(): number {
    return Math.max(0, this.spawns - 1);
  }

  async start(): Promise<void> {
    if (this.o.signal?.aborted) throw new Error('aborted');
    this.o.signal?.addEventListener('abort', this.onAbort, { once: true });
    process.once('exit', this.onProcessExit);
    await this.spawnOnce();
  }

  private async spawnOnce(): Promise<void> {
    if (this.stopped) return;
    if (this.o.prepare) await this.o.prepare();
    const args = await this.o.args();
    if (this.stopped) return;
    const useShell = existsSync('/bin/sh');
    const proc = useShell
      ? spawn('/bin/sh', ['-c', WATCHDOG, 'starling-ffmpeg', this.o.binary.path, ...args], {
          stdio: ['pipe', 'ignore', 'pipe'], detached: true,
        })
      : spawn(this.o.binary.path, args, { stdio: ['pipe', 'ignore', 'pipe'], detached: true });
    this.proc = proc;
    const restart = this.spawns > 0;
    this.spawns++;
    const startedAt = Date.now();
    this.o.onSpawn?.({ pid: proc.pid, restart });
    this.o.log.info({ pid: proc.pid, binary: this.o.binary.path, restart }, 'ffmpeg started');
    proc.stdin?.on('error', () => {});
    let buf = '';
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.search(/[\r\n]/)) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) this.stderrLine(line);
      }
      if (buf.length > 8192) buf = buf.slice(-8192);
    });
    proc.on('error', (err) => this.o.log.error({ err: String(err) }, 'ffmpeg could not be spawned'));
    proc.on('close', (code, signal) => {
      if (this.proc === proc) this.proc = null;
      proc.stdin?.destroy();
      const stderrTail = this.tail.slice();
      this.o.onExit?.({ code, signal, stderrTail });
      const waiters = this.exitWaiters;
      this.exitWaiters = [];
      for (const w of waiters) w();
      if (this.stopped) return;
      if (this.o.shouldRestart && !this.o.shouldRestart({ code, signal })) {
        this.o.log.info({ code, signal }, 'ffmpeg finished');
        this.o.onFinished?.();
        return;
      }
      if (Date.now() - startedAt > 30_000) this.failuresInARow = 0;
      this.failuresInARow++;
      const delay = Math.min(this.o.maxBackoffMs ?? 15_000, (this.o.minBackoffMs ?? 500) * 2 ** (this.failuresInARow - 1));
      this.o.log.error({ code, signal, stderrTail: stderrTail.slice(-5), restartInMs: delay }, 'ffmpeg exited unexpectedly; restarting');
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        this.spawnOnce().catch((err) => this.o.log.error({ err: String(err) }, 'ffmpeg restart failed'));
      }, delay);
    });
  }

  private logWindowStart = 0;
  private logLines = 0;
  private logSuppressed = 0;

  private stderrLine(line: string): void {
    this.tail.push(line);
    if (this.tail.length > 20) this.tail.shift();
    // Decoder complaints while a live ingest waits for its first keyframe (or after packet loss):
    // expected, and ffmpeg recovers at the next keyframe.
    if (/non-existing PPS|decode_slice_header error|no frame!|Last message repeated|concealing \d+|error while decoding MB|missing picture in access unit|Discarding interframe without a prior keyframe/.test(line)) {
      this.o.log.debug({ ffmpeg: line }, 'ffmpeg: decoder waiting for a keyframe');
      return;
    }
    // A broken input (e.g. an ingest before its first keyframe) can print hundreds of lines a
    // second: log at most 20 per 10 s, and how many were left out.
    const now = Date.now();
    if (now - this.logWindowStart > 10_000) {
      if (this.logSuppressed > 0) this.o.log.warn({ suppressed: this.logSuppressed }, 'ffmpeg: messages left out of the log');
      this.logWindowStart = now;
      this.logLines = 0;
      this.logSuppressed = 0;
    }
    if (++this.logLines > 20) {
      this.logSuppressed++;
      return;
    }
    // The watchdog shell reports how ffmpeg ended; stop() and the supervisor log that already.
    if (/^(Killed|Terminated|Hangup)$/.test(line)) {
      this.o.log.debug({ ffmpeg: line }, 'ffmpeg ended by a signal');
      return;
    }
    // Old hlsenc (the 2018 static build) refuses temp_file with var_stream_map. Harmless: ffmpeg
    // lists a segment only once it is complete, and the watcher reads only listed segments.
    if (/Cannot use rename on non file protocol/.test(line)) {
      this.o.log.debug({ ffmpeg: line }, 'ffmpeg: temp_file unsupported here (harmless)');
      return;
    }
    // -loglevel warning: everything printed is a warning or an error.
    if (/error|invalid|failed|could not|cannot|unable|no such/i.test(line)) this.o.log.error({ ffmpeg: line }, 'ffmpeg error');
    else this.o.log.warn({ ffmpeg: line }, 'ffmpeg warning');
  }

  private killNow(): void {
    const p = this.proc;
    if (!p || p.pid === undefined) return;
    try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ }
  }

  /** SIGTERM (graceful), SIGKILL after `graceMs`; resolves once the process group is gone. */
  async stop(graceMs = 3000): Promise<void> {
    this.stopped = true;
    this.o.signal?.removeEventListener('abort', this.onAbort);
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null && p.pid !== undefined) {
      const exited = new Promise<void>((r) => this.exitWaiters.push(r));
      try { process.kill(-p.pid, 'SIGTERM'); } catch { /* gone */ }
      p.stdin?.destroy();
      const t = setTimeout(() => this.killNow(), graceMs);
      await exited;
      clearTimeout(t);
      // Anything left in the group (should be nothing) goes too.
      try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ }
    }
    process.removeListener('exit', this.onProcessExit);
  }
}

/** Creates outDir/<i>/ for every rung and removes files a previous run left there. */
export async function prepareOutputDirs(outDir: string, rungs: number): Promise<void> {
  for (let i = 0; i < rungs; i++) {
    const d = rungDir(outDir, i);
    await mkdir(d, { recursive: true });
    for (const f of await readdir(d)) await rm(join(d, f), { force: true, recursive: true });
  }
}
