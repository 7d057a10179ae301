/**
 * Relays (issue 4, ABR awareness): which viewers should also carry a rendition they do not
 * watch, pure. Each rendition is its own swarm; when one is short of upload slots (its viewers,
 * seeders and origin together can feed fewer children than it has members) while viewers of
 * another rendition have spare upload, the tracker asks some of those viewers to relay it
 * (`{type:'relay', renditions}` → Engine.setRelayRenditions): they take a parent in that
 * rendition and offer its slots, and the Chandelier round plans them into its tree.
 *
 * Inputs come from reports: `spareKbps` (upload a peer has left after its current children) and
 * `kbps.<r>` (a rendition's measured bitrate). A relay costs one slot of the short rendition
 * (its own feed) and brings floor(spare / (bitrate × headroom)) slots, so only peers that bring
 * at least MIN_RELAY_SLOTS are asked (a net gain of two: a relay is one more hop, and a
 * one-slot gain measured as a loss in the simulator).
 *
 * Off by default (tracker `--relays`, OptimizerSettings.relays): in the simulator (two
 * renditions, one short of slots) relays placed more viewers but did not deliver the short
 * rendition better (bench/RESULTS.md); kept so the optimizer can be asked to, and measured again. A donor's own rendition must keep its margin without the
 * donor's slots there. Decisions are sticky: a relay is released only after its rendition has
 * had enough slots without it for `releaseRounds` rounds in a row (or when its own rendition
 * runs short), so relays do not flap with every report.
 */
import type { OverlayPeer } from './loop.js';

export const RELAY_LIMITS = {
  /** Slots a rendition keeps beyond its members' needs: 1 + this share of its members. */
  marginShare: 0.1,
  /** Rounds in a row a relay must be unnecessary before it is released. */
  releaseRounds: 3,
  /** Most relays of one rendition, as a share of its watchers (at least 1). */
  maxRelayShare: 0.25,
  /** Slot headroom over the bitrate (the engine's ENGINE_LIMITS.slotHeadroom). */
  slotHeadroom: 1.05,
} as const;

export interface RelayChange { peerId: string; renditions: string[] }

interface Relay { rendition: string; idleRounds: number; sentRound: number }

/** Slots of the short rendition a relay must bring (one of them feeds the relay itself). */
export const MIN_RELAY_SLOTS = 3;

/** Rounds after which a relay request the peer's reports do not show yet is sent again. */
const RESEND_ROUNDS = 5;

interface Balance { members: number; supply: number; watchers: number }

export class RelayPlanner {
  /** peerId -> the rendition it relays (one at most: a viewer's spare upload is small). */
  private readonly relays = new Map<string, Relay>();
  private round = 0;

  /** The relays in force (what `relays` each OverlayPeer should carry into the round). */
  current(): ReadonlyMap<string, string> {
    return new Map([...this.relays].map(([id, r]) => [id, r.rendition]));
  }

  /**
   * One round: adjusts the relays to the overlay and returns the peers whose relay set changed
   * (each gets its whole new set; an empty list releases it).
   */
  plan(peers: readonly OverlayPeer[]): RelayChange[] {
    this.round++;
    const byId = new Map(peers.map((p) => [p.peerId, p]));
    const changes = new Map<string, string[]>();
    const release = (id: string) => {
      this.relays.delete(id);
      changes.set(id, []);
    };
    // Relays the peers report that this planner did not decide (it just took the lead, or the
    // tracker restarted) are adopted, then judged like its own; requests the reports do not
    // show after a while (a message lost with a connection) are sent again.
    for (const p of peers) {
      const reported = p.relays ?? [];
      const mine = this.relays.get(p.peerId);
      if (!mine && reported.length > 0) {
        this.relays.set(p.peerId, { rendition: reported[0], idleRounds: 0, sentRound: this.round });
        if (reported.length > 1) changes.set(p.peerId, [reported[0]]);
      } else if (mine && (reported.length !== 1 || reported[0] !== mine.rendition) && this.round - mine.sentRound >= RESEND_ROUNDS) {
        mine.sentRound = this.round;
        changes.set(p.peerId, [mine.rendition]);
      }
    }
    // gone, switched to the relayed rendition, or no longer a viewer we can judge: released
    for (const [id, r] of this.relays) {
      const p = byId.get(id);
      if (!p) this.relays.delete(id);
      else if (p.kind !== 'browser' || !p.rendition || p.rendition === r.rendition) release(id);
    }
    const bitrate = medianBitrates(peers);
    const renditions = [...new Set(peers.flatMap((p) => (p.kind === 'browser' && p.rendition ? [p.rendition] : [])))].sort();
    const balance = new Map<string, Balance>(renditions.map((r) => [r, this.balanceOf(r, peers)]));
    const margin = (r: string) => 1 + Math.ceil(RELAY_LIMITS.marginShare * (balance.get(r)?.members ?? 0));
    const spare = (b: Balance) => b.supply - b.members;
    const relaySlots = (p: OverlayPeer, r: string): number => {
      const kbps = bitrate.get(r);
      if (!kbps || p.spareKbps === undefined) return 0;
      return Math.floor(p.spareKbps / (kbps * RELAY_LIMITS.slotHeadroom));
    };

    // release relays no longer needed (sticky), or whose own rendition now runs short
    for (const [id, relay] of [...this.relays]) {
      const p = byId.get(id)!;
      const own = balance.get(p.rendition!);
      const b = balance.get(relay.rendition);
      if (own && spare(own) < 0) {
        release(id);
        continue;
      }
      if (!b) {
        release(id);
        continue;
      }
      const mine = p.slots[relay.rendition] ?? 0;
      const without = spare(b) - mine + 1; // without it: its slots gone, its own feed not needed
      relay.idleRounds = without >= margin(relay.rendition) ? relay.idleRounds + 1 : 0;
      if (relay.idleRounds >= RELAY_LIMITS.releaseRounds) {
        release(id);
        b.supply -= mine;
        b.members--;
      }
    }

    // short renditions, most short first: ask donors with the most spare for it
    const short = renditions
      .filter((r) => spare(balance.get(r)!) < margin(r))
      .sort((a, b) => spare(balance.get(a)!) - margin(a) - (spare(balance.get(b)!) - margin(b)) || a.localeCompare(b));
    for (const r of short) {
      const b = balance.get(r)!;
      const maxRelays = Math.max(1, Math.ceil(RELAY_LIMITS.maxRelayShare * b.watchers));
      let relaysOfR = [...this.relays.values()].filter((x) => x.rendition === r).length;
      const candidates = peers
        .filter((p) => p.kind === 'browser' && p.rendition && p.rendition !== r && !this.relays.has(p.peerId) && relaySlots(p, r) >= MIN_RELAY_SLOTS)
        .sort((x, y) => relaySlots(y, r) - relaySlots(x, r) || x.peerId.localeCompare(y.peerId));
      for (const p of candidates) {
        if (spare(b) >= margin(r) || relaysOfR >= maxRelays) break;
        const own = balance.get(p.rendition!)!;
        const ownSlots = p.slots[p.rendition!] ?? 0;
        if (spare(own) - ownSlots < margin(p.rendition!)) continue; // its own rendition needs it
        const slots = relaySlots(p, r);
        this.relays.set(p.peerId, { rendition: r, idleRounds: 0, sentRound: this.round });
        changes.set(p.peerId, [r]);
        relaysOfR++;
        b.supply += slots;
        b.members++;
        own.supply -= ownSlots;
      }
    }
    return [...changes].map(([peerId, rs]) => ({ peerId, renditions: rs }));
  }

  /** A rendition's members (non-origin peers that need a feed in it) and their slots in it. */
  private balanceOf(r: string, peers: readonly OverlayPeer[]): Balance {
    let members = 0;
    let supply = 0;
    let watchers = 0;
    for (const p of peers) {
      const relayed = this.relays.get(p.peerId)?.rendition === r;
      const inIt = p.kind !== 'browser' || p.rendition === r || relayed;
      if (!inIt) continue;
      supply += p.slots[r] ?? 0;
      if (p.kind !== 'origin') members++;
      if (p.kind === 'browser' && p.rendition === r) watchers++;
    }
    return { members, supply, watchers };
  }
}

/** Each rendition's bitrate: the median of what its peers measured (a liar moves it little). */
function medianBitrates(peers: readonly OverlayPeer[]): Map<string, number> {
  const seen = new Map<string, number[]>();
  for (const p of peers) {
    for (const [r, kbps] of Object.entries(p.kbps ?? {})) {
      let list = seen.get(r);
      if (!list) seen.set(r, (list = []));
      list.push(kbps);
    }
  }
  const out = new Map<string, number>();
  for (const [r, list] of seen) {
    list.sort((a, b) => a - b);
    out.set(r, list[Math.floor(list.length / 2)]);
  }
  return out;
}
