/**
 * Upload slots as tokens (DESIGN.md §4, the token model of Chandy/Rifkin in
 * seeds/global-event-model-distributed-control.txt). Pure: no time, no I/O.
 *
 * A peer's upload capacity (kbit/s, and a number of children) is divided into slots; a slot
 * entitles a child to have one rendition pushed to it (an upload link). Every SLOT_REQUEST
 * carries a global priority, (capacityClass, deadlineMs, timestamp, peerId), ordered the same way
 * on every peer by comparePriority: the larger capacity class first (peers that can pass the
 * stream on go nearer the root), then the smaller deadline (the child that will stall soonest),
 * then the smaller logical (Lamport) timestamp (the older request: holders keep their slots
 * against newcomers of equal urgency, which is what stops slots from oscillating), then the
 * smaller peer id (a total order). When the slots are full, a request that outranks the
 * lowest-priority holder takes that one holder's slot — never more than one per request, never
 * all at once.
 */

export interface SlotPriority {
  /**
   * The tracker's optimizer assigned this link: it outranks every unassigned request (the
   * optimizer's global view beats local priorities; two assigned requests order as usual).
   */
  assigned?: boolean;
  /**
   * Capacity class of the requester: 0 = cannot feed anyone, 1 = one or two children, 2 = three
   * or more (capacityClass). Higher first: a peer that can pass the stream on belongs closer to
   * the root, so the tree grows wide rather than deep. Coarse on purpose, so that equal peers
   * still order by urgency. Absent (older peers): 1.
   */
  capacityClass?: number;
  /** Playback slack of the requester in ms (0..65535; 65535 = not urgent). Smaller = more urgent. */
  deadlineMs: number;
  /** The requester's logical clock when it asked. Smaller = older request. */
  timestamp: number;
  /** The requester's peer id (ties). */
  peerId: string;
}

/** Negative when `a` comes first (higher priority). The same answer on every peer. */
export function comparePriority(a: SlotPriority, b: SlotPriority): number {
  const aa = a.assigned ? 1 : 0, ab = b.assigned ? 1 : 0;
  if (aa !== ab) return ab - aa;
  const ca = a.capacityClass ?? 1, cb = b.capacityClass ?? 1;
  if (ca !== cb) return cb - ca;
  if (a.deadlineMs !== b.deadlineMs) return a.deadlineMs - b.deadlineMs;
  if (a.timestamp !== b.timestamp) return a.timestamp - b.timestamp;
  return a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0;
}

/** The capacity class of a peer that could feed `children` children (see SlotPriority). */
export function capacityClass(children: number): number {
  return children <= 0 ? 0 : children < 3 ? 1 : 2;
}

/** Buckets a slack in ms so that jitter of a few ms does not reorder requests. */
export function deadlineBucket(slackMs: number, bucketMs = 250): number {
  if (!Number.isFinite(slackMs)) return 0xffff;
  const b = Math.max(0, Math.floor(slackMs / bucketMs) * bucketMs);
  return Math.min(0xffff, b);
}

export interface SlotHolder {
  peerId: string;
  rendition: string;
  /** Upload this slot costs (the rendition's bitrate), kbit/s. */
  costKbps: number;
  priority: SlotPriority;
}

export type SlotDecision =
  | { granted: true; revoked: SlotHolder | null }
  | { granted: false; reason: 'full' };

export interface SlotCapacity {
  /** Most children at once (all renditions together). */
  maxSlots: number;
  /** Upload capacity for children, kbit/s (Infinity: bounded by maxSlots only). */
  capacityKbps: number;
}

export class SlotTable {
  private readonly holders = new Map<string, SlotHolder>();
  private cap: SlotCapacity;

  constructor(cap: SlotCapacity) {
    this.cap = SlotTable.check(cap);
  }

  private static check(cap: SlotCapacity): SlotCapacity {
    if (!Number.isInteger(cap.maxSlots) || cap.maxSlots < 0) throw new TypeError('maxSlots must be an integer >= 0');
    if (!(cap.capacityKbps >= 0)) throw new TypeError('capacityKbps must be >= 0');
    return { ...cap };
  }

  private static key(peerId: string, rendition: string): string {
    return `${peerId}\u0000${rendition}`;
  }

  get capacity(): SlotCapacity {
    return { ...this.cap };
  }

  get size(): number {
    return this.holders.size;
  }

  usedKbps(): number {
    let s = 0;
    for (const h of this.holders.values()) s += h.costKbps;
    return s;
  }

  /** Holders in priority order (highest first). */
  list(): SlotHolder[] {
    return [...this.holders.values()].sort((a, b) => comparePriority(a.priority, b.priority));
  }

  has(peerId: string, rendition: string): boolean {
    return this.holders.has(SlotTable.key(peerId, rendition));
  }

  hasPeer(peerId: string): boolean {
    for (const h of this.holders.values()) if (h.peerId === peerId) return true;
    return false;
  }

  /** Renditions a child holds slots for. */
  renditionsOf(peerId: string): string[] {
    const out: string[] = [];
    for (const h of this.holders.values()) if (h.peerId === peerId) out.push(h.rendition);
    return out;
  }

  childrenOf(rendition: string): string[] {
    const out: string[] = [];
    for (const h of this.holders.values()) if (h.rendition === rendition) out.push(h.peerId);
    return out;
  }

  /** Upload capacity not held by children, kbit/s (0 when no slot is left; Infinity when uncapped). */
  spareKbps(): number {
    if (this.cap.maxSlots - this.holders.size <= 0) return 0;
    return Math.max(0, this.cap.capacityKbps - this.usedKbps());
  }

  /** Slots a new child of this cost could take without preempting anyone. */
  free(costKbps: number): number {
    const bySlots = this.cap.maxSlots - this.holders.size;
    if (bySlots <= 0) return 0;
    if (!Number.isFinite(this.cap.capacityKbps)) return bySlots;
    const left = this.cap.capacityKbps - this.usedKbps();
    const byRate = costKbps > 0 ? Math.floor(left / costKbps) : bySlots;
    return Math.max(0, Math.min(bySlots, byRate));
  }

  private fits(extraKbps: number, without: SlotHolder | null): boolean {
    const count = this.holders.size - (without ? 1 : 0);
    if (count + 1 > this.cap.maxSlots) return false;
    const used = this.usedKbps() - (without ? without.costKbps : 0);
    return used + extraKbps <= this.cap.capacityKbps;
  }

  /** The lowest-priority holder (the one a better request would take the slot from). */
  lowest(): SlotHolder | null {
    let worst: SlotHolder | null = null;
    for (const h of this.holders.values()) if (!worst || comparePriority(h.priority, worst.priority) > 0) worst = h;
    return worst;
  }

  /**
   * A child asks for a slot. Already holding one for this rendition: its priority is refreshed
   * only if that does not make it worse (a holder keeps its place), granted. Otherwise granted if
   * it fits; else, if it outranks the lowest-priority holder and fits once that one holder is
   * gone, that holder's slot is taken (returned as `revoked`); else refused.
   */
  request(req: SlotHolder): SlotDecision {
    const k = SlotTable.key(req.peerId, req.rendition);
    const existing = this.holders.get(k);
    if (existing) {
      if (comparePriority(req.priority, existing.priority) < 0) existing.priority = { ...req.priority };
      existing.costKbps = req.costKbps;
      return { granted: true, revoked: null };
    }
    const holder: SlotHolder = { ...req, priority: { ...req.priority } };
    if (this.fits(req.costKbps, null)) {
      this.holders.set(k, holder);
      return { granted: true, revoked: null };
    }
    const worst = this.lowest();
    if (worst && comparePriority(req.priority, worst.priority) < 0 && this.fits(req.costKbps, worst)) {
      this.holders.delete(SlotTable.key(worst.peerId, worst.rendition));
      this.holders.set(k, holder);
      return { granted: true, revoked: worst };
    }
    return { granted: false, reason: 'full' };
  }

  release(peerId: string, rendition: string): boolean {
    return this.holders.delete(SlotTable.key(peerId, rendition));
  }

  /** Removes every slot of a peer (it left); returns them. */
  releasePeer(peerId: string): SlotHolder[] {
    const out: SlotHolder[] = [];
    for (const [k, h] of this.holders) if (h.peerId === peerId) { out.push(h); this.holders.delete(k); }
    return out;
  }

  /**
   * New capacity (measured or configured). If the holders no longer fit, only the single
   * lowest-priority holder is removed and returned; call again later for more (gradual, never
   * everybody at once).
   */
  setCapacity(cap: SlotCapacity): SlotHolder | null {
    this.cap = SlotTable.check(cap);
    return this.overloaded() ? this.shed() : null;
  }

  overloaded(): boolean {
    return this.holders.size > this.cap.maxSlots || this.usedKbps() > this.cap.capacityKbps;
  }

  /** Removes and returns the lowest-priority holder (overload relief), or null. */
  shed(): SlotHolder | null {
    const worst = this.lowest();
    if (worst) this.holders.delete(SlotTable.key(worst.peerId, worst.rendition));
    return worst;
  }
}

/** Lamport clock for SLOT_REQUEST / SLOT_GRANT timestamps (u32). */
export class LogicalClock {
  private t = 0;
  get value(): number {
    return this.t;
  }
  /** Next timestamp for an event of ours. */
  tick(): number {
    this.t = (this.t + 1) >>> 0;
    return this.t;
  }
  /** A timestamp seen in a message. */
  observe(ts: number): void {
    if (Number.isInteger(ts) && ts > this.t && ts <= 0xffffffff) this.t = ts;
  }
}
