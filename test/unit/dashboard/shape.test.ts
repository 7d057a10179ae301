/** The dashboard's data shaping (pure, no DOM). */
import { describe, expect, it } from 'vitest';
import {
  authMessage, authStateOf, cdfData, diffGraph, edgeData, filterEvents, formatBps, formatBytes, formatMs, formatPercent, liveUrl,
  mergeEvents, nextSort, nodeData, offloadData, sortRows, stackedSourceData, trackerHttpBase,
} from '../../../player/src/dashboard/shape.js';
import { distribution } from '../../../tracker/stats/percentiles.js';
import type { ChannelSeries, FeedEvent, GraphEdge, GraphNode, PeerRow } from '../../../tracker/stats/types.js';

const series: ChannelSeries = {
  t: [100, 101, 102],
  offload: [null, 0.5, 1],
  peersBps: [0, 100, 300],
  originPeerBps: [0, 50, 0],
  httpBps: [0, 50, 0],
  originUploadBps: [10, 20, 30],
  viewers: [null, 2, 2],
  seeders: [null, 1, 1],
};

describe('formatting', () => {
  it('formats bytes, rates, ratios and durations', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(null)).toBe('–');
    expect(formatBps(125_000)).toBe('1.0 Mbit/s');
    expect(formatBps(100)).toBe('800 bit/s');
    expect(formatPercent(0.1234)).toBe('12.3 %');
    expect(formatPercent(null)).toBe('–');
    expect(formatMs(850)).toBe('850 ms');
    expect(formatMs(6400)).toBe('6.4 s');
  });
});

describe('connection', () => {
  it('derives the tracker HTTP base and the live URL', () => {
    expect(trackerHttpBase('ws://10.0.0.1:8000/ws')).toBe('http://10.0.0.1:8000');
    expect(trackerHttpBase('wss://t.example:443/ws')).toBe('https://t.example');
    expect(liveUrl('http://h:1', 'demo', 'a b')).toBe('http://h:1/api/live?channel=demo&token=a+b');
    expect(liveUrl('http://h:1', 'demo', null)).toBe('http://h:1/api/live?channel=demo');
  });
  it('tells a missing token from a wrong one', () => {
    expect(authStateOf(401)).toBe('missing');
    expect(authStateOf(403)).toBe('wrong');
    expect(authStateOf(200)).toBe('ok');
    expect(authStateOf(500)).toBe('error');
    expect(authMessage('missing')).toMatch(/requires an admin token/);
    expect(authMessage('wrong')).toMatch(/wrong/);
  });
});

describe('chart data', () => {
  it('stacks the sources bottom-up: peers, + origin peer, + HTTP', () => {
    expect(stackedSourceData(series)).toEqual([[100, 101, 102], [0, 200, 300], [0, 150, 300], [0, 100, 300]]);
  });
  it('offload in percent with the bound as a flat line', () => {
    expect(offloadData(series, 0.5)).toEqual([[100, 101, 102], [null, 50, 100], [50, 50, 50], [10, 20, 30]]);
    expect(offloadData(series, null)[2]).toEqual([null, null, null]);
  });
  it('CDF points start at 0 %', () => {
    expect(cdfData(distribution([1000, 2000]), 1 / 1000)).toEqual([[1, 1, 2], [0, 50, 100]]);
    expect(cdfData(distribution([]))).toEqual([[], []]);
  });
});

describe('graph diff', () => {
  const node = (id: string, kind: GraphNode['kind'], depth: number | null, upBps = 0): GraphNode =>
    ({ id, kind, rendition: kind === 'browser' ? '360p' : null, nat: null, region: null, upBps, capacityBps: null, depth });
  const edge = (from: string, to: string, bps = 0): GraphEdge => ({ from, to, bytes: 1000, bps, upload: false });

  it('adds, updates and removes only what changed; relayouts on node-set or depth changes', () => {
    const cur = { nodes: new Map(), edges: new Map() };
    const g1 = { nodes: [node('o', 'origin', 0), node('s', 'seeder', 1), node('b', 'browser', 2)], edges: [edge('o', 's'), edge('s', 'b'), edge('s', 'zz')] };
    const d1 = diffGraph(cur, g1);
    expect(d1.addNodes.map((n) => n.id)).toEqual(['o', 's', 'b']);
    expect(d1.addEdges.map((e) => e.id)).toEqual(['o>s', 's>b']); // edges to unknown nodes are skipped
    expect(d1.relayout).toBe(true);
    for (const n of d1.addNodes) cur.nodes.set(n.id, n);
    for (const e of d1.addEdges) cur.edges.set(e.id, e);
    // Same graph: nothing to do.
    const d2 = diffGraph(cur, g1);
    expect(d2).toMatchObject({ addNodes: [], updateNodes: [], removeNodes: [], addEdges: [], updateEdges: [], removeEdges: [], relayout: false });
    // A rate change updates data without a relayout; a leaving peer removes node and edge.
    const g3 = { nodes: [node('o', 'origin', 0), node('s', 'seeder', 1, 250_000)], edges: [edge('o', 's', 125_000)] };
    const d3 = diffGraph(cur, g3);
    expect(d3.updateNodes.map((n) => n.id)).toEqual(['s']);
    expect(d3.updateEdges.map((e) => e.id)).toEqual(['o>s']);
    expect(d3.removeNodes).toEqual(['b']);
    expect(d3.removeEdges).toEqual(['s>b']);
    expect(d3.relayout).toBe(true);
  });

  it('sizes nodes by upload and shows load against capacity', () => {
    const small = nodeData(node('b1234567890', 'browser', 2, 0));
    const busy = nodeData({ ...node('b2', 'browser', 2, 500_000), capacityBps: 1_000_000 });
    expect(busy.size).toBeGreaterThan(small.size);
    expect(small.load).toBe(-1);
    expect(busy.load).toBe(0.5);
    expect(small.label).toBe('b12345… · 360p');
    expect(edgeData(edge('a', 'b', 0)).active).toBe(false);
    expect(edgeData(edge('a', 'b', 1e6)).width).toBeGreaterThan(edgeData(edge('a', 'b', 1e4)).width);
  });
});

describe('table and feed', () => {
  const row = (peerId: string, upBps: number, latencyMs: number | null): PeerRow => ({
    peerId, kind: 'browser', region: null, nat: null, rendition: null, neighbors: 1, upBps, downBps: 0, bytesShared: 0, bytesReceived: 0,
    offload: null, badPiecesSent: 0, bans: 0, trust: 1, bufferMs: null, latencyMs, stalls: null, joinedAt: 0, lastReportAt: null,
  });
  it('sorts by any column, nulls last, ties by id', () => {
    const rows = [row('c', 5, null), row('a', 10, 3000), row('b', 5, 1000)];
    expect(sortRows(rows, { key: 'upBps', dir: 'desc' }).map((r) => r.peerId)).toEqual(['a', 'b', 'c']);
    expect(sortRows(rows, { key: 'upBps', dir: 'asc' }).map((r) => r.peerId)).toEqual(['b', 'c', 'a']);
    expect(sortRows(rows, { key: 'latencyMs', dir: 'asc' }).map((r) => r.peerId)).toEqual(['b', 'a', 'c']);
    expect(sortRows(rows, { key: 'latencyMs', dir: 'desc' }).map((r) => r.peerId)).toEqual(['a', 'b', 'c']);
    expect(nextSort({ key: 'upBps', dir: 'desc' }, 'upBps', true)).toEqual({ key: 'upBps', dir: 'asc' });
    expect(nextSort({ key: 'upBps', dir: 'desc' }, 'peerId', false)).toEqual({ key: 'peerId', dir: 'asc' });
  });
  it('filters the feed newest first and merges without duplicates', () => {
    const ev = (id: number, type: FeedEvent['type']): FeedEvent => ({ id, t: id, channel: 'demo', type, text: `${type} ${id}` });
    let all = mergeEvents([], [ev(1, 'join'), ev(2, 'ban'), ev(3, 'repair')]);
    all = mergeEvents(all, [ev(3, 'repair'), ev(4, 'join')], 3);
    expect(all.map((e) => e.id)).toEqual([2, 3, 4]);
    expect(filterEvents(all, 'type:join,ban').events.map((e) => e.id)).toEqual([4, 2]);
    expect(filterEvents(all, 'what:ever').error).toMatch(/unknown field/);
  });
});
