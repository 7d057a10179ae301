/**
 * The seeding peer CLI:
 *   npm run seed -- --tracker ws://HOST:PORT/ws --channel demo [--origin http://HOST:8080] [--max-neighbors 30]
 * Several trackers (sharing channels through Redis): repeat --tracker or separate URLs with
 * commas; the peer moves to the next one when its tracker fails.
 * Fetches the channel's ChannelInfo (public key) from the origin, then runs a seeder Engine
 * (interest 'all') behind a werift PeerHost. Logs progress every 10 s; exits on SIGINT/SIGTERM.
 */
import { parseArgs } from 'node:util';
import pino from 'pino';
import { channelInfoPath, isValidName, type ChannelInfo } from '../core/paths.js';
import { hexToBytes } from '../core/crypto.js';
import type { Logger } from '../core/types.js';
import { NodeHttpSource } from './http-source.js';
import { startNodePeer, type NodePeer } from './node-peer.js';
import { trackerUrlList } from '../host/signaling-client.js';

const USAGE = 'usage: npm run seed -- --tracker ws://HOST:PORT/ws [--tracker ws://HOST2:PORT/ws ...] --channel NAME [--origin http://HOST:8080] [--max-neighbors 30] [--log-level info]';

/** http://<tracker host>:8080 */
export function defaultOriginUrl(trackerUrl: string): string {
  const u = new URL(trackerUrl);
  const proto = u.protocol === 'wss:' ? 'https:' : 'http:';
  return `${proto}//${u.hostname.includes(':') ? `[${u.hostname}]` : u.hostname}:8080`;
}

export async function fetchChannelInfo(origin: string, channel: string, timeoutMs = 5000): Promise<ChannelInfo & { key: Uint8Array }> {
  const url = new URL(channelInfoPath(channel), origin).href;
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (res.status !== 200) throw new Error(`${url}: HTTP ${res.status}`);
  const info = (await res.json()) as ChannelInfo;
  if (!info || typeof info.publicKey !== 'string' || !/^[0-9a-f]{64}$/i.test(info.publicKey)) throw new Error(`${url}: no valid publicKey`);
  return { ...info, key: hexToBytes(info.publicKey) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      tracker: { type: 'string', multiple: true },
      channel: { type: 'string' },
      origin: { type: 'string' },
      'max-neighbors': { type: 'string', default: '30' },
      'log-level': { type: 'string', default: 'info' },
      help: { type: 'boolean', short: 'h' },
      'print-config': { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help || !values.tracker?.length || !values.channel) {
    console.error(USAGE);
    process.exit(values.help ? 0 : 2);
  }
  let trackerUrls: string[];
  try {
    trackerUrls = trackerUrlList(values.tracker.join(','));
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  // One string, comma-separated: what the signaling client takes (and rotates through).
  const trackerUrl = trackerUrls.join(',');
  const channel = values.channel;
  const maxNeighbors = Number(values['max-neighbors']);
  if ( !isValidName(channel) || !Number.isInteger(maxNeighbors) || maxNeighbors < 1) {
    console.error(USAGE);
    process.exit(2);
  }
  const origin = values.origin ?? defaultOriginUrl(trackerUrls[0]);
  if (values['print-config']) {
    // Resolved settings as JSON, for deployment checks; starts nothing.
    process.stdout.write(`${JSON.stringify({ trackerUrl, trackerUrls, channel, originUrl: origin, maxNeighbors })}\n`);
    return;
  }
  const log = pino({ name: 'seed', level: values['log-level'] });
  const logger = log as unknown as Logger;

  let stopping = false;
  let peer: NodePeer | null = null;
  let progress: ReturnType<typeof setInterval> | null = null;
  let retry: ReturnType<typeof setTimeout> | null = null;
  const shutdown = async (sig: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ sig }, 'stopping');
    if (progress) clearInterval(progress);
    if (retry) clearTimeout(retry);
    const hard = setTimeout(() => process.exit(1), 5000);
    hard.unref();
    try {
      await peer?.stop();
    } catch (err) {
      log.error({ err: String(err) }, 'stop failed');
    }
    // werift closes its sockets asynchronously; give it a moment, then leave.
    setTimeout(() => process.exit(0), 300).unref();
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  // The origin may come up after us: retry the channel info with back-off.
  let info: (ChannelInfo & { key: Uint8Array }) | null = null;
  for (let delay = 1000; !info && !stopping; delay = Math.min(delay * 2, 30_000)) {
    try {
      info = await fetchChannelInfo(origin, channel);
    } catch (err) {
      log.warn({ origin, err: String(err), retryMs: delay }, 'channel info unavailable; retrying');
      await new Promise<void>((r) => (retry = setTimeout(r, delay)));
    }
  }
  if (!info || stopping) return;
  log.info({ channel, origin, renditions: info.renditions?.map((r) => r.name) }, 'channel info loaded');

  peer = await startNodePeer({
    trackerUrl,
    channel,
    kind: 'seeder',
    publicKey: info.key,
    http: new NodeHttpSource({ baseUrl: origin, channel }),
    maxNeighbors,
    log: logger,
  });
  log.info({ peerId: peer.peerId, trackerUrl }, 'seeder started');
  peer.ready.then(() => log.info({}, 'tracker joined'), () => undefined);

  let last = { up: 0, down: 0, t: performance.now() };
  progress = setInterval(() => {
    if (!peer) return;
    const s = peer.engine.stats();
    const h = peer.host.stats();
    const down = s.bytesFromPeers + s.bytesFromOriginPeer + s.bytesFromHttp;
    const now = performance.now();
    const secs = Math.max(0.001, (now - last.t) / 1000);
    log.info(
      {
        neighbors: s.peers,
        links: h.links,
        connecting: h.connecting,
        tracker: h.trackerConnected,
        upMBps: +((s.bytesUploaded - last.up) / secs / 1e6).toFixed(3),
        downMBps: +((down - last.down) / secs / 1e6).toFixed(3),
        uploadedMB: +(s.bytesUploaded / 1e6).toFixed(1),
        downloadedMB: +(down / 1e6).toFixed(1),
        fromHttpMB: +(s.bytesFromHttp / 1e6).toFixed(1),
        segments: s.segmentsStored,
        badPieces: s.badPieces,
      },
      'progress',
    );
    last = { up: s.bytesUploaded, down, t: now };
  }, 10_000);
}

const isMain = import.meta.url === new URL(process.argv[1] ?? '', 'file://').href || /seed\.[tj]s$/.test(process.argv[1] ?? '');
if (isMain) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
