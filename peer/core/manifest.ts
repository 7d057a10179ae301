/**
 * The origin's signed record of one segment. Binary layout (big-endian), used both on the wire
 * (MANIFEST frame payload) and over HTTP (<segment>.manifest):
 *
 *   u8  version (=1)
 *   u8  channel length, channel (ASCII)
 *   u8  rendition length, rendition (ASCII)
 *   i32 seq (INIT_SEQ = -1 for the init segment)
 *   u32 size (bytes)
 *   u32 pieceSize
 *   u32 duration (milliseconds; 0 for init)
 *   f64 createdAt (origin wall clock, ms since epoch: for latency figures only, never trusted for order)
 *   u32 piece count, then 32-byte SHA-256 of each piece
 *   64-byte Ed25519 signature over every byte before it
 */
import type { CryptoProvider } from './types.js';
import { isValidName } from './paths.js';

export const MANIFEST_VERSION = 1;
export const DEFAULT_PIECE_SIZE = 16 * 1024;
/** A segment may be at most 64 MiB and have at most 4096 pieces: bounds every decoder. */
export const MAX_SEGMENT_BYTES = 64 * 1024 * 1024;
export const MAX_PIECES = 4096;
export const MAX_PIECE_SIZE = 64 * 1024;
const HASH_BYTES = 32;
const SIG_BYTES = 64;

export interface UnsignedManifest {
  channel: string;
  rendition: string;
  seq: number;
  size: number;
  pieceSize: number;
  durationMs: number;
  createdAt: number;
  pieceHashes: Uint8Array[];
}

export interface Manifest extends UnsignedManifest {
  signature: Uint8Array;
  /** The complete binary encoding (what was signed + signature), kept for forwarding. */
  encoded: Uint8Array;
}

export class ManifestError extends Error {}

export function pieceCount(size: number, pieceSize: number): number {
  return Math.ceil(size / pieceSize);
}

/** Byte range [start, end) of piece `index`. */
export function pieceRange(m: Pick<UnsignedManifest, 'size' | 'pieceSize'>, index: number): [number, number] {
  const start = index * m.pieceSize;
  return [start, Math.min(m.size, start + m.pieceSize)];
}

function checkFields(m: UnsignedManifest): void {
  if (!isValidName(m.channel) || !isValidName(m.rendition)) throw new ManifestError('bad name');
  if (!Number.isInteger(m.seq) || m.seq < -1 || m.seq > 0x7fffffff) throw new ManifestError('bad seq');
  if (!Number.isInteger(m.size) || m.size < 0 || m.size > MAX_SEGMENT_BYTES) throw new ManifestError('bad size');
  if (!Number.isInteger(m.pieceSize) || m.pieceSize < 1 || m.pieceSize > MAX_PIECE_SIZE) throw new ManifestError('bad piece size');
  if (!Number.isInteger(m.durationMs) || m.durationMs < 0 || m.durationMs > 0xffffffff) throw new ManifestError('bad duration');
  if (!Number.isFinite(m.createdAt)) throw new ManifestError('bad createdAt');
  const n = pieceCount(m.size, m.pieceSize);
  if (n > MAX_PIECES || m.pieceHashes.length !== n) throw new ManifestError('bad piece count');
  for (const h of m.pieceHashes) if (h.length !== HASH_BYTES) throw new ManifestError('bad hash length');
}

/** The bytes the signature covers. */
export function encodeUnsigned(m: UnsignedManifest): Uint8Array {
  checkFields(m);
  const ch = new TextEncoder().encode(m.channel);
  const rn = new TextEncoder().encode(m.rendition);
  const len = 1 + 1 + ch.length + 1 + rn.length + 4 + 4 + 4 + 4 + 8 + 4 + HASH_BYTES * m.pieceHashes.length;
  const out = new Uint8Array(len);
  const dv = new DataView(out.buffer);
  let o = 0;
  out[o++] = MANIFEST_VERSION;
  out[o++] = ch.length; out.set(ch, o); o += ch.length;
  out[o++] = rn.length; out.set(rn, o); o += rn.length;
  dv.setInt32(o, m.seq); o += 4;
  dv.setUint32(o, m.size); o += 4;
  dv.setUint32(o, m.pieceSize); o += 4;
  dv.setUint32(o, m.durationMs); o += 4;
  dv.setFloat64(o, m.createdAt); o += 8;
  dv.setUint32(o, m.pieceHashes.length); o += 4;
  for (const h of m.pieceHashes) { out.set(h, o); o += HASH_BYTES; }
  return out;
}

/** Builds the unsigned manifest of a segment: hashes every piece. */
export function describeSegment(
  crypto: Pick<CryptoProvider, 'sha256'>,
  fields: Omit<UnsignedManifest, 'pieceHashes' | 'size'>,
  data: Uint8Array,
): UnsignedManifest {
  const pieceHashes: Uint8Array[] = [];
  for (let start = 0; start < data.length; start += fields.pieceSize) {
    pieceHashes.push(crypto.sha256(data.subarray(start, Math.min(data.length, start + fields.pieceSize))));
  }
  return { ...fields, size: data.length, pieceHashes };
}

/** Signs with a caller-supplied signer (the origin holds the private key; core never does). */
export function signManifest(m: UnsignedManifest, sign: (message: Uint8Array) => Uint8Array): Manifest {
  const body = encodeUnsigned(m);
  const signature = sign(body);
  if (signature.length !== SIG_BYTES) throw new ManifestError('bad signature length');
  const encoded = new Uint8Array(body.length + SIG_BYTES);
  encoded.set(body, 0);
  encoded.set(signature, body.length);
  return { ...m, signature, encoded };
}

/**
 * Parses and verifies a manifest against the channel's public key. Throws ManifestError on any
 * malformed field, trailing byte or bad signature: a manifest that returns is authentic.
 */
export function decodeManifest(bytes: Uint8Array, publicKey: Uint8Array, crypto: CryptoProvider): Manifest {
  if (bytes.length < 1 + 1 + 1 + 28 + SIG_BYTES) throw new ManifestError('truncated');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 0;
  const need = (n: number) => { if (o + n > bytes.length - SIG_BYTES) throw new ManifestError('truncated'); };
  need(1);
  if (bytes[o++] !== MANIFEST_VERSION) throw new ManifestError('unsupported version');
  const readName = () => {
    need(1);
    const n = bytes[o++];
    need(n);
    const s = new TextDecoder().decode(bytes.subarray(o, o + n));
    o += n;
    return s;
  };
  const channel = readName();
  const rendition = readName();
  need(28);
  const seq = dv.getInt32(o); o += 4;
  const size = dv.getUint32(o); o += 4;
  const pieceSize = dv.getUint32(o); o += 4;
  const durationMs = dv.getUint32(o); o += 4;
  const createdAt = dv.getFloat64(o); o += 8;
  const count = dv.getUint32(o); o += 4;
  if (count > MAX_PIECES) throw new ManifestError('too many pieces');
  need(count * HASH_BYTES);
  // One copy of the whole encoding; the hashes and the signature are views into it. A viewer
  // keeps a manifest per segment of its window, and a copy per hash was two objects and a backing
  // store each (the simulator's 10,000 viewers held 1.6 million of them).
  const encoded = bytes.slice();
  const pieceHashes: Uint8Array[] = [];
  for (let i = 0; i < count; i++) { pieceHashes.push(encoded.subarray(o, o + HASH_BYTES)); o += HASH_BYTES; }
  if (o !== bytes.length - SIG_BYTES) throw new ManifestError('trailing bytes');
  const unsigned: UnsignedManifest = { channel, rendition, seq, size, pieceSize, durationMs, createdAt, pieceHashes };
  checkFields(unsigned);
  const signature = encoded.subarray(o, o + SIG_BYTES);
  if (!crypto.ed25519Verify(signature, encoded.subarray(0, o), publicKey)) throw new ManifestError('bad signature');
  return { ...unsigned, signature, encoded };
}

/** True if `data` is exactly piece `index` of the manifest's segment. */
export function verifyPiece(crypto: Pick<CryptoProvider, 'sha256'>, m: UnsignedManifest, index: number, data: Uint8Array): boolean {
  if (!Number.isInteger(index) || index < 0 || index >= m.pieceHashes.length) return false;
  const [start, end] = pieceRange(m, index);
  if (data.length !== end - start) return false;
  const h = crypto.sha256(data);
  const want = m.pieceHashes[index];
  let diff = 0;
  for (let i = 0; i < h.length; i++) diff |= h[i] ^ want[i];
  return diff === 0;
}
