import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nobleCrypto } from '../../../peer/core/crypto.js';
import { decodeManifest, describeSegment, ManifestError, signManifest, verifyPiece, pieceRange } from '../../../peer/core/manifest.js';
import { loadOrCreateSigner, nodeCrypto, signerFromSeed } from '../../../server/signer.js';

let dir: string;
beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'starling-signer-')); });
afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

describe('channel signer', () => {
  it('creates a 0600 key file on first use and reuses it', async () => {
    const a = await loadOrCreateSigner({ channel: 'demo', keyDir: join(dir, 'keys') });
    expect(a.created).toBe(true);
    const st = await stat(a.file!);
    expect(st.mode & 0o777).toBe(0o600);
    expect((await readFile(a.file!, 'utf8')).trim()).toMatch(/^[0-9a-f]{64}$/);
    const b = await loadOrCreateSigner({ channel: 'demo', keyDir: join(dir, 'keys') });
    expect(b.created).toBe(false);
    expect(b.signer.publicKeyHex).toBe(a.signer.publicKeyHex);
    const other = await loadOrCreateSigner({ channel: 'other', keyDir: join(dir, 'keys') });
    expect(other.signer.publicKeyHex).not.toBe(a.signer.publicKeyHex);
  });

  it('takes an explicit seed (env) without touching the disk', async () => {
    const seed = '11'.repeat(32);
    const r = await loadOrCreateSigner({ channel: 'demo', keyDir: join(dir, 'nokeys'), seedHex: seed });
    expect(r.file).toBeNull();
    expect(r.signer.publicKeyHex).toBe(signerFromSeed(new Uint8Array(32).fill(0x11)).publicKeyHex);
    await expect(stat(join(dir, 'nokeys'))).rejects.toThrow();
    await expect(loadOrCreateSigner({ channel: 'demo', keyDir: dir, seedHex: 'zz' })).rejects.toThrow(/64 hex/);
  });

  it('signs manifests that decodeManifest (noble) verifies, and only with the right key', async () => {
    const { signer } = await loadOrCreateSigner({ channel: 'demo', keyDir: dir });
    const data = new Uint8Array(40_000).map((_, i) => (i * 7) & 0xff);
    const m = signManifest(describeSegment(nodeCrypto, {
      channel: 'demo', rendition: '360p', seq: 42, pieceSize: 16_384, durationMs: 2000, createdAt: 1.5e12,
    }, data), signer.sign);
    const back = decodeManifest(m.encoded, signer.publicKey, nobleCrypto);
    expect(back.seq).toBe(42);
    expect(back.pieceHashes.length).toBe(3);
    for (let i = 0; i < 3; i++) {
      const [s, e] = pieceRange(back, i);
      expect(verifyPiece(nobleCrypto, back, i, data.subarray(s, e))).toBe(true);
    }
    // node:crypto and noble agree on SHA-256 and on verification
    expect(nodeCrypto.sha256(data)).toEqual(nobleCrypto.sha256(data));
    expect(nodeCrypto.ed25519Verify(m.signature, m.encoded.subarray(0, m.encoded.length - 64), signer.publicKey)).toBe(true);
    const wrong = signerFromSeed(new Uint8Array(32).fill(3));
    expect(() => decodeManifest(m.encoded, wrong.publicKey, nobleCrypto)).toThrow(ManifestError);
    const tampered = m.encoded.slice();
    tampered[20] ^= 1;
    expect(() => decodeManifest(tampered, signer.publicKey, nobleCrypto)).toThrow(ManifestError);
  });
});
