/** peer/node adapters: node:crypto provider (against noble) and the fetch-based HttpSource. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ed25519 } from '@noble/curves/ed25519';
import { nobleCrypto } from '../../../peer/core/crypto.js';
import { nodeCrypto } from '../../../peer/node/node-crypto.js';
import { NodeHttpSource } from '../../../peer/node/http-source.js';
import { defaultOriginUrl } from '../../../peer/node/seed.js';

describe('nodeCrypto', () => {
  it('matches noble for sha256 and Ed25519 verification', () => {
    const data = new Uint8Array(20000).map((_, i) => (i * 7) & 0xff);
    expect(Buffer.from(nodeCrypto.sha256(data))).toEqual(Buffer.from(nobleCrypto.sha256(data)));
    expect(Buffer.from(nodeCrypto.sha256(data.subarray(5, 100)))).toEqual(Buffer.from(nobleCrypto.sha256(data.subarray(5, 100))));
    const priv = ed25519.utils.randomPrivateKey();
    const pub = ed25519.getPublicKey(priv);
    const msg = new TextEncoder().encode('manifest bytes');
    const sig = ed25519.sign(msg, priv);
    expect(nodeCrypto.ed25519Verify(sig, msg, pub)).toBe(true);
    const bad = sig.slice();
    bad[0] ^= 1;
    expect(nodeCrypto.ed25519Verify(bad, msg, pub)).toBe(false);
    expect(nodeCrypto.ed25519Verify(sig, new TextEncoder().encode('other'), pub)).toBe(false);
    expect(nodeCrypto.ed25519Verify(sig, msg, pub.slice(0, 31))).toBe(false);
    expect(nodeCrypto.ed25519Verify(sig.slice(0, 63), msg, pub)).toBe(false);
  });
});

describe('NodeHttpSource', () => {
  const segment = new Uint8Array(50_000).map((_, i) => (i * 13) & 0xff);
  let server: Server;
  let base = '';
  let ignoreRange = false;
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/live/demo/360p/seg_7.m4s.manifest') {
        res.writeHead(200, { 'content-length': '3' }).end(Buffer.from([1, 2, 3]));
      } else if (req.url === '/live/demo/360p/seg_7.m4s') {
        const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
        if (m && !ignoreRange) {
          const body = segment.subarray(Number(m[1]), Number(m[2]) + 1);
          res.writeHead(206, { 'content-length': String(body.length) }).end(Buffer.from(body));
        } else res.writeHead(200).end(Buffer.from(segment));
      } else if (req.url === '/live/demo/360p/init.mp4') {
        res.writeHead(206).end(Buffer.from([1])); // wrong length
      } else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('fetches manifests and byte ranges, checking status and length', async () => {
    const src = new NodeHttpSource({ baseUrl: base, channel: 'demo' });
    const ref = { rendition: '360p', seq: 7 };
    expect(Array.from(await src.fetchManifest(ref))).toEqual([1, 2, 3]);
    expect(Buffer.from(await src.fetchRange(ref, 16384, 32768))).toEqual(Buffer.from(segment.subarray(16384, 32768)));
    expect((await src.fetchRange(ref, 5, 5)).length).toBe(0);
    ignoreRange = true;
    expect(Buffer.from(await src.fetchRange(ref, 49_000, 50_000))).toEqual(Buffer.from(segment.subarray(49_000)));
    await expect(src.fetchRange(ref, 49_000, 50_001)).rejects.toThrow(/wanted/);
    ignoreRange = false;
    await expect(src.fetchRange({ rendition: '360p', seq: -1 }, 0, 10)).rejects.toThrow(/got 1 bytes/);
    await expect(src.fetchManifest({ rendition: '360p', seq: 8 })).rejects.toThrow(/404/);
    await expect(src.fetchRange(ref, 10, 5)).rejects.toThrow(RangeError);
  });

  it('derives the default origin from the tracker URL', () => {
    expect(defaultOriginUrl('ws://10.0.0.5:8000/ws')).toBe('http://10.0.0.5:8080');
    expect(defaultOriginUrl('wss://tracker.example/ws')).toBe('https://tracker.example:8080');
  });
});
