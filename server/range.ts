/**
 * HTTP Range (RFC 9110 §14) for single byte ranges, which is all the engine's HTTP fallback and
 * hls.js send. Returns the inclusive byte range to serve, 'unsatisfiable' (→ 416) for a malformed
 * or out-of-bounds bytes range, or null to serve the whole body (no Range header, another unit,
 * or several ranges, which RFC 9110 allows a server to ignore).
 */
export type RangeResult = { start: number; end: number } | 'unsatisfiable' | null;

export function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return null;
  const h = header.trim();
  const unit = /^([A-Za-z]+)=(.*)$/.exec(h);
  if (!unit) return 'unsatisfiable';
  if (unit[1].toLowerCase() !== 'bytes') return null;
  const spec = unit[2].trim();
  if (spec.includes(',')) return null;
  const m = /^(\d*)-(\d*)$/.exec(spec);
  if (!m || (m[1] === '' && m[2] === '')) return 'unsatisfiable';
  if (m[1] === '') {
    // suffix: the last N bytes
    const n = Number(m[2]);
    if (!Number.isSafeInteger(n) || n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  if (!Number.isSafeInteger(start) || start >= size) return 'unsatisfiable';
  if (m[2] === '') return { start, end: size - 1 };
  const end = Number(m[2]);
  if (!Number.isSafeInteger(end) || end < start) return 'unsatisfiable';
  return { start, end: Math.min(end, size - 1) };
}
