/**
 * The channel's Ed25519 signing key (node:crypto). Kept as a hex-encoded 32-byte seed in
 * <keyDir>/<channel>.key (mode 0600), generated on first run; or given explicitly (env
 * STARLING_ORIGIN_KEY) as 64 hex digits.
 */
import {
  createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign as edSign, verify as edVerify, type KeyObject,
} from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CryptoProvider } from '../peer/core/types.js';
import { isValidName } from '../peer/core/paths.js';
import { bytesToHex, hexToBytes } from '../peer/core/crypto.js';

/** PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows. */
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
/** SPKI DER prefix of an Ed25519 public key; the 32 raw bytes follow. */
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export interface ChannelSigner {
  /** Raw 32-byte public key. */
  readonly publicKey: Uint8Array;
  readonly publicKeyHex: string;
  /** 64-byte Ed25519 signature. */
  sign(message: Uint8Array): Uint8Array;
}

export function signerFromSeed(seed: Uint8Array): ChannelSigner {
  if (seed.length !== 32) throw new Error('an Ed25519 seed is 32 bytes');
  const priv: KeyObject = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, Buffer.from(seed)]), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(priv).export({ format: 'der', type: 'spki' });
  const publicKey = new Uint8Array(spki.subarray(spki.length - 32));
  return {
    publicKey,
    publicKeyHex: bytesToHex(publicKey),
    sign: (message) => new Uint8Array(edSign(null, message, priv)),
  };
}

export function generateSeed(): Uint8Array {
  const { privateKey } = generateKeyPairSync('ed25519');
  const der = privateKey.export({ format: 'der', type: 'pkcs8' });
  return new Uint8Array(der.subarray(der.length - 32));
}

export interface LoadKeyOptions {
  channel: string;
  /** Directory of <channel>.key files (e.g. .starling/keys). */
  keyDir: string;
  /** 64 hex digits (a 32-byte seed); wins over the key file and is never written to disk. */
  seedHex?: string;
}

/** Loads the channel's key, creating and persisting one (0600) on first use. */
export async function loadOrCreateSigner(o: LoadKeyOptions): Promise<{ signer: ChannelSigner; created: boolean; file: string | null }> {
  if (!isValidName(o.channel)) throw new Error(`invalid channel name ${JSON.stringify(o.channel)}`);
  if (o.seedHex) {
    const seed = parseSeed(o.seedHex, 'the given key');
    return { signer: signerFromSeed(seed), created: false, file: null };
  }
  const file = join(o.keyDir, `${o.channel}.key`);
  let text: string | null = null;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text !== null) return { signer: signerFromSeed(parseSeed(text.trim(), file)), created: false, file };
  const seed = generateSeed();
  await mkdir(o.keyDir, { recursive: true, mode: 0o700 });
  try {
    await writeFile(file, `${bytesToHex(seed)}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another origin created it in the meantime: use theirs.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return { signer: signerFromSeed(parseSeed((await readFile(file, 'utf8')).trim(), file)), created: false, file };
  }
  await chmod(file, 0o600);
  return { signer: signerFromSeed(seed), created: true, file };
}

function parseSeed(hex: string, where: string): Uint8Array {
  if (!/^[0-9a-f]{64}$/i.test(hex)) throw new Error(`${where}: expected 64 hex digits (an Ed25519 seed)`);
  return hexToBytes(hex);
}

/** node:crypto CryptoProvider (SHA-256 via OpenSSL; Ed25519 verify via OpenSSL). */
export const nodeCrypto: CryptoProvider = {
  sha256: (data) => new Uint8Array(createHash('sha256').update(data).digest()),
  ed25519Verify: (signature, message, publicKey) => {
    try {
      if (publicKey.length !== 32 || signature.length !== 64) return false;
      const key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, Buffer.from(publicKey)]), format: 'der', type: 'spki' });
      return edVerify(null, message, key, signature);
    } catch {
      return false;
    }
  },
};
