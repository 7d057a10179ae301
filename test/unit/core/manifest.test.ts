import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ed25519 } from '@noble/curves/ed25519';
import { nobleCrypto } from '../../../peer/core/crypto.js';
import {
  decodeManifest, describeSegment, ManifestError, pieceRange, signManifest, verifyPiece, DEFAULT_PIECE_SIZE,
} from '../../../peer/core/manifest.js';
import { INIT_SEQ } from '../../../peer/core/types.js';

const sk = ed25519.utils.randomPrivateKey();
const pk = ed25519.getPublicKey(sk);
const sign = (m: Uint8Array) => ed25519.sign(m, sk);

function segment(size: number, seq = 42) {
  const data = new Uint8Array(size).map((_, i) => (Math.imul(i + seq, 2654435761) >>> 13) & 0xff);
  const m = signManifest(describeSegment(nobleCrypto, {
    channel: 'demo', rendition: '360p', seq, pieceSize: DEFAULT_PIECE_SIZE, durationMs: 2000, createdAt: 1_700_000_000_000,
  }, data), sign);
  return { data, m };
}

describe('signed manifests', () => {
  it('round-trip and verify every piece', () => {
    const { data, m } = segment(100_000);
    const d = decodeManifest(m.encoded, pk, nobleCrypto);
    expect(d).toMatchObject({ channel: 'demo', rendition: '360p', seq: 42, size: 100_000, pieceSize: 16384, durationMs: 2000 });
    expect(d.pieceHashes).toHaveLength(7);
    for (let i = 0; i < 7; i++) {
      const [a, b] = pieceRange(d, i);
      expect(verifyPiece(nobleCrypto, d, i, data.subarray(a, b))).toBe(true);
    }
    expect(verifyPiece(nobleCrypto, d, 7, new Uint8Array(0))).toBe(false);
  });

  it('handles init segments and empty segments', () => {
    const init = signManifest(describeSegment(nobleCrypto, {
      channel: 'demo', rendition: '240p', seq: INIT_SEQ, pieceSize: DEFAULT_PIECE_SIZE, durationMs: 0, createdAt: 0,
    }, new Uint8Array(700)), sign);
    expect(decodeManifest(init.encoded, pk, nobleCrypto).seq).toBe(INIT_SEQ);
    const { m } = segment(0);
    expect(decodeManifest(m.encoded, pk, nobleCrypto).pieceHashes).toHaveLength(0);
  });

  it('rejects a corrupted piece, a piece of the wrong length and a wrong index', () => {
    const { data, m } = segment(40_000);
    const bad = data.slice(0, 16384);
    bad[100] ^= 1;
    expect(verifyPiece(nobleCrypto, m, 0, bad)).toBe(false);
    expect(verifyPiece(nobleCrypto, m, 0, data.subarray(0, 16383))).toBe(false);
    expect(verifyPiece(nobleCrypto, m, 1, data.subarray(0, 16384))).toBe(false);
    expect(verifyPiece(nobleCrypto, m, -1, data.subarray(0, 16384))).toBe(false);
  });

  it('rejects any flipped byte, any truncation, trailing bytes and another key', () => {
    const { m } = segment(50_000);
    fc.assert(fc.property(fc.integer({ min: 0, max: m.encoded.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, x) => {
      const b = m.encoded.slice();
      b[at] ^= x;
      expect(() => decodeManifest(b, pk, nobleCrypto)).toThrow(ManifestError);
    }), { numRuns: 200 });
    for (let n = 0; n < m.encoded.length; n += 7) {
      expect(() => decodeManifest(m.encoded.subarray(0, n), pk, nobleCrypto)).toThrow(ManifestError);
    }
    const longer = new Uint8Array(m.encoded.length + 1);
    longer.set(m.encoded);
    expect(() => decodeManifest(longer, pk, nobleCrypto)).toThrow(ManifestError);
    const other = ed25519.getPublicKey(ed25519.utils.randomPrivateKey());
    expect(() => decodeManifest(m.encoded, other, nobleCrypto)).toThrow(/bad signature/);
  });

  it('never throws anything but ManifestError on random input', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (b) => {
      try {
        decodeManifest(b, pk, nobleCrypto);
      } catch (err) {
        expect(err).toBeInstanceOf(ManifestError);
      }
    }), { numRuns: 300 });
  });
});
