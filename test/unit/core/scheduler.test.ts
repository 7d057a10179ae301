import { describe, expect, it } from 'vitest';
import { coalesce, fallbackPieces, HttpTimer, pushWillDeliver, RequestTracker, requestWindow, schedule, type SchedNeighbor } from '../../../peer/core/scheduler.js';
import type { SegmentRef } from '../../../peer/core/types.js';
import { seededRandom } from './helpers.js';

const ref: SegmentRef = { rendition: 'r', seq: 1 };
const ref2: SegmentRef = { rendition: 'r', seq: 2 };

function nb(id: string, inflight: number, pieces: number[] | 'all', isOrigin = false): SchedNeighbor {
  return { id, isOrigin, inflight, has: (_r, i) => pieces === 'all' || pieces.includes(i) };
}

function assignment(reqs: ReturnType<typeof schedule>): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const r of reqs) for (let i = r.index; i < r.index + r.count; i++) (out[r.neighborId] ??= []).push(i);
  return out;
}

describe('schedule', () => {
  const opts = { maxInflightPerNeighbor: 4, random: seededRandom(3) };

  it('asks the neighbor with the fewest requests in flight', () => {
    const reqs = schedule([{ ref, pieces: [0, 1, 2] }], [nb('a', 3, 'all'), nb('b', 0, 'all')], opts);
    const a = assignment(reqs);
    // b has 0, gets pieces until it reaches a's load (3), then ties are random
    expect(a.b!.length).toBeGreaterThanOrEqual(3);
    expect(a.a).toBeUndefined();
  });

  it('descending: the highest pieces first when capacity runs out, still one coalesced request per run', () => {
    const reqs = schedule([{ ref, pieces: [0, 1, 2, 3, 4, 5, 6, 7], descending: true }], [nb('a', 1, 'all')], opts);
    expect(reqs).toEqual([{ neighborId: 'a', ref, index: 5, count: 3 }]);
    const asc = schedule([{ ref, pieces: [0, 1, 2, 3, 4, 5, 6, 7] }], [nb('a', 1, 'all')], opts);
    expect(asc).toEqual([{ neighborId: 'a', ref, index: 0, count: 3 }]);
  });

  it('only asks neighbors that have the piece, never exceeds the in-flight limit', () => {
    const reqs = schedule([{ ref, pieces: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] }], [nb('a', 1, [0, 1, 2, 3, 4, 5]), nb('b', 0, [5, 6])], opts);
    const a = assignment(reqs);
    expect(a.a).toEqual([0, 1, 2]); // 1 + 3 = 4 = limit
    expect(a.b).toEqual([5, 6]);
    for (const r of reqs) expect(r.count).toBeGreaterThanOrEqual(1);
  });

  it('prefers non-origin neighbors, uses the origin only for what nobody else can serve', () => {
    const reqs = schedule([{ ref, pieces: [0, 1, 2, 3] }], [nb('origin', 0, 'all', true), nb('s', 2, [0, 1])], opts);
    const a = assignment(reqs);
    expect(a.s).toEqual([0, 1]);
    expect(a.origin).toEqual([2, 3]);
    // the non-origin is full: the origin serves
    const full = assignment(schedule([{ ref, pieces: [0] }], [nb('origin', 0, 'all', true), nb('s', 4, 'all')], opts));
    expect(full).toEqual({ origin: [0] });
  });

  it('honours exclusions (timed out / bad) and urgency order', () => {
    const reqs = schedule([
      { ref, pieces: [0, 1], exclude: (id, i) => id === 'a' && i === 0 },
      { ref: ref2, pieces: [0, 1, 2, 3] },
    ], [nb('a', 0, 'all'), nb('b', 3, 'all')], { maxInflightPerNeighbor: 4, random: seededRandom(1) });
    expect(reqs[0]).toMatchObject({ ref }); // urgent segment first
    const seg1 = reqs.filter((r) => r.ref === ref);
    expect(seg1.find((r) => r.neighborId === 'a' && r.index === 0)).toBeUndefined();
    expect(reqs.reduce((n, r) => n + r.count, 0)).toBe(5); // capacity a:4 + b:1
  });

  it('coalesces contiguous pieces into one request and breaks ties randomly', () => {
    const reqs = schedule([{ ref, pieces: [0, 1, 2, 3] }], [nb('a', 0, 'all')], { maxInflightPerNeighbor: 16, random: seededRandom(1) });
    expect(reqs).toEqual([{ neighborId: 'a', ref, index: 0, count: 4 }]);
    expect(coalesce([1, 2, 3, 7, 9, 10])).toEqual([[1, 3], [7, 1], [9, 2]]);
    const picks = new Set<string>();
    for (let s = 0; s < 20; s++) {
      const r = schedule([{ ref, pieces: [0] }], [nb('a', 0, 'all'), nb('b', 0, 'all'), nb('c', 0, 'all')], { maxInflightPerNeighbor: 4, random: seededRandom(s) });
      picks.add(r[0].neighborId);
    }
    expect(picks.size).toBe(3);
  });
});

describe('RequestTracker', () => {
  it('times requests out, lets them be re-requested elsewhere and reports duplicates', () => {
    const t = new RequestTracker();
    t.add('a', ref, 0, 0);
    t.add('a', ref, 1, 0);
    expect(t.countFor('a')).toBe(2);
    expect(t.isActive(ref, 0)).toBe(true);
    let r = t.expire(1000, 2000, 8000);
    expect(r.timedOut).toEqual([]);
    r = t.expire(2000, 2000, 8000);
    expect(r.timedOut.map((x) => x.index)).toEqual([0, 1]);
    expect(t.isActive(ref, 0)).toBe(false); // may be re-requested
    expect(t.has('a', ref, 0)).toBe(true);  // a late answer is still expected
    expect(t.countFor('a')).toBe(2);        // and still occupies a's queue
    // re-request piece 0 from b; b answers: a's stale request is a duplicate to cancel
    t.add('b', ref, 0, 2000);
    expect(t.isActive(ref, 0)).toBe(true);
    expect(t.removePiece(ref, 0).map((x) => x.neighborId).sort()).toEqual(['a', 'b']);
    expect(t.countFor('b')).toBe(0);
    // stale requests are forgotten after forgetMs
    r = t.expire(8000, 2000, 8000);
    expect(r.forgotten.map((x) => [x.neighborId, x.index])).toEqual([['a', 1]]);
    expect(t.size).toBe(0);
  });

  it('drops a neighbor and a segment', () => {
    const t = new RequestTracker();
    t.add('a', ref, 0, 0);
    t.add('b', ref, 1, 0);
    t.add('a', ref2, 0, 0);
    expect(t.removeNeighbor('a').length).toBe(2);
    expect(t.countFor('a')).toBe(0);
    expect(t.removeSegment(ref).map((x) => x.neighborId)).toEqual(['b']);
    expect(t.size).toBe(0);
  });
});

describe('schedule: throughput and deadlines', () => {
  it('spreads requests across neighbors in proportion to their measured throughput', () => {
    const fast: SchedNeighbor = { ...nb('fast', 0, 'all'), throughput: 3 };
    const slow: SchedNeighbor = { ...nb('slow', 0, 'all'), throughput: 1 };
    const pieces = Array.from({ length: 16 }, (_, i) => i);
    const a = assignment(schedule([{ ref, pieces }], [fast, slow], { maxInflightPerNeighbor: 64, random: seededRandom(1) }));
    expect(a.fast!.length).toBe(12);
    expect(a.slow!.length).toBe(4);
  });

  it('an unmeasured neighbor counts as the average of the measured ones', () => {
    const m: SchedNeighbor = { ...nb('m', 0, 'all'), throughput: 2 };
    const u = nb('u', 0, 'all');
    const pieces = Array.from({ length: 8 }, (_, i) => i);
    const a = assignment(schedule([{ ref, pieces }], [m, u], { maxInflightPerNeighbor: 64, random: seededRandom(1) }));
    expect(a.m!.length).toBe(4);
    expect(a.u!.length).toBe(4);
  });

  it('serves the earliest deadline first when request slots are scarce', () => {
    const reqs = schedule([{ ref: ref2, pieces: [0, 1, 2] }, { ref, pieces: [0, 1, 2] }], [nb('a', 0, 'all')],
      { maxInflightPerNeighbor: 3, random: seededRandom(1) });
    expect(reqs).toEqual([{ neighborId: 'a', ref: ref2, index: 0, count: 3 }]);
  });

  it("a neighbor takes at most its window; what it cannot take waits for the others", () => {
    // the first neighbor to open would have taken all 16 pieces; with a window of 4 it takes 4
    const pieces = Array.from({ length: 16 }, (_, i) => i);
    const first: SchedNeighbor = { ...nb('first', 0, 'all'), window: 4 };
    const a = assignment(schedule([{ ref, pieces }], [first], { maxInflightPerNeighbor: 16, random: seededRandom(1) }));
    expect(a).toEqual({ first: [0, 1, 2, 3] });
    // a neighbor already at its window gets nothing more; another with room takes what fits
    const full: SchedNeighbor = { ...nb('full', 4, 'all'), window: 4 };
    const other: SchedNeighbor = { ...nb('other', 0, 'all'), window: 3 };
    const b = assignment(schedule([{ ref, pieces: [4, 5, 6, 7] }], [full, other], { maxInflightPerNeighbor: 16, random: seededRandom(1) }));
    expect(b).toEqual({ other: [4, 5, 6] });
    // the global limit still caps a larger window
    const big: SchedNeighbor = { ...nb('big', 0, 'all'), window: 100 };
    expect(assignment(schedule([{ ref, pieces }], [big], { maxInflightPerNeighbor: 5, random: seededRandom(1) })).big).toHaveLength(5);
  });

  it('requestWindow: what a neighbor delivers in the horizon at its measured rate, bounded', () => {
    const p = { horizonMs: 1000, min: 2, initial: 4, max: 16 }; // (the engine starts at 2: ENGINE_LIMITS)
    expect(requestWindow(0, 16384, p)).toBe(4); // unmeasured
    expect(requestWindow(Number.NaN, 16384, p)).toBe(4);
    expect(requestWindow(150, 16384, p)).toBe(10); // 1.2 Mbit/s: 150 B/ms * 1 s / 16 KiB = 9.2 -> 10
    expect(requestWindow(20, 16384, p)).toBe(2); // a busy neighbor: one piece in 0.8 s -> the minimum
    expect(requestWindow(10_000, 16384, p)).toBe(16); // capped
    expect(requestWindow(150, 0, p)).toBe(4); // piece size unknown
  });

  it('is deterministic for a given seed', () => {
    const run = () => schedule([{ ref, pieces: [0, 1, 2, 3, 4, 5] }], [nb('a', 0, 'all'), nb('b', 0, 'all'), nb('c', 1, 'all')],
      { maxInflightPerNeighbor: 4, random: seededRandom(42) });
    expect(run()).toEqual(run());
  });
});

describe('HTTP fallback decisions', () => {
  const base = {
    pieceCount: 6, held: (i: number) => i === 0 || i === 3, viaHttp: (i: number) => i === 5,
    inFlight: (i: number) => i === 1, announced: (i: number) => i === 2, alone: false,
  };

  it('before deadline - margin with neighbors: nothing goes to HTTP', () => {
    expect(fallbackPieces({ ...base, now: 1000, deadline: 3000, marginMs: 500 })).toEqual({ late: false, pieces: [] });
  });

  it('at deadline - margin: exactly the missing pieces not already on their way over HTTP', () => {
    expect(fallbackPieces({ ...base, now: 2500, deadline: 3000, marginMs: 500 })).toEqual({ late: true, pieces: [1, 2, 4] });
  });

  it('late, an active push keeps the lowest missing pieces it will deliver in time; at the deadline, nothing is left to it', () => {
    expect(fallbackPieces({ ...base, now: 2500, deadline: 3000, marginMs: 500, leaveToPush: 2 })).toEqual({ late: true, pieces: [4] });
    expect(fallbackPieces({ ...base, now: 2500, deadline: 3000, marginMs: 500, leaveToPush: 9 })).toEqual({ late: true, pieces: [] });
    expect(fallbackPieces({ ...base, now: 3000, deadline: 3000, marginMs: 500, leaveToPush: 9 })).toEqual({ late: true, pieces: [1, 2, 4] });
    // not late: leaveToPush changes nothing
    expect(fallbackPieces({ ...base, alone: true, now: 1000, deadline: 3000, marginMs: 500, leaveToPush: 9 })).toEqual({ late: false, pieces: [4] });
  });

  it('late, pieces requested from neighbors are left to them until the pull cutoff, then fetched', () => {
    // piece 1 is in flight: at deadline - margin it waits for its request, the others go to HTTP
    expect(fallbackPieces({ ...base, now: 2500, deadline: 3000, marginMs: 500, pullCutoff: 2800 })).toEqual({ late: true, pieces: [2, 4] });
    // at the cutoff (one HTTP fetch before the deadline) it goes too
    expect(fallbackPieces({ ...base, now: 2800, deadline: 3000, marginMs: 500, pullCutoff: 2800 })).toEqual({ late: true, pieces: [1, 2, 4] });
    // not late: the cutoff changes nothing
    expect(fallbackPieces({ ...base, now: 1000, deadline: 3000, marginMs: 500, pullCutoff: 2800 })).toEqual({ late: false, pieces: [] });
    // with a push leaving the lowest missing piece (1) as well
    expect(fallbackPieces({ ...base, now: 2500, deadline: 3000, marginMs: 500, pullCutoff: 2800, leaveToPush: 1 })).toEqual({ late: true, pieces: [2, 4] });
  });

  it('a push delivers one piece per measured gap until the deadline, only while it is active', () => {
    const at = { deadline: 3000, lastPushAt: 2400, gapMs: 100, minGapMs: 1 };
    expect(pushWillDeliver({ ...at, now: 2500 })).toBe(6); // 2500, 2600, ... 3000
    expect(pushWillDeliver({ ...at, now: 2600 })).toBe(6); // the next is due at 2500 + gap: still within two gaps
    expect(pushWillDeliver({ ...at, now: 2601 })).toBe(0); // two gaps without a piece: stalled
    expect(pushWillDeliver({ ...at, now: 3000 })).toBe(0);
    expect(pushWillDeliver({ ...at, now: 2500, gapMs: 0 })).toBe(0); // no gap measured yet
    expect(pushWillDeliver({ ...at, now: 2400, gapMs: 0.01, minGapMs: 1 })).toBe(600); // the floor bounds a burst's estimate
  });

  it('alone (no neighbor): at once, but not what is in flight or announced', () => {
    expect(fallbackPieces({ ...base, alone: true, now: 1000, deadline: 3000, marginMs: 500 })).toEqual({ late: false, pieces: [4] });
  });

  it('the margin adapts to measured HTTP time and never drops below the base', () => {
    const t = new HttpTimer(5000);
    expect(t.margin(500)).toBe(500);
    for (let i = 0; i < 20; i++) t.sample(100);
    expect(t.margin(500)).toBe(500); // fast HTTP: the base margin
    for (let i = 0; i < 30; i++) t.sample(1500);
    expect(t.margin(500)).toBeGreaterThan(1400); // slow HTTP: start earlier
    expect(t.margin(500)).toBeLessThanOrEqual(5000);
    for (let i = 0; i < 10; i++) t.sample(60_000);
    expect(t.margin(500)).toBe(5000); // capped
    expect(t.fetchTime(300)).toBe(5000); // the expected fetch time is capped alike
    const u = new HttpTimer(5000);
    expect(u.fetchTime(300)).toBe(300); // nothing measured: the guess
    u.sample(200);
    expect(u.fetchTime(300)).toBe(400); // mean 200 + 2 x deviation 100
    for (let i = 0; i < 50; i++) u.sample(200);
    expect(u.fetchTime(300)).toBeCloseTo(200, 0); // steady: the deviation fades
    // a later deadline decision uses it
    const late = fallbackPieces({ ...base, now: 1000, deadline: 5000, marginMs: t.margin(500) });
    expect(late.late).toBe(true);
  });
});
