/**
 * MemoryStore: one tracker process, all state in this process (the default). The Registry is
 * the store; reports live beside each record; leases are a map with expiry on an injected clock.
 */
import type { PeerConn } from '../context.js';
import { Registry, type PeerRecord } from '../registry.js';
import type { LeaseStore, StoreHealth, StoredReport, TrackerStore } from './types.js';

/** Leases in a map, expiring on a monotonic clock (ms). */
export class MemoryLeases implements LeaseStore {
  private readonly leases = new Map<string, { owner: string; until: number }>();

  constructor(private readonly now: () => number) {}

  private current(name: string): { owner: string; until: number } | undefined {
    const l = this.leases.get(name);
    if (l && l.until <= this.now()) {
      this.leases.delete(name);
      return undefined;
    }
    return l;
  }

  async acquireLease(name: string, owner: string, ttlMs: number): Promise<boolean> {
    const l = this.current(name);
    if (l && l.owner !== owner) return false;
    this.leases.set(name, { owner, until: this.now() + ttlMs });
    return true;
  }

  async renewLease(name: string, owner: string, ttlMs: number): Promise<boolean> {
    const l = this.current(name);
    if (!l || l.owner !== owner) return false;
    l.until = this.now() + ttlMs;
    return true;
  }

  async releaseLease(name: string, owner: string): Promise<boolean> {
    const l = this.current(name);
    if (!l || l.owner !== owner) return false;
    this.leases.delete(name);
    return true;
  }

  async leaseOwner(name: string): Promise<string | null> {
    return this.current(name)?.owner ?? null;
  }
}

export interface MemoryStoreOptions {
  trackerId: string;
  /** Monotonic ms for lease expiry. */
  now: () => number;
}

export class MemoryStore implements TrackerStore {
  readonly backend = 'memory' as const;
  readonly trackerId: string;
  readonly registry = new Registry<PeerConn>();
  private readonly leases: MemoryLeases;
  private readonly lastReports = new WeakMap<PeerRecord<PeerConn>, StoredReport>();

  constructor(opts: MemoryStoreOptions) {
    this.trackerId = opts.trackerId;
    this.leases = new MemoryLeases(opts.now);
  }

  async start(): Promise<void> {}
  async close(): Promise<void> {}
  peerJoined(): void {}
  peerLeft(): void {}

  putReport(rec: PeerRecord<PeerConn>, report: Omit<StoredReport, 'peerId' | 'kind' | 'at'>, at: number): void {
    this.lastReports.set(rec, { peerId: rec.peerId, kind: rec.kind, at, ...report });
  }

  async reports(channel: string): Promise<StoredReport[]> {
    const out: StoredReport[] = [];
    for (const rec of this.registry.peers(channel)) {
      const r = this.lastReports.get(rec);
      if (r) out.push(r);
    }
    return out;
  }

  localChannels(): string[] {
    return this.registry.channelNames();
  }

  get localSize(): number {
    return this.registry.size;
  }

  async sharedSecret(): Promise<Uint8Array | null> {
    return null;
  }

  health(): StoreHealth {
    return { backend: 'memory', connected: true, trackers: 1 };
  }

  acquireLease(name: string, owner: string, ttlMs: number): Promise<boolean> {
    return this.leases.acquireLease(name, owner, ttlMs);
  }
  renewLease(name: string, owner: string, ttlMs: number): Promise<boolean> {
    return this.leases.renewLease(name, owner, ttlMs);
  }
  releaseLease(name: string, owner: string): Promise<boolean> {
    return this.leases.releaseLease(name, owner);
  }
  leaseOwner(name: string): Promise<string | null> {
    return this.leases.leaseOwner(name);
  }
}
