/** The uplink's heap of backlogged flows against the list it replaced (same answers, same order). */
import { describe, expect, it } from 'vitest';
import { FlowHeap, type HeapFlow } from '../../../sim/flow-heap.js';
import { Rng } from '../../../sim/rng.js';

interface F extends HeapFlow { id: number }
const flow = (id: number): F => ({ id, headF: 0, stamp: 0, heapIdx: -1 });

describe('FlowHeap', () => {
  it('gives the smallest finish tag and hands due flows back in activation order, not finish order', () => {
    const h = new FlowHeap<F>();
    const [a, b, c] = [flow(1), flow(2), flow(3)];
    a.headF = 30; h.push(a);
    b.headF = 10; h.push(b);
    c.headF = 20; h.push(c);
    expect(h.minFinish()).toBe(10);
    expect(h.popDue(25, []).map((f) => f.id)).toEqual([2, 3]); // b joined before c
    expect(h.size).toBe(1);
    b.headF = 40; h.reinsert(b); // keeps its place in the order
    expect(h.popDue(50, []).map((f) => f.id)).toEqual([1, 2]);
    expect(h.size).toBe(0);
    expect(h.minFinish()).toBe(Infinity);
  });

  it('matches a plain list under random pushes, removals and completions', () => {
    const rng = new Rng(42);
    const h = new FlowHeap<F>();
    let list: F[] = []; // the old model: backlogged flows in activation order
    const flows = Array.from({ length: 60 }, (_, i) => flow(i));
    let V = 0;
    for (let step = 0; step < 5000; step++) {
      const r = rng.next();
      const idle = flows.filter((f) => f.heapIdx < 0);
      if (r < 0.4 && idle.length > 0) {
        const f = idle[Math.floor(rng.next() * idle.length)];
        f.headF = V + 1 + Math.floor(rng.next() * 20); // integers: ties happen
        h.push(f);
        list.push(f);
      } else if (r < 0.5 && list.length > 0) {
        const f = list[Math.floor(rng.next() * list.length)];
        h.remove(f);
        list = list.filter((x) => x !== f);
      } else {
        V += Math.floor(rng.next() * 8);
        const want = list.filter((f) => f.headF <= V);
        const got = h.popDue(V, []);
        expect(got.map((f) => f.id)).toEqual(want.map((f) => f.id));
        list = list.filter((f) => f.headF > V);
        for (const f of got) {
          if (rng.next() < 0.5) { f.headF += 1 + Math.floor(rng.next() * 20); h.reinsert(f); }
        }
        // the old list kept a continuing flow in its place
        const back = new Set(got.filter((f) => f.heapIdx >= 0));
        list = [...list, ...back].sort((x, y) => x.stamp - y.stamp);
      }
      expect(h.size).toBe(list.length);
      expect(h.minFinish()).toBe(list.length ? Math.min(...list.map((f) => f.headF)) : Infinity);
    }
  });

  it('clear() forgets every flow', () => {
    const h = new FlowHeap<F>();
    const fs = [flow(1), flow(2)];
    for (const f of fs) h.push(f);
    h.clear();
    expect(h.size).toBe(0);
    expect(fs.every((f) => f.heapIdx === -1)).toBe(true);
    h.remove(fs[0]); // no-op
    expect(h.size).toBe(0);
  });
});
