/**
 * What a WebRTC implementation must provide to the peer host: set up one data channel to one
 * remote peer through relayed signaling, and hand it over as a Link once open. Implementations:
 * werift (Node, peer/transport/werift-transport.ts) and the browser's RTCPeerConnection
 * (peer/transport/browser-transport.ts). Both use one negotiated, ordered, reliable, binary data
 * channel labelled 'starling' per pair, and trickle ICE.
 */
import type { Link } from '../core/types.js';
import type { IceServer, SignalData } from '../core/signaling.js';

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
}

export interface PeerConnector {
  readonly remoteId: string;
  /** Feed a signal received from the remote peer (offer/answer/candidate/reject). */
  handleSignal(data: SignalData): Promise<void>;
  /** Tears the connection down (also closes the Link if one was handed out). */
  close(): void;
}

export interface Transport {
  readonly name: string;
  /** Creates the connection; an initiator sends its offer right away. */
  connect(opts: ConnectorOptions): PeerConnector;
}
