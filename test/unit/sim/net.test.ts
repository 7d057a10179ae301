/** The simulator's network model against hand-computed cases. */
import { describe, expect, it } from 'vitest';
import { canConnectDirect, NAT_TYPES, Network, oneWayMs, SimNode, wireBytes, type Geography, type NodeSpec } from '../../../sim/net.js';
import { EventQueue } from '../../../sim/queue.js';
import { Rng } from '../../../sim/rng.js';
import { encodeFrame } from '../../../peer/core/codec.js';

const geo: Geography = { coreMs: [[0, 40], [40, 0]], sameIspMs: 3, crossIspMs: 8 };

function setup(loss = 0): { q: EventQueue; net: Network; node: (s: Partial<NodeSpec>) => SimNode } {
  const q = new EventQueue();
  const net = new Network(q, { byteScale: 1, loss, rng: new Rng(1), geography: geo });
  let id = 0;
  const node = (s: Partial<NodeSpec>) => new SimNode(id++, {
    region: 0, isp: 0, accessMs: 0, upKbps: Infinity, downKbps: Infinity, nat: 'open', ...s,
  });
  return { q, net, node };
}

function runAll(q: EventQueue): void { while (q.step()) { /* drain */ } }

describe('NAT connectability table', () => {
  it('symmetric<->symmetric and symmetric<->port-restricted fail, everything else connects', () => {
    const fails = new Set(['symmetric/symmetric', 'symmetric/port-restricted', 'port-restricted/symmetric']);
    for (const a of NAT_TYPES) for (const b of NAT_TYPES) {
      expect(canConnectDirect(a, b), `${a}/${b}`).toBe(!fails.has(`${a}/${b}`));
      expect(canConnectDirect(a, b)).toBe(canConnectDirect(b, a));
    }
  });
});

describe('latency', () => {
  it('adds access latencies and the core latency of the pair', () => {
    expect(oneWayMs(geo, { region: 0, isp: 1, accessMs: 5 }, { region: 0, isp: 1, accessMs: 7 })).toBe(15);
    expect(oneWayMs(geo, { region: 0, isp: 1, accessMs: 5 }, { region: 0, isp: 2, accessMs: 7 })).toBe(20);
    expect(oneWayMs(geo, { region: 0, isp: 1, accessMs: 5 }, { region: 1, isp: 1, accessMs: 7 })).toBe(52);
  });
});

describe('wire size', () => {
  it('charges PIECE payload bytes byteScale times, control frames as they are, plus packet overhead', () => {
    const piece = encodeFrame({ type: 'piece', rendition: 'r', seq: 1, index: 0, data: new Uint8Array(1000) });
    const hdr = piece.length - 1000;
    expect(wireBytes(piece, 16)).toBe(hdr + 16_000 + 48 * Math.ceil((hdr + 16_000 + 1) / 1150));
    const have = encodeFrame({ type: 'have', rendition: 'r', seq: 1, pieceCount: 8, bitfield: new Uint8Array([255]) });
    expect(wireBytes(have, 16)).toBe(have.length + 48);
  });
});

describe('uplink sharing and transfer times', () => {
  it('one transfer: size / uplink rate + one-way latency', () => {
    const { q, net, node } = setup();
    const a = node({ upKbps: 8000, accessMs: 5 }); // 1000 bytes/ms
    const b = node({ accessMs: 5 });
    let at = -1;
    net.transfer(a, b, 100_000, () => { at = q.now; });
    runAll(q);
    expect(at).toBeCloseTo(100 + 10 + 3, 6);
  });

  it('two transfers started together share the uplink equally', () => {
    const { q, net, node } = setup();
    const a = node({ upKbps: 8000 });
    const b = node({}), c = node({ isp: 1 });
    const done: number[] = [];
    net.transfer(a, b, 100_000, () => done.push(q.now));
    net.transfer(a, c, 100_000, () => done.push(q.now));
    runAll(q);
    expect(done[0]).toBeCloseTo(200 + 3, 6);
    expect(done[1]).toBeCloseTo(200 + 8, 6);
  });

  it('a late, short transfer takes half the rate until it is done (processor sharing)', () => {
    const { q, net, node } = setup();
    const a = node({ upKbps: 8000 });
    const b = node({});
    const done: Record<string, number> = {};
    net.transfer(a, b, 100_000, () => { done.A = q.now; });
    q.at(50, () => net.transfer(a, b, 20_000, () => { done.B = q.now; }));
    runAll(q);
    // 0-50 ms: A alone (50 kB); 50-90: 500 B/ms each, B done (20 kB), A at 70 kB; A's last 30 kB alone: 120 ms
    expect(done.B).toBeCloseTo(90 + 3, 6);
    expect(done.A).toBeCloseTo(120 + 3, 6);
  });

  it('a server with hundreds of transfers of different sizes serves each its processor-sharing share', () => {
    const { q, net, node } = setup();
    const server = node({ upKbps: 8000 }); // 1000 bytes/ms
    const viewer = node({});
    const n = 300;
    // sizes 1..n kB, started together, in shuffled order: transfer i (size s_i, the i-th smallest)
    // ends when the n - i + 1 still running have each had s_i; between ends the rate is 1000/(running)
    const sizes = Array.from({ length: n }, (_, i) => (i + 1) * 1000);
    const order = sizes.map((s, i) => [s, (i * 7919) % n] as const).sort((x, y) => x[1] - y[1]).map(([s]) => s);
    const done = new Map<number, number>();
    for (const s of order) net.transfer(server, viewer, s, () => done.set(s, q.now));
    runAll(q);
    let t = 0;
    let prev = 0;
    sizes.forEach((s, i) => {
      t += ((s - prev) * (n - i)) / 1000;
      prev = s;
      expect(done.get(s)!, `transfer of ${s} B`).toBeCloseTo(t + 3, 4);
    });
  });

  it('transfers that end together are delivered in the order they started', () => {
    const { q, net, node } = setup();
    const server = node({ upKbps: 8000 });
    const viewer = node({});
    const done: number[] = [];
    for (let i = 0; i < 50; i++) net.transfer(server, viewer, 10_000, () => done.push(i));
    runAll(q);
    expect(done).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('the receiver downlink limits a burst from a fast sender', () => {
    const { q, net, node } = setup();
    const a = node({ accessMs: 1 });
    const b = node({ downKbps: 4000, accessMs: 1 }); // 500 bytes/ms
    const done: number[] = [];
    for (let i = 0; i < 10; i++) net.transfer(a, b, 10_000, () => done.push(q.now));
    runAll(q);
    expect(done).toHaveLength(10);
    expect(done[9]).toBeCloseTo(200, 6);
  });
});

describe('simulated data channels', () => {
  it('deliver frames in order after serialization + latency; bufferedAmount counts queued bytes', () => {
    const { q, net, node } = setup();
    const a = node({ upKbps: 8 * 1000, accessMs: 10 }); // 1000 B/ms
    const b = node({ accessMs: 10 });
    const [la, lb] = net.connect(a, 'a', b, 'b');
    const got: Array<[number, number]> = [];
    lb.onMessage = (f) => got.push([f.length, q.now]);
    la.send(new Uint8Array(1102)); // 1102 + 48 = 1150 wire bytes
    la.send(new Uint8Array(10));
    expect(la.bufferedAmount).toBe(1112);
    runAll(q);
    expect(la.bufferedAmount).toBe(0);
    expect(got.map((g) => g[0])).toEqual([1102, 10]);
    expect(got[0][1]).toBeCloseTo(1150 / 1000 + 23, 6);
    expect(got[1][1]).toBeCloseTo((1150 + 58) / 1000 + 23, 6); // 10 + 48 wire bytes behind the first
  });

  it('close() delivers what was queued, then closes the remote end', () => {
    const { q, net, node } = setup();
    const [la, lb] = net.connect(node({}), 'a', node({}), 'b');
    const events: string[] = [];
    lb.onMessage = () => events.push('msg');
    lb.onClose = () => events.push('close');
    la.send(new Uint8Array(5));
    la.close();
    la.send(new Uint8Array(5)); // after close: dropped
    runAll(q);
    expect(events).toEqual(['msg', 'close']);
  });

  it('an abruptly vanished node: the remote notices only after the detection delay', () => {
    const { q, net, node } = setup();
    const a = node({}), b = node({});
    const [la, lb] = net.connect(a, 'a', b, 'b');
    let closedAt = -1;
    la.onClose = () => { closedAt = q.now; };
    lb.onMessage = () => { throw new Error('dead node got a frame'); };
    q.at(100, () => { la.send(new Uint8Array(5)); net.kill(b, 5000); });
    runAll(q);
    expect(closedAt).toBe(5100);
  });

  it('loss delays a frame and everything behind it on the channel (head-of-line blocking)', () => {
    const { q, net, node } = setup(0.5);
    const [la, lb] = net.connect(node({ accessMs: 5 }), 'a', node({ accessMs: 5 }), 'b');
    const times: number[] = [];
    lb.onMessage = () => times.push(q.now);
    for (let i = 0; i < 50; i++) la.send(new Uint8Array(100));
    runAll(q);
    expect(times).toHaveLength(50);
    for (let i = 1; i < times.length; i++) expect(times[i]).toBeGreaterThanOrEqual(times[i - 1]);
    expect(Math.max(...times)).toBeCloseTo(13 + 2 * 13 + 20, 6);
  });
});

describe('NAT table agrees with the tracker', () => {
  it('canConnectDirect matches tracker/nat.ts predictPair on every modelled pair', async () => {
    const { predictPair } = await import('../../../tracker/nat.js');
    for (const a of NAT_TYPES) for (const b of NAT_TYPES) expect(canConnectDirect(a, b), `${a}/${b}`).toBe(predictPair(a, b) === 'direct');
  });
});
