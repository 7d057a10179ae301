/** The NAT-pair table, ordering and per-pair tallies (tracker/nat.ts), and the discovery classifier. */
import { describe, expect, it } from 'vitest';
import { NAT_TYPES, NatPairStats, NatTracker, orderByNat, pairLabel, predictPair, toNatType, type NatType } from '../../../tracker/nat.js';
import { classifyNat, stunServerOf } from '../../../peer/node/nat-discovery.js';
import { Registry } from 'prom-client';

describe('NAT-pair table', () => {
  it('matches the hole-punching literature on the classic pairs', () => {
    const cones: NatType[] = ['open', 'full-cone', 'restricted-cone', 'port-restricted'];
    for (const a of cones) for (const b of cones) expect(predictPair(a, b), `${a}|${b}`).toBe('direct');
    expect(predictPair('symmetric', 'symmetric')).toBe('relay');
    expect(predictPair('symmetric', 'port-restricted')).toBe('relay');
    expect(predictPair('port-restricted', 'symmetric')).toBe('relay');
    expect(predictPair('symmetric', 'firewall')).toBe('relay');
    expect(predictPair('symmetric', 'restricted-cone')).toBe('direct');
    expect(predictPair('symmetric', 'full-cone')).toBe('direct');
    expect(predictPair('symmetric', 'open')).toBe('direct');
    expect(predictPair('udp-blocked', 'open')).toBe('relay');
    expect(predictPair('unknown', 'symmetric')).toBe('unknown');
  });

  it('is symmetric in its arguments and total over every pair of labels', () => {
    for (const a of NAT_TYPES) for (const b of NAT_TYPES) {
      expect(predictPair(a, b)).toBe(predictPair(b, a));
      expect(pairLabel(a, b)).toBe(pairLabel(b, a));
    }
    expect(toNatType('symmetric')).toBe('symmetric');
    expect(toNatType('weird')).toBe('unknown');
    expect(toNatType(undefined)).toBe('unknown');
  });

  it('orders candidates direct > unknown > relay, stable within a class, relay-only kept last', () => {
    const nat: Record<string, NatType> = { a: 'symmetric', b: 'full-cone', c: 'unknown', d: 'port-restricted', e: 'open' };
    const out = orderByNat('symmetric', ['a', 'b', 'c', 'd', 'e'], (x) => nat[x]);
    expect(out).toEqual(['b', 'e', 'c', 'a', 'd']);
    expect(orderByNat('unknown', ['a', 'b', 'c'], (x) => nat[x])).toEqual(['a', 'b', 'c']);
  });

  it('tallies attempts and outcomes per unordered pair', () => {
    const seen: string[] = [];
    const s = new NatPairStats((p, w) => seen.push(`${p}:${w}`));
    s.attempt('symmetric', 'port-restricted');
    s.attempt('port-restricted', 'symmetric');
    s.outcome('symmetric', 'port-restricted', 'relayed');
    s.outcome('full-cone', 'full-cone', 'direct');
    expect(s.snapshot()).toEqual({
      'port-restricted|symmetric': { attempts: 2, direct: 0, relayed: 1, failed: 0 },
      'full-cone|full-cone': { attempts: 0, direct: 1, relayed: 0, failed: 0 },
    });
    expect(seen).toContain('port-restricted|symmetric:relayed');
  });

  it('NatTracker: learns NAT types from reports, prefers compatible peers, counts each link once', async () => {
    const recs = new Map<string, { peerId: string; channel: string }>();
    for (const id of ['me', 'p1', 'p2', 'p3', 'p4']) recs.set(id, { peerId: id, channel: 'c' });
    const registry = new Registry();
    const t = new NatTracker({ registry: { get: (_c, id) => recs.get(id) }, metrics: { registry } });
    t.noteReport(recs.get('me')!, { nat: 'symmetric' });
    t.noteReport(recs.get('p1')!, { nat: 'port-restricted' });
    t.noteReport(recs.get('p2')!, { nat: 'full-cone' });
    t.noteReport(recs.get('p3')!, { nat: 'symmetric' });
    // p4 never reported: unknown
    const sample = ['p1', 'p2', 'p3', 'p4'].map((peerId) => ({ peerId, kind: 'browser' as const }));
    let asked = 0;
    const got = t.prefer(recs.get('me')!, 2, (n) => ((asked = n), sample));
    expect(asked).toBe(6);
    expect(got.map((p) => p.peerId)).toEqual(['p2', 'p4']);
    t.noteOffer(recs.get('me')!, recs.get('p3')!);
    t.noteReport(recs.get('me')!, { links: [{ peerId: 'p3', relayed: true }, { peerId: 'p2' }] });
    t.noteReport(recs.get('p3')!, { links: [{ peerId: 'me', relayed: true }] }); // the same connection, from the other side
    t.noteReport(recs.get('me')!, { links: [{ peerId: 'p3', relayed: true }] }); // reported again
    expect(t.pairs.snapshot()['symmetric|symmetric']).toEqual({ attempts: 1, direct: 0, relayed: 1, failed: 0 });
    expect(t.pairs.snapshot()['full-cone|symmetric']).toEqual({ attempts: 0, direct: 1, relayed: 0, failed: 0 });
    const text = await registry.metrics();
    expect(text).toContain('starling_tracker_nat_pair_attempts_total{pair="symmetric|symmetric"} 1');
    expect(text).toContain('starling_tracker_nat_pair_outcomes_total{pair="symmetric|symmetric",outcome="relayed"} 1');
  });
});

describe('NAT discovery classifier', () => {
  it('maps RFC 5780 behaviours to labels', () => {
    expect(classifyNat('none', 'endpoint-independent')).toBe('open');
    expect(classifyNat('none', 'address-and-port-dependent')).toBe('firewall');
    expect(classifyNat('endpoint-independent', 'endpoint-independent')).toBe('full-cone');
    expect(classifyNat('endpoint-independent', 'address-dependent')).toBe('restricted-cone');
    expect(classifyNat('endpoint-independent', 'address-and-port-dependent')).toBe('port-restricted');
    expect(classifyNat('address-and-port-dependent', 'address-and-port-dependent')).toBe('symmetric');
    expect(classifyNat('address-dependent', 'endpoint-independent')).toBe('symmetric');
    expect(classifyNat('unknown', 'unknown')).toBe('unknown');
    expect(classifyNat('unknown', 'unknown', false)).toBe('udp-blocked');
  });

  it('finds the STUN server in a welcome', () => {
    expect(stunServerOf([{ urls: 'turn:1.2.3.4:3478?transport=udp', username: 'u', credential: 'c' }, { urls: 'stun:198.51.100.1:3478' }])).toEqual({ host: '198.51.100.1', port: 3478 });
    expect(stunServerOf([{ urls: ['stun:[::1]:5000'] }])).toEqual({ host: '::1', port: 5000 });
    expect(stunServerOf([{ urls: 'stun:example.org' }])).toEqual({ host: 'example.org', port: 3478 });
    expect(stunServerOf([])).toBeNull();
  });
});
