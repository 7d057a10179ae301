/**
 * JSON schemas of every client -> tracker signaling message (peer/core/signaling.ts) and the
 * parser that applies them. Anything that does not match is rejected with a reason code; the
 * codes are a closed set (they label the rejection counter in /metrics).
 */
import Ajv, { type ValidateFunction } from 'ajv';
import {
  REPORT_MAX_BANS, REPORT_MAX_LABEL, REPORT_MAX_LINKS, RELAY_MAX_RENDITIONS, PARENT_REQUEST_MAX_SLOTS,
  type ClientMessage, type JoinMessage, type LeaveMessage, type PeersRequest, type ReportMessage, type SignalOut,
} from '../peer/core/signaling.js';
import { NAME_PATTERN } from '../peer/core/paths.js';

/** Client-chosen peer ids (and the ids signals are addressed to). */
export const PEER_ID_PATTERN = '^[A-Za-z0-9_-]{8,64}$';
export const PEER_ID_RE = new RegExp(PEER_ID_PATTERN);
/** Most keys in one report's stats object. */
export const REPORT_MAX_KEYS = 64;
/** Report stat names. */
export const REPORT_KEY_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$';

/** Per-rendition optimizer stats in reports: `slots.<rendition>`, `depth.<rendition>`. */
export const REPORT_RENDITION_STAT_PATTERN = `^(slots|depth)\\.${NAME_PATTERN.source.slice(1)}`;

/** Peer ids inside reports (links, bans): any id the wire protocol allows. */
export const LINK_PEER_ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$';
/** NAT type / region labels in reports. */
export const REPORT_LABEL_PATTERN = `^[A-Za-z0-9][A-Za-z0-9_.:-]{0,${REPORT_MAX_LABEL - 1}}$`;
const label = { type: 'string', pattern: REPORT_LABEL_PATTERN } as const;
/** Cumulative byte/piece counters: non-negative, below 2^53. */
const counter = { type: 'number', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const;

/** Every reason a message (or connection) is rejected; also the `reason` label of the counter. */
export const REJECT_REASONS = [
  'malformed json',
  'invalid message',
  'unknown type',
  'binary frame',
  'oversize',
  'not joined',
  'already joined',
  'invalid channel',
  'bad publish key',
  'unknown peer',
  'peer congested',
  'protocol error',
  'internal error',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export const MESSAGE_TYPES = ['join', 'signal', 'peers', 'report', 'leave'] as const;
export type ClientMessageType = (typeof MESSAGE_TYPES)[number];

const peerId = { type: 'string', pattern: PEER_ID_PATTERN } as const;

export const joinSchema = {
  $id: 'starling/join',
  type: 'object',
  required: ['type', 'channel', 'kind'],
  additionalProperties: false,
  properties: {
    type: { const: 'join' },
    // isValidName (peer/core/paths.ts) is checked after the schema: 'invalid channel'.
    channel: { type: 'string', maxLength: 64 },
    kind: { enum: ['origin', 'seeder', 'browser'] },
    peerId,
    publishKey: { type: 'string', maxLength: 1024 },
    resumeToken: { type: 'string', maxLength: 128 },
  },
} as const;

export const signalDataSchema = {
  oneOf: [
    {
      type: 'object',
      required: ['sdp'],
      additionalProperties: false,
      properties: {
        sdp: {
          type: 'object',
          required: ['type', 'sdp'],
          properties: { type: { enum: ['offer', 'answer'] }, sdp: { type: 'string' } },
        },
        // the sender opens an optimizer-assigned link (peer/core/signaling.ts SignalData)
        assigned: { const: true },
      },
    },
    {
      type: 'object',
      required: ['candidate'],
      additionalProperties: false,
      properties: {
        candidate: {
          // null = end of candidates. Extra members (e.g. a browser's usernameFragment) are relayed.
          type: ['object', 'null'],
          required: ['candidate'],
          properties: {
            candidate: { type: 'string', maxLength: 4096 },
            sdpMid: { type: ['string', 'null'], maxLength: 256 },
            sdpMLineIndex: { type: ['integer', 'null'], minimum: 0, maximum: 65535 },
            usernameFragment: { type: ['string', 'null'], maxLength: 256 },
          },
        },
      },
    },
    {
      type: 'object',
      required: ['reject'],
      additionalProperties: false,
      properties: { reject: { type: 'string', maxLength: 256 } },
    },
  ],
} as const;

export const signalSchema = {
  $id: 'starling/signal',
  type: 'object',
  required: ['type', 'to', 'data'],
  additionalProperties: false,
  properties: {
    type: { const: 'signal' },
    to: peerId,
    data: signalDataSchema,
  },
} as const;

export const peersSchema = {
  $id: 'starling/peers',
  type: 'object',
  required: ['type'],
  additionalProperties: false,
  properties: {
    type: { const: 'peers' },
    max: { type: 'integer', minimum: 0, maximum: 1000 },
    parentFor: {
      type: 'object',
      required: ['rendition', 'slots'],
      additionalProperties: false,
      properties: {
        rendition: { type: 'string', pattern: NAME_PATTERN.source },
        slots: { type: 'integer', minimum: 0, maximum: PARENT_REQUEST_MAX_SLOTS },
      },
    },
  },
} as const;

export const reportSchema = {
  $id: 'starling/report',
  type: 'object',
  required: ['type', 'stats'],
  additionalProperties: false,
  properties: {
    type: { const: 'report' },
    stats: {
      type: 'object',
      maxProperties: REPORT_MAX_KEYS,
      propertyNames: { pattern: REPORT_KEY_PATTERN },
      // The optimizer's per-rendition inputs: upload slots (engine capacity) and depth (hops
      // from the origin; 255 = not fed), both bytes on the peer wire too.
      patternProperties: { [REPORT_RENDITION_STAT_PATTERN]: { type: 'integer', minimum: 0, maximum: 255 } },
      additionalProperties: { type: 'number' },
    },
    links: {
      type: 'array',
      maxItems: REPORT_MAX_LINKS,
      items: {
        type: 'object',
        required: ['peerId', 'sent', 'received'],
        additionalProperties: false,
        properties: {
          peerId: { type: 'string', pattern: LINK_PEER_ID_PATTERN },
          sent: counter,
          received: counter,
          parent: { type: 'boolean' },
          child: { type: 'boolean' },
          bad: counter,
          // The connection goes through a TURN relay (transport ConnectionInfo; NAT traversal stats).
          relayed: { type: 'boolean' },
          // Which rendition the parent/child upload link carries (the optimizer's current links).
          rendition: { type: 'string', pattern: NAME_PATTERN.source },
        },
      },
    },
    rendition: { type: 'string', pattern: NAME_PATTERN.source },
    // Renditions relayed on the optimizer's request: a leader that takes over learns them here.
    relays: { type: 'array', maxItems: RELAY_MAX_RENDITIONS, items: { type: 'string', pattern: NAME_PATTERN.source } },
    nat: label,
    region: label,
    bans: {
      type: 'array',
      maxItems: REPORT_MAX_BANS,
      items: {
        type: 'object',
        required: ['peerId', 'reason'],
        additionalProperties: false,
        properties: {
          peerId: { type: 'string', pattern: LINK_PEER_ID_PATTERN },
          reason: { type: 'string', maxLength: 64 },
        },
      },
    },
  },
} as const;

export const leaveSchema = {
  $id: 'starling/leave',
  type: 'object',
  required: ['type'],
  additionalProperties: false,
  properties: { type: { const: 'leave' } },
} as const;

const ajv = new Ajv({ allErrors: false, allowUnionTypes: true, strict: true });

const validators: Record<ClientMessageType, ValidateFunction> = {
  join: ajv.compile<JoinMessage>(joinSchema),
  signal: ajv.compile<SignalOut>(signalSchema),
  peers: ajv.compile<PeersRequest>(peersSchema),
  report: ajv.compile<ReportMessage>(reportSchema),
  leave: ajv.compile<LeaveMessage>(leaveSchema),
};

export type ParseResult =
  | { ok: true; msg: ClientMessage }
  | { ok: false; reason: RejectReason; detail?: string };

/** Parses and validates one text frame. Never throws. */
export function parseClientMessage(text: string): ParseResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'malformed json' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, reason: 'invalid message', detail: 'not a JSON object' };
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string' || !Object.hasOwn(validators, type)) {
    return { ok: false, reason: 'unknown type' };
  }
  const validate = validators[type as ClientMessageType];
  if (!validate(value)) {
    const e = validate.errors?.[0];
    const detail = e ? `${e.instancePath || '/'} ${e.message ?? 'is invalid'}` : undefined;
    return { ok: false, reason: 'invalid message', detail };
  }
  return { ok: true, msg: value as ClientMessage };
}
