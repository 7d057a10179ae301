/**
 * Starts one Node peer (seeder, the origin's root peer, test peers): an Engine from
 * peer/core/engine.ts, a werift Transport, and a PeerHost on the `ws` WebSocket.
 */
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { Engine } from '../core/engine.js';
import type { EngineOptions } from '../core/engine-api.js';
import type { HttpSource, Logger, PeerKind } from '../core/types.js';
import { silentLogger } from '../core/types.js';
import type { WebSocketCtor } from '../host/host-api.js';
import { PeerHost, type PeerHostExtraOptions } from '../host/peer-host.js';
import type { Transport } from '../transport/transport-api.js';
import { createWeriftTransport } from '../transport/werift-transport.js';
import { nodeCrypto } from './node-crypto.js';

export interface NodePeerOptions {
  /** ws://HOST:PORT/ws */
  trackerUrl: string;
  channel: string;
  kind: PeerKind;
  /** The channel's raw 32-byte Ed25519 public key. */
  publicKey: Uint8Array;
  /** HTTP fallback (seeders: the origin; the origin itself: none). */
  http?: HttpSource;
  /** Publishing as 'origin' needs the channel's publish key. */
  publishKey?: string;
  maxNeighbors: number;
  log: Logger;
  /** Default: 16 random bytes, base64url. */
  peerId?: string;
  /** Connections this peer initiates (default: 0 for the origin, which is connected to, else min(6, maxNeighbors)). */
  targetNeighbors?: number;
  /** Default: werift with the given log. */
  transport?: Transport;
  tickMs?: number;
  reportMs?: number;
  /** Extra Engine options (windowSegments, requestTimeoutMs, ...). */
  engine?: Partial<Omit<EngineOptions, 'peerId' | 'kind' | 'channel' | 'publicKey' | 'clock' | 'random' | 'crypto' | 'log' | 'http'>>;
  /** Extra host knobs (timers, back-off). */
  hostExtra?: PeerHostExtraOptions;
  /** Resolve only after the tracker's first welcome. Default false (the host keeps trying in the background). */
  waitForTracker?: boolean;
}

export interface NodePeer {
  readonly peerId: string;
  readonly engine: Engine;
  readonly host: PeerHost;
  /** Resolves at the first tracker welcome (rejects only if stopped before). */
  readonly ready: Promise<void>;
  /** engine.close() (BYE to every neighbor), then host.stop() (tracker leave, connections closed). */
  stop(): Promise<void>;
}

export function randomPeerId(): string {
  return randomBytes(16).toString('base64url');
}

function interestFor(kind: PeerKind): EngineOptions['interest'] {
  return kind === 'origin' ? 'none' : kind === 'seeder' ? 'all' : 'following';
}

export async function startNodePeer(o: NodePeerOptions): Promise<NodePeer> {
  const log = o.log ?? silentLogger;
  const peerId = o.peerId ?? randomPeerId();
  const engine = new Engine({
    ...(o.engine ?? {}),
    peerId,
    kind: o.kind,
    channel: o.channel,
    publicKey: o.publicKey,
    clock: { now: () => performance.now() },
    random: { next: () => Math.random() },
    crypto: nodeCrypto,
    log,
    http: o.http,
    interest: o.engine?.interest ?? interestFor(o.kind),
    maxNeighbors: o.maxNeighbors,
  });
  const host = new PeerHost({
    ...(o.hostExtra ?? {}),
    trackerUrl: o.trackerUrl,
    channel: o.channel,
    kind: o.kind,
    engine,
    transport: o.transport ?? createWeriftTransport({ log }),
    webSocket: WebSocket as unknown as WebSocketCtor,
    publishKey: o.publishKey,
    log,
    targetNeighbors: o.targetNeighbors ?? (o.kind === 'origin' ? 0 : Math.min(6, o.maxNeighbors)),
    tickMs: o.tickMs,
    reportMs: o.reportMs,
  });
  const ready = host.start();
  ready.catch(() => undefined); // stop() before the first welcome is not an error for the caller
  if (o.waitForTracker) await ready;
  let stopping: Promise<void> | null = null;
  return {
    peerId,
    engine,
    host,
    ready,
    stop() {
      stopping ??= (async () => {
        try {
          engine.close();
        } catch (err) {
          log.warn({ err: String(err) }, 'engine.close failed');
        }
        // Let BYE frames leave before the connections are torn down.
        await new Promise((r) => setTimeout(r, 50));
        await host.stop();
      })();
      return stopping;
    },
  };
}
