/**
 * Time-bucketed series in a ring buffer (pure; times are passed in, never read from a clock).
 * Sums (bytes) may be spread over an interval, so a report covering 5 s of traffic fills the five
 * 1-second buckets it spans instead of spiking one; gauges keep the last value set in a bucket.
 */
export class BucketSeries<F extends string> {
  private readonly sums: Map<F, Float64Array>;
  private readonly gauges: Map<F, Float64Array>;
  /** Absolute bucket index stored in each ring slot (-1: empty). */
  private readonly slotIndex: Float64Array;

  constructor(
    readonly bucketMs: number,
    readonly capacity: number,
    sumFields: readonly F[],
    gaugeFields: readonly F[] = [],
  ) {
    if (!(bucketMs > 0) || !Number.isInteger(capacity) || capacity < 1) throw new RangeError('bucketMs > 0 and an integer capacity >= 1 required');
    this.sums = new Map(sumFields.map((f) => [f, new Float64Array(capacity)]));
    this.gauges = new Map(gaugeFields.map((f) => [f, new Float64Array(capacity).fill(Number.NaN)]));
    this.slotIndex = new Float64Array(capacity).fill(-1);
  }

  /** Absolute bucket index of time t (ms). */
  bucketOf(t: number): number {
    return Math.floor(t / this.bucketMs);
  }

  /** Ring slot of bucket b, clearing it first if it held an older bucket. */
  private slot(b: number): number {
    const i = ((b % this.capacity) + this.capacity) % this.capacity;
    if (this.slotIndex[i] !== b) {
      if (this.slotIndex[i] > b) return -1; // a bucket older than the ring holds: dropped
      this.slotIndex[i] = b;
      for (const a of this.sums.values()) a[i] = 0;
      for (const a of this.gauges.values()) a[i] = Number.NaN;
    }
    return i;
  }

  /** Adds `value` to field's bucket at time t. */
  add(t: number, field: F, value: number): void {
    const arr = this.sums.get(field);
    if (!arr || !Number.isFinite(value)) return;
    const i = this.slot(this.bucketOf(t));
    if (i >= 0) arr[i] += value;
  }

  /**
   * Spreads `values` uniformly over [t0, t1): each bucket gets the share of the interval it
   * covers. Only the newest `capacity` buckets of a long interval are filled (older ones have
   * left the ring), each with its own share. t1 <= t0 adds everything at t1.
   */
  addSpread(t0: number, t1: number, values: Partial<Record<F, number>>): void {
    const entries = Object.entries(values) as Array<[F, number]>;
    if (!(t1 > t0)) {
      for (const [f, v] of entries) this.add(t1, f, v);
      return;
    }
    const span = t1 - t0;
    const last = this.bucketOf(t1 - 1e-9);
    const first = Math.max(this.bucketOf(t0), last - this.capacity + 1);
    for (let b = first; b <= last; b++) {
      const lo = Math.max(t0, b * this.bucketMs);
      const hi = Math.min(t1, (b + 1) * this.bucketMs);
      const share = (hi - lo) / span;
      if (share <= 0) continue;
      const i = this.slot(b);
      if (i < 0) continue;
      for (const [f, v] of entries) {
        const arr = this.sums.get(f);
        if (arr && Number.isFinite(v)) arr[i] += v * share;
      }
    }
  }

  /** Sets a gauge field's value for the bucket at time t. */
  set(t: number, field: F, value: number): void {
    const arr = this.gauges.get(field);
    if (!arr) return;
    const i = this.slot(this.bucketOf(t));
    if (i >= 0) arr[i] = value;
  }

  /** The bucket's value (sum field: 0 when empty; gauge field: NaN when unset). */
  get(b: number, field: F): number {
    const i = ((b % this.capacity) + this.capacity) % this.capacity;
    const held = this.slotIndex[i] === b;
    const s = this.sums.get(field);
    if (s) return held ? s[i] : 0;
    const g = this.gauges.get(field);
    return g && held ? g[i] : Number.NaN;
  }

  /** Sum of a sum field over buckets [fromBucket, toBucket]. */
  total(fromBucket: number, toBucket: number, field: F): number {
    let sum = 0;
    for (let b = Math.max(fromBucket, toBucket - this.capacity + 1); b <= toBucket; b++) sum += this.get(b, field);
    return sum;
  }
}
