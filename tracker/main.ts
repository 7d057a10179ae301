/**
 * Tracker CLI.
 *   tsx tracker/main.ts --port 8000 --host 0.0.0.0 [--stun-port 3478] [--publish-key KEY]
 *     [--public-host HOST] [--turn-urls URL[,URL]] [--turn-secret SECRET] [--log-level info]
 *     [--admin-token TOKEN] [--redis redis://HOST:6379] [--redis-prefix starling:] [--tracker-id ID]
 *     [--no-optimizer] [--optimizer-period-ms 1000] [--relays]
 * Every flag has an environment variable: STARLING_TRACKER_PORT, STARLING_TRACKER_HOST,
 * STARLING_TRACKER_STUN_PORT, STARLING_TRACKER_PUBLISH_KEY (or STARLING_PUBLISH_KEY),
 * STARLING_TRACKER_PUBLIC_HOST, STARLING_TRACKER_TURN_URLS, STARLING_TRACKER_TURN_SECRET,
 * STARLING_TRACKER_LOG_LEVEL, STARLING_TRACKER_ADMIN_TOKEN (or STARLING_ADMIN_TOKEN),
 * STARLING_TRACKER_REDIS_URL, STARLING_TRACKER_REDIS_PREFIX, STARLING_TRACKER_ID,
 * STARLING_TRACKER_OPTIMIZER (on|off), STARLING_TRACKER_OPTIMIZER_PERIOD_MS, STARLING_TRACKER_RELAYS (on|off).
 * With --redis, several trackers share channels (docs/operations.md, "Several trackers"). Flags win over the environment. Prefer the environment for
 * secrets (command lines are visible to every user of the machine).
 */
import { parseArgs } from 'node:util';
import { launchTracker } from './launch.js';
import { OPTIMIZER_DEFAULTS } from './plugins/optimizer.js';

const USAGE = `usage: tsx tracker/main.ts [--port 8000] [--host 0.0.0.0] [--stun-port 3478 (0: off)]
       [--publish-key KEY] [--public-host HOST] [--turn-urls URL[,URL]] [--turn-secret SECRET]
       [--log-level info] [--admin-token TOKEN (dashboard / stats API)]
       [--redis redis://HOST:6379 (share channels with other trackers)] [--redis-prefix starling:]
       [--tracker-id ID (default: random)]
       [--no-optimizer (peers choose parents locally)] [--optimizer-period-ms 1000]
       [--relays (the optimizer asks viewers with spare upload to relay short renditions)]`;

function fail(msg: string): never {
  process.stderr.write(`${msg}\n${USAGE}\n`);
  process.exit(2);
}

/** The URL without its password (for logs and --print-config). */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.href;
  } catch {
    return 'redis://?';
  }
}

function portArg(name: string, value: string | undefined, dflt: number): number {
  if (value === undefined || value === '') return dflt;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) fail(`invalid ${name}: ${value}`);
  return n;
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        'stun-port': { type: 'string' },
        'publish-key': { type: 'string' },
        'public-host': { type: 'string' },
        'turn-urls': { type: 'string' },
        'turn-secret': { type: 'string' },
        'log-level': { type: 'string' },
        'admin-token': { type: 'string' },
        redis: { type: 'string' },
        'redis-prefix': { type: 'string' },
        'tracker-id': { type: 'string' },
        'no-optimizer': { type: 'boolean' },
        relays: { type: 'boolean' },
        'optimizer-period-ms': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        'print-config': { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const env = process.env;
  const port = portArg('--port', values.port ?? env.STARLING_TRACKER_PORT, 8000);
  const host = values.host ?? env.STARLING_TRACKER_HOST ?? '0.0.0.0';
  const stunPort = portArg('--stun-port', values['stun-port'] ?? env.STARLING_TRACKER_STUN_PORT, 3478);
  const publishKey = values['publish-key'] ?? env.STARLING_TRACKER_PUBLISH_KEY ?? env.STARLING_PUBLISH_KEY;
  const publicHost = values['public-host'] ?? env.STARLING_TRACKER_PUBLIC_HOST;
  const turnUrls = values['turn-urls'] ?? env.STARLING_TRACKER_TURN_URLS;
  const turnSecret = values['turn-secret'] ?? env.STARLING_TRACKER_TURN_SECRET;
  const adminToken = values['admin-token'] ?? env.STARLING_TRACKER_ADMIN_TOKEN ?? env.STARLING_ADMIN_TOKEN;
  const level = values['log-level'] ?? env.STARLING_TRACKER_LOG_LEVEL ?? 'info';
  if (Boolean(turnUrls) !== Boolean(turnSecret)) fail('--turn-urls and --turn-secret go together');
  const redisUrl = values.redis ?? env.STARLING_TRACKER_REDIS_URL;
  const redisPrefix = values['redis-prefix'] ?? env.STARLING_TRACKER_REDIS_PREFIX ?? 'starling:';
  const trackerId = values['tracker-id'] ?? env.STARLING_TRACKER_ID;
  if (redisUrl && !/^rediss?:\/\/[^\s]+$/.test(redisUrl)) fail(`invalid --redis URL: ${redisUrl}`);
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(redisPrefix)) fail(`invalid --redis-prefix: ${redisPrefix}`);
  if (trackerId !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(trackerId)) fail(`invalid --tracker-id: ${trackerId}`);
  const optimizerEnv = env.STARLING_TRACKER_OPTIMIZER;
  if (optimizerEnv !== undefined && optimizerEnv !== '' && !['on', 'off'].includes(optimizerEnv)) fail(`invalid STARLING_TRACKER_OPTIMIZER: ${optimizerEnv} (on|off)`);
  const optimizerEnabled = !values['no-optimizer'] && optimizerEnv !== 'off';
  const relaysEnv = env.STARLING_TRACKER_RELAYS;
  if (relaysEnv !== undefined && relaysEnv !== '' && !['on', 'off'].includes(relaysEnv)) fail(`invalid STARLING_TRACKER_RELAYS: ${relaysEnv} (on|off)`);
  const relays = Boolean(values.relays) || relaysEnv === 'on';
  const periodArg = values['optimizer-period-ms'] ?? env.STARLING_TRACKER_OPTIMIZER_PERIOD_MS;
  const optimizerPeriodMs = periodArg === undefined || periodArg === '' ? OPTIMIZER_DEFAULTS.periodMs : Number(periodArg);
  if (!Number.isInteger(optimizerPeriodMs) || optimizerPeriodMs < 100 || optimizerPeriodMs > 3_600_000) fail(`invalid --optimizer-period-ms: ${periodArg} (100..3600000)`);
  if (values['print-config']) {
    // Resolved settings as JSON (secrets left out), for deployment checks; starts nothing.
    process.stdout.write(`${JSON.stringify({ port, host, stunPort, publicHost: publicHost || null, turn: Boolean(turnUrls), publishKey: Boolean(publishKey), adminToken: Boolean(adminToken), redis: redisUrl ? redactUrl(redisUrl) : null, redisPrefix, trackerId: trackerId ?? null, optimizer: { enabled: optimizerEnabled, periodMs: optimizerPeriodMs, relays } })}\n`);
    return;
  }

  const tracker = await launchTracker({
    port,
    host,
    stunPort,
    publishKey: publishKey || undefined,
    publicHost: publicHost || undefined,
    turn: turnUrls && turnSecret ? { urls: turnUrls.split(',').map((u) => u.trim()).filter(Boolean), secret: turnSecret } : undefined,
    logger: { level },
    defaultMetrics: true,
    adminToken: adminToken || undefined,
    trackerId: trackerId || undefined,
    redis: redisUrl ? { url: redisUrl, prefix: redisPrefix } : undefined,
    optimizer: { enabled: optimizerEnabled, periodMs: optimizerPeriodMs, relays },
  });
  const log = tracker.app.log;
  log.info({ ws: tracker.wsUrls, http: tracker.httpUrls }, `tracker signaling at ${tracker.wsUrls.join(' ')}`);
  const st = tracker.app.tracker.store;
  log.info({ trackerId: st.trackerId, store: st.health() }, redisUrl ? `sharing channels through redis ${redactUrl(redisUrl)} as ${st.trackerId}` : 'state in memory (one tracker)');
  if (tracker.stun) log.info({ address: tracker.stun.address, port: tracker.stun.port }, `STUN responder on udp ${tracker.stun.address}:${tracker.stun.port}`);
  else log.warn('STUN responder disabled: welcomes carry no STUN server (peers without ICE servers may try public STUN)');
  if (!publishKey) log.warn('no publish key: anyone may join as origin');
  if (!adminToken) log.warn('no admin token: the stats API and the dashboard feed are open to anyone who reaches the tracker');

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal, exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      log.error('shutdown took too long, exiting');
      process.exit(1);
    }, 5000);
    force.unref();
    tracker.close().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err) => {
  process.stderr.write(`tracker failed to start: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
