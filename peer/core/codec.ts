/**
 * Peer wire protocol v1 (docs/protocol.md, "Peer wire protocol v1"): binary frames on one
 * reliable, ordered data channel per neighbor. Byte 0 is the message type; every other field is
 * big-endian. Names (channel, rendition) are `u8 length + ASCII` and must satisfy
 * paths.isValidName; peer ids match PEER_ID_PATTERN.
 *
 * decodeFrame never throws: it bounds-checks every length and index field and returns a typed
 * error for truncated, oversize, trailing-byte, unknown-type and otherwise invalid frames.
 * encodeFrame throws CodecError on invalid input (a programming error on the sending side).
 * Piece data and manifest bytes of a decoded frame are views into the frame: the frame must not
 * be reused by the transport once it has been handed to the decoder.
 */
import type { PeerKind } from './types.js';
import { MAX_PIECES, MAX_PIECE_SIZE } from './manifest.js';
import { isValidName } from './paths.js';
import { bitfieldBytes, paddingIsClean } from './bitfield.js';

export const PROTOCOL_VERSION = 1;
/** Largest frame accepted: a 64 KiB piece plus header room. */
export const MAX_FRAME_BYTES = 64 * 1024 + 256;
/** Largest encoded manifest that fits in one MANIFEST frame (larger ones go over HTTP only). */
export const MAX_WIRE_MANIFEST_BYTES = MAX_FRAME_BYTES - 5;
export const MAX_BYE_REASON = 255;
export const PEER_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export const MsgType = {
  HELLO: 0x01,
  HAVE: 0x02,
  REQUEST: 0x03,
  PIECE: 0x04,
  CANCEL: 0x05,
  MANIFEST: 0x06,
  BYE: 0x07,
  /** Upload slots (docs/protocol.md "Upload links and slots"). */
  SLOT_GRANT: 0x08,
  SLOT_REVOKE: 0x09,
  SLOT_REQUEST: 0x0a,
  STATUS: 0x0b,
  /** Liveness: sent when nothing else went to a neighbor for a while (no fields). */
  KEEPALIVE: 0x0c,
} as const;

/** SLOT_REVOKE reasons. */
export const RevokeReason = {
  /** child -> parent: the child gives the slot back (switched rendition/parent, leaving). */
  released: 0,
  /** parent -> child: a higher-priority request took this slot. */
  preempted: 1,
  /** parent -> child: answer to SLOT_REQUEST, no slot free and the request does not outrank any holder. */
  full: 2,
  /** parent -> child: the parent itself has no feed of that rendition. */
  noFeed: 3,
  /** parent -> child: the requester is the parent's own parent in that rendition (would make a cycle). */
  cycle: 4,
  /** parent -> child: the parent's upload capacity shrank or is overloaded. */
  overload: 5,
} as const;
export type RevokeReasonCode = (typeof RevokeReason)[keyof typeof RevokeReason];
/** Depth value meaning "no feed of this rendition" in STATUS and SLOT_GRANT. */
export const NO_DEPTH = 255;

const KIND_CODES: Record<PeerKind, number> = { origin: 0, seeder: 1, browser: 2 };
const KINDS: PeerKind[] = ['origin', 'seeder', 'browser'];

export interface HelloFrame { type: 'hello'; version: number; peerId: string; kind: PeerKind; channel: string }
export interface HaveFrame { type: 'have'; rendition: string; seq: number; pieceCount: number; bitfield: Uint8Array }
export interface RequestFrame { type: 'request'; rendition: string; seq: number; index: number; count: number }
export interface PieceFrame { type: 'piece'; rendition: string; seq: number; index: number; data: Uint8Array }
export interface CancelFrame { type: 'cancel'; rendition: string; seq: number; index: number; count: number }
export interface ManifestFrame { type: 'manifest'; manifest: Uint8Array }
export interface ByeFrame { type: 'bye'; reason: string }
/** parent -> child: the child holds one of the parent's upload slots for `rendition` from now on. */
export interface SlotGrantFrame { type: 'slot-grant'; rendition: string; depth: number; timestamp: number }
/** Either direction: the slot for `rendition` ends (or a SLOT_REQUEST is refused). */
export interface SlotRevokeFrame { type: 'slot-revoke'; rendition: string; reason: number }
/** child -> parent: asks for an upload slot; priority (deadlineMs, timestamp, sender's peer id), smaller first. */
export interface SlotRequestFrame {
  type: 'slot-request'; rendition: string; deadlineMs: number; timestamp: number;
  /** Children the requester could feed in this rendition (optional on the wire: older peers omit it). */
  capacity?: number;
  /** The tracker's optimizer assigned this link (optional, after capacity). */
  assigned?: boolean;
}
/** Sender's distance from the origin in `rendition` (NO_DEPTH: not fed) and free upload slots. */
/** Size of STATUS's ancestor filter (a 256-bit Bloom filter of the sender's ancestors' peer ids). */
export const ANCESTOR_FILTER_BYTES = 32;
export interface StatusFrame {
  type: 'status'; rendition: string; depth: number; freeSlots: number;
  /**
   * Optional on the wire (older peers send neither; both or none): the children the sender could
   * take in all (its capacity in slots of this rendition, free or not), and a Bloom filter of its
   * ancestors in the rendition's tree (loop prevention).
   */
  capacity?: number;
  ancestors?: Uint8Array;
  /**
   * Optional, after the filter (older peers omit it): the sender's parent in the rendition, so
   * that a neighbor can climb toward the origin past it (Engine: climbing).
   */
  parent?: string;
}

/** Nothing to say, but still here: keeps a quiet link from looking dead (Engine: silent neighbors). */
export interface KeepaliveFrame { type: 'keepalive' }

export type Frame = HelloFrame | HaveFrame | RequestFrame | PieceFrame | CancelFrame | ManifestFrame | ByeFrame
  | SlotGrantFrame | SlotRevokeFrame | SlotRequestFrame | StatusFrame | KeepaliveFrame;
export type FrameType = Frame['type'];

export type DecodeErrorReason =
  | 'truncated'       // shorter than its fields say (includes the empty frame)
  | 'oversize'        // frame > MAX_FRAME_BYTES, or a length field above its limit
  | 'trailing-bytes'  // bytes left after the last field
  | 'unknown-type'    // first byte is not a v1 message type
  | 'invalid-name'    // channel/rendition fails isValidName
  | 'invalid-peer-id' // peer id fails PEER_ID_PATTERN
  | 'invalid-kind'    // kind code not 0..2
  | 'invalid-seq'     // seq < -1
  | 'invalid-range'   // piece index/count out of [0, MAX_PIECES)
  | 'invalid-bitfield'// piece count > MAX_PIECES or padding bits set
  | 'invalid-text'    // BYE reason not printable ASCII
  | 'invalid-reason'  // SLOT_REVOKE reason code unknown
  | 'invalid-flags';  // SLOT_REQUEST flags with unknown bits

export type DecodeResult =
  | { ok: true; frame: Frame }
  | { ok: false; reason: DecodeErrorReason; type?: number };

export class CodecError extends Error {}

// ---------------------------------------------------------------- encoding

/**
 * Big-endian writer. Byte arithmetic rather than a DataView: a DataView needs `.buffer`, which
 * moves a small (on-heap) typed array off the heap, and most frames are small; frames are
 * encoded and decoded on every piece, so this is the codec's hot path.
 */
class Writer {
  private buf: Uint8Array;
  o = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }
  u8(v: number): void { this.buf[this.o++] = v; }
  u16(v: number): void { const b = this.buf; b[this.o] = v >>> 8; b[this.o + 1] = v; this.o += 2; }
  u32(v: number): void {
    const b = this.buf;
    b[this.o] = v >>> 24; b[this.o + 1] = v >>> 16; b[this.o + 2] = v >>> 8; b[this.o + 3] = v;
    this.o += 4;
  }
  i32(v: number): void { this.u32(v >>> 0); }
  ascii(s: string): void {
    this.u8(s.length);
    for (let i = 0; i < s.length; i++) this.buf[this.o++] = s.charCodeAt(i);
  }
  bytes(b: Uint8Array): void { this.buf.set(b, this.o); this.o += b.length; }
  done(): Uint8Array {
    if (this.o !== this.buf.length) throw new CodecError('internal: size mismatch');
    return this.buf;
  }
}

function checkName(s: string, what: string): void {
  if (!isValidName(s)) throw new CodecError(`invalid ${what}`);
}
function checkSeq(seq: number): void {
  if (!Number.isInteger(seq) || seq < -1 || seq > 0x7fffffff) throw new CodecError('invalid seq');
}
function checkRange(index: number, count: number): void {
  if (!Number.isInteger(index) || !Number.isInteger(count) || index < 0 || count < 1 || index + count > MAX_PIECES) {
    throw new CodecError('invalid range');
  }
}

/** Replaces anything but printable ASCII and truncates to MAX_BYE_REASON. */
export function sanitizeReason(reason: string): string {
  return reason.replace(/[^\x20-\x7e]/g, '?').slice(0, MAX_BYE_REASON);
}

export function encodeFrame(f: Frame): Uint8Array {
  switch (f.type) {
    case 'hello': {
      if (!Number.isInteger(f.version) || f.version < 0 || f.version > 255) throw new CodecError('invalid version');
      if (!PEER_ID_PATTERN.test(f.peerId)) throw new CodecError('invalid peer id');
      checkName(f.channel, 'channel');
      const kind = KIND_CODES[f.kind];
      if (kind === undefined) throw new CodecError('invalid kind');
      const w = new Writer(1 + 1 + 1 + f.peerId.length + 1 + 1 + f.channel.length);
      w.u8(MsgType.HELLO); w.u8(f.version); w.ascii(f.peerId); w.u8(kind); w.ascii(f.channel);
      return w.done();
    }
    case 'have': {
      checkName(f.rendition, 'rendition'); checkSeq(f.seq);
      if (!Number.isInteger(f.pieceCount) || f.pieceCount < 0 || f.pieceCount > MAX_PIECES) throw new CodecError('invalid piece count');
      if (!paddingIsClean(f.bitfield, f.pieceCount)) throw new CodecError('invalid bitfield');
      const w = new Writer(1 + 1 + f.rendition.length + 4 + 2 + bitfieldBytes(f.pieceCount));
      w.u8(MsgType.HAVE); w.ascii(f.rendition); w.i32(f.seq); w.u16(f.pieceCount); w.bytes(f.bitfield);
      return w.done();
    }
    case 'request':
    case 'cancel': {
      checkName(f.rendition, 'rendition'); checkSeq(f.seq); checkRange(f.index, f.count);
      const w = new Writer(1 + 1 + f.rendition.length + 4 + 2 + 2);
      w.u8(f.type === 'request' ? MsgType.REQUEST : MsgType.CANCEL);
      w.ascii(f.rendition); w.i32(f.seq); w.u16(f.index); w.u16(f.count);
      return w.done();
    }
    case 'piece': {
      checkName(f.rendition, 'rendition'); checkSeq(f.seq); checkRange(f.index, 1);
      if (f.data.length > MAX_PIECE_SIZE) throw new CodecError('piece too large');
      const w = new Writer(1 + 1 + f.rendition.length + 4 + 2 + 4 + f.data.length);
      w.u8(MsgType.PIECE); w.ascii(f.rendition); w.i32(f.seq); w.u16(f.index); w.u32(f.data.length); w.bytes(f.data);
      return w.done();
    }
    case 'manifest': {
      if (f.manifest.length < 1 || f.manifest.length > MAX_WIRE_MANIFEST_BYTES) throw new CodecError('manifest size');
      const w = new Writer(1 + 4 + f.manifest.length);
      w.u8(MsgType.MANIFEST); w.u32(f.manifest.length); w.bytes(f.manifest);
      return w.done();
    }
    case 'keepalive':
      return Uint8Array.of(MsgType.KEEPALIVE);
    case 'bye': {
      const reason = sanitizeReason(f.reason);
      const w = new Writer(1 + 1 + reason.length);
      w.u8(MsgType.BYE); w.ascii(reason);
      return w.done();
    }
    case 'slot-grant': {
      checkName(f.rendition, 'rendition'); checkU(f.depth, 0xff, 'depth'); checkU(f.timestamp, 0xffffffff, 'timestamp');
      const w = new Writer(1 + 1 + f.rendition.length + 1 + 4);
      w.u8(MsgType.SLOT_GRANT); w.ascii(f.rendition); w.u8(f.depth); w.u32(f.timestamp);
      return w.done();
    }
    case 'slot-revoke': {
      checkName(f.rendition, 'rendition');
      if (!REVOKE_CODES.has(f.reason)) throw new CodecError('invalid reason');
      const w = new Writer(1 + 1 + f.rendition.length + 1);
      w.u8(MsgType.SLOT_REVOKE); w.ascii(f.rendition); w.u8(f.reason);
      return w.done();
    }
    case 'slot-request': {
      checkName(f.rendition, 'rendition'); checkU(f.deadlineMs, 0xffff, 'deadline'); checkU(f.timestamp, 0xffffffff, 'timestamp');
      if (f.capacity !== undefined) checkU(f.capacity, 0xff, 'capacity');
      if (f.assigned !== undefined && f.capacity === undefined) throw new CodecError('assigned needs capacity');
      const extra = f.capacity === undefined ? 0 : f.assigned === undefined ? 1 : 2;
      const w = new Writer(1 + 1 + f.rendition.length + 2 + 4 + extra);
      w.u8(MsgType.SLOT_REQUEST); w.ascii(f.rendition); w.u16(f.deadlineMs); w.u32(f.timestamp);
      if (f.capacity !== undefined) w.u8(f.capacity);
      if (f.assigned !== undefined) w.u8(f.assigned ? 1 : 0);
      return w.done();
    }
    case 'status': {
      checkName(f.rendition, 'rendition'); checkU(f.depth, 0xff, 'depth'); checkU(f.freeSlots, 0xff, 'free slots');
      if (f.ancestors && f.ancestors.length !== ANCESTOR_FILTER_BYTES) throw new CodecError('ancestor filter must be 32 bytes');
      if ((f.capacity === undefined) !== (f.ancestors === undefined)) throw new CodecError('capacity and ancestors go together');
      if (f.capacity !== undefined) checkU(f.capacity, 0xff, 'capacity');
      if (f.parent !== undefined && (!f.ancestors || !PEER_ID_PATTERN.test(f.parent))) throw new CodecError('invalid parent');
      const w = new Writer(1 + 1 + f.rendition.length + 2 + (f.ancestors ? 1 + ANCESTOR_FILTER_BYTES : 0) + (f.parent !== undefined ? 1 + f.parent.length : 0));
      w.u8(MsgType.STATUS); w.ascii(f.rendition); w.u8(f.depth); w.u8(f.freeSlots);
      if (f.ancestors) { w.u8(f.capacity!); w.bytes(f.ancestors); }
      if (f.parent !== undefined) w.ascii(f.parent);
      return w.done();
    }
    default:
      throw new CodecError('unknown frame type');
  }
}

const REVOKE_CODES = new Set<number>(Object.values(RevokeReason));

function checkU(v: number, max: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new CodecError(`invalid ${what}`);
}

// ---------------------------------------------------------------- decoding

class Fail {
  constructor(readonly reason: DecodeErrorReason) {}
}

/** Big-endian reader over a frame (byte arithmetic, for the reason given at Writer). */
class Reader {
  o = 0;
  constructor(private buf: Uint8Array) {}
  need(n: number): void {
    if (this.o + n > this.buf.length) throw new Fail('truncated');
  }
  u8(): number { this.need(1); return this.buf[this.o++]; }
  u16(): number { this.need(2); const b = this.buf, o = this.o; this.o += 2; return (b[o] << 8) | b[o + 1]; }
  u32(): number { return this.i32() >>> 0; }
  i32(): number {
    this.need(4);
    const b = this.buf, o = this.o;
    this.o += 4;
    return (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];
  }
  ascii(): string {
    const n = this.u8();
    this.need(n);
    let s = '';
    for (let i = 0; i < n; i++) s += String.fromCharCode(this.buf[this.o + i]);
    this.o += n;
    return s;
  }
  view(n: number): Uint8Array {
    this.need(n);
    const b = this.buf.subarray(this.o, this.o + n);
    this.o += n;
    return b;
  }
  bytes(n: number): Uint8Array {
    this.need(n);
    const b = this.buf.slice(this.o, this.o + n);
    this.o += n;
    return b;
  }
  atEnd(): boolean { return this.o === this.buf.length; }
  end(): void {
    if (this.o !== this.buf.length) throw new Fail('trailing-bytes');
  }
}

function name(r: Reader): string {
  const s = r.ascii();
  if (!isValidName(s)) throw new Fail('invalid-name');
  return s;
}
function seq(r: Reader): number {
  const v = r.i32();
  if (v < -1) throw new Fail('invalid-seq');
  return v;
}
function range(r: Reader): [number, number] {
  const index = r.u16();
  const count = r.u16();
  if (index >= MAX_PIECES || count < 1 || index + count > MAX_PIECES) throw new Fail('invalid-range');
  return [index, count];
}

function decodeBody(type: number, r: Reader): Frame {
  switch (type) {
    case MsgType.HELLO: {
      const version = r.u8();
      const peerId = r.ascii();
      if (!PEER_ID_PATTERN.test(peerId)) throw new Fail('invalid-peer-id');
      const kind = KINDS[r.u8()];
      if (!kind) throw new Fail('invalid-kind');
      const channel = name(r);
      return { type: 'hello', version, peerId, kind, channel };
    }
    case MsgType.HAVE: {
      const rendition = name(r);
      const s = seq(r);
      const pieceCount = r.u16();
      if (pieceCount > MAX_PIECES) throw new Fail('invalid-bitfield');
      // a copy, not a view: a HAVE frame is small enough for V8 to keep on its heap, and a view
      // into it would move its bytes off the heap (a backing store per HAVE the engine keeps)
      const bitfield = r.bytes(bitfieldBytes(pieceCount));
      if (!paddingIsClean(bitfield, pieceCount)) throw new Fail('invalid-bitfield');
      return { type: 'have', rendition, seq: s, pieceCount, bitfield };
    }
    case MsgType.REQUEST:
    case MsgType.CANCEL: {
      const rendition = name(r);
      const s = seq(r);
      const [index, count] = range(r);
      return { type: type === MsgType.REQUEST ? 'request' : 'cancel', rendition, seq: s, index, count };
    }
    case MsgType.PIECE: {
      const rendition = name(r);
      const s = seq(r);
      const index = r.u16();
      if (index >= MAX_PIECES) throw new Fail('invalid-range');
      const len = r.u32();
      if (len > MAX_PIECE_SIZE) throw new Fail('oversize');
      // a view, not a copy: a piece is never written to after decoding, and copying every piece
      // of a live stream was a measurable share of the garbage (the frame buffer is piece-sized)
      const data = r.view(len);
      return { type: 'piece', rendition, seq: s, index, data };
    }
    case MsgType.MANIFEST: {
      const len = r.u32();
      if (len > MAX_WIRE_MANIFEST_BYTES) throw new Fail('oversize');
      if (len < 1) throw new Fail('truncated');
      // a view: decodeManifest keeps a copy of what it accepts
      return { type: 'manifest', manifest: r.view(len) };
    }
    case MsgType.BYE: {
      const reason = r.ascii();
      if (!/^[\x20-\x7e]*$/.test(reason)) throw new Fail('invalid-text');
      return { type: 'bye', reason };
    }
    case MsgType.SLOT_GRANT: {
      const rendition = name(r);
      const depth = r.u8();
      const timestamp = r.u32();
      return { type: 'slot-grant', rendition, depth, timestamp };
    }
    case MsgType.SLOT_REVOKE: {
      const rendition = name(r);
      const reason = r.u8();
      if (!REVOKE_CODES.has(reason)) throw new Fail('invalid-reason');
      return { type: 'slot-revoke', rendition, reason };
    }
    case MsgType.SLOT_REQUEST: {
      const rendition = name(r);
      const deadlineMs = r.u16();
      const timestamp = r.u32();
      if (r.atEnd()) return { type: 'slot-request', rendition, deadlineMs, timestamp };
      const capacity = r.u8();
      if (r.atEnd()) return { type: 'slot-request', rendition, deadlineMs, timestamp, capacity };
      const flags = r.u8();
      if (flags > 1) throw new Fail('invalid-flags');
      return { type: 'slot-request', rendition, deadlineMs, timestamp, capacity, assigned: flags === 1 };
    }
    case MsgType.STATUS: {
      const rendition = name(r);
      const depth = r.u8();
      const freeSlots = r.u8();
      // the filter is a later addition: absent in older peers' STATUS
      if (r.atEnd()) return { type: 'status', rendition, depth, freeSlots };
      const capacity = r.u8();
      const ancestors = r.bytes(ANCESTOR_FILTER_BYTES);
      if (r.atEnd()) return { type: 'status', rendition, depth, freeSlots, capacity, ancestors };
      const parent = r.ascii();
      if (!PEER_ID_PATTERN.test(parent)) throw new Fail('invalid-peer-id');
      return { type: 'status', rendition, depth, freeSlots, capacity, ancestors, parent };
    }
    case MsgType.KEEPALIVE:
      return { type: 'keepalive' };
    default:
      throw new Fail('unknown-type');
  }
}

export function decodeFrame(bytes: Uint8Array): DecodeResult {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) return { ok: false, reason: 'truncated' };
  const type = bytes[0];
  if (bytes.length > MAX_FRAME_BYTES) return { ok: false, reason: 'oversize', type };
  const r = new Reader(bytes);
  r.o = 1;
  try {
    const frame = decodeBody(type, r);
    r.end();
    return { ok: true, frame };
  } catch (e) {
    if (e instanceof Fail) return { ok: false, reason: e.reason, type };
    return { ok: false, reason: 'truncated', type };
  }
}
