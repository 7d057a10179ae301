/**
 * NAT types and the NAT-pair table: which pairs of peers can be expected to connect directly
 * (UDP hole punching through ICE) and which need a TURN relay. No I/O, no clock, no randomness
 * of its own: the tracker orders peer samples with it (NatTracker, at the end: the glue that
 * tracks reported types and counts attempts/outcomes into prom-client counters), and the
 * optimizer and the simulator can use predictPair/orderByNat as they are.
 *
 * NAT types are the labels peers report (`report.nat`), derived from RFC 5780 mapping and
 * filtering behaviour (peer/node/nat-discovery.ts does the checks for Node peers; browsers cannot
 * run them and report nothing, or what they infer from their candidates):
 *
 * | label             | mapping                        | filtering                      |
 * |-------------------|--------------------------------|--------------------------------|
 * | open              | none (public address)          | endpoint-independent           |
 * | firewall          | none (public address)          | address(-and-port)-dependent   |
 * | full-cone         | endpoint-independent           | endpoint-independent           |
 * | restricted-cone   | endpoint-independent           | address-dependent              |
 * | port-restricted   | endpoint-independent           | address-and-port-dependent     |
 * | symmetric         | address(-and-port)-dependent   | any                            |
 * | udp-blocked       | no STUN answer at all          |                                |
 * | unknown           | not measured                   |                                |
 *
 * The pair table (who can punch through to whom), as in the hole-punching literature (Ford,
 * Srisuresh, Kegel; NATCracker): a pair connects directly unless one side's mapping depends on
 * the destination while the other side filters on the port (or also has such a mapping), or UDP
 * is blocked. 'unknown' is optimistic-but-below-certain.
 */

import { Counter, type Registry } from 'prom-client';

export const NAT_TYPES = ['open', 'firewall', 'full-cone', 'restricted-cone', 'port-restricted', 'symmetric', 'udp-blocked', 'unknown'] as const;
export type NatType = (typeof NAT_TYPES)[number];

export function isNatType(x: unknown): x is NatType {
  return typeof x === 'string' && (NAT_TYPES as readonly string[]).includes(x);
}

/** A reported label as a NatType ('unknown' for anything else, including undefined). */
export function toNatType(x: unknown): NatType {
  return isNatType(x) ? x : 'unknown';
}

export type PairPrediction = 'direct' | 'relay' | 'unknown';

/** Mapping depends on the destination (symmetric). */
const destDependentMapping = (t: NatType) => t === 'symmetric';
/** Filters on the remote's port (and address): only packets from exactly where we sent pass. */
const portFiltering = (t: NatType) => t === 'port-restricted' || t === 'symmetric' || t === 'firewall';

/**
 * Whether ICE between a peer behind `a` and one behind `b` is expected to find a direct path.
 * Symmetric: 'relay' with port-restricted, symmetric and firewall (a firewall peer's host
 * candidate is its public address, but it accepts only what it sent to: the symmetric side's
 * fresh port is unknown to it). Restricted cone and full cone punch through to symmetric.
 */
export function predictPair(a: NatType, b: NatType): PairPrediction {
  if (a === 'udp-blocked' || b === 'udp-blocked') return 'relay';
  if (a === 'unknown' || b === 'unknown') return 'unknown';
  if (destDependentMapping(a) && portFiltering(b)) return 'relay';
  if (destDependentMapping(b) && portFiltering(a)) return 'relay';
  return 'direct';
}

/** Sort key: higher is better (direct 2, unknown 1, relay 0). */
export function pairScore(a: NatType, b: NatType): number {
  const p = predictPair(a, b);
  return p === 'direct' ? 2 : p === 'unknown' ? 1 : 0;
}

/**
 * Orders candidate neighbors for a requester: likely-direct first, then unknown, then
 * relay-only; stable within a class (keeps the caller's random order). Relay-only candidates
 * stay in the list (at the end): when nothing else is there, a relayed neighbor is better than
 * none.
 */
export function orderByNat<T>(requester: NatType, candidates: readonly T[], natOf: (c: T) => NatType): T[] {
  return candidates
    .map((c, i) => ({ c, i, s: pairScore(requester, natOf(c)) }))
    .sort((x, y) => y.s - x.s || x.i - y.i)
    .map((x) => x.c);
}

/** A canonical, order-independent label for a pair of NAT types ('port-restricted|symmetric'). */
export function pairLabel(a: NatType, b: NatType): string {
  return a <= b ? `${a}|${b}` : `${b}|${a}`;
}

export type PairOutcome = 'direct' | 'relayed' | 'failed';

export interface PairTally {
  attempts: number;
  direct: number;
  relayed: number;
  failed: number;
}

/**
 * Attempts and outcomes per NAT pair, for /metrics and the optimizer's learning of which pairs
 * really work on this deployment. `onChange` lets the tracker mirror counts into prom-client.
 */
export class NatPairStats {
  private readonly pairs = new Map<string, PairTally>();

  constructor(private readonly onCount?: (pair: string, what: 'attempts' | PairOutcome) => void) {}

  private tally(pair: string): PairTally {
    let t = this.pairs.get(pair);
    if (!t) {
      if (this.pairs.size >= 64) return { attempts: 0, direct: 0, relayed: 0, failed: 0 }; // bounded: 8x8 types
      t = { attempts: 0, direct: 0, relayed: 0, failed: 0 };
      this.pairs.set(pair, t);
    }
    return t;
  }

  attempt(a: NatType, b: NatType): void {
    const p = pairLabel(a, b);
    this.tally(p).attempts++;
    this.onCount?.(p, 'attempts');
  }

  outcome(a: NatType, b: NatType, outcome: PairOutcome): void {
    const p = pairLabel(a, b);
    this.tally(p)[outcome]++;
    this.onCount?.(p, outcome);
  }

  snapshot(): Record<string, PairTally> {
    return Object.fromEntries([...this.pairs].map(([k, v]) => [k, { ...v }]));
  }
}

// ---------------------------------------------------------------------------------------------
// Tracker glue: remembers each peer's reported NAT type, orders the samples it proposes, counts
// connection attempts (offers relayed) and outcomes (links first reported) per NAT pair.

interface NatPeerRecord {
  readonly peerId: string;
  readonly channel: string;
}

/** What NatTracker needs of the tracker (a subset of TrackerContext). */
export interface NatTrackerHost {
  registry: { get(channel: string, peerId: string): NatPeerRecord | undefined };
  /** prom-client registry to put the counters in (optional). */
  metrics?: { registry: Registry };
}

/** A reported link: the transport's ConnectionInfo travels as `relayed` (optional). */
interface ReportedLink {
  peerId: string;
  relayed?: boolean;
}

/** Largest sample drawn to pick the most compatible `max` peers from. */
export const NAT_OVERSAMPLE = 3;
const MAX_OVERSAMPLE = 60;

export class NatTracker {
  readonly pairs: NatPairStats;
  private readonly natOfPeer = new WeakMap<NatPeerRecord, NatType>();
  /** Neighbors already counted as an outcome, per peer record. */
  private readonly counted = new WeakMap<NatPeerRecord, Set<string>>();

  constructor(private readonly host: NatTrackerHost) {
    let attempts: Counter<'pair'> | null = null;
    let outcomes: Counter<'pair' | 'outcome'> | null = null;
    if (host.metrics) {
      const registers = [host.metrics.registry];
      attempts = new Counter({
        name: 'starling_tracker_nat_pair_attempts_total',
        help: 'Connection attempts (offers relayed) by the NAT types of the two peers',
        labelNames: ['pair'],
        registers,
      });
      outcomes = new Counter({
        name: 'starling_tracker_nat_pair_outcomes_total',
        help: 'Connections first reported open, by NAT pair and direct/relayed',
        labelNames: ['pair', 'outcome'],
        registers,
      });
    }
    this.pairs = new NatPairStats((pair, what) => {
      if (what === 'attempts') attempts?.inc({ pair });
      else outcomes?.inc({ pair, outcome: what });
    });
  }

  natOf(rec: NatPeerRecord | undefined): NatType {
    return (rec && this.natOfPeer.get(rec)) ?? 'unknown';
  }

  /** A report: its `nat` label, and links not seen before as outcomes. */
  noteReport(rec: NatPeerRecord, msg: { nat?: string; links?: ReadonlyArray<ReportedLink> }): void {
    if (msg.nat !== undefined) this.natOfPeer.set(rec, toNatType(msg.nat));
    if (!msg.links || msg.links.length === 0) return;
    let seen = this.counted.get(rec);
    if (!seen) this.counted.set(rec, (seen = new Set()));
    const mine = this.natOf(rec);
    for (const l of msg.links) {
      if (seen.has(l.peerId) || seen.size >= 1024) continue;
      seen.add(l.peerId);
      const other = this.host.registry.get(rec.channel, l.peerId);
      if (!other) continue;
      // Count each connection once: the lexically smaller id reports it, unless the other is gone.
      const otherSeen = this.counted.get(other);
      if (otherSeen?.has(rec.peerId)) continue;
      this.pairs.outcome(mine, this.natOf(other), l.relayed === true ? 'relayed' : 'direct');
    }
  }

  /** An offer relayed from one peer to another: one attempt for their NAT pair. */
  noteOffer(from: NatPeerRecord, to: NatPeerRecord): void {
    this.pairs.attempt(this.natOf(from), this.natOf(to));
  }

  /**
   * Up to `max` peers for `requester`, most likely to connect directly first: draws a larger
   * random sample with `sampler(n)` and keeps the best `max` by the pair table (random order
   * within a class).
   */
  prefer<T extends { peerId: string }>(requester: NatPeerRecord, max: number, sampler: (n: number) => T[]): T[] {
    const mine = this.natOf(requester);
    const n = Math.min(MAX_OVERSAMPLE, Math.max(max, max * NAT_OVERSAMPLE));
    const sample = sampler(n);
    const ordered = orderByNat(mine, sample, (p) => this.natOf(this.host.registry.get(requester.channel, p.peerId)));
    return ordered.slice(0, max);
  }
}

const trackers = new WeakMap<object, NatTracker>();

/** The NatTracker of one tracker context (created on first use, counters in its registry). */
export function natTrackerFor(ctx: NatTrackerHost): NatTracker {
  let t = trackers.get(ctx);
  if (!t) trackers.set(ctx, (t = new NatTracker(ctx)));
  return t;
}
