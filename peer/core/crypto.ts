/**
 * Pure-JS CryptoProvider (noble): runs unchanged in browsers, Node and the simulator.
 * Node hosts may inject a faster node:crypto provider (peer/node/node-crypto.ts).
 */
import { sha256 } from '@noble/hashes/sha2';
import { ed25519 } from '@noble/curves/ed25519';
import type { CryptoProvider } from './types.js';

/**
 * Builds the signature check's precomputed tables now rather than at the first manifest, which
 * costs ~40-100 ms of a page's main thread just when its first segments are due: a player calls
 * it at start, while its first request is in flight.
 */
export function warmUpCrypto(): void {
  try {
    ed25519.getPublicKey(new Uint8Array(32).fill(1));
  } catch {
    /* only a warm-up */
  }
}

export const nobleCrypto: CryptoProvider = {
  sha256: (data) => sha256(data),
  ed25519Verify: (signature, message, publicKey) => {
    try {
      return ed25519.verify(signature, message, publicKey);
    } catch {
      return false;
    }
  },
};

export function hexToBytes(hex: string): Uint8Array {
  if (!/^([0-9a-f]{2})*$/i.test(hex)) throw new Error('not hex');
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function bytesToHex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}
