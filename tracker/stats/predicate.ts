/**
 * Filter predicates over feed events (pure; used by the tracker's live feed and the dashboard).
 * In the spirit of the global event model: a listener subscribes with a predicate and sees only
 * the events that satisfy it.
 *
 * Syntax: whitespace-separated terms, all of which must hold.
 *   type:ban,leave     field equals one of the values (case-insensitive)
 *   -type:link-up      negation (also `type!=link-up`)
 *   value>1000         numeric comparison: > >= < <=  (on `value`, `t` or `id`)
 *   b3f9               a bare word: substring of the type, text, peer ids or channel
 * Fields: type, channel, peer (peerId or other), kind, other, text, value, t, id.
 */
import type { FeedEvent } from './types.js';

export type EventPredicate = (e: FeedEvent) => boolean;
export type ParsedPredicate = { ok: true; test: EventPredicate; terms: number } | { ok: false; error: string };

const FIELDS = new Set(['type', 'channel', 'peer', 'kind', 'other', 'text', 'value', 't', 'id']);
const NUMERIC = new Set(['value', 't', 'id']);
export const PREDICATE_MAX_LENGTH = 512;

function fieldValues(e: FeedEvent, field: string): string[] {
  switch (field) {
    case 'type': return [e.type];
    case 'channel': return [e.channel];
    case 'peer': return [e.peerId ?? '', e.other ?? ''];
    case 'kind': return [e.kind ?? ''];
    case 'other': return [e.other ?? ''];
    case 'text': return [e.text];
    default: return [String((e as unknown as Record<string, unknown>)[field] ?? '')];
  }
}

function numberOf(e: FeedEvent, field: string): number | undefined {
  const v = field === 'value' ? e.value : field === 't' ? e.t : field === 'id' ? e.id : undefined;
  return typeof v === 'number' ? v : undefined;
}

/** Parses a filter; an empty filter matches everything. */
export function parsePredicate(source: string): ParsedPredicate {
  if (typeof source !== 'string') return { ok: false, error: 'filter must be a string' };
  if (source.length > PREDICATE_MAX_LENGTH) return { ok: false, error: `filter longer than ${PREDICATE_MAX_LENGTH} characters` };
  const tests: EventPredicate[] = [];
  for (const raw of source.trim().split(/\s+/).filter(Boolean)) {
    let term = raw;
    let negate = false;
    if (term.startsWith('-') && term.length > 1) {
      negate = true;
      term = term.slice(1);
    }
    const cmp = /^([a-z]+)(>=|<=|>|<)(-?\d+(?:\.\d+)?)$/i.exec(term);
    const eq = /^([a-z]+)(:|!=|=)(.*)$/i.exec(term);
    let t: EventPredicate;
    if (cmp) {
      const [, f, op, num] = cmp;
      const field = f.toLowerCase();
      if (!NUMERIC.has(field)) return { ok: false, error: `'${field}' is not a numeric field (value, t, id)` };
      const n = Number(num);
      t = (e) => {
        const v = numberOf(e, field);
        if (v === undefined) return false;
        return op === '>' ? v > n : op === '>=' ? v >= n : op === '<' ? v < n : v <= n;
      };
    } else if (eq && FIELDS.has(eq[1].toLowerCase())) {
      const field = eq[1].toLowerCase();
      if (eq[2] === '!=') negate = !negate;
      const wanted = eq[3].toLowerCase().split(',').filter(Boolean);
      if (wanted.length === 0) return { ok: false, error: `no value for '${field}'` };
      t = (e) => fieldValues(e, field).some((v) => wanted.includes(v.toLowerCase()));
    } else if (eq) {
      return { ok: false, error: `unknown field '${eq[1]}' (type, channel, peer, kind, other, text, value, t, id)` };
    } else {
      const word = term.toLowerCase();
      t = (e) =>
        e.type.includes(word) || e.text.toLowerCase().includes(word) || e.channel.includes(word) ||
        (e.peerId ?? '').toLowerCase().includes(word) || (e.other ?? '').toLowerCase().includes(word);
    }
    tests.push(negate ? (e) => !t(e) : t);
  }
  return { ok: true, terms: tests.length, test: (e) => tests.every((t) => t(e)) };
}
