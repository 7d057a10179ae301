/**
 * The tracker's NAT hooks end to end over its WebSocket: reported NAT types order `peers`
 * answers (likely-direct first), offers count as attempts, reported links as outcomes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Client, getMetrics, metricValue, startTracker, until, type Started } from '../tracker/helpers.js';

let tracker: Started | null = null;
const clients: Client[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await tracker?.app.close();
  tracker = null;
});

async function peer(id: string, nat?: string): Promise<Client> {
  const c = await Client.connect(tracker!.ws);
  clients.push(c);
  await c.join('demo', 'browser', { peerId: id });
  if (nat) c.send({ type: 'report', stats: { x: 1 }, nat });
  return c;
}

describe('tracker NAT-aware neighbor proposals', () => {
  it('a symmetric peer is offered cone peers before symmetric/port-restricted ones; attempts and outcomes are counted', async () => {
    tracker = await startTracker();
    const me = await peer('me-symmetric', 'symmetric');
    for (let i = 0; i < 6; i++) await peer(`sym-peer-${i}`, 'symmetric');
    for (let i = 0; i < 6; i++) await peer(`prc-peer-${i}`, 'port-restricted');
    for (let i = 0; i < 3; i++) await peer(`full-peer-${i}`, 'full-cone');
    // Reports are processed asynchronously: wait until the last one is in.
    await until(async () => (await (await fetch(`${tracker!.http}/api/channels/demo/peers`)).json()).filter((p: any) => p.lastReport).length === 16);
    me.send({ type: 'peers', max: 4 });
    const got = (await me.next('peers')).peers.map((p: any) => p.peerId as string);
    expect(got).toHaveLength(4);
    // Whichever peers the random draw holds, the full-cone ones (direct with symmetric) come first.
    const rank = (id: string) => (id.startsWith('full') ? 0 : 1);
    expect([...got].sort((a, b) => rank(a) - rank(b))).toEqual(got);
    me.send({ type: 'signal', to: 'sym-peer-0', data: { sdp: { type: 'offer', sdp: 'v=0' } } });
    me.send({ type: 'report', stats: { x: 2 }, nat: 'symmetric', links: [{ peerId: 'sym-peer-0', sent: 0, received: 0, relayed: true }] });
    const m = await until(async () => {
      const t = await getMetrics(tracker!.http);
      return metricValue(t, 'starling_tracker_nat_pair_outcomes_total{pair="symmetric|symmetric",outcome="relayed"}') === 1 ? t : null;
    });
    expect(metricValue(m, 'starling_tracker_nat_pair_attempts_total{pair="symmetric|symmetric"}')).toBe(1);
  });

  it('with every sample large enough, the full-cone peers are always proposed to a symmetric peer', async () => {
    tracker = await startTracker();
    const me = await peer('me-symmetric', 'symmetric');
    for (let i = 0; i < 3; i++) await peer(`sym-peer-${i}`, 'symmetric');
    for (let i = 0; i < 2; i++) await peer(`full-peer-${i}`, 'full-cone');
    await until(async () => (await (await fetch(`${tracker!.http}/api/channels/demo/peers`)).json()).filter((p: any) => p.lastReport).length === 6);
    for (let k = 0; k < 5; k++) {
      me.send({ type: 'peers', max: 2 });
      expect((await me.next('peers')).peers.map((p: any) => p.peerId).sort()).toEqual(['full-peer-0', 'full-peer-1']);
    }
  });
});
