/**
 * Tracker signaling protocol: JSON text frames over one WebSocket per peer at
 * ws://TRACKER/ws. Types only (shared by the tracker and every client); the tracker validates
 * every incoming message against JSON schemas (tracker/schemas.ts) and rejects anything else.
 * Limits: a frame is at most SIGNAL_MAX_BYTES; a peer sends at most SIGNAL_RATE_PER_SEC messages
 * per second on average (burst SIGNAL_BURST); past that messages are dropped and counted, and a
 * peer that keeps flooding is disconnected with close code 1008.
 */
import type { PeerKind } from './types.js';

export const SIGNAL_MAX_BYTES = 64 * 1024;
export const SIGNAL_RATE_PER_SEC = 50;
export const SIGNAL_BURST = 200;

export interface PeerInfo {
  peerId: string;
  kind: PeerKind;
}

/** RTCIceServer shape, understood by browsers and werift alike. */
export interface IceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

/** Payload relayed verbatim between two peers (the tracker checks only its shape and size). */
export type SignalData =
  /**
   * `assigned` (offers only): the sender opens this link because the optimizer assigned it the
   * receiver as parent. A receiver at its neighbor maximum then makes room (drops its least useful
   * neighbor without an upload link) instead of refusing: the parent side of an assigned link is
   * often the origin, whose few neighbor places are always full of newcomers.
   */
  | { sdp: { type: 'offer' | 'answer'; sdp: string }; assigned?: true }
  | { candidate: { candidate: string; sdpMid?: string | null; sdpMLineIndex?: number | null } | null }
  | { reject: string };

// ---- client -> tracker ----
export interface JoinMessage {
  type: 'join';
  channel: string;
  kind: PeerKind;
  /** Optional stable id chosen by the client ([A-Za-z0-9_-]{8,64}); the tracker assigns one otherwise. */
  peerId?: string;
  /** Publishing as kind 'origin' requires the channel's publish key. */
  publishKey?: string;
  /**
   * The resumeToken of an earlier welcome for this same peerId: lets a reconnecting peer keep its
   * id even while the tracker still holds its old, half-dead connection (which is then closed).
   */
  resumeToken?: string;
}
export interface SignalOut {
  type: 'signal';
  to: string;
  data: SignalData;
}
export interface PeersRequest {
  type: 'peers';
  /** How many candidates are wanted (the tracker caps it). */
  max?: number;
  /**
   * The sender has no parent in this rendition and can feed `slots` children there itself: the
   * answer's `parents` names fed peers worth asking for a slot (tracker/parent-candidates.ts).
   */
  parentFor?: ParentRequest;
}
export interface ParentRequest {
  rendition: string;
  slots: number;
}
/** Bounds of a parent request and of the candidates in its answer. */
export const PARENT_REQUEST_MAX_SLOTS = 255;
export const MAX_PARENT_CANDIDATES = 4;
/** Traffic on one neighbor connection, as counted by the reporting peer (cumulative bytes). */
export interface ReportLink {
  peerId: string;
  /** Piece payload bytes the reporter sent to this neighbor. */
  sent: number;
  /** Verified piece payload bytes the reporter received from this neighbor. */
  received: number;
  /** The neighbor pushes to the reporter on an upload link / the reporter pushes to it. */
  parent?: boolean;
  child?: boolean;
  /** Pieces from this neighbor that failed verification (cumulative). */
  bad?: number;
  /** The connection to this neighbor goes through a TURN relay (absent when unknown). */
  relayed?: boolean;
  /**
   * The rendition of the upload link flagged by `parent`/`child` (the optimizer needs to know
   * which rendition a parent feeds: seeders have one parent per rendition). A neighbor with
   * upload links in several renditions keeps its first entry (counters, flags) untagged and is
   * listed once more per link, with that link's flag and rendition and zero counters.
   */
  rendition?: string;
}
/** A neighbor the reporter banned since its previous report. */
export interface ReportBan {
  peerId: string;
  reason: string;
}
export interface ReportMessage {
  type: 'report';
  /** Numeric counters and QoS figures (see docs/stats-api.md for the names the tracker reads). */
  stats: Record<string, number>;
  /** Per-neighbor traffic (at most REPORT_MAX_LINKS entries). */
  links?: ReportLink[];
  /** Rendition being played (viewers). */
  rendition?: string;
  /** NAT type, when the peer knows it (e.g. 'open', 'cone', 'symmetric'). */
  nat?: string;
  /** Region / locality scope, when configured. */
  region?: string;
  /** Bans since the previous report (at most REPORT_MAX_BANS). */
  bans?: ReportBan[];
  /** Renditions relayed on the optimizer's request (at most RELAY_MAX_RENDITIONS). */
  relays?: string[];
}
/** Bounds of the optional report members (the tracker's schema enforces them). */
export const REPORT_MAX_LINKS = 64;
export const REPORT_MAX_BANS = 16;
export const REPORT_MAX_LABEL = 32;
export interface LeaveMessage {
  type: 'leave';
}
export type ClientMessage = JoinMessage | SignalOut | PeersRequest | ReportMessage | LeaveMessage;

// ---- tracker -> client ----
export interface WelcomeMessage {
  type: 'welcome';
  peerId: string;
  iceServers: IceServer[];
  /** A random sample of the channel's other peers (origin and seeders included). */
  peers: PeerInfo[];
  /** Proof of ownership of peerId for a later re-join (JoinMessage.resumeToken). */
  resumeToken?: string;
  /**
   * True when this tracker runs the optimizer (Chandelier places peers): a joiner then waits for
   * its plan instead of asking for parent candidates at once (PeerHost.seekParent).
   */
  optimizer?: boolean;
}
export interface PeersMessage {
  type: 'peers';
  peers: PeerInfo[];
  /** Answer to `parentFor`: fed peers with a slot for the requester, best first (at most MAX_PARENT_CANDIDATES). */
  parents?: PeerInfo[];
}
export interface SignalIn {
  type: 'signal';
  from: string;
  fromKind: PeerKind;
  data: SignalData;
}
export interface ErrorMessage {
  type: 'error';
  reason: string;
}
/**
 * The channel optimizer's decision (tracker/plugins/optimizer.ts): take `parent`'s upload slot in
 * `rendition` (null: the assignment is withdrawn, local choice). Advice, applied
 * make-before-break by Engine.assignParent; the host connects to `parent` if needed.
 */
export interface AssignMessage {
  type: 'assign';
  /** The channel it is about (checked against ours when present). */
  channel?: string;
  rendition: string;
  parent: string | null;
}
/**
 * The optimizer asks this viewer to relay renditions it does not play (tracker/optimizer/relay.ts):
 * the whole set (empty: relay nothing). Applied with Engine.setRelayRenditions.
 */
export interface RelayMessage {
  type: 'relay';
  /** The channel it is about (checked against ours when present). */
  channel?: string;
  renditions: string[];
}
/** Most renditions in one relay request. */
export const RELAY_MAX_RENDITIONS = 8;
export type TrackerMessage = WelcomeMessage | PeersMessage | SignalIn | ErrorMessage | AssignMessage | RelayMessage;
