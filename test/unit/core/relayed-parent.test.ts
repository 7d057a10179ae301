/**
 * Issue 8: a child prefers direct parents. A neighbor whose Link reports `relayed: true` (its
 * connection goes through a TURN relay) is asked for an upload slot only when no direct neighbor
 * qualifies. Deterministic: fake clock, in-memory links, seeded randomness.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { Engine } from '../../../peer/core/engine.js';
import { RevokeReason } from '../../../peer/core/codec.js';
import { FakeClock, makeEngine, makeKey, MemNet, RawPeer, type EngineEnv } from './helpers.js';

const key = makeKey();
const R = '360p';

let env: EngineEnv;
beforeEach(() => {
  env = { clock: new FakeClock(), net: new MemNet(), key };
});

const viewer = (id: string) => makeEngine(env, { peerId: id, kind: 'browser', interest: 'following' }, 7);

/** A scripted neighbor announcing (depth, free slots) in R; `relayed` marks the engine's side of the link. */
function neighbor(child: Engine, id: string, depth: number, freeSlots: number, relayed: boolean | undefined): RawPeer {
  const p = new RawPeer(env.net, id, child);
  // The engine holds the other end of the pair: that is the Link whose `relayed` it reads.
  (p.link.peer as { relayed?: boolean }).relayed = relayed;
  p.hello('seeder');
  p.send({ type: 'status', rendition: R, depth, freeSlots });
  return p;
}

async function run(e: Engine, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 50) {
    env.clock.advance(50);
    e.tick();
    await env.net.settle();
  }
}

// The engine asks for a slot as soon as it wants a rendition and knows a feed: the tests let every
// neighbor's STATUS arrive first, then set the playback position.
const asked = (p: RawPeer) => p.of('slot-request').filter((f) => f.rendition === R).length;

describe('parent choice: direct before relayed (TURN) neighbors', () => {
  it('asks a direct neighbor even when a relayed one is shallower and has free slots', async () => {
    const v = viewer('viewer-a');
    const relayed = neighbor(v, 'relayed-1', 0, 4, true);
    const direct = neighbor(v, 'direct-1', 2, 0, false); // deeper and full: still preferred
    await env.net.settle();
    v.setPlaybackPosition({ rendition: R, seq: 1 }); // every status is known when it starts looking
    await run(v, 200);
    expect(asked(direct)).toBe(1);
    expect(asked(relayed)).toBe(0);
  });

  it('a neighbor whose relayed state is unknown counts as direct', async () => {
    const v = viewer('viewer-b');
    const relayed = neighbor(v, 'relayed-1', 0, 4, true);
    const unknown = neighbor(v, 'plain-1', 1, 1, undefined);
    await env.net.settle();
    v.setPlaybackPosition({ rendition: R, seq: 1 }); // every status is known when it starts looking
    await run(v, 200);
    expect(asked(unknown)).toBe(1);
    expect(asked(relayed)).toBe(0);
  });

  it('uses a relayed neighbor when no direct one qualifies', async () => {
    const v = viewer('viewer-c');
    const relayed = neighbor(v, 'relayed-1', 1, 2, true);
    const direct = new RawPeer(env.net, 'direct-1', v); // direct, but announces no feed in R
    (direct.link.peer as { relayed?: boolean }).relayed = false;
    direct.hello('browser');
    await env.net.settle();
    v.setPlaybackPosition({ rendition: R, seq: 1 }); // every status is known when it starts looking
    await run(v, 200);
    expect(asked(relayed)).toBe(1);
    expect(asked(direct)).toBe(0);
    relayed.send({ type: 'slot-grant', rendition: R, depth: 1, timestamp: 1 });
    await env.net.settle();
    expect(v.links().parents).toEqual({ [R]: 'relayed-1' });
  });

  it('falls back to the relayed neighbor when the direct one refuses, and among relayed ones keeps the usual order', async () => {
    const v = viewer('viewer-d');
    const deepRelayed = neighbor(v, 'relayed-deep', 2, 3, true);
    const shallowRelayed = neighbor(v, 'relayed-shallow', 0, 3, true);
    const direct = neighbor(v, 'direct-1', 1, 1, false);
    await env.net.settle();
    v.setPlaybackPosition({ rendition: R, seq: 1 }); // every status is known when it starts looking
    await run(v, 200);
    expect(asked(direct)).toBe(1);
    direct.send({ type: 'slot-revoke', rendition: R, reason: RevokeReason.full });
    await env.net.settle(); // the refusal makes it look again at once
    expect(asked(shallowRelayed)).toBe(1);
    expect(asked(deepRelayed)).toBe(0);
    expect(asked(direct)).toBe(1);
  });
});
