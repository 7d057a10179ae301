/**
 * werift data-channel throughput: one werift<->werift link, then N parallel links, both ends in
 * this process (so the CPU figure covers sender and receiver). 16 KiB frames, sender paced by
 * bufferedAmount (high-water 1 MiB), bounded by bytes (default 64 MiB per run) or time (10 s).
 * Prints MiB/s, CPU seconds (process.cpuUsage) and the N-link aggregate against the 1-link
 * baseline measured in the same run. Must run inside the private network namespace:
 *
 *   bash test/netns.sh npx tsx bench/werift-link.ts [--mib 64] [--seconds 10] [--links 10]
 */
import { parseArgs } from 'node:util';
import { startStunServer } from '../tracker/stun.js';
import { createWeriftTransport } from '../peer/transport/werift-transport.js';
import type { Link } from '../peer/core/types.js';
import type { IceServer, SignalData } from '../peer/core/signaling.js';
import type { PeerConnector } from '../peer/transport/transport-api.js';

const FRAME = 16 * 1024;
const HIGH_WATER = 1024 * 1024;

if (process.env.STARLING_IN_NETNS !== '1') {
  console.error('run inside the namespace: bash test/netns.sh npx tsx bench/werift-link.ts');
  process.exit(2);
}

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '64' },
    seconds: { type: 'string', default: '10' },
    links: { type: 'string', default: '10' },
  },
});
const totalBytes = Number(values.mib) * 1024 * 1024;
const maxMs = Number(values.seconds) * 1000;
const nLinks = Number(values.links);

interface Pair {
  a: Link;
  b: Link;
  close(): void;
}

async function makePair(iceServers: IceServer[], i: number): Promise<Pair> {
  const transport = createWeriftTransport();
  let a: PeerConnector | null = null;
  let b: PeerConnector | null = null;
  let resB!: (l: Link) => void;
  let rejB!: (e: Error) => void;
  const bLink = new Promise<Link>((res, rej) => ((resB = res), (rejB = rej)));
  // In-process relay with the tracker's ordering; B is created by A's first signal (the offer).
  const toB = (d: SignalData) =>
    setImmediate(() => {
      b ??= transport.connect({
        remoteId: `a${i}`,
        initiator: false,
        iceServers,
        sendSignal: (back) => setImmediate(() => void a?.handleSignal(back)),
        onLink: resB,
        onFailed: (r) => rejB(new Error(`b${i}: ${r}`)),
      });
      void b.handleSignal(d);
    });
  const aLink = new Promise<Link>((resA, rejA) => {
    a = transport.connect({
      remoteId: `b${i}`,
      initiator: true,
      iceServers,
      sendSignal: toB,
      onLink: resA,
      onFailed: (r) => rejA(new Error(`a${i}: ${r}`)),
    });
  });
  const [la, lb] = await Promise.all([aLink, bLink]);
  return {
    a: la,
    b: lb,
    close() {
      la.close();
      b?.close();
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function run(n: number, iceServers: IceServer[]) {
  const t0setup = performance.now();
  const pairs = await Promise.all(Array.from({ length: n }, (_, i) => makePair(iceServers, i)));
  const setupMs = performance.now() - t0setup;
  await sleep(200);
  const frame = new Uint8Array(FRAME).map((_, k) => k & 0xff);
  const perLink = Math.floor(totalBytes / n / FRAME) * FRAME;
  let received = 0;
  let sent = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + maxMs;
  const senders = pairs.map(async (p) => {
    let mine = 0;
    let got = 0;
    const drained = new Promise<void>((resolve) => {
      p.b.onMessage = (f) => {
        got += f.length;
        received += f.length;
        if (sendDone && got >= mine) resolve();
      };
      const check = setInterval(() => {
        if (sendDone && got >= mine) {
          clearInterval(check);
          resolve();
        }
      }, 20);
    });
    let sendDone = false;
    while (mine < perLink && performance.now() < deadline) {
      if (p.a.bufferedAmount > HIGH_WATER) {
        await sleep(1);
        continue;
      }
      p.a.send(frame);
      mine += FRAME;
      sent += FRAME;
      if ((mine / FRAME) % 64 === 0) await new Promise((r) => setImmediate(r));
    }
    sendDone = true;
    await Promise.race([drained, sleep(15_000)]);
  });
  await Promise.all(senders);
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  for (const p of pairs) p.close();
  await sleep(500);
  const mibs = received / 1024 / 1024 / (ms / 1000);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  return { n, setupMs, ms, received, sent, mibs, cpuS, corePct: (cpuS / (ms / 1000)) * 100 };
}

const stun = await startStunServer({ port: 0, host: '0.0.0.0' });
const iceServers: IceServer[] = [{ urls: `stun:127.0.0.1:${stun.port}` }];
try {
  const one = await run(1, iceServers);
  const many = await run(nLinks, iceServers);
  const fmt = (r: typeof one) =>
    `${String(r.n).padStart(2)} link(s): ${(r.received / 1048576).toFixed(1)} MiB in ${(r.ms / 1000).toFixed(2)} s = ` +
    `${r.mibs.toFixed(1)} MiB/s aggregate (${(r.mibs / r.n).toFixed(1)} MiB/s per link), CPU ${r.cpuS.toFixed(2)} s ` +
    `(${r.corePct.toFixed(0)}% of one core, ${((r.cpuS / (r.received / 1048576)) * 1000).toFixed(1)} ms CPU per MiB), setup ${r.setupMs.toFixed(0)} ms`;
  console.log(`werift ${'0.24.4'} data channel, 16 KiB frames, both ends in one process`);
  console.log(fmt(one));
  console.log(fmt(many));
  console.log(`ratio ${nLinks} links / 1 link (aggregate throughput): ${(many.mibs / one.mibs).toFixed(2)}x`);
} finally {
  await stun.close();
}
setTimeout(() => process.exit(0), 200).unref();
