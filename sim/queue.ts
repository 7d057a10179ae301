/**
 * The simulator's event queue: a binary min-heap ordered by (time, insertion order), so events at
 * the same instant run in the order they were scheduled (determinism).
 */
export type EventFn = (a: unknown, b: unknown) => void;

interface Ev { t: number; s: number; f: EventFn; a: unknown; b: unknown }

export class EventQueue {
  private heap: Ev[] = [];
  private seq = 0;
  /** Current simulated time (ms). */
  now = 0;
  /** Events run so far. */
  processed = 0;

  get size(): number { return this.heap.length; }

  /** Runs f(a, b) at time t (never before now). */
  at(t: number, f: EventFn, a?: unknown, b?: unknown): void {
    const ev: Ev = { t: t < this.now ? this.now : t, s: this.seq++, f, a, b };
    const h = this.heap;
    let i = h.length;
    h.push(ev);
    while (i > 0) {
      const p = (i - 1) >> 1;
      const q = h[p];
      if (q.t < ev.t || (q.t === ev.t && q.s < ev.s)) break;
      h[i] = q;
      i = p;
    }
    h[i] = ev;
  }

  /** Time of the next event, or Infinity. */
  peekTime(): number { return this.heap.length > 0 ? this.heap[0].t : Infinity; }

  /** Pops and runs the next event; false if none. */
  step(): boolean {
    const h = this.heap;
    if (h.length === 0) return false;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      const n = h.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        let c = l;
        if (r < n && (h[r].t < h[l].t || (h[r].t === h[l].t && h[r].s < h[l].s))) c = r;
        const x = h[c];
        if (last.t < x.t || (last.t === x.t && last.s < x.s)) break;
        h[i] = x;
        i = c;
      }
      h[i] = last;
    }
    this.now = top.t;
    this.processed++;
    top.f(top.a, top.b);
    return true;
  }
}
