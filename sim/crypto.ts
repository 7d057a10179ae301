/**
 * A cheap CryptoProvider for the simulator. Crypto is not what the simulator studies, and SHA-256
 * plus Ed25519 for millions of pieces would dominate the run time, so:
 * - sha256 is replaced by a fast non-cryptographic 32-byte digest (four FNV-1a-style lanes);
 * - signatures are a 64-byte expansion of that digest over the signed bytes; ed25519Verify accepts
 *   exactly the signatures simSign makes (a forged or corrupted manifest still fails).
 * The engine's verification code paths (manifest decode, per-piece check) all still run.
 */
import type { CryptoProvider } from '../peer/core/types.js';

export function simDigest(data: Uint8Array, out = new Uint8Array(32)): Uint8Array {
  let h0 = 0x811c9dc5, h1 = 0x01000193 ^ data.length, h2 = 0x9e3779b9, h3 = 0x85ebca6b;
  const n = data.length;
  for (let i = 0; i < n; i++) {
    const b = data[i];
    h0 = Math.imul(h0 ^ b, 0x01000193);
    h1 = Math.imul(h1 ^ b, 0x5bd1e995) ^ (h1 >>> 13);
    if ((i & 3) === 3) { h2 = Math.imul(h2 ^ h0, 0xcc9e2d51); h3 = Math.imul(h3 ^ h1, 0x1b873593) + i; }
  }
  const lanes = [h0, h1, h2, h3, h0 ^ h2, h1 ^ h3, Math.imul(h0, h3), Math.imul(h1, h2)];
  for (let k = 0; k < 8; k++) {
    let v = lanes[k] >>> 0;
    v = Math.imul(v ^ (v >>> 16), 0x85ebca6b) >>> 0;
    v = Math.imul(v ^ (v >>> 13), 0xc2b2ae35) >>> 0;
    v = (v ^ (v >>> 16)) >>> 0;
    out[k * 4] = v >>> 24; out[k * 4 + 1] = (v >>> 16) & 255; out[k * 4 + 2] = (v >>> 8) & 255; out[k * 4 + 3] = v & 255;
  }
  return out;
}

/** The sim origin's "signature": digest of the message, twice, with the key's first byte mixed in. */
export function simSign(message: Uint8Array, publicKey: Uint8Array): Uint8Array {
  const d = simDigest(message);
  const sig = new Uint8Array(64);
  sig.set(d, 0);
  for (let i = 0; i < 32; i++) sig[32 + i] = d[i] ^ publicKey[i];
  return sig;
}

export const simCrypto: CryptoProvider = {
  sha256: (data) => simDigest(data),
  ed25519Verify: (signature, message, publicKey) => {
    if (signature.length !== 64 || publicKey.length !== 32) return false;
    const want = simSign(message, publicKey);
    let diff = 0;
    for (let i = 0; i < 64; i++) diff |= want[i] ^ signature[i];
    return diff === 0;
  },
};
