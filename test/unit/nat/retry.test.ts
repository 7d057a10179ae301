/**
 * Issue 8, point 4: a connection that keeps failing (e.g. a NAT pair with no TURN) is retried with
 * an exponential back-off and then given up, never in a tight loop, even when the tracker keeps
 * proposing the same peer. Drives the real PeerHost with fake timers for a simulated hour.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { PeerHost } from '../../../peer/host/peer-host.js';
import { FakeEngine, FakeTimers, FakeTransport, FakeWebSocket } from '../host/fakes.js';

/** Attempt times (ms) against a peer that always fails, over one simulated hour. */
async function simulateHour(): Promise<number[]> {
  const timers = new FakeTimers();
  const engine = new FakeEngine('mmmm-0000');
  const transport = new FakeTransport();
  const host = new PeerHost({
    trackerUrl: 'ws://tracker/ws', channel: 'demo', kind: 'browser', engine, transport, webSocket: FakeWebSocket,
    targetNeighbors: 1, timers, random: () => 0.5,
  });
  const started = host.start();
  const ws = FakeWebSocket.last;
  ws.open();
  ws.receive({ type: 'welcome', peerId: 'mmmm-0000', iceServers: [{ urls: 'stun:10.77.0.1:3478' }], peers: [{ peerId: 'unreachable-1', kind: 'browser' }] });
  await started;
  const attemptsAt: number[] = [];
  let seen = 0;
  // One simulated hour in 100 ms steps: every attempt fails at once (the worst case for a tight
  // loop), and the tracker re-proposes the peer every 5 s.
  for (let t = 0; t < 3600_000; t += 100) {
    while (seen < transport.connectors.length) {
      attemptsAt.push(timers.now());
      transport.connectors[seen++].fail('connection failed');
    }
    if (t % 5000 === 0) ws.receive({ type: 'peers', peers: [{ peerId: 'unreachable-1', kind: 'browser' }] });
    timers.advance(100);
  }
  await host.stop();
  return attemptsAt;
}

describe('retries of a failing pair (PeerHost)', () => {
  beforeEach(() => FakeWebSocket.reset());

  it('back-off doubles from 5 s, never a tight loop, the peer is forgotten after 6 failures', async () => {
    const attemptsAt = await simulateHour();
    const gaps = attemptsAt.slice(1).map((t, i) => t - attemptsAt[i]);
    console.log(`[retry] ${attemptsAt.length} attempts in 1 h; first gaps (s): ${gaps.slice(0, 8).map((g) => (g / 1000).toFixed(1)).join(', ')}`);
    // Exponential: 5, 10, 20, 40, 80 s between the first attempts (random 0.5 -> jitter factor 1).
    expect(gaps.slice(0, 5).map((g) => Math.round(g / 1000))).toEqual([5, 10, 20, 40, 80]);
    // Never a tight loop: no two attempts closer than the minimum back-off (5 s x 0.75).
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(3750);
    // Given up after 6 failures: the next cycle starts only after the 30-minute give-up period.
    expect(attemptsAt[6] - attemptsAt[5]).toBeGreaterThanOrEqual(30 * 60_000);
  });

  // What issue 8 asks for ("retried with a back-off and then given up"): a peer given up stays
  // given up while the tracker keeps proposing it.
  it('a given-up peer is not retried more than a dozen times in an hour of re-proposals', async () => {
    const attemptsAt = await simulateHour();
    expect(attemptsAt.length).toBeLessThanOrEqual(12);
  });
});
