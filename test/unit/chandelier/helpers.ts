/** Builders and the plan checker shared by the Chandelier tests. */
import { expect } from 'vitest';
import type { LinkSpec, NatType, PeerInput, RenditionInput, RenditionResult } from '../../../tracker/chandelier/index.js';

/** mulberry32: seeded, so every random instance is reproducible from its seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function peer(id: string, o: Partial<PeerInput> = {}): PeerInput {
  return {
    id,
    kind: 'browser',
    uploadSlots: 0,
    natType: 'open',
    scope: 'isp',
    bufferHealthMs: 10_000,
    trust: 1,
    online: true,
    ...o,
  };
}

export function origin(slots: number, o: Partial<PeerInput> = {}): PeerInput {
  return peer('O', { kind: 'origin', uploadSlots: slots, scope: 'origin', ...o });
}

/** parent>child,parent>child... */
export function links(spec: string): LinkSpec[] {
  return spec.split(',').filter(Boolean).map((s) => {
    const [parent, child] = s.split('>');
    return { parent, child };
  });
}

export function rendition(peers: PeerInput[], currentLinks: LinkSpec[] = [], o: Partial<RenditionInput> = {}): RenditionInput {
  return { rendition: '360p', originId: 'O', peers, currentLinks, rtt: () => 50, ...o };
}

export function parentOf(r: RenditionResult, child: string): string | undefined {
  return r.links.find((l) => l.child === child)?.parent;
}

/**
 * Every invariant of a plan: one parent per child, known online parents, slots respected,
 * acyclic with depth(parent) < depth(child), the diff matches, and nobody is left unplaced who
 * could have had a free slot outside its own subtree.
 */
export function checkPlan(input: RenditionInput, r: RenditionResult): void {
  const online = new Map(input.peers.filter((p) => p.online || p.id === input.originId).map((p) => [p.id, p]));
  const parent = new Map<string, string>();
  const load = new Map<string, number>();
  for (const l of r.links) {
    expect(parent.has(l.child), `${l.child} has two parents`).toBe(false);
    expect(online.has(l.parent), `parent ${l.parent} is online`).toBe(true);
    expect(online.has(l.child), `child ${l.child} is online`).toBe(true);
    expect(l.child).not.toBe(input.originId);
    expect(l.child).not.toBe(l.parent);
    parent.set(l.child, l.parent);
    load.set(l.parent, (load.get(l.parent) ?? 0) + 1);
  }
  for (const [id, n] of load) {
    const slots = Math.max(0, Math.floor(online.get(id)!.uploadSlots));
    expect(n, `load of ${id}`).toBeLessThanOrEqual(input.originId === id && !online.get(id)!.online ? 0 : slots);
  }
  // acyclic, and depths strictly increase away from the roots
  for (const id of online.keys()) {
    let v: string | undefined = id;
    let steps = 0;
    while (v !== undefined) {
      v = parent.get(v);
      expect(++steps, `cycle through ${id}`).toBeLessThanOrEqual(online.size + 1);
    }
  }
  expect(r.depth.get(input.originId)).toBe(0);
  for (const [c, p] of parent) expect(r.depth.get(p)!, `depth ${p} < depth ${c}`).toBeLessThan(r.depth.get(c)!);
  // every online non-origin peer is placed or listed as unplaced
  const unplaced = new Set(r.unplaced);
  for (const id of online.keys()) {
    if (id === input.originId) continue;
    expect(parent.has(id) !== unplaced.has(id), `${id} placed xor unplaced`).toBe(true);
  }
  // unplaced: no free slot anywhere outside its own subtree
  const children = new Map<string, string[]>();
  for (const [c, p] of parent) children.set(p, [...(children.get(p) ?? []), c]);
  for (const u of unplaced) {
    const sub = new Set([u]);
    const stack = [u];
    while (stack.length) for (const x of children.get(stack.pop()!) ?? []) { sub.add(x); stack.push(x); }
    for (const [id, p] of online) {
      if (sub.has(id)) continue;
      const slots = id === input.originId && !p.online ? 0 : Math.max(0, Math.floor(p.uploadSlots));
      expect(load.get(id) ?? 0, `${u} unplaced although ${id} has a free slot`).toBeGreaterThanOrEqual(slots);
    }
  }
  // the diff
  const key = (l: LinkSpec) => `${l.parent}>${l.child}`;
  const now = new Set(r.links.map(key));
  const before = new Set((input.currentLinks ?? []).map(key));
  for (const l of r.added) { expect(now.has(key(l))).toBe(true); expect(before.has(key(l))).toBe(false); }
  for (const l of r.removed) expect(now.has(key(l))).toBe(false);
  for (const l of r.links) if (!before.has(key(l))) expect(r.added.map(key)).toContain(key(l));
  for (const l of input.currentLinks ?? []) if (!now.has(key(l))) expect(r.removed.map(key)).toContain(key(l));
}

export const NATS: NatType[] = ['open', 'full-cone', 'restricted-cone', 'port-restricted', 'symmetric', 'unknown', 'firewall', 'udp-blocked'];

/**
 * A random instance with messy current links (cycles, over-full parents, unknown and offline
 * peers, double parents) and, when `short`, too few slots for everybody.
 */
export function randomInstance(seed: number, n: number, short = false): RenditionInput {
  const rnd = mulberry32(seed);
  const int = (k: number) => Math.floor(rnd() * k);
  const peers: PeerInput[] = [origin(1 + int(4))];
  for (let i = 1; i < n; i++) {
    peers.push(peer(`p${i}`, {
      kind: rnd() < 0.05 ? 'seeder' : 'browser',
      uploadSlots: short ? (rnd() < 0.7 ? 0 : 1 + int(2)) : int(5) + (rnd() < 0.1 ? 0.5 : 0),
      natType: NATS[int(NATS.length)],
      scope: `s${int(1 + int(4))}`,
      bufferHealthMs: int(12_000),
      trust: rnd(),
      online: rnd() > 0.1,
    }));
  }
  const ids = peers.map((p) => p.id);
  const cur: LinkSpec[] = [];
  for (let k = 0; k < n * 1.2; k++) cur.push({ parent: rnd() < 0.05 ? 'ghost' : ids[int(n)], child: ids[1 + int(n - 1)] });
  const rtt = (a: string, b: string) => 10 + ((a.length * 31 + b.length * 17 + a.charCodeAt(a.length - 1) * 7 + b.charCodeAt(b.length - 1) * 3) % 150);
  return { rendition: '360p', originId: 'O', peers, currentLinks: cur, rtt };
}
