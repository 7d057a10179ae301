import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { comparePriority, deadlineBucket, LogicalClock, SlotTable, type SlotHolder, type SlotPriority } from '../../../peer/core/slots.js';
import { seededRandom } from './helpers.js';

const prio = (deadlineMs: number, timestamp: number, peerId: string): SlotPriority => ({ deadlineMs, timestamp, peerId });
const holder = (peerId: string, p: SlotPriority, rendition = '360p', costKbps = 500): SlotHolder =>
  ({ peerId, rendition, costKbps, priority: p });

describe('slot priorities', () => {
  it('order by deadline, then logical timestamp, then peer id', () => {
    expect(comparePriority(prio(100, 9, 'z'), prio(200, 1, 'a'))).toBeLessThan(0);
    expect(comparePriority(prio(100, 1, 'z'), prio(100, 2, 'a'))).toBeLessThan(0);
    expect(comparePriority(prio(100, 1, 'a'), prio(100, 1, 'b'))).toBeLessThan(0);
    expect(comparePriority(prio(100, 1, 'a'), prio(100, 1, 'a'))).toBe(0);
  });

  it('every peer orders the same requests identically, whatever order it heard them in', () => {
    const prioArb = fc.record({
      deadlineMs: fc.integer({ min: 0, max: 0xffff }), timestamp: fc.integer({ min: 0, max: 0xffffffff }),
      peerId: fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/),
    });
    fc.assert(fc.property(fc.uniqueArray(prioArb, { selector: (p) => p.peerId, minLength: 1, maxLength: 30 }), fc.integer(), (reqs, seed) => {
      // two peers receive the requests in different orders
      const shuffled = [...reqs];
      const r = seededRandom(seed);
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = Math.floor(r.next() * (i + 1));
        [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
      }
      const a = [...reqs].sort(comparePriority).map((p) => p.peerId);
      const b = shuffled.sort(comparePriority).map((p) => p.peerId);
      expect(b).toEqual(a);
      // and two slot tables fed in those orders end up with the same holders when all fit
      const t1 = new SlotTable({ maxSlots: reqs.length, capacityKbps: Infinity });
      const t2 = new SlotTable({ maxSlots: reqs.length, capacityKbps: Infinity });
      for (const p of reqs) t1.request(holder(p.peerId, p));
      for (const p of shuffled) t2.request(holder(p.peerId, p));
      expect(t2.list().map((h) => h.peerId)).toEqual(t1.list().map((h) => h.peerId));
    }), { numRuns: 200 });
  });

  it('deadline buckets absorb jitter and cap at u16', () => {
    expect(deadlineBucket(1010)).toBe(deadlineBucket(1190));
    expect(deadlineBucket(-5)).toBe(0);
    expect(deadlineBucket(Infinity)).toBe(0xffff);
    expect(deadlineBucket(1e9)).toBe(0xffff);
  });

  it('Lamport clock: ticks, observes larger timestamps, ignores smaller ones', () => {
    const c = new LogicalClock();
    expect(c.tick()).toBe(1);
    c.observe(40);
    expect(c.tick()).toBe(41);
    c.observe(3);
    expect(c.tick()).toBe(42);
  });
});

describe('SlotTable', () => {
  it('grants while slots and capacity last, then refuses requests that outrank nobody', () => {
    const t = new SlotTable({ maxSlots: 3, capacityKbps: 1200 });
    expect(t.request(holder('a', prio(500, 1, 'a')))).toEqual({ granted: true, revoked: null });
    expect(t.request(holder('b', prio(500, 2, 'b')))).toEqual({ granted: true, revoked: null });
    expect(t.free(500)).toBe(0); // 1000 of 1200 kbit/s used: a third 500 kbit/s child does not fit
    expect(t.spareKbps()).toBe(200); // what a relay of a cheaper rendition could use
    expect(t.request(holder('c', prio(500, 3, 'c')))).toEqual({ granted: false, reason: 'full' });
    expect(t.request(holder('d', prio(500, 4, 'd'), '240p', 150))).toEqual({ granted: true, revoked: null });
    expect(t.size).toBe(3);
    expect(t.spareKbps()).toBe(0); // no slot left, whatever the rate
    expect(new SlotTable({ maxSlots: 2, capacityKbps: Infinity }).spareKbps()).toBe(Infinity);
  });

  it('a better request takes the slot of the lowest-priority holder only: one holder, never all', () => {
    const t = new SlotTable({ maxSlots: 3, capacityKbps: Infinity });
    for (const [id, ts] of [['a', 1], ['b', 2], ['c', 3]] as const) t.request(holder(id, prio(0xffff, ts, id)));
    const d = t.request(holder('urgent', prio(250, 10, 'urgent')));
    expect(d).toEqual({ granted: true, revoked: expect.objectContaining({ peerId: 'c' }) });
    expect(t.list().map((h) => h.peerId)).toEqual(['urgent', 'a', 'b']);
    // another urgent request of the same urgency but newer does not outrank the first one; it
    // takes b's slot (the lowest now), a keeps its slot
    const e = t.request(holder('urgent2', prio(250, 11, 'urgent2')));
    expect(e).toEqual({ granted: true, revoked: expect.objectContaining({ peerId: 'b' }) });
    expect(t.list().map((h) => h.peerId)).toEqual(['urgent', 'urgent2', 'a']);
  });

  it('a holder asking again keeps its slot and never loses priority', () => {
    const t = new SlotTable({ maxSlots: 1, capacityKbps: Infinity });
    t.request(holder('a', prio(1000, 1, 'a')));
    expect(t.request(holder('a', prio(0xffff, 50, 'a')))).toEqual({ granted: true, revoked: null });
    expect(t.list()[0].priority).toEqual(prio(1000, 1, 'a'));
    expect(t.request(holder('b', prio(1000, 2, 'b')))).toEqual({ granted: false, reason: 'full' });
  });

  it('no oscillation: a scripted contention of 6 children for 3 slots settles and stays settled', () => {
    // Every round each child without a slot asks again with a fresh (larger) logical timestamp,
    // as engines do; urgency is the same for all. The holders keep their slots (older requests
    // win ties), so after the first round nothing changes hands.
    const t = new SlotTable({ maxSlots: 3, capacityKbps: Infinity });
    const clock = new LogicalClock();
    const ids = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6'];
    const history: string[] = [];
    let changes = 0;
    for (let round = 0; round < 20; round++) {
      for (const id of ids) {
        if (t.has(id, '360p')) continue;
        const d = t.request(holder(id, prio(4000, clock.tick(), id)));
        if (d.granted) changes++;
        if (d.granted && d.revoked) changes++;
      }
      history.push(t.list().map((h) => h.peerId).join(','));
    }
    expect(changes).toBe(3); // the first three requests; nothing afterwards
    expect(new Set(history).size).toBe(1);
    expect(history[0]).toBe('c1,c2,c3');
    // An urgent child preempts exactly one holder (the newest request); the preempted one, asking
    // again with a later timestamp and normal urgency, cannot take a slot back.
    const u = t.request(holder('late', prio(500, clock.tick(), 'late')));
    expect(u).toEqual({ granted: true, revoked: expect.objectContaining({ peerId: 'c3' }) });
    expect(t.request(holder('c3', prio(4000, clock.tick(), 'c3')))).toEqual({ granted: false, reason: 'full' });
    expect(t.list().map((h) => h.peerId)).toEqual(['late', 'c1', 'c2']);
  });

  it('shrinking capacity sheds one holder at a time, the lowest first', () => {
    const t = new SlotTable({ maxSlots: 4, capacityKbps: 4000 });
    for (const [id, ts] of [['a', 1], ['b', 2], ['c', 3], ['d', 4]] as const) t.request(holder(id, prio(0xffff, ts, id), '720p', 900));
    expect(t.setCapacity({ maxSlots: 4, capacityKbps: 1000 })?.peerId).toBe('d');
    expect(t.size).toBe(3);
    expect(t.overloaded()).toBe(true);
    expect(t.shed()?.peerId).toBe('c');
    expect(t.shed()?.peerId).toBe('b');
    expect(t.overloaded()).toBe(false);
    expect(t.releasePeer('a').map((h) => h.peerId)).toEqual(['a']);
    expect(t.size).toBe(0);
  });
});
