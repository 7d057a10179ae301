/**
 * In-memory channel -> peers registry with O(1) add/remove and O(k) random sampling, so one
 * tracker can hold 10,000 peers and still answer every join in constant time. Pure: randomness
 * is injected; the connection handle is an opaque type parameter.
 */
import type { PeerKind, Random } from '../peer/core/types.js';
import type { PeerInfo } from '../peer/core/signaling.js';

export interface PeerRecord<C> {
  readonly peerId: string;
  readonly kind: PeerKind;
  readonly channel: string;
  /** Wall-clock milliseconds (Unix epoch) of the join. */
  readonly joinedAt: number;
  /** The latest report's stats (validated: numbers only, bounded key count), or null. */
  lastReport: Record<string, number> | null;
  lastReportAt: number | null;
  readonly conn: C;
}

interface Slot<C> {
  rec: PeerRecord<C>;
  /** Index in the channel's `infra` or `others` array (swap-remove keeps it exact). */
  index: number;
}

interface ChannelPeers<C> {
  byId: Map<string, Slot<C>>;
  /** origin and seeders */
  infra: Slot<C>[];
  /** browsers */
  others: Slot<C>[];
}

export interface KindCounts {
  origin: number;
  seeder: number;
  browser: number;
}

export interface SampleOptions {
  /** Peer id left out of the sample (the requester). */
  exclude?: string;
  /** Size of the sample (at most). */
  max: number;
  /** At most this many origin/seeder peers in the sample; browsers fill the rest. */
  maxInfra: number;
  random: Random;
}

const isInfra = (kind: PeerKind): boolean => kind === 'origin' || kind === 'seeder';

export class Registry<C> {
  private readonly channels = new Map<string, ChannelPeers<C>>();
  private total = 0;

  /** Number of peers in all channels. */
  get size(): number {
    return this.total;
  }

  has(channel: string, peerId: string): boolean {
    return this.channels.get(channel)?.byId.has(peerId) ?? false;
  }

  get(channel: string, peerId: string): PeerRecord<C> | undefined {
    return this.channels.get(channel)?.byId.get(peerId)?.rec;
  }

  /** Adds a peer; throws if the id is already taken in that channel. */
  add(rec: Omit<PeerRecord<C>, 'lastReport' | 'lastReportAt'>): PeerRecord<C> {
    let ch = this.channels.get(rec.channel);
    if (!ch) {
      ch = { byId: new Map(), infra: [], others: [] };
      this.channels.set(rec.channel, ch);
    }
    if (ch.byId.has(rec.peerId)) throw new Error(`peer id ${rec.peerId} already in channel ${rec.channel}`);
    const full: PeerRecord<C> = { ...rec, lastReport: null, lastReportAt: null };
    const list = isInfra(rec.kind) ? ch.infra : ch.others;
    const slot: Slot<C> = { rec: full, index: list.length };
    list.push(slot);
    ch.byId.set(rec.peerId, slot);
    this.total++;
    return full;
  }

  /** Removes the peer if it is (still) this very record; returns whether it was removed. */
  remove(rec: PeerRecord<C>): boolean {
    const ch = this.channels.get(rec.channel);
    const slot = ch?.byId.get(rec.peerId);
    if (!ch || !slot || slot.rec !== rec) return false;
    const list = isInfra(rec.kind) ? ch.infra : ch.others;
    const last = list.pop()!;
    if (last !== slot) {
      list[slot.index] = last;
      last.index = slot.index;
    }
    ch.byId.delete(rec.peerId);
    this.total--;
    if (ch.byId.size === 0) this.channels.delete(rec.channel);
    return true;
  }

  channelNames(): string[] {
    return [...this.channels.keys()];
  }

  counts(channel: string): KindCounts {
    const c: KindCounts = { origin: 0, seeder: 0, browser: 0 };
    const ch = this.channels.get(channel);
    if (ch) for (const s of ch.byId.values()) c[s.rec.kind]++;
    return c;
  }

  /** Every peer of a channel, in join order per kind group (no particular global order). */
  peers(channel: string): PeerRecord<C>[] {
    const ch = this.channels.get(channel);
    return ch ? [...ch.byId.values()].map((s) => s.rec) : [];
  }

  /**
   * A random sample of the channel's peers: at most `maxInfra` origin/seeder peers, the rest
   * browsers (never more infra peers to make up for missing browsers), shuffled.
   */
  sample(channel: string, opts: SampleOptions): PeerInfo[] {
    const ch = this.channels.get(channel);
    const max = Math.max(0, Math.floor(opts.max));
    if (!ch || max === 0) return [];
    const infra = pick(ch.infra, Math.min(max, Math.max(0, Math.floor(opts.maxInfra))), opts.exclude, opts.random);
    const others = pick(ch.others, max - infra.length, opts.exclude, opts.random);
    const out = infra.concat(others).map((s) => ({ peerId: s.rec.peerId, kind: s.rec.kind }));
    shuffle(out, opts.random);
    return out;
  }
}

function randomIndex(n: number, random: Random): number {
  return Math.min(n - 1, Math.floor(random.next() * n));
}

/** Fisher-Yates, in place. */
export function shuffle<T>(arr: T[], random: Random): T[] {
  for (let i = arr.length - 1; i > 0; i--) {
    const j = randomIndex(i + 1, random);
    const t = arr[i];
    arr[i] = arr[j];
    arr[j] = t;
  }
  return arr;
}

/** Up to k distinct random elements of arr whose peerId is not `exclude`. O(k) when k << n. */
function pick<C>(arr: Slot<C>[], k: number, exclude: string | undefined, random: Random): Slot<C>[] {
  const n = arr.length;
  if (k <= 0 || n === 0) return [];
  if (k * 3 >= n) {
    // Dense: partial Fisher-Yates over a filtered copy.
    const pool = exclude === undefined ? arr.slice() : arr.filter((s) => s.rec.peerId !== exclude);
    const m = Math.min(k, pool.length);
    for (let i = 0; i < m; i++) {
      const j = i + randomIndex(pool.length - i, random);
      const t = pool[i];
      pool[i] = pool[j];
      pool[j] = t;
    }
    return pool.slice(0, m);
  }
  // Sparse: rejection sampling (k < n/3, so few collisions are expected).
  const seen = new Set<number>();
  const out: Slot<C>[] = [];
  for (let attempts = 0; out.length < k && attempts < 20 * k + 20; attempts++) {
    const i = randomIndex(n, random);
    if (seen.has(i)) continue;
    seen.add(i);
    if (arr[i].rec.peerId === exclude) continue;
    out.push(arr[i]);
  }
  return out;
}
