/**
 * Starts the real platform pieces in the test process, inside the private network namespace:
 * the tracker (with its STUN responder), the origin (real ffmpeg, signed HLS, root peer) and,
 * optionally, Node peers. Everything listens on the namespace's own address.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { launchTracker, type LaunchedTracker, type LaunchOptions } from '../../tracker/launch.js';
import { startOrigin, type Origin } from '../../server/origin.js';
import { netnsHost } from './chromium.js';
import type { Logger } from '../../peer/core/types.js';
import type { Transport } from '../../peer/transport/transport-api.js';
import { startNodePeer, type NodePeer } from '../../peer/node/node-peer.js';
import { NodeHttpSource } from '../../peer/node/http-source.js';
import type { EngineOptions } from '../../peer/core/engine-api.js';

export interface Platform {
  tracker: LaunchedTracker;
  origin: Origin;
  trackerUrl: string;
  host: string;
  log: Logger;
  /** Starts a werift peer joined to the channel, with the origin as its HTTP fallback. */
  peer(kind: 'seeder' | 'browser', extra?: { transport?: Transport; engine?: Partial<EngineOptions>; maxNeighbors?: number; targetNeighbors?: number }): Promise<NodePeer>;
  stop(): Promise<void>;
}

export async function startPlatform(opts: {
  channel: string;
  rootPeerMaxNeighbors?: number;
  logLevel?: string;
  /** Extra tracker options (optimizer, lease timing...). */
  tracker?: Omit<Partial<LaunchOptions>, 'port' | 'host' | 'stunPort'>;
}): Promise<Platform> {
  const host = netnsHost();
  const log = pino({ level: opts.logLevel ?? process.env.STARLING_TEST_LOG ?? 'warn' });
  const workDir = mkdtempSync(join(tmpdir(), 'starling-net-'));
  const tracker = await launchTracker({ ...opts.tracker, port: 0, host, stunPort: 'any' });
  const trackerUrl = tracker.wsUrls[0];
  const origin = await startOrigin({
    channel: opts.channel,
    host,
    port: 0,
    workDir,
    trackerUrl,
    rootPeerMaxNeighbors: opts.rootPeerMaxNeighbors ?? 4,
    log: log.child({ part: 'origin' }),
  });
  const peers: NodePeer[] = [];
  return {
    tracker,
    origin,
    trackerUrl,
    host,
    log,
    async peer(kind, extra = {}) {
      const p = await startNodePeer({
        trackerUrl,
        channel: opts.channel,
        kind,
        publicKey: origin.publicKey,
        http: new NodeHttpSource({ baseUrl: origin.url, channel: opts.channel }),
        maxNeighbors: extra.maxNeighbors ?? 8,
        ...(extra.targetNeighbors !== undefined ? { targetNeighbors: extra.targetNeighbors } : {}),
        log: log.child({ part: kind }),
        transport: extra.transport,
        engine: extra.engine,
        waitForTracker: true,
      });
      peers.push(p);
      return p;
    },
    async stop() {
      await Promise.allSettled(peers.map((p) => p.stop()));
      await origin.stop();
      await tracker.close();
      rmSync(workDir, { recursive: true, force: true });
    },
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}
