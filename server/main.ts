/**
 * The origin process.
 *
 *   tsx server/main.ts --port 8080 --channel demo --tracker ws://127.0.0.1:8000/ws
 *       (several trackers: repeat --tracker or separate the URLs with commas)
 *       [--host 0.0.0.0] [--tracker-port 8000] [--public-tracker URL]
 *       [--source testsrc|file] [--file F] [--loop] [--no-peer]
 *       [--root-neighbors 4] [--work-dir .starling] [--preset veryfast]
 *       [--source ingest] [--channels channels.json] [--rtmp-port 1935] [--ingest-grace 15]
 *
 * Broadcasting (docs/broadcast.md): STARLING_STREAM_KEY lets the default channel take WHIP/RTMP
 * publishes; --channels FILE creates more channels ([{channel, streamKey | streamKeyEnv,
 * renditions, source: "ingest" | "testsrc" | {file, loop}}]); STARLING_ADMIN_TOKEN enables
 * POST/DELETE /api/channels. Secrets only through the environment or the file, never flags.
 *
 * Every flag has an environment equivalent (flags win): STARLING_HOST, STARLING_HTTP_PORT
 * (or STARLING_PORT), STARLING_CHANNEL, STARLING_TRACKER_URL, STARLING_TRACKER_PORT,
 * STARLING_PUBLIC_TRACKER_URL, STARLING_SOURCE, STARLING_FILE, STARLING_LOOP=1,
 * STARLING_NO_PEER=1, STARLING_ROOT_NEIGHBORS, STARLING_WORK_DIR, STARLING_PRESET; plus
 * STARLING_FFMPEG (ffmpeg binary), STARLING_ORIGIN_KEY (64 hex digits: the channel's Ed25519
 * seed), STARLING_PUBLISH_KEY (what the tracker wants from an origin peer), LOG_LEVEL.
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { FfmpegNotFoundError, type SourceSpec } from './ffmpeg.js';
import { readFile } from 'node:fs/promises';
import { startOrigin, type ChannelConfig } from './origin.js';

const env = process.env;
const truthy = (v: string | undefined) => v !== undefined && /^(1|true|yes|on)$/i.test(v);

const { values } = parseArgs({
  options: {
    host: { type: 'string' },
    port: { type: 'string' },
    channel: { type: 'string' },
    tracker: { type: 'string', multiple: true },
    'tracker-port': { type: 'string' },
    'public-tracker': { type: 'string' },
    source: { type: 'string' },
    file: { type: 'string' },
    loop: { type: 'boolean' },
    'no-peer': { type: 'boolean' },
    'root-neighbors': { type: 'string' },
    'work-dir': { type: 'string' },
    preset: { type: 'string' },
    channels: { type: 'string' },
    'rtmp-port': { type: 'string' },
    'ingest-grace': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
    'print-config': { type: 'boolean' },
  },
  strict: true,
});

if (values.help) {
  process.stdout.write(
    'usage: tsx server/main.ts [--port 8080] [--channel demo] [--tracker ws://127.0.0.1:8000/ws] [--tracker-port 8000]\n' +
      '                          [--host 0.0.0.0] [--public-tracker URL] [--source testsrc|file] [--file F] [--loop]\n' +
      '                          [--no-peer] [--root-neighbors 4] [--work-dir .starling] [--preset veryfast]\n' +
      '                          [--source ingest] [--channels channels.json] [--rtmp-port 1935] [--ingest-grace 15]\n' +
      '  env: STARLING_STREAM_KEY (default channel\'s publish key), STARLING_ADMIN_TOKEN (channel API)\n',
  );
  process.exit(0);
}

const log = pino({ name: 'origin', level: env.LOG_LEVEL ?? 'info' });

function int(v: string | undefined, name: string): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    log.fatal({ [name]: v }, `${name} must be a non-negative integer`);
    process.exit(2);
  }
  return n;
}

async function main(): Promise<void> {
  const sourceType = values.source ?? env.STARLING_SOURCE ?? 'testsrc';
  let source: SourceSpec | null;
  if (sourceType === 'testsrc') source = { type: 'testsrc' };
  else if (sourceType === 'ingest') source = null;
  else if (sourceType === 'file') {
    const file = values.file ?? env.STARLING_FILE;
    if (!file) throw new Error('--source file needs --file PATH');
    source = { type: 'file', path: file, loop: values.loop ?? truthy(env.STARLING_LOOP) };
  } else throw new Error(`unknown --source ${sourceType} (testsrc, file or ingest)`);
  const channelsFile = values.channels ?? env.STARLING_CHANNELS_FILE;
  const channels = channelsFile ? await loadChannelsFile(channelsFile) : [];
  const rtmpPort = int(values['rtmp-port'] ?? env.STARLING_RTMP_PORT, 'rtmp-port');
  const graceSec = int(values['ingest-grace'] ?? env.STARLING_INGEST_GRACE, 'ingest-grace');

  const noPeer = values['no-peer'] ?? truthy(env.STARLING_NO_PEER);
  // Several trackers: one comma-separated string (the root peer's signaling client rotates through it).
  const trackerUrls = (values.tracker?.join(',') ?? env.STARLING_TRACKER_URL ?? '').split(',').map((u) => u.trim()).filter(Boolean);
  for (const u of trackerUrls) if (!/^wss?:\/\/\S+$/.test(u)) throw new Error(`invalid --tracker URL: ${u}`);
  const trackerUrl = trackerUrls.length > 0 ? trackerUrls.join(',') : undefined;
  const options = {
    host: values.host ?? env.STARLING_HOST ?? '0.0.0.0',
    port: int(values.port ?? env.STARLING_HTTP_PORT ?? env.STARLING_PORT, 'port') ?? 8080,
    channel: values.channel ?? env.STARLING_CHANNEL ?? 'demo',
    trackerUrl: noPeer ? undefined : trackerUrl,
    trackerPort: int(values['tracker-port'] ?? env.STARLING_TRACKER_PORT, 'tracker-port'),
    publicTrackerUrl: values['public-tracker'] ?? env.STARLING_PUBLIC_TRACKER_URL,
    publishKey: env.STARLING_PUBLISH_KEY,
    rootPeerMaxNeighbors: int(values['root-neighbors'] ?? env.STARLING_ROOT_NEIGHBORS, 'root-neighbors'),
    workDir: values['work-dir'] ?? env.STARLING_WORK_DIR,
    preset: values.preset ?? env.STARLING_PRESET,
    originKeyHex: env.STARLING_ORIGIN_KEY,
    source,
    streamKey: env.STARLING_STREAM_KEY || undefined,
    adminToken: env.STARLING_ADMIN_TOKEN || undefined,
    channels,
    rtmpPort: rtmpPort ?? null,
    ingestGraceMs: graceSec === undefined ? undefined : graceSec * 1000,
    log,
  };
  if (values['print-config']) {
    // Resolved settings as JSON (no secrets), for deployment checks; starts nothing.
    const trackerPort = options.trackerPort ?? (trackerUrls.length > 0 ? Number(new URL(trackerUrls[0]).port || 80) : 8000);
    const { host, port, channel } = options;
    process.stdout.write(`${JSON.stringify({
      host, port, channel, trackerUrl: options.trackerUrl ?? null, trackerUrls, trackerPort, source: sourceType,
      channels: channels.map((c) => c.channel), rtmpPort: options.rtmpPort, publishable: Boolean(options.streamKey), channelApi: Boolean(options.adminToken),
    })}\n`);
    return;
  }
  const origin = await startOrigin(options);
  if (!noPeer && !trackerUrl) log.warn('no --tracker given: serving over HTTP only (no root peer)');

  let lastBytes = 0;
  let lastSegs = 0;
  const progress = setInterval(() => {
    const s = origin.stats();
    log.info({
      segmentsPublished: s.segmentsPublished,
      segmentsLast10s: s.segmentsPublished - lastSegs,
      httpBytesOut: s.httpBytesOut,
      httpKbitPerSecLast10s: Math.round(((s.httpBytesOut - lastBytes) * 8) / 10 / 1000),
      lastSegmentAgeMs: s.lastSegmentAgeMs,
      ffmpegRestarts: s.ffmpegRestarts,
      rootPeer: s.rootPeer,
      newestSeq: s.newestSeq,
    }, 'progress');
    lastBytes = s.httpBytesOut;
    lastSegs = s.segmentsPublished;
  }, 10_000);
  progress.unref();

  let shuttingDown = false;
  const shutdown = (sig: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ signal: sig }, 'shutting down');
    clearInterval(progress);
    const force = setTimeout(() => {
      log.error('shutdown took too long; exiting');
      process.exit(1);
    }, 10_000);
    force.unref();
    origin.stop().then(() => process.exit(0), (err) => {
      log.error({ err: String(err) }, 'shutdown failed');
      process.exit(1);
    });
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => shutdown(sig));
}

/** channels.json: [{channel, streamKey? | streamKeyEnv?, renditions?, source?: 'ingest'|'testsrc'|{file, loop}, record?}] */
async function loadChannelsFile(path: string): Promise<ChannelConfig[]> {
  const raw = JSON.parse(await readFile(path, 'utf8')) as unknown;
  if (!Array.isArray(raw)) throw new Error(`${path}: expected a JSON array of channels`);
  return raw.map((c: Record<string, unknown>, i) => {
    if (!c || typeof c !== 'object' || typeof c.channel !== 'string') throw new Error(`${path}[${i}]: "channel" (string) required`);
    let streamKey = typeof c.streamKey === 'string' ? c.streamKey : undefined;
    if (typeof c.streamKeyEnv === 'string') streamKey = env[c.streamKeyEnv] || undefined;
    let src: SourceSpec | null = null;
    if (c.source === 'testsrc') src = { type: 'testsrc' };
    else if (c.source && typeof c.source === 'object' && typeof (c.source as { file?: unknown }).file === 'string') {
      const f = c.source as { file: string; loop?: boolean };
      src = { type: 'file', path: f.file, loop: f.loop === true };
    } else if (c.source !== undefined && c.source !== 'ingest') throw new Error(`${path}[${i}]: source must be "ingest", "testsrc" or {"file": PATH, "loop": bool}`);
    return {
      channel: c.channel,
      streamKey,
      renditions: Array.isArray(c.renditions) ? (c.renditions as string[]) : undefined,
      source: src,
      record: typeof c.record === 'boolean' ? c.record : undefined,
    };
  });
}

main().catch((err) => {
  if (err instanceof FfmpegNotFoundError) log.fatal(err.message);
  else log.fatal({ err: err instanceof Error ? err.stack ?? err.message : String(err) }, 'origin failed to start');
  process.exit(1);
});
