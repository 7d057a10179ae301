/**
 * The backlogged flows of one uplink, as a binary min-heap on (finish tag, activation stamp).
 *
 * Why: the uplink model (sim/net.ts, fluid processor sharing) needs, at every enqueue and every
 * completion, the flow whose head frame finishes first. A list scanned each time costs
 * O(backlogged flows) per event; the HTTP server and the origin have one flow per viewer at a
 * mass start (tens of thousands at once), which made those events quadratic in the audience.
 * The heap answers in O(1) and updates in O(log n).
 *
 * Flows that finish in the same event are handed back in activation order (`stamp`), the order
 * the list kept them in, so the simulation is the same event for event.
 */
export interface HeapFlow {
  /** Virtual finish time of the head frame. */
  headF: number;
  /** When the flow joined the backlog (increasing per heap): ties and the completion order. */
  stamp: number;
  /** Position in the heap; -1 when not in one. */
  heapIdx: number;
}

export class FlowHeap<F extends HeapFlow> {
  private h: F[] = [];
  private nextStamp = 0;

  get size(): number { return this.h.length; }

  /** The smallest finish tag (Infinity when empty). */
  minFinish(): number { return this.h.length > 0 ? this.h[0].headF : Infinity; }

  /** A flow becomes backlogged (its headF set): it takes the next stamp. */
  push(f: F): void {
    f.stamp = this.nextStamp++;
    this.insert(f);
  }

  /** Removes a flow wherever it is (a stalled path). */
  remove(f: F): void {
    const i = f.heapIdx;
    if (i < 0 || this.h[i] !== f) return;
    const last = this.h.pop()!;
    f.heapIdx = -1;
    if (last === f) return;
    this.h[i] = last;
    last.heapIdx = i;
    this.down(i);
    this.up(last.heapIdx);
  }

  /** Takes out every flow with headF <= bound, in activation order. */
  popDue(bound: number, out: F[]): F[] {
    out.length = 0;
    while (this.h.length > 0 && this.h[0].headF <= bound) {
      const f = this.h[0];
      const last = this.h.pop()!;
      f.heapIdx = -1;
      if (last !== f) { this.h[0] = last; last.heapIdx = 0; this.down(0); }
      out.push(f);
    }
    if (out.length > 1) out.sort((a, b) => a.stamp - b.stamp);
    return out;
  }

  /** Puts back a flow taken by popDue, with its new headF and its old stamp (its place in the order). */
  reinsert(f: F): void { this.insert(f); }

  /** Empties the heap (the node vanished). */
  clear(): void {
    for (const f of this.h) f.heapIdx = -1;
    this.h = [];
  }

  private insert(f: F): void {
    f.heapIdx = this.h.length;
    this.h.push(f);
    this.up(f.heapIdx);
  }

  private less(a: F, b: F): boolean { return a.headF < b.headF || (a.headF === b.headF && a.stamp < b.stamp); }

  private up(i: number): void {
    const h = this.h;
    const f = h[i];
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(f, h[p])) break;
      h[i] = h[p];
      h[i].heapIdx = i;
      i = p;
    }
    h[i] = f;
    f.heapIdx = i;
  }

  private down(i: number): void {
    const h = this.h;
    const n = h.length;
    const f = h[i];
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.less(h[r], h[l]) ? r : l;
      if (!this.less(h[c], f)) break;
      h[i] = h[c];
      h[i].heapIdx = i;
      i = c;
    }
    h[i] = f;
    f.heapIdx = i;
  }
}
