/**
 * Upload-tree rules: loop prevention by the ancestor filter in STATUS, capacity in the slot
 * priority, the origin giving its few slots to the peers that can feed most, and the tracker
 * optimizer's parent assignments (make-before-break). Deterministic: fake clock, in-memory links.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { Engine } from '../../../peer/core/engine.js';
import { RevokeReason } from '../../../peer/core/codec.js';
import { childAncestors, emptyAncestors, mayContain } from '../../../peer/core/ancestors.js';
import { comparePriority } from '../../../peer/core/slots.js';
import { FakeClock, makeEngine, makeKey, MemNet, RawPeer, type EngineEnv } from './helpers.js';

const key = makeKey();
const R = '360p';

let env: EngineEnv;
beforeEach(() => { env = { clock: new FakeClock(), net: new MemNet(), key }; });

const viewer = (id: string, extra = {}) => makeEngine(env, { peerId: id, kind: 'browser', interest: 'following', ...extra }, id.length * 7 + id.charCodeAt(id.length - 1));
const origin = (extra = {}) => makeEngine(env, { peerId: 'origin-1', kind: 'origin', interest: 'none', ...extra }, 11);

async function run(ms: number, ...engines: Engine[]) {
  for (let t = 0; t < ms; t += 50) {
    env.clock.advance(50);
    for (const e of engines) e.tick();
    await env.net.settle();
  }
}

function fedPeer(child: Engine, id: string, depth: number, ancestors = emptyAncestors(), capacity = 4): RawPeer {
  const p = new RawPeer(env.net, id, child);
  p.hello('browser');
  p.send({ type: 'status', rendition: R, depth, freeSlots: capacity, capacity, ancestors });
  return p;
}

describe('ancestor filter', () => {
  it('has no false negatives along a chain of 30 ancestors', () => {
    let f = emptyAncestors();
    const ids = Array.from({ length: 30 }, (_, i) => `peer-${i}`);
    for (const id of ids) f = childAncestors(f, id);
    for (const id of ids) expect(mayContain(f, id)).toBe(true);
    expect(mayContain(emptyAncestors(), 'peer-1')).toBe(false);
  });

  it('a peer never asks a neighbor whose ancestors include it (its descendant) for a slot', async () => {
    const a = viewer('viewer-a');
    a.setPlaybackPosition({ rendition: R, seq: 1 });
    // d announces depth 2 through a: taking it as parent would close a cycle
    const d = fedPeer(a, 'desc-1', 2, childAncestors(childAncestors(null, 'origin-1'), 'viewer-a'));
    await run(500, a);
    expect(d.of('slot-request')).toHaveLength(0);
    // an unrelated neighbor at the same depth is asked
    const u = fedPeer(a, 'other-1', 2, childAncestors(childAncestors(null, 'origin-1'), 'someone'));
    await run(500, a);
    expect(u.of('slot-request')).toHaveLength(1);
  });

  it('a parent refuses a slot to its own ancestor', async () => {
    const a = viewer('viewer-a');
    a.setPlaybackPosition({ rendition: R, seq: 1 });
    const p = fedPeer(a, 'parent-1', 0);
    await run(100, a);
    p.send({ type: 'slot-grant', rendition: R, depth: 0, timestamp: 1 });
    // our parent's parent (grand-1) asks us for a slot: it is in our ancestor filter
    p.send({ type: 'status', rendition: R, depth: 1, freeSlots: 3, capacity: 4, ancestors: childAncestors(null, 'grand-1') });
    await env.net.settle();
    const g = new RawPeer(env.net, 'grand-1', a);
    g.hello('browser');
    g.send({ type: 'slot-request', rendition: R, deadlineMs: 0, timestamp: 5, capacity: 4 });
    await env.net.settle();
    expect(g.of('slot-revoke').map((f) => f.reason)).toEqual([RevokeReason.cycle]);
  });
});

describe('capacity and assignment in the slot priority', () => {
  it('orders assigned first, then capacity class, then deadline', () => {
    const base = { deadlineMs: 0, timestamp: 1, peerId: 'a' };
    expect(comparePriority({ ...base, assigned: true, capacityClass: 0 }, { ...base, capacityClass: 2, peerId: 'b' })).toBeLessThan(0);
    expect(comparePriority({ ...base, capacityClass: 2, deadlineMs: 5000 }, { ...base, capacityClass: 0, peerId: 'b' })).toBeLessThan(0);
    expect(comparePriority({ ...base, capacityClass: 1 }, { ...base, capacityClass: 1, deadlineMs: 250, peerId: 'b' })).toBeLessThan(0);
  });

  it('the origin displaces a child that cannot feed anyone for one that can, and not the other way round', async () => {
    const o = origin();
    const leaf = new RawPeer(env.net, 'leaf-1', o);
    leaf.hello('browser');
    leaf.send({ type: 'status', rendition: R, depth: 255, freeSlots: 0, capacity: 0, ancestors: emptyAncestors() });
    leaf.send({ type: 'slot-request', rendition: R, deadlineMs: 0, timestamp: 1, capacity: 0 });
    await env.net.settle();
    expect(leaf.of('slot-grant')).toHaveLength(1);
    const big = new RawPeer(env.net, 'big-1', o);
    big.hello('browser');
    big.send({ type: 'status', rendition: R, depth: 255, freeSlots: 6, capacity: 6, ancestors: emptyAncestors() });
    big.send({ type: 'slot-request', rendition: R, deadlineMs: 60_000, timestamp: 9, capacity: 6 });
    await env.net.settle();
    expect(big.of('slot-grant')).toHaveLength(1);
    expect(leaf.of('slot-revoke').map((f) => f.reason)).toEqual([RevokeReason.preempted]);
    // an urgent newcomer with less capacity does not unseat the subtree's root
    const small = new RawPeer(env.net, 'small-1', o);
    small.hello('browser');
    small.send({ type: 'status', rendition: R, depth: 255, freeSlots: 1, capacity: 1, ancestors: emptyAncestors() });
    small.send({ type: 'slot-request', rendition: R, deadlineMs: 0, timestamp: 10, capacity: 1 });
    await env.net.settle();
    expect(small.of('slot-revoke').map((f) => f.reason)).toEqual([RevokeReason.full]);
    expect(big.of('slot-revoke')).toHaveLength(0);
  });
});

describe('optimizer assignments', () => {
  it('moves to the assigned parent make-before-break, and stays there', async () => {
    const a = viewer('viewer-a');
    a.setPlaybackPosition({ rendition: R, seq: 1 });
    const p = fedPeer(a, 'parent-1', 3);
    await run(100, a);
    expect(p.of('slot-request')).toHaveLength(1);
    p.send({ type: 'slot-grant', rendition: R, depth: 3, timestamp: 1 });
    await env.net.settle();
    expect(a.links().parents[R]).toBe('parent-1');
    const q = fedPeer(a, 'assigned-1', 1, emptyAncestors(), 0); // full: the assignment outranks its holders
    await env.net.settle();
    a.assignParent(R, 'assigned-1');
    await env.net.settle();
    const asks = q.of('slot-request');
    expect(asks).toHaveLength(1);
    expect(asks[0].assigned).toBe(true);
    expect(a.links().parents[R]).toBe('parent-1'); // the old link stays until the new one is granted
    expect(p.of('slot-revoke')).toHaveLength(0);
    q.send({ type: 'slot-grant', rendition: R, depth: 1, timestamp: 2 });
    await env.net.settle();
    expect(a.links().parents[R]).toBe('assigned-1');
    expect(p.of('slot-revoke').map((f) => f.reason)).toEqual([RevokeReason.released]);
    await run(10_000, a); // no upgrade or other move away from an assigned parent
    expect(a.links().parents[R]).toBe('assigned-1');
  });

  it('an assignment the parent keeps refusing expires and local choice resumes', async () => {
    const a = viewer('viewer-a');
    a.setPlaybackPosition({ rendition: R, seq: 1 });
    const q = fedPeer(a, 'assigned-1', 1);
    const other = fedPeer(a, 'other-1', 2);
    a.assignParent(R, 'assigned-1');
    await env.net.settle();
    for (let i = 0; i < 20; i++) {
      q.send({ type: 'slot-revoke', rendition: R, reason: RevokeReason.full });
      await run(500, a);
    }
    const retries = q.of('slot-request').length;
    expect(retries).toBeGreaterThan(1);
    expect(retries).toBeLessThanOrEqual(10); // at most one ask per second over 8 s, never a tight loop
    expect(other.of('slot-request').length).toBeGreaterThan(0);
  });

  it('rejects malformed assignments', () => {
    const a = viewer('viewer-a');
    expect(() => a.assignParent('bad rendition!', 'x')).toThrow(TypeError);
    expect(() => a.assignParent(R, '')).toThrow(TypeError);
    expect(() => a.assignParent(R, 'viewer-a')).toThrow(TypeError);
  });
});
