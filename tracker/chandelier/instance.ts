/**
 * One rendition's input turned into indexed arrays (the solver works on integers and typed
 * arrays, never on string ids in its loops), with the current links sanitized into a valid
 * forest: one parent per child, parents within their slots, no cycles.
 */
import { NAT_TYPES, toNatType } from '../nat.js';
import type { LinkSpec, RenditionInput, RttCoordinates, RttInput, Weights } from './types.js';
import { childPriority, hopWeight, natCost, parentCost, staticUtility } from './utility.js';

export const NAT_COUNT = NAT_TYPES.length;
const DEFAULT_RTT_MS = 100;

export interface Instance {
  readonly w: Weights;
  readonly rendition: string;
  readonly n: number;
  readonly ids: readonly string[];
  readonly index: ReadonlyMap<string, number>;
  /** The origin's index: the root of the tree. */
  readonly root: number;
  /** 1 for every online non-origin peer (they all need a parent). */
  readonly isChild: Uint8Array;
  readonly slots: Int32Array;
  readonly nat: Uint8Array;
  readonly scope: Int32Array;
  readonly scopeCount: number;
  readonly prio: Float64Array;
  /** hopWeight(c): what one hop of c's depth costs (0 for the origin). */
  readonly hopW: Float64Array;
  /** parentCost(p). */
  readonly pcost: Float64Array;
  /** natCost by [nat(parent) * NAT_COUNT + nat(child)]. */
  readonly natTable: Float64Array;
  /** First valid current parent of each child (-1 none): the link that gets the stay bonus. */
  readonly inputParent: Int32Array;
  /** Further current links of a child (make-before-break in progress), keyed p * n + c. */
  readonly extraInput: ReadonlySet<number> | null;
  readonly rawLinks: ReadonlyArray<LinkSpec>;
  /** The sanitized current forest (-1: no parent). */
  readonly initialParent: Int32Array;
  /** Current links dropped as invalid. */
  readonly dropped: number;
  /** RTT estimate between two indices, ms. */
  rtt(p: number, c: number): number;
  /** Neighbors with a measured RTT (CSR, sorted by neighbor index), when the input is an RttTable. */
  readonly nbr: { start: Int32Array; idx: Int32Array; ms: Float64Array } | null;
}

export function isCurrent(inst: Instance, p: number, c: number): boolean {
  return inst.inputParent[c] === p || (inst.extraInput !== null && inst.extraInput.has(p * inst.n + c));
}

/** stat(p, c) of utility.ts for any pair (the candidate lists cache it). */
export function pairStatic(inst: Instance, p: number, c: number): number {
  return staticUtility(
    inst.w,
    inst.prio[c],
    inst.rtt(p, c),
    inst.natTable[inst.nat[p] * NAT_COUNT + inst.nat[c]],
    inst.pcost[p],
    inst.scope[p] === inst.scope[c],
    isCurrent(inst, p, c),
  );
}

function validRtt(ms: number): number {
  return Number.isFinite(ms) && ms >= 0 ? ms : DEFAULT_RTT_MS;
}

export function prepare(input: RenditionInput, w: Weights, fallbackRtt: RttInput | undefined): Instance {
  if (!input || typeof input.rendition !== 'string') throw new TypeError('rendition must be a string');
  if (!Array.isArray(input.peers)) throw new TypeError('peers must be an array');
  const index = new Map<string, number>();
  const ids: string[] = [];
  const online = input.peers.filter((p) => {
    if (!p || typeof p.id !== 'string' || p.id.length === 0) throw new TypeError('every peer needs a non-empty string id');
    return p.online || p.id === input.originId; // the origin stays the root even when offline (with no slots)
  });
  const n = online.length;
  const slots = new Int32Array(n);
  const nat = new Uint8Array(n);
  const scope = new Int32Array(n);
  const prio = new Float64Array(n);
  const hopW = new Float64Array(n);
  const pcost = new Float64Array(n);
  const isChild = new Uint8Array(n);
  const scopes = new Map<string, number>();
  let root = -1;
  for (let i = 0; i < n; i++) {
    const p = online[i];
    if (index.has(p.id)) throw new TypeError(`duplicate peer id ${p.id}`);
    index.set(p.id, i);
    ids.push(p.id);
    const s = Number.isFinite(p.uploadSlots) && p.uploadSlots > 0 ? Math.floor(p.uploadSlots) : 0;
    const isOrigin = p.id === input.originId;
    slots[i] = isOrigin && !p.online ? 0 : s;
    nat[i] = NAT_TYPES.indexOf(toNatType(p.natType));
    const sc = typeof p.scope === 'string' ? p.scope : '';
    let sid = scopes.get(sc);
    if (sid === undefined) scopes.set(sc, (sid = scopes.size));
    scope[i] = sid;
    if (isOrigin) {
      root = i;
      pcost[i] = 0; // the origin is trusted and never churns
    } else {
      isChild[i] = 1;
      prio[i] = childPriority(w, p.bufferHealthMs);
      hopW[i] = hopWeight(w, prio[i], s);
      pcost[i] = parentCost(w, p.trust, p.kind === 'browser');
    }
  }
  if (root < 0) throw new TypeError(`origin ${input.originId} is not among the peers`);

  const natTable = new Float64Array(NAT_COUNT * NAT_COUNT);
  for (let a = 0; a < NAT_COUNT; a++) for (let b = 0; b < NAT_COUNT; b++) natTable[a * NAT_COUNT + b] = natCost(w, NAT_TYPES[a], NAT_TYPES[b]);

  const rttSrc = input.rtt ?? fallbackRtt;
  let nbr: Instance['nbr'] = null;
  let rtt: (p: number, c: number) => number;
  if (typeof rttSrc === 'function') {
    rtt = (p, c) => validRtt(rttSrc(ids[p], ids[c]));
  } else if (rttSrc && 'coords' in rttSrc) {
    rtt = coordinateRtt(rttSrc, ids);
  } else if (rttSrc) {
    const def = validRtt(rttSrc.defaultMs);
    const same = rttSrc.sameScopeMs === undefined ? def : validRtt(rttSrc.sameScopeMs);
    nbr = buildNeighbors(n, index, rttSrc.samples ?? []);
    const { start, idx, ms } = nbr;
    rtt = (p, c) => {
      // binary search p in c's sorted row
      let lo = start[c];
      let hi = start[c + 1] - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        const v = idx[mid];
        if (v === p) return ms[mid];
        if (v < p) lo = mid + 1;
        else hi = mid - 1;
      }
      return scope[p] === scope[c] ? same : def;
    };
  } else {
    rtt = () => DEFAULT_RTT_MS;
  }

  const raw = input.currentLinks ?? [];
  const { parent, inputParent, extra, dropped } = sanitize(n, index, root, slots, raw);
  return {
    w, rendition: input.rendition, n, ids, index, root, isChild, slots, nat, scope, scopeCount: scopes.size,
    prio, hopW, pcost, natTable, inputParent, extraInput: extra, rawLinks: raw, initialParent: parent, dropped, rtt, nbr,
  };
}

function coordinateRtt(src: RttCoordinates, ids: readonly string[]): (p: number, c: number) => number {
  const n = ids.length;
  const get = src.coords instanceof Map
    ? (id: string) => (src.coords as ReadonlyMap<string, readonly number[]>).get(id)
    : (id: string) => (Object.prototype.hasOwnProperty.call(src.coords, id) ? (src.coords as Record<string, readonly number[]>)[id] : undefined);
  let dim = 0;
  const vecs: Array<readonly number[] | undefined> = ids.map((id) => {
    const v = get(id);
    if (Array.isArray(v) && v.every((x) => Number.isFinite(x))) { dim = Math.max(dim, v.length); return v; }
    return undefined;
  });
  dim = Math.min(dim, 8);
  const xy = new Float64Array(n * dim);
  const has = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const v = vecs[i];
    if (!v) continue;
    has[i] = 1;
    for (let k = 0; k < dim && k < v.length; k++) xy[i * dim + k] = v[k];
  }
  const base = validRtt(src.baseMs ?? 0);
  const per = Number.isFinite(src.msPerUnit) && src.msPerUnit! >= 0 ? src.msPerUnit! : 1;
  const def = validRtt(src.defaultMs);
  return (p, c) => {
    if (!has[p] || !has[c]) return def;
    let s = 0;
    for (let k = 0; k < dim; k++) { const d = xy[p * dim + k] - xy[c * dim + k]; s += d * d; }
    return base + per * Math.sqrt(s);
  };
}

/** Symmetric sample list -> CSR rows sorted by neighbor index (the smallest RTT of duplicates). */
function buildNeighbors(
  n: number,
  index: ReadonlyMap<string, number>,
  samples: ReadonlyArray<readonly [string, string, number]>,
): { start: Int32Array; idx: Int32Array; ms: Float64Array } {
  const a: number[] = [];
  const b: number[] = [];
  const m: number[] = [];
  const deg = new Int32Array(n + 1);
  for (const s of samples) {
    const i = index.get(s[0]);
    const j = index.get(s[1]);
    if (i === undefined || j === undefined || i === j || !(Number.isFinite(s[2]) && s[2] >= 0)) continue;
    a.push(i); b.push(j); m.push(s[2]);
    deg[i + 1]++; deg[j + 1]++;
  }
  for (let i = 0; i < n; i++) deg[i + 1] += deg[i];
  const start = deg;
  const fill = start.slice(0, n);
  const idx = new Int32Array(start[n]);
  const ms = new Float64Array(start[n]);
  for (let k = 0; k < a.length; k++) {
    idx[fill[a[k]]] = b[k]; ms[fill[a[k]]++] = m[k];
    idx[fill[b[k]]] = a[k]; ms[fill[b[k]]++] = m[k];
  }
  // sort each row by neighbor index, merging duplicates (keep the smallest RTT)
  for (let i = 0; i < n; i++) {
    const lo = start[i];
    const hi = start[i + 1];
    if (hi - lo < 2) continue;
    const row = Array.from({ length: hi - lo }, (_, k) => [idx[lo + k], ms[lo + k]] as const).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    for (let k = 0; k < row.length; k++) {
      // duplicates sort next to each other, smallest RTT first: copy it over the later ones
      const prev = k > 0 && row[k][0] === row[k - 1][0] ? ms[lo + k - 1] : row[k][1];
      idx[lo + k] = row[k][0];
      ms[lo + k] = prev;
    }
  }
  return { start, idx, ms };
}

/**
 * Current links -> a valid forest. In input order: a link is dropped if a party is unknown or
 * offline, the child is the origin or its own parent, the child already has a parent (one per
 * rendition; the later link still counts as current for the stay bonus: make-before-break), or
 * the parent's slots are used up (its measured upload shrank: the earliest links are kept).
 * Then one link of every cycle is cut.
 */
function sanitize(
  n: number,
  index: ReadonlyMap<string, number>,
  root: number,
  slots: Int32Array,
  raw: ReadonlyArray<LinkSpec>,
): { parent: Int32Array; inputParent: Int32Array; extra: Set<number> | null; dropped: number } {
  const parent = new Int32Array(n).fill(-1);
  const inputParent = new Int32Array(n).fill(-1);
  const load = new Int32Array(n);
  let extra: Set<number> | null = null;
  let dropped = 0;
  for (const l of raw) {
    const c = l ? index.get(l.child) : undefined;
    const p = l ? index.get(l.parent) : undefined;
    if (c === undefined || p === undefined || c === root || c === p) { dropped++; continue; }
    if (inputParent[c] < 0) inputParent[c] = p;
    else if (inputParent[c] !== p) (extra ??= new Set()).add(p * n + c);
    if (parent[c] >= 0 || load[p] >= slots[p]) { dropped++; continue; }
    parent[c] = p;
    load[p]++;
  }
  // cycles: walk up from every node; meeting the current walk again closes a cycle
  const state = new Uint8Array(n); // 0 new, 1 on the current walk, 2 done
  const path: number[] = [];
  for (let v = 0; v < n; v++) {
    if (state[v] !== 0) continue;
    path.length = 0;
    let u = v;
    while (u >= 0 && state[u] === 0) { state[u] = 1; path.push(u); u = parent[u]; }
    if (u >= 0 && state[u] === 1) { parent[u] = -1; dropped++; }
    for (const x of path) state[x] = 2;
  }
  return { parent, inputParent, extra, dropped };
}
