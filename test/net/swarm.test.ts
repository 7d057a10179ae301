/**
 * Integration: tracker + origin (real ffmpeg, signed segments, root peer) + 5 werift viewers on
 * the namespace's network for ~30 s of live stream. Each viewer plays one rendition the way a
 * player does (asks for every new segment with a deadline a few seconds ahead); every segment it
 * gets must be byte-identical to the origin's, and viewers must get bytes from each other.
 * Then a poisoning peer joins: its corrupted pieces are caught and never delivered.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { performance } from 'node:perf_hooks';
import { createWeriftTransport } from '../../peer/transport/werift-transport.js';
import type { Transport } from '../../peer/transport/transport-api.js';
import { decodeFrame, encodeFrame } from '../../peer/core/codec.js';
import { INIT_SEQ, type SegmentRef } from '../../peer/core/types.js';
import type { NodePeer } from '../../peer/node/node-peer.js';
import { hex, sleep, startPlatform, type Platform } from './platform.js';

const CHANNEL = 'itest';
const PLAY_SECONDS = 30;
/** A player ~3 segments behind the edge has about this much time to get a new segment. */
const DEADLINE_MS = 4000;

interface ViewerTally {
  segments: number;
  mismatches: string[];
  failures: string[];
  bySource: Record<string, number>;
}

/** Plays one rendition: every new segment the origin announces is loaded by its deadline. */
function playAlong(platform: Platform, peer: NodePeer, rendition: string, tally: ViewerTally): () => void {
  const originBytes = (ref: SegmentRef) => platform.origin.window.get(ref);
  let first = true;
  return platform.origin.onSegment(({ ref, data }) => {
    if (ref.rendition !== rendition || ref.seq === INIT_SEQ) return;
    const wanted = [ref];
    if (first) wanted.unshift({ rendition, seq: INIT_SEQ });
    first = false;
    const expected = new Map<number, string>([[ref.seq, hex(data)]]);
    for (const r of wanted) {
      if (r.seq !== INIT_SEQ) peer.engine.setPlaybackPosition(r);
      peer.engine
        .loadSegment(r, { deadline: performance.now() + DEADLINE_MS })
        .then((res) => {
          tally.segments++;
          for (const [src, n] of Object.entries(res.bytesBySource)) tally.bySource[src] = (tally.bySource[src] ?? 0) + n;
          const want = expected.get(r.seq) ?? (originBytes(r) ? hex(originBytes(r)!.data) : undefined);
          if (want !== undefined && hex(res.data) !== want) tally.mismatches.push(`${r.rendition}/${r.seq}`);
        })
        .catch((err) => tally.failures.push(`${r.rendition}/${r.seq}: ${String(err)}`));
    }
  });
}

function corruptingTransport(inner: Transport, counter: { corrupted: number }): Transport {
  return {
    name: `${inner.name}+poison`,
    connect(opts) {
      return inner.connect({
        ...opts,
        onLink(link) {
          const send = link.send.bind(link);
          link.send = (frame: Uint8Array) => {
            const f = decodeFrame(frame);
            if (f.ok && f.frame.type === 'piece') {
              const data = f.frame.data.slice();
              data[data.length >> 1] ^= 0xff;
              counter.corrupted++;
              return send(encodeFrame({ ...f.frame, data }));
            }
            return send(frame);
          };
          opts.onLink(link);
        },
      });
    },
  };
}

describe('live swarm of werift peers', () => {
  let platform: Platform;
  const viewers: { peer: NodePeer; tally: ViewerTally }[] = [];

  beforeAll(async () => {
    platform = await startPlatform({ channel: CHANNEL });
    // Wait for the first segments so peers join a running stream.
    const t0 = Date.now();
    while (platform.origin.stats().segmentsPublished < 3 && Date.now() - t0 < 30_000) await sleep(200);
  });

  afterAll(async () => {
    await platform?.stop();
  });

  it('5 viewers get every segment byte-identical, partly from each other', async () => {
    const renditions = platform.origin.info.renditions.map((r) => r.name);
    for (let i = 0; i < 5; i++) {
      const peer = await platform.peer('browser');
      const tally: ViewerTally = { segments: 0, mismatches: [], failures: [], bySource: {} };
      playAlong(platform, peer, renditions[i % renditions.length], tally);
      viewers.push({ peer, tally });
    }
    await sleep(PLAY_SECONDS * 1000);
    await sleep(DEADLINE_MS + 1000); // let the last loads finish

    const totals: Record<string, number> = {};
    for (const { tally } of viewers) for (const [s, n] of Object.entries(tally.bySource)) totals[s] = (totals[s] ?? 0) + n;
    const all = Object.values(totals).reduce((a, b) => a + b, 0);
    const offload = (totals.peer ?? 0) / all;
    console.log(`[swarm] bytes by source ${JSON.stringify(totals)}; offload (from non-origin peers) ${(offload * 100).toFixed(1)}%;` +
      ` per viewer: ${viewers.map((v) => `${v.tally.segments} segs`).join(', ')}`);
    for (const { tally } of viewers) {
      expect(tally.mismatches).toEqual([]);
      expect(tally.failures).toEqual([]);
      expect(tally.segments).toBeGreaterThanOrEqual(PLAY_SECONDS / 2 - 3);
    }
    expect(totals.peer ?? 0).toBeGreaterThan(0);
  });

  it('a poisoning peer is caught: nothing corrupted is delivered and playback goes on', async () => {
    const counter = { corrupted: 0 };
    const renditions = platform.origin.info.renditions.map((r) => r.name);
    // The poisoner seeds everything (so it has pieces to serve), corrupting every piece it sends.
    await platform.peer('seeder', { transport: corruptingTransport(createWeriftTransport(), counter), maxNeighbors: 16 });
    const fresh: { peer: NodePeer; tally: ViewerTally }[] = [];
    for (let i = 0; i < 3; i++) {
      // Pulling viewers linked to everybody: the poisoner is surely asked for pieces. (Viewers fed
      // by a parent, as the tracker's parent candidates now see to within seconds, may never ask
      // it, and then the check below could not tell a caught poisoner from an idle one.)
      const peer = await platform.peer('browser', { engine: { push: false }, maxNeighbors: 16, targetNeighbors: 12 });
      const tally: ViewerTally = { segments: 0, mismatches: [], failures: [], bySource: {} };
      playAlong(platform, peer, renditions[0], tally);
      fresh.push({ peer, tally });
    }
    await sleep(20_000);
    await sleep(DEADLINE_MS + 1000);
    const bad = [...viewers, ...fresh].reduce((n, v) => n + v.peer.engine.stats().badPieces, 0);
    console.log(`[poison] corrupted pieces sent ${counter.corrupted}, caught ${bad}; fresh viewers got ${fresh.map((v) => v.tally.segments).join(', ')} segments`);
    for (const { tally } of [...viewers, ...fresh]) {
      expect(tally.mismatches).toEqual([]);
      expect(tally.failures).toEqual([]);
    }
    for (const { tally } of fresh) expect(tally.segments).toBeGreaterThanOrEqual(20 / 2 - 3);
    // The check can fail: the poisoner must actually have sent corrupted pieces that were caught.
    expect(counter.corrupted).toBeGreaterThan(0);
    expect(bad).toBeGreaterThan(0);
  });
});
