/**
 * ICE restart after a network change, on real NATs (issue 8). Inside test/netns.sh's private
 * namespace, test/net/natlab/topology.ts builds NAT gateways in `ip netns` namespaces; the public
 * host (this process) runs the tracker, the RFC 5780 STUN server and coturn. A connected pair
 * streams numbered frames (one every 20 ms, echoed back); then one NAT gateway gets a new public
 * address (the old one removed, its mappings flushed: what a phone moving to another network looks
 * like to the other side). The link must come back by an ICE restart, the same data channel
 * carrying on, every frame echoed in order:
 *   - werift <-> werift, direct (port-restricted cone <-> full cone), the cone side moves;
 *   - werift <-> werift through TURN (symmetric <-> port-restricted), the symmetric side moves;
 *   - werift <-> Chromium (browser transport; page behind a port-restricted cone), the page moves;
 *   - baseline: the same direct pair with ICE restarts disabled (the previous behaviour: the
 *     link dies when consent expires).
 *   flock /tmp/starling-net.lock bash test/netns.sh npx vitest run test/net/ice-restart.test.ts
 * Prints the recovery times (the figures in bench/RESULTS.md, NAT traversal).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createLab, labUnavailableReason, renumberSite, PUBLIC_IP, ALT_IP, type Lab, type Site, type NatKind } from './natlab/topology.js';
import { startCoturn, startLabPeer, stopAll, removeDir, type Coturn, type LabProcess, type LabEvent } from './natlab/procs.js';
import { startLabPage, type LabPage } from './natlab/page.js';
import { startRfc5780Server, type Rfc5780Server } from '../../tracker/stun-nat.js';
import { launchTracker, type LaunchedTracker } from '../../tracker/launch.js';

const unavailable = labUnavailableReason();
if (unavailable) console.warn(`\n[ice-restart] SKIPPED: the NAT lab cannot run here: ${unavailable}\n`);

const STUN_PORT = 3478;
const TURN_PORT = 3480;
const CHANNEL = 'natlab-restart';
/** Longest wait for a moved pair to carry frames again (the old path needs ~30 s of consent expiry). */
const RECOVERY_LIMIT_MS = 45_000;
const SITES: { name: string; kind: NatKind; old?: boolean }[] = [
  { name: 'prcA', kind: 'port-restricted' },
  { name: 'fullB', kind: 'full-cone' },
  { name: 'symS', kind: 'symmetric' },
  { name: 'prcP', kind: 'port-restricted' },
  { name: 'oldA', kind: 'port-restricted', old: true },
  { name: 'oldB', kind: 'full-cone', old: true },
];
const PAGE_SITE = { name: 'chrome', kind: 'port-restricted' as NatKind };

interface PumpStats {
  sent: number;
  echoed: number;
  inOrder: boolean;
  maxGap: { ms: number; from: number; to: number };
  closedAt: number | null;
  info: { local?: string; remote?: string; relayed?: boolean } | null;
}

interface Outcome {
  name: string;
  changedAt: number;
  recoveredMs: number | null;
  outageMs: number;
  detectMs: number | null;
  restartToRecoveredMs: number | null;
  attempts: number;
  before: string;
  after: string;
  stats: PumpStats;
}

describe.skipIf(unavailable !== null)('ICE restart after a network change (NAT lab)', () => {
  let lab: Lab;
  let stun: Rfc5780Server;
  let coturn: Coturn;
  let tracker: LaunchedTracker;
  let page: LabPage | null = null;
  const peers = new Map<string, { site: Site; proc: LabProcess; peerId: string }>();
  const outcomes: Outcome[] = [];
  let nextIp = 100;
  let nextId = 0;

  beforeAll(async () => {
    lab = createLab([...SITES.map(({ name, kind }) => ({ name, kind })), PAGE_SITE]);
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
        SITES.map(async (s) => {
          const site = lab.sites.find((x) => x.name === s.name)!;
          const proc = startLabPeer(site.hostNs, site.name, {
            trackerUrl, stun: { host: PUBLIC_IP, port: STUN_PORT }, matrixChannel: CHANNEL,
            ...(s.old ? { iceRestart: { maxAttempts: 0, silenceMs: 0 } } : {}),
          });
          const joined = await proc.wait((e) => e.ev === 'joined' || e.ev === 'fatal', 60_000, 'join');
          if (joined.ev === 'fatal') throw new Error(`${site.name}: ${String(joined.err)}`);
          peers.set(site.name, { site, proc, peerId: joined.peerId as string });
        }),
      );
    } catch (err) {
      await stopAll();
      lab.destroy();
      throw err;
    }
  });

  afterAll(async () => {
    await page?.close().catch(() => undefined);
    for (const p of peers.values()) p.proc.send({ cmd: 'exit' });
    await new Promise((r) => setTimeout(r, 300));
    await stopAll();
    await tracker?.close();
    await stun?.close();
    if (coturn) removeDir(coturn.dir);
    lab?.destroy();
    if (outcomes.length > 0) printOutcomes(outcomes);
  });

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  async function pumpStats(proc: LabProcess, to: string): Promise<PumpStats> {
    proc.send({ cmd: 'pump-stats', to });
    const e = await proc.wait((x) => x.ev === 'pump' && x.to === to, 5000, 'pump stats');
    proc.events.splice(proc.events.indexOf(e), 1);
    return e as unknown as PumpStats;
  }

  /**
   * `from` connects to `to` and pumps; `moved` gets a new public address; waits until frames
   * flow again across the change (or the link closed / the limit passed).
   */
  async function changeUnderPair(name: string, from: LabProcess, to: string, moved: Site, iceEventsOf: () => Promise<LabEvent[]>): Promise<Outcome> {
    const id = ++nextId;
    from.send({ cmd: 'connect', to, id, mode: 'pump', intervalMs: 20 });
    const link = await from.wait((e) => (e.ev === 'link' || e.ev === 'failed') && e.id === id, 30_000, `${name}: link`);
    expect(link.ev, `${name}: connected`).toBe('link');
    const openedAt = Date.now();
    await sleep(6000); // longer than the silence threshold: a false alarm would show
    const s0 = await pumpStats(from, to);
    expect(s0.echoed, `${name}: frames flow before the change`).toBeGreaterThan(50);
    const before = pairOf(s0.info);
    const changedAt = Date.now();
    renumberSite(moved, `198.51.100.${++nextIp}`);
    let s = s0;
    while (Date.now() - changedAt < RECOVERY_LIMIT_MS) {
      await sleep(250);
      s = await pumpStats(from, to);
      if (s.closedAt !== null) break;
      if (s.maxGap.to > changedAt && s.maxGap.ms > 500 && Date.now() - s.maxGap.to > 1500) break; // flowing again for 1.5 s
    }
    // What the outage held back is retransmitted by SCTP: wait (bounded) until the echoes catch up.
    const drainFrom = Date.now();
    do {
      await sleep(500);
      s = await pumpStats(from, to);
    } while (s.closedAt === null && s.sent - s.echoed >= 20 && Date.now() - drainFrom < 20_000);
    const all = await iceEventsOf();
    // A healthy link (before the change) never looks down: no false alarm, relayed pairs included.
    const early = all.filter((e) => (e.at as number) >= openedAt && (e.at as number) < changedAt);
    expect(early, `${name}: ICE restart events before the change`).toEqual([]);
    const events = all.filter((e) => (e.at as number) >= changedAt);
    const firstDown = events.find((e) => e.type === 'down');
    const recovered = events.find((e) => e.type === 'recovered' && (e.attempt as number) > 0);
    const firstRestart = events.find((e) => e.type === 'restart');
    const recoveredAt = s.closedAt === null && s.maxGap.to > changedAt ? s.maxGap.to : null;
    const o: Outcome = {
      name,
      changedAt,
      recoveredMs: recoveredAt === null ? null : recoveredAt - changedAt,
      outageMs: s.maxGap.ms,
      detectMs: firstDown ? (firstDown.at as number) - changedAt : null,
      restartToRecoveredMs: recovered && firstRestart ? (recovered.at as number) - (firstRestart.at as number) : null,
      attempts: events.filter((e) => e.type === 'restart').length,
      before,
      after: pairOf(s.info),
      stats: s,
    };
    outcomes.push(o);
    console.log(`[ice-restart] ${name}: ${JSON.stringify(o)}`);
    if (process.env.STARLING_LAB_DEBUG) {
      for (const p of new Set([from, ...[...peers.values()].filter((x) => x.peerId === to).map((x) => x.proc)])) {
        const evs = p.events.filter((e) => ((e.at as number) ?? 0) >= changedAt - 1000 && e.ev !== 'pump');
        console.log(`[ice-restart] ${p.name} events:\n${evs.map((e) => `  ${(e.at as number) - changedAt} ${JSON.stringify(e).slice(0, 300)}`).join('\n')}`);
      }
    }
    return o;
  }

  const procEvents = (...procs: LabProcess[]) => async () => procs.flatMap((p) => p.events.filter((e) => e.ev === 'ice'));

  it('a direct werift pair survives a NAT renumbering by ICE restart, the data channel carrying on', async () => {
    const a = peers.get('prcA')!;
    const b = peers.get('fullB')!;
    const o = await changeUnderPair('werift direct (port-restricted moves, full cone stays)', a.proc, b.peerId, a.site, procEvents(a.proc, b.proc));
    expectRecoveredInPlace(o);
    expect(o.stats.info?.relayed, 'still direct after the restart').toBe(false);
  });

  it('a relayed werift pair survives it too (a new TURN allocation)', async () => {
    const s = peers.get('symS')!;
    const p = peers.get('prcP')!;
    const o = await changeUnderPair('werift via TURN (symmetric moves, port-restricted stays)', s.proc, p.peerId, s.site, procEvents(s.proc, p.proc));
    expect(o.before).toContain('relay');
    expectRecoveredInPlace(o);
    expect(o.stats.info?.relayed, 'relayed again (symmetric <-> port-restricted needs TURN)').toBe(true);
  });

  it('a Chromium page (browser transport) behind a NAT that changes recovers by ICE restart', async () => {
    const site = lab.sites.find((x) => x.name === PAGE_SITE.name)!;
    page = await startLabPage(site, tracker.wsUrls[0], CHANNEL);
    const b = peers.get('fullB')!;
    const lp = page;
    const events = async () => [
      ...b.proc.events.filter((e) => e.ev === 'ice' && e.remote === lp.pageId),
      ...((await lp.iceEvents(b.peerId)) as LabEvent[]),
    ];
    const o = await changeUnderPair('werift <-> Chromium (the page\'s port-restricted NAT moves)', b.proc, lp.pageId, site, events);
    const rel = (xs: Array<Record<string, unknown>>) => xs.map((e) => ({ ...e, at: (e.at as number) - o.changedAt }));
    console.log(`[ice-restart] page-side ICE events (ms after the change): ${JSON.stringify(rel(await lp.iceEvents(b.peerId)))}`);
    console.log(`[ice-restart] page-side signaling: ${JSON.stringify(rel(await lp.signalingEvents()))}`);
    console.log(`[ice-restart] page-side pair after: ${JSON.stringify(await lp.linkInfo(b.peerId))}`);
    expectRecoveredInPlace(o);
  });

  it('baseline, ICE restarts disabled (the previous behaviour): the link dies with consent expiry', async () => {
    const a = peers.get('oldA')!;
    const b = peers.get('oldB')!;
    // The pump runs on the side that stays: the moved side may never notice by itself (its
    // consent checks still get answers, at its new address), the other side's consent expires.
    const o = await changeUnderPair('baseline without ICE restart (port-restricted moves)', b.proc, a.peerId, a.site, procEvents(a.proc, b.proc));
    expect(o.stats.closedAt, 'the link closed').not.toBeNull();
    console.log(`[ice-restart] baseline: the link closed ${((o.stats.closedAt! - o.changedAt) / 1000).toFixed(1)} s after the change; nothing repairs it in place`);
  });
});

function pairOf(info: PumpStats['info']): string {
  return info ? `${info.local ?? '?'}-${info.remote ?? '?'}${info.relayed ? ' (relayed)' : ''}` : '?';
}

function expectRecoveredInPlace(o: Outcome): void {
  expect(o.stats.closedAt, `${o.name}: the link stayed open`).toBeNull();
  expect(o.recoveredMs, `${o.name}: frames flow again`).not.toBeNull();
  expect(o.attempts, `${o.name}: by ICE restart`).toBeGreaterThanOrEqual(1);
  expect(o.stats.inOrder, `${o.name}: every frame echoed in order`).toBe(true);
  // Nothing lost: every frame sent was echoed, except the few still in flight.
  expect(o.stats.sent - o.stats.echoed, `${o.name}: frames lost`).toBeLessThan(20);
}

function printOutcomes(rows: Outcome[]): void {
  const s = (ms: number | null) => (ms === null ? '-' : (ms / 1000).toFixed(1));
  const lines = ['| pair | frames again after | longest silence | outage noticed after | restart to recovered | attempts | pair before -> after | sent / echoed |', '|---|---|---|---|---|---|---|---|'];
  for (const o of rows) {
    lines.push(`| ${o.name} | ${o.stats.closedAt !== null ? `never (link closed after ${s(o.stats.closedAt - o.changedAt)} s)` : `${s(o.recoveredMs)} s`} | ${s(o.outageMs)} s | ${o.detectMs === null ? '-' : `${s(o.detectMs)} s`} | ${o.restartToRecoveredMs === null ? '-' : `${o.restartToRecoveredMs} ms`} | ${o.attempts} | ${o.before} -> ${o.after} | ${o.stats.sent} / ${o.stats.echoed} |`);
  }
  console.log(`\n[ice-restart] results:\n${lines.join('\n')}\n`);
}
