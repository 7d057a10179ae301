/**
 * Integration: churn. Tracker + origin (real ffmpeg, signed segments, root peer) + 10 werift
 * viewers over two renditions, each playing along (every new segment of its rendition loaded by
 * a deadline a player a few segments behind the edge has). Mid-stream 30% of the viewers leave
 * abruptly (their connections drop: no BYE, no goodbye to anybody). Every remaining viewer must
 * keep getting every segment, byte-identical to the origin's, from peers or over HTTP — and the
 * upload-link tree must have re-formed around the holes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { performance } from 'node:perf_hooks';
import { INIT_SEQ, type SegmentRef } from '../../peer/core/types.js';
import type { NodePeer } from '../../peer/node/node-peer.js';
import { hex, sleep, startPlatform, type Platform } from './platform.js';

const CHANNEL = 'churn';
const VIEWERS = 10;
const LEAVERS = 3; // 30%
const BEFORE_S = 16;
const AFTER_S = 20;
const DEADLINE_MS = 4000;

interface Viewer {
  peer: NodePeer;
  rendition: string;
  /** seq -> ok / failure message */
  got: Map<number, true | string>;
  mismatches: string[];
  stopPlaying: () => void;
}

function playAlong(platform: Platform, v: Viewer): () => void {
  let first = true;
  return platform.origin.onSegment(({ ref, data }) => {
    if (ref.rendition !== v.rendition || ref.seq === INIT_SEQ) return;
    const want = hex(data);
    const loads: Array<[SegmentRef, string | null]> = [[ref, want]];
    if (first) {
      const init = platform.origin.window.get({ rendition: v.rendition, seq: INIT_SEQ });
      loads.unshift([{ rendition: v.rendition, seq: INIT_SEQ }, init ? hex(init.data) : null]);
      first = false;
    }
    for (const [r, expected] of loads) {
      if (r.seq !== INIT_SEQ) v.peer.engine.setPlaybackPosition(r);
      v.peer.engine.loadSegment(r, { deadline: performance.now() + DEADLINE_MS }).then(
        (res) => {
          if (r.seq !== INIT_SEQ) v.got.set(r.seq, true);
          if (expected !== null && hex(res.data) !== expected) v.mismatches.push(`${r.rendition}/${r.seq}`);
        },
        (err) => { if (r.seq !== INIT_SEQ) v.got.set(r.seq, String(err)); },
      );
    }
  });
}

describe('churn: 30% of the viewers leave abruptly mid-stream', () => {
  let platform: Platform;

  beforeAll(async () => {
    platform = await startPlatform({ channel: CHANNEL });
    const t0 = Date.now();
    while (platform.origin.stats().segmentsPublished < 3 && Date.now() - t0 < 30_000) await sleep(200);
  });

  afterAll(async () => {
    await platform?.stop();
  });

  it('every remaining viewer keeps getting every segment, from peers or HTTP', async () => {
    const renditions = platform.origin.info.renditions.map((r) => r.name);
    const viewers: Viewer[] = [];
    for (let i = 0; i < VIEWERS; i++) {
      const peer = await platform.peer('browser', { engine: { uploadLimitKbps: i % 3 === 0 ? 400 : 3000 } });
      const v: Viewer = { peer, rendition: renditions[i % renditions.length], got: new Map(), mismatches: [], stopPlaying: () => {} };
      v.stopPlaying = playAlong(platform, v);
      viewers.push(v);
    }
    await sleep(BEFORE_S * 1000);

    // Leavers: the viewers that feed others (parents) first, so the churn hurts.
    const feeds = (v: Viewer) => v.peer.engine.neighborStats().filter((n) => n.isChild).length;
    const ranked = [...viewers].sort((a, b) => feeds(b) - feeds(a));
    const leavers = ranked.slice(0, LEAVERS);
    const childrenOrphaned = leavers.reduce((n, v) => n + feeds(v), 0);
    const leftAt = performance.now();
    for (const v of leavers) {
      v.stopPlaying();
      // abrupt: the connections drop; the engine never says BYE
      await v.peer.host.stop();
    }
    const stayers = viewers.filter((v) => !leavers.includes(v));
    // the segments every stayer must get: all published for its rendition from now on
    const firstAfter = new Map<string, number>();
    const lastSeq = new Map<string, number>();
    const unsubscribe = platform.origin.onSegment(({ ref }) => {
      if (ref.seq === INIT_SEQ) return;
      if (!firstAfter.has(ref.rendition)) firstAfter.set(ref.rendition, ref.seq);
      lastSeq.set(ref.rendition, ref.seq);
    });
    await sleep(AFTER_S * 1000);
    unsubscribe();
    for (const v of stayers) v.stopPlaying();
    await sleep(DEADLINE_MS + 1000); // let the last loads finish

    const rows = stayers.map((v) => {
      const from = firstAfter.get(v.rendition)!;
      const to = lastSeq.get(v.rendition)!;
      const missing: string[] = [];
      for (let q = from; q <= to; q++) {
        const g = v.got.get(q);
        if (g !== true) missing.push(`${q}:${g ?? 'never loaded'}`);
      }
      const s = v.peer.engine.stats();
      return { v, from, to, missing, s, parents: v.peer.engine.links().parents };
    });
    const all = rows.reduce((n, r) => n + r.s.bytesFromPeers + r.s.bytesFromOriginPeer + r.s.bytesFromHttp, 0);
    const peers = rows.reduce((n, r) => n + r.s.bytesFromPeers, 0);
    console.log(`[churn] ${LEAVERS} of ${VIEWERS} left ${Math.round(performance.now() - leftAt)} ms ago, orphaning ${childrenOrphaned} children; ` +
      `stayers from peers ${(100 * peers / Math.max(1, all)).toFixed(1)}%; ` +
      rows.map((r) => `[${r.v.rendition} ${r.from}-${r.to} miss=${r.missing.length} parent=${r.parents[r.v.rendition] ? 'yes' : 'no'}]`).join(' '));

    for (const r of rows) {
      expect(r.to).toBeGreaterThan(r.from); // the window really covered several segments
      expect(r.missing).toEqual([]);
      expect(r.v.mismatches).toEqual([]);
    }
    // the tree re-forms: most stayers are fed again by an upload link in their rendition (the rest
    // keep playing through mesh repair; full re-attachment within the window is issue 4 work)
    const reattached = rows.filter((r) => r.parents[r.v.rendition] !== undefined).length;
    expect(reattached).toBeGreaterThan(rows.length / 2);
    // the leavers did feed somebody (otherwise this test would not exercise churn)
    expect(childrenOrphaned).toBeGreaterThan(0);
  });
});
