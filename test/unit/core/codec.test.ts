import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  decodeFrame, encodeFrame, MAX_FRAME_BYTES, MAX_WIRE_MANIFEST_BYTES, MsgType, PROTOCOL_VERSION, CodecError, type Frame,
} from '../../../peer/core/codec.js';
import { MAX_PIECES, MAX_PIECE_SIZE } from '../../../peer/core/manifest.js';
import { fullBitfield, newBitfield, setBit } from '../../../peer/core/bitfield.js';

const nameArb = fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,31}$/);
const peerIdArb = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);
const seqArb = fc.integer({ min: -1, max: 0x7fffffff });
const rangeArb = fc.integer({ min: 0, max: MAX_PIECES - 1 }).chain((index) =>
  fc.record({ index: fc.constant(index), count: fc.integer({ min: 1, max: MAX_PIECES - index }) }));
const bitfieldArb = fc.integer({ min: 0, max: MAX_PIECES }).chain((pieceCount) =>
  fc.array(fc.integer({ min: 0, max: Math.max(0, pieceCount - 1) }), { maxLength: 64 }).map((bits) => {
    const bf = newBitfield(pieceCount);
    if (pieceCount > 0) for (const b of bits) setBit(bf, b);
    return { pieceCount, bitfield: bf };
  }));

const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({
    type: fc.constant('hello' as const), version: fc.integer({ min: 0, max: 255 }), peerId: peerIdArb,
    kind: fc.constantFrom('origin' as const, 'seeder' as const, 'browser' as const), channel: nameArb,
  }),
  fc.record({ rendition: nameArb, seq: seqArb, bf: bitfieldArb }).map(({ rendition, seq, bf }) =>
    ({ type: 'have' as const, rendition, seq, pieceCount: bf.pieceCount, bitfield: bf.bitfield })),
  fc.record({ type: fc.constantFrom('request' as const, 'cancel' as const), rendition: nameArb, seq: seqArb, r: rangeArb })
    .map(({ type, rendition, seq, r }) => ({ type, rendition, seq, index: r.index, count: r.count })),
  fc.record({
    type: fc.constant('piece' as const), rendition: nameArb, seq: seqArb, index: fc.integer({ min: 0, max: MAX_PIECES - 1 }),
    data: fc.uint8Array({ maxLength: 2048 }),
  }),
  fc.record({ type: fc.constant('manifest' as const), manifest: fc.uint8Array({ minLength: 1, maxLength: 4096 }) }),
  fc.record({ type: fc.constant('bye' as const), reason: fc.stringMatching(/^[\x20-\x7e]{0,255}$/) }),
  fc.record({
    type: fc.constant('slot-grant' as const), rendition: nameArb, depth: fc.integer({ min: 0, max: 255 }),
    timestamp: fc.integer({ min: 0, max: 0xffffffff }),
  }),
  fc.record({ type: fc.constant('slot-revoke' as const), rendition: nameArb, reason: fc.integer({ min: 0, max: 5 }) }),
  fc.record({
    type: fc.constant('slot-request' as const), rendition: nameArb, deadlineMs: fc.integer({ min: 0, max: 0xffff }),
    capacity: fc.integer({ min: 0, max: 255 }),
    assigned: fc.boolean(),
    timestamp: fc.integer({ min: 0, max: 0xffffffff }),
  }),
  fc.record({
    type: fc.constant('status' as const), rendition: nameArb, depth: fc.integer({ min: 0, max: 255 }),
    freeSlots: fc.integer({ min: 0, max: 255 }),
    // always present here: without them, trailing bytes would read as the optional fields
    capacity: fc.integer({ min: 0, max: 255 }),
    ancestors: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    parent: peerIdArb,
  }),
  fc.constant({ type: 'keepalive' as const }),
);

describe('STATUS ancestor filter', () => {
  it('is optional on the wire (older peers send none) and a partial filter is rejected', () => {
    const bare = encodeFrame({ type: 'status', rendition: 'r', depth: 3, freeSlots: 2 });
    expect(decodeFrame(bare)).toEqual({ ok: true, frame: { type: 'status', rendition: 'r', depth: 3, freeSlots: 2 } });
    const partial = new Uint8Array(bare.length + 5);
    partial.set(bare);
    expect(decodeFrame(partial)).toMatchObject({ ok: false, reason: 'truncated' });
  });

  it('carries the sender\'s parent after the filter, optionally; a bad parent id is rejected', () => {
    const ancestors = new Uint8Array(32).fill(7);
    const noParent = { type: 'status' as const, rendition: 'r', depth: 3, freeSlots: 2, capacity: 4, ancestors };
    expect(decodeFrame(encodeFrame(noParent))).toEqual({ ok: true, frame: noParent });
    const withParent = { ...noParent, parent: 'peer-A_1' };
    const bytes = encodeFrame(withParent);
    expect(decodeFrame(bytes)).toEqual({ ok: true, frame: withParent });
    expect(() => encodeFrame({ ...noParent, parent: 'bad id' })).toThrow(/invalid parent/);
    expect(() => encodeFrame({ type: 'status', rendition: 'r', depth: 3, freeSlots: 2, parent: 'p' })).toThrow(/invalid parent/);
    const bad = bytes.slice();
    bad[bad.length - 1] = 0x20; // a space: not a peer id character
    expect(decodeFrame(bad)).toMatchObject({ ok: false, reason: 'invalid-peer-id' });
    const empty = encodeFrame(noParent);
    const withEmpty = new Uint8Array(empty.length + 1);
    withEmpty.set(empty);
    expect(decodeFrame(withEmpty)).toMatchObject({ ok: false, reason: 'invalid-peer-id' });
  });
});

describe('codec', () => {
  it('round-trips every message type', () => {
    fc.assert(fc.property(frameArb, (f) => {
      const bytes = encodeFrame(f);
      expect(bytes.length).toBeLessThanOrEqual(MAX_FRAME_BYTES);
      const r = decodeFrame(bytes);
      expect(r).toEqual({ ok: true, frame: f });
    }), { numRuns: 400 });
  });

  it('rejects every strict prefix of a valid frame as truncated', () => {
    fc.assert(fc.property(frameArb.filter((f) => f.type !== 'piece' || f.data.length < 200), (f) => {
      const bytes = encodeFrame(f);
      // STATUS's optional fields: the frame without the parent, and without the filter too, is valid on its own
      const noParent = f.type === 'status' ? bytes.length - 1 - f.parent!.length : -1;
      const bareStatus = f.type === 'status' ? noParent - 33 : -1;
      const noFlags = f.type === 'slot-request' ? bytes.length - 1 : -1;
      const noCapacity = f.type === 'slot-request' ? bytes.length - 2 : -1;
      for (let len = 0; len < bytes.length; len++) {
        if (len === bareStatus || len === noParent || len === noFlags || len === noCapacity) continue;
        const r = decodeFrame(bytes.subarray(0, len));
        expect(r.ok).toBe(false);
        if (!r.ok) expect(r.reason).toBe('truncated');
      }
    }), { numRuns: 150 });
  });

  it('rejects trailing bytes', () => {
    fc.assert(fc.property(frameArb, fc.uint8Array({ minLength: 1, maxLength: 8 }), (f, extra) => {
      const bytes = encodeFrame(f);
      const longer = new Uint8Array(bytes.length + extra.length);
      longer.set(bytes);
      longer.set(extra, bytes.length);
      const r = decodeFrame(longer);
      // a longer manifest/piece length field cannot be faked by appending: always an error
      expect(r.ok).toBe(false);
      if (!r.ok && longer.length <= MAX_FRAME_BYTES) expect(r.reason).toBe('trailing-bytes');
    }), { numRuns: 200 });
  });

  it('never throws on random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
      const r = decodeFrame(bytes);
      expect(typeof r.ok).toBe('boolean');
    }), { numRuns: 2000 });
    // random bytes behind every valid type byte
    fc.assert(fc.property(fc.integer({ min: 1, max: 7 }), fc.uint8Array({ maxLength: 300 }), (t, rest) => {
      const bytes = new Uint8Array(1 + rest.length);
      bytes[0] = t;
      bytes.set(rest, 1);
      const r = decodeFrame(bytes);
      expect(typeof r.ok).toBe('boolean');
    }), { numRuns: 3000 });
  });

  it('rejects oversize frames and oversize length fields', () => {
    const big = new Uint8Array(MAX_FRAME_BYTES + 1);
    big[0] = MsgType.PIECE;
    expect(decodeFrame(big)).toMatchObject({ ok: false, reason: 'oversize' });
    // a piece whose length field exceeds MAX_PIECE_SIZE
    const p = encodeFrame({ type: 'piece', rendition: 'r', seq: 1, index: 0, data: new Uint8Array(4) });
    new DataView(p.buffer).setUint32(1 + 2 + 4 + 2, MAX_PIECE_SIZE + 1);
    expect(decodeFrame(p)).toMatchObject({ ok: false, reason: 'oversize' });
    // a manifest length field above the frame limit
    const m = encodeFrame({ type: 'manifest', manifest: new Uint8Array(10) });
    new DataView(m.buffer).setUint32(1, MAX_WIRE_MANIFEST_BYTES + 1);
    expect(decodeFrame(m)).toMatchObject({ ok: false, reason: 'oversize' });
    // the biggest piece fits in a frame
    const max = encodeFrame({ type: 'piece', rendition: 'a'.repeat(32), seq: 1, index: MAX_PIECES - 1, data: new Uint8Array(MAX_PIECE_SIZE) });
    expect(max.length).toBeLessThanOrEqual(MAX_FRAME_BYTES);
    expect(decodeFrame(max).ok).toBe(true);
    expect(() => encodeFrame({ type: 'piece', rendition: 'r', seq: 1, index: 0, data: new Uint8Array(MAX_PIECE_SIZE + 1) })).toThrow(CodecError);
  });

  it('reports unknown types and invalid fields with typed reasons', () => {
    expect(decodeFrame(new Uint8Array([0x00]))).toMatchObject({ ok: false, reason: 'unknown-type' });
    expect(decodeFrame(new Uint8Array([0x7f, 1, 2]))).toMatchObject({ ok: false, reason: 'unknown-type', type: 0x7f });
    expect(decodeFrame(new Uint8Array([MsgType.SLOT_REVOKE, 1, 0x61, 99]))).toMatchObject({ ok: false, reason: 'invalid-reason' });
    expect(() => encodeFrame({ type: 'slot-request', rendition: 'a', deadlineMs: 70_000, timestamp: 0 })).toThrow(CodecError);
    expect(decodeFrame(new Uint8Array(0))).toMatchObject({ ok: false, reason: 'truncated' });

    const req = encodeFrame({ type: 'request', rendition: 'r', seq: 3, index: 0, count: 1 });
    const badName = req.slice(); badName[2] = 'R'.charCodeAt(0);
    expect(decodeFrame(badName)).toMatchObject({ ok: false, reason: 'invalid-name' });
    const badSeq = req.slice(); new DataView(badSeq.buffer).setInt32(3, -2);
    expect(decodeFrame(badSeq)).toMatchObject({ ok: false, reason: 'invalid-seq' });
    const badCount = req.slice(); new DataView(badCount.buffer).setUint16(9, 0);
    expect(decodeFrame(badCount)).toMatchObject({ ok: false, reason: 'invalid-range' });
    const badIndex = req.slice(); new DataView(badIndex.buffer).setUint16(7, MAX_PIECES);
    expect(decodeFrame(badIndex)).toMatchObject({ ok: false, reason: 'invalid-range' });
    const overflow = req.slice(); new DataView(overflow.buffer).setUint16(7, MAX_PIECES - 1); new DataView(overflow.buffer).setUint16(9, 2);
    expect(decodeFrame(overflow)).toMatchObject({ ok: false, reason: 'invalid-range' });

    const hello = encodeFrame({ type: 'hello', version: PROTOCOL_VERSION, peerId: 'peer-1', kind: 'seeder', channel: 'demo' });
    const badKind = hello.slice(); badKind[2 + 1 + 6] = 9;
    expect(decodeFrame(badKind)).toMatchObject({ ok: false, reason: 'invalid-kind' });
    const badPeer = hello.slice(); badPeer[3] = '/'.charCodeAt(0);
    expect(decodeFrame(badPeer)).toMatchObject({ ok: false, reason: 'invalid-peer-id' });

    const have = encodeFrame({ type: 'have', rendition: 'r', seq: 1, pieceCount: 3, bitfield: fullBitfield(3) });
    const padded = have.slice(); padded[padded.length - 1] |= 0x01;
    expect(decodeFrame(padded)).toMatchObject({ ok: false, reason: 'invalid-bitfield' });
    const tooMany = have.slice(); new DataView(tooMany.buffer).setUint16(7, MAX_PIECES + 1);
    expect(decodeFrame(tooMany)).toMatchObject({ ok: false, reason: 'invalid-bitfield' });

    const bye = new Uint8Array([MsgType.BYE, 2, 0x41, 0x0a]);
    expect(decodeFrame(bye)).toMatchObject({ ok: false, reason: 'invalid-text' });
  });

  it('encoder refuses invalid input and sanitizes BYE reasons', () => {
    expect(() => encodeFrame({ type: 'request', rendition: 'Bad', seq: 1, index: 0, count: 1 })).toThrow(CodecError);
    expect(() => encodeFrame({ type: 'request', rendition: 'r', seq: -2, index: 0, count: 1 })).toThrow(CodecError);
    expect(() => encodeFrame({ type: 'cancel', rendition: 'r', seq: 1, index: 0, count: 0 })).toThrow(CodecError);
    expect(() => encodeFrame({ type: 'hello', version: 1, peerId: 'a b', kind: 'browser', channel: 'demo' })).toThrow(CodecError);
    expect(() => encodeFrame({ type: 'manifest', manifest: new Uint8Array(MAX_WIRE_MANIFEST_BYTES + 1) })).toThrow(CodecError);
    const r = decodeFrame(encodeFrame({ type: 'bye', reason: 'é\n' + 'x'.repeat(400) }));
    expect(r.ok && r.frame.type === 'bye' && r.frame.reason.length).toBe(255);
  });

  it('decodes frames at a non-zero byteOffset', () => {
    const f = encodeFrame({ type: 'cancel', rendition: 'r', seq: 5, index: 3, count: 2 });
    const buf = new Uint8Array(f.length + 3);
    buf.set(f, 3);
    expect(decodeFrame(buf.subarray(3))).toEqual({ ok: true, frame: { type: 'cancel', rendition: 'r', seq: 5, index: 3, count: 2 } });
  });
});
