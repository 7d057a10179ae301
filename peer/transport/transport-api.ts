/**
 * What a WebRTC implementation must provide to the peer host: set up one data channel to one
 * remote peer through relayed signaling, and hand it over as a Link once open. Implementations:
 * werift (Node, peer/transport/werift-transport.ts) and the browser's RTCPeerConnection
 * (peer/transport/browser-transport.ts). Both use one negotiated, ordered, reliable, binary data
 * channel labelled 'starling' per pair, and trickle ICE.
 */
import type { Link } from '../core/types.js';
import type { IceServer, SignalData } from '../core/signaling.js';
import type { IceRestartEvent } from './ice-restart.js';

export type { IceRestartEvent, IceRestartOptions } from './ice-restart.js';

export interface ConnectorOptions {
  remoteId: string;
  /** True on the side that creates the offer (the peer that chose to connect). */
  initiator: boolean;
  iceServers: IceServer[];
  /** Relay this to the remote peer through the tracker. */
  sendSignal(data: SignalData): void;
  /** Called once, when the data channel is open. The Link then belongs to the caller. */
  onLink(link: Link): void;
  /** Called once if the connection cannot be established or dies before opening. */
  onFailed(reason: string): void;
  /**
   * ICE restarts of the open connection (see ice-restart.ts): an outage noticed, an attempt,
   * recovery (the Link stayed open), or giving up (the Link's onClose follows). Optional.
   */
  onIceRestart?(e: IceRestartEvent): void;
}

export interface PeerConnector {
  readonly remoteId: string;
  /** Feed a signal received from the remote peer (offer/answer/candidate/reject). */
  handleSignal(data: SignalData): Promise<void>;
  /** Tears the connection down (also closes the Link if one was handed out). */
  close(): void;
  /**
   * True when `data` is an offer that renegotiates this open connection (same DTLS certificate
   * as the remote's earlier description: an ICE restart), which handleSignal answers in place;
   * false for anything else (e.g. the remote peer restarted and offers a new session).
   */
  isRenegotiation?(data: SignalData): boolean;
  /**
   * Restart ICE now, without waiting for the connection to look down (or, with `onlyIfDown`,
   * only if it is in an outage: e.g. the tracker connection is back and restart offers sent
   * meanwhile were lost). False if no attempt started.
   */
  restartIce?(reason?: string, onlyIfDown?: boolean): boolean;
}

export interface Transport {
  readonly name: string;
  /** Creates the connection; an initiator sends its offer right away. */
  connect(opts: ConnectorOptions): PeerConnector;
}

/**
 * How an open connection runs, from the selected ICE candidate pair (NAT traversal, issue 8).
 * Transports refresh it after an ICE restart (a restart may move a link from direct to relayed
 * or back); their Links also expose `relayed` (Link.relayed) from it.
 */
export interface ConnectionInfo {
  /** Candidate types of the selected pair: 'host' | 'srflx' | 'prflx' | 'relay'. */
  local: string;
  remote: string;
  /** Either side's selected candidate is a TURN relay: the traffic goes through the TURN server. */
  relayed: boolean;
}

/** Transports' Links may carry `connection` (set once known); undefined when not (yet) known. */
export function connectionInfoOf(link: unknown): ConnectionInfo | undefined {
  const c = (link as { connection?: ConnectionInfo } | null)?.connection;
  return c && typeof c.relayed === 'boolean' ? c : undefined;
}

/** The `typ` of an a=candidate line ('candidate:1 1 udp 2130706431 10.0.0.2 5000 typ host'). */
export function candidateType(candidate: string | undefined | null): string {
  const m = /\btyp\s+(\w+)/.exec(candidate ?? '');
  return m ? m[1] : 'unknown';
}
