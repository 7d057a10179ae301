import { describe, expect, it } from 'vitest';
import { parseRange } from '../../../server/range.js';

describe('parseRange', () => {
  const size = 1000;
  it('no header: whole body', () => expect(parseRange(undefined, size)).toBeNull());
  it('closed range', () => expect(parseRange('bytes=0-99', size)).toEqual({ start: 0, end: 99 }));
  it('closed range clamped to the size', () => expect(parseRange('bytes=900-5000', size)).toEqual({ start: 900, end: 999 }));
  it('open-ended', () => expect(parseRange('bytes=500-', size)).toEqual({ start: 500, end: 999 }));
  it('suffix', () => expect(parseRange('bytes=-100', size)).toEqual({ start: 900, end: 999 }));
  it('suffix longer than the body', () => expect(parseRange('bytes=-5000', size)).toEqual({ start: 0, end: 999 }));
  it('whitespace and case', () => expect(parseRange(' Bytes=1-1 ', size)).toEqual({ start: 1, end: 1 }));
  it.each([
    'bytes=1000-', 'bytes=1000-1001', 'bytes=5-4', 'bytes=-0', 'bytes=-', 'bytes=abc', 'bytes=1-2-3', 'garbage', 'bytes=1.5-2',
  ])('unsatisfiable or malformed: %s', (h) => expect(parseRange(h, size)).toBe('unsatisfiable'));
  it('a range on an empty body is unsatisfiable', () => expect(parseRange('bytes=0-', 0)).toBe('unsatisfiable'));
  it('other units and multiple ranges are ignored (whole body)', () => {
    expect(parseRange('items=0-1', size)).toBeNull();
    expect(parseRange('bytes=0-1,5-6', size)).toBeNull();
  });
});
