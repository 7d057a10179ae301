import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../../tracker/rate-limit.js';

function clock(start = 1000) {
  const c = { t: start, now: () => c.t };
  return c;
}

describe('TokenBucket', () => {
  it('allows a burst, then the sustained rate', () => {
    const c = clock();
    const b = new TokenBucket({ ratePerSec: 50, burst: 200, clock: c });
    let ok = 0;
    for (let i = 0; i < 300; i++) if (b.tryTake()) ok++;
    expect(ok).toBe(200);
    expect(b.tryTake()).toBe(false);
    c.t += 100; // 5 tokens
    ok = 0;
    for (let i = 0; i < 10; i++) if (b.tryTake()) ok++;
    expect(ok).toBe(5);
  });

  it('never holds more than the burst', () => {
    const c = clock();
    const b = new TokenBucket({ ratePerSec: 10, burst: 3, clock: c });
    c.t += 1e9;
    expect(b.available).toBe(3);
    expect([b.tryTake(), b.tryTake(), b.tryTake(), b.tryTake()]).toEqual([true, true, true, false]);
  });

  it('accumulates fractional tokens across calls', () => {
    const c = clock();
    const b = new TokenBucket({ ratePerSec: 1, burst: 1, clock: c });
    expect(b.tryTake()).toBe(true);
    for (let i = 0; i < 9; i++) {
      c.t += 100;
      expect(b.tryTake()).toBe(false);
    }
    c.t += 100;
    expect(b.tryTake()).toBe(true);
  });

  it('ignores a clock going backwards and takes nothing on failure', () => {
    const c = clock();
    const b = new TokenBucket({ ratePerSec: 1000, burst: 2, clock: c });
    expect(b.tryTake(2)).toBe(true);
    c.t -= 500;
    expect(b.tryTake()).toBe(false);
    c.t += 1; // 1 ms at 1000/s = 1 token
    expect(b.tryTake(2)).toBe(false);
    expect(b.tryTake(1)).toBe(true);
  });

  it('rejects nonsense parameters', () => {
    expect(() => new TokenBucket({ ratePerSec: -1, burst: 1, clock: clock() })).toThrow(RangeError);
    expect(() => new TokenBucket({ ratePerSec: 1, burst: 0, clock: clock() })).toThrow(RangeError);
  });
});
