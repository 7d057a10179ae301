import { describe, expect, it } from 'vitest';
import type { PeerKind } from '../../../peer/core/types.js';
import { Registry, shuffle } from '../../../tracker/registry.js';
import { seeded } from './helpers.js';

function fill(reg: Registry<null>, channel: string, counts: Partial<Record<PeerKind, number>>) {
  for (const kind of ['origin', 'seeder', 'browser'] as const) {
    for (let i = 0; i < (counts[kind] ?? 0); i++) reg.add({ peerId: `${kind}-${i}-xxxx`, kind, channel, joinedAt: 0, conn: null });
  }
}

describe('Registry', () => {
  it('adds, finds, counts and removes peers per channel', () => {
    const reg = new Registry<null>();
    fill(reg, 'a', { origin: 1, seeder: 2, browser: 3 });
    fill(reg, 'b', { browser: 1 });
    expect(reg.size).toBe(7);
    expect(reg.counts('a')).toEqual({ origin: 1, seeder: 2, browser: 3 });
    expect(reg.channelNames().sort()).toEqual(['a', 'b']);
    expect(() => reg.add({ peerId: 'browser-0-xxxx', kind: 'browser', channel: 'a', joinedAt: 0, conn: null })).toThrow();
    const rec = reg.get('a', 'browser-1-xxxx')!;
    expect(reg.remove(rec)).toBe(true);
    expect(reg.remove(rec)).toBe(false);
    expect(reg.has('a', 'browser-1-xxxx')).toBe(false);
    expect(reg.counts('a').browser).toBe(2);
    reg.remove(reg.get('b', 'browser-0-xxxx')!);
    expect(reg.channelNames()).toEqual(['a']);
    expect(reg.size).toBe(5);
  });

  it('does not remove a newer record with the same id', () => {
    const reg = new Registry<null>();
    const old = reg.add({ peerId: 'same-id-123', kind: 'browser', channel: 'a', joinedAt: 0, conn: null });
    reg.remove(old);
    reg.add({ peerId: 'same-id-123', kind: 'browser', channel: 'a', joinedAt: 1, conn: null });
    expect(reg.remove(old)).toBe(false);
    expect(reg.has('a', 'same-id-123')).toBe(true);
  });

  it('samples at most maxInfra origin/seeders, fills with browsers, excludes the requester', () => {
    const reg = new Registry<null>();
    fill(reg, 'a', { origin: 1, seeder: 5, browser: 50 });
    const random = seeded(1);
    for (let round = 0; round < 200; round++) {
      const s = reg.sample('a', { exclude: 'browser-7-xxxx', max: 10, maxInfra: 2, random });
      expect(s).toHaveLength(10);
      expect(new Set(s.map((p) => p.peerId)).size).toBe(10);
      expect(s.filter((p) => p.kind !== 'browser')).toHaveLength(2);
      expect(s.some((p) => p.peerId === 'browser-7-xxxx')).toBe(false);
    }
  });

  it('returns everyone else when the channel is small, and never pads with more infra', () => {
    const reg = new Registry<null>();
    fill(reg, 'a', { origin: 1, seeder: 3, browser: 2 });
    const s = reg.sample('a', { exclude: 'browser-0-xxxx', max: 10, maxInfra: 2, random: seeded(2) });
    expect(s.filter((p) => p.kind !== 'browser')).toHaveLength(2);
    expect(s).toHaveLength(3);
    expect(s.filter((p) => p.kind === 'browser').map((p) => p.peerId)).toEqual(['browser-1-xxxx']);
    expect(reg.sample('nope', { max: 10, maxInfra: 2, random: seeded(3) })).toEqual([]);
    expect(reg.sample('a', { max: 0, maxInfra: 2, random: seeded(3) })).toEqual([]);
  });

  it('samples roughly uniformly (sparse and dense paths)', () => {
    const reg = new Registry<null>();
    fill(reg, 'big', { browser: 1000 });
    fill(reg, 'small', { browser: 12 });
    const random = seeded(42);
    for (const [channel, n, rounds] of [['big', 1000, 5000], ['small', 12, 3000]] as const) {
      const hits = new Map<string, number>();
      for (let r = 0; r < rounds; r++) {
        for (const p of reg.sample(channel, { max: 10, maxInfra: 2, random })) hits.set(p.peerId, (hits.get(p.peerId) ?? 0) + 1);
      }
      const expected = (rounds * 10) / n;
      expect(hits.size).toBe(n);
      for (const v of hits.values()) {
        expect(v).toBeGreaterThan(expected * 0.4);
        expect(v).toBeLessThan(expected * 1.8);
      }
    }
  });

  it('shuffles the sample (infra peers are not always first)', () => {
    const reg = new Registry<null>();
    fill(reg, 'a', { origin: 1, browser: 20 });
    const random = seeded(7);
    const positions = new Set<number>();
    for (let r = 0; r < 100; r++) positions.add(reg.sample('a', { max: 10, maxInfra: 2, random }).findIndex((p) => p.kind === 'origin'));
    expect(positions.size).toBeGreaterThan(5);
  });

  it('shuffle is a permutation', () => {
    const a = Array.from({ length: 50 }, (_, i) => i);
    expect(shuffle(a.slice(), seeded(9)).sort((x, y) => x - y)).toEqual(a);
  });
});
