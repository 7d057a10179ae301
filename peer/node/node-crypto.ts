/**
 * CryptoProvider on node:crypto (OpenSSL): several times faster than the pure-JS noble provider
 * for SHA-256 of 16 KiB pieces and for Ed25519 verification. Node hosts only.
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { CryptoProvider } from '../core/types.js';

/** DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); the raw 32-byte key follows. */
const ED25519_SPKI_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);

/** Raw 32-byte Ed25519 public key -> KeyObject (throws on a bad length). */
export function ed25519PublicKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new TypeError('Ed25519 public key must be 32 bytes');
  const der = new Uint8Array(ED25519_SPKI_PREFIX.length + 32);
  der.set(ED25519_SPKI_PREFIX, 0);
  der.set(raw, ED25519_SPKI_PREFIX.length);
  return createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' });
}

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

export function createNodeCrypto(): CryptoProvider {
  // One channel key verifies every manifest: cache the last few KeyObjects.
  const keys = new Map<string, KeyObject>();
  return {
    sha256(data: Uint8Array): Uint8Array {
      const d = createHash('sha256').update(toBuffer(data)).digest();
      return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    },
    ed25519Verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
      try {
        if (signature.length !== 64 || publicKey.length !== 32) return false;
        const id = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('hex');
        let key = keys.get(id);
        if (!key) {
          key = ed25519PublicKeyFromRaw(publicKey);
          if (keys.size >= 16) keys.delete(keys.keys().next().value as string);
          keys.set(id, key);
        }
        return verify(null, toBuffer(message), key, toBuffer(signature));
      } catch {
        return false;
      }
    },
  };
}

export const nodeCrypto: CryptoProvider = createNodeCrypto();
