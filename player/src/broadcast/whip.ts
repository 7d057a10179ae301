/**
 * WHIP (RFC 9725) publishing with the browser's own RTCPeerConnection: POST the offer (all ICE
 * candidates gathered, no trickle needed), apply the answer, DELETE the session to stop.
 */

export class WhipHttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export interface WhipSessionInfo {
  pc: RTCPeerConnection;
  /** Absolute session URL (Location). */
  resource: string;
}

/** Waits for ICE gathering to complete, at most `ms`. */
function gathered(pc: RTCPeerConnection, ms: number): Promise<void> {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === 'complete') done();
    }
    pc.addEventListener('icegatheringstatechange', check);
  });
}

/** Puts `first` codecs ahead in a transceiver's preferences (if the browser supports that). */
function preferCodecs(t: RTCRtpTransceiver, kind: 'video' | 'audio', first: string[]): void {
  const caps = typeof RTCRtpSender !== 'undefined' && RTCRtpSender.getCapabilities ? RTCRtpSender.getCapabilities(kind) : null;
  if (!caps || typeof t.setCodecPreferences !== 'function') return;
  const rank = (mime: string) => {
    const i = first.indexOf(mime.toLowerCase());
    return i < 0 ? first.length : i;
  };
  const codecs = [...caps.codecs].sort((a, b) => rank(a.mimeType) - rank(b.mimeType));
  try {
    t.setCodecPreferences(codecs);
  } catch {
    // keep the browser's order
  }
}

export async function whipPublish(url: string, key: string, stream: MediaStream, opts: { videoBitrate?: number } = {}): Promise<WhipSessionInfo> {
  const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle' });
  try {
    for (const track of stream.getTracks()) {
      const t = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
      if (track.kind === 'video') {
        // VP8 first: every browser encodes it; H.264 is the fallback the origin also takes.
        preferCodecs(t, 'video', ['video/vp8', 'video/h264']);
        const p = t.sender.getParameters();
        if (p.encodings?.length && opts.videoBitrate) {
          p.encodings[0].maxBitrate = opts.videoBitrate;
          await t.sender.setParameters(p).catch(() => undefined);
        }
      }
    }
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await gathered(pc, 3000);
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/sdp', authorization: `Bearer ${key}` },
      body: pc.localDescription?.sdp ?? offer.sdp ?? '',
    });
    const body = await res.text();
    if (res.status !== 201) throw new WhipHttpError(res.status, body.trim() || `HTTP ${res.status}`);
    const loc = res.headers.get('location');
    if (!loc) throw new WhipHttpError(res.status, 'no Location in the answer');
    await pc.setRemoteDescription({ type: 'answer', sdp: body });
    return { pc, resource: new URL(loc, url).href };
  } catch (err) {
    pc.close();
    throw err;
  }
}

export async function whipStop(s: WhipSessionInfo, key: string): Promise<void> {
  try {
    await fetch(s.resource, { method: 'DELETE', headers: { authorization: `Bearer ${key}` } });
  } finally {
    s.pc.close();
  }
}
