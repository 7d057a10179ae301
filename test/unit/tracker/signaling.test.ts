import { afterEach, describe, expect, it } from 'vitest';
import { SIGNAL_MAX_BYTES } from '../../../peer/core/signaling.js';
import type { TrackerOptions } from '../../../tracker/server.js';
import { Client, getMetrics, metricValue, startTracker, until, type Started } from './helpers.js';

let tracker: Started | null = null;
const clients: Client[] = [];

async function setup(opts: TrackerOptions = {}): Promise<Started> {
  tracker = await startTracker(opts);
  return tracker;
}
async function client(): Promise<Client> {
  const c = await Client.connect(tracker!.ws);
  clients.push(c);
  return c;
}
const rejected = (text: string, reason: string) => metricValue(text, `starling_tracker_messages_rejected_total{reason="${reason}"}`);

afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.terminate();
  await tracker?.app.close();
  tracker = null;
});

describe('tracker signaling over WebSocket', () => {
  it('welcomes joining peers with an id, ICE servers and a sample of the others', async () => {
    await setup({ stunPort: 3478 });
    const origin = await client();
    const w0 = await origin.join('demo', 'origin', { peerId: 'origin-root-1' });
    expect(w0).toMatchObject({ type: 'welcome', peerId: 'origin-root-1', peers: [] });
    expect(w0.iceServers).toEqual([{ urls: 'stun:127.0.0.1:3478' }]);

    const a = await client();
    const wa = await a.join('demo', 'browser');
    expect(wa.peerId).toMatch(/^[A-Za-z0-9_-]{8,64}$/);
    expect(wa.peers).toEqual([{ peerId: 'origin-root-1', kind: 'origin' }]);

    const b = await client();
    const wb = await b.join('demo', 'browser', { peerId: 'browser-bbbb' });
    expect(wb.peers.map((p: any) => p.peerId).sort()).toEqual([wa.peerId, 'origin-root-1'].sort());

    // Another channel is invisible.
    const other = await client();
    expect((await other.join('other', 'browser')).peers).toEqual([]);

    // A taken id is replaced by a random one.
    const dup = await client();
    const wd = await dup.join('demo', 'seeder', { peerId: 'browser-bbbb' });
    expect(wd.peerId).not.toBe('browser-bbbb');

    // peers request: another sample, never the requester.
    a.send({ type: 'peers' });
    const p = await a.next('peers');
    expect(p.peers.map((x: any) => x.peerId).sort()).toEqual(['browser-bbbb', 'origin-root-1', wd.peerId].sort());
    a.send({ type: 'peers', max: 1 });
    expect((await a.next('peers')).peers).toHaveLength(1);

    const res = await fetch(`${tracker!.http}/api/channels`);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(await res.json()).toEqual([
      { channel: 'demo', peers: { origin: 1, seeder: 1, browser: 2 } },
      { channel: 'other', peers: { origin: 0, seeder: 0, browser: 1 } },
    ]);
    const metrics = await getMetrics(tracker!.http);
    expect(metricValue(metrics, 'starling_tracker_peers{channel="demo",kind="browser"}')).toBe(2);
    expect(metricValue(metrics, 'starling_tracker_messages_received_total{type="join"}')).toBe(5);
    expect(metricValue(metrics, 'starling_tracker_connections_total')).toBe(5);
  });

  it('says in the welcome whether its optimizer places peers', async () => {
    await setup();
    const a = await client();
    expect((await a.join('demo', 'browser')).optimizer).toBe(true); // enabled by default
    await tracker!.app.close();
    await setup({ optimizer: { enabled: false } });
    const b = await client();
    expect(await b.join('demo', 'browser')).not.toHaveProperty('optimizer');
  });

  it('caps welcomes at 10 peers with at most 2 origin/seeders', async () => {
    await setup();
    for (let i = 0; i < 4; i++) await (await client()).join('big', i === 0 ? 'origin' : 'seeder');
    for (let i = 0; i < 14; i++) await (await client()).join('big', 'browser');
    const c = await client();
    const w = await c.join('big', 'browser');
    expect(w.peers).toHaveLength(10);
    expect(w.peers.filter((p: any) => p.kind !== 'browser')).toHaveLength(2);
    c.send({ type: 'peers', max: 500 });
    expect((await c.next('peers')).peers.length).toBeLessThanOrEqual(20);
  });

  it('relays signals within a channel and rejects unknown targets', async () => {
    await setup();
    const a = await client();
    const b = await client();
    const wa = await a.join('demo', 'seeder', { peerId: 'seeder-aaaa' });
    await b.join('demo', 'browser', { peerId: 'browser-bbbb' });
    const offer = { sdp: { type: 'offer', sdp: 'v=0\r\n' } };
    a.send({ type: 'signal', to: 'browser-bbbb', data: offer });
    expect(await b.next('signal')).toEqual({ type: 'signal', from: wa.peerId, fromKind: 'seeder', data: offer });
    // an offer for an optimizer-assigned link says so; only `true` passes the schema
    const assignedOffer = { ...offer, assigned: true };
    a.send({ type: 'signal', to: 'browser-bbbb', data: assignedOffer });
    expect((await b.next('signal')).data).toEqual(assignedOffer);
    a.send({ type: 'signal', to: 'browser-bbbb', data: { ...offer, assigned: 'yes' } });
    expect((await a.next('error')).type).toBe('error');
    const cand = { candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 5000 typ host', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: 'abcd' } };
    b.send({ type: 'signal', to: 'seeder-aaaa', data: cand });
    expect((await a.next('signal')).data).toEqual(cand);
    b.send({ type: 'signal', to: 'seeder-aaaa', data: { candidate: null } });
    expect((await a.next('signal')).data).toEqual({ candidate: null });

    a.send({ type: 'signal', to: 'nobody-here', data: { reject: 'busy' } });
    expect(await a.next('error')).toEqual({ type: 'error', reason: 'unknown peer' });

    // A peer in another channel is not reachable.
    const c = await client();
    await c.join('elsewhere', 'browser', { peerId: 'browser-cccc' });
    a.send({ type: 'signal', to: 'browser-cccc', data: { reject: 'x' } });
    expect((await a.next('error')).reason).toBe('unknown peer');

    const m = await getMetrics(tracker!.http);
    expect(metricValue(m, 'starling_tracker_signals_relayed_total')).toBe(4);
    expect(rejected(m, 'unknown peer')).toBe(2);
  });

  it('requires the publish key to join as origin', async () => {
    await setup({ publishKey: 's3cret' });
    const bad = await client();
    bad.send({ type: 'join', channel: 'demo', kind: 'origin', publishKey: 'wrong' });
    expect(await bad.next('error')).toEqual({ type: 'error', reason: 'bad publish key' });
    expect((await bad.closed).code).toBe(1008);

    const missing = await client();
    missing.send({ type: 'join', channel: 'demo', kind: 'origin' });
    expect((await missing.closed).code).toBe(1008);

    const good = await client();
    expect((await good.join('demo', 'origin', { publishKey: 's3cret' })).type).toBe('welcome');
    const viewer = await client();
    expect((await viewer.join('demo', 'browser')).peers).toHaveLength(1);
    expect(rejected(await getMetrics(tracker!.http), 'bad publish key')).toBe(2);
  });

  it('rejects malformed, invalid, unknown, binary, before-join and oversize messages, and counts them', async () => {
    await setup();
    const c = await client();
    c.send('{not json');
    expect((await c.next('error')).reason).toBe('malformed json');
    c.send({ type: 'peers' });
    expect((await c.next('error')).reason).toBe('not joined');
    c.send({ type: 'teleport' });
    expect((await c.next('error')).reason).toBe('unknown type');
    c.send({ type: 'join', channel: 'Bad Name!', kind: 'browser' });
    expect((await c.next('error')).reason).toBe('invalid channel');
    c.send({ type: 'join', channel: 'demo', kind: 'wizard' });
    expect((await c.next('error')).reason).toMatch(/^invalid message: \/kind/);
    c.send({ type: 'join', channel: 'demo', kind: 'browser', peerId: 'short' });
    expect((await c.next('error')).reason).toMatch(/^invalid message/);
    c.send('[1,2]');
    expect((await c.next('error')).reason).toMatch(/^invalid message/);
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect((await c.next('error')).reason).toBe('binary frame');

    await c.join('demo', 'browser');
    c.send({ type: 'join', channel: 'demo', kind: 'browser' });
    expect((await c.next('error')).reason).toBe('already joined');
    c.send({ type: 'report', stats: { bitrate: 'fast' } });
    expect((await c.next('error')).reason).toMatch(/^invalid message/);
    c.send({ type: 'report', stats: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, i])) });
    expect((await c.next('error')).reason).toMatch(/^invalid message/);
    c.send({ type: 'signal', to: 'someone-else', data: { sdp: { type: 'offer' } } });
    expect((await c.next('error')).reason).toMatch(/^invalid message/);
    c.send({ type: 'signal', to: 'someone-else', data: { reject: 'x' }, extra: 1 });
    expect((await c.next('error')).reason).toMatch(/^invalid message/);

    // Still connected and working after all that.
    c.send({ type: 'peers' });
    expect((await c.next('peers')).type).toBe('peers');

    // Oversize: ws maxPayload cuts the connection with 1009.
    c.send({ type: 'report', stats: {}, pad: 'x'.repeat(SIGNAL_MAX_BYTES) });
    expect((await c.closed).code).toBe(1009);

    const m = await until(async () => {
      const text = await getMetrics(tracker!.http);
      return rejected(text, 'oversize') === 1 ? text : null;
    });
    expect(rejected(m, 'malformed json')).toBe(1);
    expect(rejected(m, 'not joined')).toBe(1);
    expect(rejected(m, 'unknown type')).toBe(1);
    expect(rejected(m, 'invalid channel')).toBe(1);
    expect(rejected(m, 'binary frame')).toBe(1);
    expect(rejected(m, 'already joined')).toBe(1);
    expect(rejected(m, 'invalid message')).toBe(7);
    // The closed peer is gone.
    expect(tracker!.app.tracker.registry.size).toBe(0);
  });

  it('rate-limits a flooding connection, then closes it with 1008', async () => {
    await setup();
    const c = await client();
    await c.join('demo', 'browser');
    const frame = JSON.stringify({ type: 'report', stats: { x: 1 } });
    for (let i = 0; i < 1500; i++) c.ws.send(frame);
    const closed = await c.closed;
    expect(closed.code).toBe(1008);
    const m = await getMetrics(tracker!.http);
    expect(metricValue(m, 'starling_tracker_rate_limited_total')).toBeGreaterThan(1000);
    expect(metricValue(m, 'starling_tracker_flood_closed_total')).toBe(1);
    expect(metricValue(m, 'starling_tracker_messages_received_total{type="report"}')).toBeLessThan(300);
  });

  it('drops over-limit messages without closing a moderately bursty client', async () => {
    await setup({ limits: { burst: 5, ratePerSec: 1, floodDropLimit: 1000 } });
    const c = await client();
    await c.join('demo', 'browser');
    for (let i = 0; i < 10; i++) c.send({ type: 'peers' });
    const got: unknown[] = [];
    for (let i = 0; i < 4; i++) got.push(await c.next('peers'));
    await expect(c.next('peers', () => true, 300)).rejects.toThrow(/timeout/);
    const m = await getMetrics(tracker!.http);
    expect(metricValue(m, 'starling_tracker_rate_limited_total')).toBe(6);
    expect(c.ws.readyState).toBe(1);
  });

  it('removes peers on leave and on disconnect, and stores reports', async () => {
    await setup();
    const a = await client();
    const b = await client();
    const c = await client();
    await a.join('demo', 'browser', { peerId: 'browser-aaaa' });
    await b.join('demo', 'browser', { peerId: 'browser-bbbb' });
    await c.join('demo', 'seeder', { peerId: 'seeder-cccc' });
    a.send({ type: 'report', stats: { bufferMs: 4000, uploadKbps: 1234.5 } });
    await until(async () => {
      const peers = await (await fetch(`${tracker!.http}/api/channels/demo/peers`)).json();
      return peers.find((p: any) => p.peerId === 'browser-aaaa')?.lastReport?.bufferMs === 4000;
    });
    const peers = await (await fetch(`${tracker!.http}/api/channels/demo/peers`)).json();
    expect(peers).toHaveLength(3);
    const pa = peers.find((p: any) => p.peerId === 'browser-aaaa');
    expect(pa).toMatchObject({ kind: 'browser', lastReport: { bufferMs: 4000, uploadKbps: 1234.5 } });
    expect(typeof pa.joinedAt).toBe('number');
    expect(JSON.stringify(peers)).not.toContain('127.0.0.1');

    b.send({ type: 'leave' });
    expect((await b.closed).code).toBe(1000);
    c.close();
    await c.closed;
    await until(() => tracker!.app.tracker.registry.size === 1);
    a.send({ type: 'peers' });
    expect((await a.next('peers')).peers).toEqual([]);
    a.send({ type: 'signal', to: 'browser-bbbb', data: { reject: 'x' } });
    expect((await a.next('error')).reason).toBe('unknown peer');
    expect(await (await fetch(`${tracker!.http}/api/channels`)).json()).toEqual([{ channel: 'demo', peers: { origin: 0, seeder: 0, browser: 1 } }]);
  });

  it('closes connections with 1001 when the tracker shuts down', async () => {
    const t = await setup();
    const c = await client();
    await c.join('demo', 'browser');
    await t.app.close();
    tracker = null;
    expect((await c.closed).code).toBe(1001);
  });

  it('lets a reconnecting peer resume its id with the token of its welcome, and nobody else', async () => {
    await setup();
    const first = await client();
    const w1 = await first.join('demo', 'browser', { peerId: 'browser-resume1' });
    expect(w1.peerId).toBe('browser-resume1');
    expect(typeof w1.resumeToken).toBe('string');
    // A stranger claiming the id without (or with a wrong) token gets another id.
    const thief = await client();
    const w2 = await thief.join('demo', 'browser', { peerId: 'browser-resume1', resumeToken: 'x'.repeat(43) });
    expect(w2.peerId).not.toBe('browser-resume1');
    // The owner's new connection takes the id over while the old one is still open; the old one is closed.
    const second = await client();
    const w3 = await second.join('demo', 'browser', { peerId: 'browser-resume1', resumeToken: w1.resumeToken });
    expect(w3.peerId).toBe('browser-resume1');
    expect((await first.closed).code).toBe(4000);
    await until(() => tracker!.app.tracker.registry.size === 2);
  });
});
