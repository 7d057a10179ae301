/**
 * Issue 8: the Node peers' HTTP fallback (peer/node/http-source.ts) after a network move. A local
 * origin keeps answering new connections but stops answering on every connection that was open
 * before the "move" (as when a NAT mapping dies: packets on the old connection vanish, nothing
 * resets it). The first request on a dead pooled connection times out; that timeout drops every
 * pooled connection, so the next fallback fetch opens a fresh one and works at once.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { Socket, AddressInfo } from 'node:net';
import { NodeHttpSource } from '../../../peer/node/http-source.js';

const MANIFEST = Buffer.from([9, 8, 7]);

describe('NodeHttpSource: dead keep-alive connections after a network move', () => {
  let server: Server;
  let base = '';
  /** Connections that no longer answer ("before the move"). */
  const dead = new Set<Socket>();
  const open = new Set<Socket>();
  let closedByClient = 0;
  let served = 0;

  beforeEach(async () => {
    dead.clear();
    open.clear();
    closedByClient = 0;
    served = 0;
    server = createServer((req, res) => {
      if (dead.has(req.socket)) return; // a black hole: no answer, no reset
      served++;
      // slow enough that concurrent requests need several pooled connections
      setTimeout(() => res.writeHead(200, { 'content-length': String(MANIFEST.length) }).end(MANIFEST), 30);
    });
    server.keepAliveTimeout = 60_000;
    server.on('connection', (s) => {
      open.add(s);
      s.on('close', () => {
        open.delete(s);
        if (dead.has(s)) closedByClient++;
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterEach(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const ref = (seq: number) => ({ rendition: '360p', seq });

  it('a timeout drops every pooled connection; the next fetch opens a fresh one and works', async () => {
    const src = new NodeHttpSource({ baseUrl: base, channel: 'demo', timeoutMs: 400 });
    // Three concurrent fetches leave three keep-alive connections in the pool.
    const first = await Promise.all([1, 2, 3].map((s) => src.fetchManifest(ref(s))));
    expect(first.map((b) => Buffer.from(b))).toEqual([MANIFEST, MANIFEST, MANIFEST]);
    await new Promise((r) => setTimeout(r, 20));
    expect(open.size).toBe(3);
    // The network moves: every connection open so far is dead.
    for (const s of open) dead.add(s);

    const t0 = performance.now();
    await expect(src.fetchManifest(ref(4))).rejects.toThrow(/timed out after 400 ms/);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(src.counters).toMatchObject({ timeouts: 1, connectionResets: 1 });

    // The next fallback fetch: a fresh connection, answered at once (no second timeout on
    // another dead pooled connection).
    const t1 = performance.now();
    expect(Buffer.from(await src.fetchManifest(ref(5)))).toEqual(MANIFEST);
    expect(performance.now() - t1).toBeLessThan(300);
    // And the ones after it, concurrently too.
    const more = await Promise.all([6, 7, 8].map((s) => src.fetchManifest(ref(s))));
    expect(more.every((b) => Buffer.from(b).equals(MANIFEST))).toBe(true);
    expect(src.counters.timeouts).toBe(1);
    // The client closed the dead connections (nothing left pooled on them).
    await new Promise((r) => setTimeout(r, 50));
    expect(closedByClient).toBe(3);
    expect([...open].filter((s) => dead.has(s))).toEqual([]);
    src.close();
  });

  it('without a timeout the keep-alive connection is reused (one connection for sequential fetches)', async () => {
    const src = new NodeHttpSource({ baseUrl: base, channel: 'demo', timeoutMs: 2000 });
    let connections = 0;
    server.on('connection', () => connections++);
    for (let s = 1; s <= 5; s++) expect(Buffer.from(await src.fetchManifest(ref(s)))).toEqual(MANIFEST);
    expect(connections).toBe(1);
    expect(served).toBe(5);
    expect(src.counters).toMatchObject({ requests: 5, failures: 0, timeouts: 0, connectionResets: 0 });
    src.close();
  });

  it('a request in flight on the old connections when another one times out still completes', async () => {
    const src = new NodeHttpSource({ baseUrl: base, channel: 'demo', timeoutMs: 300 });
    await Promise.all([1, 2].map((s) => src.fetchManifest(ref(s))));
    await new Promise((r) => setTimeout(r, 20));
    const [a] = [...open];
    dead.add(a); // only one of the two connections dies
    const results = await Promise.allSettled([src.fetchManifest(ref(3)), src.fetchManifest(ref(4))]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(Buffer.from(await src.fetchManifest(ref(5)))).toEqual(MANIFEST);
    src.close();
  });
});
