/**
 * The forest of one rendition: parent pointers, intrusive child lists (O(1) re-parenting), slot
 * loads, subtree weights, and each node's depth and attachment (hangs from the origin, or from
 * an HTTP-fed unplaced root), kept exact on every move at O(subtree) cost: moves are mostly of
 * leaves and small subtrees, and exact depths make the acyclicity check nearly free (q can only
 * be in c's subtree if it is deeper than c; only then is there anything to walk).
 */
export class Tree {
  readonly parent: Int32Array;
  readonly firstChild: Int32Array;
  readonly nextSib: Int32Array;
  readonly prevSib: Int32Array;
  readonly load: Int32Array;
  /** Sum of hopW over each node's subtree (itself included). */
  readonly msub: Float64Array;
  /** Hops from the origin; in a detached tree, detachedDepth at its root. */
  readonly depth: Int32Array;
  /** 1: hangs from the origin. */
  readonly att: Uint8Array;
  private readonly stack: Int32Array;

  constructor(
    readonly n: number,
    readonly root: number,
    private readonly hopW: Float64Array,
    /** Depth an HTTP-fed (unplaced) root counts as. */
    readonly detachedDepth: number,
  ) {
    this.parent = new Int32Array(n).fill(-1);
    this.firstChild = new Int32Array(n).fill(-1);
    this.nextSib = new Int32Array(n).fill(-1);
    this.prevSib = new Int32Array(n).fill(-1);
    this.load = new Int32Array(n);
    this.msub = new Float64Array(n);
    this.depth = new Int32Array(n).fill(detachedDepth);
    this.att = new Uint8Array(n);
    this.stack = new Int32Array(n);
    this.depth[root] = 0;
    this.att[root] = 1;
  }

  /** A forest from parent pointers (which must be acyclic). */
  static from(parent: Int32Array, root: number, hopW: Float64Array, detachedDepth: number): Tree {
    const t = new Tree(parent.length, root, hopW, detachedDepth);
    for (let c = 0; c < parent.length; c++) if (parent[c] >= 0) t.link(c, parent[c]);
    t.recompute();
    return t;
  }

  private link(c: number, p: number): void {
    this.parent[c] = p;
    const f = this.firstChild[p];
    this.nextSib[c] = f;
    this.prevSib[c] = -1;
    if (f >= 0) this.prevSib[f] = c;
    this.firstChild[p] = c;
    this.load[p]++;
  }

  private unlink(c: number): void {
    const p = this.parent[c];
    const prev = this.prevSib[c];
    const next = this.nextSib[c];
    if (prev >= 0) this.nextSib[prev] = next;
    else this.firstChild[p] = next;
    if (next >= 0) this.prevSib[next] = prev;
    this.parent[c] = -1;
    this.nextSib[c] = -1;
    this.prevSib[c] = -1;
    this.load[p]--;
  }

  /** Re-parents c with its subtree (p = -1: detach). The caller guarantees p is not in c's subtree. */
  move(c: number, p: number): void {
    const m = this.msub[c];
    const old = this.parent[c];
    if (old >= 0) {
      this.unlink(c);
      for (let a = old; a >= 0; a = this.parent[a]) this.msub[a] -= m;
    }
    let d = this.detachedDepth;
    let at = 0;
    if (p >= 0) {
      this.link(c, p);
      for (let a = p; a >= 0; a = this.parent[a]) this.msub[a] += m;
      d = this.depth[p] + 1;
      at = this.att[p];
    }
    const shift = d - this.depth[c];
    if (shift === 0 && at === this.att[c]) return;
    // the whole subtree moves by the same number of hops
    const stack = this.stack;
    let top = 0;
    stack[top++] = c;
    while (top > 0) {
      const v = stack[--top];
      this.depth[v] += shift;
      this.att[v] = at;
      for (let x = this.firstChild[v]; x >= 0; x = this.nextSib[x]) stack[top++] = x;
    }
  }

  /** Whether q is c or in c's subtree (q could not become c's parent). */
  inSubtree(q: number, c: number): boolean {
    let k = this.depth[q] - this.depth[c];
    if (k < 0) return false;
    let v = q;
    // (across trees the virtual depths can send the walk past a root: stop there)
    while (k-- > 0 && v >= 0) v = this.parent[v];
    return v === c;
  }

  /** Nodes of v's subtree in BFS order (v first). */
  subtree(v: number, out: number[] = []): number[] {
    out.length = 0;
    out.push(v);
    for (let i = 0; i < out.length; i++) for (let x = this.firstChild[out[i]]; x >= 0; x = this.nextSib[x]) out.push(x);
    return out;
  }

  /** Every node, parents before children (BFS from the origin, then from the detached roots). */
  bfsOrder(): Int32Array {
    const queue = new Int32Array(this.n);
    let tail = 0;
    queue[tail++] = this.root;
    let head = 0;
    const drain = (): void => {
      for (; head < tail; head++) for (let x = this.firstChild[queue[head]]; x >= 0; x = this.nextSib[x]) queue[tail++] = x;
    };
    drain();
    for (let v = 0; v < this.n; v++) if (this.parent[v] < 0 && v !== this.root) { queue[tail++] = v; drain(); }
    return queue;
  }

  /** Depths, attachment and msub from scratch (also clears accumulated float drift in msub). */
  recompute(): void {
    const order = this.bfsOrder();
    const { msub, depth, att, parent } = this;
    for (let i = 0; i < this.n; i++) {
      const v = order[i];
      const p = parent[v];
      if (p < 0) { depth[v] = v === this.root ? 0 : this.detachedDepth; att[v] = v === this.root ? 1 : 0; }
      else { depth[v] = depth[p] + 1; att[v] = att[p]; }
      msub[v] = this.hopW[v];
    }
    for (let i = this.n - 1; i >= 0; i--) {
      const v = order[i];
      const p = parent[v];
      if (p >= 0) msub[p] += msub[v];
    }
  }
}
