/**
 * The broadcaster page: pick camera/microphone or screen, preview, choose channel and stream
 * key, go live over WHIP (the browser's own RTCPeerConnection), watch live figures (bitrate,
 * frames, connection state, viewers and offload of the channel from the tracker), stop.
 *
 * Query parameters (handy for tests and bookmarks): channel, source=camera|screen, quality=720|480|360, clock=1.
 * window.starlingBroadcast = { state(), stats(), goLive(), stop() } for tests.
 */
import { isValidName } from '../../../peer/core/paths.js';
import { drawClock } from './clock-code.js';
import { whipPublish, whipStop, WhipHttpError, type WhipSessionInfo } from './whip.js';

type State = 'idle' | 'previewing' | 'connecting' | 'live' | 'error';

interface BroadcastStats {
  state: State;
  connectionState: string | null;
  bytesSent: number;
  bitrateKbps: number;
  framesSent: number;
  framesEncoded: number;
  width: number | null;
  height: number | null;
  fps: number | null;
  codec: string | null;
  onAirSeconds: number;
  viewers: number | null;
  offload: number | null;
  /** ms from "Go live" to the WHIP answer. */
  connectMs: number | null;
}

declare global {
  interface Window {
    starlingBroadcast?: { state(): State; stats(): BroadcastStats; goLive(): Promise<void>; stop(): Promise<void> };
  }
}

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
};
const params = new URLSearchParams(location.search);
const preview = $<HTMLVideoElement>('preview');
const statusEl = $('status');
const stateEl = $('state');
const sourceSel = $<HTMLSelectElement>('source');
const qualitySel = $<HTMLSelectElement>('quality');
const clockBox = $<HTMLInputElement>('clock');
const channelIn = $<HTMLInputElement>('channel');
const keyIn = $<HTMLInputElement>('key');
const previewBtn = $<HTMLButtonElement>('preview-btn');
const liveBtn = $<HTMLButtonElement>('live-btn');
const stopBtn = $<HTMLButtonElement>('stop-btn');

let state: State = 'idle';
let media: MediaStream | null = null;
let sending: MediaStream | null = null;
let clockTimer: ReturnType<typeof setInterval> | null = null;
let session: WhipSessionInfo | null = null;
let liveAt: number | null = null;
let connectMs: number | null = null;
let trackerHttp: string | null = null;
const figures: BroadcastStats = {
  state, connectionState: null, bytesSent: 0, bitrateKbps: 0, framesSent: 0, framesEncoded: 0, width: null, height: null, fps: null,
  codec: null, onAirSeconds: 0, viewers: null, offload: null, connectMs: null,
};
let lastBytes = 0;
let lastAt = 0;

function setStatus(text: string, kind: 'info' | 'error' = 'info'): void {
  statusEl.textContent = text;
  statusEl.dataset.kind = kind;
  statusEl.hidden = text === '';
}

function setState(s: State): void {
  state = s;
  figures.state = s;
  stateEl.dataset.state = s;
  stateEl.textContent = s === 'live' ? 'LIVE' : s === 'connecting' ? 'connecting…' : s === 'previewing' ? 'preview' : s === 'error' ? 'error' : 'offline';
  const busy = s === 'live' || s === 'connecting';
  liveBtn.disabled = busy;
  stopBtn.disabled = !busy && s !== 'previewing';
  sourceSel.disabled = busy;
  qualitySel.disabled = busy;
  clockBox.disabled = busy;
  channelIn.disabled = busy;
  keyIn.disabled = busy;
  previewBtn.disabled = busy;
}

function stopTracks(): void {
  if (clockTimer) clearInterval(clockTimer);
  clockTimer = null;
  for (const s of [media, sending]) s?.getTracks().forEach((t) => t.stop());
  media = null;
  sending = null;
  preview.srcObject = null;
}

/** Camera/mic or screen (+ mic), at the chosen height; optionally re-drawn with a burnt-in clock. */
async function capture(): Promise<MediaStream> {
  stopTracks();
  const height = Number(qualitySel.value) || 720;
  const width = Math.round((height * 16) / 9);
  const video = { width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: 25, max: 30 } };
  if (!navigator.mediaDevices) {
    throw new Error('this page needs a secure origin for camera and screen access: open it over https:// (or http://localhost)');
  }
  let stream: MediaStream;
  if (sourceSel.value === 'screen') {
    stream = await navigator.mediaDevices.getDisplayMedia({ video, audio: false });
    try {
      const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
      mic.getAudioTracks().forEach((t) => stream.addTrack(t));
    } catch {
      // no microphone: video only (the origin adds silence)
    }
  } else {
    stream = await navigator.mediaDevices.getUserMedia({ video, audio: true });
  }
  media = stream;
  let out = stream;
  if (clockBox.checked) {
    // Re-draw every frame on a canvas with the clock code on top, and send the canvas.
    const src = document.createElement('video');
    src.muted = true;
    src.playsInline = true;
    src.srcObject = stream;
    await src.play().catch(() => undefined);
    const canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext('2d');
    if (!ctx) throw new Error('no 2D canvas');
    clockTimer = setInterval(() => {
      ctx.drawImage(src, 0, 0, width, height);
      drawClock(ctx, width, height, Date.now());
    }, 40);
    out = canvas.captureStream(25);
    stream.getAudioTracks().forEach((t) => out.addTrack(t));
  }
  sending = out;
  preview.srcObject = out;
  void preview.play().catch(() => undefined);
  return out;
}

async function startPreview(): Promise<void> {
  try {
    await capture();
    setState('previewing');
    setStatus('');
  } catch (err) {
    setState('error');
    setStatus(`No camera or screen: ${err instanceof Error ? err.message : String(err)}`, 'error');
  }
}

async function goLive(): Promise<void> {
  const channel = channelIn.value.trim();
  if (!isValidName(channel)) {
    setStatus('Channel: 1–32 characters of a–z, 0–9, _ and -, starting with a letter or digit.', 'error');
    return;
  }
  const key = keyIn.value;
  if (!key) {
    setStatus('Enter the stream key of the channel.', 'error');
    return;
  }
  setState('connecting');
  setStatus('Connecting…');
  const t0 = performance.now();
  try {
    const stream = sending ?? (await capture());
    const height = Number(qualitySel.value) || 720;
    const url = new URL(`/whip/${channel}`, location.origin).href;
    session = await whipPublish(url, key, stream, { videoBitrate: height >= 720 ? 2_500_000 : height >= 480 ? 1_200_000 : 800_000 });
    connectMs = Math.round(performance.now() - t0);
    figures.connectMs = connectMs;
    liveAt = Date.now();
    lastBytes = 0;
    lastAt = 0;
    const pc = session.pc;
    pc.addEventListener('connectionstatechange', () => {
      if (session?.pc !== pc) return;
      if (pc.connectionState === 'failed') setStatus('Connection to the origin failed. Stop and go live again to reconnect.', 'error');
    });
    setState('live');
    const watch = new URL(`/watch.html?channel=${channel}`, location.origin).href;
    setStatus(`Live on “${channel}”. Viewers: ${watch}`);
  } catch (err) {
    session = null;
    setState(sending ? 'previewing' : 'error');
    const msg = err instanceof WhipHttpError
      ? err.status === 401 || err.status === 403 ? `Refused: ${err.message} (HTTP ${err.status})`
        : err.status === 404 ? `No channel “${channel}” on this origin.` : `The origin refused: ${err.message} (HTTP ${err.status})`
      : `Could not go live: ${err instanceof Error ? err.message : String(err)}`;
    setStatus(msg, 'error');
  }
}

async function stop(): Promise<void> {
  const s = session;
  session = null;
  liveAt = null;
  if (s) await whipStop(s, keyIn.value).catch(() => undefined);
  stopTracks();
  setState('idle');
  setStatus(s ? 'Broadcast ended. Viewers see the end; the recording stays available.' : '');
}

// ---- live figures ----------------------------------------------------------------------------
async function sample(): Promise<void> {
  const pc = session?.pc;
  figures.connectionState = pc ? pc.connectionState : null;
  figures.onAirSeconds = liveAt ? Math.round((Date.now() - liveAt) / 1000) : 0;
  if (pc) {
    const report = await pc.getStats();
    let codecId: string | null = null;
    report.forEach((r) => {
      if (r.type === 'outbound-rtp' && r.kind === 'video') {
        const now = r.timestamp as number;
        const bytes = r.bytesSent as number;
        if (lastAt > 0 && now > lastAt) figures.bitrateKbps = Math.round(((bytes - lastBytes) * 8) / (now - lastAt));
        lastBytes = bytes;
        lastAt = now;
        figures.bytesSent = bytes;
        figures.framesSent = (r.framesSent as number) ?? 0;
        figures.framesEncoded = (r.framesEncoded as number) ?? 0;
        figures.width = (r.frameWidth as number) ?? null;
        figures.height = (r.frameHeight as number) ?? null;
        figures.fps = (r.framesPerSecond as number) ?? null;
        codecId = (r.codecId as string) ?? null;
      }
    });
    if (codecId) {
      const c = report.get(codecId) as { mimeType?: string } | undefined;
      figures.codec = c?.mimeType?.replace(/^video\//, '') ?? null;
    }
  }
}

async function sampleChannel(): Promise<void> {
  const channel = channelIn.value.trim();
  if (!trackerHttp || !isValidName(channel) || state !== 'live') return;
  try {
    const list = (await (await fetch(`${trackerHttp}/api/channels`)).json()) as { channel: string; peers: Record<string, number> }[];
    figures.viewers = list.find((c) => c.channel === channel)?.peers.browser ?? 0;
    const peers = (await (await fetch(`${trackerHttp}/api/channels/${channel}/peers?limit=500`)).json()) as { lastReport: Record<string, number> | null }[];
    let p2p = 0;
    let total = 0;
    for (const p of peers) {
      const r = p.lastReport;
      if (!r) continue;
      p2p += r.bytesFromPeers ?? 0;
      total += (r.bytesFromPeers ?? 0) + (r.bytesFromOriginPeer ?? 0) + (r.bytesFromHttp ?? 0);
    }
    figures.offload = total > 0 ? p2p / total : null;
  } catch {
    // the tracker is optional for broadcasting
  }
}

function render(): void {
  const set = (id: string, v: string) => { $(id).textContent = v; };
  set('f-connection', figures.connectionState ?? '–');
  set('f-bitrate', state === 'live' ? `${figures.bitrateKbps} kbit/s` : '–');
  set('f-frames', state === 'live' ? String(figures.framesSent) : '–');
  set('f-resolution', figures.width ? `${figures.width}×${figures.height} · ${figures.fps ?? '–'}` : '–');
  set('f-codec', figures.codec ?? '–');
  set('f-duration', state === 'live' ? `${Math.floor(figures.onAirSeconds / 60)}:${String(figures.onAirSeconds % 60).padStart(2, '0')}` : '–');
  set('f-viewers', figures.viewers === null ? '–' : String(figures.viewers));
  set('f-offload', figures.offload === null ? '–' : `${(figures.offload * 100).toFixed(0)} %`);
}

// ---- start ---------------------------------------------------------------------------------
async function init(): Promise<void> {
  for (const [param, el] of [['source', sourceSel], ['quality', qualitySel]] as const) {
    const v = params.get(param);
    if (v && [...el.options].some((o) => o.value === v)) el.value = v;
  }
  clockBox.checked = params.get('clock') === '1';
  try {
    const cfg = (await (await fetch('/config.json', { cache: 'no-store' })).json()) as { trackerUrl: string; defaultChannel: string };
    channelIn.value = params.get('channel') ?? cfg.defaultChannel;
    const t = new URL(cfg.trackerUrl);
    trackerHttp = `${t.protocol === 'wss:' ? 'https:' : 'http:'}//${t.host}`;
  } catch {
    channelIn.value = params.get('channel') ?? '';
  }
  const showUrl = () => { $('whip-url').textContent = new URL(`/whip/${channelIn.value.trim() || '…'}`, location.origin).href; };
  channelIn.addEventListener('input', showUrl);
  showUrl();
}

previewBtn.addEventListener('click', () => void startPreview());
liveBtn.addEventListener('click', () => void goLive());
stopBtn.addEventListener('click', () => void stop());
window.addEventListener('pagehide', () => {
  // Best effort: end the broadcast when the page goes away (else the origin's grace period ends it).
  if (session) void fetch(session.resource, { method: 'DELETE', headers: { authorization: `Bearer ${keyIn.value}` }, keepalive: true });
});

window.starlingBroadcast = { state: () => state, stats: () => ({ ...figures }), goLive, stop };
setState('idle');
setInterval(() => {
  void sample().then(render);
}, 1000);
setInterval(() => void sampleChannel(), 3000);
void init();
