/**
 * `npm run broadcast -- --file movie.mp4 --channel demo [--loop]`: plays a local file as a live
 * channel by publishing it to a running origin, like an encoder would.
 *
 *   --file F            the file (any format ffmpeg reads; re-encoded at real time)
 *   --channel NAME      the channel (default demo)
 *   --loop              start over at the end (else the broadcast ends with the file: VoD remains)
 *   --origin URL        the origin (default http://127.0.0.1:8080)
 *   --protocol whip|rtmp  WHIP through werift (default) or an RTMP push by ffmpeg
 *   --rtmp URL          RTMP base (default rtmp://<origin host>:1935/live)
 *   --standalone        no origin running: start one here with the file as the channel's source
 *                       (HTTP on --port, default 8080; add --tracker ws://… for P2P)
 *
 * The channel's stream key comes from STARLING_STREAM_KEY (never from the command line, which
 * other users can read). Ctrl-C ends the broadcast (WHIP DELETE / RTMP unpublish).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { isValidName } from '../peer/core/paths.js';
import { findFfmpeg } from './ffmpeg.js';
import { startOrigin } from './origin.js';
import { publishWhip, WhipError } from './whip-client.js';

const { values } = parseArgs({
  options: {
    file: { type: 'string' },
    channel: { type: 'string', default: 'demo' },
    loop: { type: 'boolean', default: false },
    origin: { type: 'string', default: 'http://127.0.0.1:8080' },
    protocol: { type: 'string', default: 'whip' },
    rtmp: { type: 'string' },
    standalone: { type: 'boolean', default: false },
    port: { type: 'string', default: '8080' },
    tracker: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});

const log = pino({ name: 'broadcast', level: process.env.LOG_LEVEL ?? 'info' });

function usage(code: number): never {
  process.stdout.write('usage: npm run broadcast -- --file movie.mp4 [--channel demo] [--loop] [--origin http://127.0.0.1:8080]\n' +
    '                             [--protocol whip|rtmp] [--rtmp rtmp://host:1935/live] [--standalone [--port 8080] [--tracker ws://…]]\n' +
    '  env: STARLING_STREAM_KEY = the channel\'s stream key\n');
  process.exit(code);
}

async function main(): Promise<void> {
  if (values.help) usage(0);
  const file = values.file;
  const channel = values.channel!;
  if (!file) usage(2);
  if (!existsSync(file)) throw new Error(`no such file: ${file}`);
  if (!isValidName(channel)) throw new Error(`invalid channel name ${JSON.stringify(channel)}`);
  let stopping = false;
  const onSignal = (fn: () => Promise<void>) => {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.on(sig, () => {
        if (stopping) process.exit(1);
        stopping = true;
        log.info('ending the broadcast');
        void fn().finally(() => process.exit(0));
      });
    }
  };

  if (values.standalone) {
    const origin = await startOrigin({
      channel, port: Number(values.port), trackerUrl: values.tracker, source: { type: 'file', path: file, loop: values.loop! }, record: true, log,
    });
    process.stdout.write(`\n  Broadcasting ${file} as "${channel}"\n  Watch: ${origin.url}/watch.html?channel=${channel}\n\n`);
    onSignal(() => origin.stop());
    return;
  }

  const key = process.env.STARLING_STREAM_KEY;
  if (!key) throw new Error('set STARLING_STREAM_KEY to the channel\'s stream key (the origin was started with it, or the channel API returned it)');
  const originUrl = new URL(values.origin!);
  const watch = `${originUrl.origin}/watch.html?channel=${channel}`;

  if (values.protocol === 'rtmp') {
    const base = values.rtmp ?? `rtmp://${originUrl.hostname}:1935/live`;
    const ff = findFfmpeg();
    const args = ['-hide_banner', '-loglevel', 'error', '-nostdin', '-re', ...(values.loop ? ['-stream_loop', '-1'] : []), '-i', file,
      '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-g', '50', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '128k', '-ar', '48000',
      '-f', 'flv', `${base}/${channel}?key=${encodeURIComponent(key)}`];
    const p = spawn(ff.path, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    process.stdout.write(`\n  Broadcasting ${file} to "${channel}" over RTMP\n  Watch: ${watch}\n\n`);
    onSignal(async () => { p.kill('SIGINT'); await new Promise((r) => p.once('exit', r)); });
    const code = await new Promise<number | null>((r) => p.once('exit', r));
    if (code !== 0 && !stopping) throw new Error(`ffmpeg exited with ${code} (wrong key or channel? see the origin's log)`);
    log.info('the file ended; the broadcast is over (it stays available as a recording)');
    return;
  }
  if (values.protocol !== 'whip') usage(2);

  let ended: () => void = () => {};
  const fileEnded = new Promise<void>((r) => { ended = r; });
  const pub = await publishWhip({
    url: `${originUrl.origin}/whip/${channel}`, token: key, source: { type: 'file', path: file, loop: values.loop }, log, onSourceEnded: () => ended(),
  }).catch((err) => {
    if (err instanceof WhipError) throw new Error(`the origin refused the broadcast: ${err.message}`);
    throw err;
  });
  process.stdout.write(`\n  Broadcasting ${file} to "${channel}" over WHIP\n  Watch: ${watch}\n  Ctrl-C ends the broadcast.\n\n`);
  onSignal(() => pub.stop());
  await fileEnded;
  // Let the last packets through before ending.
  await new Promise((r) => setTimeout(r, 1500));
  await pub.stop();
  log.info('the file ended; the broadcast is over (it stays available as a recording)');
}

main().then(() => {
  // werift may keep handles (timers, sockets) alive after close: a finished broadcast exits.
  if (!values.standalone) process.exit(0);
}, (err) => {
  log.fatal(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
