/**
 * A werift receiver whose event loop stalls, with the kernel's UDP receive buffer and with a
 * 1 MiB one (peer/transport/werift-transport.ts, option udpRecvBufferBytes), in one run: what the
 * swarm bench's saturated worker processes do to every peer, isolated.
 *
 * The sender (this process) pushes 16 KiB frames at a steady rate over a werift data channel, as
 * a parent pushes pieces; the receiver (a child process, its own event loop) busy-waits
 * `--stall` ms every `--period` ms, as a process running 25 werift peers on a shared core does.
 * While it is stalled the kernel queues the datagrams in the socket's receive buffer; what does
 * not fit is dropped (RcvbufErrors), and SCTP recovers a lost packet at the end of a burst only
 * after its retransmission timeout (at least 1 s in werift). Reported per buffer setting: frames
 * delivered, one-way delay of a frame (sent -> handed to the receiver's onMessage) p50 / p99 /
 * max, and the kernel's drops. Bounded: `--seconds` of sending per setting.
 *
 *   bash test/netns.sh npx tsx bench/werift-stall.ts [--seconds 20] [--rate 60] [--stall 150] [--period 400]
 *
 * Needs the private network namespace (werift offers no loopback candidates; DESIGN.md §9).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { createWeriftTransport } from '../peer/transport/werift-transport.js';
import type { SignalData } from '../peer/core/signaling.js';
import type { Link } from '../peer/core/types.js';
import { udpCounters, udpDelta } from './udp-counters.js';

const FRAME_BYTES = 16 * 1024;
const LARGE_BUFFER_BYTES = 1 << 20;

interface ReceiverSpec { recvBuffer: number; stallMs: number; periodMs: number }
type ToReceiver = { signal: SignalData } | { stop: true };
type FromReceiver = { signal: SignalData } | { open: true } | { result: { received: number; delays: number[] } };

/** Wall clock shared by both processes (performance.now() has a per-process origin). */
const wallMs = () => performance.timeOrigin + performance.now();

function quantile(sorted: number[], q: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

// ------------------------------------------------------------------ receiver (child process)

function runReceiver(spec: ReceiverSpec): void {
  const post = (m: FromReceiver) => process.send!(m);
  const transport = createWeriftTransport({ stunTimeoutMs: 200, udpRecvBufferBytes: spec.recvBuffer });
  const delays: number[] = [];
  let received = 0;
  let stall: ReturnType<typeof setInterval> | null = null;
  const connector = transport.connect({
    remoteId: 'sender',
    initiator: false,
    iceServers: [],
    sendSignal: (signal) => post({ signal }),
    onLink: (link: Link) => {
      link.onMessage = (f) => {
        if (f.length < 12) return;
        const view = new DataView(f.buffer, f.byteOffset, f.byteLength);
        delays.push(wallMs() - view.getFloat64(4));
        received++;
      };
      // the saturated event loop: busy for stallMs out of every periodMs
      stall = setInterval(() => {
        const until = performance.now() + spec.stallMs;
        while (performance.now() < until) { /* busy */ }
      }, spec.periodMs);
      post({ open: true });
    },
    onFailed: (reason) => { throw new Error(`receiver failed: ${reason}`); },
  });
  process.on('message', (m: ToReceiver) => {
    if ('signal' in m) void connector.handleSignal(m.signal);
    else {
      if (stall) clearInterval(stall);
      post({ result: { received, delays } });
      connector.close();
      setTimeout(() => process.exit(0), 200);
    }
  });
}

// ------------------------------------------------------------------ sender (this process)

async function trial(recvBuffer: number, o: { seconds: number; rate: number; stallMs: number; periodMs: number }) {
  const here = fileURLToPath(import.meta.url);
  const spec: ReceiverSpec = { recvBuffer, stallMs: o.stallMs, periodMs: o.periodMs };
  const worker: ChildProcess = spawn(join(dirname(here), '../node_modules/.bin/tsx'), [here, '--receiver', JSON.stringify(spec)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const transport = createWeriftTransport({ stunTimeoutMs: 200, udpRecvBufferBytes: recvBuffer });
  let link!: Link;
  const opened = new Promise<void>((resolve, reject) => {
    let linkUp = false;
    let remoteUp = false;
    const connector = transport.connect({
      remoteId: 'receiver',
      initiator: true,
      iceServers: [],
      sendSignal: (signal) => worker.send({ signal } satisfies ToReceiver),
      onLink: (l) => { link = l; linkUp = true; if (remoteUp) resolve(); },
      onFailed: (r) => reject(new Error(`sender failed: ${r}`)),
    });
    worker.on('message', (m: FromReceiver) => {
      if ('signal' in m) void connector.handleSignal(m.signal);
      else if ('open' in m) { remoteUp = true; if (linkUp) resolve(); }
    });
    worker.on('error', reject);
    worker.on('exit', (code) => { if (!remoteUp) reject(new Error(`receiver exited (${code})`)); });
  });
  await opened;
  const udp0 = udpCounters();
  let sent = 0;
  let skipped = 0;
  const frame = new Uint8Array(FRAME_BYTES);
  const view = new DataView(frame.buffer);
  const start = performance.now();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(o.seconds * o.rate, Math.floor(((performance.now() - start) / 1000) * o.rate));
      while (sent + skipped < due) {
        // the backlog is bounded, as a pushing parent's is (the engine stops at
        // ENGINE_DEFAULTS.maxBufferedBytes per channel; 256 KiB here): a frame due while it is full is skipped
        if (link.bufferedAmount > 256 * 1024) { skipped++; continue; }
        view.setUint32(0, sent);
        view.setFloat64(4, wallMs());
        link.send(frame);
        sent++;
      }
      if (sent + skipped >= o.seconds * o.rate) { clearInterval(timer); resolve(); }
    }, 10);
  });
  await new Promise((r) => setTimeout(r, 3000)); // drain: retransmissions arrive
  const result = await new Promise<{ received: number; delays: number[] }>((resolve) => {
    worker.on('message', (m: FromReceiver) => { if ('result' in m) resolve(m.result); });
    worker.send({ stop: true } satisfies ToReceiver);
  });
  const drops = udpDelta(udp0, udpCounters())?.rcvbufErrors ?? NaN;
  link.close();
  worker.kill();
  const d = result.delays.sort((a, b) => a - b);
  return {
    recvBuffer, sent, skipped, received: result.received, drops,
    delayMs: { p50: +quantile(d, 0.5).toFixed(1), p90: +quantile(d, 0.9).toFixed(1), p99: +quantile(d, 0.99).toFixed(1), max: +(d[d.length - 1] ?? NaN).toFixed(1) },
    overOneSecond: d.filter((x) => x > 1000).length,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '20' },
      rate: { type: 'string', default: '60' },
      stall: { type: 'string', default: '150' },
      period: { type: 'string', default: '400' },
      rounds: { type: 'string', default: '2' },
    },
  });
  const o = { seconds: Number(values.seconds), rate: Number(values.rate), stallMs: Number(values.stall), periodMs: Number(values.period) };
  const rounds = Math.max(1, Number(values.rounds));
  if (!(o.seconds > 0 && o.seconds <= 600 && o.rate > 0 && o.rate <= 1000 && o.stallMs >= 0 && o.periodMs > o.stallMs)) throw new Error('bad arguments');
  console.log(`werift receiver stalled ${o.stallMs} ms every ${o.periodMs} ms; ${o.rate} frames/s of ${FRAME_BYTES / 1024} KiB ` +
    `(${((o.rate * FRAME_BYTES * 8) / 1e6).toFixed(1)} Mbit/s) for ${o.seconds} s; net.core.rmem_max ${readFileSync('/proc/sys/net/core/rmem_max', 'utf8').trim()}`);
  const rows: string[] = [];
  // alternate the settings, so that a change in the machine's speed hits both alike
  for (let r = 0; r < rounds; r++) {
    for (const buf of [0, LARGE_BUFFER_BYTES]) {
      const t = await trial(buf, o);
      console.log(JSON.stringify(t));
      rows.push(`| ${buf === 0 ? 'kernel default' : `${buf / 1024} KiB`} | ${t.sent} / ${t.skipped} | ${t.received} | ${t.drops} | ` +
        `${t.delayMs.p50} / ${t.delayMs.p90} / ${t.delayMs.p99} / ${t.delayMs.max} | ${t.overOneSecond} |`);
    }
  }
  console.log('\n| receive buffer | frames sent / skipped (sender backlog) | delivered | datagrams dropped (RcvbufErrors) | delay ms p50 / p90 / p99 / max | frames later than 1 s |');
  console.log('|---|---|---|---|---|---|');
  for (const row of rows) console.log(row);
}

if (process.argv[2] === '--receiver') {
  runReceiver(JSON.parse(process.argv[3]) as ReceiverSpec);
} else {
  main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
}
