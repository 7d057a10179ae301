/**
 * Publish authentication and abuse limits for the origin's ingest and channel API.
 *
 * Stream keys and the admin token are compared in constant time (SHA-256 of both sides, then
 * timingSafeEqual, so neither the content nor the length leaks through timing) and are never
 * logged: callers log the outcome ('missing', 'wrong'), never the value.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export type AuthResult = 'ok' | 'missing' | 'wrong' | 'disabled';

export function secretsEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string | string[] | undefined): string | null {
  if (typeof header !== 'string') return null;
  const m = /^Bearer[ \t]+(\S{1,512})[ \t]*$/i.exec(header);
  return m ? m[1] : null;
}

/** Checks a presented secret against the expected one; `disabled` when none is configured. */
export function checkSecret(given: string | null | undefined, expected: string | undefined): AuthResult {
  if (!expected) return 'disabled';
  if (given === null || given === undefined || given === '') return 'missing';
  return secretsEqual(given, expected) ? 'ok' : 'wrong';
}

/** HTTP status of a failed check: 401 (no credentials: ask for them), 403 (wrong, or publishing disabled). */
export function authStatus(r: Exclude<AuthResult, 'ok'>): 401 | 403 {
  return r === 'missing' ? 401 : 403;
}

/** A fresh stream key: 24 random bytes, base64url (32 characters). */
export function generateStreamKey(): string {
  return randomBytes(24).toString('base64url');
}

/** A usable stream key: 8..128 printable characters without spaces, '?', '&', '/' or '#'. */
export function isValidStreamKey(k: unknown): k is string {
  return typeof k === 'string' && /^[A-Za-z0-9._~+=:@!$*,;-]{8,128}$/.test(k);
}

/**
 * Token buckets keyed by e.g. client address. Bounded: at most `maxKeys` buckets are kept (the
 * stalest are dropped first), so a flood of addresses cannot grow memory without limit.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    private readonly maxKeys = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  take(key: string): boolean {
    const t = this.now();
    let b = this.buckets.get(key);
    if (b) {
      this.buckets.delete(key);
      b.tokens = Math.min(this.burst, b.tokens + ((t - b.at) / 1000) * this.ratePerSec);
      b.at = t;
    } else {
      b = { tokens: this.burst, at: t };
      while (this.buckets.size >= this.maxKeys) {
        const oldest = this.buckets.keys().next().value as string;
        this.buckets.delete(oldest);
      }
    }
    this.buckets.set(key, b); // re-inserted: Map order = least recently used first
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}
