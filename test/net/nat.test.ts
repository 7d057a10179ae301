/**
 * NAT traversal on real NATs (issue 8). Inside test/netns.sh's private namespace (root there),
 * test/net/natlab/topology.ts builds a public bridge and NAT gateways in `ip netns` namespaces
 * with iptables (full cone, port-restricted cone, symmetric), one werift peer behind each
 * (test/net/natlab/peer.ts, a subprocess run with `ip netns exec`) and a Chromium page behind a
 * symmetric NAT. The public host (this process) runs the tracker, an RFC 5780 STUN server
 * (tracker/stun-nat.ts) and coturn with REST credentials, and later the origin.
 *   flock /tmp/starling-net.lock bash test/netns.sh npx vitest run test/net/nat.test.ts
 * Reports the matrix (direct / via TURN / failed, time to connect) for every pair; expects every
 * pair to connect, directly whenever the NAT-pair table (tracker/nat.ts) predicts it, through
 * TURN otherwise; then a live stream among the NATed peers with every segment intact, during
 * which one NAT changes its public address (a network change) and its peer's links must recover
 * (by ICE restart, in place: test/net/ice-restart.test.ts measures that pair by pair).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, createHash } from 'node:crypto';
import { writeFileSync, mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLab, labUnavailableReason, renumberSite, PUBLIC_IP, ALT_IP, type Lab, type Site, type NatKind } from './natlab/topology.js';
import { startCoturn, startLabPeer, stopAll, removeDir, type Coturn, type LabProcess, type LabEvent } from './natlab/procs.js';
import { startRfc5780Server, type Rfc5780Server } from '../../tracker/stun-nat.js';
import { launchTracker, type LaunchedTracker } from '../../tracker/launch.js';
import { predictPair, type NatType } from '../../tracker/nat.js';
import { turnCredentials } from '../../tracker/ice.js';
import { turnAllocate } from './natlab/turn-probe.js';

const unavailable = labUnavailableReason();
if (unavailable) console.warn(`\n[nat] SKIPPED: the NAT lab cannot run here: ${unavailable}\n`);

const STUN_PORT = 3478;
const TURN_PORT = 3480;
/** Longest wait for the renumbered peer's links to recover (ICE restart; a reconnect as the fallback). */
const RECOVERY_LIMIT_SECONDS = 60;
/** When (s into the stream) prcA's network changes (its gateway gets a new public address). */
const CHANGE_AT_SECONDS = 8;
const SITES: { name: string; kind: NatKind }[] = [
  { name: 'fullA', kind: 'full-cone' },
  { name: 'fullB', kind: 'full-cone' },
  { name: 'prcA', kind: 'port-restricted' },
  { name: 'prcB', kind: 'port-restricted' },
  { name: 'symA', kind: 'symmetric' },
  { name: 'symB', kind: 'symmetric' },
];
/** The Chromium page's site (no werift peer there). */
const BROWSER_SITE = { name: 'chrome', kind: 'symmetric' as NatKind };
const EXPECTED_NAT: Record<NatKind, NatType> = { open: 'open', 'full-cone': 'full-cone', 'port-restricted': 'port-restricted', symmetric: 'symmetric' };

export interface MatrixRow {
  a: string;
  b: string;
  aNat: NatType;
  bNat: NatType;
  result: 'direct' | 'relay' | 'failed';
  ms: number | null;
  pair: string;
  predicted: string;
}

describe.skipIf(unavailable !== null)('NAT traversal on real NATs (network namespaces + iptables + coturn)', () => {
  let lab: Lab;
  let stun: Rfc5780Server;
  let coturn: Coturn;
  let tracker: LaunchedTracker;
  const peers = new Map<string, { site: Site; proc: LabProcess; peerId: string; nat: NatType }>();
  const matrix: MatrixRow[] = [];

  beforeAll(async () => {
    lab = createLab([...SITES, BROWSER_SITE]);
    try {
      stun = await startRfc5780Server({ primaryIp: PUBLIC_IP, alternateIp: ALT_IP, port: STUN_PORT });
      coturn = await startCoturn({ ip: PUBLIC_IP, port: TURN_PORT, secret: randomBytes(16).toString('hex'), minPort: 50000, maxPort: 50999 });
      tracker = await launchTracker({
        port: 0,
        host: PUBLIC_IP,
        stunPort: 0,
        publicHost: PUBLIC_IP,
        turn: { urls: coturn.url, secret: coturn.secret },
        extraIceServers: [{ urls: `stun:${PUBLIC_IP}:${STUN_PORT}` }],
      });
      const trackerUrl = tracker.wsUrls[0];
      await Promise.all(
        lab.sites.filter((s) => s.name !== BROWSER_SITE.name).map(async (site) => {
          const proc = startLabPeer(site.hostNs, site.name, { trackerUrl, stun: { host: PUBLIC_IP, port: STUN_PORT }, matrixChannel: 'natlab-matrix' });
          const joined = await proc.wait((e) => e.ev === 'joined' || e.ev === 'fatal', 60_000, 'join');
          if (joined.ev === 'fatal') throw new Error(`${site.name}: ${String(joined.err)}`);
          const nat = (await proc.wait((e) => e.ev === 'nat', 10_000, 'nat')).nat as { type: NatType };
          peers.set(site.name, { site, proc, peerId: joined.peerId as string, nat: nat.type });
        }),
      );
    } catch (err) {
      await stopAll();
      lab.destroy();
      throw err;
    }
  });

  afterAll(async () => {
    for (const p of peers.values()) p.proc.send({ cmd: 'exit' });
    await new Promise((r) => setTimeout(r, 300));
    await stopAll();
    await tracker?.close();
    await stun?.close();
    if (coturn) removeDir(coturn.dir);
    lab?.destroy();
  });

  it('coturn accepts the REST credentials the tracker hands out, and refuses wrong or expired ones', async () => {
    const server = { host: PUBLIC_IP, port: TURN_PORT };
    const fresh = turnCredentials(coturn.secret, 'probe-peer', Date.now());
    const ok = await turnAllocate(server, fresh.username, fresh.credential);
    expect(ok).toMatchObject({ ok: true });
    console.log(`[nat] coturn allocated ${ok.ok ? ok.relayed : '?'} for ${fresh.username}`);
    const wrong = turnCredentials('not-the-secret', 'probe-peer', Date.now());
    expect(await turnAllocate(server, wrong.username, wrong.credential)).toMatchObject({ ok: false, code: 401 });
    const expired = turnCredentials(coturn.secret, 'probe-peer', Date.now() - 7200_000);
    expect(await turnAllocate(server, expired.username, expired.credential)).toMatchObject({ ok: false, code: 401 });
    // What the welcome carries is exactly that scheme.
    const welcome = peers.get('symA')!.proc.events.find((e) => e.ev === 'joined')!;
    expect(welcome.iceServers).toContain(coturn.url);
  });

  it('every peer discovers its NAT behaviour (RFC 5780 mapping + filtering)', () => {
    const found = Object.fromEntries([...peers].map(([n, p]) => [n, p.nat]));
    console.log('[nat] discovered:', JSON.stringify(found));
    for (const s of SITES) expect(found[s.name], s.name).toBe(EXPECTED_NAT[s.kind]);
  });

  it('every pair of werift peers connects: directly where hole punching works, through TURN otherwise', async () => {
    const names = SITES.map((s) => s.name);
    let id = 0;
    for (let i = 0; i < names.length; i++) {
      for (let j = i + 1; j < names.length; j++) {
        const a = peers.get(names[i])!;
        const b = peers.get(names[j])!;
        const n = ++id;
        a.proc.send({ cmd: 'connect', to: b.peerId, id: n });
        const ev = await a.proc.wait((e) => (e.ev === 'echo' || e.ev === 'failed') && e.id === n, 30_000, `pair ${n}`).catch((err) => {
          // what each end last reported (a link that opened without an echo, ICE events), for the next look
          console.log(`[nat] pair ${n} ${a.site.name}<->${b.site.name} stuck; ${a.site.name}: ${JSON.stringify(a.proc.events.slice(-6))}; ${b.site.name}: ${JSON.stringify(b.proc.events.slice(-6))}`);
          throw err;
        });
        const link = a.proc.events.find((e) => e.ev === 'link' && e.id === n);
        // Each end's path once the echo ran (an agent may move off the pair it opened on).
        const bPath = await b.proc.wait((e) => e.ev === 'path' && e.remote === a.peerId, 5000, 'path at B').catch(() => null);
        const aRelayed = (ev.info as { relayed?: boolean } | null | undefined)?.relayed;
        const bRelayed = (bPath?.info as { relayed?: boolean } | null | undefined)?.relayed;
        // both ends send on the same kind of path (never one direct and one through TURN)
        if (ev.ev === 'echo') expect(bRelayed, `${a.site.name}<->${b.site.name}: both ends on the same path`).toBe(aRelayed);
        const relayed = Boolean(aRelayed || bRelayed);
        const result = ev.ev === 'failed' || ev.ok !== true ? 'failed' : relayed ? 'relay' : 'direct';
        const row: MatrixRow = {
          a: a.site.name, b: b.site.name, aNat: a.nat, bNat: b.nat, result,
          ms: link ? (link.ms as number) : null,
          pair: `${(link?.info as { local?: string } | null)?.local ?? '?'}-${(link?.info as { remote?: string } | null)?.remote ?? '?'}`,
          predicted: predictPair(EXPECTED_NAT[a.site.kind], EXPECTED_NAT[b.site.kind]),
        };
        matrix.push(row);
        console.log(`[nat] ${row.a} (${row.aNat}) <-> ${row.b} (${row.bNat}): ${row.result} in ${row.ms} ms (selected pair ${row.pair}; table predicts ${row.predicted})`);
      }
    }
    printMatrix(matrix);
    printSummary(matrix);
    for (const r of matrix) {
      expect(r.result, `${r.a}<->${r.b}`).not.toBe('failed');
      expect(r.result, `${r.a}<->${r.b}`).toBe(r.predicted === 'relay' ? 'relay' : 'direct');
    }
    // The tracker counted the attempts and outcomes per NAT pair.
    const metrics = await (await fetch(`${tracker.httpUrls[0]}/metrics`)).text();
    expect(metrics).toMatch(/starling_tracker_nat_pair_attempts_total\{pair="symmetric\|symmetric"\} [1-9]/);
    expect(metrics).toMatch(/starling_tracker_nat_pair_outcomes_total\{pair="symmetric\|symmetric",outcome="relayed"\} [1-9]/);
  });

  it('a Chromium page behind a symmetric NAT connects to every werift peer (TURN where needed)', async () => {
    const { build } = await import('esbuild');
    const { chromium } = await import('playwright-core');
    const { CHROMIUM_ARGS } = await import('./chromium.js');
    const root = new URL('../..', import.meta.url).pathname;
    const bundle = await build({
      stdin: {
        contents: `import { createBrowserTransport } from './peer/transport/browser-transport.ts';
          (window as any).__transport = createBrowserTransport();`,
        resolveDir: root,
        loader: 'ts',
      },
      bundle: true, format: 'iife', write: false, logLevel: 'silent',
    });
    // Chromium runs inside the browser site's host namespace: a wrapper enters it (playwright
    // talks to the browser over pipes, which cross namespaces).
    const site = lab.sites.find((x) => x.name === BROWSER_SITE.name)!;
    const dir = mkdtempSync(join(tmpdir(), 'starling-natlab-chromium-'));
    const wrapper = join(dir, 'chromium-in-netns');
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${site.hostNs} ${process.env.STARLING_CHROMIUM ?? '/usr/bin/chromium'} "$@"\n`);
    chmodSync(wrapper, 0o755);
    const browser = await chromium.launch({ executablePath: wrapper, headless: true, args: CHROMIUM_ARGS });
    try {
      const page = await browser.newPage();
      page.on('pageerror', (e) => console.log('[nat page error]', e.message));
      await page.setContent('<html><body>NAT lab</body></html>');
      await page.addScriptTag({ content: bundle.outputFiles[0].text });
      const pageId = `lab-chrome-${process.pid}`;
      // The page: join the matrix channel, answer every offer, echo, remember each link's ConnectionInfo.
      await page.evaluate(
        ({ url, pageId }) =>
          new Promise<void>((resolve, reject) => {
            const w = window as any;
            w.__links = {};
            w.__opened = {};
            const conns = new Map<string, any>();
            const ws = new WebSocket(url);
            ws.onerror = () => reject(new Error('page: tracker websocket failed'));
            ws.onopen = () => ws.send(JSON.stringify({ type: 'join', channel: 'natlab-matrix', kind: 'browser', peerId: pageId }));
            ws.onmessage = (ev) => {
              const m = JSON.parse(ev.data);
              if (m.type === 'welcome') {
                w.__ice = m.iceServers;
                resolve();
              } else if (m.type === 'signal') {
                let c = conns.get(m.from);
                if (!c && m.data.sdp && m.data.sdp.type === 'offer') {
                  const t0 = performance.now();
                  c = w.__transport.connect({
                    remoteId: m.from, initiator: false, iceServers: w.__ice,
                    sendSignal: (d: unknown) => ws.send(JSON.stringify({ type: 'signal', to: m.from, data: d })),
                    onLink: (link: any) => {
                      w.__opened[m.from] = Math.round(performance.now() - t0);
                      link.onMessage = (f: Uint8Array) => link.send(f);
                      const poll = () => (link.connection ? (w.__links[m.from] = link.connection) : setTimeout(poll, 50));
                      poll();
                    },
                    onFailed: (r: string) => (w.__links[m.from] = { failed: r }),
                  });
                  conns.set(m.from, c);
                }
                void c?.handleSignal(m.data);
              }
            };
          }),
        { url: tracker.wsUrls[0], pageId },
      );
      let id = 1000;
      for (const s of SITES) {
        const p = peers.get(s.name)!;
        const n = ++id;
        p.proc.send({ cmd: 'connect', to: pageId, id: n });
        const ev = await p.proc.wait((e) => (e.ev === 'echo' || e.ev === 'failed') && e.id === n, 30_000, `browser pair ${n}`);
        const link = p.proc.events.find((e) => e.ev === 'link' && e.id === n);
        await page.waitForFunction((r) => (window as any).__links[r] !== undefined, p.peerId, { timeout: 5000 }).catch(() => undefined);
        const pageInfo = (await page.evaluate((r) => (window as any).__links[r] ?? null, p.peerId)) as { relayed?: boolean; local?: string; remote?: string } | null;
        const relayed = Boolean((link?.info as { relayed?: boolean } | null)?.relayed || pageInfo?.relayed);
        const row: MatrixRow = {
          a: 'chromium', b: s.name, aNat: 'symmetric', bNat: p.nat,
          result: ev.ev === 'failed' || ev.ok !== true ? 'failed' : relayed ? 'relay' : 'direct',
          ms: link ? (link.ms as number) : null,
          pair: `${pageInfo?.local ?? '?'}-${pageInfo?.remote ?? '?'}`,
          predicted: predictPair('symmetric', EXPECTED_NAT[s.kind]),
        };
        matrix.push(row);
        console.log(`[nat] chromium (symmetric) <-> ${s.name} (${p.nat}): ${row.result} in ${row.ms} ms (page's selected pair ${row.pair}; table predicts ${row.predicted})`);
      }
    } finally {
      await browser.close();
      rmSync(dir, { recursive: true, force: true });
    }
    const rows = matrix.filter((r) => r.a === 'chromium');
    printMatrix(rows);
    printSummary(matrix);
    expect(rows.length).toBe(SITES.length);
    for (const r of rows) {
      expect(r.result, `chromium<->${r.b}`).not.toBe('failed');
      expect(r.result, `chromium<->${r.b}`).toBe(r.predicted === 'relay' ? 'relay' : 'direct');
    }
  });

  it('peers behind the NATs exchange a live stream: every segment arrives intact, and a peer whose network changes recovers its links', async () => {
    const { startOrigin } = await import('../../server/origin.js');
    const { pino } = await import('pino');
    const workDir = mkdtempSync(join(tmpdir(), 'starling-natlab-origin-'));
    const channel = 'natlab';
    const origin = await startOrigin({
      channel, host: PUBLIC_IP, port: 0, workDir, trackerUrl: tracker.wsUrls[0], rootPeerMaxNeighbors: 3,
      ladder: [{ name: '240p', width: 426, height: 240, videoBitrate: 400_000, audioBitrate: 64_000 }],
      log: pino({ level: 'warn' }),
    });
    const expected = new Map<number, string>();
    const streamers = SITES.map((s) => peers.get(s.name)!);
    let off: (() => void) | null = null;
    try {
      const t0 = Date.now();
      while (origin.stats().segmentsPublished < 2 && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 200));
      for (const p of streamers) {
        p.proc.send({ cmd: 'stream', trackerUrl: tracker.wsUrls[0], channel, publicKey: Buffer.from(origin.publicKey).toString('hex'), originUrl: origin.url });
      }
      await Promise.all(streamers.map((p) => p.proc.wait((e) => e.ev === 'streaming' || e.ev === 'cmd-error', 30_000, 'streaming')));
      const rendition = origin.info.renditions[0].name;
      let first = true;
      off = origin.onSegment(({ ref, data }) => {
        if (ref.rendition !== rendition) return;
        expected.set(ref.seq, createHash('sha256').update(data).digest('hex'));
        if (ref.seq < 0) return;
        const loads = first ? [-1, ref.seq] : [ref.seq];
        first = false;
        for (const p of streamers) for (const seq of loads) p.proc.send({ cmd: 'load', rendition, seq, deadlineMs: 4000 });
      });
      const init = origin.window.get({ rendition, seq: -1 });
      if (init) expected.set(-1, createHash('sha256').update(init.data).digest('hex'));
      const streamStart = Date.now();
      await new Promise((r) => setTimeout(r, CHANGE_AT_SECONDS * 1000));
      // Network change behind one NAT: its paths die. The transports notice the silence, the
      // host finds its tracker connection dead too and reconnects it, and ICE restarts repair
      // the links in place (a link whose restarts fail closes and is reconnected from scratch);
      // playback continues meanwhile (the HTTP fallback covers the gap).
      const moved = peers.get('prcA')!;
      type HostStats = { connectAttempts: number; links: number; linksClosed: number; iceRestarts: number; iceRecoveries: number; iceRestartGiveUps: number; trackerProbeReconnects: number };
      const statsOf = async () => {
        moved.proc.send({ cmd: 'stats' });
        const e = await moved.proc.wait((x) => x.ev === 'stats', 5000, 'stats');
        moved.proc.events.splice(moved.proc.events.indexOf(e), 1);
        // Over P2P links: from other viewers or from the origin's root peer (prcA may be the
        // origin's child, at the top of the tree, receiving nothing from the other viewers).
        return { host: e.host as HostStats, bytesOverLinks: (e.bytesFromPeers as number) + (e.bytesFromOriginPeer as number) };
      };
      const before = await statsOf();
      const hb = before.host;
      const changedAt = Date.now();
      renumberSite(moved.site, '198.51.100.113');
      let after = before;
      let recoveredMs: number | null = null;
      while (Date.now() - changedAt < RECOVERY_LIMIT_SECONDS * 1000) {
        await new Promise((r) => setTimeout(r, 500));
        after = await statsOf();
        const ha = after.host;
        // Recovered: links repaired in place (or closed and reconnected), and pieces over them again.
        const repaired = ha.iceRecoveries > hb.iceRecoveries || ha.linksClosed > hb.linksClosed;
        if (repaired && ha.links > 0 && after.bytesOverLinks > before.bytesOverLinks) {
          recoveredMs = Date.now() - changedAt;
          break;
        }
      }
      const ha = after.host;
      const changeLine = `[nat] network change at prcA (new public address): links ${hb.links} before, ${ha.links} after ${recoveredMs === null ? 'never recovering' : `recovery in ${(recoveredMs / 1000).toFixed(1)} s`}: ` +
        `ICE restarts ${ha.iceRestarts - hb.iceRestarts}, links repaired in place ${ha.iceRecoveries - hb.iceRecoveries}, given up ${ha.iceRestartGiveUps - hb.iceRestartGiveUps}, ` +
        `links closed ${ha.linksClosed - hb.linksClosed}, new attempts ${ha.connectAttempts - hb.connectAttempts}, tracker reconnects after a probe ${ha.trackerProbeReconnects - hb.trackerProbeReconnects}, ` +
        `bytes over P2P links ${after.bytesOverLinks - before.bytesOverLinks} since the change`;
      console.log(changeLine);
      if (recoveredMs === null) {
        // Say why: prcA's neighbors as its engine sees them, and every link to or from prcA down to SCTP.
        const views: string[] = [];
        moved.proc.send({ cmd: 'stats' });
        const own = await moved.proc.wait((e) => e.ev === 'stats', 5000, 'stats');
        moved.proc.events.splice(moved.proc.events.indexOf(own), 1);
        const movedId = own.peerId as string;
        for (const p of streamers) {
          p.proc.send({ cmd: 'stats' });
          const st = await p.proc.wait((e) => e.ev === 'stats', 5000, 'stats');
          p.proc.events.splice(p.proc.events.indexOf(st), 1);
          const diag = st.diagnostics as Record<string, unknown>;
          const neighbors = st.neighbors as Array<{ peerId: string }>;
          if (p === moved) views.push(`prcA neighbors ${JSON.stringify(neighbors)} links ${JSON.stringify(diag)}`);
          else views.push(`${p.site.name}'s link to prcA ${JSON.stringify(diag[movedId] ?? null)}, as neighbor ${JSON.stringify(neighbors.find((n) => n.peerId === movedId) ?? null)}`);
        }
        console.log(`[nat] prcA never recovered:\n  ${views.join('\n  ')}`);
      }
      expect(recoveredMs, `prcA has working links again (${changeLine})`).not.toBeNull();
      await new Promise((r) => setTimeout(r, 6000)); // some stream over the new connections
      const streamSeconds = (Date.now() - streamStart) / 1000;
      off();
      off = null;
      await new Promise((r) => setTimeout(r, 5000)); // the last loads' deadline
      const summary: string[] = [];
      let fromPeers = 0;
      let total = 0;
      let relayedLinks = 0;
      let links = 0;
      let movedMissed = 0;
      for (const p of streamers) {
        p.proc.send({ cmd: 'stats' });
        const st = await p.proc.wait((e) => e.ev === 'stats', 5000, 'stats');
        const segs = p.proc.events.filter((e) => e.ev === 'segment');
        // Nothing unverified is ever delivered, anywhere.
        const corrupt = segs.filter((e) => !e.error && e.sha256 !== expected.get(e.seq as number));
        expect(corrupt.map((e) => `${e.seq}: hash mismatch`), p.site.name).toEqual([]);
        // Every segment arrives; at the renumbered peer, loads that began during its outage
        // (about 5 s) lean on the HTTP fallback, whose pooled keep-alive connections died with the
        // old address: at most a couple of those may miss their 4 s deadline (the first request on
        // a dead connection times out, then http-source.ts drops them all); counted and reported.
        const missed = segs.filter((e) => e.error);
        const bad = p === moved ? missed.filter((e) => (e.at as number) < changedAt - 5000) : missed; // loads begun before (deadline 4 s)
        if (p === moved) {
          movedMissed = missed.length - bad.length;
          expect(movedMissed, 'segments the renumbered peer missed after its change').toBeLessThanOrEqual(2);
        }
        for (const e of segs) for (const [src, n] of Object.entries((e.bySource as Record<string, number>) ?? {})) {
          total += n;
          if (src === 'peer') fromPeers += n;
        }
        const infos = Object.values(st.links as Record<string, { relayed?: boolean } | null>);
        links += infos.length;
        relayedLinks += infos.filter((i) => i?.relayed).length;
        const hs = st.host as { iceRestarts: number; iceRecoveries: number; iceRestartGiveUps: number; linksClosed: number };
        summary.push(`${p.site.name}: ${segs.length} segments, ${missed.length} missed, ${infos.length} links (${infos.filter((i) => i?.relayed).length} relayed), ` +
          `ICE restarts ${hs.iceRestarts} (recovered ${hs.iceRecoveries}, given up ${hs.iceRestartGiveUps}), links closed ${hs.linksClosed}`);
        // The network change is repaired by restarts; no link is given up (and healthy links,
        // relayed ones included, are not restarted for nothing: the counts are in the summary).
        expect(hs.iceRestartGiveUps, `${p.site.name}: ICE restarts given up`).toBe(0);
        expect(bad.map((e) => `${e.seq}: ${String(e.error)}`), p.site.name).toEqual([]);
        expect(st.reportedNat, `${p.site.name} reports its NAT type`).toBe(p.nat);
        expect(segs.length, p.site.name).toBeGreaterThanOrEqual(streamSeconds / 2 - 4);
        if (p !== moved) expect(segs.length - missed.length, p.site.name).toBeGreaterThanOrEqual(streamSeconds / 2 - 4);
      }
      console.log(`[nat] live stream through the NATs: ${summary.join('; ')}; bytes from other viewers ${((fromPeers / Math.max(1, total)) * 100).toFixed(1)}%, links relayed ${relayedLinks}/${links}`);
      console.log(`[nat] the renumbered peer missed ${movedMissed} segments after its network change`);
      expect(fromPeers).toBeGreaterThan(0);
    } finally {
      off?.();
      await origin.stop();
      rmSync(workDir, { recursive: true, force: true });
    }
  });
});

function printMatrix(rows: MatrixRow[]): void {
  const lines = ['| peer A (NAT) | peer B (NAT) | result | set-up ms | selected pair (A side) | table predicts |', '|---|---|---|---|---|---|'];
  for (const r of rows) lines.push(`| ${r.a} (${r.aNat}) | ${r.b} (${r.bNat}) | ${r.result === 'relay' ? 'via TURN' : r.result} | ${r.ms ?? '-'} | ${r.pair} | ${r.predicted} |`);
  console.log(`\n[nat] matrix:\n${lines.join('\n')}\n`);
}

/** Share direct vs relayed and the median/max set-up time per NAT pair type. */
function printSummary(rows: MatrixRow[]): void {
  const byType = new Map<string, number[]>();
  for (const r of rows) {
    const key = `${[r.aNat, r.bNat].sort().join(' <-> ')} (${r.result === 'relay' ? 'via TURN' : r.result})`;
    byType.set(key, [...(byType.get(key) ?? []), r.ms ?? NaN]);
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
  const direct = rows.filter((r) => r.result === 'direct').length;
  const relay = rows.filter((r) => r.result === 'relay').length;
  const lines = [`[nat] ${rows.length} pairs: ${direct} direct (${((direct / rows.length) * 100).toFixed(0)}%), ${relay} via TURN, ${rows.length - direct - relay} failed`];
  for (const [k, xs] of byType) lines.push(`  ${k}: n=${xs.length}, set-up median ${med(xs)} ms, max ${Math.max(...xs)} ms`);
  console.log(lines.join('\n'));
}
