/**
 * Issue 8: the ICE restart policy shared by the werift and browser transports
 * (peer/transport/ice-restart.ts), on a hand-driven clock: grace period, bounded attempts with
 * back-off, give-up, glare roles; and the SDP helpers that tell a renegotiation from a new session.
 */
import { describe, expect, it } from 'vitest';
import { ICE_RESTART_DEFAULTS, IceRestarter, iceRestartConfig, sdpFingerprint, sdpIceUfrag, type IceRestartEvent, type RestartClock } from '../../../peer/transport/ice-restart.js';

class Clock implements RestartClock {
  t = 0;
  private seq = 0;
  private tasks = new Map<number, { at: number; fn: () => void }>();
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.tasks.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.tasks.delete(h as number);
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | null = null;
      for (const e of this.tasks) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.tasks.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
  get pending(): number {
    return this.tasks.size;
  }
}

function setup(initiator = true, opts = {}) {
  const clock = new Clock();
  const restarts: number[] = [];
  const events: IceRestartEvent[] = [];
  let gaveUp = 0;
  const r = new IceRestarter(iceRestartConfig(opts), initiator, {
    restart: (n) => restarts.push(clock.now()) && void n,
    giveUp: () => gaveUp++,
    onEvent: (e) => events.push(e),
  }, clock);
  return { clock, r, restarts, events, gaveUp: () => gaveUp };
}

describe('IceRestarter', () => {
  it('restarts after the grace period and ends the outage when traffic is back', () => {
    const { clock, r, restarts, events } = setup();
    r.down('connection disconnected');
    clock.advance(ICE_RESTART_DEFAULTS.graceMs - 1);
    expect(restarts).toEqual([]);
    clock.advance(1);
    expect(restarts).toEqual([1000]);
    expect(r.state).toBe('restarting');
    clock.advance(300);
    r.up(false);
    expect(r.state).toBe('idle');
    expect(events).toEqual([
      { type: 'down', reason: 'connection disconnected' },
      { type: 'restart', attempt: 1, reason: 'connection disconnected' },
      { type: 'recovered', attempt: 1, ms: 1300, relayed: false },
    ]);
    expect(clock.pending).toBe(0);
    // a later outage starts over at attempt 1
    r.down('again');
    clock.advance(1000);
    expect(events.at(-1)).toEqual({ type: 'restart', attempt: 1, reason: 'again' });
    expect(r.totalAttempts).toBe(2);
  });

  it('a blip that recovers within the grace period causes no restart', () => {
    const { clock, r, restarts, events } = setup();
    r.down('no packet for 4000 ms');
    r.down('no packet for 4500 ms'); // idempotent
    clock.advance(400);
    r.up();
    clock.advance(10_000);
    expect(restarts).toEqual([]);
    expect(events.map((e) => e.type)).toEqual(['down', 'recovered']);
    expect(events[1]).toMatchObject({ attempt: 0, ms: 400 });
  });

  it('bounded attempts with doubling back-off, then gives up once', () => {
    const { clock, r, restarts, events, gaveUp } = setup();
    r.down('connection failed');
    clock.advance(60_000);
    // grace 1 s; attempt timeout 5 s; back-off 1 s then 2 s; 3 attempts
    expect(restarts).toEqual([1000, 7000, 14_000]);
    expect(gaveUp()).toBe(1);
    expect(events.at(-1)).toEqual({ type: 'gave-up', attempts: 3, ms: 19_000 });
    expect(r.state).toBe('stopped');
    r.down('x');
    r.up();
    clock.advance(60_000);
    expect(restarts.length).toBe(3);
    expect(gaveUp()).toBe(1);
  });

  it('an attempt that fails outright backs off at once', () => {
    const { clock, r, restarts } = setup();
    r.down('connection failed');
    clock.advance(1000);
    clock.advance(200);
    r.attemptFailed();
    clock.advance(1000);
    expect(restarts).toEqual([1000, 2200]);
  });

  it('the side that did not make the original offer waits longer, and defers to a restart offer from the other side', () => {
    const polite = setup(false);
    polite.r.down('connection disconnected');
    polite.clock.advance(ICE_RESTART_DEFAULTS.graceMs);
    expect(polite.restarts).toEqual([]);
    polite.clock.advance(ICE_RESTART_DEFAULTS.politeExtraGraceMs);
    expect(polite.restarts).toEqual([2500]);

    const b = setup(false);
    b.r.down('connection disconnected');
    b.clock.advance(1000);
    b.r.remoteRestart(); // the other side's restart offer arrived: give it time
    b.clock.advance(ICE_RESTART_DEFAULTS.attemptTimeoutMs - 1);
    expect(b.restarts).toEqual([]);
    b.r.up();
    b.clock.advance(20_000);
    expect(b.restarts).toEqual([]);
  });

  it('restartNow skips the grace period or the wait; onlyIfDown only acts during an outage', () => {
    const a = setup();
    expect(a.r.restartNow('tracker reconnected', true)).toBe(false); // idle: nothing to do
    expect(a.restarts).toEqual([]);
    expect(a.r.restartNow('network changed')).toBe(true);
    expect(a.restarts).toEqual([0]);
    a.clock.advance(700);
    // e.g. the tracker connection came back: the offer sent over the dead one was lost
    expect(a.r.restartNow('tracker reconnected', true)).toBe(true);
    expect(a.restarts).toEqual([0, 700]);
    expect(a.events.filter((e) => e.type === 'restart').map((e) => (e as { attempt: number }).attempt)).toEqual([1, 2]);
    a.r.up();
    expect(a.r.restartNow('x', true)).toBe(false);
  });

  it('maxAttempts 0 closes the link at the end of the grace period', () => {
    const z = setup(true, { maxAttempts: 0 });
    z.r.down('connection failed');
    z.clock.advance(1000);
    expect(z.restarts).toEqual([]);
    expect(z.gaveUp()).toBe(1);
  });

  it('rejects bad options; stop() cancels everything', () => {
    expect(() => iceRestartConfig({ graceMs: -1 })).toThrow(TypeError);
    expect(() => iceRestartConfig({ maxAttempts: Number.NaN })).toThrow(TypeError);
    const { clock, r, restarts } = setup();
    r.down('x');
    r.stop();
    clock.advance(60_000);
    expect(restarts).toEqual([]);
    expect(clock.pending).toBe(0);
  });
});

describe('SDP helpers', () => {
  const sdp = (fp: string, ufrag: string) =>
    `v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=ice-ufrag:${ufrag}\r\na=ice-pwd:abc\r\na=fingerprint:sha-256 ${fp}\r\na=setup:actpass\r\n`;
  it('a restart offer keeps the certificate fingerprint and changes the ufrag', () => {
    const first = sdp('AB:CD:EF', 'u1');
    const restart = sdp('ab:cd:ef', 'u2');
    const other = sdp('01:02:03', 'u3');
    expect(sdpFingerprint(first)).toBe('sha-256 AB:CD:EF');
    expect(sdpFingerprint(restart)).toBe(sdpFingerprint(first));
    expect(sdpFingerprint(other)).not.toBe(sdpFingerprint(first));
    expect(sdpIceUfrag(first)).toBe('u1');
    expect(sdpIceUfrag(restart)).toBe('u2');
    expect(sdpFingerprint('v=0\r\n')).toBe('');
    expect(sdpFingerprint(undefined)).toBe('');
  });
});
