/**
 * One werift peer of the NAT lab, run behind a NAT gateway as a subprocess:
 *   ip netns exec NS npx tsx test/net/natlab/peer.ts '<json config>'
 * (a Node process cannot switch namespaces itself). Talks JSON lines: commands on stdin, events
 * on stdout. On start it discovers its NAT (RFC 5780 against the lab's STUN server) and joins the
 * tracker's matrix channel with plain signaling; then:
 *   {"cmd":"connect","to":PEERID,"id":N}  connect to another lab peer; reports {"ev":"link"} with
 *                                        the selected candidate pair, then echoes 256 KiB through
 *                                        it ({"ev":"echo"}, with the pair then); the remote end
 *                                        reports its pair after echoing ({"ev":"path"}).
 *   {"cmd":"connect",...,"mode":"pump","intervalMs":20}  instead keeps the link open and sends a
 *                                        numbered 1000-byte frame every intervalMs, which the
 *                                        remote echoes; {"cmd":"pump-stats","to":PEERID} reports
 *                                        sent/echoed/in order and the longest gap between echoes
 *                                        ({"ev":"pump"}). ICE restart events of every matrix
 *                                        connection are reported as {"ev":"ice"}.
 *   {"cmd":"stream", ...}                 joins the live channel as a viewer (Engine + PeerHost).
 *   {"cmd":"load","rendition":R,"seq":S}  loads one segment; {"ev":"segment"} with its SHA-256.
 *   {"cmd":"exit"}
 */
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { createWeriftTransport } from '../../../peer/transport/werift-transport.js';
import { connectionInfoOf, type IceRestartOptions, type PeerConnector, type Transport } from '../../../peer/transport/transport-api.js';
import type { IceServer, SignalData } from '../../../peer/core/signaling.js';
import type { Link } from '../../../peer/core/types.js';
import { createNatReporter, discoverNat } from '../../../peer/node/nat-discovery.js';
import { startNodePeer, type NodePeer } from '../../../peer/node/node-peer.js';
import { NodeHttpSource } from '../../../peer/node/http-source.js';
import type { PeerHostExtraOptions } from '../../../peer/host/peer-host.js';

interface Config {
  name: string;
  trackerUrl: string;
  stun: { host: string; port: number };
  matrixChannel: string;
  /** ICE restart policy of the matrix connections ({maxAttempts: 0, silenceMs: 0}: the old behaviour). */
  iceRestart?: IceRestartOptions;
}

const cfg = JSON.parse(process.argv[2]) as Config;
const emit = (ev: string, data: Record<string, unknown> = {}) => process.stdout.write(`${JSON.stringify({ ev, ...data })}\n`);
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

function pattern(size: number, seed: number): Uint8Array {
  const f = new Uint8Array(size);
  let x = seed >>> 0;
  for (let k = 0; k < size; k++) {
    x = (x * 1103515245 + 12345) >>> 0;
    f[k] = x >>> 24;
  }
  return f;
}

async function main(): Promise<void> {
  const nat = await discoverNat({ server: cfg.stun });
  emit('nat', { nat });

  // ---- matrix: plain signaling through the tracker, one werift connection per pair. Like
  // PeerHost: the tracker connection is re-opened when it drops (keeping our id with the resume
  // token), a link outage pokes it (a dead connection then fails at once), and links still in an
  // outage restart ICE as soon as the tracker welcomes us again.
  let ws!: WebSocket;
  let resumeToken: string | undefined;
  let exiting = false;
  let iceServers: IceServer[] = [];
  let myId = '';
  const conns = new Map<string, { connector: PeerConnector; started: number; id: number; mode?: string; intervalMs?: number }>();
  // STARLING_LAB_DEBUG=1: the matrix transport's debug log as {"ev":"log"} events.
  const debugLog = { ...quiet, debug: (o: object, msg?: string) => emit('log', { at: Date.now(), msg, ...o }) };
  const transport = createWeriftTransport({ log: process.env.STARLING_LAB_DEBUG ? debugLog : quiet, connectTimeoutMs: 20_000, iceRestart: cfg.iceRestart });
  const pumps = new Map<string, Pump>();
  const wsSend = (msg: Record<string, unknown>) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    try {
      ws.send(JSON.stringify(msg));
    } catch {
      /* a close event follows */
    }
  };
  const send = (to: string, data: SignalData) => wsSend({ type: 'signal', to, data });
  // As PeerHost.probeTracker: no answer to a peers request within 2.5 s -> reconnect now.
  let trackerHeardAt = 0;
  let probing = false;
  const probeTracker = () => {
    if (probing || ws.readyState !== WebSocket.OPEN) return;
    probing = true;
    const sentAt = Date.now();
    wsSend({ type: 'peers', max: 1 });
    setTimeout(() => {
      probing = false;
      if (trackerHeardAt >= sentAt || exiting) return;
      emit('tracker-probe-failed', { at: Date.now() });
      ws.terminate(); // -> close -> reconnect
    }, 2500);
  };
  const onLink = (remote: string, initiator: boolean, link: Link) => {
    const c = conns.get(remote);
    const ms = c ? Math.round(performance.now() - c.started) : -1;
    emit('link', { id: c?.id, remote, initiator, ms, info: connectionInfoOf(link) ?? null });
    // Tell the tracker (NAT pair outcome counters), as a peer's periodic report would.
    const relayed = connectionInfoOf(link)?.relayed === true;
    wsSend({ type: 'report', stats: { lab: 1 }, nat: nat.type, links: [{ peerId: remote, sent: 0, received: 0, relayed }] });
    if (initiator && c?.mode === 'pump') {
      pumps.set(remote, new Pump(link, c.intervalMs ?? 20));
      return;
    }
    const FRAMES = 16;
    if (initiator) {
      const got: Uint8Array[] = [];
      link.onMessage = (f) => {
        got.push(f.slice());
        if (got.length === FRAMES) {
          const ok = got.every((g, i) => Buffer.compare(g, pattern(16384, i + 1)) === 0);
          emit('echo', { id: c?.id, remote, ok, ms: Math.round(performance.now() - (c?.started ?? 0)), info: connectionInfoOf(link) ?? null });
          link.close();
        }
      };
      for (let i = 0; i < FRAMES; i++) link.send(pattern(16384, i + 1));
    } else {
      let echoed = 0;
      link.onMessage = (f) => {
        link.send(f);
        // the path this end sends on once the exchange is under way (its ICE agent may have
        // moved off the pair it had when the channel opened)
        if (++echoed === FRAMES) emit('path', { remote, info: connectionInfoOf(link) ?? null });
      };
    }
  };
  const open = (remote: string, initiator: boolean, id: number, mode?: string, intervalMs?: number) => {
    const entry = { connector: null as unknown as PeerConnector, started: performance.now(), id, mode, intervalMs };
    conns.set(remote, entry);
    entry.connector = transport.connect({
      remoteId: remote,
      initiator,
      iceServers,
      sendSignal: (d) => send(remote, d),
      onLink: (l) => onLink(remote, initiator, l),
      onFailed: (reason) => emit('failed', { id, remote, initiator, reason, ms: Math.round(performance.now() - entry.started) }),
      onIceRestart: (e) => {
        emit('ice', { remote, at: Date.now(), ...e });
        if (e.type === 'down') probeTracker();
      },
    });
    return entry;
  };
  const onTrackerMessage = (raw: WebSocket.RawData) => {
    trackerHeardAt = Date.now();
    const m = JSON.parse(raw.toString()) as { type: string; [k: string]: unknown };
    if (m.type === 'welcome') {
      iceServers = m.iceServers as IceServer[];
      resumeToken = (m.resumeToken as string | undefined) ?? resumeToken;
      if (myId) {
        emit('rejoined', { at: Date.now() });
        for (const c of conns.values()) c.connector.restartIce?.('tracker reconnected', true);
      } else {
        myId = m.peerId as string;
        emit('joined', { peerId: myId, iceServers: iceServers.map((s) => s.urls) });
      }
      wsSend({ type: 'report', stats: { lab: 1 }, nat: nat.type });
    } else if (m.type === 'signal') {
      const from = m.from as string;
      const data = m.data as SignalData;
      let c = conns.get(from);
      if (!c && 'sdp' in data && data.sdp.type === 'offer') c = open(from, false, -1);
      void c?.connector.handleSignal(data);
    } else if (m.type === 'error') emit('tracker-error', { reason: m.reason });
  };
  const connectTracker = () => {
    const sock = new WebSocket(cfg.trackerUrl);
    ws = sock;
    sock.on('message', onTrackerMessage);
    sock.on('open', () => {
      const join = { type: 'join', channel: cfg.matrixChannel, kind: 'seeder', peerId: `lab-${cfg.name}-${process.pid}`.slice(0, 60) };
      sock.send(JSON.stringify(resumeToken ? { ...join, resumeToken } : join));
    });
    sock.on('error', (err) => emit('ws-error', { err: String(err) }));
    sock.on('close', () => {
      if (exiting || ws !== sock) return;
      emit('ws-closed', { at: Date.now() });
      setTimeout(connectTracker, 300);
    });
  };
  connectTracker();

  // ---- live stream
  let viewer: NodePeer | null = null;
  let natReporterOf: ReturnType<typeof createNatReporter> | null = null;
  const streamLinks: Record<string, unknown> = {};
  const liveLinks = new Map<string, { diagnostics?: () => Record<string, unknown> }>();

  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    let cmd: Record<string, unknown>;
    try {
      cmd = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    void (async () => {
      if (cmd.cmd === 'connect') open(cmd.to as string, true, cmd.id as number, cmd.mode as string | undefined, cmd.intervalMs as number | undefined);
      else if (cmd.cmd === 'pump-stats') {
        const pump = pumps.get(cmd.to as string);
        emit('pump', { to: cmd.to, ...(pump ? pump.stats() : { missing: true }) });
      }
      else if (cmd.cmd === 'stream') {
        const inner = createWeriftTransport({ log: quiet });
        const recording: Transport = {
          name: 'werift',
          connect: (o) =>
            inner.connect({
              ...o,
              onLink: (link) => {
                streamLinks[o.remoteId] = connectionInfoOf(link) ?? null;
                liveLinks.set(o.remoteId, link as { diagnostics?: () => Record<string, unknown> });
                o.onLink(link);
              },
            }),
        };
        // The NAT type goes into every report, found against the welcome's STUN server (as a
        // seeder wiring createNatReporter would do).
        let host: NodePeer['host'] | null = null;
        const natReporter = createNatReporter(() => host?.getIceServers() ?? []);
        natReporterOf = natReporter;
        const hostExtra = { extraReport: natReporter.extraReport } as PeerHostExtraOptions;
        viewer = await startNodePeer({
          trackerUrl: cmd.trackerUrl as string,
          channel: cmd.channel as string,
          kind: 'browser',
          publicKey: new Uint8Array(Buffer.from(cmd.publicKey as string, 'hex')),
          http: new NodeHttpSource({ baseUrl: cmd.originUrl as string, channel: cmd.channel as string }),
          maxNeighbors: 8,
          log: quiet,
          transport: recording,
          reportMs: 1000,
          hostExtra,
          waitForTracker: true,
        });
        host = viewer.host;
        emit('streaming', { peerId: viewer.peerId });
      } else if (cmd.cmd === 'load' && viewer) {
        const ref = { rendition: cmd.rendition as string, seq: cmd.seq as number };
        const startedAt = Date.now();
        if (ref.seq >= 0) viewer.engine.setPlaybackPosition(ref);
        try {
          const res = await viewer.engine.loadSegment(ref, { deadline: performance.now() + (cmd.deadlineMs as number) });
          emit('segment', { ...ref, at: Date.now(), sha256: createHash('sha256').update(res.data).digest('hex'), bySource: res.bytesBySource });
        } catch (err) {
          emit('segment', { ...ref, at: startedAt, error: String(err) });
        }
      } else if (cmd.cmd === 'stats' && viewer) {
        const s = viewer.engine.stats();
        const diagnostics: Record<string, unknown> = {};
        for (const [id, l] of liveLinks) diagnostics[id] = l.diagnostics?.() ?? null;
        emit('stats', {
          reportedNat: natReporterOf?.result()?.type ?? null, links: streamLinks, host: viewer.host.stats(), bytesFromPeers: s.bytesFromPeers, bytesFromOriginPeer: s.bytesFromOriginPeer, bytesFromHttp: s.bytesFromHttp, peers: s.peers,
          peerId: viewer.engine.peerId, neighbors: viewer.engine.neighborStats(), diagnostics,
        });
      } else if (cmd.cmd === 'exit') {
        await viewer?.stop();
        for (const c of conns.values()) c.connector.close();
        exiting = true;
        ws.close();
        emit('bye');
        setTimeout(() => process.exit(0), 200);
      }
    })().catch((err) => emit('cmd-error', { cmd: cmd.cmd, err: String(err) }));
  });
  rl.on('close', () => process.exit(0));
}

/** Numbered frames through an echoing link: order, loss and the longest silence (see the file comment). */
class Pump {
  private sent = 0;
  private echoed = 0;
  private inOrder = true;
  private lastAt = Date.now();
  private gap = { ms: 0, from: 0, to: 0 };
  private closedAt: number | null = null;
  private readonly timer: ReturnType<typeof setInterval>;
  constructor(private readonly link: Link, intervalMs: number) {
    link.onMessage = (f) => {
      const seq = new DataView(f.buffer, f.byteOffset, f.byteLength).getUint32(0);
      if (seq !== this.echoed) this.inOrder = false;
      this.echoed++;
      const now = Date.now();
      if (now - this.lastAt > this.gap.ms) this.gap = { ms: now - this.lastAt, from: this.lastAt, to: now };
      this.lastAt = now;
    };
    link.onClose = () => {
      this.closedAt = Date.now();
      clearInterval(this.timer);
    };
    this.timer = setInterval(() => {
      const f = new Uint8Array(1000);
      new DataView(f.buffer).setUint32(0, this.sent);
      f.fill(this.sent & 0xff, 4);
      this.link.send(f);
      this.sent++;
    }, intervalMs);
  }
  stats(): Record<string, unknown> {
    return { sent: this.sent, echoed: this.echoed, inOrder: this.inOrder, maxGap: this.gap, closedAt: this.closedAt, info: connectionInfoOf(this.link) ?? null };
  }
}

main().catch((err) => {
  emit('fatal', { err: String(err?.stack ?? err) });
  process.exit(1);
});
