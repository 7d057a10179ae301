/**
 * Publish authentication and WHIP request checks, without ffmpeg or WebRTC: every request here
 * must be refused with the right status before anything starts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { authStatus, bearerToken, checkSecret, generateStreamKey, isValidStreamKey, RateLimiter } from '../../../server/auth.js';
import type { Channel } from '../../../server/channel.js';
import { buildOriginHttp } from '../../../server/http.js';
import { IngestMetrics } from '../../../server/ingest-metrics.js';
import { OriginMetrics } from '../../../server/metrics.js';
import { answerCodecs, checkOffer, ffmpegSdp, parseSdpFrag } from '../../../server/sdp.js';
import { registerWhip } from '../../../server/whip.js';

export function offer(opts: { video?: string[]; audio?: string[] | null; extra?: string } = {}): string {
  const video = opts.video ?? ['96 VP8/90000'];
  const lines = [
    'v=0', 'o=- 4611731400430051336 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0 1',
    `m=video 9 UDP/TLS/RTP/SAVPF ${video.map((v) => v.split(' ')[0]).join(' ')}`,
    'c=IN IP4 0.0.0.0', 'a=ice-ufrag:abcd', 'a=ice-pwd:abcdefghijklmnopqrstuvwx',
    'a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF',
    'a=setup:actpass', 'a=mid:0', 'a=sendonly', 'a=rtcp-mux',
    ...video.flatMap((v) => {
      const [pt, name] = v.split(' ');
      return [`a=rtpmap:${pt} ${name}`, ...(name.startsWith('H264') ? [`a=fmtp:${pt} level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f`] : [])];
    }),
  ];
  if (opts.audio !== null) {
    const audio = opts.audio ?? ['111 opus/48000/2'];
    lines.push(
      `m=audio 9 UDP/TLS/RTP/SAVPF ${audio.map((a) => a.split(' ')[0]).join(' ')}`, 'c=IN IP4 0.0.0.0', 'a=ice-ufrag:abcd', 'a=ice-pwd:abcdefghijklmnopqrstuvwx',
      'a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF',
      'a=setup:actpass', 'a=mid:1', 'a=sendonly', 'a=rtcp-mux', ...audio.map((a) => `a=rtpmap:${a}`),
    );
  }
  if (opts.extra) lines.push(opts.extra);
  return `${lines.join('\r\n')}\r\n`;
}

describe('auth helpers', () => {
  it('parses bearer tokens and compares secrets', () => {
    expect(bearerToken('Bearer abc.DEF-123')).toBe('abc.DEF-123');
    expect(bearerToken('bearer  xyz')).toBe('xyz');
    expect(bearerToken('Basic abc')).toBeNull();
    expect(bearerToken(undefined)).toBeNull();
    expect(bearerToken('Bearer a b')).toBeNull();
    expect(checkSecret('k1234567', 'k1234567')).toBe('ok');
    expect(checkSecret('k1234568', 'k1234567')).toBe('wrong');
    expect(checkSecret('short', 'k1234567')).toBe('wrong');
    expect(checkSecret(null, 'k1234567')).toBe('missing');
    expect(checkSecret('anything', undefined)).toBe('disabled');
    expect(authStatus('missing')).toBe(401);
    expect(authStatus('wrong')).toBe(403);
    expect(authStatus('disabled')).toBe(403);
    const k = generateStreamKey();
    expect(isValidStreamKey(k)).toBe(true);
    expect(k).not.toBe(generateStreamKey());
    expect(isValidStreamKey('short')).toBe(false);
    expect(isValidStreamKey('has space in it')).toBe(false);
    expect(isValidStreamKey('a?b=cdefgh')).toBe(false);
  });

  it('rate limiter: burst, refill, bounded memory', () => {
    let t = 0;
    const rl = new RateLimiter(1, 3, 2, () => t);
    expect([rl.take('a'), rl.take('a'), rl.take('a'), rl.take('a')]).toEqual([true, true, true, false]);
    t += 1000;
    expect(rl.take('a')).toBe(true);
    expect(rl.take('a')).toBe(false);
    rl.take('b');
    rl.take('c'); // evicts 'a' (least recently used): it starts with a full bucket again
    expect(rl.take('a')).toBe(true);
  });
});

describe('SDP checks', () => {
  it('accepts VP8/H.264 + Opus offers and reports what is usable', () => {
    expect(checkOffer(offer())).toEqual({ ok: true, videoCodecs: ['VP8'], hasAudio: true });
    expect(checkOffer(offer({ video: ['102 H264/90000', '96 VP8/90000'], audio: null }))).toEqual({ ok: true, videoCodecs: ['H264', 'VP8'], hasAudio: false });
  });

  it('refuses malformed, oversized and unsupported offers with 400/413/406', () => {
    const bad = (sdp: string) => checkOffer(sdp) as { ok: false; status: number; error: string };
    expect(bad('').status).toBe(400);
    expect(bad('hello world').status).toBe(400);
    expect(bad('v=0\r\ns=-\r\n').status).toBe(400); // no o=, no media
    expect(bad(offer().replace(/a=ice-pwd:[^\r]*\r\n/g, '')).status).toBe(400);
    expect(bad(offer().replace(/a=fingerprint:[^\r]*\r\n/g, '')).status).toBe(400);
    expect(bad(offer().replace('m=video 9 UDP', 'm=video x UDP')).status).toBe(400);
    expect(bad(offer({ extra: 'a=\u0000binary' })).status).toBe(400);
    expect(bad(offer({ extra: `a=x-pad:${'x'.repeat(33 * 1024)}` })).status).toBe(413);
    const vp9 = bad(offer({ video: ['98 VP9/90000', '45 AV1/90000'] }));
    expect(vp9.status).toBe(406);
    expect(vp9.error).toMatch(/VP9, AV1/);
    expect(bad(offer({ video: ['96 VP8/90000'], audio: ['0 PCMU/8000'] })).status).toBe(406);
    expect(bad(offer().replace(/m=video[\s\S]*?(?=m=audio)/, '')).status).toBe(406); // audio only
    expect(bad(offer({ video: ['102 H264/90000'] }).replace('packetization-mode=1', 'packetization-mode=0')).status).toBe(406);
  });

  it('reads the chosen codecs of an answer, writes ffmpeg SDP, parses trickle fragments', () => {
    expect(answerCodecs(offer({ video: ['102 H264/90000', '96 VP8/90000'] }))).toEqual([
      { kind: 'video', pt: 102, name: 'H264', fmtp: 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f' },
      { kind: 'audio', pt: 111, name: 'opus', fmtp: null },
    ]);
    const sdp = ffmpegSdp([{ kind: 'video', port: 40000, pt: 102, codec: 'H264' }, { kind: 'audio', port: 40002, pt: 111, codec: 'opus' }]);
    expect(sdp).toContain('m=video 40000 RTP/AVP 102\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1');
    expect(sdp).toContain('m=audio 40002 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2');
    const frag = parseSdpFrag('a=ice-ufrag:abcd\r\na=ice-pwd:xyz\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host\r\na=end-of-candidates\r\n');
    expect(frag).toEqual({ candidates: [{ candidate: 'candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host', mid: '0' }], ufrag: 'abcd', pwd: 'xyz', endOfCandidates: true });
  });
});

describe('WHIP endpoint refusals (nothing starts)', () => {
  let app: FastifyInstance;
  let published = 0;
  const stub = (name: string, key?: string) => ({
    name,
    streamKey: () => key,
    publish: async () => { published++; throw new Error('must not be called'); },
  }) as unknown as Channel;
  const channels = new Map([['live', stub('live', 'right-key-123')], ['closed', stub('closed')]]);

  beforeAll(async () => {
    const metrics = new OriginMetrics();
    app = await buildOriginHttp({ channels: new Map(), defaultChannel: 'live', metrics, playerDir: null });
    registerWhip(app, { channel: (n) => channels.get(n) ?? null, metrics: new IngestMetrics(new Registry()), workDir: '/nonexistent', log: { debug() {}, info() {}, warn() {}, error() {} } });
  });
  afterAll(async () => { await app.close(); });

  const post = (url: string, body: string, headers: Record<string, string>) => app.inject({ method: 'POST', url, payload: body, headers });
  const sdpHeaders = (key?: string) => ({ 'content-type': 'application/sdp', ...(key ? { authorization: `Bearer ${key}` } : {}) });

  it('answers the right status for every bad request', async () => {
    expect((await post('/whip/nope', offer(), sdpHeaders('right-key-123'))).statusCode).toBe(404);
    const missing = await post('/whip/live', offer(), sdpHeaders());
    expect(missing.statusCode).toBe(401);
    expect(missing.headers['www-authenticate']).toMatch(/^Bearer/);
    expect((await post('/whip/live', offer(), sdpHeaders('wrong-key-123'))).statusCode).toBe(403);
    expect((await post('/whip/live', offer(), { ...sdpHeaders('right-key-123'), authorization: 'Basic cmlnaHQ6a2V5' })).statusCode).toBe(401);
    expect((await post('/whip/closed', offer(), sdpHeaders('anything-123'))).statusCode).toBe(403);
    expect((await post('/whip/live', 'v=0 nonsense', sdpHeaders('right-key-123'))).statusCode).toBe(400);
    expect((await post('/whip/live', offer(), { 'content-type': 'text/plain', authorization: 'Bearer right-key-123' })).statusCode).toBe(415);
    expect((await post('/whip/live', offer({ video: ['98 VP9/90000'] }), sdpHeaders('right-key-123'))).statusCode).toBe(406);
    const big = await post('/whip/live', offer({ extra: `a=x-pad:${'x'.repeat(40 * 1024)}` }), sdpHeaders('right-key-123'));
    expect(big.statusCode).toBe(413);
    // a wrong key is refused before the (oversize) body is even read
    expect((await post('/whip/live', offer({ extra: `a=x-pad:${'x'.repeat(40 * 1024)}` }), sdpHeaders('wrong-key-123'))).statusCode).toBe(403);
    expect((await app.inject({ method: 'DELETE', url: '/whip/live/AAAAAAAAAAAAAAAAAAAAAA', headers: { authorization: 'Bearer right-key-123' } })).statusCode).toBe(404);
    expect((await app.inject({ method: 'DELETE', url: '/whip/live/AAAAAAAAAAAAAAAAAAAAAA' })).statusCode).toBe(401);
    const pre = await app.inject({ method: 'OPTIONS', url: '/whip/live' });
    expect(pre.statusCode).toBe(204);
    expect(pre.headers['accept-post']).toBe('application/sdp');
    expect(published).toBe(0);
  });

  it('rate-limits POSTs per address', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 30; i++) codes.push((await post('/whip/live', 'x', sdpHeaders('wrong-key-123'))).statusCode);
    expect(codes).toContain(429);
  });
});
