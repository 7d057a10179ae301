/**
 * One optimizer per channel across trackers: each tracker that holds peers of a channel competes
 * for the channel's lease (`optimizer:<channel>`, ttlMs) every tickMs; the holder renews it. A
 * tracker counts itself leader only until `requestStart + ttlMs - marginMs` of its last successful
 * acquire/renew, so two trackers never both believe they lead (the lease outlives the belief),
 * even when Redis is unreachable. A dead tracker's lease expires after ttlMs and the next tick of
 * another tracker takes it over.
 *
 * The optimizer plugs in through `isLeader(channel)` (TrackerContext.optimizerLeader) and
 * `onChange` (start/stop a channel's optimizer loop); its input is TrackerStore.reports(channel).
 */
import type { LeaseStore } from './types.js';
import { optimizerLeaseName } from './types.js';

export interface ElectionOptions {
  store: LeaseStore;
  owner: string;
  /** Channels this tracker competes for (those it has peers of). */
  channels: () => string[];
  /** Monotonic ms. */
  now: () => number;
  ttlMs?: number;
  tickMs?: number;
  /** Safety margin against clock drift between this process and the lease store. Default ttl/5. */
  marginMs?: number;
  onError?: (err: unknown) => void;
}

export type LeadershipListener = (channel: string, leader: boolean) => void;

export const DEFAULT_LEASE_TTL_MS = 6000;
export const DEFAULT_LEASE_TICK_MS = 2000;

export class OptimizerElection {
  private readonly until = new Map<string, number>();
  private readonly listeners = new Set<LeadershipListener>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private running: Promise<void> | null = null;
  readonly ttlMs: number;
  readonly tickMs: number;
  private readonly marginMs: number;
  private stopped = false;

  constructor(private readonly opts: ElectionOptions) {
    this.ttlMs = opts.ttlMs ?? DEFAULT_LEASE_TTL_MS;
    this.tickMs = opts.tickMs ?? DEFAULT_LEASE_TICK_MS;
    this.marginMs = opts.marginMs ?? Math.round(this.ttlMs / 5);
    if (!(this.tickMs > 0 && this.ttlMs > this.tickMs + this.marginMs)) throw new RangeError('lease ttl must exceed tick + margin');
  }

  /** Whether this tracker runs the optimizer of `channel` now. */
  isLeader(channel: string): boolean {
    const u = this.until.get(channel);
    return u !== undefined && u > this.opts.now();
  }

  /** Channels this tracker leads now. */
  leading(): string[] {
    return [...this.until.keys()].filter((c) => this.isLeader(c));
  }

  onChange(listener: LeadershipListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  start(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => void this.tick(), this.tickMs);
    this.timer.unref?.();
    void this.tick();
  }

  /** One round: acquire/renew the channels we compete for, release the others. */
  tick(): Promise<void> {
    if (this.running) return this.running;
    this.running = this.round().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async round(): Promise<void> {
    const { store, owner } = this.opts;
    const wanted = new Set(this.opts.channels());
    const before = new Map([...this.until.keys()].map((c) => [c, this.isLeader(c)]));
    const jobs: Promise<void>[] = [];
    for (const ch of wanted) {
      const t0 = this.opts.now();
      jobs.push(
        store.acquireLease(optimizerLeaseName(ch), owner, this.ttlMs).then(
          (ok) => {
            if (this.stopped) return;
            if (ok) this.until.set(ch, t0 + this.ttlMs - this.marginMs);
            else this.until.delete(ch);
          },
          (err) => this.opts.onError?.(err), // keep the belief; it expires by itself
        ),
      );
    }
    for (const ch of [...this.until.keys()]) {
      if (wanted.has(ch)) continue;
      this.until.delete(ch);
      jobs.push(store.releaseLease(optimizerLeaseName(ch), owner).then(() => undefined, (err) => this.opts.onError?.(err)));
    }
    await Promise.all(jobs);
    if (this.stopped) return;
    for (const [ch, was] of before) if (!this.isLeader(ch) && was) this.emit(ch, false);
    for (const ch of wanted) if (this.isLeader(ch) && !before.get(ch)) this.emit(ch, true);
    // Expired beliefs (renewals failing) are reported lost once.
    for (const [ch] of this.until) if (!this.isLeader(ch) && before.get(ch)) this.until.delete(ch);
  }

  private emit(channel: string, leader: boolean): void {
    for (const l of this.listeners) {
      try {
        l(channel, leader);
      } catch (err) {
        this.opts.onError?.(err);
      }
    }
  }

  /** Stops competing and releases every lease held (graceful shutdown hands over at once). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running?.catch(() => {});
    const held = [...this.until.keys()];
    this.until.clear();
    await Promise.all(held.map((ch) => this.opts.store.releaseLease(optimizerLeaseName(ch), this.opts.owner).catch(() => false)));
    for (const ch of held) this.emit(ch, false);
  }
}
