/**
 * Token bucket, one per WebSocket connection. Pure: the clock is injected (milliseconds,
 * monotonic), so tests drive time by hand.
 */
import type { Clock } from '../peer/core/types.js';

export interface TokenBucketOptions {
  /** Tokens added per second (the sustained message rate). */
  ratePerSec: number;
  /** Bucket capacity (the largest burst); the bucket starts full. */
  burst: number;
  clock: Clock;
}

export class TokenBucket {
  private readonly ratePerMs: number;
  private readonly burst: number;
  private readonly clock: Clock;
  private tokens: number;
  private last: number;

  constructor(opts: TokenBucketOptions) {
    if (!(opts.ratePerSec >= 0) || !Number.isFinite(opts.ratePerSec)) throw new RangeError('ratePerSec must be a finite number >= 0');
    if (!(opts.burst >= 1) || !Number.isFinite(opts.burst)) throw new RangeError('burst must be a finite number >= 1');
    this.ratePerMs = opts.ratePerSec / 1000;
    this.burst = opts.burst;
    this.clock = opts.clock;
    this.tokens = opts.burst;
    this.last = opts.clock.now();
  }

  /** Takes `n` tokens if available; returns false (and takes nothing) otherwise. */
  tryTake(n = 1): boolean {
    this.refill();
    // The epsilon absorbs floating-point drift of many small refills (10 x 0.1 < 1).
    if (this.tokens >= n - 1e-9) {
      this.tokens = Math.max(0, this.tokens - n);
      return true;
    }
    return false;
  }

  /** Tokens available now (fractional). */
  get available(): number {
    this.refill();
    return this.tokens;
  }

  private refill(): void {
    const now = this.clock.now();
    const elapsed = now - this.last;
    // A clock that goes backwards (should not happen with a monotonic clock) adds nothing.
    if (elapsed > 0) this.tokens = Math.min(this.burst, this.tokens + elapsed * this.ratePerMs);
    this.last = now;
  }
}
