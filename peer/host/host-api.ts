/**
 * The peer host glues an Engine to the world: the tracker's signaling WebSocket, a WebRTC
 * Transport and a timer. Isomorphic (Node seeders, the origin's root peer, browsers): the
 * WebSocket constructor, the Transport and the timer functions are injected.
 */
import type { EngineApi } from '../core/engine-api.js';
import type { Logger, PeerKind } from '../core/types.js';
import type { Transport } from '../transport/transport-api.js';

/** The subset of the WHATWG WebSocket that the host uses (browsers' WebSocket, `ws` in Node). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}
export type WebSocketCtor = new (url: string) => WebSocketLike;

export interface PeerHostOptions {
  /** ws://HOST:PORT/ws */
  trackerUrl: string;
  channel: string;
  kind: PeerKind;
  /** Must equal engine.peerId; sent in the join message. */
  engine: EngineApi;
  transport: Transport;
  webSocket: WebSocketCtor;
  publishKey?: string;
  log?: Logger;
  /** Neighbors the host tries to keep (asks the tracker for more below it). Default 6. */
  targetNeighbors?: number;
  /** engine.tick() period. Default 50 ms. */
  tickMs?: number;
  /** Report period to the tracker. Default 5000 ms. */
  reportMs?: number;
  /**
   * Extra figures for each report (e.g. the watch page's QoS: stalls, startup, latency):
   * numbers join the report's stats; the strings `rendition`, `nat` and `region` become the
   * report's labels; anything else is dropped.
   */
  extraReport?: () => Record<string, number | string>;
}

export interface PeerHostStats {
  trackerConnected: boolean;
  connecting: number;
  connectAttempts: number;
  connectFailures: number;
}
