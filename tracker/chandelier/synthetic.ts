/**
 * Synthetic instances for the tests, the bench and the simulator's quick checks: an origin, a
 * few seeders, browser viewers spread over scopes (ISPs) with a realistic mix of upload slots,
 * NAT types and buffers; RTT from positions (scopes are clusters on a plane). Randomness is
 * injected, so an instance is a pure function of its seed.
 */
import type { NatType } from '../nat.js';
import type { LinkSpec, PeerInput, RenditionInput, RttFn } from './types.js';

export interface SyntheticOptions {
  peers: number;
  scopes?: number;
  originSlots?: number;
  /** Share of seeders (20 slots each, trusted, full-cone). */
  seederShare?: number;
  rendition?: string;
}

/** Browser upload slots: 0 (15%), 1 (30%), 2 (30%), 3 (15%), 6 (10%): mean 1.95. */
const SLOT_MIX: ReadonlyArray<readonly [number, number]> = [[0, 0.15], [1, 0.3], [2, 0.3], [3, 0.15], [6, 0.1]];
const NAT_MIX: ReadonlyArray<readonly [NatType, number]> = [
  ['port-restricted', 0.3], ['symmetric', 0.15], ['full-cone', 0.15], ['restricted-cone', 0.1],
  ['open', 0.1], ['unknown', 0.15], ['firewall', 0.03], ['udp-blocked', 0.02],
];

function pick<T>(mix: ReadonlyArray<readonly [T, number]>, r: number): T {
  for (const [v, share] of mix) { if (r < share) return v; r -= share; }
  return mix[mix.length - 1][0];
}

export interface SyntheticInstance {
  input: RenditionInput;
  /** RTT by position: the same function the input carries. */
  rtt: RttFn;
  /** Positions, to give new peers of churn() one. */
  pos: Map<string, readonly [number, number]>;
  /** Scope cluster centers. */
  centers: ReadonlyArray<readonly [number, number]>;
  /** Counter for new peer ids. */
  next: number;
}

export function synthetic(opts: SyntheticOptions, random: () => number): SyntheticInstance {
  const scopes = Math.max(1, opts.scopes ?? Math.max(1, Math.round(Math.sqrt(opts.peers) / 4)));
  const pos = new Map<string, readonly [number, number]>();
  const centers = Array.from({ length: scopes }, () => [random() * 1000, random() * 1000] as const);
  const peers: PeerInput[] = [];
  const originId = 'origin';
  pos.set(originId, [500, 500]);
  peers.push({
    id: originId, kind: 'origin', uploadSlots: opts.originSlots ?? 4, natType: 'open', scope: 'origin',
    bufferHealthMs: 60_000, trust: 1, online: true,
  });
  const inst: SyntheticInstance = { input: { rendition: opts.rendition ?? '360p', originId, peers, currentLinks: [] }, rtt: () => 0, pos, centers, next: 0 };
  for (let i = 1; i < opts.peers; i++) peers.push(newPeer(inst, centers, opts.seederShare ?? 0.01, random));
  const rtt: RttFn = (a, b) => {
    const pa = pos.get(a);
    const pb = pos.get(b);
    if (!pa || !pb) return 100;
    // 10 ms base + 0.2 ms per unit of distance (a 1000-unit plane: up to ~290 ms)
    return 10 + 0.2 * Math.hypot(pa[0] - pb[0], pa[1] - pb[1]);
  };
  inst.rtt = rtt;
  // the same RTTs as coordinates (resolved once per peer by the optimizer: no lookups per pair)
  inst.input = { ...inst.input, rtt: { coords: pos, baseMs: 10, msPerUnit: 0.2, defaultMs: 100 } };
  return inst;
}

function newPeer(inst: SyntheticInstance, centers: ReadonlyArray<readonly [number, number]>, seederShare: number, random: () => number): PeerInput {
  const id = `p${++inst.next}`;
  const s = Math.min(centers.length - 1, Math.floor(random() * random() * centers.length)); // skewed: big ISPs and small ones
  const [cx, cy] = centers[s];
  inst.pos.set(id, [cx + (random() - 0.5) * 120, cy + (random() - 0.5) * 120]);
  const seeder = random() < seederShare;
  return {
    id,
    kind: seeder ? 'seeder' : 'browser',
    uploadSlots: seeder ? 20 : pick(SLOT_MIX, random()),
    natType: seeder ? 'full-cone' : pick(NAT_MIX, random()),
    scope: `isp${s}`,
    bufferHealthMs: Math.round(random() * 10_000),
    trust: seeder ? 1 : 0.6 + 0.4 * random(),
    online: true,
  };
}

/**
 * The next round's input: `fraction` of the viewers leave (removed), as many new ones join (no
 * links), buffers drift; currentLinks = `links` (the previous plan).
 */
export function churn(inst: SyntheticInstance, links: readonly LinkSpec[], fraction: number, random: () => number): SyntheticInstance {
  const centers = inst.centers;
  const peers: PeerInput[] = [];
  let left = 0;
  for (const p of inst.input.peers) {
    if (p.kind !== 'origin' && random() < fraction) { left++; continue; }
    peers.push(p.kind === 'origin' ? p : { ...p, bufferHealthMs: Math.max(0, Math.min(10_000, p.bufferHealthMs + (random() - 0.5) * 2000)) });
  }
  const next: SyntheticInstance = { ...inst, input: { ...inst.input, peers, currentLinks: links } };
  for (let i = 0; i < left; i++) peers.push(newPeer(next, centers, 0.01, random));
  inst.next = next.next;
  return next;
}
